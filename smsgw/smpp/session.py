"""ESME side of one SMPP link: bind, a window of outstanding requests, keepalive, unbind.

All session state lives here; framing and codec hold none. Time comes from the injected
clock, so every timer (response timeouts, enquire_link, unbind bounds) can be driven by
`twisted.internet.task.Clock` in tests.

Response timeouts do not cost a DelayedCall per request: every request gets the same
timeout and requests are registered in write order, so deadlines are ordered like the
`_pending` dict and one timer aimed at the oldest entry is enough.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any, Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from smsgw.log import get_logger
from smsgw.smpp import constants as c
from smsgw.smpp.framing import SmppFraming
from smsgw.smpp.pdu import Pdu, PduError, decode, encode

log = get_logger(__name__)

_HEADER = struct.Struct(">IIII")
#: How long after its timeout a response is still handed back to the caller, in multiples of
#: response_timeout_s: a slow SMSC's "accepted" must stop the resend that would duplicate.
LATE_RESPONSE_GRACE_FACTOR = 6.0
# A successful deliver_sm_resp / data_sm_resp: header plus an empty message_id.
_OK_RESP = struct.Struct(">IIIIB")

OPEN = "open"
BINDING = "binding"
BOUND = "bound"
UNBINDING = "unbinding"
CLOSED = "closed"

DeliverHandler = Callable[[Pdu], "Deferred[int] | int"]


class SmppSessionError(Exception):
    """Base of the errors a session hands to its callers."""


class BindRefused(SmppSessionError):
    """The SMSC answered our bind with a non-zero status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: {c.status_name(status)}")
        self.status = status
        #: True when retrying cannot help (bad credentials): the config must change.
        self.fatal = status in c.FATAL_BIND_STATUSES


class ResponseTimeout(SmppSessionError):
    """No response arrived within response_timeout_s; the outcome is unknown.

    `late` settles the unknown: it fires with the response (or a generic_nack) if one still
    arrives on this link within the late-response grace period (a slow SMSC), and with None
    once the grace has passed or the link is gone, when no answer can come any more. A caller
    that resends only then never duplicates a request the SMSC was merely slow to answer.
    """

    def __init__(self, command_id: int, sequence: int, late: "Deferred[Pdu | None] | None" = None) -> None:
        super().__init__(f"no response to {c.command_name(command_id)} seq {sequence}")
        self.command_id = command_id
        self.sequence = sequence
        self.late: Deferred[Pdu | None] = late if late is not None else Deferred()


class SessionClosed(SmppSessionError):
    """The link is gone or not bound.

    `sent` tells the caller whether the request reached the wire: False means it was never
    written and can be retried anywhere without risk of a duplicate.
    """

    def __init__(self, reason: str, sent: bool = False) -> None:
        super().__init__(reason)
        self.sent = sent


# Commands an SMSC may legally send but an ESME gateway does not serve: they get their own
# _resp with ESME_RINVCMDID (the spec's answer for "not supported here").
_UNSERVED_WITH_RESP = frozenset(
    {
        c.QUERY_SM,
        c.SUBMIT_SM,
        c.REPLACE_SM,
        c.CANCEL_SM,
        c.SUBMIT_MULTI,
        c.BIND_RECEIVER,
        c.BIND_TRANSMITTER,
        c.BIND_TRANSCEIVER,
    }
)


def _default_clock() -> IReactorTime:
    from twisted.internet import reactor

    return reactor  # type: ignore[return-value]


