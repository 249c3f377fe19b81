"""The gateway: carrier links in, store, router and handlers, outbound queue out.

The MO path is: deliver_sm → decode → (reassemble) → commit to the store → answer
deliver_sm_resp 0 → route → handler → commit replies with the MO marked processed →
outbound queue.  Only the commit decides whether an MO was accepted: if the store cannot
write, the carrier gets ESME_RX_T_APPN and redelivers, and an MO acknowledged before a
crash is found unprocessed in the store at start-up and processed then.

That path runs per reactor turn, not per message: the deliver_sm PDUs that arrive in one turn
(on any link) are read, stored as one group of writes in the next group commit, answered
together once it is committed, routed, and their replies committed as one group and queued.  A
turn's acknowledgements and submits then leave in one socket write, and the batch costs one task
and two futures rather than a task, its coroutine chain and two futures per MO.  Each MO is still
its own write (one that fails is answered ESME_RX_T_APPN alone).  USSD and the parts of long MOs
take the per-message path (their own state machines), which the batch hands them to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure

from smsgw import dlr, reassembly
from smsgw.abuse import AbuseGuard, Verdict
from smsgw.admin.state import OPERATOR_SCHEMA, RouteOverrides
from smsgw import text as smstext
from smsgw.config import CarrierConfig, GatewayConfig
from smsgw.feature import Feature, ServiceContext
from smsgw.log import get_logger, mask_msisdn
from smsgw.metrics import GatewayMetrics
from smsgw.message import Channel, Inbound, Lang, Reply, SessionEvent
from smsgw.msisdn import canonical_msisdn
from smsgw.outbound import CarrierSender, OutboundQueue
from smsgw.retention import RetentionService, rules_for, with_redelivery_windows
from smsgw.router import Router
from smsgw.smpp import constants as c
from smsgw.smpp.connector import CarrierConnector
from smsgw.smpp.pdu import Pdu
from smsgw.cluster import SCHEMA as CLUSTER_SCHEMA
from smsgw.cluster import ClusterMember, ClusterSettings, ConfigListener, default_node_name
from smsgw.store import NewMo, NewMoPart, NewMt, Outbound, Store, StoreUnavailable, is_postgres
from smsgw.store.types import NewReceipt
from smsgw.textnorm import detect_lang
from smsgw.traffic import TrafficLog
from smsgw.ussd.channel import UssdChannel
from smsgw.ussd.dialogue import find_app
from smsgw.ussd.sessions import SCHEMA as USSD_SESSIONS

if TYPE_CHECKING:
    from smsgw.admin.server import AdminService

log = get_logger(__name__)

#: The one answer a flooding handset gets before silence.
RATE_LIMITED = {
    Lang.EN: "You have sent many messages in a short time. Please wait a few minutes before sending again.",
    Lang.AR: "لقد أرسلت رسائل كثيرة في وقت قصير. يرجى الانتظار بضع دقائق قبل الإرسال مجددا.",
}

#: Shown when a handler fails: the person must not be left without an answer.
APOLOGY = {
    Lang.EN: "Sorry, the service could not process your message right now. Please try again later.",
    Lang.AR: "عذرا، تعذر تنفيذ طلبك الآن. يرجى المحاولة لاحقا.",
}

ReplyHook = Callable[[str, Inbound], None]

#: An MO whose outcome the store could not take is processed again after this long, doubling up
#: to the most (the database restarting takes seconds; a longer outage is retried every few).
PROCESS_RETRY_FIRST_S = 0.5
PROCESS_RETRY_MAX_S = 4.0

#: How the store records an MO the abuse guard kept from its normal answer (status page, API).
_DISPOSITION = {
    Verdict.MUTED: "muted",
    Verdict.POLITE_LIMIT: "limited",
    Verdict.SILENT: "limited",
    Verdict.IGNORED: "ignored",
}


class Gateway(MultiService):
    """Owns the store, one connector and one sender per carrier, the router and handlers."""

    def __init__(
        self,
        config: GatewayConfig,
        features: Sequence[Feature] = (),
        *,
        clock: IReactorTime | None = None,
        reactor: Any = None,
        ports: Mapping[str, int] | None = None,
        service_clock: IReactorTime | None = None,
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.config = config
        self.reactor = reactor
        self.clock: IReactorTime = clock or reactor
        self._clock_is_reactor = self.clock is reactor
        # Business time (parking hours, reminders, notices) may run on its own clock, so tests
        # can jump to 12:55 on a Thursday without slowing the SMPP timers down.
        self.service_clock: IReactorTime = service_clock or self.clock
        self.features = tuple(features)
        self._ports = dict(ports or {})
        self.carriers: dict[str, CarrierConfig] = {cc.name: cc for cc in config.carriers if cc.enabled}
        self.connectors: dict[str, CarrierConnector] = {}
        self.store: Store | None = None
        self.router: Router | None = None
        self.context: ServiceContext | None = None
        self.queue: OutboundQueue | None = None
        self.ussd: UssdChannel | None = None  # USSD dialogues (smsgw/ussd), built at start
        self.traffic: TrafficLog | None = None  # the periodic `traffic` event, built at start
        self.accepting = False
        self.started_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._processing: set[int] = set()  # inbound ids being processed now
        self._retry_waits: set[Deferred[None]] = set()  # MOs waiting to be processed again
        #: deliver_sm PDUs of this reactor turn, taken as one batch once the turn's reads are done.
        self._arrived: list[tuple[CarrierConfig, Pdu, Deferred]] = []
        self._sweeper: LoopingCall | None = None
        self.counters: dict[str, int] = {"mo": 0, "mo_duplicate": 0, "mo_rejected": 0, "dlr": 0, "processed": 0,
                                         "carried_out_unanswered": 0}
        self.carrier_counters: Counter[tuple[str, str]] = Counter()
        self.abuse = AbuseGuard(config.abuse)
        self.admin: AdminService | None = None  # the admin HTTP API, when enabled in config
        self.retention: RetentionService | None = None
        # Route changes made through the admin API, laid over the config's routes (smsgw/admin/state.py).
        self.route_overrides = RouteOverrides()
        #: This node's name (logs, the database's view, metrics); several nodes share one config.
        self.node = config.node or default_node_name(config.admin.port if config.admin.enabled else None)
        #: Several nodes on one PostgreSQL: this node's membership (leases, binds, jobs role).
        self.cluster: ClusterMember | None = None
        self._cluster_loops: list[LoopingCall] = []
        self._listener: ConfigListener | None = None
        self.metrics = GatewayMetrics()
        self.metrics.attach(self)

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self.store = await Store.open(
            cfg.store_location, clock=self.clock.seconds, mo_dedupe_window=cfg.mo_dedupe_window_s,
            part_dedupe_window=cfg.part_dedupe_window_s, file_group=cfg.file_group, node=self.node,
            components=[USSD_SESSIONS, OPERATOR_SCHEMA, CLUSTER_SCHEMA,
                        *(f.schema for f in self.features if f.schema is not None)],
        )
        try:
            if is_postgres(cfg.store_location):
                await self._join_cluster(self.store)
            await self._start_on(self.store)
        except BaseException:
            # A feature's config error, say: close the store, or its thread keeps the process alive.
            if self.cluster is not None:
                await self.cluster.engine.close()
            await self.store.close()
            raise

    # -- several nodes (smsgw/cluster.py) ------------------------------------------------

    async def _join_cluster(self, store: Store) -> None:
        from smsgw.store.postgres import PostgresEngine

        cfg = self.config
        # Its own connection: a heartbeat never waits behind a group commit.
        engine = await PostgresEngine.open(cfg.store_location, application_name=self.node)
        admin = f"http://{cfg.admin.host}:{cfg.admin.port}" if cfg.admin.enabled else None
        member = ClusterMember(
            engine, self.node,
            ClusterSettings(lease_s=cfg.cluster.lease_s, heartbeat_s=cfg.cluster.heartbeat_s,
                            fence_margin_s=cfg.cluster.fence_margin_s),
            self.clock, lambda: {name: c.max_binds for name, c in self.carriers.items()}, admin=admin,
            on_slot=self._slot_acquired, on_slot_lost=self._slot_lost, on_fence=self._fenced,
            on_unfence=self._unfenced, on_reset=self._cluster_reset,
            # The fence runs on a monotonic clock (a wall-clock step never extends a lease);
            # a test driving the gateway with a task.Clock drives the fence with it too.
            monotonic=time.monotonic if self._clock_is_reactor else self.clock.seconds,
        )
        try:
            await member.join()
        except BaseException:
            await engine.close()
            raise
        self.cluster = member
        self.metrics.node = self.node  # several nodes are scraped as one job: label every sample
        store.node_tag = lambda: member.incarnation
        store.claim_for = self._claim_for
        member.claim_engine = store.engine  # type: ignore[assignment]

    @property
    def clustered(self) -> bool:
        return self.cluster is not None

    def runs_jobs(self) -> bool:
        """Whether this node runs the once-only jobs now (always, on a single node)."""
        return self.cluster is None or (self.cluster.jobs and self.cluster.check_lease())

    def _sending_config(self, carrier: CarrierConfig) -> CarrierConfig:
        """A carrier as one bind slot sends to it: several nodes share its TPS budgets by slot."""
        if self.cluster is None or carrier.max_binds <= 1:
            return carrier
        share = carrier.max_binds
        return dataclasses.replace(carrier, tps=carrier.tps / share, ussd_tps=carrier.ussd_tps / share)

    def _claim_for(self, carrier: str, channel: str) -> str | None:
        # Runs on the store's thread, reading plain attributes the loop sets.
        member = self.cluster
        if member is None or not member.may_send(carrier) or self.queue is None:
            return None
        if channel == Channel.USSD.value:
            return member.incarnation  # a screen takes its own lane, whatever the SMS backlog
        sender = self.queue.senders.get(carrier)
        # Keep an MT only while this node can send it within about a second; beyond that it is
        # left unclaimed, for whichever node holding another of the carrier's binds has room.
        if sender is None or sender.fenced or (
                sender.held + sender.claiming >= min(sender.high_water, max(10.0, sender.config.tps))):
            return None
        return member.incarnation

    def _accepts(self, outbound: Outbound) -> bool:
        return self.cluster is not None and outbound.claimed_by == self.cluster.incarnation

    def _slot_acquired(self, carrier: str, slot: int) -> None:
        config = self.carriers.get(carrier)
        if config is None or self.queue is None:
            if self.cluster is not None:
                self.cluster.release(carrier)
            return
        old = self.connectors.get(carrier)
        if old is not None and old.running:
            old.abort()
        connector = self._connector(config, start=False)
        connector.startService()
        sender = self.queue.senders.get(carrier)
        if sender is not None:
            sender.rebind(self._sending_config(config), connector)
            sender.unfence()
            sender.load_backlog()  # claim what is waiting

    def _slot_lost(self, carrier: str) -> None:
        connector = self.connectors.get(carrier)
        if connector is not None and connector.running:
            connector.abort()
        sender = self.queue.senders.get(carrier) if self.queue is not None else None
        if sender is not None:
            sender.fence()
            sender.forget_all()

    def _fenced(self) -> None:
        if self.queue is not None:
            for sender in self.queue.senders.values():
                sender.fence()
        for connector in self.connectors.values():
            if connector.running:
                connector.abort()

    def _unfenced(self) -> None:
        if self.cluster is not None:
            for carrier, slot in list(self.cluster.slots.items()):
                self._slot_acquired(carrier, slot)

    def _cluster_reset(self) -> None:
        if self.queue is not None:
            for sender in self.queue.senders.values():
                sender.fence()
                sender.forget_all()

    def _poll_claims(self) -> None:
        """Several nodes: take MTs stored unclaimed (by a node without this carrier's bind, or
        left by a dead one) for the carriers this node sends to."""
        if self.cluster is None or self.queue is None or self.cluster.fenced:
            return
        for carrier in list(self.cluster.slots):
            sender = self.queue.senders.get(carrier)
            if sender is not None and not sender.fenced:
                sender.load_backlog()

    async def _adopt_orphans(self) -> None:
        """The jobs node processes the MOs a dead node acknowledged but never answered."""
        if self.cluster is None or self.store is None or not self.accepting or not self.runs_jobs():
            return
        try:
            ids = await self.cluster.adopt_orphan_mos(float("inf"))
            if not ids:
                return
            orphans = await self.store.unprocessed_by_ids(ids)
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.error("orphan_mos_not_adopted", error=f"{type(exc).__name__}: {exc}")
            return
        log.warning("orphan_mos_adopted", count=len(orphans))
        for inbound in orphans:
            self._spawn(self._process(inbound))

    # -- live configuration across nodes ----------------------------------------------------

    async def set_paused(self, carrier: str, paused: bool, actor: str) -> None:
        """Pause or resume sending to a carrier: on this node, and with several nodes on every
        node (recorded in the store, announced) and across restarts."""
        assert self.queue is not None
        sender = self.queue.senders[carrier]
        sender.pause() if paused else sender.resume()
        if self.cluster is not None:
            await self.cluster.set_paused(carrier, paused, actor)

    async def announce(self, kind: str) -> None:
        """Several nodes: tell the others a change of `kind` (routes, reload) is committed."""
        if self.cluster is None:
            return
        try:
            await self.cluster.announce(kind)
        except Exception as exc:  # noqa: BLE001 - the others resync at their next reconnect
            log.error("config_change_not_announced", kind=kind, error=f"{type(exc).__name__}: {exc}")

    def _config_changed(self, message: dict[str, Any]) -> None:
        self._spawn(self._apply_change(message))

    async def _apply_change(self, message: dict[str, Any]) -> None:
        kind, origin = message.get("kind"), message.get("origin")
        if not self.accepting or self.store is None or self.router is None or self.queue is None:
            return
        try:
            if kind in ("pause", "resync") and self.cluster is not None:
                for carrier, paused in (await self.cluster.paused_carriers()).items():
                    sender = self.queue.senders.get(carrier)
                    if sender is not None and sender.paused != paused:
                        sender.pause() if paused else sender.resume()
                        log.info("carrier_" + ("paused" if paused else "resumed"), carrier=carrier, by_node=origin)
            if kind in ("routes", "resync"):
                self.route_overrides = await RouteOverrides.load(self.store)
                self.router.replace_routes(self.route_overrides.apply(self.config.routes))
                log.info("routes_reloaded", by_node=origin, routes=len(self.router.routes))
            if kind == "reload" and self.config.path:
                from smsgw.app import reload_config

                await reload_config(self, self.config.path, actor=f"node:{origin}", announce=False)
        except Exception as exc:  # noqa: BLE001 - a resync at the next reconnect puts it right
            log.error("config_change_not_applied", kind=kind, by_node=origin, error=f"{type(exc).__name__}: {exc}")

    def _start_cluster_loops(self) -> None:
        claims = LoopingCall(self._poll_claims)
        orphans = LoopingCall(lambda: Deferred.fromFuture(asyncio.ensure_future(self._adopt_orphans())))
        for loop, interval in ((claims, 0.25), (orphans, 2.0)):
            loop.clock = self.clock
            loop.start(interval, now=False)
            self._cluster_loops.append(loop)

    async def _start_on(self, store: Store) -> None:
        cfg = self.config
        senders: dict[str, CarrierSender] = {}
        for name, carrier in self.carriers.items():
            senders[name] = self._sender(carrier, store)
        self.queue = OutboundQueue(senders)
        if self.cluster is not None:
            self.queue.accepts = self._accepts
        self.context = ServiceContext(
            store=store, clock=self.service_clock, send=self.send, enqueue=self.queue.enqueue,
            # Validity is counted by the clock the queue expires by, not by business time.
            new_mt=lambda reply, kind: self._draft(reply, None, self.clock.seconds(), kind),
            config_dir=cfg.config_dir,
            short_codes=cfg.short_codes,
            runs_jobs=self.runs_jobs,
        )
        handlers = {name: factory(self.context) for f in self.features for name, factory in f.handlers.items()}
        self.route_overrides = await RouteOverrides.load(store)
        self.router = Router(self.route_overrides.apply(cfg.routes), handlers)
        for feature in self.features:
            if feature.services is not None:
                for service in feature.services(self.context, handlers):
                    service.setServiceParent(self)
        # Old bodies, numbers, parts and receipts pruned in small batches (smsgw/retention.py).
        # The parts of assembled long MOs go once their redelivery window is over.
        retention = with_redelivery_windows(cfg.retention, cfg)
        self.retention = RetentionService(store, retention, rules_for(self.features), self.clock,
                                          runs_jobs=self.runs_jobs)
        self.retention.setServiceParent(self)
        self.admin = self._admin_service(handlers)
        # USSD dialogues: the app is the handler a feature registers as "ussd" (none: "not offered").
        self.ussd = UssdChannel(store, self.clock, lambda: self.carriers, self.queue.enqueue,
                                find_app(handlers), bound_since=self._bound_since, shared=self.clustered,
                                runs_jobs=self.runs_jobs)
        self.ussd.setServiceParent(self)
        self.traffic = TrafficLog(self)  # per-message events are at debug: their counts at info
        self.traffic.setServiceParent(self)
        backlog = (await store.counts()).get("mt_queued", 0)
        unprocessed: list[Inbound] = []
        if self.cluster is None:
            for sender in senders.values():
                sender.load_backlog()
            unprocessed = await store.unprocessed_mos()
            for inbound in unprocessed:
                self._spawn(self._process(inbound))
        else:
            # Several nodes: MTs are claimed once this node holds a carrier's bind slot, and the MOs
            # a dead node left are taken over by the node running the jobs (_adopt_orphans).
            self.cluster.setServiceParent(self)
            self._start_cluster_loops()
            self._listener = ConfigListener(cfg.store_location, self.node, self._config_changed,
                                            asyncio.get_running_loop(), application_name=self.node)
            self._listener.start()
        self.accepting = True
        self.started_at = self.clock.seconds()
        self._sweeper = LoopingCall(lambda: Deferred.fromFuture(asyncio.ensure_future(self._sweep_reassembly())))
        self._sweeper.clock = self.clock
        self._sweeper.start(max(1.0, cfg.mo_reassembly_timeout_s / 4), now=False)
        log.info("gateway_started", carriers=sorted(self.carriers), resumed_mts=backlog,
                 resumed_mos=len(unprocessed), store=store.location, node=self.node,
                 cluster=self.cluster is not None)
        self.startService()
        if self.admin is not None and self.cluster is not None:
            # Where operators reach this node (the port an ephemeral 0 became, now it listens).
            self.cluster.admin = f"http://{cfg.admin.host}:{self.admin.port}"

    def _sender(self, carrier: CarrierConfig, store: Store) -> CarrierSender:
        # Several nodes: no connector runs until this node holds one of the carrier's bind slots.
        connector = self._connector(carrier, start=self.cluster is None)
        sender = CarrierSender(self._sending_config(carrier), connector, store, self.clock, on_result=self._mt_result)
        if self.cluster is not None:
            sender.claims = self.cluster.claim
            sender.lease_check = self.cluster.check_lease
            sender.fenced = True  # until a bind slot is ours
        return sender

    def _connector(self, carrier: CarrierConfig, start: bool = True) -> CarrierConnector:
        connector = CarrierConnector(
            carrier=carrier.name,
            host=carrier.host,
            port=self._ports.get(carrier.name, carrier.port),
            system_id=carrier.system_id,
            password=carrier.password,
            system_type=carrier.system_type,
            bind_mode=carrier.bind_mode,
            window=carrier.window,
            response_timeout_s=carrier.response_timeout_s,
            enquire_link_s=carrier.enquire_link_s,
            reconnect_initial_s=carrier.reconnect_initial_s,
            reconnect_max_s=carrier.reconnect_max_s,
            on_deliver=self._deliver_callback(carrier),
            clock=self.clock,
            reactor=self.reactor,
        )
        if start:
            connector.setServiceParent(self)
        self.connectors[carrier.name] = connector
        return connector

    async def apply_config(self, new: GatewayConfig) -> dict[str, Any]:
        """Hot reload of an already validated config: routes and abuse limits at once; a carrier
        whose settings changed is unbound and bound again with them, the others are untouched.
        Raises ValueError (and changes nothing) if the new routes do not fit the handlers."""
        assert self.router is not None and self.queue is not None and self.store is not None
        self.router.replace_routes(self.route_overrides.apply(new.routes))
        self.abuse.config = new.abuse
        new_carriers = {c.name: c for c in new.carriers if c.enabled}
        changed = sorted(n for n in new_carriers if n in self.carriers and new_carriers[n] != self.carriers[n])
        added = sorted(n for n in new_carriers if n not in self.carriers)
        removed = sorted(n for n in self.carriers if n not in new_carriers)
        for name in changed + removed:
            connector = self.connectors.pop(name)
            if self.cluster is not None:
                stopped = connector.stopService() if connector.running else None
            else:
                stopped = connector.disownServiceParent()
            if stopped is not None:  # None when the gateway itself is not running
                await stopped.asFuture(asyncio.get_running_loop())
        for name in removed:
            # Its queued MTs stay in the store and go out when the carrier comes back.
            self.queue.senders.pop(name).stop()
            if self.cluster is not None:
                self.cluster.release(name)
        for name in changed:
            sender = self.queue.senders[name]
            held = self.cluster is not None and self.cluster.may_send(name)
            connector = self._connector(new_carriers[name], start=self.cluster is None)
            if held:
                connector.startService()
            sender.rebind(self._sending_config(new_carriers[name]), connector)
        for name in added:
            sender = self._sender(new_carriers[name], self.store)
            self.queue.senders[name] = sender
            if self.cluster is None:
                sender.load_backlog()
        self.carriers = new_carriers
        self.config = new
        if self.context is not None:
            object.__setattr__(self.context, "short_codes", {n: c.short_codes for n, c in new_carriers.items()})
        summary = {"changed": changed, "added": added, "removed": removed, "routes": len(new.routes)}
        log.info("config_applied", **summary)
        return summary

    async def stop(self) -> None:
        """Stop taking MOs, unbind every link (in-flight responses recorded), flush, close."""
        self.accepting = False
        for pause in list(self._retry_waits):
            pause.cancel()  # those MOs are taken again at the next start (or by the jobs node)
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        for loop in self._cluster_loops:
            if loop.running:
                loop.stop()
        if self._listener is not None:
            self._listener.stop()
        if self.queue is not None:
            self.queue.stop()
        loop_ = asyncio.get_running_loop()
        if self.cluster is not None:
            # Unbind before the slots are given up (the cluster service leaves last), so the node
            # taking them over never binds beside us.
            for connector in self.connectors.values():
                if connector.running:
                    await connector.stopService().asFuture(loop_)
        if self.running:
            await self.stopService().asFuture(loop_)
        self._take_arrived()  # a turn's arrivals not yet taken: answered like any other
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.queue is not None:
            await self.queue.drain_writes()
        if self.cluster is not None:
            await self.cluster.engine.close()
        if self.store is not None:
            await self.store.close()
        log.info("gateway_stopped")

    def _admin_service(self, handlers: Mapping[str, Any]) -> "AdminService | None":
        """The admin HTTP API serving every feature's routes; started with the gateway's services."""
        if not self.config.admin.enabled:
            return None
        from smsgw.admin.server import build_admin_service

        routes = [
            route
            for feature in self.features
            if feature.admin_routes is not None
            for route in feature.admin_routes(self.context, handlers)
        ]
        from smsgw.admin.operator import OperatorApi

        operator = OperatorApi(self)  # status, routes, carriers, messages, reload, audit, /metrics, /
        routes.extend(operator.routes())
        operator.sampler.setServiceParent(self)
        service = build_admin_service(self.config.admin, self.context, routes, reactor=self.reactor)
        service.setServiceParent(self)
        return service

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- MO path ----------------------------------------------------------------------

    def _deliver_callback(self, carrier: CarrierConfig) -> Callable[[Pdu], Deferred]:
        def on_deliver(pdu: Pdu) -> Deferred:
            answered: Deferred[int] = Deferred()
            arrived = self._arrived
            arrived.append((carrier, pdu, answered))
            if len(arrived) == 1:
                # call_soon runs after every read callback of this loop iteration: the batch
                # holds all that arrived in the turn, on every link.
                asyncio.get_running_loop().call_soon(self._take_arrived)
            return answered

        return on_deliver

    def _take_arrived(self) -> None:
        if self._arrived:
            batch, self._arrived = self._arrived, []
            self._spawn(self._deliver_batch(batch))

    async def _deliver_batch(self, batch: list[tuple[CarrierConfig, Pdu, Deferred]]) -> None:
        """One reactor turn's deliver_sm PDUs: each MO and receipt its own write in one group
        (one future), each answered the moment the group is committed, then the MOs processed
        as a batch.  A PDU that cannot be read is answered at once; USSD and parts of long MOs
        go the per-message way."""
        store = self.store
        if not self.accepting or store is None:
            for _, _, answered in batch:
                answered.callback(c.ESME_RX_T_APPN)  # shutting down: the carrier keeps it and redelivers
            return
        now = self.clock.seconds()
        ops: list[Callable[[Any], Any]] = []
        staged: list[tuple[CarrierConfig, Deferred, str | None]] = []  # msisdn of an MO, None for a receipt
        for carrier, pdu, answered in batch:
            try:
                read = self._read_arrival(carrier, pdu, now)
            except Exception:
                answered.errback(Failure())  # the session logs it and answers ESME_RX_T_APPN
                continue
            if read is None:
                self._spawn(self._deliver(carrier, pdu, answered))
            elif type(read) is int:
                answered.callback(read)
            else:
                assert isinstance(read, tuple)
                ops.append(read[1])
                staged.append((carrier, answered, read[0]))
        if not ops:
            return
        try:
            outcomes = await store.write_group(ops)
        except asyncio.CancelledError:
            for _, answered, _ in staged:
                answered.errback(Failure())
            raise
        except Exception as exc:
            for carrier, answered, _ in staged:
                if isinstance(exc, StoreUnavailable):
                    answered.callback(self._not_stored(carrier, exc))
                else:
                    answered.errback(Failure(exc))
            return
        inbounds: list[Inbound] = []
        for (carrier, answered, msisdn), (ok, value) in zip(staged, outcomes):
            if not ok:
                if isinstance(value, StoreUnavailable):
                    answered.callback(self._not_stored(carrier, value))
                else:
                    answered.errback(Failure(value))
                continue
            if msisdn is not None:
                inbound, duplicate = value
                self._mo_stored(carrier, msisdn, inbound, duplicate)
                if inbound is not None and not duplicate:
                    inbounds.append(inbound)
            answered.callback(c.ESME_ROK)
        if inbounds:
            await self._process_batch(inbounds)

    def _read_arrival(
        self, carrier: CarrierConfig, pdu: Pdu, now: float
    ) -> int | tuple[str | None, Callable[[Any], Any]] | None:
        """What a deliver_sm asks of the store: (the MO's msisdn, or None for a receipt; the write
        that stores it), a status to answer at once, or None for the per-message path."""
        assert self.store is not None
        params = pdu.params
        if dlr.is_receipt(params.get("esm_class", 0)):
            receipt = dlr.parse_receipt(params.get("short_message", b""), pdu.tlvs)
            if receipt is None:
                log.warning("receipt_unreadable", carrier=carrier.name)
                return c.ESME_ROK  # asking for it again would bring the same unreadable bytes
            self.counters["dlr"] += 1
            self.carrier_counters[carrier.name, "dlr"] += 1
            smsc_id = dlr.normalise_message_id(receipt.message_id, carrier.receipt_id_format)
            return None, self.store.receipt_op(NewReceipt(
                carrier.name, smsc_id, receipt.state, receipt.error, receipt.final, receipt.message_id, now,
            ))
        if c.TLV_USSD_SERVICE_OP in pdu.tlvs:
            return None
        mo = self._read_mo(carrier, pdu, now)
        if type(mo) is int:
            return mo
        assert isinstance(mo, tuple)
        new_mo, concat = mo
        if concat is not None:
            return None
        assert isinstance(new_mo, NewMo)
        return new_mo.msisdn, self.store.accept_mo_op(new_mo)

    def _not_stored(self, carrier: CarrierConfig, exc: Exception) -> int:
        self.counters["mo_rejected"] += 1
        self.carrier_counters[carrier.name, "mo_rejected"] += 1
        log.error("mo_not_stored", carrier=carrier.name, error=str(exc))
        return c.ESME_RX_T_APPN

    async def _deliver(self, carrier: CarrierConfig, pdu: Pdu, answered: Deferred) -> None:
        """One deliver_sm on its own (USSD, a part of a long MO): store it, answer the SMSC the
        moment it is committed, then process the MO it completed in the same task."""
        try:
            status, inbound = await self._accept(carrier, pdu)
        except asyncio.CancelledError:
            answered.errback(Failure())
            raise
        except Exception:
            answered.errback(Failure())  # the session logs it and answers ESME_RX_T_APPN
            return
        answered.callback(status)
        if inbound is not None:
            await self._process(inbound)

    async def _accept(self, carrier: CarrierConfig, pdu: Pdu) -> tuple[int, Inbound | None]:
        """Store one deliver_sm/data_sm: the deliver_sm_resp status, and the MO to process if it
        completed one."""
        if not self.accepting or self.store is None:
            return c.ESME_RX_T_APPN, None  # shutting down: the carrier keeps it and redelivers
        params = pdu.params
        esm_class = params.get("esm_class", 0)
        try:
            if dlr.is_receipt(esm_class):
                return await self._accept_receipt(carrier, pdu), None
            if c.TLV_USSD_SERVICE_OP in pdu.tlvs:
                return await self._accept_ussd(carrier, pdu)
            return await self._accept_mo(carrier, pdu)
        except StoreUnavailable as exc:
            return self._not_stored(carrier, exc), None

    async def _accept_receipt(self, carrier: CarrierConfig, pdu: Pdu) -> int:
        receipt = dlr.parse_receipt(pdu.params.get("short_message", b""), pdu.tlvs)
        if receipt is None:
            log.warning("receipt_unreadable", carrier=carrier.name)
            return c.ESME_ROK  # asking for it again would bring the same unreadable bytes
        smsc_id = dlr.normalise_message_id(receipt.message_id, carrier.receipt_id_format)
        self.counters["dlr"] += 1
        self.carrier_counters[carrier.name, "dlr"] += 1
        assert self.store is not None
        await self.store.record_dlr(
            carrier.name, smsc_id, receipt.state, receipt.error, receipt.final,
            receipt.message_id, self.clock.seconds(),
        )
        return c.ESME_ROK

    def _read_mo(
        self, carrier: CarrierConfig, pdu: Pdu, now: float
    ) -> int | tuple[NewMo | NewMoPart, reassembly.ConcatInfo | None]:
        """A deliver_sm read as an MO (pure but for the warning): the MO or part to store, or the
        status that refuses it."""
        params = pdu.params
        msisdn = canonical_msisdn(params.get("source_addr", ""))
        short_code = params.get("destination_addr", "").strip()
        if not msisdn or not short_code:
            return c.ESME_RINVSRCADR if not msisdn else c.ESME_RINVDSTADR
        data_coding = params.get("data_coding", 0)
        payload = params.get("short_message", b"") or pdu.tlvs.get(c.TLV_MESSAGE_PAYLOAD, b"")
        carrier_msg_id = pdu.tlv_cstr(carrier.mo_id_tlv) if carrier.mo_id_tlv is not None else None
        esm_class = params.get("esm_class", 0)
        try:
            concat = reassembly.extract_concat(payload, esm_class, pdu.tlvs)
        except reassembly.MalformedConcat as exc:
            log.warning("mo_concat_malformed", carrier=carrier.name, reason=str(exc))
            return c.ESME_RINVMSGLEN
        if concat is None:
            body = reassembly.message_body(payload, esm_class, pdu.tlvs)
            text = smstext.decode_short_message(body, data_coding, carrier.default_alphabet)
            return NewMo(carrier.name, carrier_msg_id, msisdn, short_code, text, data_coding, now), None
        return NewMoPart(carrier.name, carrier_msg_id, msisdn, short_code, data_coding, now,
                         concat.ref, concat.total, concat.seq, concat.body), concat

    async def _accept_mo(self, carrier: CarrierConfig, pdu: Pdu) -> tuple[int, Inbound | None]:
        assert self.store is not None
        read = self._read_mo(carrier, pdu, self.clock.seconds())
        if type(read) is int:
            return read, None
        assert isinstance(read, tuple)
        mo, concat = read
        if isinstance(mo, NewMo):
            inbound, duplicate = await self.store.accept_mo(mo)
        else:
            alphabet, data_coding = carrier.default_alphabet, mo.data_coding

            def assemble(parts: dict[int, bytes], total: int) -> str | None:
                joined = reassembly.assemble(parts, total)
                return None if joined is None else smstext.decode_short_message(joined, data_coding, alphabet)

            inbound, duplicate = await self.store.accept_mo_part(mo, assemble)
        self._mo_stored(carrier, mo.msisdn, inbound, duplicate)
        if duplicate:
            return c.ESME_ROK, None
        return c.ESME_ROK, inbound  # inbound is None while parts of a long MO are missing

    def _mo_stored(self, carrier: CarrierConfig, msisdn: str, inbound: Inbound | None, duplicate: bool) -> None:
        """Count a committed MO (or part); a redelivery of one stored but never processed here is
        processed now."""
        if duplicate:
            self.counters["mo_duplicate"] += 1
            self.carrier_counters[carrier.name, "mo_duplicate"] += 1
            log.debug("mo_duplicate", carrier=carrier.name, msisdn=mask_msisdn(msisdn))
            if inbound is not None and inbound.id not in self._processing:
                self._spawn(self._resume_if_unfinished(inbound))
            return
        self.counters["mo"] += 1
        self.carrier_counters[carrier.name, "mo_accepted"] += 1
        if inbound is not None:
            log.debug("mo_accepted", carrier=carrier.name, msisdn=mask_msisdn(msisdn), inbound_id=inbound.id,
                      short_code=inbound.short_code)

    async def _sweep_reassembly(self) -> None:
        """Multipart MOs whose missing parts never came: process what arrived, gaps marked."""
        if self.store is None or not self.accepting:
            return
        self.abuse.forget_idle(self.clock.seconds())
        if not self.runs_jobs():
            return  # another node sweeps the parts of the cluster
        cutoff = self.clock.seconds() - self.config.mo_reassembly_timeout_s
        try:
            groups = await self.store.expired_part_groups(cutoff)
        except StoreUnavailable as exc:
            log.error("reassembly_sweep_failed", error=str(exc))
            return
        for key, parts, first in groups:
            carrier = self.carriers.get(first["carrier"])
            alphabet = carrier.default_alphabet if carrier is not None else "gsm7"
            gap = smstext.encode_as(" ... ", first["data_coding"], alphabet)
            joined = reassembly.assemble_partial(parts, first["total"], gap)
            text = smstext.decode_short_message(joined, first["data_coding"], alphabet)
            try:
                inbound = await self.store.accept_partial(key, text, expected_seqs=parts.keys())
            except LookupError:
                continue  # a part arrived meanwhile; the next sweep looks again
            except StoreUnavailable as exc:
                log.error("reassembly_sweep_failed", error=str(exc))
                return
            log.warning("mo_parts_timed_out", carrier=first["carrier"], have=len(parts), total=first["total"])
            self._spawn(self._process(inbound))

    async def _resume_if_unfinished(self, inbound: Inbound) -> None:
        """A redelivery of an MO stored but never processed here: the store committed it although
        the carrier was told it had not (the database went away during COMMIT, so the answer was
        0x64), or it was left by an earlier run.  Process it now, unless another live node owns
        it (that node processes it; if it dies, the jobs node takes it over)."""
        assert self.store is not None
        try:
            state = await self.store.mo_progress(inbound.id)
        except StoreUnavailable:
            return
        if state is None or state[0] or inbound.id in self._processing:
            return
        owner = state[1]
        mine = self.cluster.incarnation if self.cluster is not None else None
        if owner is not None and owner != mine:
            return
        log.warning("mo_resumed_on_redelivery", carrier=inbound.carrier, inbound_id=inbound.id)
        await self._process(inbound)

    async def _process(self, inbound: Inbound) -> None:
        """Run the handler and commit its replies together with 'processed' (exactly once).

        If the store cannot take the commit (the database restarting, say), the MO is processed
        again, from the handler on, once it can (`_retry_until_stored`)."""
        if inbound.channel is Channel.USSD and self.ussd is not None:
            if inbound.id in self._processing:
                return  # already under way here (a redelivery raced its first copy)
            self._processing.add(inbound.id)
            try:
                if not await self._process_ussd(inbound):
                    await self._retry_until_stored(inbound, lambda: self._process_ussd(inbound))
            finally:
                self._processing.discard(inbound.id)
            return
        await self._process_batch([inbound])

    async def _retry_until_stored(self, inbound: Inbound, attempt: Callable[[], Awaitable[bool]]) -> None:
        """Try an MO again, after 0.5 s doubling to 4 s, until the store takes its outcome or the
        node stops: it was acknowledged, so the carrier will not send it again, and with several
        nodes no other node takes over the MO of a live node.  A redo is safe: handlers' state
        changes are idempotent per MO, and the commit of the replies happens at most once.  A
        node that stops meanwhile leaves it to its next start (or to the jobs node, once its
        lease has passed)."""
        delay = PROCESS_RETRY_FIRST_S
        while self.accepting:
            pause = deferLater(self.clock, delay)
            self._retry_waits.add(pause)
            try:
                await pause.asFuture(asyncio.get_running_loop())
            except defer.CancelledError:
                return  # stopping
            finally:
                self._retry_waits.discard(pause)
            if not self.accepting:
                return
            log.warning("mo_processing_retried", carrier=inbound.carrier, inbound_id=inbound.id)
            if await attempt():
                return
            delay = min(delay * 2, PROCESS_RETRY_MAX_S)

    async def _process_again(self, inbound: Inbound, verdict: Verdict) -> None:
        """An SMS MO whose completion the store could not take: tried alone until it can (its
        first try's verdict kept: one MO counts once towards its sender's limits)."""
        try:
            await self._retry_until_stored(inbound, lambda: self._process_once_more(inbound, verdict))
        finally:
            self._processing.discard(inbound.id)

    async def _process_once_more(self, inbound: Inbound, verdict: Verdict) -> bool:
        """One more try; False if the store could not take its outcome.  The earlier try may have
        committed all the same (the connection lost before the commit's answer): then the store
        hands back the replies it stored, to be queued (`complete_mo(again=True)`)."""
        assert self.store is not None
        if verdict is Verdict.ANSWER:
            replies = self._handle_now(inbound)
            if type(replies) is not list:
                replies = await self._handled_later(inbound, replies)
        else:
            replies = await self._unanswered(inbound, verdict)
        now = self.clock.seconds()
        drafts = [self._draft(reply, inbound.id, now) for reply in replies]
        try:
            outbounds = await self.store.complete_mo(inbound.id, drafts, disposition=_DISPOSITION.get(verdict),
                                                     again=True)
        except StoreUnavailable as exc:
            log.error("mo_processing_not_stored", inbound_id=inbound.id, error=str(exc))
            return False
        self._completed(inbound, outbounds, now)
        return True

    def _completed(self, inbound: Inbound, outbounds: Sequence[Outbound], now: float) -> None:
        """An MO's completion committed: count it and queue its replies."""
        assert self.queue is not None
        self.counters["processed"] += 1
        self.metrics.observe_mo_processing(inbound.carrier, max(0.0, now - inbound.received_at))
        if outbounds:
            self.abuse.replied(inbound.msisdn, now, [o.text for o in outbounds])
        for outbound in outbounds:
            self.queue.enqueue(outbound)

    async def _process_batch(self, inbounds: Sequence[Inbound]) -> None:
        """Answer SMS MOs stored together: handlers that answer at once run in turn, those that
        wait (a store read, a service) run concurrently; then every MO's replies are committed
        with its 'processed' mark, each MO its own write of one group, and queued."""
        assert self.store is not None and self.queue is not None
        now = self.clock.seconds()
        taken: list[tuple[Inbound, Verdict]] = []
        answers: list[list[Reply]] = []
        waiting: list[tuple[int, Any]] = []  # (index in taken, coroutine giving the replies)
        for inbound in inbounds:
            if inbound.id in self._processing:
                continue  # already under way here (a redelivery raced its first copy)
            self._processing.add(inbound.id)
            verdict = self.abuse.check(inbound, now)
            if verdict is Verdict.ANSWER:
                replies = self._handle_now(inbound)
                if type(replies) is not list:
                    waiting.append((len(taken), self._handled_later(inbound, replies)))
                    replies = []
            else:
                waiting.append((len(taken), self._unanswered(inbound, verdict)))
                replies = []
            taken.append((inbound, verdict))
            answers.append(replies)
        if not taken:
            return
        retried: set[int] = set()
        try:
            if waiting:
                later = await asyncio.gather(*(coroutine for _, coroutine in waiting))
                for (index, _), replies in zip(waiting, later):
                    answers[index] = replies
            now = self.clock.seconds()
            ops = [
                self.store.complete_mo_op(
                    inbound.id, [self._draft(reply, inbound.id, now) for reply in replies],
                    disposition=_DISPOSITION.get(verdict),
                )
                for (inbound, verdict), replies in zip(taken, answers)
            ]
            try:
                outcomes = await self.store.write_group(ops)
            except StoreUnavailable as exc:
                outcomes = [(False, exc)] * len(ops)
            for (inbound, verdict), (ok, outbounds) in zip(taken, outcomes):
                if ok:
                    self._completed(inbound, outbounds, now)
                elif isinstance(outbounds, StoreUnavailable):
                    # The MO stays 'received' in the store: tried again, alone, until it is stored.
                    log.error("mo_processing_not_stored", inbound_id=inbound.id, error=str(outbounds))
                    retried.add(inbound.id)
                    self._spawn(self._process_again(inbound, verdict))
                else:
                    log.error("mo_processing_failed", inbound_id=inbound.id, error=str(outbounds))
        finally:
            for inbound, _ in taken:
                if inbound.id not in retried:  # _process_again lets go of those
                    self._processing.discard(inbound.id)

    def _handle_now(self, inbound: Inbound) -> Any:
        """Route and run the handler: its replies, or what to await for them; a failing handler
        gets the person an apology."""
        assert self.router is not None
        try:
            handler, request = self.router.route(inbound)
            result = handler.handle(request)
            if inspect.isawaitable(result):
                return result
            return list(result or [])
        except Exception:
            log.exception("handler_failed", carrier=inbound.carrier, inbound_id=inbound.id)
            return [inbound.reply(APOLOGY[detect_lang(inbound.text)])]

    async def _handled_later(self, inbound: Inbound, pending: Any) -> list[Reply]:
        try:
            return list((await pending) or [])
        except Exception:
            log.exception("handler_failed", carrier=inbound.carrier, inbound_id=inbound.id)
            return [inbound.reply(APOLOGY[detect_lang(inbound.text)])]

    async def _unanswered(self, inbound: Inbound, verdict: Verdict) -> list[Reply]:
        """A number the abuse guard keeps from its normal answer: the one polite refusal, and
        what must be done anyway."""
        replies = [inbound.reply(RATE_LIMITED[detect_lang(inbound.text)])] if verdict is Verdict.POLITE_LIMIT else []
        if verdict is not Verdict.IGNORED:
            await self._carry_out(inbound, verdict)
        return replies

    async def _carry_out(self, inbound: Inbound, verdict: Verdict) -> None:
        """A number we do not answer (muted, over its limit) still gets done what moves money or a
        booking: the handler says which requests those are (`must_carry_out`); its reply is dropped.
        A handler's state changes are idempotent per inbound id, so a redo after a crash is safe."""
        assert self.router is not None
        try:
            handler, request = self.router.route(inbound)
            must = getattr(handler, "must_carry_out", None)
            if must is None or not must(request):
                return
            result = handler.handle(request)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("handler_failed", carrier=inbound.carrier, inbound_id=inbound.id)
            return
        self.counters["carried_out_unanswered"] += 1
        log.info("mo_carried_out_unanswered", carrier=inbound.carrier, msisdn=mask_msisdn(inbound.msisdn),
                 inbound_id=inbound.id, verdict=verdict.value)

    # -- USSD (smsgw/ussd/channel.py: variants, sessions, timeouts; the screen commits with the
    # -- session step there, so here the MO is only marked processed) --------------------------

    async def _accept_ussd(self, carrier: CarrierConfig, pdu: Pdu) -> tuple[int, Inbound | None]:
        assert self.ussd is not None
        status, inbound = await self.ussd.accept(carrier, pdu, self.clock.seconds())
        if inbound is not None:
            self.counters["mo"] += 1
            self.carrier_counters[carrier.name, "mo_accepted"] += 1
        return status, inbound

    async def _process_ussd(self, inbound: Inbound) -> bool:
        assert self.ussd is not None and self.store is not None
        try:
            await self.ussd.process(inbound)
            await self.store.complete_mo(inbound.id, [])
        except StoreUnavailable as exc:
            # The MO stays 'received' and _process takes it again; the session step makes a
            # replay harmless (smsgw/ussd/sessions.py).
            log.error("mo_processing_not_stored", inbound_id=inbound.id, error=str(exc))
            return False
        except Exception:
            log.exception("ussd_processing_failed", carrier=inbound.carrier, inbound_id=inbound.id)
            return True
        self.counters["processed"] += 1
        waited = max(0.0, self.clock.seconds() - inbound.received_at)
        self.metrics.observe_mo_processing(inbound.carrier, waited)
        return True

    def _bound_since(self, carrier: str) -> float | None:
        connector = self.connectors.get(carrier)
        if connector is not None and connector.transmitter() is not None:
            return connector.bound_since
        if self.cluster is not None:
            # Another node holds the bind (the timeouts run on the jobs node): since its lease on
            # the slot, as the last heartbeat saw it.
            held = [b["acquired_at"] for b in self.cluster.view.binds if b["carrier"] == carrier and b["held"]]
            return min(held) if held else None
        return None

    def _mt_result(self, carrier: str, outbound: Any, result: str) -> None:
        if result == "sent":
            waited = max(0.0, self.clock.seconds() - outbound.created_at)
            self.metrics.observe_mt_queue_time(carrier, outbound.channel, waited)

    def _draft(self, reply: Reply, inbound_id: int | None, now: float, kind: str = "reply") -> NewMt:
        carrier = self.carriers.get(reply.carrier)
        validity = carrier.validity_s if carrier is not None else 86400
        return NewMt(
            carrier=reply.carrier, msisdn=reply.msisdn, short_code=reply.short_code, text=reply.text,
            created_at=now, expires_at=now + validity, channel=reply.channel.value,
            session_id=reply.session_id, end_session=reply.end_session, inbound_id=inbound_id, kind=kind,
        )

    async def send(self, reply: Reply, kind: str = "notice") -> int:
        """Queue an MT that answers no MO (notices, reminders); returns its id once stored."""
        assert self.store is not None and self.queue is not None
        outbound = await self.store.enqueue_mt(self._draft(reply, None, self.clock.seconds(), kind))
        self.queue.enqueue(outbound)
        return outbound.id


__all__ = ["Gateway", "Channel", "SessionEvent"]
