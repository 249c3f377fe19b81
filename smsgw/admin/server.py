"""The admin HTTP server: twisted.web on a loopback port, JSON in and out, bearer-token auth.

A request is judged as soon as its headers are in (`AdminChannel.allHeadersReceived`), before
one byte of its body is read: the path (400), the token (401), the route (404/405), the role
(403) and the declared length (413).  A refusal is answered with a JSON error and the connection
is closed: what the client still sends is read and dropped for a moment (so it gets the answer
rather than a reset), never buffered.  A body is kept in memory and cut at `max_body_bytes`
(chunked bodies too).  A request has a deadline for its headers and one for its body; the idle
timer between requests no longer restarts a request's clock byte by byte.  One client address
may hold `max_connections_per_address` connections at once.  Every refusal is counted by reason
(`AdminSite.refusals`, in /metrics).

An admitted request runs in the one leaf resource: read the body, run the route's async
handler, write its response.  Client errors are `ApiError`s rendered as JSON; any other
exception is logged (with the route, never the token or the body) and answered with a JSON 500,
so no stack trace ever reaches a client.  The handler runs as an asyncio task (the reactor is
the asyncio reactor, so the store's coroutines can be awaited directly); render returns
NOT_DONE_YET.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.web.http import RESPONSES, HTTPChannel, datetimeToString
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from smsgw.admin.api import (
    Access,
    AdminRoute,
    ApiCall,
    ApiError,
    JsonResponse,
    Principal,
    Response,
)
from smsgw.admin.auth import Authenticator
from smsgw.config import AdminConfig
from smsgw.log import excerpt, get_logger
from smsgw.store import StoreUnavailable

if TYPE_CHECKING:
    from smsgw.feature import ServiceContext

__all__ = ["AdminChannel", "AdminResource", "AdminService", "AdminSite", "Admission", "build_admin_service"]

log = get_logger(__name__)

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

#: After a refusal, how long (and how much) of what the client still sends is read and dropped
#: before the connection is cut, so that a client busy sending its body still reads the answer.
LINGER_S = 2.0
LINGER_BYTES = 256 * 1024


def _unauthorized() -> ApiError:
    # A new instance each time: a shared one would collect the traceback of every raise.
    return ApiError(
        401, "unauthorized", "missing or invalid bearer token (send Authorization: Bearer <token>)",
        headers={"WWW-Authenticate": 'Bearer realm="smsgw"'},
    )


@dataclass(frozen=True)
class Admission:
    """A request found acceptable from its headers alone: its route, parameters and caller."""

    route: AdminRoute
    params: Mapping[str, str]
    principal: Principal | None
    path: str


@dataclass
class _Seen:
    """What is known of a request so far, for the log line whatever happens next."""

    method: str = ""
    route: AdminRoute | None = None
    principal: Principal | None = None

    @property
    def path(self) -> str | None:
        return self.route.path if self.route is not None else None

    @property
    def token(self) -> str | None:
        return self.principal.name if self.principal is not None else None


def _log_request(seen: _Seen, status: int, ms: float, refused: str | None = None) -> None:
    extra = {"refused": refused} if refused is not None else {}
    log.info("admin_request", method=seen.method, route=seen.path, status=status, token=seen.token,
             ms=round(ms, 1), **extra)


class AdminResource(Resource):
    """Every admin request, routed to the `AdminRoute` whose method and path match."""

    isLeaf = True

    def __init__(self, routes: Sequence[AdminRoute], authenticator: Authenticator, clock: IReactorTime) -> None:
        super().__init__()
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for route in routes:
            # /a/{x} and /a/{y} match the same requests: placeholders compare equal.
            key = (route.method, tuple("{}" if "{" in part else part for part in route.segments()))
            if key in seen:
                raise ValueError(f"two admin routes for {route.method} {route.path}")
            seen.add(key)
        self._routes = tuple(routes)
        self._auth = authenticator
        self._clock = clock
        self._tasks: set[asyncio.Future[Any]] = set()

    def admit(self, method: str, uri: bytes, authorization: bytes | None, seen: _Seen | None = None) -> Admission:
        """Judge a request by its request line and Authorization header; ApiError when refused.

        Runs before the body is read.  `seen` collects the route and caller as they are found,
        for the log line of a refusal.
        """
        seen = seen if seen is not None else _Seen(method)
        raw_uri, _, query = uri.partition(b"?")
        try:
            raw = raw_uri.decode("ascii")
            segments = tuple(unquote(part, errors="strict") for part in raw.strip("/").split("/"))
        except UnicodeDecodeError:
            raise ApiError(400, "bad_path", "the path is not valid percent-encoded UTF-8") from None
        candidates = [(route, params) for route in self._routes if (params := route.match(segments)) is not None]
        principal: Principal | None = self._auth.authenticate(authorization) if authorization else None
        seen.principal = principal
        allowed = sorted({r.method for r, _ in candidates})
        chosen = next(((r, p) for r, p in candidates if r.method == method), None)
        if chosen is None and method == "HEAD":
            chosen = next(((r, p) for r, p in candidates if r.method == "GET"), None)
        public = chosen is not None and chosen[0].effective_access is Access.PUBLIC
        if principal is None and public and chosen[0].token_in_query:
            principal = self._query_token(query)
            seen.principal = principal
        # Unknown paths need a token too: without one nobody learns which endpoints exist.
        if principal is None and not public:
            raise _unauthorized()
        if not candidates:
            raise ApiError(404, "not_found", f"no such endpoint: {excerpt(raw, 80)}")
        if chosen is None:
            raise ApiError(405, "method_not_allowed", f"{excerpt(method, 16)} is not allowed here; allowed: "
                           f"{', '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
        route, params = chosen
        seen.route = route
        if route.effective_access is Access.WRITE and (principal is None or not principal.can_write):
            name = principal.name if principal else "anonymous"
            raise ApiError(403, "forbidden", f"token {name!r} is read-only; this request needs an admin token")
        return Admission(route, params, principal, raw)

    def _query_token(self, query: bytes) -> Principal | None:
        """`?token=…`, for a page a browser loads (it cannot send a bearer header); given once."""
        tokens = parse_qs(query.decode("utf-8", "replace"), keep_blank_values=True).get("token", [])
        if len(tokens) != 1 or not tokens[0]:
            return None
        return self._auth.authenticate(b"Bearer " + tokens[0].encode("utf-8", "replace"))

    def render(self, request: Request) -> Any:  # twisted.web's entry point
        gone: list[bool] = []
        # Errback when the client goes away before we answer; consumed here, checked before writing.
        request.notifyFinish().addErrback(lambda _failure: gone.append(True))
        task = asyncio.ensure_future(self._serve(request, gone))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return NOT_DONE_YET

    async def _serve(self, request: Request, gone: list[bool]) -> None:
        started = self._clock.seconds()
        method = request.method.decode("ascii", "replace").upper()
        seen = _Seen(method)
        try:
            admission = getattr(request, "admission", None)
            if admission is None:  # not served through AdminChannel: judge it now
                admission = self.admit(method, request.uri, request.getHeader(b"authorization"), seen)
            seen.route, seen.principal = admission.route, admission.principal
            call = self._call(request, method, admission)
            response = await admission.route.handler(call)
            if not isinstance(response, Response):
                raise TypeError(f"admin handler for {admission.route.path} returned {type(response).__name__}, "
                                "not Response")
        except ApiError as exc:
            response = JsonResponse(exc.status, exc.body(), exc.headers)
        except StoreUnavailable:
            log.warning("admin_store_unavailable", method=method, route=seen.path)
            response = JsonResponse(503, ApiError(503, "unavailable", "the store is unavailable; try again").body(),
                                    {"Retry-After": "5"})
        except Exception:
            log.exception("admin_request_failed", method=method, route=seen.path, token=seen.token)
            response = JsonResponse(500, ApiError(500, "internal", "internal error; it has been logged").body())
        _log_request(seen, response.status, (self._clock.seconds() - started) * 1000)
        if gone:
            return
        request.setResponseCode(response.status)
        for name, value in {**_SECURITY_HEADERS, **response.headers, "Content-Type": response.content_type}.items():
            request.setHeader(name, value)
        request.setHeader("Content-Length", str(len(response.body)))
        if method != "HEAD":
            request.write(response.body)
        request.finish()

    @staticmethod
    def _call(request: Request, method: str, admission: Admission) -> ApiCall:
        request.content.seek(0)
        body = request.content.read()
        content_type = request.getHeader(b"content-type")
        query = {
            k.decode("utf-8", "replace"): tuple(v.decode("utf-8", "replace") for v in values)
            for k, values in (request.args or {}).items()
        }
        return ApiCall(
            method=method,
            path=admission.path,
            params=admission.params,
            query=query,
            principal=admission.principal,
            body=body,
            content_type=content_type.decode("latin-1") if content_type else None,
        )


class AdminRequest(Request):
    """A request whose body is kept in memory and never grows past the site's body limit."""

    admission: Admission | None = None
    _body_bytes = 0

    def gotLength(self, length: int | None) -> None:  # twisted.web: the body is about to arrive
        # Never a temporary file: the channel refused anything declared larger than the limit.
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        channel = self.channel
        if isinstance(channel, AdminChannel) and self._body_bytes > channel.limits.max_body_bytes:
            channel.refuse_too_large(self)  # a chunked body, cut at the limit
            return
        self.content.write(data)


