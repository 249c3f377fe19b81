"""The durable, rate-limited outbound queue: stored MTs in, submit_sm PDUs out.

Every MT reaching this module is already a committed row in the store.  One
`CarrierSender` per carrier paces submits by the carrier's TPS (sliding window,
adaptive on ESME_RTHROTTLED) and the session's request window, USSD screens by the
carrier's USSD budget (a token bucket, in a lane of their own), and turns each
submit_sm_resp into a store update.  Nothing here waits on a timer while there is
work it may do: throttles pause the carrier for a fraction of a second, temporary
errors park only the message concerned in a retry heap, and the rest keep flowing.

Delivery semantics from the gateway's side: a part is re-sent only if no
submit_sm_resp 0 was recorded for it, so a restart or a dropped bind resends only what
the carrier never acknowledged.  The one window where a duplicate is possible is a
crash (or link loss) after the carrier accepted a part and before its response reached
the store; that is the documented at-least-once window.  Link loss includes the links
we drop ourselves: an SMSC that stops answering (no submit_sm_resp, no enquire_link_resp)
may still take what it had read, once it recovers, after we resent it on a new bind.
Those parts are logged as `submit_outcome_unknown`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from smsgw import text as smstext
from smsgw.dlr import normalise_message_id
from smsgw.log import get_logger, mask_msisdn
from smsgw.ratelimit import AdaptiveRate, TokenBucket
from smsgw.smpp import constants as c
from smsgw.smpp import smpptime
from smsgw.smpp.pdu import Pdu
from smsgw.smpp.session import ResponseTimeout, SessionClosed

from smsgw.store import StoreUnavailable
from smsgw.ussd.variants import UssdVariant, submit_service_type, submit_tlvs

if TYPE_CHECKING:
    from smsgw.config import CarrierConfig
    from smsgw.smpp.connector import CarrierConnector
    from smsgw.store import Outbound, Store

log = get_logger(__name__)

#: Most MTs a sender holds in memory; beyond that the backlog waits in the store and is paged
#: in as the queue drains, so a huge backlog (a carrier down for hours) costs disk, not RAM.
MEMORY_HIGH_WATER = 5000
REFILL_BATCH = 1000

#: USSD screens (channel "ussd") skip the bulk queue, its paging and its TPS pacing: a person is
#: looking at the handset. They still need a window slot, so bulk traffic leaves this many slots
#: of each session's window free for them (none when the window is 1).
USSD_RESERVED_SLOTS = 1
#: Longest pause of the USSD lane while the USSD gateway keeps refusing screens (ESME_RTHROTTLED).
USSD_THROTTLE_MAX_PAUSE_S = 0.1
USSD_CHANNEL = "ussd"

#: Backoff for temporary submit errors, per message: 1 s, 2 s, 4 s … capped.
RETRY_BASE_S = 1.0
RETRY_MAX_S = 60.0


def retry_delay(attempts: int, rng: random.Random) -> float:
    base = min(RETRY_MAX_S, RETRY_BASE_S * (2 ** max(attempts - 1, 0)))
    return base * (0.8 + 0.4 * rng.random())


@dataclass(slots=True)
class _Job:
    """One MT on its way: its encoded parts and which of them the carrier already took."""

    outbound: "Outbound"
    parts: list[smstext.MessagePart]
    in_flight: set[int] = field(default_factory=set)
    urgent: bool = False  # a USSD screen: its own lane, see USSD_RESERVED_SLOTS
    retry_scheduled: bool = False  # in the retry heap: several parts failing count one attempt
    final: bool = False  # failed or expired: nothing of it is sent or retried any more
    counted: bool = False  # in CarrierSender.held until it is sent whole or ends

    def next_part(self) -> smstext.MessagePart | None:
        sent = self.outbound.parts_sent
        for part in self.parts:
            if part.part_no not in sent and part.part_no not in self.in_flight:
                return part
        return None

    @property
    def done(self) -> bool:
        return len(self.outbound.parts_sent) >= len(self.parts)


@dataclass(slots=True)
class SenderStats:
    submitted: int = 0
    accepted: int = 0
    throttled: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    ussd_submitted: int = 0  # included in `submitted`
    awaiting_late: int = 0  # parts timed out, held until a late answer or until none can come


class CarrierSender:
    """Sends one carrier's queued MTs, honouring TPS, window, retries and validity."""

    def __init__(
        self,
        config: "CarrierConfig",
        connector: "CarrierConnector",
        store: "Store",
        clock: IReactorTime,
        rng: random.Random | None = None,
        on_result: Callable[[str, "Outbound", str], None] | None = None,
        high_water: int = MEMORY_HIGH_WATER,
        refill_batch: int = REFILL_BATCH,
    ) -> None:
        self.config = config
        self.carrier = config.name
        self.connector = connector
        self.store = store
        self.clock = clock
        self.rate = AdaptiveRate(config.tps)
        # The USSD gateway polices its own budget: screens are paced to it, apart from SMS.
        self.ussd_rate = TokenBucket(config.ussd_tps)
        self._ussd_pause = 0.0  # after a USSD throttle; doubles while they keep coming
        self.stats = SenderStats()
        self.paused = False
        #: Several nodes (smsgw/cluster.py): set while this node may not send (its lease could not be
        #: renewed in time, or it holds no bind slot of the carrier).
        self.fenced = False
        #: Several nodes: asked before every submit, at the moment it starts, whether this node's
        #: lease surely still runs (smsgw/cluster.py ClusterMember.check_lease, which fences the
        #: node when not); `fenced` alone is set by a timer, which may run after a pacing timer.
        self.lease_check: Callable[[], bool] | None = None
        #: Several nodes: how queued MTs are taken from the store, `claims(carrier, limit, held_at_most)`: only
        #: those this node claims (no other node sends them); None: every queued MT (one node).
        self.claims: Callable[[str, int, int], Any] | None = None
        #: Several nodes: MTs asked for by a claim still under way (they count against the room
        #: this node has, so a claim and MTs claimed as they are stored never overfill it).
        self.claiming = 0
        #: When set (tests, benchmarks), the time of every submit_sm started (not USSD screens).
        self.sent_at: list[float] | None = None
        self._rng = rng or random.Random()
        self._ready: deque[_Job] = deque()
        # USSD lane: served before `_ready`, never paged out, paced by `ussd_rate`, not the SMS TPS.
        self._urgent: deque[_Job] = deque()
        self._urgent_ids: dict[int, float] = {}  # USSD MTs held since start → their expiry
        self._ussd = UssdVariant.of(config)
        self._retry: list[tuple[float, int, _Job]] = []
        self._tiebreak = itertools.count()
        self._wakeup: IDelayedCall | None = None
        self._waiting_window = False
        self._stopping = False
        self._pending_writes: set[asyncio.Future[Any]] = set()
        self._on_result = on_result
        self.high_water = high_water
        self.refill_batch = refill_batch
        # Paging: every queued MT with id > _loaded_max_id is in the store only.
        self._spilled = False
        self._loaded_max_id = 0
        self._refilling = False
        self._missed = False
        self._held_ids: set[int] = set()  # the MTs of the jobs counted in `held`
        connector.add_state_listener(self._link_changed)

    # -- queue management -------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._ready) + len(self._retry) + len(self._urgent)

    @property
    def held(self) -> int:
        """MTs in memory, waiting or with a part the carrier has not answered yet (a throttled
        part comes back to wait): what the high-water mark bounds.  The size of one set, so the
        store's thread deciding a claim (smsgw/gateway.py) never reads it half-updated."""
        return len(self._held_ids)

    def oldest_created_at(self) -> float | None:
        times = [job.outbound.created_at for job in self._ready]
        times.extend(job.outbound.created_at for job in self._urgent)
        times.extend(job.outbound.created_at for _, _, job in self._retry)
        return min(times) if times else None

    def load_backlog(self) -> None:
        """At start-up: page this carrier's queued MTs in from the store, oldest first."""
        self._spilled = True
        self._maybe_refill()

    def enqueue(self, outbound: "Outbound") -> None:
        if outbound.channel == USSD_CHANNEL:
            self._hold_urgent(outbound)
            self.pump()
            return
        if self.claims is None and self._spilled and outbound.id > self._loaded_max_id:
            # Older MTs are still waiting in the store: this one queues behind them there.
            # (Several nodes: an MT handed here is claimed by this node, so it is held whatever.)
            self._missed = True
            self._maybe_refill()
            return
        self._hold(outbound)
        if self.held >= self.high_water:
            self._spilled = True
        self.pump()

    def _hold(self, outbound: "Outbound") -> None:
        self._loaded_max_id = max(self._loaded_max_id, outbound.id)
        if outbound.id in self._held_ids:
            return  # handed over twice (an MO's replies queued again from the store): one send
        try:
            parts = smstext.split_text(
                outbound.text, self.config.default_alphabet, self.config.long_message, outbound.concat_ref
            )
        except ValueError as exc:
            self._final(_Job(outbound, []), "failed", f"cannot encode: {exc}")
            return
        self._ready.append(self._count(_Job(outbound, parts)))

    def _hold_urgent(self, outbound: "Outbound") -> None:
        """Put a USSD screen in its lane, as ONE submit_sm (a screen is never split)."""
        now = self.clock.seconds()
        held = self._urgent_ids
        # Forget screens past their expiry: the store may page one in again (its 'sent' state not
        # committed yet), and the pump then drops it as expired instead of sending it twice.
        while held and next(iter(held.values())) < now - 1.0:
            del held[next(iter(held))]
        if outbound.id in held or outbound.id in self._held_ids:
            return  # its job is still here (in flight): one screen, one send
        held[outbound.id] = outbound.expires_at
        try:
            data_coding, payload = smstext.encode_text(outbound.text, self.config.default_alphabet)
            if len(payload) > 254:
                raise ValueError(f"{len(payload)} octets do not fit one submit_sm")
        except ValueError as exc:
            self._final(_Job(outbound, [], urgent=True), "failed", f"cannot encode USSD screen: {exc}")
            return
        self._urgent.append(self._count(_Job(outbound, [smstext.MessagePart(data_coding, payload, 0, (), 1, 1)], urgent=True)))

    def _count(self, job: _Job) -> _Job:
        job.counted = True
        self._held_ids.add(job.outbound.id)
        return job

    def _uncount(self, job: _Job) -> None:
        if job.counted:
            job.counted = False
            self._held_ids.discard(job.outbound.id)

    def _lane(self, job: _Job) -> deque[_Job]:
        return self._urgent if job.urgent else self._ready

    def _maybe_refill(self) -> None:
        if self._spilled and not self._refilling and not self._stopping and self.held < self.high_water // 2:
            self._refilling = True
            self._missed = False
            self._write(self._refill())

    async def _refill(self) -> None:
        if self.claims is not None:
            await self._refill_claimed()
            return
        try:
            batch = await self.store.queued_mts(self.carrier, limit=self.refill_batch, after_id=self._loaded_max_id)
        except StoreUnavailable as exc:
            log.error("backlog_refill_failed", carrier=self.carrier, error=str(exc))
            self._schedule(1.0)  # the pump tries again
            return
        finally:
            self._refilling = False
        for outbound in batch:
            if outbound.channel == USSD_CHANNEL:
                # A screen left from before a restart: its lane (dropped there if it expired).
                self._loaded_max_id = max(self._loaded_max_id, outbound.id)
                self._hold_urgent(outbound)
            elif outbound.id > self._loaded_max_id:
                self._hold(outbound)
        if len(batch) < self.refill_batch and not self._missed:
            self._spilled = False
        self.pump()
        self._maybe_refill()

    async def _refill_claimed(self) -> None:
        """Several nodes: claim what nobody alive has claimed; every MT claimed is ours to send."""
        assert self.claims is not None
        try:
            room = min(self.refill_batch, self.high_water - self.held)
            if self.fenced or room <= 0:
                return
            self.claiming = room
            batch = await self.claims(self.carrier, room, self.high_water)
        except Exception as exc:  # noqa: BLE001 - the claim poll tries again
            log.error("backlog_claim_failed", carrier=self.carrier, error=f"{type(exc).__name__}: {exc}")
            return
        finally:
            self._refilling = False
            self.claiming = 0
        for outbound in batch:
            if outbound.channel == USSD_CHANNEL:
                self._hold_urgent(outbound)
            else:
                self._hold(outbound)
        # Claims are polled (smsgw/gateway.py); a full batch means more may be waiting now.
        self._spilled = len(batch) >= self.refill_batch
        self.pump()
        if self._spilled:
            self._maybe_refill()

    def rebind(self, config: "CarrierConfig", connector: "CarrierConnector") -> None:
        """A reloaded carrier: new settings and a new link; the queue is kept."""
        self.connector.remove_state_listener(self._link_changed)
        self.config = config
        self.connector = connector
        self._ussd = UssdVariant.of(config)
        self.rate.set_ceiling(config.tps)
        self.ussd_rate.set_rate(config.ussd_tps)
        self._waiting_window = False
        connector.add_state_listener(self._link_changed)
        self.pump()

    def fence(self) -> None:
        """Stop starting submits at once (the responses of those in flight are still recorded)."""
        self.fenced = True

    def unfence(self) -> None:
        self.fenced = False
        self.pump()

    def forget_all(self) -> None:
        """Drop every MT held here: they are no longer this node's to send (its claims passed);
        the store keeps them for whichever node claims them.  In-flight parts are still recorded."""
        for job in [*self._ready, *self._urgent, *(j for _, _, j in self._retry)]:
            job.final = True  # a retry or late answer of it sends nothing more
            self._uncount(job)
        self._ready.clear()
        self._urgent.clear()
        self._urgent_ids.clear()
        self._retry.clear()
        self._loaded_max_id = 0
        self._spilled = self.claims is not None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.pump()

    def stop(self) -> None:
        """Stop starting new submits; what is in flight still gets its response recorded."""
        self._stopping = True
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None

    async def drain_writes(self) -> None:
        while self._pending_writes:
            await asyncio.gather(*list(self._pending_writes), return_exceptions=True)

    # -- the pump ---------------------------------------------------------------------

    def _link_changed(self, _connector: Any) -> None:
        self.pump()

    def _schedule(self, delay: float) -> None:
        if self._wakeup is not None and self._wakeup.active():
            if self._wakeup.getTime() <= self.clock.seconds() + delay:
                return
            self._wakeup.cancel()
        self._wakeup = self.clock.callLater(max(delay, 0.0), self._woken)

    def _woken(self) -> None:
        self._wakeup = None
        self.pump()

    def pump(self) -> None:
        """Send as much as TPS and window allow right now; arrange to be called again."""
        if self._stopping or self.paused or self.fenced:
            return
        self._maybe_refill()
        now = self.clock.seconds()
        retry = self._retry
        while retry and retry[0][0] <= now:
            _, _, job = heapq.heappop(retry)
            job.retry_scheduled = False
            if job.done or job.final:
                continue  # every part taken meanwhile, or the MT ended: nothing left to resend
            self._lane(job).appendleft(job)
        if retry:
            self._schedule(retry[0][0] - now)
        session = self.connector.transmitter()
        if session is None:
            return  # the connector's state listener calls us again once bound
        if self._urgent and not self._pump_urgent(session, now):
            return
        ready = self._ready
        reserved = USSD_RESERVED_SLOTS if session.window > USSD_RESERVED_SLOTS else 0
        while ready:
            free = session.window_free
            if free <= 0:
                if not self._waiting_window:
                    self._waiting_window = True
                    session.when_window_free().addBoth(self._window_freed)
                return
            if free <= reserved:
                return  # the last slot(s) are the USSD lane's; our next response pumps again
            delay = self.rate.delay(now)
            if delay > 0:
                self._schedule(delay)
                return
            job = ready[0]
            if job.final:
                ready.popleft()
                continue
            if now >= job.outbound.expires_at:
                ready.popleft()
                self._final(job, "expired", "validity period passed before the carrier accepted it")
                continue
            if self.lease_check is not None and not self.lease_check():
                return  # fenced now: the node's lease may have passed, the bind is another's
            part = job.next_part()
            if part is None:
                # every remaining part is in flight; the job waits for their responses
                ready.popleft()
                if job.done:
                    self._uncount(job)  # resumed with every part already taken
                continue
            job.in_flight.add(part.part_no)
            self.rate.record(now)
            self.stats.submitted += 1
            if self.sent_at is not None:
                self.sent_at.append(now)
            d = session.send_request(self._submit_pdu(job.outbound, part, now))
            d.addBoth(self._submit_done, job, part)
            if job.next_part() is None:
                ready.popleft()

    def _pump_urgent(self, session: Any, now: float) -> bool:
        """Send USSD screens first, paced by the USSD budget only; False when the window is full."""
        urgent = self._urgent
        while urgent:
            if session.window_free <= 0:
                if not self._waiting_window:
                    self._waiting_window = True
                    session.when_window_free().addBoth(self._window_freed)
                return False
            if urgent[0].final:
                urgent.popleft()
                continue
            delay = self.ussd_rate.delay(now)
            if delay > 0:
                self._schedule(delay)
                return True  # the SMS budget is a separate one: bulk may still go
            if self.lease_check is not None and not self.lease_check():
                return False  # fenced now (see pump)
            job = urgent.popleft()
            if now >= job.outbound.expires_at:
                self._final(job, "expired", "the USSD session timed out before the screen could be sent")
                continue
            part = job.parts[0]
            job.in_flight.add(part.part_no)
            self.stats.submitted += 1
            self.stats.ussd_submitted += 1
            self.ussd_rate.take(now)
            d = session.send_request(self._submit_pdu(job.outbound, part, now))
            d.addBoth(self._submit_done, job, part)
        return True

    def _window_freed(self, result: Any) -> Any:
        self._waiting_window = False
        self.pump()
        return None

    def _submit_pdu(self, outbound: "Outbound", part: smstext.MessagePart, now: float) -> Pdu:
        cfg = self.config
        params = {
            "service_type": "",
            "source_addr_ton": cfg.source_addr_ton,
            "source_addr_npi": cfg.source_addr_npi,
            "source_addr": outbound.short_code,
            "dest_addr_ton": cfg.dest_addr_ton,
            "dest_addr_npi": cfg.dest_addr_npi,
            "destination_addr": outbound.msisdn,
            "esm_class": part.esm_class,
            "registered_delivery": cfg.registered_delivery,
            "data_coding": part.data_coding,
            "short_message": part.short_message,
        }
        if outbound.channel == USSD_CHANNEL:
            # A screen gets no delivery receipt; its TLVs continue or end the carrier's dialogue,
            # echoing the session marker (and service_type) the handset's input came with.
            params["registered_delivery"] = 0
            params["service_type"] = submit_service_type(outbound.session_id)
            return Pdu(c.SUBMIT_SM, 0, c.ESME_ROK, params,
                       submit_tlvs(self._ussd, outbound.session_id, outbound.end_session))
        # What is left of the MT's validity, so the SMSC stops trying when we would have.
        params["validity_period"] = smpptime.validity_period(cfg.validity_format, outbound.expires_at, now)
        return Pdu(c.SUBMIT_SM, 0, c.ESME_ROK, params, dict(part.tlvs))

    # -- responses --------------------------------------------------------------------

    def _submit_done(self, result: Pdu | Failure, job: _Job, part: smstext.MessagePart) -> None:
        job.in_flight.discard(part.part_no)
        now = self.clock.seconds()
        if job.final:
            # The MT already ended (another part refused for good, or it expired) while this part
            # was out: record it if the carrier took it (the handset has it), and nothing more.
            taken = not isinstance(result, Failure) and result.status == c.ESME_ROK
            if taken and result.command_id == c.SUBMIT_SM_RESP:
                self._accepted(job, part, result, now)
            return
        if isinstance(result, Failure):
            if result.check(SessionClosed):
                # Unanswered when the link went: resend on the next bind, no attempt counted (a
                # dropped bind is not the message's fault). If it had been written, the carrier
                # may have taken it: that is the at-least-once window, so say so.
                if getattr(result.value, "sent", False):
                    log.warning("submit_outcome_unknown", carrier=self.carrier, outbound_id=job.outbound.id,
                                part=part.part_no)
                self._requeue_front(job)
            elif result.check(ResponseTimeout):
                # Outcome unknown, but the link is up, so the SMSC holds the submit and may still
                # answer it: a resend now would be a duplicate once it does. The part waits,
                # out of the window, for that answer, or for the grace to pass or the link to go.
                job.in_flight.add(part.part_no)
                self.stats.awaiting_late += 1
                result.value.late.addCallback(self._late_outcome, job, part)
            else:
                log.error("submit_failed_unexpectedly", carrier=self.carrier, error=repr(result.value))
                self._temporary(job, now, f"internal error: {result.getErrorMessage()}")
            self.pump()
            return
        status = result.status
        if status == c.ESME_ROK and result.command_id == c.SUBMIT_SM_RESP:
            self._accepted(job, part, result, now)
        elif status == c.ESME_RTHROTTLED and job.urgent:
            # The USSD gateway's budget, not the SMS one: the screen goes first again once the
            # emptied USSD bucket lets one through, 1/ussd_tps later, longer while refusals keep
            # coming (a storm); bulk untouched.
            self.stats.throttled += 1
            self._ussd_pause = min(USSD_THROTTLE_MAX_PAUSE_S, max(1.0 / self.ussd_rate.rate, self._ussd_pause * 2))
            self.ussd_rate.empty(now, self._ussd_pause)
            self._urgent.appendleft(job)
        elif status == c.ESME_RTHROTTLED:
            self.stats.throttled += 1
            pause = self.rate.throttled(now)
            log.warning("carrier_throttled", carrier=self.carrier, pause_s=round(pause, 3),
                        rate=round(self.rate.current, 1))
            self._requeue_front(job)
        elif status in c.TEMPORARY_SUBMIT_STATUSES or result.command_id == c.GENERIC_NACK and status in (
            c.ESME_RSYSERR, c.ESME_RX_T_APPN
        ):
            self._temporary(job, now, c.status_name(status))
        else:
            self._final(job, "failed", f"carrier refused: {c.status_name(status)}")
        self.pump()

    def _late_outcome(self, pdu: Pdu | None, job: _Job, part: smstext.MessagePart) -> None:
        """What became of a submit that timed out: its late answer, taken as if on time, or None
        (no answer can come any more): then, and only then, it is tried again."""
        self.stats.awaiting_late -= 1
        if self._stopping:
            return  # resent from the store after the restart, as any unanswered part
        if pdu is not None:
            log.info("late_submit_response", carrier=self.carrier, outbound_id=job.outbound.id, part=part.part_no,
                     status=c.status_name(pdu.status))
            self._submit_done(pdu, job, part)
            return
        job.in_flight.discard(part.part_no)
        if job.final:
            return
        log.warning("submit_outcome_unknown", carrier=self.carrier, outbound_id=job.outbound.id, part=part.part_no)
        self._temporary(job, self.clock.seconds(), "no submit_sm_resp, not even late")
        self.pump()

    def _accepted(self, job: _Job, part: smstext.MessagePart, pdu: Pdu, now: float) -> None:
        self.stats.accepted += 1
        if job.urgent:
            self._ussd_pause = 0.0
        else:
            self.rate.succeeded()
        raw_id = str(pdu.params.get("message_id", ""))
        smsc_id = normalise_message_id(raw_id, self.config.resp_id_format)
        job.outbound.parts_sent[part.part_no] = smsc_id
        if job.done:
            self._uncount(job)
        self._write(self.store.record_part_sent(job.outbound.id, part.part_no, len(job.parts), smsc_id, raw_id, now))
        if job.done and not job.final and self._on_result is not None:
            self._on_result(self.carrier, job.outbound, "sent")

    def _requeue_front(self, job: _Job) -> None:
        lane = self._lane(job)
        if job not in lane:
            lane.appendleft(job)

    def _temporary(self, job: _Job, now: float, reason: str) -> None:
        if job.retry_scheduled:
            return  # another part of the same MT already scheduled its retry
        outbound = job.outbound
        outbound.attempts += 1
        self.stats.retried += 1
        delay = retry_delay(outbound.attempts, self._rng)
        if now + delay >= outbound.expires_at:
            self._final(job, "expired", f"validity period passed while retrying ({reason})")
            return
        log.info("submit_retry", carrier=self.carrier, outbound_id=outbound.id, attempts=outbound.attempts,
                 reason=reason, delay_s=round(delay, 2))
        self._write(self.store.record_attempt(outbound.id, outbound.attempts, reason))
        lane = self._lane(job)
        if job in lane:
            lane.remove(job)
        job.retry_scheduled = True
        heapq.heappush(self._retry, (now + delay, next(self._tiebreak), job))
        self._schedule(delay)

    def _final(self, job: _Job, state: str, reason: str) -> None:
        if job.final:
            return
        job.final = True  # a part still in a lane or in flight is skipped or only recorded
        self._uncount(job)
        outbound = job.outbound
        if state == "expired":
            self.stats.expired += 1
        else:
            self.stats.failed += 1
        log.warning("mt_" + state, carrier=self.carrier, outbound_id=outbound.id,
                    msisdn=mask_msisdn(outbound.msisdn), reason=reason)
        self._write(self.store.record_final(outbound.id, state, reason, self.clock.seconds()))
        if self._on_result is not None:
            self._on_result(self.carrier, outbound, state)

    def _write(self, coro: Any) -> None:
        """Store updates run concurrently with sending; the store group-commits them."""
        future = asyncio.ensure_future(coro)
        self._pending_writes.add(future)
        future.add_done_callback(self._write_done)

    def _write_done(self, future: "asyncio.Future[Any]") -> None:
        self._pending_writes.discard(future)
        if not future.cancelled() and future.exception() is not None:
            # The send already happened; losing this update only risks one resend after a
            # crash (at-least-once), so it is logged, not fatal.
            log.error("store_update_failed", carrier=self.carrier, error=repr(future.exception()))


class OutboundQueue:
    """The gateway's outbound side: one sender per carrier, fed from the store."""

    def __init__(self, senders: dict[str, CarrierSender]) -> None:
        self.senders = senders
        #: Several nodes: whether an MT just stored is this node's to send (it claimed it); others
        #: are left in the store for the node that claims them.  None: every MT (one node).
        self.accepts: Callable[["Outbound"], bool] | None = None

    def enqueue(self, outbound: "Outbound") -> None:
        if self.accepts is not None and not self.accepts(outbound):
            return
        sender = self.senders.get(outbound.carrier)
        if sender is None:
            log.error("mt_for_unknown_carrier", carrier=outbound.carrier, outbound_id=outbound.id)
            return
        sender.enqueue(outbound)

    def stop(self) -> None:
        for sender in self.senders.values():
            sender.stop()

    async def drain_writes(self) -> None:
        await asyncio.gather(*(s.drain_writes() for s in self.senders.values()))

    def depth(self) -> int:
        return sum(s.depth for s in self.senders.values())

