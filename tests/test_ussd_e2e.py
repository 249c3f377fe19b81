"""USSD end to end: handsets dial the carrier simulators, the gateway answers over real loopback SMPP.

Every carrier's variant (its_session_info on Omantel, user_message_reference on Ooredoo, MSISDN
only on Friendi, each with its own hang-up signal) runs the same dialogues: a parking booking and
a request status look-up, in English and in Arabic, through the same parking and transaction
services as the SMS keywords. Business time is Sunday 10:00 in Muscat (paid parking hours).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from carriers.smsc import HandsetTimeout
from carriers.smsc import TokenBucket as CarrierPolicer
from carriers.ussd import UssdDialogue, UssdScreen
from handlers import parking, transactions, ussd
from handlers.transactions.config import load_transactions_config
from handlers.transactions.records import parse_record
from handlers.transactions.service import TransactionService
from smsgw.store import NewMt
from smsgw.ussd import sessions
from smsgw.ussd.sessions import SessionKey
from tests.parking_support import SUNDAY, at
from tests.stack import (
    CARRIERS,
    ROOT,
    Stack,
    eventually,
    on_loop,
    start_stack,
    wait,
    write_process_config,
)

pytestmark = pytest.mark.usefixtures("store_engine")

FEATURES = [parking.FEATURE, transactions.FEATURE, ussd.FEATURE]
SESSION_REF = {"omantel": "its_session_info", "ooredoo": "user_message_reference", "friendi": "msisdn"}
REF = "MM-2026-000123"


async def ussd_stack(tmp_path: Path, **kw: Any) -> Stack:
    clock = Clock()
    clock.advance(at(SUNDAY, "10:00"))
    return await start_stack(tmp_path, features=FEATURES, service_clock=clock, **kw)


class Phone:
    """One handset on one carrier: dial, then answer screen after screen."""

    def __init__(self, stack: Stack, carrier: str, msisdn: str) -> None:
        self.smsc = stack.smsc(carrier)
        self.msisdn = msisdn
        self.dialogue: UssdDialogue | None = None

    async def dial(self, code: str = "*141#") -> UssdScreen:
        self.dialogue = self.smsc.dial(self.msisdn, code)
        return await wait(self.dialogue.wait_screen())

    async def say(self, text: str) -> UssdScreen:
        assert self.dialogue is not None
        self.dialogue.answer(text)
        return await wait(self.dialogue.wait_screen())

    async def run(self, *answers: str) -> UssdScreen:
        screen = await self.dial()
        for answer in answers:
            assert not screen.end, screen
            screen = await self.say(answer)
        return screen


async def states_are(read: Any, expected: list[tuple[str, str]]) -> bool:
    return await read() == expected


def msisdn_for(carrier: str, lang: str) -> str:
    return f"968921{CARRIERS.index(carrier)}{'01' if lang == 'en' else '02'}00"


def language_choice(lang: str) -> str:
    return "1" if lang == "en" else "2"


@pytest.mark.parametrize("lang", ["en", "ar"])
@pytest.mark.parametrize("carrier", CARRIERS)
@on_loop
async def test_parking_booking_by_ussd(tmp_path: Path, carrier: str, lang: str) -> None:
    """Language, Parking, Book, plate, zone, duration, confirm: the ParkingService books the stay and
    the ticket is the last screen; the session ends cleanly on the carrier's variant."""
    stack = await ussd_stack(tmp_path)
    try:
        phone = Phone(stack, carrier, msisdn_for(carrier, lang))
        plate = "1234AB" if lang == "en" else "١٢٣٤ أب"
        screens = [await phone.dial()]
        for answer in (language_choice(lang), "1", "1", plate, "2", "2"):
            screens.append(await phone.say(answer))
        confirm = screens[-1]
        assert "1234AB" in confirm.text and ("200 baisa" in confirm.text or "200 بيسة" in confirm.text)
        final = await phone.say("1")
        assert final.end
        assert final.text.startswith("Ticket " if lang == "en" else "تذكرة ")
        assert "1234AB" in final.text
        assert all(s.data_coding == (0 if lang == "en" else 8) for s in screens[1:])
        rows = await stack.gateway.store.read(
            lambda conn: conn.execute("SELECT plate, zone, msisdn, short_code, lang FROM parking_session").fetchall()
        )
        assert rows == [("1234AB", "CBD", phone.msisdn, "90091", lang)]
        key = SessionKey(carrier, phone.msisdn, _ref(phone))
        stored = await stack.gateway.store.read(sessions.op_load, key)
        assert stored is not None and stored.state == sessions.ENDED and stored.screens == 8
        assert phone.dialogue is not None and phone.dialogue.state == "released"
        assert stack.smsc(carrier).anomalies == []
    finally:
        await stack.stop()


