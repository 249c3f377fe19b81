"""Sentences, questions and hints end to end: handsets on the simulated carriers, the gateway over
real loopback SMPP, business time on a task.Clock the test moves.

A certain sentence books; an uncertain one asks and books only after the Y; a Y after the question
expired books nothing; a Y answers the most recent question (a reminder's, or ours).  The refusals
of issue reports: a sign or a superscript is no duration, a zone that does not exist is named as
such with the zones, a plate without digits gets the plate hint.  On 90092 a sentence about a
request gets its status or MY.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.transactions import FEATURE as TRANSACTIONS
from tests.http_helpers import http
from tests.parking_support import DRIVER, SPOUSE, on_loop
from tests.stack import Stack, wait
from tests.test_parking_e2e import business_clock, ledger, one, start

pytestmark = pytest.mark.usefixtures("store_engine")

MINUTE = 60.0


@on_loop
async def test_a_certain_sentence_books(tmp_path: Path) -> None:
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        booked = await one(stack, "omantel", DRIVER, "I want to park my car 1234AB for two hours please")
        assert booked.text == "Ticket 0000018: 1234AB parked in Muscat until 12:00. Charged 400 baisa."
        arabic = await one(stack, "ooredoo", SPOUSE, "ابي احجز موقف لسيارتي ٥٥ م لمدة ساعة ونص لو سمحت")
        assert arabic.text == "تذكرة 0000026: 55M في مسقط حتى 11:30. المبلغ 300 بيسة."
        assert arabic.data_coding == 8
        assert await ledger(stack) == [("charge", "omantel", DRIVER, 400), ("charge", "ooredoo", SPOUSE, 300)]
    finally:
        await stack.stop()


@on_loop
async def test_an_uncertain_sentence_asks_and_books_only_after_yes(tmp_path: Path) -> None:
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        question = await one(stack, "friendi", DRIVER, "park 1234AB for 2")
        assert question.text == ("Did you mean 1234AB 120: park 1234AB in Muscat until 12:00, 400 baisa? "
                                 "Reply Y within 5 min to book it.")
        assert await ledger(stack) == []
        clock.advance(3 * MINUTE)
        booked = await one(stack, "friendi", DRIVER, "Y")
        assert booked.text == "Ticket 0000018: 1234AB parked in Muscat until 12:03. Charged 400 baisa."
        again = await one(stack, "friendi", DRIVER, "Y")
        assert again.text == booked.text
        assert await ledger(stack) == [("charge", "friendi", DRIVER, 400)]
        # In Arabic, confirmed by the compact form instead.
        ask = await one(stack, "ooredoo", SPOUSE, "ابي موقف ٧٧٧ ح ح ساعتين يا غالي")
        assert ask.text.startswith("هل تقصد 777HH 120: وقوف 777HH في مسقط حتى 12:03 بمبلغ 400 بيسة؟")
        assert (await one(stack, "ooredoo", SPOUSE, "777HH 120")).text.startswith("Ticket 0000026: 777HH parked")
        assert (await one(stack, "ooredoo", SPOUSE, "نعم")).text.startswith("تذكرة 0000026: 777HH")
        assert await ledger(stack) == [("charge", "friendi", DRIVER, 400), ("charge", "ooredoo", SPOUSE, 400)]
    finally:
        await stack.stop()


@on_loop
async def test_a_late_confirmation_books_nothing(tmp_path: Path) -> None:
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        await one(stack, "omantel", DRIVER, "1234AB 30 min bro")
        await one(stack, "ooredoo", SPOUSE, "ابي موقف ٥٥ م ساعة يا غالي")
        clock.advance(6 * MINUTE)
        late = await one(stack, "omantel", DRIVER, "YES")
        assert late.text == "Not booked: your Y came after the 5 min to confirm. To park send 1234AB 30"
        late_ar = await one(stack, "ooredoo", SPOUSE, "نعم")
        assert late_ar.text == "لم يتم الحجز: وصل ردك بعد مهلة التأكيد (5 دقائق). للوقوف أرسل 55M 60"
        assert await ledger(stack) == []
        assert (await one(stack, "omantel", DRIVER, "MY")).text.startswith("You have no active parking.")
    finally:
        await stack.stop()


@on_loop
async def test_yes_answers_the_most_recent_question(tmp_path: Path) -> None:
    """A reminder, then our question: Y books the question.  Then the reminder of that new stay
    comes after it: Y extends."""
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        await one(stack, "omantel", DRIVER, "55M 30")  # ends 10:30, reminded at 10:20
        since = len(stack.smsc("omantel").handset_messages)
        clock.advance(20 * MINUTE)
        [reminder] = await wait(stack.smsc("omantel").wait_handset(DRIVER, 1, since_index=since, timeout=5))
        assert reminder.text == "Parking 55M ends at 10:30. Reply Y to add 30 min for 100 baisa."
        clock.advance(MINUTE)
        assert (await one(stack, "omantel", DRIVER, "park 1234AB for 1")).text.startswith("Did you mean 1234AB 60")
        booked = await one(stack, "omantel", DRIVER, "Y")
        assert booked.text == "Ticket 0000026: 1234AB parked in Muscat until 11:21. Charged 200 baisa."
        assert (await one(stack, "omantel", DRIVER, "MY")).text == (
            "Your parking: 55M until 10:30 (Muscat), 1234AB until 11:21 (Muscat)")
        since = len(stack.smsc("omantel").handset_messages)
        clock.advance(50 * MINUTE)  # 11:11: 1234AB's reminder, the latest question now
        [reminder] = await wait(stack.smsc("omantel").wait_handset(DRIVER, 1, since_index=since, timeout=5))
        assert reminder.text == "Parking 1234AB ends at 11:21. Reply Y to add 30 min for 100 baisa."
        extended = await one(stack, "omantel", DRIVER, "Y")
        assert extended.text == "Ticket 0000026: 1234AB extended to 11:51 (+30 min). Charged 100 baisa."
        assert [row[3] for row in await ledger(stack)] == [100, 200, 100]
    finally:
        await stack.stop()


@on_loop
async def test_a_sign_or_a_superscript_is_no_duration(tmp_path: Path) -> None:
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        minus = await one(stack, "omantel", DRIVER, "2001AB -30")
        assert minus.text == ("Sorry, we did not understand '2001AB -30'. "
                              "To park send plate and minutes, e.g. 2001AB 30")
        square = await one(stack, "ooredoo", DRIVER, "2019AB ²")
        assert square.text == ("Sorry, we did not understand '2019AB ?'. "
                               "To park send plate and minutes, e.g. 2019AB 30")
        arabic = await one(stack, "friendi", SPOUSE, "٢٠١٩ أب ²")
        assert arabic.text == "عذرا، لم نفهم «2019 أب ²». للوقوف أرسل اللوحة والدقائق، مثال: 2019AB 30"
        assert await ledger(stack) == []
    finally:
        await stack.stop()


@on_loop
async def test_unknown_zone_and_plate_without_digits(tmp_path: Path) -> None:
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        zone = await one(stack, "omantel", DRIVER, "1234AB ZZZ 30")
        assert zone.text == "Unknown zone 'ZZZ'. Zones: MCT (Muscat), CBD (CBD Ruwi). Send e.g. 1234AB MCT 30"
        guessed = await one(stack, "friendi", DRIVER, "1234AB MCT1 30")  # a code guessed, with a digit
        assert guessed.text == "Unknown zone 'MCT1'. Zones: MCT (Muscat), CBD (CBD Ruwi). Send e.g. 1234AB MCT 30"
        zone_ar = await one(stack, "ooredoo", SPOUSE, "١٢٣٤ أب ZZZ ٣٠")
        assert zone_ar.text == ("المنطقة «ZZZ» غير معروفة. المناطق: MCT (مسقط)، CBD (روي التجاري). "
                                "مثال: 1234AB MCT 30")
        letters = await one(stack, "omantel", DRIVER, "AB 30")
        assert letters.text == "Plate AB has no number. Send the plate's digits and letters, e.g. 1234AB 30"
        letters_ar = await one(stack, "ooredoo", SPOUSE, "أ ب ٣٠")
        assert letters_ar.text == "اللوحة AB بدون رقم. أرسل أرقام اللوحة وحروفها، مثال: 1234AB 30"
        assert await ledger(stack) == []
    finally:
        await stack.stop()


async def seed_request(stack: Stack) -> None:
    assert stack.gateway.admin is not None
    token = next(t.token for t in stack.config.admin.tokens if t.role == "admin")
    result = await http(stack.gateway.admin.port, "PUT", "/api/v1/transactions/MM-2026-000123", token=token,
                        body={"service": "building_permit_renewal", "status": "under_review", "msisdns": [DRIVER],
                              "updated_at": "2026-03-12T10:30:00+04:00"})
    assert result.status in (200, 201), result.json


@on_loop
async def test_residents_sentences_about_their_request(tmp_path: Path) -> None:
    from tests.stack import start_stack

    stack = await start_stack(tmp_path, features=[TRANSACTIONS])
    try:
        await seed_request(stack)
        [status] = await stack.send("omantel", DRIVER, "90092", "What is the status of my request MM-2026-000123?")
        assert status.text == "MM-2026-000123 Building permit renewal: Under review. Updated 2026-03-12 10:30."
        [status_ar] = await stack.send("ooredoo", DRIVER, "90092", "ابي اعرف حالة طلبي MM-٢٠٢٦-٠٠٠١٢٣ لو سمحت")
        assert status_ar.text == "MM-2026-000123 تجديد رخصة بناء: قيد المراجعة. آخر تحديث 2026-03-12 10:30."
        [mine] = await stack.send("friendi", DRIVER, "90092", "وين وصل طلبي")
        assert mine.text == "طلباتك المفتوحة:\nMM-2026-000123 تجديد رخصة بناء: قيد المراجعة"
        [mine_en] = await stack.send("omantel", DRIVER, "90092", "any update on my application please")
        assert mine_en.text == "Your open requests:\nMM-2026-000123 Building permit renewal: Under review"
        [usage] = await stack.send("omantel", SPOUSE, "90092", "hello")
        assert usage.text == "Send STATUS and your request number, e.g. STATUS MM-2026-000123"
    finally:
        await stack.stop()


@on_loop
async def test_the_question_outlives_a_gateway_restart(tmp_path: Path) -> None:
    clock = business_clock()
    stack = await start(tmp_path, clock)
    try:
        await one(stack, "omantel", DRIVER, "park 1234AB for 2")
        await stack.restart_gateway()
        clock.advance(MINUTE)
        booked = await one(stack, "omantel", DRIVER, "Y")
        assert booked.text == "Ticket 0000018: 1234AB parked in Muscat until 12:01. Charged 400 baisa."
    finally:
        await stack.stop()

