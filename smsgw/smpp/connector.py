"""Keeps one carrier bound forever: ClientService + exponential backoff, bind in prepareConnection.

Binding inside prepareConnection means ClientService resets its attempt counter only after a
successful bind, not at TCP connect, so an SMSC that accepts TCP and then refuses (or ignores)
the bind keeps backing off instead of being hammered once a second.

ClientService has a gap this module closes: when prepareConnection fails, the TCP connection
stays open, and when it does close, ClientService is told about a disconnect in a state where it
expects none (it raises from connectionLost). So each link is wrapped in `_LinkGuard`: a session
that never got bound is closed and buried here, and only the loss of a bound link, the one
ClientService counts as connected, is reported to it.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any, Callable, Literal

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from smsgw.log import get_logger
from smsgw.smpp import constants as c
from smsgw.smpp.pdu import Pdu
from smsgw.smpp.session import BindRefused, DeliverHandler, EsmeSession

log = get_logger(__name__)

BindMode = Literal["transceiver", "tx_rx"]
StateListener = Callable[["CarrierConnector"], None]

BINDING = "binding"
BOUND = "bound"
REFUSED = "refused"
STOPPED = "stopped"


class _Link:
    """One ClientService and the session it currently keeps bound."""

    __slots__ = ("role", "bind_command", "sends", "service", "session", "connecting", "built", "refused")

    def __init__(self, role: str, bind_command: int, sends: bool) -> None:
        self.role = role
        self.bind_command = bind_command
        self.sends = sends
        self.service: ClientService | None = None
        self.session: EsmeSession | None = None  # bound and usable
        self.connecting: EsmeSession | None = None  # connected, bind not yet answered
        self.built: EsmeSession | None = None  # hand-off from the session factory to the guard
        self.refused = False


class _LinkGuard(Protocol):
    """Sits between the transport and ClientService's protocol proxy (see module docstring)."""

    def __init__(self, proxy: IProtocol, session: EsmeSession) -> None:
        self.proxy = proxy
        self.session = session

    def makeConnection(self, transport: Any) -> None:
        self.connected = 1
        self.transport = transport
        self.proxy.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        # Straight to the session: the proxy's __getattr__ forwarding costs on every read.
        self.session.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = 0
        if self.session.bound_at is not None:
            self.proxy.connectionLost(reason)
        else:
            self.session.connectionLost(reason)


class _GuardFactory(Factory):
    def __init__(self, wrapped: Any, link: _Link) -> None:
        self._wrapped = wrapped
        self._link = link

    def doStart(self) -> None:
        self._wrapped.doStart()

    def doStop(self) -> None:
        self._wrapped.doStop()

    def buildProtocol(self, addr: IAddress) -> _LinkGuard | None:
        proxy = self._wrapped.buildProtocol(addr)
        session = self._link.built
        self._link.built = None
        if proxy is None or session is None:
            return None
        return _LinkGuard(proxy, session)


@implementer(IStreamClientEndpoint)
class _GuardedEndpoint:
    def __init__(self, endpoint: IStreamClientEndpoint, link: _Link, connector: CarrierConnector) -> None:
        self._endpoint = endpoint
        self._link = link
        self._connector = connector

    def connect(self, factory: Any) -> Deferred[IProtocol]:
        d = self._endpoint.connect(_GuardFactory(factory, self._link))
        d.addCallbacks(self._connected, self._connector._connect_failed, errbackArgs=(self._link,))
        return d

    def _connected(self, guard: _LinkGuard) -> IProtocol:
        # Recorded here, not at buildProtocol: an endpoint racing several addresses may build
        # more than one protocol, and only the one it hands back is the link ClientService binds.
        self._link.connecting = guard.session
        # ClientService must get back the proxy it built, not our wrapper.
        return guard.proxy


class _SessionFactory(Factory):
    def __init__(self, connector: CarrierConnector, link: _Link) -> None:
        self._connector = connector
        self._link = link

    def buildProtocol(self, addr: IAddress) -> EsmeSession:
        return self._connector._build_session(self._link)