def _ref(phone: Phone) -> str:
    assert phone.dialogue is not None
    return phone.msisdn if phone.dialogue.ref is None else str(phone.dialogue.ref)


async def feed_transaction(stack: Stack, msisdn: str, status: str = "approved") -> None:
    """The back office's side: a request registered to `msisdn` (the same service the SMS uses)."""
    config = load_transactions_config(ROOT / "config" / "transactions.toml")
    assert stack.service_clock is not None
    service = TransactionService(stack.gateway.store, config, stack.service_clock.seconds)
    record = parse_record({"ref": REF, "service": "building_permit_renewal", "status": status,
                           "msisdns": [msisdn]}, config, stack.service_clock.seconds())
    await service.upsert(record, "test")


@pytest.mark.parametrize("lang", ["en", "ar"])
@pytest.mark.parametrize("carrier", CARRIERS)
@on_loop
async def test_transaction_status_by_ussd(tmp_path: Path, carrier: str, lang: str) -> None:
    """Request status, then the reference: the TransactionService answers, worded as for SMS; a
    malformed reference is asked for again."""
    stack = await ussd_stack(tmp_path)
    try:
        phone = Phone(stack, carrier, msisdn_for(carrier, lang))
        await feed_transaction(stack, phone.msisdn)
        ask = await phone.run(language_choice(lang), "2")
        assert ask.text.startswith("Enter your request number" if lang == "en" else "أدخل رقم طلبك")
        again = await phone.say("hello")
        assert not again.end and again.text.startswith("That is not" if lang == "en" else "هذا ليس رقم طلب")
        answer = await phone.say("mm-2026-000123")
        assert answer.end and REF in answer.text
        assert ("Approved" if lang == "en" else "تمت الموافقة") in answer.text
        assert stack.smsc(carrier).anomalies == []
    finally:
        await stack.stop()


@on_loop
async def test_screens_echo_the_session_marker_as_the_network_sent_it(tmp_path: Path) -> None:
    """Omantel numbers the handset's inputs in its_session_info octet 2 and matches screens on the
    whole value: each screen carries the octet 2 of the input it answers (end bit its own), the
    timeout release that of the last input. Ooredoo's indications carry service_type "USSD": so
    do its screens. Friendi's carry none: neither do its screens."""
    stack = await ussd_stack(tmp_path, carrier_overrides={"omantel": {"ussd_timeout_s": 0.5}})
    try:
        phone = Phone(stack, "omantel", "96891234567")
        await phone.run("1", "1", "1")
        assert phone.dialogue is not None
        await wait(phone.dialogue.wait_end(timeout=5))
        ref = phone.dialogue.ref
        assert [s.session_info for s in phone.dialogue.screens] == [
            bytes([ref, 0x00]), bytes([ref, 0x02]), bytes([ref, 0x04]), bytes([ref, 0x06]), bytes([ref, 0x07])]
        assert phone.dialogue.screens[-1].end and phone.dialogue.state == "released"
        for carrier, service_type, msisdn in (("ooredoo", "USSD", "96895123456"), ("friendi", "", "96897123456")):
            phone = Phone(stack, carrier, msisdn)
            final = await phone.run("1", "2", REF)
            assert final.end and phone.dialogue is not None
            assert {s.service_type for s in phone.dialogue.screens} == {service_type}
        for carrier in CARRIERS:
            assert stack.smsc(carrier).anomalies == []
    finally:
        await stack.stop()


