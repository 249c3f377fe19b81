"""Readings to confirm: asked with the price, stored, booked only on a timely Y (or the compact form).

Through the real Router and ParkingHandler on a real Store, business time on a task.Clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.parking_support import DRIVER, SPOUSE, SUNDAY, Harness, at, on_loop, open_harness

pytestmark = pytest.mark.usefixtures("store_engine")

MINUTE = 60.0


async def charges(h: Harness) -> list[tuple[str, int]]:
    return [(row["msisdn"], row["amount_baisa"]) for row in await h.service.ledger() if row["kind"] == "charge"]


async def pending(h: Harness) -> list[tuple]:
    return await h.store.read(lambda c: c.execute(
        "SELECT msisdn, plate, minutes, extend, quoted_baisa, answered_by IS NOT NULL FROM parking_pending"
    ).fetchall())


ASK_EN = ("Did you mean 1234AB 120: park 1234AB in Muscat until 12:00, 400 baisa? "
          "Reply Y within 5 min to book it.")
BOOKED_EN = "Ticket 0000018: 1234AB parked in Muscat until 12:00. Charged 400 baisa."


@on_loop
async def test_a_certain_sentence_books_at_once(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert await h.send("I want to park my car 1234AB for two hours please") == BOOKED_EN
    assert await h.send("ابي موقف لسيارتي ٥٥ م لمدة ساعة لو سمحت", SPOUSE) == (
        "تذكرة 0000026: 55M في مسقط حتى 11:00. المبلغ 200 بيسة.")
    assert await charges(h) == [(DRIVER, 400), (SPOUSE, 200)]
    assert await pending(h) == []
    await h.close()


@on_loop
async def test_a_guess_asks_with_the_price_and_books_only_on_yes(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert await h.send("park 1234AB for 2") == ASK_EN
    assert await charges(h) == [] and await h.send("MY") == (
        "You have no active parking. To park send plate and minutes, e.g. 1234AB 30")
    assert await pending(h) == [(DRIVER, "1234AB", 120, 0, 400, 0)]
    h.clock.advance(2 * MINUTE)
    assert await h.send("Y") == "Ticket 0000018: 1234AB parked in Muscat until 12:02. Charged 400 baisa."
    assert await charges(h) == [(DRIVER, 400)]
    await h.close()


@on_loop
async def test_arabic_question_and_yes(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    question = await h.send("ابي موقف ١٢٣٤ أب ساعتين يا غالي")
    assert question == ("هل تقصد 1234AB 120: وقوف 1234AB في مسقط حتى 12:00 بمبلغ 400 بيسة؟ "
                        "أرسل نعم خلال 5 دقائق للحجز.")
    assert await h.send("نعم") == "تذكرة 0000018: 1234AB في مسقط حتى 12:00. المبلغ 400 بيسة."
    await h.close()


@on_loop
async def test_a_late_yes_books_nothing(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert await h.send("park 1234AB for 2") == ASK_EN
    h.clock.advance(5 * MINUTE)
    assert await h.send("Y") == "Not booked: your Y came after the 5 min to confirm. To park send 1234AB 120"
    assert await h.send("نعم") == "لم يتم الحجز: وصل ردك بعد مهلة التأكيد (5 دقائق). للوقوف أرسل 1234AB 120"
    assert await charges(h) == []
    assert await h.send("1234AB 120") == "Ticket 0000018: 1234AB parked in Muscat until 12:05. Charged 400 baisa."
    await h.close()


@on_loop
async def test_yes_twice_is_charged_once(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("park 1234AB for 2")
    first = await h.send("Y")
    assert first == BOOKED_EN
    assert await h.send("YES") == first  # the same outcome again, no new charge
    assert await charges(h) == [(DRIVER, 400)]
    await h.close()


@on_loop
async def test_the_compact_form_settles_the_question(tmp_path: Path) -> None:
    """Sending the compact form books (it is certain); a Y after it does not book again."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("park 1234AB for 2")
    assert await h.send("1234AB 120") == BOOKED_EN
    assert await h.send("Y") == BOOKED_EN
    assert await charges(h) == [(DRIVER, 400)]
    assert (await pending(h))[0][-1] == 1  # answered
    await h.close()


