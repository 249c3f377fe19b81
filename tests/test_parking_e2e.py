"""Parking end to end: handsets on the simulated carriers, the gateway over real loopback SMPP.

Business time (paid hours, reminders) is a task.Clock the test moves; the SMPP links run on the
reactor's real time.
"""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from handlers.parking import make_feature
from smsgw.config import RouteConfig, load_config
from smsgw.feature import Feature
from tests.parking_support import CONFIG, DRIVER, INSPECTOR, MUSCAT, PARKING, SPOUSE, at, on_loop
from tests.stack import SHIPPED_CONFIG, Stack, eventually, start_stack, wait

pytestmark = pytest.mark.usefixtures("store_engine")

ROUTES = (
    RouteConfig(keyword="PARK", aliases=("P", "موقف", "حجز"), handler="parking", short_codes=(PARKING,)),
    RouteConfig(keyword="EXT", aliases=("تمديد", "تجديد"), handler="parking", short_codes=(PARKING,)),
    RouteConfig(keyword="CANCEL", aliases=("STOP", "إلغاء"), handler="parking", short_codes=(PARKING,)),
    RouteConfig(keyword="MY", aliases=("مواقفي",), handler="parking", short_codes=(PARKING,)),
    RouteConfig(keyword="Y", aliases=("YES", "نعم"), handler="parking", short_codes=(PARKING,)),
    RouteConfig(keyword="*", aliases=(), handler="parking", short_codes=(PARKING,)),
)
FRIENDI_USER = "96872000001"


def stack_features() -> list[Feature]:
    """Parking (with the tests' inspector) and every other feature the shipped routes name, so the
    shipped config loads whatever other services it has grown."""
    from smsgw.app import features as registered

    chosen = {f.name: f for f in registered()}
    chosen["parking"] = make_feature(CONFIG)
    for route in load_config(SHIPPED_CONFIG).routes:
        if route.handler in ("help", "unknown") or any(route.handler in f.handlers for f in chosen.values()):
            continue
        chosen[route.handler] = importlib.import_module(f"handlers.{route.handler}").FEATURE
    return list(chosen.values())


def stack_routes() -> tuple[RouteConfig, ...]:
    """The parking routes, unless the shipped config already has them."""
    shipped = load_config(SHIPPED_CONFIG).routes
    return () if any(r.handler == "parking" for r in shipped) else ROUTES


async def start(tmp_path: Path, clock: Clock) -> Stack:
    return await start_stack(tmp_path, features=stack_features(), routes=stack_routes(), service_clock=clock)


def next_sunday() -> str:
    """A working Sunday after today.  Business time must not lie in the past: the gateway drafts
    a feature's MTs (reminders) on the service clock, and the outbound queue expires them by the
    reactor's real clock, so a reminder "sent" on a past Sunday would already be out of date."""
    day = datetime.now(MUSCAT).date() + timedelta(days=1)
    while day.weekday() != 6 or day in CONFIG.calendar.holidays:
        day += timedelta(days=1)
    return day.isoformat()


def business_clock(hhmm: str = "10:00") -> Clock:
    clock = Clock()
    clock.advance(at(next_sunday(), hhmm))
    return clock


async def ledger(stack: Stack) -> list[tuple[Any, ...]]:
    assert stack.gateway.store is not None

    def rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
        return conn.execute("SELECT kind, carrier, msisdn, amount_baisa FROM parking_ledger ORDER BY id").fetchall()

    return await stack.gateway.store.read(rows)


async def one(stack: Stack, carrier: str, msisdn: str, text: str) -> Any:
    [reply] = await stack.send(carrier, msisdn, PARKING, text)
    assert reply.source == PARKING and not reply.problems
    return reply


@on_loop
async def test_book_extend_and_cancel_across_carriers(tmp_path: Path) -> None:
    """Booked on Omantel in English, extended on Ooredoo in Arabic (UCS-2), listed, stopped with a
    credit; every charge and credit on the carrier that billed it."""
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        booked = await one(stack, "omantel", DRIVER, "1234AB 60")
        assert booked.text == "Ticket 0000018: 1234AB parked in Muscat until 11:00. Charged 200 baisa."
        assert booked.data_coding == 0
        # Not the stay's holder: told what it paid for, not when the stay ends.
        extended = await one(stack, "ooredoo", SPOUSE, "حجز ١٢٣٤ أ ب ٣٠")
        assert extended.text == "تذكرة 0000018: دفعت 30 دقيقة إضافية للوحة 1234AB. المبلغ 100 بيسة."
        assert extended.data_coding == 8
        assert (await one(stack, "friendi", FRIENDI_USER, "MY")).text.startswith("You have no active parking.")
        assert (await one(stack, "omantel", DRIVER, "MY")).text == "Your parking: 1234AB until 11:30 (Muscat)"
        assert (await one(stack, "omantel", DRIVER, "مواقفي")).text == "مواقفك: 1234AB حتى 11:30 (مسقط)"
        clock.advance(25 * 60)  # 10:25: 1 of 3 units used; the newest charges are given back first
        stopped = await one(stack, "omantel", DRIVER, "STOP")
        assert stopped.text == ("Ticket 0000018: 1234AB stopped at 10:25. "
                                "Credit 100 baisa to you, 100 baisa to the other payer.")
        assert await ledger(stack) == [
            ("charge", "omantel", DRIVER, 200), ("charge", "ooredoo", SPOUSE, 100),
            ("credit", "ooredoo", SPOUSE, 100), ("credit", "omantel", DRIVER, 100),
        ]
    finally:
        await stack.stop()


