"""EsmeSession driven over a StringTransport with a Clock: no sockets, no sleeping."""

from __future__ import annotations

import struct
from typing import Any

from structlog.testing import capture_logs
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu, decode, encode
from smsgw.smpp.session import (
    LATE_RESPONSE_GRACE_FACTOR,
    BindRefused,
    EsmeSession,
    ResponseTimeout,
    SessionClosed,
    SmppSessionError,
)

TIMEOUT = 10.0
ENQUIRE = 30.0


def split_frames(data: bytes) -> list[Pdu]:
    out = []
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        out.append(decode(data[offset : offset + length]))
        offset += length
    return out


def submit(text: bytes = b"hello") -> Pdu:
    return Pdu(c.SUBMIT_SM, params={"source_addr": "Muscat", "destination_addr": "96891234567",
                                    "short_message": text})


def deliver(sequence: int, command_id: int = c.DELIVER_SM) -> Pdu:
    if command_id == c.DATA_SM:
        return Pdu(c.DATA_SM, sequence, params={"source_addr": "96891234567", "destination_addr": "1234"},
                   tlvs={c.TLV_MESSAGE_PAYLOAD: b"hi"})
    return Pdu(command_id, sequence, params={"source_addr": "96891234567", "destination_addr": "1234",
                                             "short_message": b"park 123"})


class SessionTestMixin:
    window = 3

    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        self.delivered: list[Pdu] = []
        self.deliver_results: list[Any] = []
        self.lost: list[tuple[EsmeSession, Failure]] = []
        self.session = self.make_session()

    def make_session(self, **overrides: Any) -> EsmeSession:
        args: dict[str, Any] = dict(
            carrier="omantel",
            system_id="smsgw",
            password="secret",
            system_type="",
            bind_command=c.BIND_TRANSCEIVER,
            window=self.window,
            response_timeout_s=TIMEOUT,
            enquire_link_s=ENQUIRE,
            clock=self.clock,
            on_deliver=self.on_deliver,
            on_lost=lambda session, reason: self.lost.append((session, reason)),
        )
        args.update(overrides)
        session = EsmeSession(**args)
        session.makeConnection(self.transport)
        return session

    def on_deliver(self, pdu: Pdu) -> Any:
        self.delivered.append(pdu)
        return self.deliver_results.pop(0) if self.deliver_results else c.ESME_ROK

    def written(self) -> list[Pdu]:
        """PDUs written since the last call."""
        frames = split_frames(self.transport.value())
        self.transport.clear()
        return frames

    def feed(self, pdu: Pdu) -> None:
        self.session.dataReceived(encode(pdu))

    def answer(self, request: Pdu, status: int = 0, **params: Any) -> None:
        self.feed(Pdu(request.command_id | c.RESPONSE_BIT, request.sequence, status, params))

    def bind(self) -> Pdu:
        d = self.session.bind()
        (request,) = self.written()
        self.answer(request, system_id="SMSC")
        return self.successResultOf(d)  # type: ignore[attr-defined]


