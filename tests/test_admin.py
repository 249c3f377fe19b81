"""The admin HTTP server over real loopback TCP: auth, roles, JSON errors, never a stack trace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
import structlog
from twisted.internet import reactor

from smsgw.admin.api import (
    Access,
    AdminRoute,
    ApiCall,
    ApiError,
    JsonResponse,
    Response,
)
from smsgw.admin.auth import Authenticator
from smsgw.admin.server import AdminService, build_admin_service
from smsgw.config import AdminConfig, AdminToken
from smsgw.store import StoreUnavailable
from tests.http_helpers import http
from tests.txn_helpers import on_loop

ADMIN_TOKEN = "admin-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdefgh"
CONFIG = AdminConfig(
    enabled=True,
    host="127.0.0.1",
    port=0,
    tokens=(
        AdminToken(name="ops", token=ADMIN_TOKEN, role="admin"),
        AdminToken(name="monitor", token=READ_TOKEN, role="read-only"),
    ),
)


class Echo:
    """Test endpoints: they record every call that reaches them."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []

    async def get(self, call: ApiCall) -> Response:
        self.calls.append(call)
        assert call.principal is not None
        return JsonResponse(200, {"name": call.params["name"], "token": call.principal.name, "q": call.query})

    async def put(self, call: ApiCall) -> Response:
        self.calls.append(call)
        body = call.json_object()
        if "bad" in body:
            raise ApiError(400, "invalid_field", "bad is not allowed", field="bad")
        return JsonResponse(200, {"name": call.params["name"], "body": body})

    async def boom(self, call: ApiCall) -> Response:
        raise RuntimeError("secret internal detail")

    async def store_down(self, call: ApiCall) -> Response:
        raise StoreUnavailable("disk full")

    async def health(self, call: ApiCall) -> Response:
        return JsonResponse(200, {"ok": True, "authenticated": call.principal is not None})

    async def not_a_response(self, call: ApiCall) -> Any:
        return {"oops": True}

    def routes(self) -> list[AdminRoute]:
        return [
            AdminRoute("GET", "/api/v1/echo/{name}", self.get),
            AdminRoute("PUT", "/api/v1/echo/{name}", self.put),
            AdminRoute("GET", "/api/v1/boom", self.boom),
            AdminRoute("GET", "/api/v1/store", self.store_down),
            AdminRoute("GET", "/api/v1/health", self.health, access=Access.PUBLIC),
            AdminRoute("GET", "/api/v1/broken", self.not_a_response),
        ]


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest_twisted.async_yield_fixture
async def server(echo: Echo) -> AsyncIterator[AdminService]:
    service = build_admin_service(CONFIG, None, echo.routes(), reactor=reactor)
    service.startService()
    yield service
    await service.stopService()


@on_loop
async def test_missing_or_wrong_token_is_401_and_reaches_nothing(server: AdminService, echo: Echo) -> None:
    for kwargs in (
        {},
        {"token": "wrong-token-0123456789abcdef"},
        {"token": ADMIN_TOKEN[:-1]},
        {"authorization": f"Basic {ADMIN_TOKEN}"},
        {"authorization": "Bearer"},
        {"authorization": f"Bearer {ADMIN_TOKEN} extra"},
    ):
        for method in ("GET", "PUT"):
            result = await http(server.port, method, "/api/v1/echo/x", body={"a": 1}, **kwargs)
            assert result.status == 401, kwargs
            assert result.json == {"error": {"code": "unauthorized", "message":
                                             "missing or invalid bearer token (send Authorization: Bearer <token>)"}}
            assert result.header("WWW-Authenticate") == 'Bearer realm="smsgw"'
            assert result.header("Content-Type") == "application/json; charset=utf-8"
    assert echo.calls == []


@on_loop
async def test_unknown_paths_need_a_token_too(server: AdminService) -> None:
    """Without a token nobody learns which endpoints exist."""
    assert (await http(server.port, "GET", "/api/v1/nothing")).status == 401
    result = await http(server.port, "GET", "/api/v1/nothing", token=READ_TOKEN)
    assert (result.status, result.json["error"]["code"]) == (404, "not_found")
    result = await http(server.port, "DELETE", "/api/v1/echo/x", token=ADMIN_TOKEN)
    assert (result.status, result.header("Allow")) == (405, "GET, PUT")


@on_loop
async def test_read_only_token_reads_but_cannot_change(server: AdminService, echo: Echo) -> None:
    result = await http(server.port, "GET", "/api/v1/echo/MM%202026?x=1&x=2", token=READ_TOKEN)
    assert (result.status, result.json) == (200, {"name": "MM 2026", "token": "monitor", "q": {"x": ["1", "2"]}})
    result = await http(server.port, "PUT", "/api/v1/echo/x", token=READ_TOKEN, body={"a": 1})
    assert result.status == 403
    assert result.json == {"error": {"code": "forbidden",
                                      "message": "token 'monitor' is read-only; this request needs an admin token"}}
    assert [c.method for c in echo.calls] == ["GET"]
    result = await http(server.port, "PUT", "/api/v1/echo/x", token=ADMIN_TOKEN, body={"a": "مسقط"})
    assert (result.status, result.json) == (200, {"name": "x", "body": {"a": "مسقط"}})
    assert "مسقط".encode() in result.raw  # UTF-8, not \u escapes


