"""Abuse protection: per-MSISDN limits, auto-reply loops, sender kinds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from smsgw.abuse import AbuseConfig, AbuseGuard, Verdict
from smsgw.message import Channel, Inbound
from tests.stack import Stack, eventually, on_loop, start_stack

pytestmark = pytest.mark.usefixtures("store_engine")

Q = AbuseConfig(max_messages=3, window_s=60.0, loop_repeats=4, loop_window_s=30.0, loop_cooldown_s=100.0)


def mo(text: str = "HELP", msisdn: str = "96891234567", channel: Channel = Channel.SMS) -> Inbound:
    return Inbound(1, "omantel", msisdn, "90091", text, 0.0, channel=channel)


def test_limit_answers_then_one_notice_then_silence_then_recovers() -> None:
    """Over the limit: one polite notice, then silence; once the window clears, answers again."""
    guard = AbuseGuard(Q)
    verdicts = [guard.check(mo(f"HELP {i}"), float(i)) for i in range(6)]
    assert verdicts == [Verdict.ANSWER] * 3 + [Verdict.POLITE_LIMIT, Verdict.SILENT, Verdict.SILENT]
    assert guard.check(mo("HELP again"), 200.0) is Verdict.ANSWER


def test_the_same_text_coming_back_after_each_reply_is_a_loop() -> None:
    """An auto-responder: the same text again after each of our replies is muted for the cooldown."""
    guard = AbuseGuard(dataclasses.replace(Q, max_messages=100))
    verdicts = []
    for i in range(5):
        verdicts.append(guard.check(mo("Out of office"), float(i)))
        guard.replied("96891234567", i + 0.5, ["Sorry, we did not understand that."])
    assert verdicts == [Verdict.ANSWER] * 3 + [Verdict.MUTED, Verdict.MUTED]
    assert guard.check(mo("something else"), 50.0) is Verdict.MUTED  # still muted
    assert guard.check(mo("something else"), 200.0) is Verdict.ANSWER


def test_nearly_the_same_long_text_counts_as_the_same() -> None:
    """Case, spacing, punctuation and (in a long text) changing numbers do not hide a loop."""
    guard = AbuseGuard(dataclasses.replace(Q, max_messages=100))
    texts = ["I am driving, back at 10:05 (1)", "i am driving,  back at 10:07 (2)!", "I AM DRIVING, back at 10:09 (3)",
             "I am driving, back at 10:11 (4)."]
    verdicts = []
    for i, text in enumerate(texts):
        verdicts.append(guard.check(mo(text), float(i)))
        guard.replied("96891234567", i + 0.5)
    assert verdicts == [Verdict.ANSWER] * 3 + [Verdict.MUTED]


def test_a_burst_of_the_same_text_before_any_reply_is_not_a_loop() -> None:
    """A handset resending (or a double tap) is one person: every copy is answered."""
    guard = AbuseGuard(dataclasses.replace(Q, max_messages=100))
    assert [guard.check(mo("7777AB 30"), i * 0.01) for i in range(6)] == [Verdict.ANSWER] * 6


def test_distinct_commands_answered_quickly_are_a_person() -> None:
    """A person answering each of our replies within a second, with different commands, is served."""
    guard = AbuseGuard(dataclasses.replace(Q, max_messages=100))
    commands = ["1234AB 30", "MY", "EXT 30", "HELP", "Y", "CANCEL", "5555B 60", "MY", "STOP"]
    verdicts = []
    for i, text in enumerate(commands):
        verdicts.append(guard.check(mo(text), i * 1.0))
        guard.replied("96891234567", i * 1.0 + 0.2, [f"Ticket 0000018: reply number {i} to your message."])
    assert verdicts == [Verdict.ANSWER] * len(commands)


def test_our_reply_echoed_back_is_not_answered_and_two_echoes_mute() -> None:
    """An echo of our reply (whole, quoted, or cut short) is never answered; a second one mutes."""
    guard = AbuseGuard(dataclasses.replace(Q, max_messages=100))
    reply = "Ticket 0000018: 1234AB parked in Muscat until 10:30. Charged 100 baisa."
    assert guard.check(mo("1234AB 30"), 0.0) is Verdict.ANSWER
    guard.replied("96891234567", 0.5, [reply])
    assert guard.check(mo("Re: " + reply), 1.0) is Verdict.MUTED
    assert guard.check(mo("HELP"), 2.0) is Verdict.ANSWER  # one echo: not muted yet
    guard.replied("96891234567", 2.5, [reply.replace("0000018", "0000026")])
    assert guard.check(mo(reply[:30]), 3.0) is Verdict.MUTED
    assert guard.check(mo("HELP"), 4.0) is Verdict.MUTED  # two echoes: muted for the cooldown
    assert guard.counters["loops"] == 1 and guard.counters["echoes"] == 2


@pytest.mark.parametrize(
    ("msisdn", "setting", "expected"),
    [
        ("MUSCATBANK", {"alphanumeric_senders": "ignore"}, Verdict.IGNORED),
        ("MUSCATBANK", {"alphanumeric_senders": "process"}, Verdict.ANSWER),
        ("971501234567", {"foreign_senders": "process"}, Verdict.ANSWER),
        ("971501234567", {"foreign_senders": "ignore"}, Verdict.IGNORED),
        ("96891234567", {"foreign_senders": "ignore"}, Verdict.ANSWER),
    ],
)
def test_sender_kinds_follow_config(msisdn: str, setting: dict, expected: Verdict) -> None:
    """Alphanumeric and foreign senders are answered or not as configured."""
    assert AbuseGuard(dataclasses.replace(Q, **setting)).check(mo(msisdn=msisdn), 0.0) is expected


def test_ussd_screens_are_never_limited() -> None:
    """Dialogue turns are answers the network asked for."""
    guard = AbuseGuard(Q)
    assert all(guard.check(mo("1", channel=Channel.USSD), float(i)) is Verdict.ANSWER for i in range(20))


def test_idle_senders_are_forgotten() -> None:
    """Memory stays bounded: senders with nothing in any window are dropped."""
    guard = AbuseGuard(Q)
    for i in range(100):
        guard.check(mo(msisdn=f"9689{i:07d}"), 0.0)
    assert len(guard) == 100
    assert guard.forget_idle(1000.0) == 100 and len(guard) == 0


@on_loop
async def test_flooding_handset_gets_one_notice_then_silence(tmp_path: Path) -> None:
    """End to end: 6 MOs with a limit of 3 → 3 answers and one notice; all 6 stored."""
    stack = await start_stack(tmp_path, carriers=["omantel"], abuse=Q)
    try:
        smsc = stack.smsc("omantel")
        for i in range(6):
            smsc.inject_mo("96891239999", "90091", f"HELP {i}")
        await eventually(lambda: stack.gateway.counters["processed"] == 6)
        await eventually(lambda: len(stack.handset("omantel", "96891239999")) == 4)
        texts = [m.text for m in stack.handset("omantel", "96891239999")]
        assert "Please wait" in texts[-1]
        stored = await stack.gateway.store.read(lambda c: c.execute("SELECT COUNT(*) FROM inbound").fetchone()[0])
        assert stored == 6
    finally:
        await stack.stop()


def test_tracked_senders_are_capped() -> None:
    """A flood of distinct (spoofed) senders never grows the state past max_tracked."""
    guard = AbuseGuard(dataclasses.replace(Q, max_tracked=100))
    for i in range(1000):
        guard.check(mo(msisdn=f"9689{i:07d}"), float(i) / 1000)
    assert len(guard) == 100


# -- end to end, over loopback SMPP: a person is served, a loop is muted, money moves anyway -------------


async def _answered(stack: Stack, carrier: str, msisdn: str, text: str, code: str = "90091") -> list[str]:
    """Send `text`; the replies it got once the gateway processed it (none when not answered)."""
    smsc = stack.smsc(carrier)
    since, processed = len(smsc.handset_messages), stack.gateway.counters["processed"]
    smsc.inject_mo(msisdn, code, text)
    await eventually(lambda: stack.gateway.counters["processed"] > processed)

    async def nothing_queued() -> bool:
        return (await stack.gateway.store.counts())["mt_queued"] == 0

    await eventually(nothing_queued)  # a reply, if any, is accepted by the SMSC: on the handset
    return [m.text for m in smsc.handset_messages[since:] if m.msisdn == msisdn]


@on_loop
async def test_a_person_sending_distinct_commands_quickly_is_answered(tmp_path: Path) -> None:
    """Each command sent the moment the previous reply arrives: all answered, nobody muted."""
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        for text in ("HELP", "MY", "مساعدة", "H", "?", "MY PARKING", "HELP PLEASE", "مواقفي"):
            assert len(await stack.texts("omantel", "96891231111", "90091", text)) == 1, text
        assert stack.gateway.abuse.counters["loops"] == 0
    finally:
        await stack.stop()


@on_loop
async def test_a_loop_is_muted_yet_its_stop_and_extension_are_carried_out(tmp_path: Path) -> None:
    """An auto-responder repeating itself after each reply is muted without a word; what the muted
    number then sends to extend or stop its parking is carried out all the same (ledger and stay
    change, no reply), and the status API and page show those messages as muted."""
    from tests.http_helpers import http
    from tests.parking_support import DRIVER
    from tests.test_parking_e2e import business_clock, ledger, one, start
    from tests.test_operator_api import ADMIN, port

    clock = business_clock("10:00")
    stack = await start(tmp_path, clock)
    try:
        await one(stack, "omantel", DRIVER, "1234AB 60")
        auto = "I am driving and cannot answer now"
        for _ in range(4):
            assert len(await stack.texts("omantel", DRIVER, "90091", auto)) == 1
        assert await _answered(stack, "omantel", DRIVER, auto) == []  # the 5th copy: a loop
        assert await _answered(stack, "omantel", DRIVER, "EXT 30") == []
        assert await _answered(stack, "omantel", DRIVER, "CANCEL") == []
        assert [(r[0], r[3]) for r in await ledger(stack)] == [
            ("charge", 200), ("charge", 100), ("credit", 100), ("credit", 200)]
        state = await stack.gateway.store.read(
            lambda c: c.execute("SELECT state FROM parking_session").fetchall())
        assert state == [("cancelled",)]
        history = (await http(port(stack), "GET", f"/api/v1/messages?msisdn={DRIVER}", token=ADMIN)).json
        mos = [(m["text"], m["state"]) for m in history["messages"] if m["direction"] == "mo"]
        assert mos[:3] == [("CANCEL", "muted"), ("EXT 30", "muted"), (auto, "muted")]
        assert all(state == "processed" for _, state in mos[3:])
        page = (await http(port(stack), "GET", f"/?token={ADMIN}", token=None, content_type=None)).raw.decode()
        assert "<td>muted</td>" in page
    finally:
        await stack.stop()


@on_loop
async def test_our_own_reply_echoed_back_gets_no_answer(tmp_path: Path) -> None:
    """A handset that sends our reply back is not answered (that is how a loop starts); a second
    echo mutes it."""
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        number = "96891232222"
        [reply] = await stack.texts("omantel", number, "90091", "HELP")
        assert await _answered(stack, "omantel", number, reply) == []
        assert len(await stack.texts("omantel", number, "90091", "MY")) == 1
        [second] = [m.text for m in stack.handset("omantel", number)][-1:]
        assert await _answered(stack, "omantel", number, "Fwd: " + second) == []
        assert await _answered(stack, "omantel", number, "HELP") == []  # muted now
        assert stack.gateway.abuse.counters["loops"] == 1
    finally:
        await stack.stop()


@on_loop
async def test_a_muted_numbers_yes_to_our_question_is_carried_out(tmp_path: Path) -> None:
    """A Y that confirms a reading we asked about books it, even once the number is muted."""
    from tests.parking_support import SPOUSE
    from tests.test_parking_e2e import business_clock, ledger, one, start

    clock = business_clock("10:00")
    stack = await start(tmp_path, clock)
    try:
        assert (await one(stack, "ooredoo", SPOUSE, "park 1234AB for 2")).text.startswith("Did you mean 1234AB 120")
        auto = "Auto-reply: I am busy, I will call you back"
        for _ in range(4):
            assert len(await stack.texts("ooredoo", SPOUSE, "90091", auto)) == 1
        assert await _answered(stack, "ooredoo", SPOUSE, auto) == []  # muted from here
        assert await _answered(stack, "ooredoo", SPOUSE, "نعم") == []
        assert await ledger(stack) == [("charge", "ooredoo", SPOUSE, 400)]
        assert stack.gateway.counters["carried_out_unanswered"] == 1
    finally:
        await stack.stop()
