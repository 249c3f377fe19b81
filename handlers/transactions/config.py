"""config/transactions.toml → `TransactionsConfig`, or one ConfigError naming file, line and key.

Every key has a default, so a missing file (or an empty one) means the defaults below, which are
also what the shipped file spells out (a test keeps the two equal).  `[service_types]` and
`[statuses]`, when present, replace the default tables as a whole: a municipality that renames or
drops a status lists the statuses it uses.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handlers.texts import fits_7bit
from handlers.transactions.refs import DEFAULT_PATTERN, PatternError, ReferenceFormat
from smsgw.log import get_logger
from smsgw.message import Lang
from smsgw.textnorm import detect_lang
from smsgw.tomlcheck import (
    MISSING,
    Checker,
    ConfigError,
    Table,
    build_checked,
    read_toml_text,
)

__all__ = [
    "CONFIG_FILE",
    "NOTICE_FIELDS",
    "ConfigError",
    "NotificationConfig",
    "StatusConfig",
    "TransactionsConfig",
    "Wording",
    "load_transactions_config",
    "parse_transactions_config",
]

log = get_logger(__name__)

CONFIG_FILE = "transactions.toml"

#: Placeholders a notification template may use.
NOTICE_FIELDS = ("ref", "service", "status", "updated", "note", "code")

_KEY_RE = re.compile(r"[a-z][a-z0-9_]*")
_SHORT_CODE_RE = re.compile(r"[0-9]{3,8}")


@dataclass(frozen=True)
class Wording:
    """One text in both languages."""

    en: str
    ar: str

    def __call__(self, lang: Lang) -> str:
        return self.ar if lang is Lang.AR else self.en


@dataclass(frozen=True)
class StatusConfig:
    key: str
    name: Wording
    open: bool  # counts as open for MY
    notify: bool  # a change TO this status sends a notification


@dataclass(frozen=True)
class NotificationConfig:
    enabled: bool = True
    #: A transaction the feed creates is a status change from nothing; off by default so that the
    #: first bulk import of existing files does not text every applicant at once.
    on_create: bool = False
    #: Carrier for numbers that never sent us an MO (see docs in the shipped file).
    default_carrier: str = "omantel"
    max_parts: int = 2
    #: How often the gateway looks for notifications written by `smsgw transactions import`.
    poll_s: float = 5.0
    text: Wording = Wording(
        en="Muscat Municipality: request {ref} ({service}) is now {status}.{note} "
        "To stop these SMS send STOP to {code}.",
        ar="بلدية مسقط: طلبك {ref} ({service}) أصبح: {status}.{note} لإيقاف الرسائل أرسل إيقاف إلى {code}.",
    )
    #: The same with less boilerplate, for a note that does not fit `max_parts` whole in `text`:
    #: tried before the note is shortened (at a word boundary) at all.
    short_text: Wording = Wording(
        en="Muscat Municipality: {ref} is now {status}.{note} Send STOP to {code} to stop these SMS.",
        ar="بلدية مسقط: {ref} أصبح: {status}.{note} للإيقاف أرسل إيقاف إلى {code}.",
    )


DEFAULT_SERVICE_TYPES: Mapping[str, Wording] = {
    "building_permit_renewal": Wording("Building permit renewal", "تجديد رخصة بناء"),
    "parking_permit": Wording("Parking permit", "تصريح مواقف"),
    "lease_contract_renewal": Wording("Lease contract renewal", "تجديد عقد إيجار"),
    "commercial_licence_renewal": Wording("Commercial licence renewal", "تجديد رخصة تجارية"),
    "general_request": Wording("General service request", "طلب خدمة عامة"),
}

DEFAULT_STATUSES: Mapping[str, StatusConfig] = {
    s.key: s
    for s in (
        StatusConfig("received", Wording("Received", "تم الاستلام"), open=True, notify=True),
        StatusConfig("under_review", Wording("Under review", "قيد المراجعة"), open=True, notify=True),
        StatusConfig("awaiting_documents", Wording("Awaiting documents", "بانتظار المستندات"), open=True, notify=True),
        StatusConfig("approved", Wording("Approved", "تمت الموافقة"), open=True, notify=True),
        StatusConfig("rejected", Wording("Rejected", "مرفوض"), open=False, notify=True),
        StatusConfig("completed", Wording("Completed", "مكتمل"), open=False, notify=True),
    )
}


@dataclass(frozen=True)
class TransactionsConfig:
    path: str = "<defaults>"
    #: The short code notifications are sent from (queries are answered wherever routes say).
    short_code: str = "90092"
    call_centre: str = "1111"
    timezone: str = "Asia/Muscat"
    #: Language of notifications to numbers that never wrote to us.
    default_lang: Lang = Lang.AR
    reference: ReferenceFormat = field(default_factory=ReferenceFormat)
    #: Failed look-ups (unknown reference, or not registered to the sender) allowed per window.
    max_failed_lookups: int = 10
    lookup_window_s: float = 3600.0
    status_max_parts: int = 2
    list_max_parts: int = 2
    notifications: NotificationConfig = NotificationConfig()
    service_types: Mapping[str, Wording] = field(default_factory=lambda: dict(DEFAULT_SERVICE_TYPES))
    statuses: Mapping[str, StatusConfig] = field(default_factory=lambda: dict(DEFAULT_STATUSES))

    @property
    def open_statuses(self) -> tuple[str, ...]:
        return tuple(key for key, status in self.statuses.items() if status.open)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_time(self, epoch: float | None) -> str | None:
        """`2026-03-12 10:30` in the municipality's time zone: the same digits in both languages;
        None for a time that cannot be shown (see `_local`)."""
        moment = self._local(epoch)
        return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else None

    def iso_time(self, epoch: float | None) -> str | None:
        """ISO 8601 with the local offset, for the API: `2026-03-12T10:30:00+04:00`; None for a
        time that cannot be shown."""
        moment = self._local(epoch)
        return moment.isoformat(timespec="seconds") if moment is not None else None

    def _local(self, epoch: float | None) -> datetime | None:
        # Rows written before dates were range-checked may hold a time outside what a datetime
        # can show (0001-01-01 in a zone east of UTC): one such row must not break a reply.
        try:
            return datetime.fromtimestamp(epoch, UTC).astimezone(self.zone())  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError, OSError):
            return None

    def service_name(self, key: str, lang: Lang) -> str:
        wording = self.service_types.get(key)
        return wording(lang) if wording is not None else key

    def status_name(self, key: str, lang: Lang) -> str:
        status = self.statuses.get(key)
        return status.name(lang) if status is not None else key


# --------------------------------------------------------------------------------------------------
# Loading


def load_transactions_config(
    path: str | os.PathLike[str], carriers: Mapping[str, tuple[str, ...]] | None = None
) -> TransactionsConfig:
    """Read and validate the file; a missing file means the defaults (logged).

    `carriers`: enabled carriers → the short codes each serves.  When given, the notification
    short code and default carrier are checked against them.
    """
    name = os.fspath(path)
    if not Path(name).exists():
        log.warning("transactions_config_missing", path=name, using="defaults")
        text = ""
    else:
        text = read_toml_text(name)
    return parse_transactions_config(text, name, carriers)


def parse_transactions_config(
    text: str, path: str = "<string>", carriers: Mapping[str, tuple[str, ...]] | None = None
) -> TransactionsConfig:
    return build_checked(text, path, lambda checker, data, name: _build(checker, data, name, carriers))


def _build(
    checker: Checker, data: dict[str, Any], path: str, carriers: Mapping[str, tuple[str, ...]] | None
) -> TransactionsConfig | None:
    d = TransactionsConfig()
    root = Table(checker, (), data)
    short_code = root.string("short_code", d.short_code)
    if short_code is not None and not _SHORT_CODE_RE.fullmatch(short_code):
        root.error("short_code", f'must be 3 to 8 ASCII digits, got "{short_code}"')
        short_code = None
    call_centre = root.string("call_centre", d.call_centre, min_len=1, max_len=20)
    tz = root.string("timezone", d.timezone, min_len=1)
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            root.error("timezone", f'unknown time zone "{tz}" (use an IANA name such as "Asia/Muscat")')
    default_lang = root.choice("default_lang", d.default_lang.value, ("ar", "en"))

    ref = Table(checker, ("reference",), root.table("reference", {}) or {})
    pattern = ref.string("pattern", DEFAULT_PATTERN, min_len=1)
    prefix_optional = ref.boolean("prefix_optional", True)
    short_serial = ref.boolean("short_serial", True)
    ref.finish()
    reference = None
    if pattern is not None:
        try:
            reference = ReferenceFormat(pattern, bool(prefix_optional), bool(short_serial))
        except PatternError as exc:
            ref.error("pattern", str(exc))

    lookups = Table(checker, ("lookups",), root.table("lookups", {}) or {})
    max_failed = lookups.integer("max_failed", d.max_failed_lookups, 1, 1000)
    window_s = lookups.number("window_s", d.lookup_window_s, lo=59, hi=7 * 86400)
    lookups.finish()

    replies = Table(checker, ("replies",), root.table("replies", {}) or {})
    status_max_parts = replies.integer("status_max_parts", d.status_max_parts, 1, 4)
    list_max_parts = replies.integer("list_max_parts", d.list_max_parts, 1, 4)
    replies.finish()

    notifications = _notifications(checker, root, short_code, carriers)
    service_types = _service_types(checker, root)
    statuses = _statuses(checker, root)
    root.finish()

    if checker.issues:
        return None
    return TransactionsConfig(
        path=path,
        short_code=short_code,
        call_centre=call_centre,
        timezone=tz,
        default_lang=Lang(default_lang),
        reference=reference,  # type: ignore[arg-type]
        max_failed_lookups=max_failed,
        lookup_window_s=window_s,
        status_max_parts=status_max_parts,
        list_max_parts=list_max_parts,
        notifications=notifications,  # type: ignore[arg-type]
        service_types=service_types,  # type: ignore[arg-type]
        statuses=statuses,  # type: ignore[arg-type]
    )


def _wording(
    table: Table, what: str, *, placeholders: tuple[str, ...] = (), default: Wording | None = None,
    prefix: str = "", required: tuple[str, ...] = (),
) -> Any:
    """`<prefix>en` and `<prefix>ar`: one text in both languages, a template of `placeholders`
    (those in `required` must appear)."""
    en_key, ar_key = prefix + "en", prefix + "ar"
    en = table.string(en_key, default.en if default else MISSING, min_len=1, max_len=300)
    ar = table.string(ar_key, default.ar if default else MISSING, min_len=1, max_len=300)
    if en is not None and not fits_7bit(en.replace("{", "").replace("}", "")):
        # One character outside GSM/ASCII turns a whole English SMS into UCS-2 (70, not 160, a part).
        table.error(en_key, f"{what} in English must use plain ASCII characters, so English SMS stay 7-bit")
        en = None
    if ar is not None and detect_lang(ar) is not Lang.AR:
        table.error(ar_key, f"{what} in Arabic must contain Arabic text")
        ar = None
    for key, value in ((en_key, en), (ar_key, ar)):
        if value is None:
            continue
        try:
            fields = [f for _lit, f, _spec, _conv in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            table.error(key, f"is not a valid template: {exc} (write a literal brace as {{{{ or }}}})")
            continue
        for name in fields:
            if name not in placeholders:
                allowed = ", ".join("{" + p + "}" for p in placeholders) or "none"
                table.error(key, f"unknown placeholder {{{name}}} (allowed here: {allowed})")
        for name in required:
            if name not in fields:
                table.error(key, f"must contain {{{name}}}")
    if en is None or ar is None:
        return None
    return Wording(en, ar)


def _notifications(
    checker: Checker, root: Table, short_code: str | None, carriers: Mapping[str, tuple[str, ...]] | None
) -> Any:
    d = NotificationConfig()
    t = Table(checker, ("notifications",), root.table("notifications", {}) or {})
    enabled = t.boolean("enabled", d.enabled)
    on_create = t.boolean("on_create", d.on_create)
    default_carrier = t.string("default_carrier", d.default_carrier, min_len=1)
    max_parts = t.integer("max_parts", d.max_parts, 1, 4)
    poll_s = t.number("poll_s", d.poll_s, hi=3600)
    text = _wording(t, "the notification", placeholders=NOTICE_FIELDS, default=d.text)
    short_text = _wording(t, "the short notification", placeholders=NOTICE_FIELDS, default=d.short_text,
                          prefix="short_", required=("note",))
    t.finish()
    if carriers is not None and short_code is not None:
        serving = sorted(name for name, codes in carriers.items() if short_code in codes)
        if not serving:
            root.error("short_code", f'"{short_code}" is not served by any enabled carrier')
        elif default_carrier is not None and default_carrier not in serving:
            listed = ", ".join(f'"{name}"' for name in serving)
            t.error(
                "default_carrier",
                f'"{default_carrier}" is not an enabled carrier serving {short_code} (those are {listed})',
            )
    if text is None or short_text is None:
        return None
    return NotificationConfig(enabled, on_create, default_carrier, max_parts, poll_s, text, short_text)


def _named_tables(checker: Checker, root: Table, key: str, what: str) -> list[tuple[str, Table]] | None:
    section = root.table(key, None)
    if section is None:  # absent (the defaults apply), or not a table (already reported)
        return None
    if not section:
        root.error(key, f"must list at least one {what}")
        return []
    found = []
    for name, value in section.items():
        if not isinstance(value, dict):
            checker.error((key, name), f"must be a table [{key}.{name}] with en and ar, got a value")
            continue
        if not _KEY_RE.fullmatch(name):
            checker.error((key, name), f"{what} key must be lower-case letters, digits and _, e.g. under_review")
        found.append((name, Table(checker, (key, name), value)))
    return found


def _service_types(checker: Checker, root: Table) -> Any:
    tables = _named_tables(checker, root, "service_types", "service type")
    if tables is None:
        return DEFAULT_SERVICE_TYPES
    types = {}
    for name, t in tables:
        wording = _wording(t, "a service name")
        t.finish()
        if wording is not None:
            types[name] = wording
    return types


def _statuses(checker: Checker, root: Table) -> Any:
    tables = _named_tables(checker, root, "statuses", "status")
    if tables is None:
        return DEFAULT_STATUSES
    statuses = {}
    for name, t in tables:
        wording = _wording(t, "a status name")
        is_open = t.boolean("open", True)
        notify = t.boolean("notify", True)
        t.finish()
        if wording is not None:
            statuses[name] = StatusConfig(name, wording, bool(is_open), bool(notify))
    if tables and not any(s.open for s in statuses.values()) and not checker.issues:
        root.error("statuses", "no status is open = true, so MY could never list anything")
    return statuses
