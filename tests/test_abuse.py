"""Abuse protection: per-MSISDN limits, auto-reply loops, sender kinds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from smsgw.abuse import AbuseConfig, AbuseGuard, Verdict
from smsgw.message import Channel, Inbound
from tests.stack import eventually, on_loop, start_stack

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


def test_identical_texts_are_a_loop_and_muted_without_reply() -> None:
    """The same text again and again (an auto-responder) is muted for the cooldown."""
    guard = AbuseGuard(dataclasses.replace(Q, max_messages=100))
    verdicts = [guard.check(mo("Out of office"), float(i)) for i in range(5)]
    assert verdicts == [Verdict.ANSWER] * 3 + [Verdict.SILENT, Verdict.SILENT]
    assert guard.check(mo("something else"), 50.0) is Verdict.SILENT  # still muted
    assert guard.check(mo("something else"), 200.0) is Verdict.ANSWER


def test_quick_answers_to_each_reply_are_a_loop() -> None:
    """A sender answering each of our replies within a second, with varying text, is cut off."""
    guard = AbuseGuard(dataclasses.replace(Q, max_messages=100))
    verdict = Verdict.ANSWER
    for i in range(10):
        verdict = guard.check(mo(f"auto {i}"), i * 1.0)
        if verdict is Verdict.SILENT:
            break
        guard.replied("96891234567", i * 1.0 + 0.1)
    assert verdict is Verdict.SILENT and i == 4


@pytest.mark.parametrize(
    ("msisdn", "setting", "expected"),
    [
        ("MUSCATBANK", {"alphanumeric_senders": "ignore"}, Verdict.SILENT),
        ("MUSCATBANK", {"alphanumeric_senders": "process"}, Verdict.ANSWER),
        ("971501234567", {"foreign_senders": "process"}, Verdict.ANSWER),
        ("971501234567", {"foreign_senders": "ignore"}, Verdict.SILENT),
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
