"""Parking money end to end, over loopback SMPP against the simulators: one request is one charge,
a reply names exactly what the ledger did for the number it goes to, a stay has a ceiling, and a
number that did not book a stay is not told when it ends.

Business time is a task.Clock the test moves (see test_parking_e2e.py); SMPP runs in real time.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.parking_support import DRIVER, PARKING, SPOUSE, on_loop
from tests.stack import Stack, wait
from tests.test_parking_e2e import FRIENDI_USER, business_clock, ledger, one, start

pytestmark = pytest.mark.usefixtures("store_engine")

MINUTE = 60.0
TIME = re.compile(r"\b\d{2}:\d{2}\b")


# -- what a reply says about money ------------------------------------------------------------------

_STATEMENTS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    # (pattern, what its groups are); the first that matches is the reply's statement.
    (re.compile(r"Credit (\d+) baisa to you, (\d+) baisa to"), ("credit", "others")),
    (re.compile(r"No credit to you: (\d+) baisa back to"), ("others",)),
    (re.compile(r"Credit (\d+) baisa\."), ("credit",)),
    (re.compile(r"Charged (\d+) baisa\."), ("charge",)),
    (re.compile(r"يعاد لك (\d+) بيسة و(\d+) بيسة"), ("credit", "others")),
    (re.compile(r"لا يعاد لك شيء، ويعاد (\d+) بيسة"), ("others",)),
    (re.compile(r"يعاد لك (\d+) بيسة"), ("credit",)),
    (re.compile(r"المبلغ (\d+) بيسة"), ("charge",)),
    (re.compile(r"No charge|Nothing charged|No unused time|بدون رسوم|لا رسوم|لا وقت متبق"), ()),
]


def stated(text: str) -> dict[str, int]:
    """The money a reply names: charge / credit to the recipient, credit to other payers."""
    for pattern, names in _STATEMENTS:
        m = pattern.search(text)
        if m:
            out = {"charge": 0, "credit": 0, "others": 0}
            out.update({name: int(value) for name, value in zip(names, m.groups())})
            return out
    raise AssertionError(f"the reply names no money: {text!r}")


def did(before: list[tuple[Any, ...]], after: list[tuple[Any, ...]], msisdn: str) -> dict[str, int]:
    """What the ledger did between two reads: charge / credit to `msisdn`, credits to others."""
    new = after[len(before):]
    assert after[: len(before)] == before  # the ledger only grows
    return {
        "charge": sum(r[3] for r in new if r[0] == "charge" and r[2] == msisdn),
        "credit": sum(r[3] for r in new if r[0] == "credit" and r[2] == msisdn),
        "others": sum(r[3] for r in new if r[0] == "credit" and r[2] != msisdn),
    }


async def checked(stack: Stack, carrier: str, msisdn: str, text: str) -> str:
    """Send `text`; assert its reply names exactly what the ledger did for `msisdn`."""
    before = await ledger(stack)
    reply = (await one(stack, carrier, msisdn, text)).text
    assert stated(reply) == did(before, await ledger(stack), msisdn), reply
    return reply


async def reminder_to(stack: Stack, clock: Any, carrier: str, msisdn: str, minutes: float) -> str:
    since = len(stack.smsc(carrier).handset_messages)
    clock.advance(minutes * MINUTE)
    [reminder] = await wait(stack.smsc(carrier).wait_handset(msisdn, 1, since_index=since, timeout=5))
    return reminder.text


@on_loop
async def test_every_reply_naming_money_matches_the_ledger(tmp_path: Path) -> None:
    """Book, extend, reminder then Y, stop: with one payer and with two, in English and Arabic, each
    reply's amount is what the ledger charged or credited the number it went to (and, on a stop,
    what it credited the other payer)."""
    clock = business_clock("10:00")
    stack = await start(tmp_path, clock)
    try:
        await checked(stack, "omantel", DRIVER, "1234AB 60")  # book, one payer, English
        await checked(stack, "ooredoo", SPOUSE, "حجز ٥٥ م ٣٠")  # book, Arabic: SPOUSE holds 55M
        await checked(stack, "friendi", FRIENDI_USER, "55M 30")  # a second payer for 55M
        await checked(stack, "omantel", DRIVER, "EXT 30")  # extend
        await reminder_to(stack, clock, "ooredoo", SPOUSE, 50)  # 10:50, 55M ends 11:00
        await checked(stack, "ooredoo", SPOUSE, "نعم")  # reminder-extend, two payers
        await checked(stack, "friendi", FRIENDI_USER, "EXT 55M 30")  # the other payer extends
        clock.advance(5 * MINUTE)
        stop = await checked(stack, "ooredoo", SPOUSE, "إلغاء")  # stop, two payers
        assert stop.endswith("يعاد لك 100 بيسة و100 بيسة لمن دفع معك.")
        await reminder_to(stack, clock, "omantel", DRIVER, 25)  # 11:20, 1234AB ends 11:30
        await checked(stack, "omantel", DRIVER, "Y")  # reminder-extend, one payer
        clock.advance(5 * MINUTE)
        assert (await checked(stack, "omantel", DRIVER, "STOP")).endswith("Credit 100 baisa.")  # stop, one payer
        credited = {r[2] for r in await ledger(stack) if r[0] == "credit"}
        assert credited == {DRIVER, SPOUSE, FRIENDI_USER}
    finally:
        await stack.stop()


@on_loop
async def test_a_burst_of_the_same_booking_is_one_charge_and_no_mute(tmp_path: Path) -> None:
    """Five identical bookings from one number in one burst (a handset resending): one charge,
    every MO answered with the same ticket, and the number is not taken for a loop; EXT and a
    different duration still extend."""
    clock = business_clock("10:00")
    stack = await start(tmp_path, clock)
    try:
        smsc = stack.smsc("omantel")
        since = len(smsc.handset_messages)
        for _ in range(5):
            smsc.inject_mo(DRIVER, PARKING, "7777AB 30")
        replies = [m.text for m in await wait(smsc.wait_handset(DRIVER, 5, since_index=since, timeout=10))]
        first = "Ticket 0000018: 7777AB parked in Muscat until 10:30. Charged 100 baisa."
        assert Counter(replies) == Counter({first: 1, first + " Same request again: no new charge.": 4})
        assert await ledger(stack) == [("charge", "omantel", DRIVER, 100)]
        assert (await one(stack, "omantel", DRIVER, "MY")).text.startswith("Your parking: 7777AB until 10:30")
        ext = await one(stack, "omantel", DRIVER, "EXT 30")
        assert ext.text == "Ticket 0000018: 7777AB extended to 11:00 (+30 min). Charged 100 baisa."
        longer = await one(stack, "omantel", DRIVER, "7777AB 60")
        assert longer.text == "Ticket 0000018: 7777AB extended to 12:00 (+60 min). Charged 200 baisa."
        assert [r[3] for r in await ledger(stack)] == [100, 100, 200]
    finally:
        await stack.stop()


@on_loop
async def test_a_stranger_learns_no_end_time_and_a_stay_has_a_ceiling(tmp_path: Path) -> None:
    """Another number paying for a parked plate is told what it paid for, never when the stay ends,
    and cannot list or stop it; a stay grows to its zone's maximum and no further, with a clear
    reply in English and Arabic."""
    clock = business_clock("08:00")
    stack = await start(tmp_path, clock)
    try:
        booked = await one(stack, "omantel", DRIVER, "2001AB 300")
        assert "until 13:00" in booked.text
        paid = await one(stack, "ooredoo", SPOUSE, "2001AB 300")  # until 18:00, 600 of 720 min
        assert paid.text == "Ticket 0000018: 300 min more paid for 2001AB. Charged 400 baisa."
        ar = await one(stack, "ooredoo", SPOUSE, "حجز 2001AB 180")
        assert ar.text == "عذرا، إضافة 180 دقيقة للوحة 2001AB تتجاوز أقصى مدة للوقوف في مسقط (720 دقيقة)."
        assert not TIME.search(paid.text) and not TIME.search(ar.text)
        assert (await one(stack, "ooredoo", SPOUSE, "MY")).text.startswith("You have no active parking.")
        assert (await one(stack, "ooredoo", SPOUSE, "STOP 2001AB")).text == (
            "No active parking for 2001AB from your number.")
        assert (await one(stack, "omantel", DRIVER, "EXT 2001AB 300")).text == (
            "Sorry, a stay in Muscat lasts at most 720 min: 2001AB is paid until 18:00, so at most 120 min more.")
        assert (await one(stack, "omantel", DRIVER, "تمديد 120")).text.startswith(
            "تذكرة 0000018: تمديد 2001AB حتى 20:00")
        assert (await one(stack, "omantel", DRIVER, "EXT 30")).text == (
            "Sorry, a stay in Muscat lasts at most 720 min: 2001AB is paid until 20:00, no more can be added.")
        assert [(r[2], r[3]) for r in await ledger(stack)] == [(DRIVER, 1000), (SPOUSE, 400), (DRIVER, 400)]
    finally:
        await stack.stop()
