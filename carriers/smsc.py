"""A simulated SMSC for one carrier: real TCP, real SMPP PDUs, the carrier's quirks and faults.

`Smsc` is the carrier's state (accounts, message ids, the MO queue, what each handset received);
`SmscProtocol` is one ESME connection. The codec and framing are the gateway's own
(`smsgw.smpp.pdu`, `smsgw.smpp.framing`) because the wire format is not in doubt; everything a
carrier could do differently comes from its `CarrierProfile`, and everything it could do wrong
from its `FaultPlan`, read afresh on every PDU so tests can change it mid-session.

Time comes from the injected `clock`: the throttle bucket, receipt and redelivery delays and the
SMSC's own enquire_link all run on it, so a test with a `task.Clock` decides when a second has
passed. Waiting helpers (`wait_handset`, `next_pdu`) time out on `wait_clock`, real time by
default, because what they wait for is network traffic, not simulated time.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from carriers import alphabet, validity
from carriers.faults import DLR_STATES, FaultPlan, garbage_pdu
from carriers.handset import Handset, MalformedMessage, split_submit
from carriers.profiles import CarrierProfile
from carriers.records import DlrRecord, HandsetMessage, MoRecord, MtRecord
from carriers.ussd import UssdCentre, UssdDialogue
from smsgw.log import get_logger, mask_msisdn
from smsgw.smpp import constants as c
from smsgw.smpp.framing import SmppFraming
from smsgw.smpp.pdu import Pdu, PduError, decode, encode, generic_nack, peek_header

log = get_logger("carriers.smsc")

#: International MSISDN without '+': what a handset number looks like on these networks.
_MSISDN_RE = re.compile(r"[0-9]{8,15}")
#: Ids count from the SMSC's start time in milliseconds after this moment (2026-01-01 UTC), so a
#: simulator started again does not repeat an id of an earlier run (as a real SMSC's ids do not
#: repeat from one day to the next) unless that run gave out more than 1,000 ids per second of its
#: life; and Friendi's ten hex digits last until 2060.
_ID_EPOCH_S = 1_767_225_600
#: Receipts carry the SMSC's local time; Oman is UTC+4 all year.
_SMSC_TZ = timezone(timedelta(hours=4))
_BIND_MODE = {c.BIND_TRANSMITTER: "tx", c.BIND_RECEIVER: "rx", c.BIND_TRANSCEIVER: "trx"}
MO_ADDRESSING = (1, 1, 3, 0)  # handset: international/E.164; short code: network-specific


#: How often a gated (hung or slow) connection looks at its fault plan and releases bytes.
READ_GATE_TICK_S = 0.05

#: Called with (command_id, status) of the answer to a raw PDU, or (None, None) if the link went first.
RawAnswer = Callable[[int | None, int | None], None]


class HandsetTimeout(TimeoutError):
    """`wait_handset` gave up; `received` holds what did arrive."""

    def __init__(self, message: str, received: list[HandsetMessage]) -> None:
        super().__init__(message)
        self.received = received


class TokenBucket:
    """`rate` per second with a burst of one second's worth: how SMSCs word a TPS contract."""

    def __init__(self, rate: float, clock: IReactorTime) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self._clock = clock
        self._last = clock.seconds()

    def take(self) -> bool:
        now = self._clock.seconds()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(eq=False)
class _Delivery:
    """One deliver_sm the SMSC owes an ESME: an MO part or a receipt. Retried until acked."""

    kind: str  # "mo" | "dlr" | "ussd"
    params: dict[str, Any]
    tlvs: dict[int, bytes]
    mo: MoRecord | None = None
    part: int = 0
    dlr: DlrRecord | None = None
    ussd: UssdDialogue | None = None  # a handset's USSD input (carriers/ussd.py)