class EsmeSession(SmppFraming):
    """One TCP link to an SMSC, from the ESME's side.

    States: "open" → "binding" → "bound" → "unbinding" → "closed".
    """

    def __init__(
        self,
        *,
        carrier: str,
        system_id: str,
        password: str,
        system_type: str = "",
        bind_command: int = c.BIND_TRANSCEIVER,
        window: int = 10,
        response_timeout_s: float = 10.0,
        enquire_link_s: float = 30.0,
        clock: IReactorTime | None = None,
        on_deliver: DeliverHandler,
        on_lost: Callable[[EsmeSession, Failure], None] | None = None,
    ) -> None:
        if bind_command not in c.BIND_COMMANDS:
            raise ValueError(f"bind_command must be a bind command id, not 0x{bind_command:08X}")
        if window < 1:
            raise ValueError("window must be at least 1")
        self.carrier = carrier
        self.bind_command = bind_command
        self.window = window
        self.response_timeout_s = response_timeout_s
        self.enquire_link_s = enquire_link_s
        self.state = OPEN
        #: clock.seconds() when the bind succeeded; stays set after the link goes.
        self.bound_at: float | None = None
        self._system_id = system_id
        self._password = password
        self._system_type = system_type
        self._clock = clock if clock is not None else _default_clock()
        self._on_deliver = on_deliver
        self._on_lost = on_lost
        self._log = log.bind(carrier=carrier)

        # seq -> (deferred, deadline, counts_against_window, expected response command_id)
        self._pending: dict[int, tuple[Deferred[Pdu], float, bool, int]] = {}
        # Timed-out requests whose response may still come: sequence → (late Deferred,
        # expected response command_id, forget-after time).
        self._late: dict[int, tuple[Deferred[Pdu | None], int, float]] = {}
        self._late_timer: IDelayedCall | None = None
        self._in_window = 0
        self._queue: deque[tuple[Pdu, Deferred[Pdu]]] = deque()
        self._window_waiters: list[Deferred[None]] = []
        self._last_sequence = 0
        self._timer: IDelayedCall | None = None
        self._expiring = False
        self._keepalive: LoopingCall | None = None
        self._enquire_outstanding = False
        self._bind_result: Deferred[Pdu] | None = None
        self._inbound_pending = 0
        self._drain_timer: IDelayedCall | None = None
        self._unbind_waiters: list[Deferred[None]] = []
        self._unbind_sent = False
        self._lost = False
        self._handlers: dict[int, Callable[[Pdu], None]] = {
            c.DELIVER_SM: self._on_deliver_sm,
            c.DATA_SM: self._on_deliver_sm,
            c.ENQUIRE_LINK: self._on_enquire_link,
            c.UNBIND: self._on_unbind,
            c.ALERT_NOTIFICATION: self._on_alert_notification,
            c.OUTBIND: self._on_outbind,
        }
        for command_id in _UNSERVED_WITH_RESP:
            self._handlers[command_id] = self._on_unserved

    # ------------------------------------------------------------------ public API

    @property
    def is_bound(self) -> bool:
        return self.state == BOUND

    @property
    def outstanding(self) -> int:
        """Requests written and not yet answered that count against the window."""
        return self._in_window

    @property
    def queued(self) -> int:
        """Requests accepted but waiting inside the session for a window slot."""
        return len(self._queue)

    @property
    def window_free(self) -> int:
        if self.state != BOUND:
            return 0
        free = self.window - self._in_window - len(self._queue)
        return free if free > 0 else 0

    def when_window_free(self) -> Deferred[None]:
        """Fires once the session is bound with at least one free slot; fails with
        SessionClosed if the link goes first."""
        state = self.state
        if state == UNBINDING or state == CLOSED:
            return fail(SessionClosed("session is not bound"))
        if state == BOUND and self.window_free:
            return succeed(None)
        d: Deferred[None] = Deferred(canceller=self._cancel_window_waiter)
        self._window_waiters.append(d)
        return d

    def bind(self) -> Deferred[Pdu]:
        """Send our bind; fires with the bind_resp, or fails with BindRefused,
        ResponseTimeout or SessionClosed. A failed bind closes the link."""
        if self.state != OPEN or self.transport is None:
            return fail(SmppSessionError(f"cannot bind a session in state {self.state}"))
        request = Pdu(
            self.bind_command,
            params={
                "system_id": self._system_id,
                "password": self._password,
                "system_type": self._system_type,
                "interface_version": c.SMPP_VERSION_34,
            },
        )
        self.state = BINDING
        result: Deferred[Pdu] = Deferred(canceller=self._cancel_bind)
        self._bind_result = result
        self._send_now(request, False).addCallbacks(self._bind_answered, self._bind_failed)
        return result

    def send_request(self, pdu: Pdu) -> Deferred[Pdu]:
        """Write a request inside the window (or queue it until a slot frees).

        Assigns `pdu.sequence`. Fires with the response PDU whatever its status (a
        generic_nack answering it counts as the response); fails with ResponseTimeout
        or SessionClosed.
        """
        if self.state != BOUND:
            return fail(SessionClosed(f"session is {self.state}"))
        if self._queue or self._in_window >= self.window:
            d: Deferred[Pdu] = Deferred()
            self._queue.append((pdu, d))
            return d
        return self._send_now(pdu, True)

    def unbind(self) -> Deferred[None]:
        """Stop taking requests, let the outstanding ones finish, unbind, close.

        Always fires, within about twice response_timeout_s: shutdown must not hang on
        a silent SMSC.
        """
        d: Deferred[None] = Deferred()
        state = self.state
        if self._lost or state == CLOSED:
            # Already gone, or its close already requested: nothing left to wait for.
            d.callback(None)
            return d
        self._unbind_waiters.append(d)
        if state == UNBINDING:
            return d
        if state != BOUND:
            # Nothing bound to undo; just hang up.
            self._drop(abort=False)
            self._finish_unbind()
            return d
        self.state = UNBINDING
        self._stop_keepalive()
        self._fail_queued("session is unbinding")
        self._fail_window_waiters("session is unbinding")
        if self._in_window == 0 and self._inbound_pending == 0:
            self._send_unbind()
        else:
            self._drain_timer = self._clock.callLater(self.response_timeout_s, self._drain_expired)
        return d

    # ------------------------------------------------------------------ Twisted

    def connectionMade(self) -> None:
        # Small request/response PDUs: Nagle plus delayed ACKs would add tens of
        # milliseconds to every USSD screen.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:
                pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._lost:
            return
        self._lost = True
        was_bound = self.state in (BOUND, UNBINDING)
        expected = self._closing
        self.state = CLOSED
        self._closing = True
        self._stop_keepalive()
        for timer in (self._timer, self._drain_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._drain_timer = None
        pending, self._pending = self._pending, {}
        # A response can no longer arrive on this link: the late waiters learn it below.
        late, self._late = self._late, {}
        if self._late_timer is not None and self._late_timer.active():
            self._late_timer.cancel()
        self._late_timer = None
        self._in_window = 0
        for d, _deadline, _windowed, _expected in pending.values():
            d.errback(SessionClosed("link lost with the request in flight", sent=True))
        for waiter, _expected, _until in late.values():
            waiter.callback(None)
        self._fail_queued("link lost")
        self._fail_window_waiters("link lost")
        self._finish_unbind()
        # One event name for every loss, so operators can count them; the level says
        # whether we closed it (unbind, refused bind, dead peer) or it was taken from us.
        emit = self._log.info if expected else self._log.warning
        emit("link_lost", was_bound=was_bound, closed_by_us=expected, reason=reason.getErrorMessage(),
             in_flight=len(pending))
        if self._on_lost is not None:
            try:
                self._on_lost(self, reason)
            except Exception:
                self._log.exception("on_lost_failed")

    # ------------------------------------------------------------------ inbound

    def pdu_received(self, raw: bytes) -> None:
        try:
            pdu = decode(raw)
        except PduError as error:
            self._pdu_rejected(raw, error)
            return
        if pdu.command_id & c.RESPONSE_BIT:
            self._response_received(pdu)
            return
        handler = self._handlers.get(pdu.command_id)
        if handler is None:
            self.send_raw(_HEADER.pack(16, c.GENERIC_NACK, c.ESME_RINVCMDID, pdu.sequence))
            return
        handler(pdu)

    def length_invalid(self, length: int, header: bytes) -> None:
        self._log.warning("pdu_rejected", command_length=length, status="ESME_RINVCMDLEN",
                          reason="impossible command_length; the stream cannot be resynchronised")
        super().length_invalid(length, header)
        self._drop(abort=False)

    def _pdu_rejected(self, raw: bytes, error: PduError) -> None:
        _length, command_id, status, sequence = _HEADER.unpack_from(raw)
        self._log.warning(
            "pdu_rejected",
            command_id=f"0x{command_id:08X}",
            sequence=sequence,
            status=c.status_name(error.status),
            reason=error.reason,
        )
        if command_id & c.RESPONSE_BIT and error.status != c.ESME_RINVCMDID:
            # The carrier did answer this request, only its body is unreadable: honour the
            # header's status rather than leave the request to time out.
            if sequence in self._pending:
                self._response_received(Pdu(command_id, sequence, status))
            return
        self.send_raw(_HEADER.pack(16, c.GENERIC_NACK, error.status, error.sequence))

    def _response_received(self, pdu: Pdu) -> None:
        sequence = pdu.sequence
        entry = self._pending.get(sequence)
        command_id = pdu.command_id
        if entry is None:
            late = self._late.pop(sequence, None)
            if late is not None and command_id in (late[1], c.GENERIC_NACK):
                self._log.info("late_response", command=c.command_name(command_id), sequence=sequence,
                               handed_back=True)
                late[0].callback(pdu)
                return
            if command_id == c.GENERIC_NACK:
                self._log.warning("generic_nack_unmatched", sequence=sequence, status=c.status_name(pdu.status))
            else:
                self._log.info("late_response", command=c.command_name(command_id), sequence=sequence)
            return
        d, _deadline, windowed, expected = entry
        if command_id != expected and command_id != c.GENERIC_NACK:
            self._log.warning(
                "pdu_rejected",
                command_id=f"0x{command_id:08X}",
                sequence=sequence,
                reason="response does not match the request with this sequence",
            )
            return
        del self._pending[sequence]
        if windowed:
            self._release_slot()
        d.callback(pdu)
        if self._window_waiters and self.window_free:
            self._fire_window_waiters()

    def _on_deliver_sm(self, pdu: Pdu) -> None:
        sequence = pdu.sequence
        resp_id = pdu.command_id | c.RESPONSE_BIT
        state = self.state
        if state != BOUND and state != UNBINDING:
            self.send_raw(_HEADER.pack(16, resp_id, c.ESME_RINVBNDSTS, sequence))
            return
        try:
            result = self._on_deliver(pdu)
        except Exception:
            self._log.exception("on_deliver_failed", sequence=sequence)
            result = c.ESME_RX_T_APPN
        if type(result) is int:
            self._answer(resp_id, sequence, result)
        elif isinstance(result, Deferred):
            self._inbound_pending += 1
            result.addCallbacks(
                self._deliver_settled,
                self._deliver_errored,
                callbackArgs=(resp_id, sequence),
                errbackArgs=(resp_id, sequence),
            )
        else:
            self._log.error("on_deliver_bad_result", sequence=sequence, result_type=type(result).__name__)
            self._answer(resp_id, sequence, c.ESME_RX_T_APPN)

    def _deliver_settled(self, status: Any, resp_id: int, sequence: int) -> None:
        if type(status) is not int:
            self._log.error("on_deliver_bad_result", sequence=sequence, result_type=type(status).__name__)
            status = c.ESME_RX_T_APPN
        self._answer(resp_id, sequence, status)
        self._inbound_done()

    def _deliver_errored(self, failure: Failure, resp_id: int, sequence: int) -> None:
        # Not durably stored: a temporary error makes the SMSC deliver it again.
        self._log.error("on_deliver_failed", sequence=sequence, error=failure.getErrorMessage())
        self._answer(resp_id, sequence, c.ESME_RX_T_APPN)
        self._inbound_done()

    def _answer(self, resp_id: int, sequence: int, status: int) -> None:
        if self._closing:
            # Too late to answer; the SMSC will deliver it again on the next link.
            return
        if status == c.ESME_ROK:
            self.transport.write(_OK_RESP.pack(17, resp_id, 0, sequence, 0))
        else:
            self.transport.write(_HEADER.pack(16, resp_id, status, sequence))

    def _inbound_done(self) -> None:
        self._inbound_pending -= 1
        if self.state == UNBINDING:
            self._maybe_drained()

    def _on_enquire_link(self, pdu: Pdu) -> None:
        self.send_raw(_HEADER.pack(16, c.ENQUIRE_LINK_RESP, c.ESME_ROK, pdu.sequence))

    def _on_unbind(self, pdu: Pdu) -> None:
        self._log.info("unbind_from_peer", state=self.state)
        self.send_raw(_HEADER.pack(16, c.UNBIND_RESP, c.ESME_ROK, pdu.sequence))
        self._drop(abort=False)

    def _on_unserved(self, pdu: Pdu) -> None:
        self._log.info("pdu_rejected", command=c.command_name(pdu.command_id), sequence=pdu.sequence,
                       status="ESME_RINVCMDID", reason="not served by an ESME")
        self.send_raw(_HEADER.pack(16, pdu.command_id | c.RESPONSE_BIT, c.ESME_RINVCMDID, pdu.sequence))

    def _on_outbind(self, pdu: Pdu) -> None:
        # outbind has no _resp; we connect and bind on our own initiative.
        self._log.info("pdu_rejected", command="outbind", sequence=pdu.sequence, status="ESME_RINVCMDID")
        self.send_raw(_HEADER.pack(16, c.GENERIC_NACK, c.ESME_RINVCMDID, pdu.sequence))

    def _on_alert_notification(self, pdu: Pdu) -> None:
        # The spec defines no response to alert_notification; answering would confuse the SMSC.
        self._log.info("alert_notification_ignored", sequence=pdu.sequence)

    # ------------------------------------------------------------------ outbound

    def _next_sequence(self) -> int:
        sequence = self._last_sequence
        pending = self._pending
        while True:
            sequence = sequence + 1 if sequence < c.MAX_SEQUENCE else 1
            if sequence not in pending:
                break
        self._last_sequence = sequence
        return sequence

    def _send_now(self, pdu: Pdu, windowed: bool, d: Deferred[Pdu] | None = None) -> Deferred[Pdu]:
        """Write one request immediately; `windowed` False is the keepalive/bind path."""
        sequence = self._next_sequence()
        pdu.sequence = sequence
        try:
            raw = encode(pdu)
        except (ValueError, OverflowError, TypeError, AttributeError) as error:
            if d is None:
                return fail(error)
            d.errback(error)
            return d
        if d is None:
            d = Deferred()
        self._pending[sequence] = (
            d,
            self._clock.seconds() + self.response_timeout_s,
            windowed,
            pdu.command_id | c.RESPONSE_BIT,
        )
        if windowed:
            self._in_window += 1
        if self._timer is None and not self._expiring:
            self._timer = self._clock.callLater(self.response_timeout_s, self._expire)
        self.transport.write(raw)
        return d

    def _release_slot(self) -> None:
        self._in_window -= 1
        if self._queue:
            self._pump()
        elif self.state == UNBINDING and self._in_window == 0:
            self._maybe_drained()

    def _pump(self) -> None:
        queue = self._queue
        while queue and self._in_window < self.window and self.state == BOUND:
            pdu, d = queue.popleft()
            if d.called:  # cancelled by the caller while waiting
                continue
            self._send_now(pdu, True, d)

    def _arm_late_timer(self, now: float) -> None:
        if self._late and self._late_timer is None:
            until = next(iter(self._late.values()))[2]
            self._late_timer = self._clock.callLater(max(until - now, 0.0), self._late_grace_over)

    def _late_grace_over(self) -> None:
        """Late-response slots past their grace settle as "no answer" (oldest first: insertion
        order is age order)."""
        self._late_timer = None
        now = self._clock.seconds()
        over: list[Deferred[Pdu | None]] = []
        while self._late:
            sequence, (waiter, _expected, until) = next(iter(self._late.items()))
            if until > now:
                break
            del self._late[sequence]
            over.append(waiter)
        self._arm_late_timer(now)
        for waiter in over:
            waiter.callback(None)

    def _expire(self) -> None:
        self._timer = None
        # Requests written by callbacks below must not arm a timer later than the oldest
        # survivor's deadline; the timer is re-aimed once, at the end.
        self._expiring = True
        now = self._clock.seconds()
        expired: list[int] = []
        for sequence, entry in self._pending.items():
            if entry[1] > now:
                break
            expired.append(sequence)
        for sequence in expired:
            entry = self._pending.pop(sequence, None)
            if entry is None:
                continue
            d, _deadline, windowed, expected = entry
            if windowed:
                self._release_slot()
            late: Deferred[Pdu | None] = Deferred()
            self._late[sequence] = (late, expected, now + LATE_RESPONSE_GRACE_FACTOR * self.response_timeout_s)
            self._arm_late_timer(now)
            d.errback(ResponseTimeout(expected & ~c.RESPONSE_BIT, sequence, late))
        self._expiring = False
        if self._pending and self._timer is None and not self._lost:
            head = next(iter(self._pending.values()))
            self._timer = self._clock.callLater(max(head[1] - now, 0.0), self._expire)
        if self._window_waiters and self.window_free:
            self._fire_window_waiters()

    def _fire_window_waiters(self) -> None:
        waiters, self._window_waiters = self._window_waiters, []
        for d in waiters:
            d.callback(None)

    def _cancel_window_waiter(self, d: Deferred[None]) -> None:
        try:
            self._window_waiters.remove(d)
        except ValueError:
            pass

    def _fail_window_waiters(self, reason: str) -> None:
        waiters, self._window_waiters = self._window_waiters, []
        for d in waiters:
            d.errback(SessionClosed(reason))

    def _fail_queued(self, reason: str) -> None:
        queue, self._queue = self._queue, deque()
        for _pdu, d in queue:
            if not d.called:
                d.errback(SessionClosed(reason, sent=False))

    # ------------------------------------------------------------------ bind

    def _bind_answered(self, response: Pdu) -> None:
        result = self._bind_result
        if self.state != BINDING or result is None or result.called:
            return
        status = response.status
        if status != c.ESME_ROK or response.command_id == c.GENERIC_NACK:
            error = BindRefused(status or c.ESME_RUNKNOWNERR)
            if error.fatal:
                self._log.critical("bind_refused", status=c.status_name(error.status), fatal=True)
            else:
                self._log.warning("bind_refused", status=c.status_name(error.status), fatal=False)
            self._drop(abort=False)
            result.errback(error)
            return
        self.state = BOUND
        self.bound_at = self._clock.seconds()
        self._log.info(
            "bind_ok",
            bind=c.command_name(self.bind_command),
            smsc_system_id=response.params.get("system_id", ""),
            window=self.window,
        )
        self._keepalive = LoopingCall(self._send_enquire_link)
        self._keepalive.clock = self._clock
        self._keepalive.start(self.enquire_link_s, now=False)
        result.callback(response)
        if self._window_waiters and self.window_free:
            self._fire_window_waiters()

    def _bind_failed(self, failure: Failure) -> None:
        result = self._bind_result
        if result is None or result.called:
            return
        if not failure.check(SessionClosed):
            self._log.warning("bind_failed", reason=failure.getErrorMessage())
            self._drop(abort=True)
        result.errback(failure)

    def _cancel_bind(self, result: Deferred[Pdu]) -> None:
        # Whoever asked for the bind no longer wants this link (service stopping).
        self._drop(abort=True)

    # ------------------------------------------------------------------ keepalive

    def _send_enquire_link(self) -> None:
        if self._enquire_outstanding or self.state != BOUND:
            return
        self._enquire_outstanding = True
        self._send_now(Pdu(c.ENQUIRE_LINK), False).addCallbacks(self._enquire_answered, self._enquire_failed)

    def _enquire_answered(self, _response: Pdu) -> None:
        self._enquire_outstanding = False

    def _enquire_failed(self, failure: Failure) -> None:
        self._enquire_outstanding = False
        if failure.check(ResponseTimeout):
            self._log.warning("enquire_link_timeout", timeout_s=self.response_timeout_s)
            self._drop(abort=True)

    def _stop_keepalive(self) -> None:
        keepalive, self._keepalive = self._keepalive, None
        if keepalive is not None and keepalive.running:
            keepalive.stop()

    # ------------------------------------------------------------------ unbind and close

    def _maybe_drained(self) -> None:
        if self._in_window == 0 and self._inbound_pending == 0 and not self._unbind_sent:
            if self._drain_timer is not None and self._drain_timer.active():
                self._drain_timer.cancel()
            self._drain_timer = None
            self._send_unbind()

    def _drain_expired(self) -> None:
        self._drain_timer = None
        if not self._unbind_sent and not self._lost:
            self._log.warning("unbind_drain_timeout", in_flight=self._in_window, inbound=self._inbound_pending)
            self._send_unbind()

    def _send_unbind(self) -> None:
        self._unbind_sent = True
        self._send_now(Pdu(c.UNBIND), False).addBoth(self._unbind_answered)

    def _unbind_answered(self, result: Pdu | Failure) -> None:
        if isinstance(result, Failure) and result.check(ResponseTimeout):
            self._log.warning("unbind_timeout", timeout_s=self.response_timeout_s)
            self._drop(abort=True)
        elif not self._lost:
            self._drop(abort=False)
        self._finish_unbind()

    def _finish_unbind(self) -> None:
        waiters, self._unbind_waiters = self._unbind_waiters, []
        for d in waiters:
            d.callback(None)

    def _drop(self, abort: bool) -> None:
        """Close the link on our initiative; nothing more is read or accepted."""
        if self._closing and self.state == CLOSED:
            return
        self._closing = True
        self.state = CLOSED
        self._stop_keepalive()
        self._fail_queued("session closed")
        self._fail_window_waiters("session closed")
        transport = self.transport
        if transport is None or self._lost:
            return
        abort_connection = getattr(transport, "abortConnection", None) if abort else None
        if abort_connection is not None:
            abort_connection()
        else:
            transport.loseConnection()