class BindTests(SessionTestMixin, SynchronousTestCase):
    def test_bind_ok(self) -> None:
        """bind() writes our bind with the credentials and fires with the bind_resp once status is 0."""
        d = self.session.bind()
        self.assertEqual(self.session.state, "binding")
        (request,) = self.written()
        self.assertEqual(request.command_id, c.BIND_TRANSCEIVER)
        self.assertEqual(request.params["system_id"], "smsgw")
        self.assertEqual(request.params["password"], "secret")
        self.assertEqual(request.params["interface_version"], 0x34)
        with capture_logs() as logs:
            self.answer(request, system_id="SMSC")
        self.assertEqual(self.successResultOf(d).params["system_id"], "SMSC")
        self.assertEqual(self.session.state, "bound")
        self.assertEqual(self.session.bound_at, 0.0)
        self.assertEqual([e["event"] for e in logs], ["bind_ok"])
        self.assertEqual(logs[0]["carrier"], "omantel")

    def test_bind_command_is_configurable(self) -> None:
        """A receiver session sends bind_receiver."""
        self.transport = StringTransport()
        session = self.make_session(bind_command=c.BIND_RECEIVER)
        session.bind()
        self.assertEqual(self.written()[0].command_id, c.BIND_RECEIVER)

    def test_bind_refused_fatal(self) -> None:
        """A bad password is a fatal BindRefused, logged CRITICAL, and the link is closed."""
        d = self.session.bind()
        (request,) = self.written()
        with capture_logs() as logs:
            self.answer(request, status=c.ESME_RINVPASWD)
        error = self.failureResultOf(d, BindRefused).value
        self.assertEqual(error.status, c.ESME_RINVPASWD)
        self.assertTrue(error.fatal)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.session.state, "closed")
        (entry,) = [e for e in logs if e["event"] == "bind_refused"]
        self.assertEqual(entry["log_level"], "critical")

    def test_bind_refused_fatal_statuses(self) -> None:
        """ESME_RBINDFAIL, ESME_RINVPASWD and ESME_RINVSYSID are fatal; others are not."""
        for status, fatal in [(c.ESME_RBINDFAIL, True), (c.ESME_RINVPASWD, True), (c.ESME_RINVSYSID, True),
                              (c.ESME_RSYSERR, False), (c.ESME_RALYBND, False), (c.ESME_RTHROTTLED, False)]:
            self.assertEqual(BindRefused(status).fatal, fatal, hex(status))

    def test_bind_refused_not_fatal(self) -> None:
        """A system error is a non-fatal BindRefused, logged as a warning."""
        d = self.session.bind()
        (request,) = self.written()
        with capture_logs() as logs:
            self.answer(request, status=c.ESME_RSYSERR)
        self.assertFalse(self.failureResultOf(d, BindRefused).value.fatal)
        (entry,) = [e for e in logs if e["event"] == "bind_refused"]
        self.assertEqual(entry["log_level"], "warning")

    def test_bind_answered_by_generic_nack(self) -> None:
        """A generic_nack to our bind is a refusal too."""
        d = self.session.bind()
        (request,) = self.written()
        self.feed(Pdu(c.GENERIC_NACK, request.sequence, c.ESME_RINVCMDID))
        self.assertEqual(self.failureResultOf(d, BindRefused).value.status, c.ESME_RINVCMDID)

    def test_bind_timeout(self) -> None:
        """No bind_resp within the response timeout fails the bind and aborts the link."""
        d = self.session.bind()
        self.clock.advance(TIMEOUT - 0.1)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, ResponseTimeout)
        self.assertTrue(self.transport.disconnected)

    def test_bind_link_lost(self) -> None:
        """If the link goes during the bind, bind() fails with SessionClosed."""
        d = self.session.bind()
        self.session.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, SessionClosed)

    def test_bind_cancelled(self) -> None:
        """Cancelling bind() aborts the link."""
        d = self.session.bind()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(self.session.state, "closed")

    def test_bind_twice(self) -> None:
        """bind() on a session that is not open fails instead of sending a second bind."""
        self.bind()
        self.failureResultOf(self.session.bind(), SmppSessionError)
        self.assertEqual(self.written(), [])


