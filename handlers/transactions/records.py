"""Feed input (a CSV row, a JSON body) → a validated `TransactionRecord`, or every reason it is not.

Both feeds go through here, so a value the API accepts the importer accepts too, with the same
message when it does not.  Pure: no store, no clock (the caller passes `now`).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Self

import phonenumbers

from handlers.transactions.config import TransactionsConfig
from smsgw.log import excerpt
from smsgw.msisdn import parse_user_msisdn

__all__ = ["EARLIEST", "FIELDS", "KEEP", "Keep", "RecordError", "TransactionRecord", "parse_record", "parse_time"]

#: Every field a feed may send; only ref, service and status are required.
FIELDS: Final = ("ref", "service", "status", "msisdns", "note_en", "note_ar", "updated_at")

MAX_NOTE = 500
MAX_MSISDNS = 10
#: A feed clock this far ahead of ours is a mistake; storing its time would make every later,
#: correct update look older ("stale") than it.
MAX_CLOCK_AHEAD_S = 600.0
#: No municipal transaction of this system predates it; an earlier date is a feed mistake (a
#: default like 0001-01-01), and one that cannot even be shown in every time zone.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

_DQ = '"'  # inputs quoted in messages as "…", the way the feed wrote them
_MSISDN_SPLIT = re.compile(r"[;,|\s]+")
_KEY_SPLIT = re.compile(r"[\s\-]+")


class Keep:
    """Marks a field the feed did not send: an update keeps what is stored."""

    _instance: Self | None = None

    def __new__(cls) -> Self:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = Keep()


@dataclass(frozen=True)
class TransactionRecord:
    """One transaction as the back office states it; fields left as KEEP are not touched."""

    ref: str  # canonical
    service: str  # a configured service type key
    status: str  # a configured status key
    msisdns: tuple[str, ...] | Keep = KEEP  # international digits, no '+'
    note_en: str | None | Keep = KEEP  # None: no note
    note_ar: str | None | Keep = KEEP
    updated_at: float | None = None  # None: "now", when the change is applied


class RecordError(ValueError):
    """Every problem of one record: (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        # An unknown field name is the sender's text: shown cut short, like every quoted input.
        return "; ".join(f"{name if len(name) <= 40 else excerpt(name)}: {message}" for name, message in self.problems)


def parse_record(fields: Mapping[str, Any], config: TransactionsConfig, now: float) -> TransactionRecord:
    """Validate one record; fields absent from `fields` are KEEP (ref, service, status are required).

    Values may be strings (CSV) or JSON types.  Raises RecordError listing every problem.
    """
    problems: list[tuple[str, str]] = []
    for name in fields:
        if name not in FIELDS:
            problems.append((name, f"unknown field{_hint(name, FIELDS)}"))

    ref = _required_text(fields, "ref", problems)
    if ref is not None:
        canonical = config.reference.parse(ref)
        if canonical is None:
            problems.append(("ref", f"not a reference like {config.reference.example()}"))
        ref = canonical
    service = _choice(fields, "service", config.service_types, problems)
    status = _choice(fields, "status", config.statuses, problems)
    msisdns = _msisdns(fields, problems)
    note_en = _note(fields, "note_en", problems)
    note_ar = _note(fields, "note_ar", problems)
    updated_at: float | None = None
    raw_time = fields.get("updated_at")
    if raw_time is not None and not (isinstance(raw_time, str) and not raw_time.strip()):
        if not isinstance(raw_time, str):
            problems.append(("updated_at", "must be a date and time as text, e.g. 2026-03-12T10:30:00+04:00"))
        else:
            try:
                updated_at = parse_time(raw_time, config)
            except ValueError as exc:
                problems.append(("updated_at", str(exc)))
            else:
                if updated_at > now + MAX_CLOCK_AHEAD_S:
                    problems.append(("updated_at", f"{excerpt(raw_time.strip())} is in the future"))
    if problems:
        raise RecordError(problems)
    assert ref is not None and service is not None and status is not None
    return TransactionRecord(ref, service, status, msisdns, note_en, note_ar, updated_at)


def parse_time(text: str, config: TransactionsConfig) -> float:
    """ISO 8601 (`2026-03-12T10:30:00+04:00`, `2026-03-12 10:30`); no offset means local time.

    Raises ValueError for text that is no date, and for a date before `EARLIEST`."""
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=config.zone())
        early = moment < EARLIEST
        stamp = moment.timestamp()
    except (ValueError, OverflowError):
        raise ValueError(
            f"{excerpt(text.strip())} is not a date and time like 2026-03-12T10:30:00+04:00 or 2026-03-12 10:30"
        ) from None
    if early:
        raise ValueError(f"{excerpt(text.strip())} is before {EARLIEST.date().isoformat()}; send the real date")
    return stamp


# --------------------------------------------------------------------------------------------------


def _hint(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _required_text(fields: Mapping[str, Any], name: str, problems: list[tuple[str, str]]) -> str | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append((name, "is required"))
        return None
    if not isinstance(value, str):
        problems.append((name, "must be text"))
        return None
    return value.strip()


def _choice(
    fields: Mapping[str, Any], name: str, options: Mapping[str, Any], problems: list[tuple[str, str]]
) -> str | None:
    """A configured key; case, spaces and hyphens are forgiven ("Under review" is under_review)."""
    value = _required_text(fields, name, problems)
    if value is None:
        return None
    key = _KEY_SPLIT.sub("_", value.strip().lower())
    if key in options:
        return key
    listed = ", ".join(options)
    problems.append((name, f"unknown {name} {excerpt(value, quote=_DQ)}{_hint(key[:40], options)}; known: {listed}"))
    return None


def _msisdns(fields: Mapping[str, Any], problems: list[tuple[str, str]]) -> tuple[str, ...] | Keep:
    raw = fields.get("msisdns", KEEP)
    if raw is KEEP:
        return KEEP
    if isinstance(raw, str):
        items = [item for item in _MSISDN_SPLIT.split(raw) if item]
        if not items:
            return KEEP  # an empty CSV cell: keep the numbers already registered
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        items = list(raw)
        if not items:
            problems.append(("msisdns", "must list at least one number"))
            return KEEP
    else:
        problems.append(("msisdns", 'must be a list of numbers as text, e.g. ["+96891234567"]'))
        return KEEP
    numbers: list[str] = []
    for item in items:
        number = parse_user_msisdn(item.strip(), "OM")
        if number is None:
            problems.append(("msisdns", f"{excerpt(item.strip(), quote=_DQ)} is not a valid phone number"))
        elif not _can_receive_sms(number):
            problems.append(("msisdns", f"{excerpt(item.strip(), quote=_DQ)} is not a mobile number"))
        elif number not in numbers:
            numbers.append(number)
    if len(numbers) > MAX_MSISDNS:
        problems.append(("msisdns", f"at most {MAX_MSISDNS} numbers per transaction, got {len(numbers)}"))
    return tuple(numbers)


def _can_receive_sms(msisdn: str) -> bool:
    number = phonenumbers.parse("+" + msisdn)
    return phonenumbers.number_type(number) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def _note(fields: Mapping[str, Any], name: str, problems: list[tuple[str, str]]) -> str | None | Keep:
    if name not in fields:
        return KEEP
    value = fields[name]
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append((name, "must be text or null"))
        return KEEP
    # Control characters and line breaks would garble an SMS; bidi controls could reorder it.
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in value)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > MAX_NOTE:
        problems.append((name, f"at most {MAX_NOTE} characters, got {len(cleaned)}"))
        return KEEP
    return cleaned or None
