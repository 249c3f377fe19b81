"""ParkingService against a real Store on tmp_path: bookings, money, idempotency, races, reminders,
settlement.  Business time is a twisted task.Clock that moves only when a test advances it."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
from datetime import date
from pathlib import Path

import pytest

from handlers.parking.reminders import ReminderScheduler
from handlers.parking.service import Requester, Status
from handlers.parking.settlement import main as settlement_main
from handlers.parking.settlement import settlement_rows, write_settlement
from handlers.parking.tariff import DurationProblem
from smsgw.message import Lang
from tests.parking_support import (
    CONFIG,
    DRIVER,
    FRIDAY,
    PARKING,
    SPOUSE,
    SUNDAY,
    TUESDAY,
    Harness,
    at,
    on_loop,
    open_harness,
)
from tests.stack import eventually, wait

pytestmark = pytest.mark.usefixtures("store_engine")

MINUTE = 60.0


def who(request_id: int | None = None, msisdn: str = DRIVER, carrier: str = "omantel",
        lang: Lang = Lang.EN) -> Requester:
    return Requester(carrier, msisdn, PARKING, lang, request_id)


async def money(h: Harness, session_id: int | None = None) -> tuple[int, int]:
    rows = await h.service.ledger(session_id)
    return (sum(r["amount_baisa"] for r in rows if r["kind"] == "charge"),
            sum(r["amount_baisa"] for r in rows if r["kind"] == "credit"))


@on_loop
async def test_booking_creates_a_session_and_a_charge(tmp_path: Path) -> None:
    """A booking in paid time stores the stay (ticket, plate, zone, times, carrier, MSISDN) and
    charges the sender in the ledger."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    out = await h.service.book(who(1), "1234AB", 60)
    assert out.status is Status.BOOKED and out.amount_baisa == 200
    s = out.session
    assert s is not None
    assert (s.plate, s.zone, s.carrier, s.msisdn, s.short_code) == ("1234AB", "MCT", "omantel", DRIVER, PARKING)
    assert (s.start_at, s.end_at, s.charged_baisa) == (at(SUNDAY, "10:00"), at(SUNDAY, "11:00"), 200)
    assert len(s.ticket) == 7 and s.ticket.isdigit()
    assert await h.service.session(s.ticket) == s
    [charge] = await h.service.ledger()
    assert (charge["kind"], charge["amount_baisa"], charge["carrier"], charge["msisdn"], charge["local_date"]) == (
        "charge", 200, "omantel", DRIVER, SUNDAY)
    await h.close()


@on_loop
async def test_same_booking_again_extends(tmp_path: Path) -> None:
    """The same message for a plate already parked extends the stay and charges the difference."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    first = await h.service.book(who(1), "1234AB", 30)
    h.clock.advance(10 * MINUTE)
    second = await h.service.book(who(2), "1234AB", 30)
    assert second.status is Status.EXTENDED and second.amount_baisa == 100
    assert first.session and second.session and second.session.id == first.session.id
    assert second.session.end_at == at(SUNDAY, "11:00") and second.session.charged_baisa == 200
    assert await money(h) == (200, 0)
    await h.close()


@on_loop
async def test_another_number_extends_the_same_plate_and_pays_for_it(tmp_path: Path) -> None:
    """A plate has one stay: a second number booking it extends it, and is charged on its carrier."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 30)
    out = await h.service.book(who(2, msisdn=SPOUSE, carrier="ooredoo"), "1234AB", 60)
    assert out.status is Status.EXTENDED and out.amount_baisa == 200
    rows = await h.service.ledger()
    assert [(r["carrier"], r["msisdn"], r["amount_baisa"]) for r in rows] == [
        ("omantel", DRIVER, 100), ("ooredoo", SPOUSE, 200)]
    # Only its holder lists it (and may stop it): paying into a stay gives no sight of it.
    assert await h.service.my_sessions(SPOUSE) == []
    assert [s.plate for s in await h.service.my_sessions(DRIVER)] == ["1234AB"]
    await h.close()


@on_loop
async def test_one_number_parks_several_plates(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 30)
    await h.service.book(who(2), "55M", 90)
    mine = await h.service.my_sessions(DRIVER)
    assert [(s.plate, s.end_at) for s in mine] == [("1234AB", at(SUNDAY, "10:30")), ("55M", at(SUNDAY, "11:30"))]
    h.clock.advance(31 * MINUTE)
    assert [s.plate for s in await h.service.my_sessions(DRIVER)] == ["55M"]  # 1234AB has ended
    await h.close()


