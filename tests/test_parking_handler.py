"""ParkingHandler: messages in through the real Router, replies out, on a real Store.

What the driver reads: the fields of each reply, its language, and that it fits (English one SMS,
Arabic at most two parts, ideally one).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers import texts
from handlers.parking import make_feature
from handlers.parking.handler import ParkingHandler
from smsgw.message import Lang
from smsgw.textnorm import detect_lang
from tests.parking_support import (
    CONFIG,
    DRIVER,
    FRIDAY,
    INSPECTOR,
    NATIONAL_DAY,
    PARKING,
    SPOUSE,
    SUNDAY,
    TUESDAY,
    Harness,
    at,
    on_loop,
    open_harness,
)

pytestmark = pytest.mark.usefixtures("store_engine")

MINUTE = 60.0
TICKET = re.compile(r"\b\d{7}\b")


def fits(text: str) -> bool:
    return texts.sms_parts(text) <= (2 if detect_lang(text) is Lang.AR else 1)


async def send(h: Harness, text: str, msisdn: str = DRIVER, carrier: str = "omantel") -> str:
    reply = await h.send(text, msisdn, carrier)
    assert fits(reply), reply
    assert detect_lang(reply) is detect_lang(text) or not any(c.isalpha() for c in text), (text, reply)
    return reply


@on_loop
async def test_booking_reply_has_ticket_plate_zone_end_and_amount(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    reply = await send(h, "1234AB 30")
    assert reply == "Ticket 0000018: 1234AB parked in Muscat until 10:30. Charged 100 baisa."
    ar = await send(h, "حجز ٥٥ م ساعة", SPOUSE)
    assert ar == "تذكرة 0000026: 55M في مسقط حتى 11:00. المبلغ 200 بيسة."
    assert len(ar) <= 70
    await h.close()


@on_loop
async def test_same_message_again_extends(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    first = await send(h, "1234AB 30")
    h.clock.advance(5 * MINUTE)
    again = await send(h, "1234AB 30")
    assert TICKET.search(first).group() == TICKET.search(again).group()  # type: ignore[union-attr]
    assert again.endswith("1234AB extended to 11:00 (+30 min). Charged 100 baisa.")
    h.clock.advance(5 * MINUTE)  # the same booking within the repeat window would be one request
    ar = await send(h, "١٢٣٤ أ ب ٣٠")
    assert "تمديد 1234AB حتى 11:30" in ar and "100 بيسة" in ar
    await h.close()


@on_loop
async def test_free_hours_replies(tmp_path: Path) -> None:
    """Free time says so and until when: the midday break, Friday, a holiday."""
    h = await open_harness(tmp_path, at(TUESDAY, "14:00"))
    assert await send(h, "1234AB 60") == "1234AB: parking is free now until 16:00. Nothing charged."
    assert await send(h, "موقف 1234AB 60") == "1234AB: الوقوف مجاني الآن حتى 16:00. لا رسوم."
    h.clock.advance(at(FRIDAY, "10:00") - h.clock.seconds())
    assert await send(h, "1234AB 60") == "1234AB: parking is free now until Sun 08:00. Nothing charged."
    assert await send(h, "حجز 1234AB 60") == "1234AB: الوقوف مجاني الآن حتى الأحد 08:00. لا رسوم."
    await h.close()


@on_loop
async def test_holiday_reply(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(NATIONAL_DAY, "09:00"))
    assert await send(h, "1234AB 60") == "1234AB: parking is free now until Sun 08:00. Nothing charged."
    await h.close()


@on_loop
async def test_crossing_one_pm_says_when_charging_stops(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(TUESDAY, "12:30"))
    reply = await send(h, "1234AB 60")
    assert reply.endswith("until 13:30. Charged 100 baisa. Free from 13:00.")
    early = await send(h, "777HH 60", SPOUSE)
    assert "Charged 100 baisa" in early
    h.clock.advance(3 * 60 * MINUTE)  # 15:30
    late = await send(h, "55M 60", "96890000777")
    assert late.endswith("until 16:30. Charged 100 baisa. Free until 16:00.")
    await h.close()


@on_loop
async def test_refusals(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert await send(h, "1234AB 330") == "Sorry, at most 300 min in one message. Example: 1234AB 300"
    assert await send(h, "1234AB 45") == "Minutes go in steps of 30 (30, 60 ... 300). Example: 1234AB 60"
    assert await send(h, "١٢٣٤ أب ٦ ساعات") == "عذرا، الحد الأقصى 300 دقيقة في الرسالة. مثال: 1234AB 300"
    assert await h.service.ledger() == []
    await h.close()


@on_loop
async def test_ext_cancel_my_and_which(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    assert await send(h, "EXT") == "You have no active parking. To park send plate and minutes, e.g. 1234AB 30"
    assert await send(h, "MY") == "You have no active parking. To park send plate and minutes, e.g. 1234AB 30"
    await send(h, "1234AB 30")
    assert (await send(h, "EXT")).endswith("1234AB extended to 11:00 (+30 min). Charged 100 baisa.")
    assert (await send(h, "30")).endswith("1234AB extended to 11:30 (+30 min). Charged 100 baisa.")
    await send(h, "55M 60")
    assert await send(h, "EXT 30") == "You have 2 cars parked: 55M, 1234AB. Send EXT with the plate, e.g. EXT 55M 30"
    assert await send(h, "تمديد") == "لديك 2 سيارات: 55M، 1234AB. أرسل تمديد مع اللوحة، مثال: تمديد 55M 30"
    assert await send(h, "STOP") == "You have 2 cars parked: 55M, 1234AB. Send CANCEL with the plate, e.g. CANCEL 55M"
    # The zone by its name, in the reply's language (not its code).
    assert await send(h, "MY") == "Your parking: 55M until 11:00 (Muscat), 1234AB until 11:30 (Muscat)"
    assert await send(h, "مواقفي") == "مواقفك: 55M حتى 11:00 (مسقط)، 1234AB حتى 11:30 (مسقط)"
    h.clock.advance(25 * MINUTE)
    assert await send(h, "STOP 1234AB") == "Ticket 0000018: 1234AB stopped at 10:25. Credit 200 baisa."
    assert await send(h, "إلغاء 55M") == "تذكرة 0000026: أُنهي وقوف 55M الساعة 10:25. يعاد لك 100 بيسة."
    assert await send(h, "STOP 1234AB") == "No active parking for 1234AB from your number."
    await send(h, "777HH 30")
    h.clock.advance(29 * MINUTE)
    assert await send(h, "CANCEL") == "Ticket 0000034: 777HH stopped at 10:54. No unused time to credit."
    await h.close()


@on_loop
async def test_my_names_each_zone_in_the_reply_language(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await send(h, "777HH CBD 30")
    await send(h, "1234AB 60")
    assert await send(h, "MY") == "Your parking: 777HH until 10:30 (CBD Ruwi), 1234AB until 11:00 (Muscat)"
    assert await send(h, "مواقفي") == "مواقفك: 777HH حتى 10:30 (روي التجاري)، 1234AB حتى 11:00 (مسقط)"
    await h.close()


@on_loop
async def test_the_reminder_says_what_y_costs_and_y_charges_that(tmp_path: Path) -> None:
    """The price in the reminder is what `Y` then charges: the stay as a whole priced again,
    here past the end of paid hours (12:40 + 30 min: only 12:40-13:00 is paid, one unit)."""
    h = await open_harness(tmp_path, at(TUESDAY, "12:10"))
    await send(h, "1234AB 30")  # 12:10-12:40, one unit
    h.clock.advance(20 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1
    [reminder] = h.enqueued
    assert reminder.text == "Parking 1234AB ends at 12:40. Reply Y to add 30 min for 100 baisa."
    assert (await send(h, "Y")).endswith("extended to 13:10 (+30 min). Charged 100 baisa. Free from 13:00.")
    await h.close()


def test_a_reminder_for_an_extension_that_costs_nothing_says_so() -> None:
    from handlers.parking.config import load_parking_config
    from handlers.parking.handler import Wording
    from handlers.parking.service import SessionView

    config = load_parking_config(Path(__file__).resolve().parent.parent / "config" / "parking.toml")
    stay = SessionView(1, "0000018", "1234AB", "MCT", "omantel", "96891234567", "90091", "en", at(SUNDAY, "10:00"),
                       at(SUNDAY, "10:30"), 100, 0, "active", None)
    assert Wording(config, Lang.EN, at(SUNDAY, "10:20")).reminder(stay, 0) == (
        "Parking 1234AB ends at 10:30. Reply Y to add 30 min, free of charge.")
    assert Wording(config, Lang.AR, at(SUNDAY, "10:20")).reminder(stay, 0) == (
        "ينتهي وقوف 1234AB الساعة 10:30. أرسل نعم لإضافة 30 دقيقة بدون رسوم.")


@on_loop
async def test_yes_after_the_reminder(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await send(h, "حجز 1234AB 30")
    h.clock.advance(20 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1
    [reminder] = h.enqueued
    assert reminder.text == "ينتهي وقوف 1234AB الساعة 10:30. أرسل نعم لإضافة 30 دقيقة بـ 100 بيسة."
    assert len(reminder.text) <= 70
    reply = await send(h, "نعم")
    assert "تمديد 1234AB حتى 11:00" in reply and reply.endswith("المبلغ 100 بيسة.")
    await h.close()


@on_loop
async def test_reminder_in_english(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await send(h, "1234AB 30")
    h.clock.advance(20 * MINUTE)
    await h.service.send_due_reminders(h.handler.reminder_reply)
    assert [o.text for o in h.enqueued] == ["Parking 1234AB ends at 10:30. Reply Y to add 30 min for 100 baisa."]
    assert (await send(h, "Y")).endswith("1234AB extended to 11:00 (+30 min). Charged 100 baisa.")
    await h.close()


@on_loop
async def test_inspection_only_for_inspectors(tmp_path: Path) -> None:
    """CHECK answers inspectors; anyone else gets what any unknown word gets."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await send(h, "1234AB 30 CBD")
    assert await send(h, "CHECK 1234AB", INSPECTOR) == "1234AB PAID until 10:30, zone CBD, ticket 0000018."
    assert await send(h, "فحص ١٢٣٤ أ ب", INSPECTOR) == "1234AB مدفوع حتى 10:30، المنطقة CBD، تذكرة 0000018."
    assert await send(h, "CHECK 1234AB MCT", INSPECTOR) == "1234AB NOT PAID in MCT (paid in CBD until 10:30)."
    assert await send(h, "CHECK 999A", INSPECTOR) == "999A NOT PAID."
    assert await send(h, "CHECK", INSPECTOR) == "Send CHECK and the plate, e.g. CHECK 1234AB"
    for text in ("CHECK 1234AB", "فحص 1234AB"):
        reply = await send(h, text, SPOUSE)
        unknown = await send(h, text.replace("CHECK", "CHEK").replace("فحص", "فحوص"), SPOUSE)
        assert reply.replace(text, "") == unknown.replace(
            texts.quote_user_text(text.replace("CHECK", "CHEK").replace("فحص", "فحوص"), detect_lang(text)), "")
        assert "PAID" not in reply and "مدفوع" not in reply
    h.clock.advance(4 * 60 * MINUTE)  # 14:00
    assert await send(h, "CHECK 1234AB", INSPECTOR) == "1234AB: no charge now, free until 16:00."
    await h.close()


