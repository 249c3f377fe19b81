"""Bearer tokens with names and roles, checked in constant time.

The token a client sends is compared with EVERY configured token using `hmac.compare_digest`,
and the loop does not stop at a match, so the time taken says nothing about which token (or how
much of one) was right.  The token never leaves this module: callers get a `Principal` (name and
role), which is what logs and audit records carry.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from smsgw.admin.api import Principal, Role
from smsgw.config import AdminToken

__all__ = ["Authenticator"]

_SCHEME = b"bearer"


class Authenticator:
    def __init__(self, tokens: Iterable[AdminToken]) -> None:
        self._tokens = [(t.token.encode("ascii"), Principal(t.name, Role(t.role))) for t in tokens]

    def authenticate(self, authorization: bytes | None) -> Principal | None:
        """The caller of an `Authorization: Bearer <token>` header, or None (missing, malformed, wrong)."""
        if not authorization:
            return None
        scheme, _, credential = authorization.strip().partition(b" ")
        credential = credential.strip()
        if scheme.lower() != _SCHEME or not credential:
            return None
        found: Principal | None = None
        for secret, principal in self._tokens:
            if hmac.compare_digest(secret, credential) and found is None:
                found = principal
        return found
