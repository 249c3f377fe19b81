"""What a stay costs: paid hours, holidays and the per-unit tariff, as pure functions of time.

Times are epoch seconds (what the injected clocks give); the calendar converts them to wall-clock
time in its own zone (Asia/Muscat) only to find the paid windows.  A stay is charged for the part
of it that falls inside paid windows, rounded UP to whole units (a started 30-minute unit is
paid), and never for free time: 12:30 + 60 min is charged 30 min, the 13:00-16:00 break is free.

The charge is always computed for the whole stay (start to end), and an extension pays the
difference; so extending in pieces never costs more than booking the same time at once.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "Calendar",
    "DurationProblem",
    "Quote",
    "Tariff",
    "charge_baisa",
    "check_duration",
    "credit_baisa",
    "free_until",
    "is_paid_at",
    "next_paid_start",
    "paid_seconds",
    "quote",
]

# How far ahead `next_paid_start` looks before concluding that every day is free.
_SEARCH_DAYS = 400

Window = tuple[time, time]  # [start, end) in local wall-clock time; end may be 24:00 (time.max)


@dataclass(frozen=True)
class Calendar:
    """Paid windows per weekday (Monday = 0, as `date.weekday()`), public holidays, time zone."""

    tz: ZoneInfo
    windows: Mapping[int, tuple[Window, ...]]
    holidays: frozenset[date] = field(default_factory=frozenset)

    def windows_on(self, day: date) -> tuple[Window, ...]:
        if day in self.holidays:
            return ()
        return self.windows.get(day.weekday(), ())

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.tz)

    def _stamp(self, day: date, at: time) -> float:
        if at == time.max:  # "24:00": the start of the next day
            return datetime.combine(day + timedelta(days=1), time(0), self.tz).timestamp()
        return datetime.combine(day, at, self.tz).timestamp()

    def paid_intervals(self, start: float, end: float) -> list[tuple[float, float]]:
        """The parts of [start, end) inside paid windows, in order."""
        if end <= start:
            return []
        out: list[tuple[float, float]] = []
        day = self.local(start).date()
        last = self.local(end).date()
        while day <= last:
            for w_start, w_end in self.windows_on(day):
                a = max(start, self._stamp(day, w_start))
                b = min(end, self._stamp(day, w_end))
                if a < b:
                    out.append((a, b))
            day += timedelta(days=1)
        return out


@dataclass(frozen=True)
class Tariff:
    """Price of one unit of paid time, the unit, and the longest stay one request may buy."""

    baisa_per_unit: int
    unit_minutes: int
    max_minutes: int


class DurationProblem(str, enum.Enum):
    NOT_POSITIVE = "not_positive"
    NOT_A_MULTIPLE = "not_a_multiple"  # minutes must be whole units (30, 60, ...)
    TOO_LONG = "too_long"
    #: The stay would last longer than its zone's max_stay_minutes (decided by the service, which
    #: knows the stay; check_duration never returns it).
    STAY_LIMIT = "stay_limit"


@dataclass(frozen=True)
class Quote:
    """The price of [start, end): `paid_minutes` of it fall in paid hours."""

    start: float
    end: float
    paid_minutes: int
    amount_baisa: int
    #: When the stay starts in free time: the moment paid hours begin (`math.inf`: not within a
    #: year); None when it starts in paid time.
    free_until: float | None
    #: When the stay runs on past the end of paid time: the moment charging stops; else None.
    free_from: float | None = None


def check_duration(minutes: int, tariff: Tariff) -> DurationProblem | None:
    if minutes <= 0:
        return DurationProblem.NOT_POSITIVE
    if minutes % tariff.unit_minutes:
        return DurationProblem.NOT_A_MULTIPLE
    if minutes > tariff.max_minutes:
        return DurationProblem.TOO_LONG
    return None


def paid_seconds(calendar: Calendar, start: float, end: float) -> float:
    return sum(b - a for a, b in calendar.paid_intervals(start, end))


def _units(seconds: float, tariff: Tariff) -> int:
    # Clock values are floats: a stay of exactly one unit must not become two through rounding noise.
    whole = round(seconds, 3)
    return math.ceil(whole / (tariff.unit_minutes * 60)) if whole > 0 else 0


def charge_baisa(calendar: Calendar, tariff: Tariff, start: float, end: float) -> int:
    """Price of the whole stay [start, end): its paid time in started units."""
    return _units(paid_seconds(calendar, start, end), tariff) * tariff.baisa_per_unit


def is_paid_at(calendar: Calendar, ts: float) -> bool:
    local = calendar.local(ts)
    at = local.time()
    return any(start <= at and (end == time.max or at < end) for start, end in calendar.windows_on(local.date()))


def next_paid_start(calendar: Calendar, ts: float) -> float | None:
    """The first moment at or after `ts` that is paid time; None if no paid hour comes within a year."""
    day = calendar.local(ts).date()
    for _ in range(_SEARCH_DAYS):
        for w_start, w_end in calendar.windows_on(day):
            a, b = calendar._stamp(day, w_start), calendar._stamp(day, w_end)
            if b > ts:
                return max(a, ts)
        day += timedelta(days=1)
    return None


def free_until(calendar: Calendar, ts: float) -> float | None:
    """None when `ts` is paid time; otherwise when the free time around it ends (the next paid
    start), or `math.inf` when no paid hour comes within a year."""
    if is_paid_at(calendar, ts):
        return None
    start = next_paid_start(calendar, ts)
    return math.inf if start is None else start


def quote(calendar: Calendar, tariff: Tariff, start: float, minutes: int) -> Quote:
    end = start + minutes * 60
    intervals = calendar.paid_intervals(start, end)
    paid = sum(b - a for a, b in intervals)
    return Quote(
        start=start,
        end=end,
        paid_minutes=math.ceil(round(paid, 3) / 60),
        amount_baisa=_units(paid, tariff) * tariff.baisa_per_unit,
        free_until=free_until(calendar, start),
        free_from=intervals[-1][1] if intervals and intervals[-1][1] < end else None,
    )


def credit_baisa(calendar: Calendar, tariff: Tariff, start: float, now: float, charged: int) -> int:
    """What stopping at `now` gives back: the charge minus the price of the stay up to now.

    The price up to now counts started units, so only whole unused units come back; never more
    than was charged (a holiday added to the calendar after booking must not create money).
    """
    used = charge_baisa(calendar, tariff, start, max(now, start))
    return max(0, min(charged, charged - used))