@on_loop
async def test_duplicate_inbound_gets_the_same_reply_and_one_charge(tmp_path: Path) -> None:
    """The gateway processing the same MO again (crash before the reply was committed)."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    inbound = await h.mo("1234AB 60")
    first = await h.handle(inbound)
    h.clock.advance(3 * MINUTE)
    await h.reopen()
    assert await h.handle(inbound) == first
    assert len(await h.service.ledger()) == 1
    await h.close()


@on_loop
async def test_help_on_the_parking_short_code(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    help_en = await send(h, "HELP")
    assert "PARK 1234AB 30: park 30 min" in help_en and "Y: yes to a reminder or our question" in help_en
    assert "CHECK" not in help_en  # inspectors' command is not advertised
    await h.close()


@on_loop
async def test_unknown_router_alias_is_trusted(tmp_path: Path) -> None:
    """A keyword alias added in gateway.toml that the parser does not know still reaches its command."""
    from smsgw.router import Route

    routes = (Route("PARK", ("PK",), "parking", (PARKING,)), Route("*", (), "parking", (PARKING,)))
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"), routes=routes)
    assert (await send(h, "PK 1234AB 30")).startswith("Ticket ")
    await h.close()


def test_factory_reads_parking_toml_next_to_the_gateway_config(tmp_path: Path) -> None:
    """make_feature() loads <config folder>/parking.toml; a missing file is a ConfigError naming it."""
    from handlers.parking.config import ConfigError
    from smsgw.feature import ServiceContext

    ctx = ServiceContext(store=None, clock=None, send=None, new_mt=None, enqueue=None,  # type: ignore[arg-type]
                         config_dir=Path(CONFIG.path).parent, short_codes={})
    handler = make_feature().handlers["parking"](ctx)
    assert isinstance(handler, ParkingHandler) and handler.config.default_zone == "MCT"
    missing = ServiceContext(store=None, clock=None, send=None, new_mt=None, enqueue=None,  # type: ignore[arg-type]
                             config_dir=tmp_path, short_codes={})
    with pytest.raises(ConfigError, match="parking.toml"):
        make_feature().handlers["parking"](missing)


WORST_CASES = [
    # The longest replies the wording can produce: tickets, two-letter plates, zone names, dates.
    ("1234AB 300 CBD", Lang.EN), ("حجز 12345YY 300 روي", Lang.AR),
    # The third booking passes the stay's ceiling: the longest refusal, with the day of the end.
    ("EXT 12345YY 300 CBD", Lang.EN), ("تمديد 12345YY 300 روي", Lang.AR),
]


@pytest.mark.parametrize(("text", "lang"), WORST_CASES)
@on_loop
async def test_longest_replies_fit(tmp_path: Path, text: str, lang: Lang) -> None:
    h = await open_harness(tmp_path, at(TUESDAY, "12:50"))
    reply = await send(h, text)
    assert fits(reply)
    h.clock.advance(at("2026-11-25", "20:55") - h.clock.seconds())
    reply = await send(h, text)
    assert fits(reply), reply
    assert detect_lang(reply) is lang
    h.clock.advance(at("2026-11-25", "20:56") - h.clock.seconds())
    for _ in range(2):
        reply = await send(h, text)
        assert fits(reply), reply
    await h.close()


# -- repeats, other payers, the ceiling, shared credits: each reply in both languages -------------------


@on_loop
async def test_the_same_booking_again_says_no_new_charge(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    first = await send(h, "7777AB 30")
    assert await send(h, "7777AB 30") == first + " Same request again: no new charge."
    first_ar = await send(h, "حجز 5555 ب 30", SPOUSE)
    assert await send(h, "حجز 5555 ب 30", SPOUSE) == first_ar + " طلب مكرر: لا رسوم جديدة."
    assert [r["amount_baisa"] for r in await h.service.ledger()] == [100, 100]
    await h.close()


@on_loop
async def test_another_payer_is_told_what_it_paid_for_not_when_the_stay_ends(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await send(h, "1234AB 60")
    assert await send(h, "1234AB 30", SPOUSE) == "Ticket 0000018: 30 min more paid for 1234AB. Charged 100 baisa."
    assert await send(h, "حجز 1234AB 60", SPOUSE) == "تذكرة 0000018: دفعت 60 دقيقة إضافية للوحة 1234AB. المبلغ 200 بيسة."
    # The holder is still told the end.
    assert (await send(h, "EXT 1234AB 150")).startswith("Ticket 0000018: 1234AB extended to 15:00 (+150 min).")
    h.clock.advance(at(SUNDAY, "13:40") - h.clock.seconds())
    assert await send(h, "1234AB 30", SPOUSE) == "Ticket 0000018: 30 min more for 1234AB. No charge: free time."
    h.clock.advance(3 * MINUTE)  # not a repeat of the same booking
    assert await send(h, "حجز 1234AB 30", SPOUSE) == "تذكرة 0000018: 30 دقيقة إضافية للوحة 1234AB. بدون رسوم."
    await h.close()


@on_loop
async def test_a_stay_past_the_zone_maximum_is_refused_clearly(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, at(SUNDAY, "08:00"))
    await send(h, "1234AB 300")
    await send(h, "EXT 1234AB 300")  # until 18:00, 600 of 720 min
    assert await send(h, "EXT 1234AB 300") == (
        "Sorry, a stay in Muscat lasts at most 720 min: 1234AB is paid until 18:00, so at most 120 min more.")
    assert await send(h, "تمديد 1234AB 300") == (
        "عذرا، أقصى مدة للوقوف في مسقط هي 720 دقيقة: 1234AB مدفوع حتى 18:00، يمكن إضافة 120 دقيقة على الأكثر.")
    assert await send(h, "1234AB 300", SPOUSE) == (
        "Sorry, 300 min more for 1234AB would pass the 720 min a stay in Muscat may last.")
    assert await send(h, "حجز 1234AB 300", SPOUSE) == (
        "عذرا، إضافة 300 دقيقة للوحة 1234AB تتجاوز أقصى مدة للوقوف في مسقط (720 دقيقة).")
    await send(h, "EXT 1234AB 120")
    assert await send(h, "EXT 30") == (
        "Sorry, a stay in Muscat lasts at most 720 min: 1234AB is paid until 20:00, no more can be added.")
    assert await send(h, "تمديد 30") == (
        "عذرا، أقصى مدة للوقوف في مسقط هي 720 دقيقة: 1234AB مدفوع حتى 20:00، لا يمكن إضافة المزيد.")
    await h.close()


@on_loop
async def test_a_stop_tells_each_its_own_credit(tmp_path: Path) -> None:
    """Two payers: the reply to the one who stops names its own credit and the other payer's,
    exactly as the ledger split them."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await send(h, "1234AB 90")  # 300
    await send(h, "1234AB 30", SPOUSE)  # +100, the newest charge: given back first
    h.clock.advance(20 * MINUTE)  # 3 of 4 units unused: 100 to the spouse, 200 to the driver
    assert await send(h, "STOP") == (
        "Ticket 0000018: 1234AB stopped at 10:20. Credit 200 baisa to you, 100 baisa to the other payer.")
    await send(h, "5555B 30")
    await send(h, "5555B 60", SPOUSE)
    h.clock.advance(10 * MINUTE)  # the driver's unit is used: all that comes back is the spouse's
    assert await send(h, "إلغاء") == (
        "تذكرة 0000026: أُنهي وقوف 5555B الساعة 10:30. لا يعاد لك شيء، ويعاد 200 بيسة لمن دفع معك.")
    await send(h, "4444D 30")
    await send(h, "4444D 60", SPOUSE)
    h.clock.advance(10 * MINUTE)
    assert await send(h, "STOP") == (
        "Ticket 0000034: 4444D stopped at 10:40. No credit to you: 200 baisa back to the other payer.")
    await send(h, "3333H 90")
    await send(h, "3333H 30", SPOUSE)
    h.clock.advance(10 * MINUTE)
    assert await send(h, "إلغاء") == (
        "تذكرة 0000042: أُنهي وقوف 3333H الساعة 10:50. يعاد لك 200 بيسة و100 بيسة لمن دفع معك.")
    await h.close()


