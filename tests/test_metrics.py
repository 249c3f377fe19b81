"""Metrics reflect traffic: counters, queue and bind state, read from the live gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import engines
from tests.stack import eventually, on_loop, start_stack

pytestmark = pytest.mark.usefixtures("store_engine")


@on_loop
async def test_metrics_reflect_traffic_and_link_state(tmp_path: Path) -> None:
    """After HELP on two carriers, /metrics counts the MOs, the accepted submits, receipts,
    and shows every link bound and the store healthy."""
    stack = await start_stack(tmp_path, carriers=["omantel", "ooredoo"])
    try:
        await stack.send("omantel", "96891230100", "90091", "HELP")
        await stack.send("ooredoo", "96891230101", "90091", "HELP")
        await eventually(lambda: stack.gateway.counters["dlr"] >= 2, timeout=8)
        text = engines.without_node_label(stack.gateway.metrics.render().decode(), stack.gateway.node)
        assert 'smsgw_mo_total{carrier="omantel",result="accepted"} 1.0' in text
        assert 'smsgw_mo_total{carrier="ooredoo",result="accepted"} 1.0' in text
        assert 'smsgw_submit_total{carrier="omantel",outcome="accepted"} 1.0' in text
        assert 'smsgw_dlr_total{carrier="ooredoo"} 1.0' in text
        assert 'smsgw_bind_state{carrier="ooredoo",state="bound"} 1.0' in text
        assert "smsgw_store_healthy 1.0" in text
        assert 'smsgw_mt_queue_seconds_count{carrier="omantel",channel="sms"} 1.0' in text
        assert 'smsgw_mo_processing_seconds_count{carrier="omantel"} 1.0' in text
    finally:
        await stack.stop()
