"""Prices and paid hours (Muscat's published rules, from config/parking.toml), and the config's errors."""

from __future__ import annotations

import math

import pytest

from handlers.parking import tariff
from handlers.parking.config import ConfigError, parse_parking_config
from handlers.parking.tariff import DurationProblem, Tariff
from tests.parking_support import CONFIG, FRIDAY, NATIONAL_DAY, ROOT, SUNDAY, TUESDAY, at

CAL = CONFIG.calendar
MCT = CONFIG.zone("MCT").tariff
SATURDAY = "2026-11-28"
THURSDAY = "2026-11-26"


def quote(day: str, hhmm: str, minutes: int, rules: Tariff = MCT) -> tariff.Quote:
    return tariff.quote(CAL, rules, at(day, hhmm), minutes)


PRICES = [
    # (day, start, minutes, paid minutes, baisa)
    (SUNDAY, "10:00", 30, 30, 100),
    (SUNDAY, "10:00", 60, 60, 200),
    (SUNDAY, "10:00", 300, 180, 600),  # 10:00-15:00: paid until 13:00 only
    (SUNDAY, "08:00", 300, 300, 1000),
    (TUESDAY, "12:30", 60, 30, 100),  # crosses 13:00: only the paid half
    (TUESDAY, "12:45", 30, 15, 100),  # a started unit is a unit
    (TUESDAY, "12:59", 120, 1, 100),
    (TUESDAY, "13:00", 60, 0, 0),
    (TUESDAY, "14:00", 120, 0, 0),  # the midday break is free
    (TUESDAY, "15:30", 60, 30, 100),  # paid from 16:00
    (TUESDAY, "15:00", 300, 240, 800),  # 15:00-20:00: 16:00-20:00
    (TUESDAY, "07:30", 60, 30, 100),  # paid from 08:00
    (TUESDAY, "06:00", 120, 0, 0),
    (THURSDAY, "20:45", 60, 15, 100),  # paid until 21:00
    (THURSDAY, "21:00", 300, 0, 0),  # Thursday night into Friday: free
    (TUESDAY, "11:00", 300, 120, 400),  # 11:00-16:00: paid 11:00-13:00 only
    (FRIDAY, "10:00", 300, 0, 0),
    (SATURDAY, "18:00", 120, 0, 0),
    (SATURDAY, "22:00", 600, 0, 0),  # Saturday night runs into Sunday 08:00
    (NATIONAL_DAY, "10:00", 60, 0, 0),  # public holiday
]


@pytest.mark.parametrize(("day", "start", "minutes", "paid", "baisa"), PRICES)
def test_price(day: str, start: str, minutes: int, paid: int, baisa: int) -> None:
    """A stay is charged for its paid minutes, in started 30-minute units of 100 baisa."""
    q = quote(day, start, minutes)
    assert (q.paid_minutes, q.amount_baisa) == (paid, baisa)
    assert q.end == at(day, start) + minutes * 60


def test_free_hours_say_until_when() -> None:
    """A stay that starts in free time knows when paid time begins."""
    assert quote(TUESDAY, "14:00", 60).free_until == at(TUESDAY, "16:00")
    assert quote(TUESDAY, "07:30", 60).free_until == at(TUESDAY, "08:00")
    assert quote(TUESDAY, "22:00", 60).free_until == at("2026-11-25", "08:00")
    assert quote(TUESDAY, "10:00", 60).free_until is None  # paid time: nothing to say


def test_friday_and_saturday_are_free_until_sunday_morning() -> None:
    for day, hhmm in ((FRIDAY, "10:00"), (FRIDAY, "23:59"), (SATURDAY, "16:30"), (THURSDAY, "21:00")):
        assert tariff.free_until(CAL, at(day, hhmm)) == at("2026-11-29", "08:00")


def test_holidays_are_free_all_day() -> None:
    """National Day (18 and 19 November) is free; the next paid time after it is Sunday 08:00."""
    assert not tariff.is_paid_at(CAL, at(NATIONAL_DAY, "10:00"))
    assert not tariff.is_paid_at(CAL, at("2026-11-19", "17:00"))
    assert tariff.free_until(CAL, at(NATIONAL_DAY, "10:00")) == at(SUNDAY, "08:00")
    assert tariff.is_paid_at(CAL, at("2026-11-17", "10:00"))