@pytest.mark.parametrize(("text", "carried_out"), [
    ("CANCEL", True), ("STOP 1234AB", True), ("إلغاء", True), ("Y", True), ("نعم", True), ("YES", True),
    ("EXT", True), ("EXT 30", True), ("تمديد 1234AB 30", True), ("30", True),
    ("1234AB 30", False), ("MY", False), ("HELP", False), ("CHECK 1234AB", False), ("hello", False),
])
@on_loop
async def test_what_is_carried_out_for_a_number_not_answered(tmp_path: Path, text: str, carried_out: bool) -> None:
    """Stopping, extending and Y move money or a booking: carried out even for a muted number."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    handler, request = h.router.route(await h.mo(text))
    assert getattr(handler, "must_carry_out", lambda _: False)(request) is carried_out
    await h.close()


@on_loop
async def test_a_reading_to_confirm_past_the_ceiling_is_refused_not_asked(tmp_path: Path) -> None:
    """The question is never asked for a booking its Y could not make (the stay's ceiling)."""
    h = await open_harness(tmp_path, at(SUNDAY, "08:00"))
    await send(h, "1234AB 300")
    await send(h, "EXT 1234AB 300")  # until 18:00, 600 of 720 min
    assert await send(h, "park 1234AB for 3") == (
        "Sorry, 180 min more for 1234AB would pass the 720 min a stay in Muscat may last.")
    assert (await send(h, "park 1234AB for 2")).startswith("Did you mean 1234AB 120")
    await h.close()


@on_loop
async def test_y_with_no_reminder_open_extends_nothing_and_says_how_to_extend(tmp_path: Path) -> None:
    """A Y moves money only as the answer to a reminder (or our question): a stray one, before any
    reminder or after the reminder's Y was carried out, charges nothing and says how to add time."""
    h = await open_harness(tmp_path, at(SUNDAY, "10:00"))
    await send(h, "1234AB 30")
    assert await send(h, "Y") == "Nothing to confirm: no reminder is waiting for a reply. To add time send EXT 30"
    assert await send(h, "نعم") == "لا شيء لتأكيده: لا تذكير ينتظر ردك. لإضافة وقت أرسل تمديد 30"
    h.clock.advance(20 * MINUTE)
    assert await h.service.send_due_reminders(h.handler.reminder_reply) == 1
    assert (await send(h, "Y")).endswith("1234AB extended to 11:00 (+30 min). Charged 100 baisa.")
    h.clock.advance(5 * MINUTE)  # past the repeat window: a new Y, and the reminder was answered
    assert await send(h, "Y") == "Nothing to confirm: no reminder is waiting for a reply. To add time send EXT 30"
    assert (await send(h, "EXT 30")).endswith("1234AB extended to 11:30 (+30 min). Charged 100 baisa.")
    charges = await h.store.read(
        lambda conn: conn.execute("SELECT amount_baisa FROM parking_ledger WHERE kind = 'charge'").fetchall())
    assert [a for (a,) in charges] == [100, 100, 100]  # the booking, the reminder's Y, the EXT
    await h.close()