@on_loop
async def test_the_same_yes_processed_twice_books_once(tmp_path: Path) -> None:
    """The gateway handling the Y again after a crash (before its reply was stored)."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("park 1234AB for 2")
    yes = await h.mo("Y")
    first = await h.handle(yes)
    await h.reopen()
    assert await h.handle(yes) == first == [BOOKED_EN]
    assert await charges(h) == [(DRIVER, 400)]
    await h.close()


@on_loop
async def test_the_question_survives_a_restart(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("park 1234AB for 2")
    await h.reopen()
    h.clock.advance(MINUTE)
    assert (await h.send("Y")).startswith("Ticket 0000018: 1234AB parked")
    await h.close()


@on_loop
async def test_a_new_question_replaces_the_last(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("park 1234AB for 2")
    assert (await h.send("park 55M for 1")).startswith("Did you mean 55M 60: park 55M in Muscat until 11:00")
    assert (await h.send("Y")).startswith("Ticket 0000018: 55M parked")
    assert await charges(h) == [(DRIVER, 200)]
    await h.close()


@on_loop
async def test_y_with_the_plate_confirms_that_question(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("park 1234AB for 2")
    assert await h.send("Y 1234AB") == BOOKED_EN
    await h.close()


# -- which question a Y answers --------------------------------------------------------------------------


@on_loop
async def test_yes_answers_the_question_asked_after_the_reminder(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("55M 30")  # ends 10:30, reminded at 10:20
    h.clock.advance(20 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1
    h.clock.advance(MINUTE)
    assert (await h.send("park 1234AB for 2")).startswith("Did you mean 1234AB 120")
    assert await h.send("Y") == "Ticket 0000026: 1234AB parked in Muscat until 12:21. Charged 400 baisa."
    assert [s.plate for s in await h.service.my_sessions(DRIVER)] == ["55M", "1234AB"]
    assert (await h.service.session("0000018")).end_at == at(SUNDAY, "10:30")  # 55M not extended
    await h.close()


@on_loop
async def test_yes_answers_the_reminder_sent_after_the_question(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("55M 30")
    h.clock.advance(18 * MINUTE)
    await h.send("park 1234AB for 2")  # asked 10:18, open until 10:23
    h.clock.advance(2 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1  # 10:20, the latest question
    h.clock.advance(MINUTE)
    assert await h.send("Y") == "Ticket 0000018: 55M extended to 11:00 (+30 min). Charged 100 baisa."
    assert await charges(h) == [(DRIVER, 100), (DRIVER, 100)]
    # The reminder is answered; the question is the one still open: the next Y books it.
    assert (await h.send("Y")).startswith("Ticket 0000026: 1234AB parked")
    await h.close()


@on_loop
async def test_an_expired_question_after_the_reminder_extends_nothing(tmp_path: Path) -> None:
    """The most recent question is the expired one: Y gets "not booked", not the reminder's extension."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("55M 30")
    h.clock.advance(20 * MINUTE)
    await h.service.send_due_reminders(h.handler.reminder_reply)
    h.clock.advance(MINUTE)
    await h.send("park 1234AB for 2")  # 10:21, open until 10:26
    h.clock.advance(6 * MINUTE)
    assert (await h.send("Y")).startswith("Not booked: your Y came after the 5 min")
    assert await charges(h) == [(DRIVER, 100)]
    await h.close()


# -- what the question says ------------------------------------------------------------------------------


@on_loop
async def test_free_time_needs_no_question(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "14:00"))
    assert await h.send("park 1234AB for 2") == "1234AB: parking is free now until 16:00. Nothing charged."
    assert await pending(h) == []
    await h.close()


@on_loop
async def test_minutes_without_a_plate_quote_the_senders_own_stay(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert await h.send("I want 2 hours please") == (
        "You have no active parking. To park send plate and minutes, e.g. 1234AB 30")
    await h.send("1234AB 30")
    assert await h.send("I want 2 hours please") == (
        "Did you mean 1234AB 120: add 120 min to 1234AB (until 12:30), 400 baisa? Reply Y within 5 min to confirm.")
    assert await h.send("Y") == "Ticket 0000018: 1234AB extended to 12:30 (+120 min). Charged 400 baisa."
    await h.close()


@on_loop
async def test_a_question_about_someone_elses_stay_does_not_tell_its_end(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("1234AB 60")
    question = await h.send("park 1234AB for 2", SPOUSE)
    assert question == "Did you mean 1234AB 120: add 120 min to 1234AB, 400 baisa? Reply Y within 5 min to confirm."
    await h.close()


@on_loop
async def test_a_guess_the_tariff_refuses_is_refused_at_once(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert await h.send("park 1234AB for 6") == "Sorry, at most 300 min in one message. Example: 1234AB 300"
    assert await pending(h) == []
    await h.close()


@on_loop
async def test_two_plates_ask_for_the_first(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert await h.send("park 1234AB and 777HH for 1 hour") == (
        "Did you mean 1234AB 60: park 1234AB in Muscat until 11:00, 200 baisa? Reply Y within 5 min to book it.")
    await h.close()


@on_loop
async def test_no_closes_the_question(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await h.send("park 1234AB for 2")
    assert await h.send("No") == "OK, nothing booked. To park send plate and minutes, e.g. 1234AB 120"
    assert await h.send("Y") == "You have no active parking. To park send plate and minutes, e.g. 1234AB 30"
    await h.send("ابي موقف ٥٥ م ساعة يا غالي", SPOUSE)
    assert await h.send("لا", SPOUSE) == "حسنا، لم يتم الحجز. للوقوف أرسل اللوحة والدقائق، مثال: 55M 60"
    assert await charges(h) == []
    # No question open: "no" is an ordinary message.
    assert await h.send("no") == "Sorry, we did not understand 'no'. To park send plate and minutes, e.g. 1234AB 30"
    await h.close()