def test_window_edges() -> None:
    """Windows are [start, end): 08:00 is paid, 13:00 is not."""
    assert tariff.is_paid_at(CAL, at(TUESDAY, "08:00"))
    assert not tariff.is_paid_at(CAL, at(TUESDAY, "13:00"))
    assert tariff.is_paid_at(CAL, at(TUESDAY, "12:59"))
    assert not tariff.is_paid_at(CAL, at(TUESDAY, "07:59"))
    assert tariff.free_until(CAL, at(TUESDAY, "12:00")) is None


def test_never_paid_calendar() -> None:
    free = tariff.Calendar(tz=CAL.tz, windows={})
    assert tariff.free_until(free, at(TUESDAY, "10:00")) == math.inf
    assert tariff.quote(free, MCT, at(TUESDAY, "10:00"), 60).amount_baisa == 0


@pytest.mark.parametrize(
    ("minutes", "problem"),
    [(30, None), (300, None), (330, DurationProblem.TOO_LONG), (600, DurationProblem.TOO_LONG),
     (45, DurationProblem.NOT_A_MULTIPLE), (6, DurationProblem.NOT_A_MULTIPLE), (0, DurationProblem.NOT_POSITIVE),
     (-30, DurationProblem.NOT_POSITIVE)],
)
def test_max_duration_and_unit(minutes: int, problem: DurationProblem | None) -> None:
    """At most 300 minutes in steps of 30."""
    assert tariff.check_duration(minutes, MCT) is problem


def test_extending_in_pieces_costs_the_same_as_booking_at_once() -> None:
    start = at(TUESDAY, "12:10")
    for total in range(30, 301, 30):
        whole = tariff.charge_baisa(CAL, MCT, start, start + total * 60)
        pieces = 0
        for done in range(30, total + 1, 30):
            pieces = max(pieces, tariff.charge_baisa(CAL, MCT, start, start + done * 60))
        assert pieces == whole


def test_credit_gives_back_unused_whole_units() -> None:
    start = at(TUESDAY, "10:00")
    charged = tariff.charge_baisa(CAL, MCT, start, start + 120 * 60)
    assert charged == 400
    assert tariff.credit_baisa(CAL, MCT, start, at(TUESDAY, "10:00"), charged) == 400
    assert tariff.credit_baisa(CAL, MCT, start, at(TUESDAY, "10:40"), charged) == 200  # 2 units used
    assert tariff.credit_baisa(CAL, MCT, start, at(TUESDAY, "11:30"), charged) == 100
    assert tariff.credit_baisa(CAL, MCT, start, at(TUESDAY, "11:59"), charged) == 0
    # Never more than was charged, whatever the calendar says now.
    assert tariff.credit_baisa(CAL, MCT, start, start, 50) == 50


def test_credit_across_the_midday_break() -> None:
    start = at(TUESDAY, "12:00")
    charged = tariff.charge_baisa(CAL, MCT, start, at(TUESDAY, "17:00"))  # 12-13 and 16-17
    assert charged == 400
    assert tariff.credit_baisa(CAL, MCT, start, at(TUESDAY, "14:00"), charged) == 200
    assert tariff.credit_baisa(CAL, MCT, start, at(TUESDAY, "16:10"), charged) == 100


# -- config/parking.toml --------------------------------------------------------------------------


def test_shipped_config_is_muscat() -> None:
    assert CONFIG.default_zone == "MCT"
    assert CONFIG.zone(None).tariff == Tariff(baisa_per_unit=100, unit_minutes=30, max_minutes=300)
    assert CONFIG.reminder_lead_minutes == 10 and CONFIG.extend_minutes == 30 and CONFIG.refund_unused
    assert str(CONFIG.timezone) == "Asia/Muscat"
    assert CONFIG.plates.letters["B"] == "ب" and CONFIG.plates.max_digits == 5


BASE = (ROOT / "config" / "parking.toml").read_text(encoding="utf-8")


