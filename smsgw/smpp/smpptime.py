"""SMPP v3.4 time fields (section 7.1.1): the validity_period of a submit_sm. Pure.

Both forms are 16 characters, `YYMMDDhhmmsstnnp`:

* absolute: a point in time; `t` tenths of a second, `nn` the offset from UTC in quarter hours,
  `p` "+" or "-". We write UTC ("00+"), so the SMSC's own zone does not matter.
* relative: a span from the moment the SMSC gets the message; `tnn` is "000" and `p` is "R".
  Only days, hours, minutes and seconds are used: months and years have no fixed length.

A relative validity is measured when the SMSC reads the submit, so an MT sent after retries or a
restart gets what is left of its validity, not a fresh one.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["FORMATS", "MAX_RELATIVE_S", "absolute", "relative", "validity_period"]

#: The forms a carrier's `validity_format` may name.
FORMATS: tuple[str, ...] = ("relative", "absolute")
#: 99 days: the most the two-digit day field of a relative time can say (months are not used).
MAX_RELATIVE_S = 99 * 86400 + 23 * 3600 + 59 * 60 + 59


def relative(seconds: float) -> str:
    """`seconds` (rounded down, at least 1, at most 99 days) as a relative time."""
    span = min(max(int(seconds), 1), MAX_RELATIVE_S)
    days, rest = divmod(span, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def absolute(at: float) -> str:
    """The moment `at` (epoch seconds) as an absolute time in UTC, to the tenth of a second."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%y%m%d%H%M%S") + f"{moment.microsecond // 100_000}00+"


def validity_period(form: str, expires_at: float, now: float) -> str:
    """The validity_period field for an MT that expires at `expires_at`, sent at `now`."""
    if form == "absolute":
        return absolute(expires_at)
    if form == "relative":
        return relative(expires_at - now)
    raise ValueError(f"unknown validity format {form!r}; expected one of {FORMATS}")
