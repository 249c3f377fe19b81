"""A notification goes only to numbers registered to the transaction when it is sent: a number
removed after the notice was written (the CSV importer leaves notices pending for the gateway)
gets nothing.  Gateway over real SMPP, back office over real HTTP, the importer on the same
store file; the dispatcher's clock is driven by the test."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from handlers.transactions import FEATURE
from handlers.transactions.importer import main as import_main
from tests import engines
from tests.http_helpers import http
from tests.stack import ROOT, Stack, eventually, start_stack, wait
from tests.txn_helpers import on_loop

pytestmark = pytest.mark.usefixtures("store_engine")

REF = "MM-2026-000123"
OWNER = "96891234567"
FORMER = "96892345678"  # registered when the notice was written, removed before it went out
URL = f"/api/v1/transactions/{REF}"


def admin(stack: Stack) -> str:
    return next(t.token for t in stack.config.admin.tokens if t.role == "admin")


async def put(stack: Stack, body: dict) -> dict:
    assert stack.gateway.admin is not None
    result = await http(stack.gateway.admin.port, "PUT", URL, token=admin(stack), body=body)
    assert result.status in (200, 201), result.json
    return result.json


@on_loop
async def test_a_number_removed_before_the_notice_is_sent_gets_nothing(tmp_path: Path) -> None:
    service_clock = Clock()
    service_clock.advance(time.time())
    stack = await start_stack(tmp_path, features=[FEATURE], service_clock=service_clock)
    try:
        await put(stack, {"service": "building_permit_renewal", "status": "received", "msisdns": [OWNER, FORMER]})
        # The importer, on the same store: a status change, notices for both numbers, pending.
        config = tmp_path / "gateway.toml"
        text = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8")
        config.write_text(re.sub(r"(?m)^store_path = .*$", f'{engines.config_key()} = "{stack.config.store_location}"', text),
                          encoding="utf-8")
        feed = tmp_path / "feed.csv"
        feed.write_text(f"ref,service,status,msisdns\n{REF},building_permit_renewal,rejected,\n", encoding="utf-8")
        code = await asyncio.get_running_loop().run_in_executor(None, import_main, [
            str(feed), "--config", str(config), "--transactions-config", str(ROOT / "config" / "transactions.toml")])
        assert code == 0
        # The back office takes the second number off before the gateway sends the notices.
        detail = await put(stack, {"service": "building_permit_renewal", "status": "rejected", "msisdns": [OWNER]})
        assert detail["notifications"] == 0
        owner_since = len(stack.handset("omantel", OWNER))
        service_clock.advance(5.0)  # notifications.poll_s: the dispatcher's tick
        [notice] = await wait(stack.smsc("omantel").wait_handset(OWNER, 1, since_index=owner_since, timeout=5))
        assert "مرفوض" in notice.text or "Rejected" in notice.text
        store = stack.gateway.store
        assert store is not None
        await eventually(lambda: store.read(lambda c: c.execute(
            "SELECT 1 FROM txn_notice WHERE state = 'pending'").fetchone() is None))
        states = await store.read(lambda c: dict(c.execute(
            "SELECT msisdn, state FROM txn_notice WHERE change_id = (SELECT MAX(change_id) FROM txn_notice)")))
        assert states == {OWNER: "queued", FORMER: "withdrawn"}
        sent_to = await store.read(lambda c: [m for (m,) in c.execute("SELECT msisdn FROM outbound WHERE kind = ?",
                                                                          ("txn_notice",))])
        assert FORMER not in sent_to
        await asyncio.sleep(0.2)
        assert [m.text for m in stack.handset("omantel", FORMER) if "مرفوض" in m.text or "Rejected" in m.text] == []
    finally:
        await stack.stop()