@on_loop
async def test_a_release_is_not_sent_late_on_a_new_bind_after_a_restart(tmp_path: Path) -> None:
    """The dialogue times out while the gateway is down; it comes back with a new bind, soon enough
    that the release would still be within its grace: the session is closed as timed out, and no
    release reaches the handset late on the new bind."""
    stack = await ussd_stack(tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"ussd_timeout_s": 0.3}})
    try:
        phone = Phone(stack, "omantel", "96895123457")
        await phone.run("1")
        assert phone.dialogue is not None
        await stack.restart_gateway(down_for=0.5)  # down when the dialogue times out, back within the grace
        key = SessionKey("omantel", phone.msisdn, _ref(phone))

        async def closed() -> bool:
            stored = await stack.gateway.store.read(sessions.op_load, key)
            return stored is not None and stored.state == sessions.TIMED_OUT

        await eventually(closed)
        await asyncio.sleep(0.5)
        assert len(phone.dialogue.screens) == 2 and phone.dialogue.open  # the network times it out itself
        kinds = await stack.gateway.store.read(lambda conn: conn.execute("SELECT kind FROM outbound").fetchall())
        assert ("ussd_release",) not in kinds
        assert stack.gateway.ussd is not None and stack.gateway.ussd.counters["released_silently"] == 1
        assert stack.smsc("omantel").anomalies == []
    finally:
        await stack.stop()


@pytest.mark.parametrize("carrier", CARRIERS)
@on_loop
async def test_a_silent_dialogue_is_released_with_the_network_told(tmp_path: Path, carrier: str) -> None:
    """No answer within the carrier's ussd_timeout_s: the gateway sends a final screen (PSSR
    response with the variant's end marker) and the network closes the dialogue."""
    stack = await ussd_stack(tmp_path, carrier_overrides={carrier: {"ussd_timeout_s": 0.4}})
    try:
        phone = Phone(stack, carrier, "96892123456")
        await phone.run("1")
        assert phone.dialogue is not None
        await wait(phone.dialogue.wait_end(timeout=5))
        release = phone.dialogue.screens[-1]
        assert release.end and release.text.startswith("Session ended: no answer in time. Dial *141#")
        assert phone.dialogue.state == "released"
        stored = await stack.gateway.store.read(sessions.op_load, SessionKey(carrier, phone.msisdn, _ref(phone)))
        assert stored is not None and stored.state == sessions.TIMED_OUT
        assert stack.smsc(carrier).anomalies == []
    finally:
        await stack.stop()


@pytest.mark.parametrize("carrier", CARRIERS)
@on_loop
async def test_a_handset_hang_up_closes_the_session(tmp_path: Path, carrier: str) -> None:
    """Each carrier's abort signal (its_session_info end bit, vendor op 0x20, vendor TLV 0x1501)
    ends the gateway's session at once, with nothing more sent to the handset."""
    stack = await ussd_stack(tmp_path, carrier_overrides={carrier: {"ussd_timeout_s": 1.0}})
    try:
        phone = Phone(stack, carrier, "96892123456")
        await phone.run("1", "1")
        assert phone.dialogue is not None
        phone.dialogue.hang_up()
        key = SessionKey(carrier, phone.msisdn, _ref(phone))

        async def aborted() -> bool:
            stored = await stack.gateway.store.read(sessions.op_load, key)
            return stored is not None and stored.state == sessions.ABORTED

        await eventually(aborted)
        await asyncio.sleep(1.3)  # past the timeout: no release goes to a handset that hung up
        assert len(phone.dialogue.screens) == 3
        assert stack.gateway.ussd is not None and stack.gateway.ussd.counters["aborted"] == 1
        assert stack.smsc(carrier).anomalies == []
    finally:
        await stack.stop()


@on_loop
async def test_an_invalid_option_reshows_the_menu(tmp_path: Path) -> None:
    stack = await ussd_stack(tmp_path)
    try:
        phone = Phone(stack, "ooredoo", "96895123456")
        menu = await phone.run("1")
        again = await phone.say("9")
        assert again.text == "Invalid choice.\n" + menu.text and not again.end
        assert (await phone.say("1")).text.startswith("Parking")
    finally:
        await stack.stop()