class AdminChannel(HTTPChannel):
    """HTTP/1.1 for the admin API: requests judged at their headers, deadlines, refusals counted.

    See the module docstring.  Overrides twisted.web's HTTPChannel at its documented steps
    (`allHeadersReceived`, `allContentReceived`, `lineReceived`, `rawDataReceived`) and its
    bad-request answer, so a refusal is a JSON error like every other answer of the API.
    """

    site: AdminSite  # set by Site.buildProtocol

    def __init__(self) -> None:
        super().__init__()
        self.over_cap = False  # refused at connect: the client address holds too many connections
        self.counted_host: str | None = None
        self._refused: str | None = None
        self._deadline: IDelayedCall | None = None  # for the headers, then for the body
        self._linger: IDelayedCall | None = None
        self._dropped = 0
        self._request_started = 0.0

    @property
    def limits(self) -> AdminConfig:
        return self.site.limits

    # -- life cycle

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.over_cap:
            limit = self.limits.max_connections_per_address
            self._refuse(ApiError(503, "too_many_connections",
                                  f"this address already has {limit} connections open; close one and retry",
                                  headers={"Retry-After": "1"}),
                         _Seen(), "too_many_connections")

    def connectionLost(self, reason: Any) -> None:
        for name in ("_deadline", "_linger"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        if self.counted_host is not None:
            self.site.connection_closed(self.counted_host)
            self.counted_host = None
        super().connectionLost(reason)

    # -- receiving

    def dataReceived(self, data: bytes) -> None:
        if self._refused is not None:
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES:
                self.transport.abortConnection()
            return
        if data and self._deadline is None and not self._handlingRequest:
            # The first byte of a request: its headers are due within header_timeout_s, however
            # slowly they trickle in (the idle timer restarts on every byte; this one does not).
            self._request_started = self._now()
            self._deadline = self.callLater(self.limits.header_timeout_s, self._too_slow, "header")
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._refused is None:
            super().lineReceived(line)

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused is None:
            super().rawDataReceived(data)

    def allHeadersReceived(self) -> None:
        self._cancel_deadline()
        request = self.requests[-1]
        method = self._command.decode("ascii", "replace").upper()
        seen = _Seen(method)
        authorization = request.requestHeaders.getRawHeaders(b"authorization")
        try:
            admission = self.site.resource.admit(method, self._path, authorization[-1] if authorization else None,
                                                 seen)
            if self.length is not None and self.length > self.limits.max_body_bytes:
                raise self._too_large()
        except ApiError as exc:
            self._refuse(exc, seen, exc.code, head=method == "HEAD")
            return
        request.admission = admission
        super().allHeadersReceived()
        if self.length != 0:
            self._deadline = self.callLater(self.limits.body_timeout_s, self._too_slow, "body")

    def allContentReceived(self) -> None:
        if self._refused is not None:
            return
        self._cancel_deadline()
        super().allContentReceived()

    # -- refusing

    def refuse_too_large(self, request: AdminRequest) -> None:
        seen = _Seen(self._command.decode("ascii", "replace").upper() if hasattr(self, "_command") else "")
        if request.admission is not None:
            seen.route, seen.principal = request.admission.route, request.admission.principal
        self._refuse(self._too_large(), seen, "too_large")

    def _too_large(self) -> ApiError:
        return ApiError(413, "too_large", f"the request body is larger than {self.limits.max_body_bytes} bytes")

    def _too_slow(self, phase: str) -> None:
        self._deadline = None
        limit = self.limits.header_timeout_s if phase == "header" else self.limits.body_timeout_s
        method = getattr(self, "_command", b"").decode("ascii", "replace").upper()
        self._refuse(ApiError(408, "request_timeout", f"the request {phase} did not arrive within {limit:g} s"),
                     _Seen(method), f"{phase}_timeout")

    def _respondToBadRequestAndDisconnect(self) -> None:  # twisted.web: the request is not valid HTTP
        self._refuse(ApiError(400, "bad_request", "the request is not valid HTTP/1.1"), _Seen(), "bad_request")

    def _refuse(self, error: ApiError, seen: _Seen, reason: str, *, head: bool = False) -> None:
        """Answer `error`, close, and from now on drop whatever the client still sends."""
        if self._refused is not None:
            return
        self._refused = reason
        self._cancel_deadline()
        self.setTimeout(None)
        self.site.refused(reason)
        _log_request(seen, error.status, (self._now() - self._request_started) * 1000 if self._request_started
                     else 0.0, refused=reason)
        self.transport.write(_plain_response(error, head))
        self._networkProducer.unregisterProducer()
        # Close our side once the answer is out; keep reading (and dropping) briefly, so a client
        # still sending its body reads the answer instead of a connection reset.
        lose_write = getattr(self.transport, "loseWriteConnection", None)
        if lose_write is not None:
            lose_write()
            self._linger = self.callLater(LINGER_S, self.transport.abortConnection)
        else:
            self.transport.loseConnection()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _now(self) -> float:
        return self.site.reactor.seconds()


def _plain_response(error: ApiError, head: bool) -> bytes:
    """A complete HTTP/1.1 response for a request refused before it reached the resource."""
    response = JsonResponse(error.status, error.body(), error.headers)
    headers = {
        "Date": datetimeToString().decode("ascii"),
        **_SECURITY_HEADERS,
        **response.headers,
        "Content-Type": response.content_type,
        "Content-Length": str(len(response.body)),
        "Connection": "close",
    }
    lines = [f"HTTP/1.1 {error.status} {RESPONSES.get(error.status, b'Error').decode('ascii')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else response.body)


class AdminSite(Site):
    """A Site that never shows tracebacks, leaves access logging to the resource (structlog),
    judges requests at their headers (AdminChannel) and caps connections per client address."""

    displayTracebacks = False
    noisy = False
    requestFactory = AdminRequest
    protocol = AdminChannel  # type: ignore[assignment]  # HTTP/1.1 only: the API has no TLS, so no h2

    def __init__(self, resource: AdminResource, limits: AdminConfig | None = None, *, reactor: Any = None) -> None:
        super().__init__(resource, reactor=reactor)
        self.limits = limits or AdminConfig()
        self.timeOut = self.limits.idle_timeout_s
        #: Requests and connections refused, by reason (unauthorized, too_large, header_timeout…).
        self.refusals: Counter[str] = Counter()
        self._open: Counter[str] = Counter()

    def buildProtocol(self, addr: Any) -> Any:
        channel = super().buildProtocol(addr)
        host = str(getattr(addr, "host", ""))
        if self._open[host] >= self.limits.max_connections_per_address:
            channel.over_cap = True
        else:
            self._open[host] += 1
            channel.counted_host = host
        return channel

    def connection_closed(self, host: str) -> None:
        self._open[host] -= 1
        if self._open[host] <= 0:
            del self._open[host]

    def refused(self, reason: str) -> None:
        self.refusals[reason] += 1

    def log(self, request: Request) -> None:  # the combined-log-format line is replaced by admin_request
        pass


class AdminService(Service):
    """Listens on the configured loopback address while running."""

    name = "admin-api"

    def __init__(self, config: AdminConfig, site: Site, reactor: Any) -> None:
        self.config = config
        self.site = site
        self.reactor = reactor
        self._listening: IListeningPort | None = None

    @property
    def port(self) -> int:
        """The port actually listened on (config port 0 picks a free one)."""
        if self._listening is None:
            raise RuntimeError("the admin API is not listening")
        return self._listening.getHost().port

    def startService(self) -> None:
        super().startService()
        self._listening = self.reactor.listenTCP(self.config.port, self.site, interface=self.config.host)
        log.info("admin_listening", host=self.config.host, port=self.port,
                 tokens=[t.name for t in self.config.tokens])

    def stopService(self) -> Deferred[None]:
        super().stopService()
        listening, self._listening = self._listening, None
        if listening is None:
            return succeed(None)
        return maybeDeferred(listening.stopListening)


def build_admin_service(
    config: AdminConfig,
    context: ServiceContext | None,
    routes: Sequence[AdminRoute],
    *,
    reactor: Any = None,
    timers: IReactorTime | None = None,
) -> AdminService:
    """The admin API as a Twisted service serving `routes`; start it under the gateway.

    `context` supplies the clock request durations are measured with (the reactor when None);
    `timers` the one the header, body and idle deadlines run on (the reactor when None; tests
    pass a `Clock` to step them).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    clock: IReactorTime = context.clock if context is not None else reactor
    resource = AdminResource(routes, Authenticator(config.tokens), clock)
    return AdminService(config, AdminSite(resource, config, reactor=timers or reactor), reactor)
