"""The admin HTTP server: twisted.web on a loopback port, JSON in and out, bearer-token auth.

One leaf resource takes every request and does, in order: match the path against the routes,
authenticate (401), check the role (403), read the body (413), run the route's async handler,
and write its response.  Client errors are `ApiError`s rendered as JSON; any other exception is
logged (with the route, never the token or the body) and answered with a JSON 500, so no stack
trace ever reaches a client.  The handler runs as an asyncio task (the reactor is the asyncio
reactor, so the store's coroutines can be awaited directly); render returns NOT_DONE_YET.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from smsgw.admin.api import (
    MAX_BODY,
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
from smsgw.log import get_logger
from smsgw.store import StoreUnavailable

if TYPE_CHECKING:
    from smsgw.feature import ServiceContext

__all__ = ["AdminResource", "AdminService", "AdminSite", "build_admin_service"]

log = get_logger(__name__)

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _unauthorized() -> ApiError:
    # A new instance each time: a shared one would collect the traceback of every raise.
    return ApiError(
        401, "unauthorized", "missing or invalid bearer token (send Authorization: Bearer <token>)",
        headers={"WWW-Authenticate": 'Bearer realm="smsgw"'},
    )


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
        seen = _Seen()
        try:
            call = self._prepare(request, method, seen)
            assert seen.route is not None
            response = await seen.route.handler(call)
            if not isinstance(response, Response):
                raise TypeError(f"admin handler for {seen.route.path} returned {type(response).__name__}, not Response")
        except ApiError as exc:
            response = JsonResponse(exc.status, exc.body(), exc.headers)
        except StoreUnavailable:
            log.warning("admin_store_unavailable", method=method, route=seen.path)
            response = JsonResponse(503, ApiError(503, "unavailable", "the store is unavailable; try again").body(),
                                    {"Retry-After": "5"})
        except Exception:
            log.exception("admin_request_failed", method=method, route=seen.path, token=seen.token)
            response = JsonResponse(500, ApiError(500, "internal", "internal error; it has been logged").body())
        log.info("admin_request", method=method, route=seen.path, status=response.status, token=seen.token,
                 ms=round((self._clock.seconds() - started) * 1000, 1))
        if gone:
            return
        request.setResponseCode(response.status)
        for name, value in {**_SECURITY_HEADERS, **response.headers, "Content-Type": response.content_type}.items():
            request.setHeader(name, value)
        request.setHeader("Content-Length", str(len(response.body)))
        if method != "HEAD":
            request.write(response.body)
        request.finish()

    def _prepare(self, request: Request, method: str, seen: _Seen) -> ApiCall:
        try:
            raw = request.path.decode("ascii")
            segments = tuple(unquote(part, errors="strict") for part in raw.strip("/").split("/"))
        except UnicodeDecodeError:
            raise ApiError(400, "bad_path", "the path is not valid percent-encoded UTF-8") from None
        candidates = [(route, params) for route in self._routes if (params := route.match(segments)) is not None]
        principal: Principal | None = None
        # Unknown paths need a token too: without one nobody learns which endpoints exist.
        if not candidates or any(r.effective_access is not Access.PUBLIC for r, _ in candidates):
            principal = self._auth.authenticate(request.getHeader(b"authorization"))
            seen.principal = principal
        allowed = sorted({r.method for r, _ in candidates})
        chosen = next(((r, p) for r, p in candidates if r.method == method), None)
        if chosen is None and method == "HEAD":
            chosen = next(((r, p) for r, p in candidates if r.method == "GET"), None)
        if principal is None and (chosen is None or chosen[0].effective_access is not Access.PUBLIC):
            raise _unauthorized()
        if not candidates:
            raise ApiError(404, "not_found", f"no such endpoint: {raw}")
        if chosen is None:
            raise ApiError(405, "method_not_allowed", f"{method} is not allowed here; allowed: {', '.join(allowed)}",
                           headers={"Allow": ", ".join(allowed)})
        route, params = chosen
        seen.route = route
        if route.effective_access is Access.WRITE and (principal is None or not principal.can_write):
            name = principal.name if principal else "anonymous"
            raise ApiError(403, "forbidden", f"token {name!r} is read-only; this request needs an admin token")
        request.content.seek(0)
        body = request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ApiError(413, "too_large", f"the request body is larger than {MAX_BODY} bytes")
        content_type = request.getHeader(b"content-type")
        query = {
            k.decode("utf-8", "replace"): tuple(v.decode("utf-8", "replace") for v in values)
            for k, values in (request.args or {}).items()
        }
        call = ApiCall(
            method=method,
            path=raw,
            params=params,
            query=query,
            principal=principal,
            body=body,
            content_type=content_type.decode("latin-1") if content_type else None,
        )
        return call


@dataclass
class _Seen:
    """What is known of a request so far, for the log line whatever happens next."""

    route: AdminRoute | None = None
    principal: Principal | None = None

    @property
    def path(self) -> str | None:
        return self.route.path if self.route is not None else None

    @property
    def token(self) -> str | None:
        return self.principal.name if self.principal is not None else None


class AdminSite(Site):
    """A Site that never shows tracebacks and leaves access logging to AdminResource (structlog)."""

    displayTracebacks = False
    noisy = False

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
) -> AdminService:
    """The admin API as a Twisted service serving `routes`; start it under the gateway.

    `context` supplies the clock request durations are measured with (the reactor when None).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    clock: IReactorTime = context.clock if context is not None else reactor
    resource = AdminResource(routes, Authenticator(config.tokens), clock)
    return AdminService(config, AdminSite(resource), reactor)
