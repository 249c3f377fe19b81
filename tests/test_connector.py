"""CarrierConnector with a fake endpoint and a Clock: attempts, backoff, bind, refusal, shutdown."""

from __future__ import annotations

import struct
from typing import Any

from structlog.testing import capture_logs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from smsgw.smpp import constants as c
from smsgw.smpp.connector import CarrierConnector
from smsgw.smpp.pdu import Pdu, decode, encode
from smsgw.smpp.session import EsmeSession

INITIAL = 1.0
MAXIMUM = 60.0
TIMEOUT = 10.0


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """An endpoint whose connection attempts the test completes or fails by hand."""

    def __init__(self) -> None:
        self.attempts: list[tuple[Any, Deferred[Any]]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.attempts.append((factory, d))
        return d

    def refuse(self) -> None:
        _factory, d = self.attempts[-1]
        d.errback(ConnectionRefusedError())

    def accept(self) -> FakeLink:
        factory, d = self.attempts[-1]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        d.callback(protocol)
        return FakeLink(protocol, transport)


class FakeLink:
    """The SMSC's end of one accepted connection."""

    def __init__(self, protocol: Any, transport: StringTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.lost = False

    def written(self) -> list[Pdu]:
        data = self.transport.value()
        self.transport.clear()
        out, offset = [], 0
        while offset < len(data):
            (length,) = struct.unpack_from(">I", data, offset)
            out.append(decode(data[offset : offset + length]))
            offset += length
        return out

    def answer(self, request: Pdu, status: int = 0, **params: Any) -> None:
        self.protocol.dataReceived(encode(Pdu(request.command_id | c.RESPONSE_BIT, request.sequence, status, params)))

    def answer_bind(self, status: int = 0) -> Pdu:
        (request,) = self.written()
        assert request.command_id in c.BIND_COMMANDS, request
        self.answer(request, status, **({"system_id": "SMSC"} if status == 0 else {}))
        return request

    def close(self, reason: Failure | None = None) -> None:
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(reason or Failure(ConnectionDone()))


class ConnectorTestMixin:
    bind_mode = "transceiver"

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoints: list[FakeEndpoint] = []
        self.delivered: list[Pdu] = []
        self.states: list[str] = []
        self.connector = self.make_connector()
        self.connector.add_state_listener(lambda conn: self.states.append(conn.state))

    def make_connector(self, **overrides: Any) -> CarrierConnector:
        def endpoint_factory() -> FakeEndpoint:
            endpoint = FakeEndpoint()
            self.endpoints.append(endpoint)
            return endpoint

        args: dict[str, Any] = dict(
            carrier="ooredoo",
            host="smsc.example",
            port=2775,
            system_id="smsgw",
            password="secret",
            system_type="",
            bind_mode=self.bind_mode,
            window=5,
            response_timeout_s=TIMEOUT,
            enquire_link_s=30.0,
            reconnect_initial_s=INITIAL,
            reconnect_max_s=MAXIMUM,
            on_deliver=self.on_deliver,
            clock=self.clock,
            reactor=self.clock,
            endpoint_factory=endpoint_factory,
            jitter=lambda: 0.0,
        )
        args.update(overrides)
        return CarrierConnector(**args)

    def on_deliver(self, pdu: Pdu) -> int:
        self.delivered.append(pdu)
        return 0

    @property
    def endpoint(self) -> FakeEndpoint:
        return self.endpoints[0]

    def attempts(self, index: int = 0) -> int:
        return len(self.endpoints[index].attempts)


class TransceiverTests(ConnectorTestMixin, SynchronousTestCase):
    def test_connects_and_binds(self) -> None:
        """Starting the service connects, binds as transceiver, and then offers the session."""
        self.connector.startService()
        self.assertEqual(self.attempts(), 1)
        self.assertEqual(self.connector.state, "binding")
        waiting = self.connector.when_transmitter()
        self.assertNoResult(waiting)
        link = self.endpoint.accept()
        request = link.answer_bind()
        self.assertEqual(request.command_id, c.BIND_TRANSCEIVER)
        self.assertEqual(request.params["system_id"], "smsgw")
        session = self.successResultOf(waiting)
        self.assertIsInstance(session, EsmeSession)
        self.assertIs(self.connector.transmitter(), session)
        self.assertTrue(self.connector.is_bound)
        self.assertEqual(self.connector.state, "bound")
        self.assertEqual(self.connector.bound_since, 0.0)
        self.assertEqual(self.states, ["bound"])
        self.assertIs(self.successResultOf(self.connector.when_transmitter()), session)

    def test_inbound_reaches_on_deliver(self) -> None:
        """deliver_sm on the bound link reaches on_deliver and is answered."""
        self.connector.startService()
        link = self.endpoint.accept()
        link.answer_bind()
        link.protocol.dataReceived(encode(Pdu(c.DELIVER_SM, 5, params={"source_addr": "96891234567"})))
        self.assertEqual(len(self.delivered), 1)
        (resp,) = link.written()
        self.assertEqual((resp.command_id, resp.status, resp.sequence), (c.DELIVER_SM_RESP, 0, 5))

    def test_retries_with_backoff(self) -> None:
        """Failed connections are retried after 1, 2, 4... seconds, capped at reconnect_max_s."""
        self.connector.startService()
        expected_delays = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
        for n, delay in enumerate(expected_delays, start=1):
            self.endpoint.refuse()
            self.clock.advance(delay - 0.01)
            self.assertEqual(self.attempts(), n, f"attempt {n + 1} came early")
            self.clock.advance(0.01)
            self.assertEqual(self.attempts(), n + 1)
        self.assertIn("Connection was refused", self.connector.last_error or "")

    def test_attempt_counter_resets_after_bind(self) -> None:
        """After a successful bind, losing the link is retried after the initial delay again."""
        self.connector.startService()
        for delay in (1.0, 2.0, 4.0):
            self.endpoint.refuse()
            self.clock.advance(delay)
        self.assertEqual(self.attempts(), 4)
        link = self.endpoint.accept()
        link.answer_bind()
        link.close(Failure(ConnectionLost()))
        self.assertIsNone(self.connector.transmitter())
        self.assertEqual(self.connector.state, "binding")
        self.assertIsNone(self.connector.bound_since)
        self.assertIn("link lost", self.connector.last_error or "")
        self.clock.advance(INITIAL)
        self.assertEqual(self.attempts(), 5)

    def test_tcp_connect_without_bind_keeps_backing_off(self) -> None:
        """A TCP connect whose bind fails does not reset the backoff: delays keep doubling."""
        self.connector.startService()
        for n, delay in enumerate([1.0, 2.0, 4.0], start=1):
            link = self.endpoint.accept()
            link.answer_bind(status=c.ESME_RSYSERR)
            self.assertTrue(link.transport.disconnecting, "the refused link must be closed")
            link.close()  # must not upset ClientService's state machine
            self.clock.advance(delay - 0.01)
            self.assertEqual(self.attempts(), n)
            self.clock.advance(0.01)
            self.assertEqual(self.attempts(), n + 1)
        self.assertEqual(self.connector.state, "binding")
        self.assertIn("ESME_RSYSERR", self.connector.last_error or "")

    def test_bind_timeout_counts_as_failure(self) -> None:
        """An SMSC that accepts TCP but never answers the bind is dropped and retried with backoff."""
        self.connector.startService()
        link = self.endpoint.accept()
        self.clock.advance(TIMEOUT)
        self.assertTrue(link.transport.disconnected)
        link.close()
        self.clock.advance(INITIAL)
        self.assertEqual(self.attempts(), 2)

    def test_link_lost_during_bind(self) -> None:
        """A link that drops before the bind is answered counts as a failed attempt."""
        self.connector.startService()
        link = self.endpoint.accept()
        link.close(Failure(ConnectionLost()))
        self.clock.advance(INITIAL)
        self.assertEqual(self.attempts(), 2)

    def test_fatal_refusal_stops_retrying(self) -> None:
        """A bad password is logged CRITICAL once and the connector stops trying."""
        self.connector.startService()
        link = self.endpoint.accept()
        with capture_logs() as logs:
            link.answer_bind(status=c.ESME_RINVPASWD)
            link.close()
            self.clock.advance(3600)
        self.assertEqual(self.attempts(), 1)
        self.assertEqual(self.connector.state, "refused")
        self.assertIn("refused", self.states)
        self.assertFalse(self.connector.is_bound)
        refusals = [e for e in logs if e["event"] == "credentials_refused"]
        self.assertEqual(len(refusals), 1)
        self.assertEqual(refusals[0]["log_level"], "critical")
        self.assertIn("fix the config", refusals[0]["message"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_fatal_refusal_statuses(self) -> None:
        """ESME_RBINDFAIL and ESME_RINVSYSID stop retrying too."""
        for status in (c.ESME_RBINDFAIL, c.ESME_RINVSYSID):
            self.endpoints.clear()
            connector = self.make_connector()
            connector.startService()
            self.endpoints[0].accept().answer_bind(status=status)
            self.clock.advance(3600)
            self.assertEqual(len(self.endpoints[0].attempts), 1)
            self.assertEqual(connector.state, "refused")

    def test_stop_unbinds(self) -> None:
        """stopService unbinds the live session, waits for unbind_resp and the close, then fires."""
        self.connector.startService()
        link = self.endpoint.accept()
        link.answer_bind()
        stopped = self.connector.stopService()
        (unbind,) = link.written()
        self.assertEqual(unbind.command_id, c.UNBIND)
        self.assertNoResult(stopped)
        link.answer(unbind)
        self.assertTrue(link.transport.disconnecting)
        link.close()
        self.successResultOf(stopped)
        self.assertEqual(self.connector.state, "stopped")
        self.clock.advance(3600)
        self.assertEqual(self.attempts(), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_always_fires(self) -> None:
        """With an SMSC that never answers unbind nor closes, stopService still fires, bounded by timeouts."""
        self.connector.startService()
        link = self.endpoint.accept()
        link.answer_bind()
        stopped = self.connector.stopService()
        self.clock.advance(TIMEOUT)  # unbind_resp never comes: the link is aborted
        self.assertTrue(link.transport.disconnected)
        self.assertNoResult(stopped)
        self.clock.advance(TIMEOUT)  # and the close is never reported either
        self.successResultOf(stopped)

    def test_stop_while_binding(self) -> None:
        """Stopping while a bind is in flight aborts that link and stops without retrying."""
        self.connector.startService()
        link = self.endpoint.accept()
        stopped = self.connector.stopService()
        self.assertTrue(link.transport.disconnected)
        link.close()
        self.successResultOf(stopped)
        self.clock.advance(3600)
        self.assertEqual(self.attempts(), 1)

    def test_stop_while_waiting_to_retry(self) -> None:
        """Stopping between attempts cancels the pending retry."""
        self.connector.startService()
        self.endpoint.refuse()
        self.successResultOf(self.connector.stopService())
        self.clock.advance(3600)
        self.assertEqual(self.attempts(), 1)

    def test_stop_fails_transmitter_waiters(self) -> None:
        """when_transmitter waiters get CancelledError when the connector stops."""
        self.connector.startService()
        waiting = self.connector.when_transmitter()
        self.connector.stopService()
        self.failureResultOf(waiting, CancelledError)

    def test_state_listener_errors_contained(self) -> None:
        """A failing state listener is logged and does not break the bind."""
        def broken(connector: CarrierConnector) -> None:
            raise RuntimeError("listener bug")

        self.connector.add_state_listener(broken)
        self.connector.startService()
        with capture_logs() as logs:
            self.endpoint.accept().answer_bind()
        self.assertTrue(self.connector.is_bound)
        self.assertIn("state_listener_failed", [e["event"] for e in logs])


class TxRxTests(ConnectorTestMixin, SynchronousTestCase):
    bind_mode = "tx_rx"

    def test_binds_two_sessions(self) -> None:
        """tx_rx mode binds a transmitter for sending and a receiver for receiving."""
        self.connector.startService()
        self.assertEqual((self.attempts(0), self.attempts(1)), (1, 1))
        tx = self.endpoints[0].accept()
        rx = self.endpoints[1].accept()
        self.assertEqual(tx.answer_bind().command_id, c.BIND_TRANSMITTER)
        self.assertIsNotNone(self.connector.transmitter())
        self.assertFalse(self.connector.is_bound)
        self.assertEqual(rx.answer_bind().command_id, c.BIND_RECEIVER)
        self.assertTrue(self.connector.is_bound)
        self.assertEqual(self.connector.transmitter().bind_command, c.BIND_TRANSMITTER)
        self.assertEqual(len(self.connector.sessions()), 2)

    def test_receiver_does_not_transmit(self) -> None:
        """A bound receiver alone is not offered as a transmitter."""
        self.connector.startService()
        waiting = self.connector.when_transmitter()
        self.endpoints[1].accept().answer_bind()
        self.assertIsNone(self.connector.transmitter())
        self.assertNoResult(waiting)
        self.endpoints[0].accept().answer_bind()
        self.assertEqual(self.successResultOf(waiting).bind_command, c.BIND_TRANSMITTER)

    def test_halves_reconnect_independently(self) -> None:
        """Losing the receiver does not touch the transmitter."""
        self.connector.startService()
        tx = self.endpoints[0].accept()
        tx.answer_bind()
        rx = self.endpoints[1].accept()
        rx.answer_bind()
        rx.close(Failure(ConnectionLost()))
        self.assertIsNotNone(self.connector.transmitter())
        self.assertEqual(self.connector.state, "binding")
        self.clock.advance(INITIAL)
        self.assertEqual((self.attempts(0), self.attempts(1)), (1, 2))

    def test_stop_unbinds_both(self) -> None:
        """stopService unbinds both halves."""
        self.connector.startService()
        links = [endpoint.accept() for endpoint in self.endpoints]
        for link in links:
            link.answer_bind()
        stopped = self.connector.stopService()
        for link in links:
            (unbind,) = link.written()
            self.assertEqual(unbind.command_id, c.UNBIND)
            link.answer(unbind)
            link.close()
        self.successResultOf(stopped)