@on_loop
async def test_reminder_then_yes(tmp_path: Path) -> None:
    """Ten minutes before the end one reminder comes on the booking's carrier and short code, in
    the booking's language; `نعم` adds 30 minutes."""
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        await one(stack, "ooredoo", SPOUSE, "موقف 55M 30")
        since = len(stack.smsc("ooredoo").handset_messages)
        clock.advance(20 * 60)
        [reminder] = await wait(stack.smsc("ooredoo").wait_handset(SPOUSE, 1, since_index=since, timeout=5))
        assert reminder.text == "ينتهي وقوف 55M الساعة 10:30. أرسل نعم لإضافة 30 دقيقة بـ 100 بيسة."
        assert reminder.source == PARKING
        yes = await one(stack, "ooredoo", SPOUSE, "نعم")
        assert yes.text == "تذكرة 0000018: تمديد 55M حتى 11:00 (+30 د). المبلغ 100 بيسة."
        clock.advance(60)  # another poll: nothing more is due
        await asyncio.sleep(0.3)
        assert [m.text for m in stack.handset("ooredoo", SPOUSE)].count(reminder.text) == 1
        assert stack.handset("omantel", SPOUSE) == [] and stack.handset("friendi", SPOUSE) == []
    finally:
        await stack.stop()


@on_loop
async def test_pending_reminder_survives_a_restart(tmp_path: Path) -> None:
    """A reminder still pending when the gateway restarts goes out once, after the restart."""
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        await one(stack, "friendi", FRIENDI_USER, "1234AB 60")
        await stack.restart_gateway()
        since = len(stack.smsc("friendi").handset_messages)
        clock.advance(50 * 60)
        [reminder] = await wait(stack.smsc("friendi").wait_handset(FRIENDI_USER, 1, since_index=since, timeout=5))
        assert reminder.text == "Parking 1234AB ends at 11:00. Reply Y to add 30 min for 100 baisa."
        await stack.restart_gateway()
        clock.advance(60)
        await asyncio.sleep(0.3)
        assert [m.text for m in stack.handset("friendi", FRIENDI_USER)].count(reminder.text) == 1
    finally:
        await stack.stop()


@on_loop
async def test_inspection(tmp_path: Path) -> None:
    """CHECK answers an inspector; anyone else gets the ordinary not-understood reply."""
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        await one(stack, "omantel", DRIVER, "1234AB 30")
        assert (await one(stack, "ooredoo", INSPECTOR, "CHECK 1234AB")).text == (
            "1234AB PAID until 10:30, zone MCT, ticket 0000018.")
        assert (await one(stack, "ooredoo", INSPECTOR, "فحص 99 ب")).text == "99B غير مدفوع."
        other = await one(stack, "omantel", SPOUSE, "CHECK 1234AB")
        assert other.text == ("Sorry, we did not understand 'CHECK 1234AB'. "
                              "To park send plate and minutes, e.g. 1234AB 30")
    finally:
        await stack.stop()


@on_loop
async def test_duplicate_mo_books_once(tmp_path: Path) -> None:
    """The carrier delivering the same MO twice (same message id) gets one booking, one reply."""
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        smsc = stack.smsc("omantel")
        since = len(smsc.handset_messages)
        smsc.inject_mo(DRIVER, PARKING, "1234AB 30", mo_id="dup-1")
        smsc.inject_mo(DRIVER, PARKING, "1234AB 30", mo_id="dup-1")
        [reply] = await wait(smsc.wait_handset(DRIVER, 1, since_index=since, timeout=5))
        assert reply.text.startswith("Ticket 0000018: 1234AB parked")
        await eventually(lambda: stack.gateway.counters["mo_duplicate"] >= 1)
        await asyncio.sleep(0.3)
        assert len(stack.handset("omantel", DRIVER)) == 1
        assert await ledger(stack) == [("charge", "omantel", DRIVER, 100)]
    finally:
        await stack.stop()


@on_loop
async def test_help_and_free_hours(tmp_path: Path) -> None:
    clock = business_clock("14:00")
    stack = await start(tmp_path, clock)
    try:
        help_text = (await one(stack, "omantel", DRIVER, "HELP")).text
        assert "PARK 1234AB 30: park 30 min" in help_text and "CHECK" not in help_text
        free = await one(stack, "ooredoo", SPOUSE, "1234AB 60")
        assert free.text == "1234AB: parking is free now until 16:00. Nothing charged."
        assert await ledger(stack) == []
    finally:
        await stack.stop()


@on_loop
async def test_a_stray_yes_extends_nothing(tmp_path: Path) -> None:
    """A Y (or نعم) with a stay but no reminder sent yet is not an extension: no charge, and the
    reply says how to add time, in the sender's language."""
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        await one(stack, "omantel", DRIVER, "1234AB 60")
        stray = await one(stack, "omantel", DRIVER, "Y")
        assert stray.text == "Nothing to confirm: no reminder is waiting for a reply. To add time send EXT 30"
        await one(stack, "ooredoo", SPOUSE, "حجز 55M 60")
        stray = await one(stack, "ooredoo", SPOUSE, "نعم")
        assert stray.text == "لا شيء لتأكيده: لا تذكير ينتظر ردك. لإضافة وقت أرسل تمديد 30"
        assert [(kind, amount) for kind, _c, _m, amount in await ledger(stack)] == [("charge", 200), ("charge", 200)]
    finally:
        await stack.stop()