class WindowTests(SessionTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bind()

    def test_send_and_response(self) -> None:
        """send_request writes the PDU with a fresh sequence and fires with the matching response."""
        d = self.session.send_request(submit())
        (request,) = self.written()
        self.assertEqual(request.command_id, c.SUBMIT_SM)
        self.assertEqual(request.sequence, 2)  # 1 went to the bind
        self.answer(request, message_id="abc")
        response = self.successResultOf(d)
        self.assertEqual((response.command_id, response.params["message_id"]), (c.SUBMIT_SM_RESP, "abc"))

    def test_error_status_fires_with_response(self) -> None:
        """A submit_sm_resp with an error status still fires the Deferred: the caller reads the status."""
        d = self.session.send_request(submit())
        (request,) = self.written()
        self.answer(request, status=c.ESME_RTHROTTLED)
        self.assertEqual(self.successResultOf(d).status, c.ESME_RTHROTTLED)

    def test_window_limits_outstanding(self) -> None:
        """With a window of N, request N+1 waits inside the session until a response frees a slot."""
        ds = [self.session.send_request(submit()) for _ in range(self.window + 1)]
        requests = self.written()
        self.assertEqual(len(requests), self.window)
        self.assertEqual(self.session.outstanding, self.window)
        self.assertEqual(self.session.queued, 1)
        self.assertEqual(self.session.window_free, 0)
        self.answer(requests[1], message_id="m1")
        self.successResultOf(ds[1])
        (late,) = self.written()
        self.assertEqual(late.command_id, c.SUBMIT_SM)
        self.assertEqual(self.session.outstanding, self.window)
        self.assertEqual(self.session.queued, 0)
        self.answer(late, message_id="m4")
        self.assertEqual(self.successResultOf(ds[3]).params["message_id"], "m4")

    def test_queued_timeout_starts_when_written(self) -> None:
        """A queued request's response timeout counts from when it is written, not when it was queued."""
        ds = [self.session.send_request(submit()) for _ in range(self.window + 1)]
        requests = self.written()
        self.clock.advance(TIMEOUT - 1)
        self.answer(requests[0])
        self.written()
        self.clock.advance(1)  # the other first-window requests expire now
        self.failureResultOf(ds[1], ResponseTimeout)
        self.failureResultOf(ds[2], ResponseTimeout)
        self.assertNoResult(ds[3])
        self.clock.advance(TIMEOUT - 1.5)
        self.assertNoResult(ds[3])
        self.clock.advance(0.5)
        self.failureResultOf(ds[3], ResponseTimeout)

    def test_when_window_free(self) -> None:
        """when_window_free fires at once with a free slot, and otherwise when a response frees one."""
        self.successResultOf(self.session.when_window_free())
        for _ in range(self.window):
            self.session.send_request(submit())
        waiting = self.session.when_window_free()
        self.assertNoResult(waiting)
        self.answer(self.written()[0])
        self.successResultOf(waiting)
        self.assertEqual(self.session.window_free, 1)

    def test_response_timeout(self) -> None:
        """No response within response_timeout_s fails the request with ResponseTimeout and frees its slot."""
        d = self.session.send_request(submit())
        self.clock.advance(TIMEOUT - 0.5)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        error = self.failureResultOf(d, ResponseTimeout).value
        self.assertEqual(error.command_id, c.SUBMIT_SM)
        self.assertEqual(self.session.outstanding, 0)
        self.assertFalse(self.transport.disconnecting)

    def test_timeouts_are_per_request(self) -> None:
        """Requests written at different times time out at their own deadlines."""
        first = self.session.send_request(submit())
        self.clock.advance(4)
        second = self.session.send_request(submit())
        self.clock.advance(6)
        self.failureResultOf(first, ResponseTimeout)
        self.assertNoResult(second)
        self.clock.advance(4)
        self.failureResultOf(second, ResponseTimeout)

    def test_late_response_ignored(self) -> None:
        """A response arriving after its request timed out is logged and ignored."""
        d = self.session.send_request(submit())
        (request,) = self.written()
        self.clock.advance(TIMEOUT)
        self.failureResultOf(d, ResponseTimeout)
        with capture_logs() as logs:
            self.answer(request, message_id="late")
        self.assertEqual([e["event"] for e in logs], ["late_response"])
        self.assertEqual(self.written(), [])
        self.assertEqual(self.session.outstanding, 0)
        self.assertEqual(self.session.state, "bound")

    def test_sequence_wraps_and_skips_outstanding(self) -> None:
        """After 0x7FFFFFFF the sequence wraps to 1, skipping numbers still outstanding."""
        self.session._last_sequence = 0
        self.session.send_request(submit())  # takes 1 and stays outstanding
        self.session._last_sequence = c.MAX_SEQUENCE - 1
        self.session.send_request(submit())
        self.session.send_request(submit())
        self.assertEqual([p.sequence for p in self.written()], [1, c.MAX_SEQUENCE, 2])

    def test_generic_nack_answers_request(self) -> None:
        """A generic_nack carrying our request's sequence fires that request with the nack."""
        d = self.session.send_request(submit())
        (request,) = self.written()
        self.feed(Pdu(c.GENERIC_NACK, request.sequence, c.ESME_RINVCMDLEN))
        nack = self.successResultOf(d)
        self.assertEqual((nack.command_id, nack.status), (c.GENERIC_NACK, c.ESME_RINVCMDLEN))
        self.assertEqual(self.session.outstanding, 0)

    def test_generic_nack_unknown_sequence(self) -> None:
        """A generic_nack with sequence 0 or an unknown one is logged; nothing else happens."""
        d = self.session.send_request(submit())
        with capture_logs() as logs:
            self.feed(Pdu(c.GENERIC_NACK, 0, c.ESME_RINVCMDLEN))
            self.feed(Pdu(c.GENERIC_NACK, 999, c.ESME_RINVCMDLEN))
        self.assertEqual([e["event"] for e in logs], ["generic_nack_unmatched"] * 2)
        self.assertNoResult(d)
        self.written()
        self.assertEqual(self.written(), [])

    def test_mismatched_response_ignored(self) -> None:
        """A response of the wrong command for a pending sequence does not resolve the request."""
        d = self.session.send_request(submit())
        (request,) = self.written()
        self.feed(Pdu(c.DELIVER_SM_RESP, request.sequence, 0, {"message_id": ""}))
        self.assertNoResult(d)

    def test_malformed_response_honours_status(self) -> None:
        """A response whose body cannot be decoded still resolves its request with the header's status."""
        d = self.session.send_request(submit())
        (request,) = self.written()
        self.session.dataReceived(struct.pack(">IIII", 19, c.SUBMIT_SM_RESP, 0, request.sequence) + b"abc")
        response = self.successResultOf(d)
        self.assertEqual((response.status, response.params), (0, {}))
        self.assertEqual(self.written(), [])  # no generic_nack for a response

    def test_not_bound(self) -> None:
        """send_request on a session that is not bound fails with SessionClosed, never sent."""
        self.transport = StringTransport()
        session = self.make_session()
        error = self.failureResultOf(session.send_request(submit()), SessionClosed).value
        self.assertFalse(error.sent)
        self.assertEqual(self.transport.value(), b"")

    def test_encode_error(self) -> None:
        """A request that cannot be encoded fails at once and takes no slot."""
        d = self.session.send_request(Pdu(c.SUBMIT_SM, params={"short_message": b"x" * 300}))
        self.failureResultOf(d, ValueError)
        self.assertEqual(self.session.outstanding, 0)

    def test_cancelled_while_queued(self) -> None:
        """A queued request cancelled by its caller is never written."""
        for _ in range(self.window):
            self.session.send_request(submit())
        queued = self.session.send_request(submit())
        queued.cancel()
        self.failureResultOf(queued)
        requests = self.written()
        self.answer(requests[0])
        self.assertEqual(self.written(), [])


class KeepaliveTests(SessionTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bind()

    def test_enquire_link_on_schedule(self) -> None:
        """Once bound, enquire_link goes out every enquire_link_s."""
        self.clock.advance(ENQUIRE - 1)
        self.assertEqual(self.written(), [])
        self.clock.advance(1)
        (probe,) = self.written()
        self.assertEqual(probe.command_id, c.ENQUIRE_LINK)
        self.answer(probe)
        self.clock.advance(ENQUIRE)
        self.assertEqual([p.command_id for p in self.written()], [c.ENQUIRE_LINK])
        self.assertFalse(self.transport.disconnecting)

    def test_enquire_link_bypasses_full_window(self) -> None:
        """enquire_link is written even when the window is full and requests are queued."""
        self.clock.advance(ENQUIRE - 1)
        for _ in range(self.window + 2):
            self.session.send_request(submit())
        self.written()
        self.clock.advance(1)
        self.assertEqual([p.command_id for p in self.written()], [c.ENQUIRE_LINK])

    def test_enquire_link_timeout_drops_link(self) -> None:
        """No enquire_link_resp within the response timeout drops the link."""
        self.clock.advance(ENQUIRE)
        self.written()
        with capture_logs() as logs:
            self.clock.advance(TIMEOUT)
        self.assertIn("enquire_link_timeout", [e["event"] for e in logs])
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(self.session.state, "closed")

    def test_no_enquire_link_after_link_lost(self) -> None:
        """The keepalive stops when the link goes."""
        self.session.connectionLost(Failure(ConnectionLost()))
        self.clock.advance(ENQUIRE * 3)
        self.assertEqual(self.written(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_answers_peer_enquire_link(self) -> None:
        """An enquire_link from the SMSC gets enquire_link_resp with its sequence."""
        self.feed(Pdu(c.ENQUIRE_LINK, 77))
        (resp,) = self.written()
        self.assertEqual((resp.command_id, resp.status, resp.sequence), (c.ENQUIRE_LINK_RESP, 0, 77))


class InboundTests(SessionTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bind()

    def test_deliver_ok(self) -> None:
        """deliver_sm goes to on_deliver; its status 0 is answered in deliver_sm_resp with the same sequence."""
        self.feed(deliver(41))
        self.assertEqual(self.delivered[0].params["source_addr"], "96891234567")
        (resp,) = self.written()
        self.assertEqual((resp.command_id, resp.status, resp.sequence), (c.DELIVER_SM_RESP, 0, 41))

    def test_deliver_temporary_failure(self) -> None:
        """When on_deliver answers ESME_RX_T_APPN, so does deliver_sm_resp."""
        self.deliver_results.append(c.ESME_RX_T_APPN)
        self.feed(deliver(42))
        (resp,) = self.written()
        self.assertEqual((resp.status, resp.sequence), (c.ESME_RX_T_APPN, 42))

    def test_deliver_waits_for_deferred(self) -> None:
        """deliver_sm_resp is written only when on_deliver's Deferred fires (after the store commits)."""
        pending: Deferred[int] = Deferred()
        self.deliver_results.append(pending)
        self.feed(deliver(43))
        self.assertEqual(self.written(), [])
        pending.callback(c.ESME_ROK)
        (resp,) = self.written()
        self.assertEqual((resp.status, resp.sequence), (0, 43))

    def test_deliver_failed_deferred(self) -> None:
        """A failing on_deliver Deferred is answered ESME_RX_T_APPN so the SMSC redelivers."""
        self.deliver_results.append(fail(RuntimeError("disk full")))
        self.feed(deliver(44))
        (resp,) = self.written()
        self.assertEqual((resp.status, resp.sequence), (c.ESME_RX_T_APPN, 44))

    def test_deliver_handler_raises(self) -> None:
        """An exception raised by on_deliver is answered ESME_RX_T_APPN and the session goes on."""
        def explode(pdu: Pdu) -> int:
            raise RuntimeError("bug")

        self.session._on_deliver = explode
        self.feed(deliver(45))
        (resp,) = self.written()
        self.assertEqual(resp.status, c.ESME_RX_T_APPN)
        self.assertEqual(self.session.state, "bound")

    def test_deliver_answers_out_of_order(self) -> None:
        """Answers go out as each on_deliver completes, whatever order the deliver_sm came in."""
        first: Deferred[int] = Deferred()
        second: Deferred[int] = Deferred()
        self.deliver_results.extend([first, second])
        self.feed(deliver(46))
        self.feed(deliver(47))
        second.callback(c.ESME_ROK)
        first.callback(c.ESME_RX_T_APPN)
        self.assertEqual([(p.sequence, p.status) for p in self.written()], [(47, 0), (46, c.ESME_RX_T_APPN)])

    def test_data_sm(self) -> None:
        """data_sm goes to on_deliver too and is answered with data_sm_resp."""
        self.feed(deliver(48, c.DATA_SM))
        self.assertEqual(self.delivered[0].command_id, c.DATA_SM)
        (resp,) = self.written()
        self.assertEqual((resp.command_id, resp.status, resp.sequence), (c.DATA_SM_RESP, 0, 48))

    def test_answer_after_link_lost_dropped(self) -> None:
        """An answer ready after the link went is not written; the SMSC will redeliver."""
        pending: Deferred[int] = Deferred()
        self.deliver_results.append(pending)
        self.feed(deliver(49))
        self.session.connectionLost(Failure(ConnectionLost()))
        pending.callback(0)
        self.assertEqual(self.written(), [])

    def test_unknown_command_id(self) -> None:
        """An unknown command_id gets generic_nack ESME_RINVCMDID and the session goes on."""
        self.session.dataReceived(struct.pack(">IIII", 16, 0x00000099, 0, 50))
        (nack,) = self.written()
        self.assertEqual((nack.command_id, nack.status, nack.sequence), (c.GENERIC_NACK, c.ESME_RINVCMDID, 50))
        self.assertFalse(self.transport.disconnecting)
        self.feed(Pdu(c.ENQUIRE_LINK, 51))
        self.assertEqual(self.written()[0].command_id, c.ENQUIRE_LINK_RESP)

    def test_malformed_body(self) -> None:
        """A request whose body cannot be decoded gets generic_nack with the decoder's status and its sequence."""
        with capture_logs() as logs:
            self.session.dataReceived(struct.pack(">IIII", 20, c.DELIVER_SM, 0, 52) + b"USSD")
        (nack,) = self.written()
        self.assertEqual((nack.command_id, nack.status, nack.sequence), (c.GENERIC_NACK, c.ESME_RINVMSGLEN, 52))
        self.assertEqual(self.delivered, [])
        self.assertEqual(self.session.state, "bound")
        self.assertEqual([e["event"] for e in logs], ["pdu_rejected"])

    def test_unserved_commands(self) -> None:
        """query_sm or submit_sm from the SMSC get their own _resp with ESME_RINVCMDID."""
        self.feed(Pdu(c.QUERY_SM, 53, params={"message_id": "1"}))
        self.feed(Pdu(c.SUBMIT_SM, 54, params={"short_message": b"x"}))
        self.assertEqual(
            [(p.command_id, p.status, p.sequence) for p in self.written()],
            [(c.QUERY_SM_RESP, c.ESME_RINVCMDID, 53), (c.SUBMIT_SM_RESP, c.ESME_RINVCMDID, 54)],
        )

    def test_alert_notification_not_answered(self) -> None:
        """alert_notification has no response in SMPP v3.4, so none is written."""
        self.feed(Pdu(c.ALERT_NOTIFICATION, 55, params={"source_addr": "96891234567", "esme_addr": "smsgw"}))
        self.assertEqual(self.written(), [])

    def test_unbind_from_peer(self) -> None:
        """An unbind from the SMSC is answered with unbind_resp, then the link is closed."""
        d = self.session.send_request(submit())
        self.written()
        self.feed(Pdu(c.UNBIND, 56))
        (resp,) = self.written()
        self.assertEqual((resp.command_id, resp.status, resp.sequence), (c.UNBIND_RESP, 0, 56))
        self.assertTrue(self.transport.disconnecting)
        self.session.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(self.failureResultOf(d, SessionClosed).value.sent)

    def test_bad_length_closes(self) -> None:
        """An impossible command_length is nacked with ESME_RINVCMDLEN and the session closes."""
        self.session.dataReceived(struct.pack(">IIII", 15, c.DELIVER_SM, 0, 57))
        (nack,) = self.written()
        self.assertEqual((nack.status, nack.sequence), (c.ESME_RINVCMDLEN, 57))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.session.state, "closed")


class NotBoundInboundTests(SessionTestMixin, SynchronousTestCase):
    def test_deliver_before_bound(self) -> None:
        """deliver_sm before our bind is answered is refused with ESME_RINVBNDSTS, not delivered."""
        self.session.bind()
        self.written()
        self.feed(deliver(60))
        (resp,) = self.written()
        self.assertEqual((resp.command_id, resp.status, resp.sequence), (c.DELIVER_SM_RESP, c.ESME_RINVBNDSTS, 60))
        self.assertEqual(self.delivered, [])

    def test_enquire_link_before_bound(self) -> None:
        """enquire_link is answered in any state."""
        self.feed(Pdu(c.ENQUIRE_LINK, 61))
        self.assertEqual(self.written()[0].command_id, c.ENQUIRE_LINK_RESP)


class LinkLostTests(SessionTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bind()

    def test_connection_lost_fails_everything(self) -> None:
        """connectionLost fails written requests (sent=True), queued ones (sent=False) and window waiters."""
        ds = [self.session.send_request(submit()) for _ in range(self.window + 1)]
        waiting = self.session.when_window_free()
        reason = Failure(ConnectionLost())
        with capture_logs() as logs:
            self.session.connectionLost(reason)
        sent = [self.failureResultOf(d, SessionClosed).value.sent for d in ds]
        self.assertEqual(sent, [True] * self.window + [False])
        self.failureResultOf(waiting, SessionClosed)
        self.assertEqual(self.lost, [(self.session, reason)])
        self.assertEqual(self.session.state, "closed")
        self.assertIn("link_lost", [e["event"] for e in logs])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_requests_after_close(self) -> None:
        """After the link is gone, send_request and when_window_free fail at once."""
        self.session.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(self.session.send_request(submit()), SessionClosed)
        self.failureResultOf(self.session.when_window_free(), SessionClosed)

    def test_on_lost_errors_contained(self) -> None:
        """An exception in on_lost is logged, not raised into the reactor."""
        def broken(session: EsmeSession, reason: Failure) -> None:
            raise RuntimeError("listener bug")

        self.session._on_lost = broken
        with capture_logs() as logs:
            self.session.connectionLost(Failure(ConnectionLost()))
        self.assertIn("on_lost_failed", [e["event"] for e in logs])


class UnbindTests(SessionTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bind()

    def test_unbind_idle(self) -> None:
        """unbind() sends unbind, waits for unbind_resp, closes the link and fires."""
        d = self.session.unbind()
        (request,) = self.written()
        self.assertEqual(request.command_id, c.UNBIND)
        self.assertNoResult(d)
        self.answer(request)
        self.successResultOf(d)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.session.state, "closed")

    def test_unbind_waits_for_outstanding(self) -> None:
        """unbind() lets outstanding requests get their responses first and refuses new ones."""
        first = self.session.send_request(submit())
        (request,) = self.written()
        queued = [self.session.send_request(submit()) for _ in range(self.window)]
        self.written()
        d = self.session.unbind()
        self.assertEqual(self.session.state, "unbinding")
        self.assertFalse(self.failureResultOf(queued[-1], SessionClosed).value.sent)
        self.failureResultOf(self.session.send_request(submit()), SessionClosed)
        self.assertEqual(self.written(), [])
        self.answer(request, message_id="m1")
        self.successResultOf(first)

    def test_unbind_sent_after_drain(self) -> None:
        """The unbind goes out as soon as the last outstanding response arrives."""
        for _ in range(2):
            self.session.send_request(submit())
        requests = self.written()
        d = self.session.unbind()
        self.answer(requests[0])
        self.assertEqual(self.written(), [])
        self.answer(requests[1])
        (unbind,) = self.written()
        self.assertEqual(unbind.command_id, c.UNBIND)
        self.answer(unbind)
        self.successResultOf(d)

    def test_unbind_waits_for_inbound_answers(self) -> None:
        """A deliver_sm still being stored is answered before the unbind goes out."""
        pending: Deferred[int] = Deferred()
        self.deliver_results.append(pending)
        self.feed(deliver(70))
        self.session.unbind()
        self.assertEqual(self.written(), [])
        pending.callback(0)
        self.assertEqual([(p.command_id, p.sequence) for p in self.written()],
                         [(c.DELIVER_SM_RESP, 70), (c.UNBIND, 2)])

    def test_unbind_always_fires(self) -> None:
        """With an SMSC that answers nothing, unbind() still fires within two response timeouts."""
        request = self.session.send_request(submit())
        d = self.session.unbind()
        self.clock.advance(TIMEOUT)
        self.failureResultOf(request, ResponseTimeout)
        self.assertNoResult(d)
        self.assertEqual([p.command_id for p in self.written()][-1], c.UNBIND)
        self.clock.advance(TIMEOUT)
        self.successResultOf(d)
        self.assertTrue(self.transport.disconnected)

    def test_unbind_link_lost(self) -> None:
        """If the link goes while unbinding, unbind() fires."""
        d = self.session.unbind()
        self.session.connectionLost(Failure(ConnectionLost()))
        self.successResultOf(d)

    def test_unbind_twice(self) -> None:
        """A second unbind() shares the first one's outcome and sends nothing more."""
        first = self.session.unbind()
        second = self.session.unbind()
        (request,) = self.written()
        self.answer(request)
        self.successResultOf(first)
        self.successResultOf(second)
        self.successResultOf(self.session.unbind())

    def test_unbind_stops_keepalive(self) -> None:
        """No enquire_link goes out once unbinding has started."""
        self.session.unbind()
        self.written()
        self.clock.advance(ENQUIRE)
        self.assertEqual(self.written(), [])


class UnbindUnboundTests(SessionTestMixin, SynchronousTestCase):
    def test_unbind_before_bound(self) -> None:
        """unbind() on a session that never bound just closes the link and fires."""
        d = self.session.unbind()
        self.successResultOf(d)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"")


def timed_out_submit() -> tuple[Any, Any, Any, int, list]:
    """A bound session (StringTransport, Clock, response timeout 1 s) whose submit_sm timed out:
    (session, transport, clock, its sequence, what its `late` Deferred fired with)."""
    clock = Clock()
    session = EsmeSession(carrier="t", system_id="s", password="p", clock=clock, response_timeout_s=1.0,
                          on_deliver=lambda pdu: c.ESME_ROK)
    transport = StringTransport()
    session.makeConnection(transport)
    session.bind()
    bind = decode(transport.value())
    transport.clear()
    session.dataReceived(encode(Pdu(c.BIND_TRANSCEIVER_RESP, bind.sequence, 0, {"system_id": "SMSC"})))
    failures: list = []
    d = session.send_request(Pdu(c.SUBMIT_SM, 0, 0, {"source_addr": "90091", "destination_addr": "96891234567",
                                                      "short_message": b"hi"}))
    d.addErrback(failures.append)
    sequence = decode(transport.value()).sequence
    clock.advance(1.5)
    [failure] = failures
    assert failure.check(ResponseTimeout)
    late: list = []
    failure.value.late.addCallback(late.append)
    return session, transport, clock, sequence, late


def test_late_response_is_handed_back_through_the_timeout() -> None:
    """A response arriving after the timeout fires the ResponseTimeout's `late` Deferred."""
    session, _transport, _clock, sequence, late = timed_out_submit()
    session.dataReceived(encode(Pdu(c.SUBMIT_SM_RESP, sequence, 0, {"message_id": "abc"})))
    assert [p.params["message_id"] for p in late] == ["abc"]


def test_late_generic_nack_is_handed_back_too() -> None:
    session, _transport, _clock, sequence, late = timed_out_submit()
    session.dataReceived(encode(Pdu(c.GENERIC_NACK, sequence, c.ESME_RSYSERR)))
    assert [(p.command_id, p.status) for p in late] == [(c.GENERIC_NACK, c.ESME_RSYSERR)]


def test_late_settles_as_none_once_the_grace_is_over() -> None:
    """No answer within the grace (6 timeouts): `late` fires None, so the caller may resend, and
    an answer after that is only logged."""
    session, _transport, clock, sequence, late = timed_out_submit()
    clock.advance(LATE_RESPONSE_GRACE_FACTOR * 1.0 - 0.1)
    assert late == []
    clock.advance(0.2)
    assert late == [None]
    session.dataReceived(encode(Pdu(c.SUBMIT_SM_RESP, sequence, 0, {"message_id": "abc"})))
    assert late == [None]


def test_late_settles_as_none_when_the_link_goes() -> None:
    session, transport, _clock, _sequence, late = timed_out_submit()
    session.connectionLost(Failure(ConnectionLost()))
    assert late == [None]
