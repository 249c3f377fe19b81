"""Per-message events at debug, counted; the periodic `traffic` line at info (smsgw/log.py, smsgw/traffic.py)."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs
from twisted.internet.task import Clock

from smsgw import log as smslog
from smsgw.outbound import SenderStats
from smsgw.traffic import TrafficLog
from tests.stack import eventually, on_loop, start_stack


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_events_below_the_level_are_counted_not_written(restore_logging: None) -> None:
    stream = io.StringIO()
    smslog.configure("info", stream=stream)
    logger = smslog.get_logger("test")
    before = smslog.suppressed_events["test_per_message"]
    logger.debug("test_per_message", msisdn=smslog.mask_msisdn("96891234567"))
    logger.debug("test_per_message")
    logger.info("test_shown", n=1)
    assert smslog.suppressed_events["test_per_message"] - before == 2
    assert [(e["event"], e["level"]) for e in lines(stream)] == [("test_shown", "info")]


def test_a_higher_level_counts_info_too_and_a_lower_one_writes_debug(restore_logging: None) -> None:
    stream = io.StringIO()
    logger = smslog.get_logger("test")
    smslog.configure("warning", stream=stream)
    before = smslog.suppressed_events["test_info_event"]
    logger.info("test_info_event")
    logger.msg("test_info_event")
    logger.warning("test_warned")
    assert smslog.suppressed_events["test_info_event"] - before == 2
    smslog.configure("debug", stream=stream)  # a reload to debug: per-message lines are written again
    logger.debug("test_debug_written")
    assert [e["event"] for e in lines(stream)] == ["test_warned", "test_debug_written"]


def fake_gateway(clock: Clock) -> SimpleNamespace:
    return SimpleNamespace(
        clock=clock,
        carrier_counters=Counter(),
        counters={"mo": 0, "processed": 0, "carried_out_unanswered": 0},
        queue=SimpleNamespace(senders={"omantel": SimpleNamespace(stats=SenderStats())}),
        abuse=SimpleNamespace(counters={"limited": 0, "loops": 0}),
    )


@pytest.fixture
def all_levels(restore_logging: None) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))


def test_traffic_line_reports_what_changed_each_interval_and_nothing_when_idle(all_levels: None) -> None:
    clock = Clock()
    gw = fake_gateway(clock)
    traffic = TrafficLog(gw, interval_s=60.0)  # type: ignore[arg-type]
    with capture_logs() as logs:
        traffic.startService()
        clock.advance(60)  # nothing happened: no line
        gw.carrier_counters["omantel", "mo_accepted"] += 5
        gw.carrier_counters["omantel", "mo_duplicate"] += 1
        gw.carrier_counters["omantel", "dlr"] += 4
        gw.counters["processed"] += 5
        gw.counters["carried_out_unanswered"] += 1
        gw.counters["mo"] += 5  # shown per carrier, not again gateway-wide
        gw.queue.senders["omantel"].stats.submitted += 5
        gw.queue.senders["omantel"].stats.accepted += 5
        gw.abuse.counters["limited"] += 1
        clock.advance(60)
        gw.carrier_counters["omantel", "mo_accepted"] += 2
        traffic.stopService()  # the rest is written at stop
    events = [e for e in logs if e["event"] == "traffic"]
    assert len(events) == 2
    first, last = events
    assert first["log_level"] == "info"
    assert first["mo"] == {"omantel": {"accepted": 5, "duplicate": 1}}
    assert first["dlr"] == {"omantel": 4}
    assert first["mt"] == {"omantel": {"submitted": 5, "accepted": 5}}
    assert first["processed"] == 5
    assert first["carried_out_unanswered"] == 1
    assert first["abuse"] == {"limited": 1}
    assert last["mo"] == {"omantel": {"accepted": 2}}
    assert "dlr" not in last and "processed" not in last


def test_traffic_line_counts_the_debug_events(all_levels: None) -> None:
    clock = Clock()
    traffic = TrafficLog(fake_gateway(clock), interval_s=10.0)  # type: ignore[arg-type]
    traffic.startService()
    smslog.suppressed_events["test_parking_book"] += 3
    with capture_logs() as logs:
        clock.advance(10)
    traffic.stopService()
    assert [e.get("debug_events") for e in logs if e["event"] == "traffic"] == [{"test_parking_book": 3}]


@on_loop
async def test_gateway_at_info_writes_no_line_per_message_and_counts_them(tmp_path: Path) -> None:
    """What an operator's log shows at the shipped level: no line per MO, the counts in `traffic`."""
    saved = structlog.get_config()
    stream = io.StringIO()
    smslog.configure("info", stream=stream)
    try:
        stack = await start_stack(tmp_path, carriers=["omantel"])
        try:
            before = smslog.suppressed_events["mo_accepted"]
            for n in range(3):
                await stack.send("omantel", f"9689123004{n}", "90091", "HELP")
            assert smslog.suppressed_events["mo_accepted"] - before == 3
            sender = stack.gateway.queue.senders["omantel"]
            await eventually(lambda: sender.stats.accepted == 3)  # the handset can be quicker than the resp
            assert stack.gateway.traffic is not None
            stack.gateway.traffic.emit()
        finally:
            await stack.stop()
    finally:
        structlog.configure(**saved)
    events = lines(stream)
    assert not [e for e in events if e["event"] in ("mo_accepted", "mo_duplicate")]
    traffic = [e for e in events if e["event"] == "traffic"]
    assert traffic and traffic[0]["level"] == "info"
    assert traffic[0]["mo"] == {"omantel": {"accepted": 3}}
    assert traffic[0]["processed"] == 3
    assert traffic[0]["mt"]["omantel"]["accepted"] == 3
    assert traffic[0]["debug_events"]["mo_accepted"] == 3
    assert "96891230040" not in stream.getvalue()  # no number in clear, whatever the event