def config_errors(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_parking_config(text, "parking.toml")
    return str(info.value)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ('sun = ["08:00-13:00", "16:00-21:00"]', 'sun = ["08:00-13:00", "16:00-2100"]', "hours.sun[1]",
         'must be a time range "HH:MM-HH:MM"'),
        ('mon = ["08:00-13:00", "16:00-21:00"]', 'mon = ["08:00-13:00", "12:00-21:00"]', "hours.mon[1]",
         "overlaps"),
        ('tue = ["08:00-13:00", "16:00-21:00"]', 'tue = ["13:00-08:00"]', "hours.tue[0]", "ends before it starts"),
        ('default_zone = "MCT"', 'default_zone = "XYZ"', "parking.default_zone", 'no zone "XYZ"'),
        ("reminder_lead_minutes = 10", "reminder_lead_minutes = -5", "parking.reminder_lead_minutes",
         "between 0 and 120"),
        ("extend_minutes = 30", "extend_minutes = 45", "parking.extend_minutes", "multiple of zone"),
        ('inspectors = []', 'inspectors = ["abc"]', "parking.inspectors[0]", "phone number"),
        ("2026-11-19,  # National Day", '"19 Nov",  # National Day', "hours.holidays[2]", "must be a date"),
        ('timezone = "Asia/Muscat"', 'timezone = "Asia/Mascat"', "parking.timezone", "unknown time zone"),
        ('B = "ب",', 'B = "x",', "plates.letters.B", "one Arabic letter"),
        ('D = "د",', 'D = "ب",', "plates.letters.D", "already the letter for B"),
        ("[zones.CBD]", "[zones.AB]", "zones.AB", "could be read as plate letters"),
        ("[zones.CBD]", "[zones.PARK]", "zones.PARK", "keyword"),
        ('aliases = ["روي"]', 'aliases = ["مسقط"]', "zones.CBD", "already selects zone MCT"),
        ("max_minutes = 300\naliases = [\"روي\"]", "max_minutes = 310\naliases = [\"روي\"]", "zones.CBD.max_minutes",
         "multiple of unit_minutes"),
        ('name_en = "Muscat"', 'nmae_en = "Muscat"', "zones.MCT.nmae_en", 'did you mean "name_en"'),
        ("max_stay_minutes = 720\nmax_minutes = 300\naliases = [\"مسقط\"]",
         "max_stay_minutes = 210\nmax_minutes = 300\naliases = [\"مسقط\"]", "zones.MCT.max_stay_minutes",
         "at least max_minutes (300)"),
        ("max_stay_minutes = 720\nmax_minutes = 300\naliases = [\"روي\"]",
         "max_stay_minutes = 725\nmax_minutes = 300\naliases = [\"روي\"]", "zones.CBD.max_stay_minutes",
         "multiple of unit_minutes"),
        ("max_stay_minutes = 720\nmax_minutes = 300\naliases = [\"روي\"]",
         "max_stay_minutes = \"12h\"\nmax_minutes = 300\naliases = [\"روي\"]", "zones.CBD.max_stay_minutes",
         "must be an integer"),
        ("repeat_window_seconds = 120", "repeat_window_seconds = -1", "parking.repeat_window_seconds",
         "between 0 and 3600"),
    ],
)
def test_config_errors_name_file_line_and_key(old: str, new: str, key: str, message: str) -> None:
    """A mistake in parking.toml is reported with the file, the line and the key."""
    assert old in BASE, old
    text = BASE.replace(old, new, 1)
    errors = config_errors(text)
    assert f": {key}: " in errors, errors
    assert message in errors, errors
    first_new_line = new.splitlines()[0]
    if key not in ("zones.CBD", "parking.default_zone", "parking.extend_minutes"):
        assert f"parking.toml:{line_of(text, first_new_line)}:" in errors, errors


def test_config_24_hour_window() -> None:
    text = BASE.replace('sat = []', 'sat = ["00:00-24:00"]')
    config = parse_parking_config(text)
    assert tariff.is_paid_at(config.calendar, at(SATURDAY, "23:59"))
    assert tariff.quote(config.calendar, MCT, at(SATURDAY, "23:00"), 120).paid_minutes == 60