@on_loop
async def test_long_arabic_content_pages_with_more(tmp_path: Path) -> None:
    """The Arabic help text is longer than one 80-character screen: it comes page by page, each
    page within the UCS2 limit (the simulator refuses anything longer), none cut."""
    stack = await ussd_stack(tmp_path)
    try:
        phone = Phone(stack, "omantel", "96891234567")
        page = await phone.run("2", "3")
        pages = [page]
        while page.text.endswith("98 المزيد"):
            page = await phone.say("98")
            pages.append(page)
        assert len(pages) >= 2
        assert all(p.data_coding == 8 and len(p.text) <= 80 for p in pages)
        assert pages[-1].text.endswith("0 رجوع 00 الرئيسية") and not pages[-1].end
        assert "أرسل مساعدة إلى 90091" in " ".join(p.text for p in pages).replace("\n", " ")
        assert stack.smsc("omantel").anomalies == []
    finally:
        await stack.stop()


@pytest.mark.parametrize("carrier", CARRIERS)
@on_loop
async def test_a_gateway_restart_mid_dialogue_loses_nothing(tmp_path: Path, carrier: str) -> None:
    """The session and menu state are stored with each screen: after a restart the next answer
    carries on where the dialogue was, on the carrier's own session marker."""
    stack = await ussd_stack(tmp_path)
    try:
        phone = Phone(stack, carrier, "96893123456")
        plate_prompt = await phone.run("1", "1", "1")
        assert plate_prompt.text.startswith("Enter the plate number")
        await stack.restart_gateway()
        zones = await phone.say("1234AB")
        assert zones.text.startswith("Choose the zone:")
        final = None
        for answer in ("1", "1", "1"):
            final = await phone.say(answer)
        assert final is not None and final.end and final.text.startswith("Ticket ")
        assert stack.smsc(carrier).anomalies == []
    finally:
        await stack.stop()


@on_loop
async def test_a_shortcut_dial_goes_straight_to_the_plate_step(tmp_path: Path) -> None:
    stack = await ussd_stack(tmp_path)
    try:
        phone = Phone(stack, "friendi", "96897123456")
        zones = await phone.dial("*141*1*1*1234AB#")
        assert zones.text.startswith("Choose the zone:\n1 Muscat")
        assert (await phone.say("0")).text.startswith("Enter the plate number")
    finally:
        await stack.stop()


@on_loop
async def test_ussd_screens_answer_fast_behind_a_10000_sms_backlog(tmp_path: Path) -> None:
    """10,000 notices queued for a carrier limited to 20 SMS/s: an SMS reply now waits behind
    them, but every USSD screen takes its own lane, past the queue and its TPS limit."""
    stack = await ussd_stack(tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"tps": 20.0}})
    try:
        gateway = stack.gateway
        assert gateway.context is not None and gateway.queue is not None and gateway.store is not None
        store = gateway.store
        now = gateway.clock.seconds()  # the queue's clock (the business clock is Sunday morning)
        drafts = [NewMt("omantel", f"9689{n:07d}", "90092", f"Notice {n}", now, now + 86400, kind="notice")
                  for n in range(10_000)]
        outbounds = await store.write(lambda conn: [store.insert_mt(conn, mt) for mt in drafts])
        for outbound in outbounds:
            gateway.queue.enqueue(outbound)
        sender = gateway.queue.senders["omantel"]
        phone = Phone(stack, "omantel", "96891234567")
        screens = [await phone.dial()]
        for answer in ("1", "1", "1", "1234AB", "1", "2", "0", "0", "00", "3", "98"):
            screens.append(await phone.say(answer))
        rtts = sorted(s.rtt_s for s in screens if s.rtt_s is not None)
        assert len(rtts) == len(screens)
        assert statistics.median(rtts) < 0.05 and rtts[-1] < 0.25, rtts
        queued = (await store.counts())["mt_queued"]
        assert queued > 9_000, queued  # the backlog is still there, the screens did not wait for it
        assert sender.stats.ussd_submitted == len(screens)
        with pytest.raises(HandsetTimeout):  # an SMS reply, by contrast, queues behind the notices
            await stack.send("omantel", "96891239999", "90091", "HELP", timeout=1.0)
    finally:
        await stack.stop()


