"""config/parking.toml → a frozen `ParkingConfig`, or one ConfigError naming file, line and key.

The file is edited by hand at the municipality (a new holiday, a new zone, an inspector's number),
so it is read through `smsgw.tomlcheck` like the gateway's own config: every problem is reported
at once, next to the line to fix.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handlers.parking import parser
from handlers.parking.tariff import Calendar, Tariff, Window
from smsgw.msisdn import canonical_msisdn
from smsgw.textnorm import normalise
from smsgw.tomlcheck import MISSING, Checker, ConfigError, Table, build_checked, read_toml_text

__all__ = ["CONFIG_FILE", "ConfigError", "ParkingConfig", "Zone", "load_parking_config", "parse_parking_config"]

CONFIG_FILE = "parking.toml"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()
_WINDOW_RE = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")
_ZONE_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{1,7}")
_MSISDN_RE = re.compile(r"\d{8,15}")
#: A zone's max_stay_minutes when its table names none (or its max_minutes, if that is more).
DEFAULT_MAX_STAY_MINUTES = 720


@dataclass(frozen=True)
class Zone:
    code: str  # upper case, as drivers type it
    name_en: str
    name_ar: str
    tariff: Tariff
    aliases: tuple[str, ...] = ()  # normalised extra spellings (e.g. the Arabic name)
    #: The longest a stay may last, start to end, however many bookings and extensions build it.
    max_stay_minutes: int = DEFAULT_MAX_STAY_MINUTES

    def name(self, arabic: bool) -> str:
        return self.name_ar if arabic else self.name_en


@dataclass(frozen=True)
class ParkingConfig:
    path: str
    calendar: Calendar
    zones: Mapping[str, Zone]  # by code
    default_zone: str
    reminder_lead_minutes: int
    reminder_poll_seconds: float
    #: What `Y` after a reminder, and `EXT` without minutes, add.
    extend_minutes: int
    refund_unused: bool
    #: The same booking (plate, minutes, zone) from the same number again within this many seconds
    #: is one request (a double tap, a handset's resend): the same confirmation, no new charge.
    repeat_window_seconds: float
    inspectors: frozenset[str]
    plates: parser.PlateRules
    #: How long a reading the driver must confirm ("Did you mean 1234AB 60? Reply Y") stays open.
    confirm_minutes: int = 5

    @property
    def timezone(self) -> ZoneInfo:
        return self.calendar.tz

    def zone(self, code: str | None) -> Zone:
        return self.zones[code or self.default_zone]

    def grammar(self) -> parser.Grammar:
        """What the parser needs: plate rules and the zone words."""
        words: dict[str, str] = {}
        for zone in self.zones.values():
            words[zone.code] = zone.code
            for alias in zone.aliases:
                words[alias] = zone.code
        unit = math.lcm(*(zone.tariff.unit_minutes for zone in self.zones.values()))
        names: dict[str, str] = {}
        for zone in self.zones.values():
            for name in (zone.name_en, zone.name_ar):
                for word in normalise(name).split():
                    # A word two zones share ("Al"), or a short or reserved one, names no zone.
                    if len(word) < 3 or word in words or parser.is_reserved_word(word):
                        continue
                    names[word] = zone.code if names.get(word, zone.code) == zone.code else ""
        zone_names = {word: code for word, code in names.items() if code}
        return parser.Grammar(plates=self.plates, zone_words=words, unit_minutes=unit, zone_names=zone_names)


def load_parking_config(path: str | os.PathLike[str]) -> ParkingConfig:
    name = os.fspath(path)
    return parse_parking_config(read_toml_text(name), name)


def parse_parking_config(text: str, path: str = "<string>") -> ParkingConfig:
    return build_checked(text, path, _build)


# ------------------------------------------------------------------------------------------------


def _build(checker: Checker, data: dict[str, Any], path: str) -> ParkingConfig | None:
    root = Table(checker, (), data)

    main = Table(checker, ("parking",), root.table("parking", {}) or {})
    tz_name = main.string("timezone", "Asia/Muscat", min_len=1)
    default_zone = main.string("default_zone", min_len=1)
    lead = main.integer("reminder_lead_minutes", 10, 0, 120)
    poll = main.number("reminder_poll_seconds", 30.0, hi=600)
    extend_minutes = main.integer("extend_minutes", 30, 1, 24 * 60)
    refund = main.boolean("refund_unused", True)
    repeat_window = main.integer("repeat_window_seconds", 120, 0, 3600)
    confirm_minutes = main.integer("confirm_minutes", 5, 1, 60)
    inspectors = _inspectors(main)
    main.finish()

    tz = None
    if tz_name is not None:
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            main.error("timezone", f'unknown time zone "{tz_name}" (install the tzdata package if the system has none)')

    hours = Table(checker, ("hours",), root.table("hours", {}) or {})
    windows = {i: _windows(hours, day) for i, day in enumerate(WEEKDAYS)}
    holidays = _holidays(hours)
    hours.finish()

    plates = _plates(checker, root)
    zones = _zones(checker, root, plates)
    root.finish()

    if default_zone is not None and zones is not None:
        code = default_zone.upper()
        if code not in zones:
            known = ", ".join(sorted(zones))
            main.error("default_zone", f'no zone "{default_zone}" in [zones] (known: {known})')
        default_zone = code
    if extend_minutes is not None and zones:
        for zone in zones.values():
            t = zone.tariff
            if extend_minutes % t.unit_minutes or extend_minutes > t.max_minutes:
                main.error(
                    "extend_minutes",
                    f"must be a multiple of zone {zone.code}'s unit_minutes ({t.unit_minutes}) and at most "
                    f"its max_minutes ({t.max_minutes}), got {extend_minutes}",
                )
                break

    if checker.issues or tz is None or zones is None or plates is None:
        return None
    return ParkingConfig(
        path=path,
        calendar=Calendar(tz=tz, windows={i: w for i, w in windows.items() if w}, holidays=holidays),
        zones=zones,
        default_zone=default_zone,
        reminder_lead_minutes=lead,
        reminder_poll_seconds=poll,
        extend_minutes=extend_minutes,
        refund_unused=refund,
        repeat_window_seconds=repeat_window,
        inspectors=inspectors,
        plates=plates,
        confirm_minutes=confirm_minutes,
    )


def _inspectors(table: Table) -> frozenset[str]:
    items = table.array("inspectors", [])
    found: set[str] = set()
    for i, item in enumerate(items or []):
        number = canonical_msisdn(item) if isinstance(item, str) else ""
        if not _MSISDN_RE.fullmatch(number):
            table.checker.error(
                table.path + ("inspectors", i),
                f'must be a phone number in quotes, e.g. "96899123456", got {item!r}',
            )
            continue
        found.add(number)
    return frozenset(found)


def _parse_time(hh: str, mm: str) -> time | None:
    h, m = int(hh), int(mm)
    if h == 24 and m == 0:
        return time.max  # the end of the day
    if h > 23 or m > 59:
        return None
    return time(h, m)


def _windows(table: Table, day: str) -> tuple[Window, ...]:
    items = table.array(day, [])
    if not items:
        return ()
    windows: list[Window] = []
    for i, item in enumerate(items):
        where = table.path + (day, i)
        m = _WINDOW_RE.fullmatch(item.strip()) if isinstance(item, str) else None
        start = _parse_time(m.group(1), m.group(2)) if m else None
        end = _parse_time(m.group(3), m.group(4)) if m else None
        if m is None or start is None or end is None or start == time.max:
            table.checker.error(where, f'must be a time range "HH:MM-HH:MM" (e.g. "08:00-13:00"), got {item!r}')
            continue
        if end <= start:
            table.checker.error(where, f"ends before it starts: {item!r} (a window cannot cross midnight; use 24:00)")
            continue
        if windows and start < windows[-1][1]:
            table.checker.error(where, f"{item!r} overlaps or precedes the window before it; list windows in order")
            continue
        windows.append((start, end))
    return tuple(windows)


def _holidays(table: Table) -> frozenset[date]:
    items = table.array("holidays", [])
    days: set[date] = set()
    for i, item in enumerate(items or []):
        # TOML has a date type: 2026-11-18 without quotes.  A quoted date is accepted too.
        value = item
        if isinstance(item, str):
            try:
                value = date.fromisoformat(item.strip())
            except ValueError:
                value = None
        if not isinstance(value, date) or hasattr(value, "hour"):
            table.checker.error(table.path + ("holidays", i), f"must be a date like 2026-11-18, got {item!r}")
            continue
        days.add(value)
    return frozenset(days)


def _plates(checker: Checker, root: Table) -> parser.PlateRules | None:
    t = Table(checker, ("plates",), root.table("plates", {}) or {})
    max_digits = t.integer("max_digits", 5, 1, 8)
    max_letters = t.integer("max_letters", 2, 1, 4)
    raw = t.table("letters")
    t.finish()
    if raw is None or raw is MISSING:
        return None
    letters: dict[str, str] = {}
    seen_arabic: dict[str, str] = {}
    ok = True
    for latin, arabic in raw.items():
        where = ("plates", "letters", latin)
        if not re.fullmatch(r"[A-Za-z]", latin):
            checker.error(where, "the key must be one Latin letter, e.g. A")
            ok = False
            continue
        folded = normalise(arabic) if isinstance(arabic, str) else ""
        if len(folded) != 1 or not ("\u0621" <= folded <= "\u064A"):
            checker.error(where, f'must be one Arabic letter in quotes, e.g. "ب", got {arabic!r}')
            ok = False
            continue
        if folded in seen_arabic:
            checker.error(where, f'"{arabic}" is already the letter for {seen_arabic[folded]}; an Arabic '
                                 "letter must stand for one Latin letter")
            ok = False
            continue
        seen_arabic[folded] = latin.upper()
        letters[latin.upper()] = folded
    if not letters:
        checker.error(("plates", "letters"), 'must list at least one letter, e.g. { A = "ا" }')
        ok = False
    if not ok or max_digits is None or max_letters is None:
        return None
    return parser.PlateRules(letters=letters, max_digits=max_digits, max_letters=max_letters)


def _zones(checker: Checker, root: Table, plates: parser.PlateRules | None) -> dict[str, Zone] | None:
    section = root.table("zones")
    if section is None or section is MISSING:
        return None
    zones: dict[str, Zone] = {}
    claimed: dict[str, str] = {}  # every word that selects a zone -> its zone
    for key, data in section.items():
        path = ("zones", key)
        if not isinstance(data, dict):
            checker.error(path, f"must be a table [zones.{key}] describing one zone")
            continue
        t = Table(checker, path, data)
        code = key.upper()
        name_en = t.string("name_en", min_len=1)
        name_ar = t.string("name_ar", min_len=1)
        baisa = t.integer("tariff_baisa", lo=0, hi=100_000)
        unit = t.integer("unit_minutes", 30, 1, 24 * 60)
        max_minutes = t.integer("max_minutes", 300, 1, 7 * 24 * 60)
        max_stay = t.integer("max_stay_minutes", None, 1, 7 * 24 * 60)
        aliases = t.array("aliases", [])
        t.finish()
        problem = _zone_word_problem(code, plates)
        if problem is None and not _ZONE_CODE_RE.fullmatch(code):
            problem = "must be 2 to 8 letters or digits starting with a letter, e.g. MCT"
        if problem:
            checker.error(path, f"zone code {key!r} {problem}")
        if unit and max_minutes and max_minutes % unit:
            t.error("max_minutes", f"must be a multiple of unit_minutes ({unit}), got {max_minutes}")
        if max_stay is not None and unit and max_minutes:
            if max_stay % unit:
                t.error("max_stay_minutes", f"must be a multiple of unit_minutes ({unit}), got {max_stay}")
            elif max_stay < max_minutes:
                t.error("max_stay_minutes", f"must be at least max_minutes ({max_minutes}): one message may "
                                            f"book that much, got {max_stay}")
        words = [code]
        for i, alias in enumerate(aliases or []):
            word = normalise(alias) if isinstance(alias, str) else ""
            alias_problem = "must be a non-empty string" if not word else _zone_word_problem(word, plates)
            if not alias_problem and (" " in word or "-" in word):
                alias_problem = "must be one word"
            if alias_problem:
                checker.error(path + ("aliases", i), f"{alias!r} {alias_problem}")
            else:
                words.append(word)
        for word in words:
            if word in claimed and claimed[word] != code:
                checker.error(path, f"{word!r} already selects zone {claimed[word]}")
            claimed[word] = code
        if None in (name_en, name_ar, baisa, unit, max_minutes) or problem:
            continue
        zones[code] = Zone(
            code=code,
            name_en=name_en,
            name_ar=name_ar,
            tariff=Tariff(baisa_per_unit=baisa, unit_minutes=unit, max_minutes=max_minutes),
            aliases=tuple(w for w in words if w != code),
            max_stay_minutes=max_stay if max_stay is not None else max(DEFAULT_MAX_STAY_MINUTES, max_minutes),
        )
    if not zones and not any(i.key.startswith("zones") for i in checker.issues):
        checker.error(("zones",), "at least one zone is required, e.g. [zones.MCT]")
    return zones


def _zone_word_problem(word: str, plates: parser.PlateRules | None) -> str | None:
    """Why a word cannot select a zone: the parser would read it as something else."""
    if parser.is_reserved_word(word):
        return "is a keyword or a duration word"
    if plates is not None and plates.letters_of(word) is not None:
        return "could be read as plate letters"
    if word.isdigit():
        return "is a number (it would be read as minutes)"
    return None


def default_config_path(config_dir: Path) -> Path:
    return config_dir / CONFIG_FILE
