"""The gateway: carrier links in, store, router and handlers, outbound queue out.

The MO path is: deliver_sm → decode → (reassemble) → commit to the store → answer
deliver_sm_resp 0 → route → handler → commit replies with the MO marked processed →
outbound queue.  Only the commit decides whether an MO was accepted: if the store cannot
write, the carrier gets ESME_RX_T_APPN and redelivers, and an MO acknowledged before a
crash is found unprocessed in the store at start-up and processed then.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
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
from smsgw.router import Router
from smsgw.smpp import constants as c
from smsgw.smpp.connector import CarrierConnector
from smsgw.smpp.pdu import Pdu
from smsgw.store import NewMo, NewMoPart, NewMt, Store, StoreUnavailable
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
        self._sweeper: LoopingCall | None = None
        self.counters: dict[str, int] = {"mo": 0, "mo_duplicate": 0, "mo_rejected": 0, "dlr": 0, "processed": 0,
                                         "carried_out_unanswered": 0}
        self.carrier_counters: Counter[tuple[str, str]] = Counter()
        self.abuse = AbuseGuard(config.abuse)
        self.admin: AdminService | None = None  # the admin HTTP API, when enabled in config
        # Route changes made through the admin API, laid over the config's routes (smsgw/admin/state.py).
        self.route_overrides = RouteOverrides()
        self.metrics = GatewayMetrics()
        self.metrics.attach(self)

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self.store = await Store.open(
            cfg.store_path, clock=self.clock.seconds, mo_dedupe_window=cfg.mo_dedupe_window_s,
            file_group=cfg.file_group,
            components=[USSD_SESSIONS, OPERATOR_SCHEMA, *(f.schema for f in self.features if f.schema is not None)],
        )
        try:
            await self._start_on(self.store)
        except BaseException:
            # A feature's config error, say: close the store, or its thread keeps the process alive.
            await self.store.close()
            raise

    async def _start_on(self, store: Store) -> None:
        cfg = self.config
        senders: dict[str, CarrierSender] = {}
        for name, carrier in self.carriers.items():
            connector = self._connector(carrier)
            senders[name] = CarrierSender(carrier, connector, store, self.clock, on_result=self._mt_result)
        self.queue = OutboundQueue(senders)
        self.context = ServiceContext(
            store=store, clock=self.service_clock, send=self.send, enqueue=self.queue.enqueue,
            # Validity is counted by the clock the queue expires by, not by business time.
            new_mt=lambda reply, kind: self._draft(reply, None, self.clock.seconds(), kind),
            config_dir=cfg.config_dir,
            short_codes=cfg.short_codes,
        )
        handlers = {name: factory(self.context) for f in self.features for name, factory in f.handlers.items()}
        self.route_overrides = await RouteOverrides.load(store)
        self.router = Router(self.route_overrides.apply(cfg.routes), handlers)
        for feature in self.features:
            if feature.services is not None:
                for service in feature.services(self.context, handlers):
                    service.setServiceParent(self)
        self.admin = self._admin_service(handlers)
        # USSD dialogues: the app is the handler a feature registers as "ussd" (none: "not offered").
        self.ussd = UssdChannel(store, self.clock, lambda: self.carriers, self.queue.enqueue,
                                find_app(handlers), bound_since=self._bound_since)
        self.ussd.setServiceParent(self)
        self.traffic = TrafficLog(self)  # per-message events are at debug: their counts at info
        self.traffic.setServiceParent(self)
        backlog = (await store.counts()).get("mt_queued", 0)
        for sender in senders.values():
            sender.load_backlog()
        unprocessed = await store.unprocessed_mos()
        for inbound in unprocessed:
            self._spawn(self._process(inbound))
        self.accepting = True
        self.started_at = self.clock.seconds()
        self._sweeper = LoopingCall(lambda: Deferred.fromFuture(asyncio.ensure_future(self._sweep_reassembly())))
        self._sweeper.clock = self.clock
        self._sweeper.start(max(1.0, cfg.mo_reassembly_timeout_s / 4), now=False)
        log.info("gateway_started", carriers=sorted(self.carriers), resumed_mts=backlog,
                 resumed_mos=len(unprocessed), store=cfg.store_path)
        self.startService()

    def _connector(self, carrier: CarrierConfig) -> CarrierConnector:
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
            stopped = self.connectors.pop(name).disownServiceParent()
            if stopped is not None:  # None when the gateway itself is not running
                await stopped.asFuture(asyncio.get_running_loop())
        for name in removed:
            # Its queued MTs stay in the store and go out when the carrier comes back.
            self.queue.senders.pop(name).stop()
        for name in changed:
            sender = self.queue.senders[name]
            connector = self._connector(new_carriers[name])
            sender.rebind(new_carriers[name], connector)
        for name in added:
            carrier = new_carriers[name]
            sender = CarrierSender(carrier, self._connector(carrier), self.store, self.clock, on_result=self._mt_result)
            self.queue.senders[name] = sender
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
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        if self.queue is not None:
            self.queue.stop()
        if self.running:
            await self.stopService().asFuture(asyncio.get_running_loop())
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.queue is not None:
            await self.queue.drain_writes()
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
            self._spawn(self._deliver(carrier, pdu, answered))
            return answered

        return on_deliver

    async def _deliver(self, carrier: CarrierConfig, pdu: Pdu, answered: Deferred) -> None:
        """One task per deliver_sm: store it, answer the SMSC the moment it is committed (firing
        the session's Deferred directly, no Future adapted to a Deferred), then process the MO it
        completed in the same task rather than a second one."""
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
            self.counters["mo_rejected"] += 1
            self.carrier_counters[carrier.name, "mo_rejected"] += 1
            log.error("mo_not_stored", carrier=carrier.name, error=str(exc))
            return c.ESME_RX_T_APPN, None

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

    async def _accept_mo(self, carrier: CarrierConfig, pdu: Pdu) -> tuple[int, Inbound | None]:
        assert self.store is not None
        params = pdu.params
        msisdn = canonical_msisdn(params.get("source_addr", ""))
        short_code = params.get("destination_addr", "").strip()
        if not msisdn or not short_code:
            return (c.ESME_RINVSRCADR if not msisdn else c.ESME_RINVDSTADR), None
        data_coding = params.get("data_coding", 0)
        payload = params.get("short_message", b"") or pdu.tlvs.get(c.TLV_MESSAGE_PAYLOAD, b"")
        carrier_msg_id = pdu.tlv_cstr(carrier.mo_id_tlv) if carrier.mo_id_tlv is not None else None
        now = self.clock.seconds()
        alphabet = carrier.default_alphabet
        try:
            concat = reassembly.extract_concat(payload, params.get("esm_class", 0), pdu.tlvs)
        except reassembly.MalformedConcat as exc:
            log.warning("mo_concat_malformed", carrier=carrier.name, reason=str(exc))
            return c.ESME_RINVMSGLEN, None
        if concat is None:
            body = reassembly.message_body(payload, params.get("esm_class", 0), pdu.tlvs)
            text = smstext.decode_short_message(body, data_coding, alphabet)
            inbound, duplicate = await self.store.accept_mo(
                NewMo(carrier.name, carrier_msg_id, msisdn, short_code, text, data_coding, now)
            )
        else:
            def assemble(parts: dict[int, bytes], total: int) -> str | None:
                joined = reassembly.assemble(parts, total)
                return None if joined is None else smstext.decode_short_message(joined, data_coding, alphabet)

            inbound, duplicate = await self.store.accept_mo_part(
                NewMoPart(carrier.name, carrier_msg_id, msisdn, short_code, data_coding, now,
                          concat.ref, concat.total, concat.seq, concat.body),
                assemble,
            )
        if duplicate:
            self.counters["mo_duplicate"] += 1
            self.carrier_counters[carrier.name, "mo_duplicate"] += 1
            log.debug("mo_duplicate", carrier=carrier.name, msisdn=mask_msisdn(msisdn))
            return c.ESME_ROK, None
        self.counters["mo"] += 1
        self.carrier_counters[carrier.name, "mo_accepted"] += 1
        if inbound is not None:
            log.debug("mo_accepted", carrier=carrier.name, msisdn=mask_msisdn(msisdn), inbound_id=inbound.id,
                      short_code=short_code)
        return c.ESME_ROK, inbound  # inbound is None while parts of a long MO are missing

    async def _sweep_reassembly(self) -> None:
        """Multipart MOs whose missing parts never came: process what arrived, gaps marked."""
        if self.store is None or not self.accepting:
            return
        self.abuse.forget_idle(self.clock.seconds())
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

    async def _process(self, inbound: Inbound) -> None:
        """Run the handler and commit its replies together with 'processed' (exactly once)."""
        assert self.router is not None and self.store is not None and self.queue is not None
        if inbound.channel is Channel.USSD and self.ussd is not None:
            await self._process_ussd(inbound)
            return
        verdict = self.abuse.check(inbound, self.clock.seconds())
        replies: list[Reply] = []
        if verdict is Verdict.ANSWER:
            replies = await self._handle(inbound)
        else:
            if verdict is Verdict.POLITE_LIMIT:
                replies = [inbound.reply(RATE_LIMITED[detect_lang(inbound.text)])]
            if verdict is not Verdict.IGNORED:
                await self._carry_out(inbound, verdict)
        now = self.clock.seconds()
        drafts = [self._draft(reply, inbound.id, now) for reply in replies]
        try:
            outbounds = await self.store.complete_mo(inbound.id, drafts, disposition=_DISPOSITION.get(verdict))
        except StoreUnavailable as exc:
            # The MO stays 'received' in the store and is processed again at the next start.
            log.error("mo_processing_not_stored", inbound_id=inbound.id, error=str(exc))
            return
        self.counters["processed"] += 1
        self.metrics.mo_processing.labels(inbound.carrier).observe(max(0.0, now - inbound.received_at))
        if outbounds:
            self.abuse.replied(inbound.msisdn, now, [o.text for o in outbounds])
        for outbound in outbounds:
            self.queue.enqueue(outbound)

    async def _handle(self, inbound: Inbound) -> list[Reply]:
        """Route and run the handler; a failing handler gets the person an apology."""
        assert self.router is not None
        try:
            handler, request = self.router.route(inbound)
            result = handler.handle(request)
            if inspect.isawaitable(result):
                result = await result
            return list(result or [])
        except Exception:
            log.exception("handler_failed", carrier=inbound.carrier, inbound_id=inbound.id)
            return [inbound.reply(APOLOGY[detect_lang(inbound.text)])]

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

    async def _process_ussd(self, inbound: Inbound) -> None:
        assert self.ussd is not None and self.store is not None
        try:
            await self.ussd.process(inbound)
            await self.store.complete_mo(inbound.id, [])
        except StoreUnavailable as exc:
            # The MO stays 'received' and is taken again at the next start; the session step makes
            # a replay harmless (smsgw/ussd/sessions.py).
            log.error("mo_processing_not_stored", inbound_id=inbound.id, error=str(exc))
            return
        except Exception:
            log.exception("ussd_processing_failed", carrier=inbound.carrier, inbound_id=inbound.id)
            return
        self.counters["processed"] += 1
        waited = max(0.0, self.clock.seconds() - inbound.received_at)
        self.metrics.mo_processing.labels(inbound.carrier).observe(waited)

    def _bound_since(self, carrier: str) -> float | None:
        connector = self.connectors.get(carrier)
        if connector is None or connector.transmitter() is None:
            return None
        return connector.bound_since

    def _mt_result(self, carrier: str, outbound: Any, result: str) -> None:
        if result == "sent":
            waited = max(0.0, self.clock.seconds() - outbound.created_at)
            self.metrics.mt_queue_time.labels(carrier, outbound.channel).observe(waited)

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