class CarrierConnector(MultiService):
    """Keeps one carrier bound: one transceiver link, or a transmitter + receiver pair."""

    def __init__(
        self,
        *,
        carrier: str,
        host: str,
        port: int,
        system_id: str,
        password: str,
        system_type: str = "",
        bind_mode: BindMode = "transceiver",
        window: int = 10,
        response_timeout_s: float = 10.0,
        enquire_link_s: float = 30.0,
        reconnect_initial_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        on_deliver: DeliverHandler,
        clock: IReactorTime | None = None,
        reactor: Any = None,
        endpoint_factory: Callable[[], IStreamClientEndpoint] | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        if bind_mode not in ("transceiver", "tx_rx"):
            raise ValueError(f"bind_mode must be 'transceiver' or 'tx_rx', not {bind_mode!r}")
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.carrier = carrier
        self.host = host
        self.port = port
        self.bind_mode = bind_mode
        self.last_error: str | None = None
        self.bound_since: float | None = None
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._reactor = reactor
        self._session_args = dict(
            carrier=carrier,
            system_id=system_id,
            password=password,
            system_type=system_type,
            window=window,
            response_timeout_s=response_timeout_s,
            enquire_link_s=enquire_link_s,
            clock=self._clock,
            on_deliver=on_deliver,
        )
        self._response_timeout_s = response_timeout_s
        self._listeners: list[StateListener] = []
        self._tx_waiters: list[Deferred[EsmeSession]] = []
        self._stopping = False
        self._refusal_logged = False
        self._log = log.bind(carrier=carrier)

        if bind_mode == "transceiver":
            self._links = [_Link("transceiver", c.BIND_TRANSCEIVER, sends=True)]
        else:
            self._links = [
                _Link("transmitter", c.BIND_TRANSMITTER, sends=True),
                _Link("receiver", c.BIND_RECEIVER, sends=False),
            ]
        self._tx_link = self._links[0]

        # backoffPolicy multiplies by `factor` already on the first failure, so halve the
        # initial delay to make the first retry come after reconnect_initial_s.
        policy = backoffPolicy(
            initialDelay=reconnect_initial_s / 2.0,
            maxDelay=reconnect_max_s,
            factor=2.0,
            jitter=jitter if jitter is not None else random.random,
        )
        make_endpoint = endpoint_factory or self._default_endpoint
        for link in self._links:
            service = ClientService(
                _GuardedEndpoint(make_endpoint(), link, self),
                _SessionFactory(self, link),
                retryPolicy=policy,
                clock=self._clock,
                prepareConnection=partial(self._prepare, link),
            )
            service.setName(f"{carrier}:{link.role}")
            service.setServiceParent(self)
            link.service = service

    # ------------------------------------------------------------------ public API

    def transmitter(self) -> EsmeSession | None:
        """A bound session that can submit, or None."""
        session = self._tx_link.session
        if session is not None and session.state == "bound":
            return session
        return None

    def when_transmitter(self) -> Deferred[EsmeSession]:
        """Fires with a bound transmitting session (at once if there is one).

        Fails with CancelledError when the connector stops; stays pending while the carrier
        refuses our credentials (state "refused"), until the service is stopped.
        """
        session = self.transmitter()
        if session is not None:
            return succeed(session)
        d: Deferred[EsmeSession] = Deferred(canceller=self._forget_tx_waiter)
        self._tx_waiters.append(d)
        return d

    @property
    def is_bound(self) -> bool:
        """Every link of this carrier is bound (both halves in tx_rx mode)."""
        for link in self._links:
            if link.session is None or link.session.state != "bound":
                return False
        return True

    @property
    def state(self) -> str:
        if not self.running or self._stopping:
            return STOPPED
        if any(link.refused for link in self._links):
            return REFUSED
        if self.is_bound:
            return BOUND
        return BINDING

    def sessions(self) -> list[EsmeSession]:
        """Currently bound sessions, transmitter first."""
        return [link.session for link in self._links if link.session is not None]

    def add_state_listener(self, listener: StateListener) -> None:
        """`listener(connector)` is called whenever a link binds, drops, is refused or stops."""
        self._listeners.append(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        self._listeners.remove(listener)

    # ------------------------------------------------------------------ service

    def startService(self) -> None:
        self._stopping = False
        self._refusal_logged = False
        for link in self._links:
            link.refused = False
        super().startService()

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        """Unbind every bound session, then stop the ClientServices.

        Always fires: unbind is bounded by the session's timeouts, the final disconnect by
        response_timeout_s after which any remaining link is aborted.
        """
        self._stopping = True
        waiters, self._tx_waiters = self._tx_waiters, []
        for waiter in waiters:
            waiter.errback(CancelledError("carrier connector stopped"))
        unbinds = [session.unbind() for session in self.sessions()]
        done: Deferred[None] = Deferred()
        gathered = DeferredList(unbinds, consumeErrors=True) if unbinds else succeed([])
        gathered.addCallback(self._stop_services, done)
        return done

    def abort(self) -> Deferred[None]:
        """Cut every link at once, without the unbind handshake, and stop.

        For a node that must let go of its binds by a deadline (smsgw/cluster.py: its lease could
        not be renewed): an SMSC that does not answer the unbind must not keep us bound past it.
        Submits in flight have an unknown outcome, like any dropped link.
        """
        self._stopping = True
        waiters, self._tx_waiters = self._tx_waiters, []
        for waiter in waiters:
            waiter.errback(CancelledError("carrier connector aborted"))
        self._abort_links()
        done: Deferred[None] = Deferred()
        self._stop_services(None, done)
        return done

    def _abort_links(self) -> None:
        for link in self._links:
            for session in (link.session, link.connecting):
                transport = session.transport if session is not None else None
                if transport is not None:
                    abort = getattr(transport, "abortConnection", None)
                    (abort or transport.loseConnection)()

    def _stop_services(self, _ignored: object, done: Deferred[None]) -> None:
        stopped = MultiService.stopService(self)
        timer = self._clock.callLater(self._response_timeout_s, self._stop_overdue, done)
        stopped.addBoth(self._stop_finished, done, timer)

    def _stop_overdue(self, done: Deferred[None]) -> None:
        self._log.warning("stop_overdue", timeout_s=self._response_timeout_s)
        self._abort_links()
        self._fire_stopped(done)

    def _stop_finished(self, _result: object, done: Deferred[None], timer: IDelayedCall) -> None:
        if timer.active():
            timer.cancel()
        self._fire_stopped(done)

    def _fire_stopped(self, done: Deferred[None]) -> None:
        if done.called:
            return
        self._log.info("connector_stopped")
        self._notify()
        done.callback(None)

    # ------------------------------------------------------------------ links

    def _default_endpoint(self) -> IStreamClientEndpoint:
        from twisted.internet.endpoints import HostnameEndpoint

        return HostnameEndpoint(self._reactor, self.host, self.port, timeout=self._response_timeout_s)

    def _build_session(self, link: _Link) -> EsmeSession:
        session = EsmeSession(
            bind_command=link.bind_command,
            on_lost=partial(self._session_lost, link),
            **self._session_args,
        )
        link.built = session
        return session

    def _prepare(self, link: _Link, _proxy: IProtocol) -> Deferred[Pdu]:
        session = link.connecting
        if session is None:  # cannot happen: the factory just built it
            raise RuntimeError("no session for prepared connection")
        d = session.bind()
        d.addCallbacks(
            self._bound,
            self._bind_failed,
            callbackArgs=(link, session),
            errbackArgs=(link, session),
        )
        return d

    def _bound(self, response: Pdu, link: _Link, session: EsmeSession) -> Pdu:
        if link.connecting is session:
            link.connecting = None
        link.session = session
        if self._stopping:
            # Bound while we were shutting down: undo it politely.
            session.unbind()
            return response
        self._update()
        if link.sends and self._tx_waiters and session.state == "bound":
            waiters, self._tx_waiters = self._tx_waiters, []
            for waiter in waiters:
                waiter.callback(session)
        return response

    def _bind_failed(self, failure: Failure, link: _Link, session: EsmeSession) -> Failure:
        if link.connecting is session:
            link.connecting = None
        self.last_error = f"{link.role} bind: {failure.getErrorMessage()}"
        error = failure.value
        if isinstance(error, BindRefused) and error.fatal and not self._stopping:
            link.refused = True
            if not self._refusal_logged:
                self._refusal_logged = True
                self._log.critical(
                    "credentials_refused",
                    role=link.role,
                    status=c.status_name(error.status),
                    message=f"carrier {self.carrier} refused our credentials; fix the config, not retrying",
                )
            # Stopping from inside the failed attempt: ClientService sees the failure next
            # and goes straight to "stopped" instead of scheduling a retry.
            if link.service is not None and link.service.running:
                link.service.stopService()
            self._notify()
        return failure

    def _connect_failed(self, failure: Failure, link: _Link) -> Failure:
        if not failure.check(CancelledError):
            self.last_error = f"{link.role} connect: {failure.getErrorMessage()}"
            self._log.warning("connect_failed", role=link.role, host=self.host, port=self.port,
                              reason=failure.getErrorMessage())
        return failure

    def _session_lost(self, link: _Link, session: EsmeSession, reason: Failure) -> None:
        if link.connecting is session:
            link.connecting = None
        if link.session is not session:
            return
        link.session = None
        if not self._stopping:
            self.last_error = f"{link.role} link lost: {reason.getErrorMessage()}"
        self._update()

    def _update(self) -> None:
        if self.is_bound:
            if self.bound_since is None:
                self.bound_since = self._clock.seconds()
        else:
            self.bound_since = None
        self._notify()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:
                self._log.exception("state_listener_failed")

    def _forget_tx_waiter(self, d: Deferred[EsmeSession]) -> None:
        try:
            self._tx_waiters.remove(d)
        except ValueError:
            pass