class SmscProtocol(SmppFraming):
    """One ESME connection to the SMSC."""

    def __init__(self, smsc: Smsc) -> None:
        self.smsc = smsc
        self.link = 0  # the SMSC's number for this connection, given when it connects
        self.mode: str | None = None  # "tx" | "rx" | "trx" once bound
        self.unbinding = False
        self.peer = ""
        #: deliver_sm written and not yet answered: sequence → (delivery, resp timer).
        self.outstanding: dict[int, tuple[_Delivery, IDelayedCall | None]] = {}
        self.submits_answered = 0
        self.closed: Deferred[None] = Deferred()
        self._sequence = 0
        self._timers: set[IDelayedCall] = set()
        self._enquire_loop: LoopingCall | None = None
        self._enquire_pending: int | None = None
        #: Bytes read from the ESME but not yet handed to the framing (hung or slow-reader fault).
        self._gate_buffer = bytearray()
        self._gated = False
        #: Raw PDUs written by a fuzzer (`send_raw_expecting`), by sequence, awaiting an answer.
        self.raw_waiters: dict[int, RawAnswer] = {}

    # -- connection ---------------------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        # No Nagle, as on an SMSC serving USSD: a deliver_sm written while our last
        # submit_sm_resp is still unacknowledged would otherwise wait out a delayed ACK (~40 ms).
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        self.smsc._session_connected(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._enquire_loop is not None and self._enquire_loop.running:
            self._enquire_loop.stop()
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()
        outstanding, self.outstanding = self.outstanding, {}
        for _, timer in outstanding.values():
            if timer is not None and timer.active():
                timer.cancel()
        waiters, self.raw_waiters = self.raw_waiters, {}
        for on_answer in waiters.values():
            on_answer(None, None)
        # Whatever was written but not answered is redelivered later, as after any lost link.
        self.smsc._session_lost(self, [item for item, _ in outstanding.values()])
        self.closed.callback(None)

    @property
    def can_receive(self) -> bool:
        return self.mode in ("rx", "trx") and not self.unbinding and not self._closing

    def close(self) -> Deferred[None]:
        """Drop the link (after what is already written); fires once it is gone."""
        if not self.closed.called and self.transport is not None:
            self._closing = True
            self.transport.loseConnection()
        return self.closed

    def abort(self) -> None:
        """Drop the link at once, as a network failure would, unwritten data and all."""
        self._closing = True
        self.transport.abortConnection()

    def next_sequence(self) -> int:
        self._sequence = self._sequence % c.MAX_SEQUENCE + 1
        return self._sequence

    def send_pdu(self, pdu: Pdu) -> None:
        if self.transport is not None and not self.closed.called:
            self.transport.write(encode(pdu))

    def send_raw(self, raw: bytes) -> None:
        if self.transport is not None and not self.closed.called:
            self.transport.write(raw)

    def send_raw_expecting(self, raw: bytes, sequence: int, on_answer: RawAnswer) -> None:
        """Write a raw (possibly malformed) PDU; `on_answer` gets the header of the ESME's PDU with
        the response bit and this sequence, or (None, None) if the link goes first."""
        self.raw_waiters[sequence] = on_answer
        self.send_raw(raw)

    def _later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        def fire() -> None:
            self._timers.discard(call)
            fn(*args)

        call = self.smsc.clock.callLater(delay, fire)
        self._timers.add(call)

    def _respond(self, request: Pdu, status: int, params: dict[str, Any] | None = None,
                 tlvs: dict[int, bytes] | None = None) -> None:
        self.send_pdu(Pdu(request.command_id | c.RESPONSE_BIT, request.sequence, status, params or {}, tlvs or {}))

    # -- input --------------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        faults = self.smsc.faults
        if self._gated or faults.hung or faults.read_bytes_per_s:
            self._gate_in(data)
        else:
            super().dataReceived(data)

    def _gate_in(self, data: bytes) -> None:
        """Hold what was read and stop reading, so TCP pushes back on the ESME (hung / slow SMSC)."""
        self._gate_buffer += data
        if not self._gated:
            self._gated = True
            self.transport.pauseProducing()
            self._later(READ_GATE_TICK_S, self._gate_tick)

    def _gate_tick(self) -> None:
        if self.closed.called:
            return
        faults = self.smsc.faults
        buffer = self._gate_buffer
        if faults.hung:
            budget = 0
        elif faults.read_bytes_per_s:
            budget = max(1, int(faults.read_bytes_per_s * READ_GATE_TICK_S))
        else:
            budget = len(buffer)
        if budget:
            chunk = bytes(buffer[:budget])
            del buffer[:budget]
            super().dataReceived(chunk)
        if self.closed.called or self._closing:
            return
        if buffer or faults.hung:
            self._later(READ_GATE_TICK_S, self._gate_tick)
        else:
            # Drained: read again; the next read is gated afresh while the fault lasts.
            self._gated = False
            self.transport.resumeProducing()

    def pdu_received(self, raw: bytes) -> None:
        if self.raw_waiters and len(raw) >= c.HEADER_LENGTH:
            _, command_id, status, sequence = peek_header(raw)
            if command_id & c.RESPONSE_BIT:
                on_answer = self.raw_waiters.pop(sequence, None)
                if on_answer is not None:
                    on_answer(command_id, status)
                    return
        try:
            pdu = decode(raw)
        except PduError as exc:
            self._undecodable(raw, exc)
            return
        try:
            self._dispatch(pdu)
        finally:
            # Recorded after handling, so whoever awaits it sees the SMSC's state afterwards.
            self.smsc._record_pdu(pdu)

    def _dispatch(self, pdu: Pdu) -> None:
        command_id = pdu.command_id
        if command_id & c.RESPONSE_BIT:
            self._response(pdu)
            return
        handler = self._HANDLERS.get(command_id)
        if handler is None:
            # Valid SMPP this SMSC does not offer (data_sm, submit_multi, replace_sm...) or nonsense.
            self.send_raw(generic_nack(pdu.sequence, c.ESME_RINVCMDID))
            return
        if self.mode is None and command_id not in c.BIND_COMMANDS and command_id != c.ENQUIRE_LINK:
            self._respond(pdu, c.ESME_RINVBNDSTS)
            return
        handler(self, pdu)

    def _undecodable(self, raw: bytes, exc: PduError) -> None:
        self.smsc._anomaly(f"undecodable {c.command_name(exc.command_id)} from ESME: {exc.reason}")
        if exc.command_id & c.RESPONSE_BIT:
            # A resp we cannot read still answers its request; count it by the header's status.
            _, command_id, status, sequence = peek_header(raw)
            self._response(Pdu(command_id, sequence, status or c.ESME_RSYSERR))
        elif exc.status == c.ESME_RINVCMDID:
            self.send_raw(generic_nack(exc.sequence, exc.status))
        else:
            self.send_pdu(Pdu(exc.command_id | c.RESPONSE_BIT, exc.sequence, exc.status))

    def _on_bind(self, pdu: Pdu) -> None:
        smsc, faults = self.smsc, self.smsc.faults
        if self.mode is not None:
            self._respond(pdu, c.ESME_RALYBND)
            return
        system_id = pdu.get("system_id", "")
        if faults.bind_error is not None:
            status = faults.bind_error
        elif not smsc.profile.accepts_bind(pdu.command_id):
            status = smsc.profile.refused_bind_status
        elif system_id != smsc.system_id:
            status = c.ESME_RINVSYSID
        elif pdu.get("password", "") != smsc.password:
            status = c.ESME_RINVPASWD
        elif smsc.max_binds is not None and smsc.binds_in_use(_BIND_MODE[pdu.command_id]) >= smsc.max_binds:
            status = c.ESME_RBINDFAIL
            smsc.counters["binds_over_limit"] += 1
        else:
            status = c.ESME_ROK
        if status != c.ESME_ROK:
            smsc.counters["bind_failures"] += 1
            log.info("bind_refused", carrier=smsc.name, command=pdu.name, status=c.status_name(status), peer=self.peer)
            self._respond(pdu, status)
            # Like most SMSCs, hang up on a failed bind: the ESME must reconnect to try again.
            self.close()
            return
        self.mode = _BIND_MODE[pdu.command_id]
        smsc.counters["binds"] += 1
        smsc.peak_binds = max(smsc.peak_binds, smsc.binds_in_use(self.mode))
        log.info("esme_bound", carrier=smsc.name, mode=self.mode, peer=self.peer)
        resp = Pdu(
            pdu.command_id | c.RESPONSE_BIT,
            pdu.sequence,
            c.ESME_ROK,
            {"system_id": smsc.profile.smsc_system_id},
            {c.TLV_SC_INTERFACE_VERSION: bytes([c.SMPP_VERSION_34])},
        )
        if faults.deliver_before_bind_resp:
            smsc._pump()
            self.send_pdu(resp)
        else:
            self.send_pdu(resp)
            smsc._pump()
        if faults.garbage_after_bind:
            self.send_raw(garbage_pdu(faults.garbage_after_bind, self.next_sequence()))
        interval = smsc.profile.enquire_link_s
        if interval > 0:
            self._enquire_loop = LoopingCall(self._enquire_tick)
            self._enquire_loop.clock = smsc.clock
            self._enquire_loop.start(interval, now=False)

    def _enquire_tick(self) -> None:
        if self._enquire_pending is not None:
            log.info("esme_silent", carrier=self.smsc.name, peer=self.peer, reason="no enquire_link_resp")
            self.close()
            return
        self._enquire_pending = self.next_sequence()
        self.send_pdu(Pdu(c.ENQUIRE_LINK, self._enquire_pending))

    def _on_enquire_link(self, pdu: Pdu) -> None:
        self._respond(pdu, c.ESME_ROK)

    def _on_unbind(self, pdu: Pdu) -> None:
        log.info("esme_unbind", carrier=self.smsc.name, peer=self.peer)
        self.unbinding = True
        self._respond(pdu, c.ESME_ROK)
        self.close()

    def send_unbind(self) -> None:
        """SMSC-initiated unbind: no more deliveries here; the link goes when unbind_resp comes."""
        self.unbinding = True
        self.send_pdu(Pdu(c.UNBIND, self.next_sequence()))

    def _on_submit_sm(self, pdu: Pdu) -> None:
        smsc, faults = self.smsc, self.smsc.faults
        if self.mode == "rx":
            self._respond(pdu, c.ESME_RINVBNDSTS)
            return
        # A USSD screen goes to the carrier's USSD gateway (carriers/ussd.py): its own budget.
        ussd = c.TLV_USSD_SERVICE_OP in pdu.tlvs
        if ussd:
            smsc.counters["ussd_submits"] += 1
        else:
            smsc.counters["submits"] += 1
            smsc.record_submit_time(smsc.clock.seconds())
        limit = faults.drop_link_after_submits
        if limit is not None and self.submits_answered >= limit:
            self._fault_drop()
            return
        if faults.no_response_to_submit:
            smsc.counters["unanswered"] += 1
            return
        if faults.generic_nack_on_submit:
            self.send_raw(generic_nack(0, c.ESME_RSYSERR))
            return
        if faults.unbind_on_submit:
            self.send_unbind()
            return
        nth = faults.error_every_nth_submit
        if faults.throttle_storm:
            status = c.ESME_RTHROTTLED
        elif nth is not None and smsc.counters["submits"] % nth[0] == 0:
            status = nth[1]
        elif faults.submit_error_rate and smsc._rng.random() < faults.submit_error_rate:
            status = smsc._rng.choice(faults.submit_error_statuses)
            smsc.counters["injected_errors"] += 1
        elif not (smsc.ussd.bucket if ussd else smsc.bucket).take():
            status = c.ESME_RTHROTTLED
        else:
            status = c.ESME_ROK
        if status == c.ESME_RTHROTTLED:
            smsc.counters["throttled"] += 1
        mt: MtRecord | None = None
        message_id: str | None = None
        dialogue: UssdDialogue | None = None
        if status == c.ESME_ROK and ussd:
            status, message_id, dialogue = smsc.ussd.accept_submit(pdu)
        elif status == c.ESME_ROK:
            status, mt = smsc._accept_submit(pdu, self.link)
            message_id = mt.message_id if mt is not None else None
        if status != c.ESME_ROK:
            smsc.counters["rejected"] += 1
        resp = Pdu(c.SUBMIT_SM_RESP, pdu.sequence, status, {"message_id": message_id} if message_id else {})
        if faults.response_delay_s > 0:
            self._later(faults.response_delay_s, self._write_submit_resp, resp)
        else:
            self._write_submit_resp(resp)
        if mt is not None:
            smsc._after_accept(mt)
        if dialogue is not None:
            smsc.ussd.screen_shown(dialogue)

    def _write_submit_resp(self, resp: Pdu) -> None:
        if self.closed.called:
            return
        self.send_pdu(resp)
        self.submits_answered += 1
        limit = self.smsc.faults.drop_link_after_submits
        if limit is not None and self.submits_answered >= limit:
            self._fault_drop()

    def _fault_drop(self) -> None:
        log.info("fault_drop_link", carrier=self.smsc.name, peer=self.peer, answered=self.submits_answered)
        self.close()

    def _on_query_sm(self, pdu: Pdu) -> None:
        smsc = self.smsc
        number = smsc.profile.parse_message_id(pdu.get("message_id", ""))
        mt = smsc._mt_by_number.get(number) if number is not None else None
        if mt is None:
            self._respond(pdu, 0x00000067)  # ESME_RQUERYFAIL
            return
        dlr = smsc._dlr_by_number.get(mt.number)
        state = DLR_STATES[dlr.state] if dlr is not None else DLR_STATES["ENROUTE"]
        final = _smpp_time(dlr.created_at) if dlr is not None else ""
        self._respond(pdu, c.ESME_ROK, {"message_id": pdu.get("message_id", ""), "final_date": final,
                                        "message_state": state, "error_code": 0})

    _HANDLERS: dict[int, Callable[[SmscProtocol, Pdu], None]] = {
        c.BIND_TRANSMITTER: _on_bind,
        c.BIND_RECEIVER: _on_bind,
        c.BIND_TRANSCEIVER: _on_bind,
        c.ENQUIRE_LINK: _on_enquire_link,
        c.UNBIND: _on_unbind,
        c.SUBMIT_SM: _on_submit_sm,
        c.QUERY_SM: _on_query_sm,
    }

    def _response(self, pdu: Pdu) -> None:
        command_id = pdu.command_id
        if command_id in (c.DELIVER_SM_RESP, c.GENERIC_NACK):
            entry = self.outstanding.pop(pdu.sequence, None)
            if entry is not None:
                item, timer = entry
                if timer is not None and timer.active():
                    timer.cancel()
                self.smsc._delivery_result(item, pdu.status)
                return
            if command_id == c.GENERIC_NACK:
                self.smsc.counters["nacks_received"] += 1
                return
            self.smsc._anomaly(f"deliver_sm_resp for unknown sequence {pdu.sequence} (late or invented)")
        elif command_id == c.ENQUIRE_LINK_RESP:
            if pdu.sequence == self._enquire_pending:
                self._enquire_pending = None
        elif command_id == c.UNBIND_RESP:
            self.close()
        else:
            self.smsc._anomaly(f"unexpected {pdu.name} from ESME")

    # -- output -------------------------------------------------------------------------------

    def send_delivery(self, item: _Delivery) -> None:
        sequence = self.next_sequence()
        timeout = self.smsc.profile.deliver_resp_timeout_s
        timer = self.smsc.clock.callLater(timeout, self._delivery_timeout, sequence) if timeout > 0 else None
        self.outstanding[sequence] = (item, timer)
        self.send_pdu(Pdu(c.DELIVER_SM, sequence, c.ESME_ROK, item.params, item.tlvs))
        self.smsc._delivery_written(item)

    def _delivery_timeout(self, sequence: int) -> None:
        entry = self.outstanding.pop(sequence, None)
        if entry is not None:
            log.info("deliver_sm_timeout", carrier=self.smsc.name, peer=self.peer, sequence=sequence)
            self.smsc._delivery_result(entry[0], None)


class _SmscFactory(ServerFactory):
    noisy = False  # the SMSC logs connections itself, with the carrier's name

    def __init__(self, smsc: Smsc) -> None:
        self.smsc = smsc

    def buildProtocol(self, addr: Any) -> SmscProtocol:
        protocol = SmscProtocol(self.smsc)
        protocol.factory = self
        return protocol


class Smsc:
    """One carrier's SMSC: its account, its message store, its handsets.

    `tps` overrides the profile's throttle limit. `clock` drives simulated time (throttle bucket,
    receipt and redelivery delays, enquire_link, response delays); `wait_clock` only bounds the
    waits of `wait_handset` / `next_pdu`. `name` defaults to the profile's (two simulators of
    one profile need different names). `record_pdus` keeps every PDU received for `next_pdu`;
    leave it off under load. `seed` makes `split_order="shuffle"` repeatable (None: random).
    """

    def __init__(
        self,
        profile: CarrierProfile,
        *,
        system_id: str,
        password: str,
        tps: float | None = None,
        clock: IReactorTime | None = None,
        faults: FaultPlan | None = None,
        name: str | None = None,
        wait_clock: IReactorTime | None = None,
        record_pdus: bool = False,
        seed: int | None = 0,
        max_binds: int | None = None,
    ) -> None:
        if clock is None or wait_clock is None:
            from twisted.internet import reactor

            clock = clock or reactor  # type: ignore[assignment]
            wait_clock = wait_clock or reactor  # type: ignore[assignment]
        self.profile = profile
        self.name = name or profile.name
        self.system_id = system_id
        self.password = password
        self.tps = tps if tps is not None else profile.tps_limit
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self.wait_clock: IReactorTime = wait_clock  # type: ignore[assignment]
        self.faults = faults if faults is not None else FaultPlan()
        self.bucket = TokenBucket(self.tps, self.clock)
        #: The account's bind limit per direction (transmit, receive): a bind beyond it is refused
        #: ESME_RBINDFAIL, as carriers do; `peak_binds` is the most ever bound at once.
        self.max_binds = max_binds
        self.peak_binds = 0
        self.factory = _SmscFactory(self)
        self.port: IListeningPort | None = None
        self.sessions: list[SmscProtocol] = []
        self._links = 0
        #: ESME connections that ended: their number → when (records() reports them).
        self.links_lost: dict[int, float] = {}
        self.handset = Handset(profile.default_alphabet)
        #: Handsets' USSD dialogues (carriers/ussd.py), with the USSD gateway's own submit budget.
        self.ussd = UssdCentre(self, TokenBucket(profile.ussd_tps_limit, self.clock))
        #: Everything accepted / injected / owed, in order, for tests and the control port.
        self.mts: list[MtRecord] = []
        #: When each submit_sm was read, accepted or not: what a carrier's TPS contract measures.
        self.submit_times: list[float] = []
        self._last_second: deque[float] = deque()
        self._peak_per_second = 0
        self.mos: list[MoRecord] = []
        self.dlrs: list[DlrRecord] = []
        self.handset_messages: list[HandsetMessage] = []
        #: Things a handset or a strict SMSC would object to; a clean run leaves this empty.
        self.anomalies: list[str] = []
        self.counters: Counter[str] = Counter()
        self._mt_by_number: dict[int, MtRecord] = {}
        self._dlr_by_number: dict[int, DlrRecord] = {}
        self._mo_by_id: dict[str, MoRecord] = {}
        self._pending: deque[_Delivery] = deque()
        self._timers: set[IDelayedCall] = set()
        self._listeners: dict[str | None, list[Callable[[HandsetMessage], None]]] = {}
        self._received: DeferredQueue[Pdu] | None = DeferredQueue() if record_pdus else None
        #: Handsets out of coverage, and the MTs kept for them (store and forward), oldest first.
        self.switched_off: set[str] = set()
        self._held: dict[str, list[MtRecord]] = {}
        #: Where this run's ids start (see `_first_number`); `restart_counter` goes back to it.
        self._first = _first_number(profile, self.clock, self.faults.ids_from_base)
        self._number = self._first
        self._ref = 0
        self._rng = random.Random(seed)
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------------

    def listen(self, reactor: IReactorTCP | None = None, host: str = "127.0.0.1", port: int = 0) -> Deferred[IListeningPort]:
        """Start accepting ESMEs; the port actually bound is `result.getHost().port`."""
        from twisted.internet.endpoints import TCP4ServerEndpoint

        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor  # type: ignore[assignment]
        d = TCP4ServerEndpoint(reactor, port, interface=host).listen(self.factory)

        def listening(listening_port: IListeningPort) -> IListeningPort:
            self.port = listening_port
            log.info("smsc_listening", carrier=self.name, profile=self.profile.name, host=host,
                     port=listening_port.getHost().port)
            return listening_port

        return d.addCallback(listening)

    def stop(self) -> Deferred[None]:
        """Stop listening, drop every ESME, cancel pending receipts and redeliveries."""
        self._stopped = True
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()
        waits: list[Deferred[Any]] = []
        if self.port is not None:
            waits.append(defer.maybeDeferred(self.port.stopListening))
            self.port = None
        for session in list(self.sessions):
            waits.append(session.close())
        d = defer.gatherResults(waits, consumeErrors=True)
        return d.addCallback(lambda _: None)

    def _later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        if self._stopped:
            return

        def fire() -> None:
            self._timers.discard(call)
            fn(*args)

        call = self.clock.callLater(delay, fire)
        self._timers.add(call)

    def _session_connected(self, session: SmscProtocol) -> None:
        self._links += 1
        session.link = self._links
        self.sessions.append(session)
        log.info("esme_connected", carrier=self.name, peer=session.peer)

    def _session_lost(self, session: SmscProtocol, unanswered: list[_Delivery]) -> None:
        self.links_lost[session.link] = self.clock.seconds()
        if session in self.sessions:
            self.sessions.remove(session)
        log.info("esme_disconnected", carrier=self.name, peer=session.peer, mode=session.mode,
                 unanswered_deliveries=len(unanswered))
        for item in unanswered:
            self._delivery_result(item, None)

    def bound_sessions(self) -> list[SmscProtocol]:
        return [s for s in self.sessions if s.mode is not None]

    def binds_in_use(self, mode: str) -> int:
        """Bound sessions sharing a direction with a bind of `mode` (trx counts as both), the
        most of either direction: what an account's bind limit counts."""
        directions = {"tx": ("tx",), "rx": ("rx",), "trx": ("tx", "rx")}
        counts = [sum(1 for s in self.bound_sessions() if d in directions[s.mode]) for d in directions[mode]]
        return max(counts, default=0)

    def record_submit_time(self, at: float) -> None:
        self.submit_times.append(at)
        window = self._last_second
        window.append(at)
        while window and at - window[0] >= 1.0:
            window.popleft()
        self._peak_per_second = max(self._peak_per_second, len(window))

    def peak_submits_per_second(self) -> int:
        """The most submit_sm read in any one-second window (sliding): what a TPS contract limits."""
        return self._peak_per_second

    # -- MT -----------------------------------------------------------------------------------

    def _next_number(self) -> int:
        self._number += 1
        return self._number

    def restart_counter(self) -> None:
        """Fault: the id counter starts again from where this run's ids began (a counter that lost
        its state), so the next MOs and messages get ids already given out in this run."""
        self._number = self._first
        log.info("smsc_counter_restarted", carrier=self.name)

    def _accept_submit(self, pdu: Pdu, link: int = 0) -> tuple[int, MtRecord | None]:
        """Validate a submit_sm as the carrier would; record it if it is accepted."""
        params = pdu.params
        dest = params.get("destination_addr", "")
        source = params.get("source_addr", "")
        if not _MSISDN_RE.fullmatch(dest):
            return c.ESME_RINVDSTADR, None
        if not source:
            return c.ESME_RINVSRCADR, None
        short_message = params.get("short_message", b"")
        if len(short_message) > self.profile.max_sm_length:
            return c.ESME_RINVMSGLEN, None
        esm_class = params.get("esm_class", 0)
        data_coding = params.get("data_coding", 0)
        try:
            payload, udh_len, concat = split_submit(esm_class, short_message, pdu.tlvs)
        except MalformedMessage as exc:
            self._anomaly(f"submit_sm rejected: {exc}")
            return exc.status, None
        now = self.clock.seconds()
        validity_period = params.get("validity_period", "") or ""
        try:
            expires_at = self._expiry(validity_period, now)
        except validity.InvalidValidity as exc:
            self._anomaly(f"submit_sm rejected: {exc}")
            return c.ESME_RINVEXPIRY, None
        if c.TLV_MESSAGE_PAYLOAD not in pdu.tlvs:
            kind = alphabet.alphabet_of(data_coding, self.profile.default_alphabet)
            if not alphabet.on_air_fits(len(payload), udh_len, kind):
                self._anomaly(f"submit_sm of {len(payload)} {kind} units (+{udh_len} UDH octets) "
                              "exceeds one SMS on the air")
        number = self._next_number()
        mt = MtRecord(
            carrier=self.name,
            sequence=pdu.sequence,
            message_id=self.profile.format_message_id(number),
            number=number,
            source=source,
            dest=dest,
            addressing=(params.get("source_addr_ton", 0), params.get("source_addr_npi", 0),
                        params.get("dest_addr_ton", 0), params.get("dest_addr_npi", 0)),
            data_coding=data_coding,
            esm_class=esm_class,
            registered_delivery=params.get("registered_delivery", 0),
            short_message=short_message,
            tlvs=dict(pdu.tlvs),
            received_at=now,
            payload=payload,
            concat=concat,
            outcome=self.faults.dlr_state,
            link=link,
            validity_period=validity_period,
            expires_at=expires_at,
        )
        self.mts.append(mt)
        self._mt_by_number[number] = mt
        self.counters["accepted"] += 1
        log.debug("mt_accepted", carrier=self.name, message_id=mt.message_id, dest=mask_msisdn(dest),
                  part=None if concat is None else f"{concat.seq}/{concat.total}")
        return c.ESME_ROK, mt

    def _expiry(self, validity_period: str, now: float) -> float:
        """When an MT accepted now stops being tried: its validity_period, the SMSC's default when
        empty, never past the SMSC's longest. Raises InvalidValidity (→ ESME_RINVEXPIRY)."""
        profile = self.profile
        form = validity.form_of(validity_period)
        if form is not None and form not in profile.validity_forms:
            raise validity.InvalidValidity(f"{form} validity_period {validity_period!r}: this SMSC reads "
                                           f"{' and '.join(sorted(profile.validity_forms))} times only")
        expires_at = validity.expiry(validity_period, now)
        if expires_at is None:
            return now + profile.default_validity_s
        if expires_at <= now:
            raise validity.InvalidValidity(f"validity_period {validity_period!r} has already passed")
        return min(expires_at, now + profile.max_validity_s)

    def _after_accept(self, mt: MtRecord) -> None:
        if mt.outcome == "DELIVRD" and mt.dest in self.switched_off:
            # Store and forward: kept until the handset is back, or until its validity ends.
            self._held.setdefault(mt.dest, []).append(mt)
            self.counters["held"] += 1
            if mt.expires_at is not None:
                self._later(max(0.0, mt.expires_at - self.clock.seconds()), self._expire_held, mt)
            return
        self._deliver(mt)

    def _deliver(self, mt: MtRecord) -> None:
        # The receipt is scheduled before listeners hear of the message: a test resumed by
        # wait_handset may advance the clock at once and must find the receipt already due.
        wanted = mt.registered_delivery & 0x03
        if wanted == 1 or (wanted == 2 and mt.outcome != "DELIVRD"):
            self._later(self.profile.dlr_delay_s, self._enqueue_receipt, mt)
        if mt.outcome == "DELIVRD":
            message, anomalies = self.handset.receive(mt)
            for anomaly in anomalies:
                self._anomaly(f"handset {mask_msisdn(mt.dest)}: {anomaly}")
            if message is not None:
                self.handset_messages.append(message)
                self._notify(message)

    def _expire_held(self, mt: MtRecord) -> None:
        held = self._held.get(mt.dest, [])
        if mt not in held:
            return  # delivered meanwhile
        held.remove(mt)
        if not held:
            del self._held[mt.dest]
        mt.outcome = "EXPIRED"
        self.counters["expired"] += 1
        log.info("mt_expired", carrier=self.name, message_id=mt.message_id, dest=mask_msisdn(mt.dest))
        if mt.registered_delivery & 0x03 in (1, 2):
            self._enqueue_receipt(mt)

    # -- handsets out of coverage ----------------------------------------------------------------

    def switch_off(self, msisdn: str) -> None:
        """The handset leaves coverage: MTs to it are kept, each until its validity ends."""
        self.switched_off.add(msisdn)

    def switch_on(self, msisdn: str) -> int:
        """The handset is back: what was kept for it (still valid) is delivered; returns how many."""
        self.switched_off.discard(msisdn)
        held = self._held.pop(msisdn, [])
        for mt in held:
            self._deliver(mt)
        return len(held)

    def held_messages(self, msisdn: str | None = None) -> list[MtRecord]:
        if msisdn is not None:
            return list(self._held.get(msisdn, ()))
        return [mt for mts in self._held.values() for mt in mts]

    def _enqueue_receipt(self, mt: MtRecord) -> None:
        profile = self.profile
        now = self.clock.seconds()
        state = mt.outcome
        delivered = state == "DELIVRD"
        receipt_id = profile.format_receipt_id(mt.number)
        snippet, _ = alphabet.decode(mt.payload, mt.data_coding, profile.default_alphabet)
        snippet = "".join(ch if " " <= ch <= "~" else "." for ch in snippet[:20])
        text = (
            f"id:{receipt_id} sub:001 dlvrd:{'001' if delivered else '000'} "
            f"submit date:{_receipt_time(mt.received_at)} done date:{_receipt_time(now)} "
            f"stat:{state} err:{'000' if delivered else '001'} text:{snippet}"
        )
        tlvs: dict[int, bytes] = {}
        if profile.receipt_style == "tlv_and_text":
            tlvs[c.TLV_RECEIPTED_MESSAGE_ID] = receipt_id.encode("ascii") + b"\x00"
            tlvs[c.TLV_MESSAGE_STATE] = bytes([DLR_STATES[state]])
            if not delivered:
                tlvs[c.TLV_NETWORK_ERROR_CODE] = b"\x03\x00\x01"  # GSM, error 1
        if c.TLV_USER_MESSAGE_REFERENCE in mt.tlvs:
            # SMPP v3.4 5.3.2.17: the receipt echoes the ESME's own reference.
            tlvs[c.TLV_USER_MESSAGE_REFERENCE] = mt.tlvs[c.TLV_USER_MESSAGE_REFERENCE]
        s_ton, s_npi, d_ton, d_npi = mt.addressing
        params = deliver_params(mt.dest, (d_ton, d_npi), mt.source, (s_ton, s_npi),
                                 c.ESM_CLASS_DELIVERY_RECEIPT, c.DC_DEFAULT, text.encode("ascii"))
        record = DlrRecord(mt.message_id, receipt_id, state, mt.dest, now)
        self.dlrs.append(record)
        self._dlr_by_number[mt.number] = record
        self.counters["dlrs"] += 1
        self._enqueue(_Delivery("dlr", params, tlvs, dlr=record))

    # -- MO -----------------------------------------------------------------------------------

    # -- USSD ---------------------------------------------------------------------------------

    def dial(self, msisdn: str, dialled: str) -> UssdDialogue:
        """A handset dials a USSD string ("*141#", "*141*1*1234AB#"); see carriers/ussd.py."""
        return self.ussd.dial(msisdn, dialled)

    def _deliver_ussd(self, dialogue: UssdDialogue, data_coding: int, payload: bytes,
                      tlvs: dict[int, bytes]) -> None:
        # From the handset to the service code; ahead of queued SMS, as the USSD gateway is not
        # the SMS centre's store-and-forward queue.
        params = deliver_params(dialogue.msisdn, MO_ADDRESSING[:2], dialogue.service_code, MO_ADDRESSING[2:], 0,
                                data_coding, payload)
        params["service_type"] = self.profile.ussd_service_type
        self._enqueue(_Delivery("ussd", params, tlvs, ussd=dialogue), front=True)

    def inject_mo(
        self,
        source: str,
        dest: str,
        text: str,
        *,
        data_coding: int | None = None,
        split_order: str | None = None,
        duplicate_parts: bool = False,
        mo_id: str | None = None,
    ) -> str:
        """A handset sends `text` to `dest`; returns the SMSC's id of the MO.

        The text is encoded as the network would (GSM 7-bit in the profile's default alphabet if it
        fits, else UCS2), cut into 153/67-character parts by the profile's long-MO method, and queued
        for the bound receiver sessions. `split_order` ("reverse" | "shuffle") and `duplicate_parts`
        imitate what a real network does to long MOs. Each part carries its own id in the profile's
        mo_id TLV: the mo_id itself for one part, "<mo_id>-<n>" for part n of several, so an ESME that
        drops redeliveries by that id never drops a sibling part.
        """
        profile = self.profile
        encoded = alphabet.encode_for_network(text, profile.default_alphabet, data_coding)
        total = len(encoded.parts)
        if total > 255:
            raise ValueError(f"an MO of {total} parts cannot be concatenated (at most 255)")
        if mo_id is None:
            mo_id = profile.format_message_id(self._next_number())
        part_ids = (mo_id,) if total == 1 else tuple(f"{mo_id}-{n}" for n in range(1, total + 1))
        record = MoRecord(mo_id, source, dest, text, encoded.data_coding, part_ids, self.clock.seconds())
        ref = self._next_ref(profile.mo_long_method) if total > 1 else 0
        items: list[_Delivery] = []
        for n, data in enumerate(encoded.parts, start=1):
            esm_class = 0
            tlvs: dict[int, bytes] = {}
            if total > 1:
                if profile.mo_long_method == "udh":
                    data = bytes((5, 0, 3, ref, total, n)) + data
                    esm_class = c.ESM_CLASS_UDHI
                else:
                    tlvs[c.TLV_SAR_MSG_REF_NUM] = ref.to_bytes(2, "big")
                    tlvs[c.TLV_SAR_TOTAL_SEGMENTS] = bytes([total])
                    tlvs[c.TLV_SAR_SEGMENT_SEQNUM] = bytes([n])
            tlvs[profile.mo_id_tlv] = part_ids[n - 1].encode("ascii") + b"\x00"
            params = deliver_params(source, MO_ADDRESSING[:2], dest, MO_ADDRESSING[2:], esm_class,
                                     encoded.data_coding, data)
            items.append(_Delivery("mo", params, tlvs, mo=record, part=n))
        if split_order == "reverse":
            items.reverse()
        elif split_order == "shuffle":
            self._rng.shuffle(items)
        elif split_order is not None:
            raise ValueError(f"split_order must be None, 'reverse' or 'shuffle', not {split_order!r}")
        if duplicate_parts:
            items = [copy for item in items for copy in (item, _Delivery("mo", item.params, item.tlvs, mo=record,
                                                                         part=item.part))]
        self.mos.append(record)
        self._mo_by_id[mo_id] = record
        self.counters["mos"] += 1
        log.debug("mo_injected", carrier=self.name, mo_id=mo_id, source=mask_msisdn(source), dest=dest, parts=total)
        for item in items:
            self._pending.append(item)
        self._pump()
        return mo_id

    def _next_ref(self, method: str) -> int:
        modulus = 0xFF if method == "udh" else 0xFFFF
        self._ref = self._ref % modulus + 1
        return self._ref

    def mo(self, mo_id: str) -> MoRecord:
        return self._mo_by_id[mo_id]

    # -- delivery queue -----------------------------------------------------------------------

    @property
    def pending_deliveries(self) -> int:
        """deliver_sm waiting for a bound receiver with room in its window."""
        return len(self._pending)

    def _enqueue(self, item: _Delivery, front: bool = False) -> None:
        if front:
            self._pending.appendleft(item)
        else:
            self._pending.append(item)
        self._pump()

    def _pump(self) -> None:
        """Hand queued deliver_sm to receiver sessions, never more than `window` unanswered each."""
        pending = self._pending
        if not pending:
            return
        window = self.profile.window
        receivers = [s for s in self.sessions if s.can_receive]
        while pending and receivers:
            for session in list(receivers):
                if not pending:
                    break
                if len(session.outstanding) >= window:
                    receivers.remove(session)
                    continue
                session.send_delivery(pending.popleft())

    def _delivery_written(self, item: _Delivery) -> None:
        now = self.clock.seconds()
        if item.mo is not None:
            mo = item.mo
            mo.attempts += 1
            if mo.first_written_at is None:
                mo.first_written_at = now
            if mo.complete_written_at is None:
                mo._written_parts.add(item.part)
                if len(mo._written_parts) == mo.parts:
                    mo.complete_written_at = now
            self.counters["mo_deliveries"] += 1
        elif item.dlr is not None:
            item.dlr.attempts += 1
            self.counters["dlr_deliveries"] += 1
        elif item.ussd is not None:
            self.ussd.input_written(item.ussd)
            self.counters["ussd_deliveries"] += 1

    def _delivery_result(self, item: _Delivery, status: int | None) -> None:
        """A deliver_sm was answered (`status`) or lost (None): ack it or redeliver it later."""
        record: MoRecord | DlrRecord | None = item.mo if item.mo is not None else item.dlr
        if record is not None:
            record.statuses.append(status)
        if status == c.ESME_ROK:
            if item.mo is not None:
                mo = item.mo
                mo.acked_parts.add(item.part)
                if not mo.acked and len(mo.acked_parts) == mo.parts:
                    mo.acked = True
                    mo.acked_at = self.clock.seconds()
                    self.counters["mos_acked"] += 1
            elif item.dlr is not None and not item.dlr.acked:
                item.dlr.acked = True
                self.counters["dlrs_acked"] += 1
        else:
            # The ESME could not take it (0x64 and friends) or the link went: try again later,
            # with the same PDU contents (same mo id), as a real SMSC's retry schedule would.
            self.counters["redeliveries"] += 1
            self.counters[f"{item.kind}_redeliveries"] += 1
            log.debug("redelivery_scheduled", carrier=self.name, kind=item.kind,
                      status=None if status is None else c.status_name(status),
                      delay_s=self.profile.redeliver_delay_s)
            self._later(self.profile.redeliver_delay_s, self._enqueue, item, True)
        self._pump()

    # -- observation --------------------------------------------------------------------------

    def subscribe_handset(self, callback: Callable[[HandsetMessage], None],
                          msisdn: str | None = None) -> Callable[[], None]:
        """Call `callback` for each complete handset message (to `msisdn`, or to anyone)."""
        listeners = self._listeners.setdefault(msisdn, [])
        listeners.append(callback)

        def unsubscribe() -> None:
            if callback in listeners:
                listeners.remove(callback)

        return unsubscribe

    def _notify(self, message: HandsetMessage) -> None:
        for key in (message.msisdn, None):
            for callback in list(self._listeners.get(key, ())):
                try:
                    callback(message)
                except Exception:
                    log.exception("handset_listener_failed", carrier=self.name)

    def wait_handset(self, msisdn: str, count: int = 1, *, since_index: int | None = None,
                     timeout: float = 5.0) -> Deferred[list[HandsetMessage]]:
        """Fires with the first `count` complete messages to `msisdn` from `handset_messages[since_index:]`.

        `since_index=None` means from now (`len(handset_messages)` at the call); 0 means all-time.
        Errbacks with `HandsetTimeout` after `timeout` seconds of `wait_clock`.
        """
        start = len(self.handset_messages) if since_index is None else since_index
        got = [m for m in self.handset_messages[start:] if m.msisdn == msisdn]
        if len(got) >= count:
            return defer.succeed(got[:count])
        d: Deferred[list[HandsetMessage]] = Deferred(lambda _: finish())
        timer: IDelayedCall | None = None

        def finish() -> None:
            unsubscribe()
            if timer is not None and timer.active():
                timer.cancel()

        def on_message(message: HandsetMessage) -> None:
            got.append(message)
            if len(got) >= count and not d.called:
                finish()
                d.callback(got[:count])

        def expired() -> None:
            unsubscribe()
            if not d.called:
                d.errback(HandsetTimeout(
                    f"{self.name}: {len(got)} of {count} handset message(s) for {mask_msisdn(msisdn)} "
                    f"within {timeout:g}s", list(got)))

        unsubscribe = self.subscribe_handset(on_message, msisdn)
        timer = self.wait_clock.callLater(timeout, expired)
        return d

    def _record_pdu(self, pdu: Pdu) -> None:
        if self._received is not None:
            self._received.put(pdu)

    def next_pdu(self, timeout: float = 5.0) -> Deferred[Pdu]:
        """The next PDU any ESME sent this SMSC (needs `record_pdus=True`), as Vumi's await_pdu."""
        if self._received is None:
            raise RuntimeError("construct the Smsc with record_pdus=True to await PDUs")
        return self._received.get().addTimeout(timeout, self.wait_clock)

    def _anomaly(self, what: str) -> None:
        self.anomalies.append(what)
        log.warning("smsc_anomaly", carrier=self.name, anomaly=what)

    def incomplete_messages(self) -> list[tuple[str, str, int, int, list[int]]]:
        return self.handset.incomplete()

    # -- operator actions ---------------------------------------------------------------------

    def send_garbage_to_esmes(self, kind: str) -> int:
        """Push one malformed PDU (faults.GARBAGE_KINDS) to every bound ESME; returns how many."""
        sessions = self.bound_sessions()
        for session in sessions:
            session.send_raw(garbage_pdu(kind, session.next_sequence()))
        log.info("fault_garbage_sent", carrier=self.name, kind=kind, sessions=len(sessions))
        return len(sessions)

    def unbind_esmes(self) -> int:
        """SMSC-initiated unbind of every bound ESME (as before maintenance)."""
        sessions = self.bound_sessions()
        for session in sessions:
            session.send_unbind()
        return len(sessions)

    def drop_esmes(self, abort: bool = True) -> Deferred[None]:
        """Cut every ESME link (abort: as a network failure, without flushing)."""
        waits = []
        for session in list(self.sessions):
            if abort:
                session.abort()
            else:
                session.close()
            waits.append(session.closed)
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def reset_records(self) -> None:
        """Forget what was recorded (after a load run); sessions and queued deliveries are kept."""
        self.mts.clear()
        self.links_lost.clear()
        self.submit_times.clear()
        self._last_second.clear()
        self._peak_per_second = 0
        self.peak_binds = len(self.bound_sessions()) and max(self.binds_in_use(m) for m in ("tx", "rx"))
        self.dlrs.clear()
        self.handset_messages.clear()
        self.anomalies.clear()
        self.counters.clear()
        self._mt_by_number.clear()
        self._dlr_by_number.clear()
        self.mos[:] = [mo for mo in self.mos if not mo.acked]
        self._mo_by_id = {mo.mo_id: mo for mo in self.mos}
        self.handset.clear()
        self.ussd.clear()

    def records(self) -> dict[str, Any]:
        """Everything this SMSC saw, as JSON-ready rows, for a run's final accounting.

        mos: each injected MO and whether the ESME acknowledged it; mts: each accepted submit_sm
        part, with a digest of what was submitted (two accepted parts with one digest to one
        handset are the same part sent twice); handset: each complete message a handset shows.
        """
        return {
            "mos": [
                {"mo_id": mo.mo_id, "from": mo.source, "to": mo.dest, "text": mo.text, "parts": mo.parts,
                 "acked": mo.acked, "attempts": mo.attempts, "created_at": mo.created_at,
                 "acked_at": mo.acked_at, "statuses": mo.statuses}
                for mo in self.mos
            ],
            "mts": [
                {"message_id": mt.message_id, "to": mt.dest, "from": mt.source, "received_at": mt.received_at,
                 "part": None if mt.concat is None else [mt.concat.seq, mt.concat.total],
                 "digest": _submit_digest(mt), "outcome": mt.outcome, "link": mt.link,
                 "expires_at": mt.expires_at}
                for mt in self.mts
            ],
            # A part accepted on a link that later ended may have had its response lost with it.
            "links_lost": {str(link): at for link, at in self.links_lost.items()},
            "handset": [
                {"msisdn": m.msisdn, "from": m.source, "text": m.text, "parts": m.parts,
                 "received_at": m.received_at, "message_ids": list(m.message_ids)}
                for m in self.handset_messages
            ],
            "counters": dict(self.counters),
        }

    def status(self) -> dict[str, Any]:
        """What the control port reports for this carrier."""
        return {
            "profile": self.profile.name,
            "port": self.port.getHost().port if self.port is not None else None,
            "sessions": [
                {"mode": s.mode, "peer": s.peer, "outstanding": len(s.outstanding)} for s in self.bound_sessions()
            ],
            "connections": len(self.sessions),
            "counts": {
                "mos": self.counters["mos"],
                "mos_acked": self.counters["mos_acked"],
                "mts": self.counters["accepted"],
                "submits": self.counters["submits"],
                "rejected": self.counters["rejected"],
                "throttled": self.counters["throttled"],
                "peak_binds": self.peak_binds,
                "binds_over_limit": self.counters["binds_over_limit"],
                "peak_submits_per_second": self.peak_submits_per_second(),
                "dlrs": self.counters["dlrs"],
                "dlrs_acked": self.counters["dlrs_acked"],
                "mo_redeliveries": self.counters["mo_redeliveries"],
                "dlr_redeliveries": self.counters["dlr_redeliveries"],
                "handset_messages": len(self.handset_messages),
                "pending_deliveries": len(self._pending),
                "anomalies": len(self.anomalies),
                "ussd_dialogues": self.counters["ussd_dialogues"],
                "ussd_open": len(self.ussd.open_dialogues()),
                "ussd_screens": self.counters["ussd_screens"],
                "held": sum(len(mts) for mts in self._held.values()),
                "expired": self.counters["expired"],
            },
            "faults": self.faults.as_dict(),
        }


def _first_number(profile: CarrierProfile, clock: IReactorTime, from_base: bool) -> int:
    """The number before this run's first id: the profile's base, plus the start time in
    milliseconds unless the counter is one that starts from its base (faults.ids_from_base).
    On a test's task.Clock at 0 that is the base itself, so ids stay predictable there."""
    if from_base:
        return profile.id_base
    return profile.id_base + max(0, int((clock.seconds() - _ID_EPOCH_S) * 1000))


def _submit_digest(mt: MtRecord) -> str:
    """Fingerprint of what the ESME submitted (addresses, coding, UDH and text, TLVs)."""
    digest = hashlib.blake2b(digest_size=8)
    for value in (mt.dest, mt.source, str(mt.data_coding), str(mt.esm_class)):
        digest.update(value.encode("utf-8") + b"\x00")
    digest.update(mt.short_message)
    for tag in sorted(mt.tlvs):
        digest.update(tag.to_bytes(2, "big") + len(mt.tlvs[tag]).to_bytes(2, "big") + mt.tlvs[tag])
    return digest.hexdigest()


def deliver_params(source: str, source_addr: tuple[int, int], dest: str, dest_addr: tuple[int, int],
                    esm_class: int, data_coding: int, short_message: bytes) -> dict[str, Any]:
    return {
        "service_type": "",
        "source_addr_ton": source_addr[0],
        "source_addr_npi": source_addr[1],
        "source_addr": source,
        "dest_addr_ton": dest_addr[0],
        "dest_addr_npi": dest_addr[1],
        "destination_addr": dest,
        "esm_class": esm_class,
        "protocol_id": 0,
        "priority_flag": 0,
        "schedule_delivery_time": "",
        "validity_period": "",
        "registered_delivery": 0,
        "replace_if_present_flag": 0,
        "data_coding": data_coding,
        "sm_default_msg_id": 0,
        "short_message": short_message,
    }


def _receipt_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, _SMSC_TZ).strftime("%y%m%d%H%M")


def _smpp_time(seconds: float) -> str:
    """SMPP absolute time (section 7.1.1): YYMMDDhhmmsstnnp, here with the +4 h offset (16 quarters)."""
    return datetime.fromtimestamp(seconds, _SMSC_TZ).strftime("%y%m%d%H%M%S") + "016+"
