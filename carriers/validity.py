"""How a simulated SMSC reads the validity_period of a submit_sm (SMPP v3.4 section 7.1.1).

Written from the specification, not from the gateway's encoder (smsgw/smpp/smpptime.py), so a
shared misreading cannot cancel out in the tests. 16 characters, `YYMMDDhhmmsstnnp`:

* `p` "+" or "-": absolute; `t` tenths of a second, `nn` quarter hours ahead of (+) or behind (-)
  UTC, at most 48.
* `p` "R": relative to now. The spec leaves year and month lengths open; we count 365 and 30 days,
  as common SMSC software does.
* empty: the SMSC's own default validity.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["FORMS", "InvalidValidity", "form_of", "expiry"]

FORMS = frozenset({"relative", "absolute"})

_FIELD_RE = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d)(\d{2})([+\-R])")


class InvalidValidity(ValueError):
    """A validity_period that is not an SMPP time (the SMSC answers ESME_RINVEXPIRY)."""


def form_of(text: str) -> str | None:
    """"relative", "absolute", or None for an empty field; raises InvalidValidity."""
    if not text:
        return None
    match = _FIELD_RE.fullmatch(text)
    if match is None:
        raise InvalidValidity(f"validity_period {text!r} is not YYMMDDhhmmsstnnp")
    return "relative" if match.group(9) == "R" else "absolute"


def expiry(text: str, now: float) -> float | None:
    """When a message submitted at `now` with this validity_period expires (epoch seconds), or
    None for an empty field. Raises InvalidValidity."""
    if not text:
        return None
    match = _FIELD_RE.fullmatch(text)
    if match is None:
        raise InvalidValidity(f"validity_period {text!r} is not YYMMDDhhmmsstnnp")
    yy, mo, dd, hh, mi, ss, tenth, nn = (int(match.group(i)) for i in range(1, 9))
    sign = match.group(9)
    if sign == "R":
        days = yy * 365 + mo * 30 + dd
        return now + days * 86400 + hh * 3600 + mi * 60 + ss
    if nn > 48:
        raise InvalidValidity(f"validity_period {text!r}: UTC offset of {nn} quarter hours")
    offset = timedelta(minutes=15 * nn) * (1 if sign == "+" else -1)
    try:
        moment = datetime(2000 + yy, mo, dd, hh, mi, ss, tenth * 100_000, tzinfo=timezone(offset))
    except ValueError as exc:
        raise InvalidValidity(f"validity_period {text!r}: {exc}") from None
    return moment.timestamp()
