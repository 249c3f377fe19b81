"""What a client without a token, or a slow or oversized one, costs the admin API: nothing it can
grow.  Real HTTP over loopback TCP, raw where no well-behaved client would send such a request;
the header, body and idle deadlines run on a `Clock` so a test steps them instead of sleeping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_twisted
import structlog
from twisted.internet import reactor
from twisted.internet.task import Clock

from smsgw.admin.api import AdminRoute, ApiCall, JsonResponse, Response
from smsgw.admin.server import LINGER_S, AdminService, build_admin_service
from smsgw.config import AdminConfig, AdminToken
from tests.http_helpers import RawConnection, http, raw_connect
from tests.stack import eventually
from tests.txn_helpers import on_loop

ADMIN_TOKEN = "admin-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdefgh"
LIMITS = AdminConfig(
    enabled=True, host="127.0.0.1", port=0,
    tokens=(AdminToken(name="ops", token=ADMIN_TOKEN, role="admin"),
            AdminToken(name="monitor", token=READ_TOKEN, role="read-only")),
    max_body_bytes=64 * 1024, header_timeout_s=10.0, body_timeout_s=30.0, idle_timeout_s=120.0,
    max_connections_per_address=3,
)


class Echo:
    def __init__(self) -> None:
        self.calls: list[ApiCall] = []

    async def put(self, call: ApiCall) -> Response:
        self.calls.append(call)
        return JsonResponse(200, {"bytes": len(call.body), "keys": sorted(call.json_object())})

    async def get(self, call: ApiCall) -> Response:
        self.calls.append(call)
        return JsonResponse(200, {"ok": True})


class Server:
    def __init__(self, service: AdminService, echo: Echo, clock: Clock) -> None:
        self.service = service
        self.echo = echo
        self.clock = clock

    @property
    def port(self) -> int:
        return self.service.port

    @property
    def refusals(self) -> dict[str, int]:
        return dict(self.service.site.refusals)

    async def connect(self) -> RawConnection:
        conn = await raw_connect(self.port)
        self.opened.append(conn)
        return conn

    opened: list[RawConnection]


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[Server]:
    echo = Echo()
    clock = Clock()
    routes = [AdminRoute("PUT", "/api/v1/echo", echo.put), AdminRoute("GET", "/api/v1/echo", echo.get)]
    service = build_admin_service(LIMITS, None, routes, reactor=reactor, timers=clock)
    service.startService()
    result = Server(service, echo, clock)
    result.opened = []
    yield result
    for conn in result.opened:
        conn.close()
    await service.stopService()


def head(method: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} /api/v1/echo HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode("latin-1")


async def answer(conn: RawConnection) -> object:
    return await eventually(conn.response, timeout=5)


# -- point 2: the token and the length are checked when the headers are in --------------------------


@on_loop
async def test_a_50_mb_put_without_a_token_is_refused_at_its_headers_and_its_body_is_never_read(
    server: Server,
) -> None:
    conn = await server.connect()
    with structlog.testing.capture_logs() as logs:
        conn.send(head("PUT", "Content-Type: application/json", f"Content-Length: {50 * 1024 * 1024}"))
        # Not one byte of the body has been sent, and the answer is already there.
        response = await answer(conn)
    assert response.status == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.header("Connection") == "close"
    assert response.header("WWW-Authenticate") == 'Bearer realm="smsgw"'
    # What the client still sends is dropped, never stored, and the connection ends.
    for _ in range(8):
        if conn.is_closed:
            break
        conn.send(b"x" * 64 * 1024)
        await asyncio.sleep(0)
    server.clock.advance(LINGER_S)
    await eventually(lambda: conn.is_closed)
    assert server.echo.calls == []
    assert server.refusals == {"unauthorized": 1}
    [line] = [e for e in logs if e["event"] == "admin_request"]
    assert (line["status"], line["refused"], line["token"]) == (401, "unauthorized", None)


@on_loop
async def test_expect_100_continue_without_a_token_gets_the_refusal_not_continue(server: Server) -> None:
    conn = await server.connect()
    conn.send(head("PUT", "Expect: 100-continue", "Content-Length: 1000000"))
    response = await answer(conn)
    assert response.status == 401
    assert not bytes(conn.received).startswith(b"HTTP/1.1 100")


@on_loop
async def test_a_declared_body_over_the_limit_is_413_at_the_headers(server: Server) -> None:
    conn = await server.connect()
    conn.send(head("PUT", f"Authorization: Bearer {ADMIN_TOKEN}", "Content-Type: application/json",
                   f"Content-Length: {LIMITS.max_body_bytes + 1}"))
    response = await answer(conn)
    assert (response.status, response.json["error"]["code"]) == (413, "too_large")
    assert str(LIMITS.max_body_bytes) in response.json["error"]["message"]
    assert server.echo.calls == [] and server.refusals == {"too_large": 1}


@on_loop
async def test_a_read_only_token_sending_a_body_to_a_write_route_is_403_at_the_headers(server: Server) -> None:
    conn = await server.connect()
    conn.send(head("PUT", f"Authorization: Bearer {READ_TOKEN}", "Content-Length: 40000"))
    response = await answer(conn)
    assert (response.status, response.json["error"]["code"]) == (403, "forbidden")
    assert server.refusals == {"forbidden": 1}


@on_loop
async def test_a_chunked_body_is_cut_at_the_limit(server: Server) -> None:
    conn = await server.connect()
    conn.send(head("PUT", f"Authorization: Bearer {ADMIN_TOKEN}", "Content-Type: application/json",
                   "Transfer-Encoding: chunked"))
    chunk = 8 * 1024
    sent = 0
    # A body that never ends: the server must answer once the limit is passed, not at the end.
    while conn.response() is None and sent < 16 * LIMITS.max_body_bytes and not conn.is_closed:
        conn.send(b"%x\r\n" % chunk + b" " * chunk + b"\r\n")
        sent += chunk
        await asyncio.sleep(0.005)
    response = await answer(conn)
    assert (response.status, response.json["error"]["code"]) == (413, "too_large")
    assert sent <= LIMITS.max_body_bytes + 8 * chunk, sent
    assert server.echo.calls == []


@on_loop
async def test_a_chunked_body_within_the_limit_is_served(server: Server) -> None:
    conn = await server.connect()
    body = json.dumps({"a": "x" * 1000}).encode()
    conn.send(head("PUT", f"Authorization: Bearer {ADMIN_TOKEN}", "Content-Type: application/json",
                   "Transfer-Encoding: chunked")
              + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    response = await answer(conn)
    assert (response.status, response.json) == (200, {"bytes": len(body), "keys": ["a"]})


# -- point 3: deadlines for headers and body, connections per address, refusals counted ----------------


@on_loop
async def test_headers_sent_one_line_at_a_time_are_cut_at_the_header_deadline(server: Server) -> None:
    """The idle timer restarts on every byte; the header deadline does not."""
    conns = [await server.connect() for _ in range(3)]
    for conn in conns:
        conn.send(b"GET /api/v1/echo HTTP/1.1\r\n")
    step = LIMITS.header_timeout_s / 4
    for i in range(3):
        await asyncio.sleep(0.02)
        server.clock.advance(step)
        for conn in conns:
            conn.send(f"X-Slow-{i}: {i}\r\n".encode())
    await asyncio.sleep(0.02)
    assert all(conn.response() is None and not conn.is_closed for conn in conns)
    server.clock.advance(step)  # 10 s after the first byte, though the last one came 2.5 s ago
    for conn in conns:
        response = await answer(conn)
        assert (response.status, response.json["error"]["code"]) == (408, "request_timeout")
        assert "header" in response.json["error"]["message"]
    server.clock.advance(LINGER_S)
    for conn in conns:
        await eventually(lambda conn=conn: conn.is_closed)
    assert server.refusals == {"header_timeout": 3}
    assert server.echo.calls == []


@on_loop
async def test_a_body_that_trickles_in_is_cut_at_the_body_deadline(server: Server) -> None:
    conn = await server.connect()
    conn.send(head("PUT", f"Authorization: Bearer {ADMIN_TOKEN}", "Content-Type: application/json",
                   "Content-Length: 100") + b'{"a": ')
    for _ in range(5):
        await asyncio.sleep(0.02)
        server.clock.advance(LIMITS.body_timeout_s / 6)
        conn.send(b" ")
    await asyncio.sleep(0.02)
    assert conn.response() is None
    server.clock.advance(LIMITS.body_timeout_s / 6)
    response = await answer(conn)
    assert (response.status, response.json["error"]["code"]) == (408, "request_timeout")
    assert "body" in response.json["error"]["message"]
    assert server.refusals == {"body_timeout": 1} and server.echo.calls == []


@on_loop
async def test_connections_per_address_are_capped_and_a_freed_slot_is_served(server: Server) -> None:
    held = [await server.connect() for _ in range(LIMITS.max_connections_per_address)]
    extra = await server.connect()
    response = await answer(extra)  # refused at connect, before it sends anything
    assert (response.status, response.json["error"]["code"]) == (503, "too_many_connections")
    assert response.header("Retry-After") == "1"
    server.clock.advance(LINGER_S)
    await eventually(lambda: extra.is_closed)
    assert server.refusals == {"too_many_connections": 1}
    held[0].close()
    await eventually(lambda: held[0].is_closed)
    await asyncio.sleep(0.05)  # the server sees the close
    assert (await http(server.port, "GET", "/api/v1/echo", token=READ_TOKEN)).status == 200


@on_loop
async def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(server: Server) -> None:
    conn = await server.connect()
    conn.send(head("GET", f"Authorization: Bearer {READ_TOKEN}"))
    response = await answer(conn)
    assert response.status == 200 and not conn.is_closed
    server.clock.advance(LIMITS.idle_timeout_s + 1)
    await eventually(lambda: conn.is_closed)


# -- point 5: any decoding failure of a body is a 400; errors quote only a prefix ---------------------


@pytest.mark.parametrize("body", [b"[" * 20_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000])
@on_loop
async def test_deeply_nested_json_is_a_400_not_a_500(server: Server, body: bytes) -> None:
    result = await http(server.port, "PUT", "/api/v1/echo", token=ADMIN_TOKEN, body=body)
    assert (result.status, result.json["error"]["code"]) == (400, "invalid_json")
    assert "nested too deeply" in result.json["error"]["message"]


@on_loop
async def test_an_error_about_a_huge_key_quotes_only_its_start(server: Server) -> None:
    key = "k" * 20_000
    result = await http(server.port, "PUT", "/api/v1/echo", token=ADMIN_TOKEN,
                        body=f'{{"{key}": 1, "{key}": 2}}'.encode())
    assert (result.status, result.json["error"]["code"]) == (400, "invalid_json")
    assert len(result.raw) < 500 and "20000 characters" in result.json["error"]["message"]


@on_loop
async def test_an_unknown_16000_character_path_is_not_echoed_back(server: Server) -> None:
    result = await http(server.port, "GET", "/api/v1/" + "p" * 16_000, token=READ_TOKEN)
    assert result.status == 404 and len(result.raw) < 500


def test_limits_are_config_keys_checked_with_file_line_and_key() -> None:
    from smsgw.config import ConfigError, parse_config
    from tests.test_config import ADMIN, BASE, FILE

    config = parse_config(BASE + ADMIN.replace("port = 12790", "port = 12790\nheader_timeout_s = 5.0\n"
                                               "max_connections_per_address = 8\nmax_body_bytes = 65536"), FILE)
    assert (config.admin.header_timeout_s, config.admin.max_connections_per_address,
            config.admin.max_body_bytes) == (5.0, 8, 65536)
    assert replace(config.admin, header_timeout_s=10.0, max_connections_per_address=32,
                   max_body_bytes=1024 * 1024) == parse_config(BASE + ADMIN, FILE).admin
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + ADMIN.replace("port = 12790", "port = 12790\nbody_timeout_s = 0\n"
                                          "max_connections_per_address = 0"), FILE)
    text = str(info.value)
    assert "admin.body_timeout_s: must be a number greater than 0" in text
    assert "admin.max_connections_per_address: must be an integer between 1 and 10000, got 0" in text
    assert f"{FILE}:" in text
