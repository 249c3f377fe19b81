"""What an admin endpoint is, independent of the HTTP server: routes, calls, responses, errors.

Features (transactions now; routes, carriers, messages with issue 7) declare `AdminRoute`s whose
handlers are `async def handler(call: ApiCall) -> Response`.  They never see Twisted: the server
(`smsgw.admin.server`) authenticates, parses, runs the handler and writes the response.  A handler
signals a client error by raising `ApiError`; anything else it raises becomes a logged 500 with
a JSON body and no stack trace.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smsgw.log import excerpt

__all__ = [
    "Access",
    "AdminRoute",
    "ApiCall",
    "ApiError",
    "JsonResponse",
    "Principal",
    "Response",
    "Role",
]

#: Largest request body accepted by default ([admin] max_body_bytes); the API takes small JSON
#: documents, never uploads.
MAX_BODY = 1024 * 1024
#: An error message or field name longer than this is cut: errors must not echo big inputs back.
MAX_MESSAGE = 300
MAX_FIELD = 64


class Role(str, enum.Enum):
    READ_ONLY = "read-only"
    ADMIN = "admin"


class Access(str, enum.Enum):
    """Who may call a route."""

    PUBLIC = "public"  # no token (e.g. a health check)
    READ = "read"  # any valid token
    WRITE = "write"  # a token with the admin role


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a token's name and role, never the token itself."""

    name: str
    role: Role

    @property
    def can_write(self) -> bool:
        return self.role is Role.ADMIN


class ApiError(Exception):
    """A client error: becomes `status` with body {"error": {"code", "message", "field"?}}."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": _cut(self.message, MAX_MESSAGE)}
        if self.field is not None:
            error["field"] = _cut(self.field, MAX_FIELD)
        return {"error": error}


def _cut(text: str, limit: int) -> str:
    # The last line of defence; messages quote inputs through smsgw.log.excerpt in the first place.
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


def JsonResponse(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response; non-ASCII text (Arabic) is sent as UTF-8, not \\u escapes."""
    return Response(
        status,
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        "application/json; charset=utf-8",
        dict(headers or {}),
    )


@dataclass(frozen=True)
class ApiCall:
    """One request as a handler sees it."""

    method: str
    path: str
    params: Mapping[str, str]  # from the route's {placeholders}, URL-decoded
    query: Mapping[str, tuple[str, ...]]
    principal: Principal | None  # None only on PUBLIC routes
    body: bytes = b""
    content_type: str | None = None

    def json(self) -> Any:
        """The body as JSON; ApiError 400/415 when it is not (duplicate keys included)."""
        if self.content_type is not None:
            media = self.content_type.split(";", 1)[0].strip().lower()
            if media != "application/json":
                raise ApiError(415, "unsupported_media_type", f"send JSON (Content-Type: application/json), not {media}")
        if not self.body.strip():
            raise ApiError(400, "invalid_json", "the request body is empty; send a JSON object")
        try:
            return json.loads(self.body.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except UnicodeDecodeError:
            raise ApiError(400, "invalid_json", "the request body is not UTF-8") from None
        except _DuplicateKey as exc:
            raise ApiError(400, "invalid_json", f"key {excerpt(exc.key)} appears twice",
                           field=exc.key[:MAX_FIELD]) from None
        except RecursionError:
            raise ApiError(400, "invalid_json", "the request body is nested too deeply") from None
        except ValueError as exc:
            # json's messages give a position, never the text sent.
            raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from None
        except Exception as exc:  # whatever else decoding can raise is still the client's input
            raise ApiError(400, "invalid_json", f"the request body could not be decoded ({type(exc).__name__})") \
                from None

    def json_object(self) -> dict[str, Any]:
        value = self.json()
        if not isinstance(value, dict):
            raise ApiError(400, "invalid_json", "the request body must be a JSON object")
        return value


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key silently keeps the last value in json.loads; in a feed that hides mistakes.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


Handler = Callable[[ApiCall], Awaitable[Response]]

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class AdminRoute:
    """`method` `path` → `handler`.  Path segments may be `{name}` (one whole segment).

    `access` defaults to READ for GET/HEAD and WRITE for everything else, so a route that
    changes state cannot be opened to read-only tokens by forgetting a flag.  `token_in_query`
    (PUBLIC routes only: a page a browser loads) also takes the token from `?token=`; the
    handler then gets the caller, if any, in `call.principal`.
    """

    method: str
    path: str
    handler: Handler
    access: Access | None = None
    token_in_query: bool = False

    @property
    def effective_access(self) -> Access:
        if self.access is not None:
            return self.access
        return Access.READ if self.method in ("GET", "HEAD") else Access.WRITE

    def segments(self) -> tuple[str, ...]:
        if not self.path.startswith("/"):
            raise ValueError(f"admin route path must start with '/': {self.path!r}")
        parts = tuple(self.path.strip("/").split("/"))
        for part in parts:
            if "{" in part and not _PLACEHOLDER.fullmatch(part):
                raise ValueError(f"admin route {self.path!r}: a placeholder must be a whole segment")
        return parts

    def match(self, segments: tuple[str, ...]) -> dict[str, str] | None:
        mine = self.segments()
        if len(mine) != len(segments):
            return None
        params: dict[str, str] = {}
        for pattern, actual in zip(mine, segments):
            m = _PLACEHOLDER.fullmatch(pattern)
            if m:
                params[m.group(1)] = actual
            elif pattern != actual:
                return None
        return params