@pytest.mark.parametrize(
    "body, content_type, status, code, message",
    [
        (b"{not json", "application/json", 400, "invalid_json", "the request body is not valid JSON"),
        (b"", "application/json", 400, "invalid_json", "the request body is empty; send a JSON object"),
        (b"[1, 2]", "application/json", 400, "invalid_json", "the request body must be a JSON object"),
        (b'{"a": 1, "a": 2}', "application/json", 400, "invalid_json", "key 'a' appears twice"),
        (b"\xff\xfe", "application/json", 400, "invalid_json", "the request body is not UTF-8"),
        (b"a=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type", "send JSON"),
        (b'{"bad": 1}', "application/json; charset=utf-8", 400, "invalid_field", "bad is not allowed"),
    ],
)
@on_loop
async def test_bad_input_is_a_4xx_with_a_json_error(
    server: AdminService, body: bytes, content_type: str, status: int, code: str, message: str
) -> None:
    result = await http(server.port, "PUT", "/api/v1/echo/x", token=ADMIN_TOKEN, body=body, content_type=content_type)
    assert result.status == status
    assert result.json["error"]["code"] == code
    assert result.json["error"]["message"].startswith(message)


@on_loop
async def test_oversized_body_is_413(server: AdminService, echo: Echo) -> None:
    result = await http(server.port, "PUT", "/api/v1/echo/x", token=ADMIN_TOKEN, body=b"x" * (1024 * 1024 + 1))
    assert (result.status, result.json["error"]["code"]) == (413, "too_large")
    assert echo.calls == []


@on_loop
async def test_exceptions_become_a_logged_500_without_a_stack_trace(server: AdminService) -> None:
    with structlog.testing.capture_logs() as logs:
        result = await http(server.port, "GET", "/api/v1/boom", token=ADMIN_TOKEN)
        broken = await http(server.port, "GET", "/api/v1/broken", token=ADMIN_TOKEN)
    for r in (result, broken):
        assert r.status == 500
        assert r.json == {"error": {"code": "internal", "message": "internal error; it has been logged"}}
        assert b"Traceback" not in r.raw and b"secret internal detail" not in r.raw
    failures = [e for e in logs if e["event"] == "admin_request_failed"]
    assert [(e["route"], e["token"], e["log_level"]) for e in failures] == [
        ("/api/v1/boom", "ops", "error"), ("/api/v1/broken", "ops", "error")]
    store = await http(server.port, "GET", "/api/v1/store", token=ADMIN_TOKEN)
    assert (store.status, store.json["error"]["code"], store.header("Retry-After")) == (503, "unavailable", "5")


@on_loop
async def test_public_routes_need_no_token(server: AdminService) -> None:
    result = await http(server.port, "GET", "/api/v1/health")
    assert (result.status, result.json) == (200, {"ok": True, "authenticated": False})


@on_loop
async def test_tokens_never_reach_the_logs(server: AdminService) -> None:
    with structlog.testing.capture_logs() as logs:
        await http(server.port, "GET", "/api/v1/echo/x", token=READ_TOKEN)
        await http(server.port, "PUT", "/api/v1/echo/x", token=READ_TOKEN, body={})
        await http(server.port, "GET", "/api/v1/echo/x", token="wrong-token-0123456789abcdef")
        await http(server.port, "GET", "/api/v1/boom", token=ADMIN_TOKEN)
    text = repr(logs)
    assert logs and READ_TOKEN not in text and ADMIN_TOKEN not in text and "wrong-token" not in text
    requests = [(e["route"], e["status"], e["token"]) for e in logs if e["event"] == "admin_request"]
    assert requests == [("/api/v1/echo/{name}", 200, "monitor"), ("/api/v1/echo/{name}", 403, "monitor"),
                        (None, 401, None), ("/api/v1/boom", 500, "ops")]


@on_loop
async def test_client_that_goes_away_does_not_break_the_server(server: AdminService) -> None:
    """A request abandoned mid-way is not written to; the next one is served."""
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import Protocol

    proto = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), Protocol()).asFuture(
        asyncio.get_running_loop())
    proto.transport.write(f"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {READ_TOKEN}\r\n\r\n"
                          .encode())
    proto.transport.loseConnection()
    await asyncio.sleep(0.05)
    assert (await http(server.port, "GET", "/api/v1/echo/y", token=READ_TOKEN)).status == 200


def test_authenticator_compares_every_token() -> None:
    auth = Authenticator(CONFIG.tokens)
    assert auth.authenticate(f"Bearer {ADMIN_TOKEN}".encode()).name == "ops"  # type: ignore[union-attr]
    assert auth.authenticate(f"bearer   {READ_TOKEN} ".encode()).name == "monitor"  # type: ignore[union-attr]
    assert auth.authenticate(None) is None
    assert auth.authenticate(b"Bearer \xff") is None
    assert auth.authenticate(ADMIN_TOKEN.encode()) is None


def test_routes_are_checked() -> None:
    async def handler(call: ApiCall) -> Response:
        return JsonResponse(200, {})

    with pytest.raises(ValueError, match="two admin routes"):
        build_admin_service(CONFIG, None, [AdminRoute("GET", "/a/{x}", handler), AdminRoute("GET", "/a/{y}", handler)])
    with pytest.raises(ValueError, match="whole segment"):
        build_admin_service(CONFIG, None, [AdminRoute("GET", "/a/x{y}", handler)])
    assert AdminRoute("POST", "/a", handler).effective_access is Access.WRITE
    assert AdminRoute("GET", "/a", handler).effective_access is Access.READ
