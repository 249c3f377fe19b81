"""A tiny HTTP client for admin API tests: twisted.web's Agent over real loopback TCP."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers


class _Collect(Protocol):
    """The response body; readBody would do, but warns about the asyncio reactor's transports."""

    def __init__(self, done: Deferred[bytes]) -> None:
        self.done = done
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: Headers
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw.decode("utf-8"))

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode("latin-1") if values else None


async def http(
    port: int,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    content_type: str | None = "application/json",
    authorization: str | None = None,
) -> HttpResult:
    """One request; `body` may be bytes or anything JSON-serialisable."""
    headers = Headers()
    if authorization is not None:
        headers.addRawHeader(b"authorization", authorization.encode("latin-1"))
    elif token is not None:
        headers.addRawHeader(b"authorization", f"Bearer {token}".encode("latin-1"))
    producer = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
        producer = FileBodyProducer(io.BytesIO(data))
        if content_type is not None:
            headers.addRawHeader(b"content-type", content_type.encode("latin-1"))
    loop = asyncio.get_running_loop()
    agent = Agent(reactor)
    response = await agent.request(
        method.encode("ascii"), f"http://127.0.0.1:{port}{path}".encode("ascii"), headers, producer
    ).asFuture(loop)
    done: Deferred[bytes] = Deferred()
    response.deliverBody(_Collect(done))
    raw = await done.asFuture(loop)
    return HttpResult(response.code, response.headers, raw)


class RawConnection(Protocol):
    """One TCP connection to the server for requests no HTTP client would send: headers that
    trickle in, a body announced and never sent, a chunked body that never ends."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.closed: Deferred[None] = Deferred()
        self.is_closed = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.is_closed = True
        self.closed.callback(None)

    def send(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]

    def close(self) -> None:
        if not self.is_closed:
            self.transport.abortConnection()  # type: ignore[union-attr]

    def response(self) -> HttpResult | None:
        """The first complete response received so far (Content-Length framed), or None."""
        head, sep, rest = bytes(self.received).partition(b"\r\n\r\n")
        if not sep:
            return None
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = Headers()
        for line in lines:
            name, _, value = line.partition(":")
            headers.addRawHeader(name.strip().encode("latin-1"), value.strip().encode("latin-1"))
        length = int((headers.getRawHeaders(b"content-length") or [b"0"])[0])
        if len(rest) < length:
            return None
        return HttpResult(int(status_line.split()[1]), headers, rest[:length])


async def raw_connect(port: int) -> RawConnection:
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    return await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawConnection()).asFuture(
        asyncio.get_running_loop())