@on_loop
async def test_screens_are_paced_to_the_carriers_ussd_budget_not_throttled(tmp_path: Path) -> None:
    """Twelve handsets at once on a USSD gateway that polices 10 screens a second (burst of 10):
    we pace at 8 a second, so it never refuses a screen, and every dialogue completes."""
    stack, smsc, sender = await policed_stack(tmp_path, ours=8.0, theirs=10.0)
    try:
        await status_lookups(stack, 12, "9689250")
        assert smsc.counters["throttled"] == 0
        assert sender.stats.ussd_submitted == 12 * 4 and sender.stats.throttled == 0
    finally:
        await stack.stop()


@on_loop
async def test_a_throttled_screen_goes_again_within_one_pacing_interval(tmp_path: Path) -> None:
    """A USSD gateway stricter than we were told (5 a second against our 50): its refusals are
    retried after 1/50 s with the lane's bucket emptied, so screens still arrive, in order."""
    stack, smsc, sender = await policed_stack(tmp_path, ours=50.0, theirs=5.0)
    try:
        phones = await status_lookups(stack, 6, "9689251")
        assert smsc.counters["throttled"] > 0 and sender.stats.throttled == smsc.counters["throttled"]
        assert sender.stats.ussd_submitted == 6 * 4 + sender.stats.throttled
        for phone in phones:
            assert phone.dialogue is not None and len(phone.dialogue.screens) == 4
    finally:
        await stack.stop()


async def policed_stack(tmp_path: Path, ours: float, theirs: float) -> tuple[Stack, Any, Any]:
    """Omantel alone, our `ussd_tps` set to `ours`, its USSD gateway policing `theirs` a second."""
    stack = await ussd_stack(tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"ussd_tps": ours}})
    smsc = stack.smsc("omantel")
    smsc.ussd.bucket = CarrierPolicer(theirs, smsc.clock)
    return stack, smsc, stack.gateway.queue.senders["omantel"]  # type: ignore[union-attr]


async def status_lookups(stack: Stack, count: int, prefix: str) -> list[Phone]:
    """`count` handsets look up a request status at once; each gets its final answer."""
    phones = [Phone(stack, "omantel", f"{prefix}{n:04d}") for n in range(count)]
    finals = await asyncio.gather(*(phone.run("1", "2", REF) for phone in phones))
    assert all(screen.end and REF in screen.text for screen in finals), finals
    return phones


@on_loop
async def test_a_screen_that_misses_its_session_is_dropped_not_sent_late(tmp_path: Path) -> None:
    """The link pauses past the session timeout: the stale screen expires in the queue; the
    handset gets only the release, never a menu for a dialogue that is over."""
    stack = await ussd_stack(tmp_path, carriers=["omantel"], carrier_overrides={"omantel": {"ussd_timeout_s": 0.3}})
    try:
        sender = stack.gateway.queue.senders["omantel"]  # type: ignore[union-attr]
        sender.pause()
        phone = Phone(stack, "omantel", "96895123456")
        phone.dialogue = phone.smsc.dial(phone.msisdn, "*141#")
        await asyncio.sleep(0.6)
        sender.resume()
        await wait(phone.dialogue.wait_end(timeout=5))
        assert [s.text[:15] for s in phone.dialogue.screens] == ["Session ended: "]

        async def states() -> list[tuple[str, str]]:
            return await stack.gateway.store.read(
                lambda conn: conn.execute("SELECT kind, state FROM outbound ORDER BY id").fetchall()
            )

        await eventually(lambda: states_are(states, [("ussd", "expired"), ("ussd_release", "sent")]))
        assert stack.smsc("omantel").anomalies == []
    finally:
        await stack.stop()


@on_loop
async def test_smsgw_dial_runs_a_scripted_dialogue(tmp_path: Path) -> None:
    """`smsgw dial --answers` drives a dialogue through the control port and prints each screen."""
    stack = await ussd_stack(tmp_path)
    try:
        config = write_process_config(tmp_path, stack.sims.ports, tmp_path / "unused.sqlite3",
                                      control_port=stack.sims.control_port or 0)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw.cli", "dial", "--config", str(config), "--carrier", "ooredoo",
            "--from", "96892123456", "--answers", "2,2,MM-2026-000123", "*141#",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode()
        assert proc.returncode == 0, err.decode()
        assert "Choose language / اختر اللغة" in text and "أدخل رقم طلبك" in text
        assert "> MM-2026-000123" in text and "── end of dialogue" in text
    finally:
        await stack.stop()