@on_loop
async def test_free_time_books_nothing(tmp_path: Path) -> None:
    """In free hours nothing is stored or charged, and the outcome says until when it is free."""
    h = await open_harness(tmp_path, at(TUESDAY, "13:30"))
    out = await h.service.book(who(1), "1234AB", 60)
    assert out.status is Status.FREE and out.free_until == at(TUESDAY, "16:00")
    friday = await h.service.book(who(2), "1234AB", 60, now=at(FRIDAY, "10:00"))
    assert friday.status is Status.FREE and friday.free_until == at("2026-11-29", "08:00")
    assert await h.service.ledger() == [] and await h.service.my_sessions(DRIVER) == []
    await h.close()


@on_loop
async def test_crossing_into_free_time_charges_paid_time_only(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(TUESDAY, "12:30"))
    out = await h.service.book(who(1), "1234AB", 120)
    assert out.status is Status.BOOKED and out.amount_baisa == 100 and out.free_from == at(TUESDAY, "13:00")
    late = await h.service.book(who(2), "777HH", 90, now=at(TUESDAY, "15:30"))
    assert late.amount_baisa == 200 and late.free_until == at(TUESDAY, "16:00")  # 16:00-17:00 paid
    await h.close()


@on_loop
async def test_over_the_limit_is_refused(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    out = await h.service.book(who(1), "1234AB", 330)
    assert (out.status, out.problem, out.limit) == (Status.REFUSED, DurationProblem.TOO_LONG, 300)
    out = await h.service.book(who(2), "1234AB", 45)
    assert (out.status, out.problem, out.limit) == (Status.REFUSED, DurationProblem.NOT_A_MULTIPLE, 30)
    assert await h.service.ledger() == []
    await h.close()


@on_loop
async def test_zone_tariff(tmp_path: Path) -> None:
    """A zone with its own tariff prices the stay with it, and keeps that price when extended."""
    dearer = dataclasses.replace(CONFIG.zones["CBD"], tariff=dataclasses.replace(CONFIG.zones["CBD"].tariff,
                                                                                  baisa_per_unit=150))
    config = dataclasses.replace(CONFIG, zones={**CONFIG.zones, "CBD": dearer})
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"), config)
    out = await h.service.book(who(1), "1234AB", 60, "CBD")
    assert out.session and (out.session.zone, out.amount_baisa) == ("CBD", 300)
    ext = await h.service.book(who(2), "1234AB", 30)
    assert ext.amount_baisa == 150
    await h.close()


@on_loop
async def test_extend_without_plate(tmp_path: Path) -> None:
    """EXT with no plate: none active → not found; one → extended; several → which one?"""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert (await h.service.extend(who(1))).status is Status.NOT_FOUND
    await h.service.book(who(2), "1234AB", 30)
    out = await h.service.extend(who(3))
    assert out.status is Status.EXTENDED and out.minutes == 30 and out.amount_baisa == 100
    await h.service.book(who(4), "55M", 30)
    which = await h.service.extend(who(5), minutes=60)
    assert which.status is Status.WHICH and set(which.plates) == {"1234AB", "55M"}
    await h.close()


@on_loop
async def test_yes_prefers_the_stay_that_was_reminded(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 30)
    await h.service.book(who(2), "55M", 120)
    h.clock.advance(20 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1  # 1234AB ends 10:30
    out = await h.service.extend(who(3), after_reminder=True)
    assert out.status is Status.EXTENDED and out.session and out.session.plate == "1234AB"
    await h.close()


@on_loop
async def test_cancel_credits_unused_whole_units(tmp_path: Path) -> None:
    """STOP ends the stay now and credits the unused whole units back to the charges that bought
    them, newest first, each to its own carrier and number."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 60)  # 200, omantel
    await h.service.book(who(2, msisdn=SPOUSE, carrier="ooredoo"), "1234AB", 60)  # +200, ooredoo
    h.clock.advance(40 * MINUTE)  # 10:40: 2 units used, 2 unused
    out = await h.service.cancel(who(3))
    # The 200 unused went back to the spouse's newer charge: nothing to the driver who stopped.
    assert out.status is Status.CANCELLED and (out.amount_baisa, out.others_baisa, out.others) == (0, 200, 1)
    assert out.session and out.session.end_at == at(SUNDAY, "10:40") and out.session.state == "cancelled"
    assert out.session.credited_baisa == 200
    rows = await h.service.ledger()
    credits = [(r["carrier"], r["msisdn"], r["amount_baisa"]) for r in rows if r["kind"] == "credit"]
    assert credits == [("ooredoo", SPOUSE, 200)]
    assert await h.service.my_sessions(DRIVER) == []
    assert (await h.service.check_plate("1234AB")).paid is False
    await h.close()


@on_loop
async def test_cancel_credit_spans_payers(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 90)  # 300
    await h.service.book(who(2, msisdn=SPOUSE, carrier="ooredoo"), "1234AB", 30)  # +100
    h.clock.advance(20 * MINUTE)  # 1 unit used, 3 unused: 100 back to ooredoo, 200 to omantel
    out = await h.service.cancel(who(3), "1234AB")
    assert (out.amount_baisa, out.others_baisa, out.others) == (200, 100, 1)
    rows = [r for r in await h.service.ledger() if r["kind"] == "credit"]
    assert [(r["carrier"], r["amount_baisa"]) for r in rows] == [("ooredoo", 100), ("omantel", 200)]
    assert await money(h) == (400, 300)
    await h.close()


@on_loop
async def test_cancel_without_refund(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"), dataclasses.replace(CONFIG, refund_unused=False))
    await h.service.book(who(1), "1234AB", 120)
    out = await h.service.cancel(who(2), "1234AB")
    assert out.status is Status.CANCELLED and out.amount_baisa == 0
    assert await money(h) == (400, 0)
    await h.close()


@on_loop
async def test_cancel_needs_a_stay_of_yours(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 30)
    assert (await h.service.cancel(who(2, msisdn=SPOUSE))).status is Status.NOT_FOUND
    out = await h.service.cancel(who(3, msisdn=SPOUSE), "1234AB")
    assert (out.status, out.plate) == (Status.NOT_FOUND, "1234AB")
    await h.service.book(who(4), "55M", 30)
    assert (await h.service.cancel(who(5))).status is Status.WHICH
    await h.close()


@on_loop
async def test_only_the_holder_may_stop_or_extend_unnamed_a_stay_others_paid_into(tmp_path: Path) -> None:
    """Paying into a stay gives no rights over it: else 100 baisa would buy a stranger the stay's
    end (MY) or the power to stop someone's parking."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 30)
    await h.service.book(who(2, msisdn=SPOUSE, carrier="ooredoo"), "1234AB", 30)
    assert (await h.service.cancel(who(3, msisdn=SPOUSE), "1234AB")).status is Status.NOT_FOUND
    assert (await h.service.cancel(who(4, msisdn=SPOUSE))).status is Status.NOT_FOUND
    assert (await h.service.extend(who(5, msisdn=SPOUSE))).status is Status.NOT_FOUND
    # Naming the plate, anyone may still pay for more time.
    assert (await h.service.extend(who(6, msisdn=SPOUSE), "1234AB", 30)).status is Status.EXTENDED
    assert (await h.service.cancel(who(7))).status is Status.CANCELLED
    await h.close()


# -- one request, one charge ---------------------------------------------------------------------------


@on_loop
async def test_the_same_booking_again_soon_is_one_request(tmp_path: Path) -> None:
    """A double tap: the same booking from the same number within the repeat window gets the first
    outcome (marked repeated) and no charge; a deliberate extension still extends."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    first = await h.service.book(who(1), "7777AB", 30)
    h.clock.advance(60)
    again = await h.service.book(who(2), "7777AB", 30)
    assert again.repeated and dataclasses.replace(again, repeated=False) == first
    assert await money(h) == (100, 0)
    assert (await h.service.extend(who(3), "7777AB", 30)).amount_baisa == 100  # EXT 7777AB 30
    longer = await h.service.book(who(4), "7777AB", 60)  # another duration
    assert longer.status is Status.EXTENDED and not longer.repeated and longer.amount_baisa == 200
    assert (await h.service.extend(who(5))).amount_baisa == 100  # EXT, Y
    assert await money(h) == (500, 0)
    h.clock.advance(61)  # 121 s after the first: a new request, which extends
    later = await h.service.book(who(6), "7777AB", 30)
    assert later.status is Status.EXTENDED and not later.repeated
    # Another number sending the same text is not a repeat of this one's.
    other = await h.service.book(who(7, msisdn=SPOUSE), "7777AB", 30)
    assert other.status is Status.EXTENDED and not other.repeated
    await h.close()


@on_loop
async def test_a_burst_of_the_same_booking_charges_once(tmp_path: Path) -> None:
    """Five identical MOs processed at once: one stay, one charge, five answers with its ticket;
    each answer is also what that MO gets if it is processed again after a crash."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    outs = await asyncio.gather(*(h.service.book(who(i), "7777AB", 30) for i in range(1, 6)))
    assert [o.repeated for o in outs].count(False) == 1
    assert len({o.session.ticket for o in outs if o.session}) == 1
    assert await money(h) == (100, 0)
    assert await h.service.book(who(3), "7777AB", 30) == outs[2]
    await h.close()


@on_loop
async def test_after_a_stop_the_same_booking_is_a_new_one(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    first = await h.service.book(who(1), "7777AB", 30)
    await h.service.cancel(who(2))
    second = await h.service.book(who(3), "7777AB", 30)
    assert second.status is Status.BOOKED and not second.repeated
    assert first.session and second.session and second.session.ticket != first.session.ticket
    assert await money(h) == (200, 100)
    await h.close()


@on_loop
async def test_the_repeat_window_can_be_turned_off(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"), dataclasses.replace(CONFIG, repeat_window_seconds=0))
    await h.service.book(who(1), "7777AB", 30)
    assert (await h.service.book(who(2), "7777AB", 30)).status is Status.EXTENDED
    assert await money(h) == (200, 0)
    await h.close()


# -- a stay's ceiling ------------------------------------------------------------------------------------


@on_loop
async def test_a_stay_has_a_ceiling_per_zone(tmp_path: Path) -> None:
    """However it is built (bookings, extensions, other payers), a stay lasts at most its zone's
    max_stay_minutes; a request that would pass it is refused and charges nothing."""
    h = await open_harness(tmp_path, at(SUNDAY, "08:00"))
    assert CONFIG.zone("CBD").max_stay_minutes == 720
    await h.service.book(who(1), "1234AB", 300, "CBD")  # until 13:00
    await h.service.extend(who(2), "1234AB", 300)  # until 18:00
    before = await money(h)
    refused = await h.service.extend(who(3), "1234AB", 300)  # 23:00 would be 900 min
    assert (refused.status, refused.problem, refused.limit, refused.zone) == (
        Status.REFUSED, DurationProblem.STAY_LIMIT, 720, "CBD")
    assert refused.session and refused.session.end_at == at(SUNDAY, "18:00")
    other = await h.service.book(who(4, msisdn=SPOUSE), "1234AB", 300)
    assert other.problem is DurationProblem.STAY_LIMIT
    assert await money(h) == before
    assert (await h.service.extend(who(5), "1234AB", 120)).status is Status.EXTENDED  # 20:00: exactly 720
    assert (await h.service.extend(who(6))).problem is DurationProblem.STAY_LIMIT
    [stay] = await h.service.my_sessions(DRIVER)
    assert stay.end_at - stay.start_at == 720 * MINUTE
    await h.close()


@on_loop
async def test_inspection(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 30, "CBD")
    paid = await h.service.check_plate("1234AB")
    assert paid.paid and paid.session and paid.session.zone == "CBD"
    assert (await h.service.check_plate("1234AB", "CBD")).paid
    elsewhere = await h.service.check_plate("1234AB", "MCT")
    assert not elsewhere.paid and elsewhere.session is not None
    assert not (await h.service.check_plate("999A")).paid
    h.clock.advance(31 * MINUTE)
    assert not (await h.service.check_plate("1234AB")).paid
    free = await h.service.check_plate("1234AB", now=at(SUNDAY, "14:00"))
    assert free.free_until == at(SUNDAY, "16:00")
    await h.close()


# -- idempotency and races --------------------------------------------------------------------------


@on_loop
async def test_duplicate_request_gets_the_same_ticket_and_one_charge(tmp_path: Path) -> None:
    """The same inbound id processed twice (after a crash) returns the first outcome, charges once."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    first = await h.service.book(who(7), "1234AB", 60)
    h.clock.advance(5 * MINUTE)
    again = await h.service.book(who(7), "1234AB", 60)
    assert again == first
    assert await money(h) == (200, 0)
    # Also after the store was closed and opened again (a restart).
    await h.reopen()
    assert await h.service.book(who(7), "1234AB", 60) == first
    cancel = await h.service.cancel(who(8))
    assert await h.service.cancel(who(8)) == cancel
    assert await money(h) == (200, cancel.amount_baisa)
    await h.close()


@on_loop
async def test_concurrent_bookings_of_one_plate_end_as_one_session(tmp_path: Path) -> None:
    """Two (or five) bookings of the same plate at the same moment: one stay, extended, right total."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    outs = await asyncio.gather(h.service.book(who(1), "1234AB", 30), h.service.book(who(2), "1234AB", 60))
    assert sorted(o.status.value for o in outs) == ["booked", "extended"]
    sessions = await h.service.my_sessions(DRIVER)
    assert len(sessions) == 1 and sessions[0].end_at == at(SUNDAY, "11:30") and sessions[0].charged_baisa == 300
    many = await asyncio.gather(*(h.service.book(who(10 + i, msisdn=f"9689100000{i}"), "55M", 60)
                                  for i in range(5)))
    assert [o.status for o in many].count(Status.BOOKED) == 1
    [s] = await h.service.my_sessions("96891000000")
    assert s.end_at == at(SUNDAY, "15:00") and s.charged_baisa == 600  # 10:00-15:00: paid until 13:00
    assert await money(h, s.id) == (600, 0)
    await h.close()


@on_loop
async def test_concurrent_duplicates_of_one_request(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    outs = await asyncio.gather(*(h.service.book(who(1), "1234AB", 30) for _ in range(3)))
    assert outs[0] == outs[1] == outs[2] and await money(h) == (100, 0)
    await h.close()


# -- reminders ---------------------------------------------------------------------------------------


@on_loop
async def test_reminder_is_due_ten_minutes_before_the_end(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1, lang=Lang.AR), "1234AB", 30)
    h.clock.advance(19 * MINUTE)
    assert await h.service.reminders_due() == []
    h.clock.advance(1 * MINUTE)
    [due] = await h.service.reminders_due()
    assert due.plate == "1234AB"
    await h.close()


@on_loop
async def test_reminder_exactly_once_across_runs_and_restart(tmp_path: Path) -> None:
    """The reminder MT and the 'sent' flag commit together: running the scheduler twice, or
    after a store close/reopen, stores exactly one MT."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1, lang=Lang.AR), "1234AB", 30)
    h.clock.advance(21 * MINUTE)
    sends = await asyncio.gather(h.service.send_due_reminders(h.handler.reminder_reply),
                                 h.service.send_due_reminders(h.handler.reminder_reply))
    assert sorted(sends) == [0, 1]
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 0
    await h.reopen()
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 0
    queued = await h.store.queued_mts()
    reminders = [o for o in queued if o.kind == "reminder"]
    assert len(reminders) == 1 and len(h.enqueued) == 1
    mt = reminders[0]
    # On the booking's carrier and short code, in the booking's language.
    assert (mt.carrier, mt.msisdn, mt.short_code) == ("omantel", DRIVER, PARKING)
    assert "1234AB" in mt.text and "10:30" in mt.text and "نعم" in mt.text
    assert mt.expires_at == at(SUNDAY, "10:30")  # never delivered after the stay it is about
    await h.close()


@on_loop
async def test_reminder_pending_over_a_restart_is_sent_after_it(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 60)
    await h.reopen()
    h.clock.advance(50 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1
    await h.close()


@on_loop
async def test_extension_reschedules_the_reminder(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 30)
    h.clock.advance(20 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1
    await h.service.extend(who(2), after_reminder=True)  # "Y": now ends 11:00
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 0
    h.clock.advance(30 * MINUTE)  # 10:50
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1
    assert len(h.enqueued) == 2 and "11:00" in h.enqueued[1].text
    await h.close()


@on_loop
async def test_no_reminder_into_free_time_or_after_the_end(tmp_path: Path) -> None:
    """A stay ending at 13:00 runs into free time: no reminder.  A stay whose reminder time
    passed while nothing could send it (the gateway was down) and which has ended: none either."""
    h = await open_harness(tmp_path, at(TUESDAY, "12:00"))
    await h.service.book(who(1), "1234AB", 60)  # 12:00-13:00
    await h.service.book(who(2), "55M", 30)  # 12:00-12:30, reminder due 12:20
    h.clock.advance(4 * 60 * MINUTE)  # 16:00: both ended, the poll comes only now
    assert await h.service.reminders_due() == []
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 0
    assert h.enqueued == []
    await h.close()


@on_loop
async def test_no_reminder_for_a_stopped_stay(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.service.book(who(1), "1234AB", 30)
    await h.service.cancel(who(2))
    h.clock.advance(25 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 0
    await h.close()


# -- settlement ----------------------------------------------------------------------------------------


async def busy_day(h: Harness) -> None:
    await h.service.book(who(1), "1234AB", 60)
    await h.service.book(who(2, msisdn=SPOUSE, carrier="ooredoo"), "1234AB", 30)
    await h.service.book(who(3, carrier="friendi", msisdn="96872000001"), "55M", 120)
    await h.service.book(who(4, carrier="ooredoo", msisdn="96895000001"), "8H", 300)
    h.clock.advance(30 * MINUTE)
    await h.service.cancel(who(5), "1234AB")
    await h.service.book(who(6), "99K", 30, now=at(SUNDAY, "16:00"))
    await h.service.book(who(7), "99K", 30, now=at(TUESDAY, "10:00"))  # another day


@on_loop
async def test_settlement_totals_equal_the_ledger(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await busy_day(h)
    paths = await write_settlement(h.store, SUNDAY, out_dir=tmp_path / "out", carriers=["omantel", "vodafone"])
    assert sorted(p.name for p in paths) == [f"parking-settlement-{SUNDAY}-{c}.csv"
                                            for c in ("friendi", "omantel", "ooredoo", "vodafone")]
    ledger = [r for r in await h.service.ledger() if r["local_date"] == SUNDAY]
    grand = 0
    for path in paths:
        carrier = path.stem.rsplit("-", 1)[1]
        rows = list(csv.reader(path.open(encoding="utf-8")))
        header, entries, total = rows[0], rows[1:-1], rows[-1]
        assert header[0] == "entry_id" and total[0] == "TOTAL"
        mine = [r for r in ledger if r["carrier"] == carrier]
        charges = sum(r["amount_baisa"] for r in mine if r["kind"] == "charge")
        credits = sum(r["amount_baisa"] for r in mine if r["kind"] == "credit")
        assert [int(x) for x in total[-3:]] == [charges, credits, charges - credits]
        assert len(entries) == len(mine)
        assert sum(int(e[-1]) for e in entries) == charges - credits
        assert {e[6] for e in entries} <= {r["msisdn"] for r in mine}  # full numbers, for that carrier
        grand += charges - credits
    assert grand == sum(r["amount_baisa"] * (1 if r["kind"] == "charge" else -1) for r in ledger)
    only = await write_settlement(h.store, SUNDAY, "ooredoo", tmp_path / "one")
    assert [p.name for p in only] == [f"parking-settlement-{SUNDAY}-ooredoo.csv"]
    assert len(await settlement_rows(h.store, date.fromisoformat(TUESDAY))) == 1
    await h.close()


@on_loop
async def test_settlement_command(tmp_path: Path) -> None:
    """`main(argv)` (what `smsgw parking settlement` runs) reads a database file by path."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await busy_day(h)
    omantel = [r for r in await h.service.ledger() if r["carrier"] == "omantel" and r["local_date"] == SUNDAY]
    net = sum(r["amount_baisa"] * (1 if r["kind"] == "charge" else -1) for r in omantel)
    db = h.store._path
    await h.close()
    out = tmp_path / "cli"
    # main() runs its own event loop: call it off the reactor's loop thread, as the CLI would run.
    code = await asyncio.get_running_loop().run_in_executor(
        None, settlement_main, ["--date", SUNDAY, "--carrier", "omantel", "--store", db, "--out", str(out)])
    assert code == 0
    [path] = out.iterdir()
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert rows[-1][0] == "TOTAL" and rows[-1][2] == "omantel" and int(rows[-1][-1]) == net
    assert len(rows) == len(omantel) + 2


@on_loop
async def test_scheduler_polls_on_the_business_clock(tmp_path: Path) -> None:
    """The reminder scheduler is a service on ctx.clock: reminders go when business time says so,
    once; a store that cannot be reached makes a poll do nothing, not stop the scheduler."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    scheduler = ReminderScheduler(h.handler, h.ctx)
    scheduler.startService()
    await h.service.book(who(1), "1234AB", 30)
    h.clock.advance(19 * MINUTE)
    await asyncio.sleep(0.05)
    assert h.enqueued == []
    h.clock.advance(1 * MINUTE)
    await eventually(lambda: len(h.enqueued) == 1)
    for _ in range(3):
        h.clock.advance(CONFIG.reminder_poll_seconds)
    await asyncio.sleep(0.05)
    assert len(h.enqueued) == 1
    await wait(scheduler.stopService())
    await h.close()
    assert await scheduler.run_once() == 0  # StoreClosed is logged, not raised
