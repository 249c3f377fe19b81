"""Transaction status end to end: handsets on simulated carriers, the gateway over SMPP, the back
office through the admin API (and the CSV importer as its own process)."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from handlers.transactions import FEATURE
from tests import engines
from tests.http_helpers import http
from tests.stack import ROOT, Stack, start_stack, wait
from tests.txn_helpers import on_loop

pytestmark = pytest.mark.usefixtures("store_engine")

CODE = "90092"
REF = "MM-2026-000123"
OWNER = "96891234567"
STRANGER = "96893456789"


def admin_token(stack: Stack) -> str:
    return next(t.token for t in stack.config.admin.tokens if t.role == "admin")


async def put(stack: Stack, body: dict, ref: str = REF) -> dict:
    assert stack.gateway.admin is not None
    result = await http(stack.gateway.admin.port, "PUT", f"/api/v1/transactions/{ref}", token=admin_token(stack),
                        body=body)
    assert result.status in (200, 201), result.json
    return result.json


async def seed(stack: Stack, status: str = "under_review") -> dict:
    return await put(stack, {"service": "building_permit_renewal", "status": status, "msisdns": [OWNER],
                             "note_en": "Site visit on 15 March", "note_ar": "زيارة الموقع في 15 مارس",
                             "updated_at": "2026-03-12T10:30:00+04:00"})


async def start(tmp_path: Path, **kwargs) -> Stack:  # type: ignore[no-untyped-def]
    return await start_stack(tmp_path, features=[FEATURE], **kwargs)  # the shipped routes


@on_loop
async def test_status_round_trip_in_english_and_arabic(tmp_path: Path) -> None:
    """STATUS on Omantel answers in English (7-bit); حالة with Arabic-Indic digits on Ooredoo
    answers in Arabic (UCS-2); the owner on Friendi too."""
    stack = await start(tmp_path)
    try:
        await seed(stack)
        [english] = await stack.send("omantel", OWNER, CODE, "STATUS mm-2026-000123")
        assert english.text == (
            f"{REF} Building permit renewal: Under review. Updated 2026-03-12 10:30. Note: Site visit on 15 March"
        )
        assert english.source == CODE and english.data_coding == 0 and not english.problems
        [arabic] = await stack.send("ooredoo", OWNER, CODE, "حالة MM-٢٠٢٦-٠٠٠١٢٣")
        assert arabic.text == (
            f"{REF} تجديد رخصة بناء: قيد المراجعة. آخر تحديث 2026-03-12 10:30. ملاحظة: زيارة الموقع في 15 مارس"
        )
        assert arabic.data_coding == 8 and not arabic.problems
        [mine] = await stack.send("friendi", OWNER, CODE, "MY")
        assert mine.text == f"Your open requests:\n{REF} Building permit renewal: Under review"
    finally:
        await stack.stop()


@on_loop
async def test_non_owner_gets_the_unknown_reference_reply(tmp_path: Path) -> None:
    stack = await start(tmp_path)
    try:
        await seed(stack)
        [existing] = await stack.send("omantel", STRANGER, CODE, f"STATUS {REF}")
        [unknown] = await stack.send("omantel", STRANGER, CODE, "STATUS MM-2026-000124")
        assert existing.text == f"No request {REF} is registered to this number. Check the number or call 1111."
        assert unknown.text == existing.text.replace(REF, "MM-2026-000124")
        assert (existing.data_coding, existing.parts) == (unknown.data_coding, unknown.parts)
    finally:
        await stack.stop()


@on_loop
async def test_http_status_change_reaches_the_handset_once(tmp_path: Path) -> None:
    """After a PUT that changes the status, the owner's handset gets one notification, on the
    carrier they last wrote from, in their language; a restart does not send it again."""
    stack = await start(tmp_path)
    try:
        await seed(stack, status="received")
        await stack.send("ooredoo", OWNER, CODE, f"حالة {REF}")  # the owner last wrote from Ooredoo, in Arabic
        smsc = stack.smsc("ooredoo")
        since = len(smsc.handset_messages)
        result = await seed(stack, status="approved")
        assert result["notifications"] == 1
        [notice] = await wait(smsc.wait_handset(OWNER, 1, since_index=since, timeout=5))
        assert notice.text == (
            "بلدية مسقط: طلبك MM-2026-000123 (تجديد رخصة بناء) أصبح: تمت الموافقة. زيارة الموقع في 15 مارس. "
            "لإيقاف الرسائل أرسل إيقاف إلى 90092."
        )
        assert notice.source == CODE and not notice.problems
        await stack.restart_gateway()
        await seed(stack, status="approved")  # the same again: unchanged
        [reply] = await stack.send("ooredoo", OWNER, CODE, "STATUS MM 2026 123")
        assert "Approved" in reply.text
        received = [m.text for m in stack.handset("ooredoo", OWNER)]
        assert received.count(notice.text) == 1
        assert all(OWNER != m.msisdn for c in ("omantel", "friendi") for m in stack.smsc(c).handset_messages)
    finally:
        await stack.stop()


@on_loop
async def test_a_notification_is_in_the_language_of_the_numbers_last_message_whatever_it_was(tmp_path: Path) -> None:
    """The owner asked in Arabic on 90092, then wrote HELP in English to the parking code: the
    notice is in English. A message without letters ("30") says nothing of a language."""
    stack = await start_stack(tmp_path)  # every feature: HELP to 90091 is the help handler
    try:
        await seed(stack, status="received")
        await stack.send("omantel", OWNER, CODE, f"حالة {REF}")
        await stack.send("omantel", OWNER, "90091", "HELP")
        await stack.send("omantel", OWNER, "90091", "30")
        smsc = stack.smsc("omantel")
        since = len(smsc.handset_messages)
        assert (await seed(stack, status="approved"))["notifications"] == 1
        [notice] = await wait(smsc.wait_handset(OWNER, 1, since_index=since, timeout=5))
        assert notice.text == ("Muscat Municipality: request MM-2026-000123 (Building permit renewal) is now Approved. "
                               "Site visit on 15 March. To stop these SMS send STOP to 90092.")
        await stack.send("omantel", OWNER, "90091", "مساعدة")
        since = len(smsc.handset_messages)
        assert (await seed(stack, status="completed"))["notifications"] == 1
        [notice] = await wait(smsc.wait_handset(OWNER, 1, since_index=since, timeout=5))
        assert notice.text.startswith("بلدية مسقط: طلبك MM-2026-000123 (تجديد رخصة بناء) أصبح: مكتمل.")
    finally:
        await stack.stop()


@on_loop
async def test_a_long_note_is_cut_at_a_word_after_the_boilerplate_gives_way(tmp_path: Path) -> None:
    """A note too long for the two parts the config allows: the shorter template first, then the
    note cut after a whole word; the way to stop the SMS stays, and both parts are used."""
    stack = await start(tmp_path)
    try:
        note_ar = ("يرجى إحضار نسخة من عقد الإيجار الأصلي وبطاقة الهوية إلى مكتب البلدية في روي قبل نهاية "
                   "الأسبوع القادم لاستكمال إجراءات تجديد عقد الإيجار")
        await put(stack, {"service": "lease_contract_renewal", "status": "received", "msisdns": [OWNER],
                          "note_ar": note_ar})
        await stack.send("ooredoo", OWNER, CODE, f"حالة {REF}")
        smsc = stack.smsc("ooredoo")
        since = len(smsc.handset_messages)
        await put(stack, {"service": "lease_contract_renewal", "status": "awaiting_documents", "msisdns": [OWNER],
                          "note_ar": note_ar})
        [notice] = await wait(smsc.wait_handset(OWNER, 1, since_index=since, timeout=5))
        assert notice.text == ("بلدية مسقط: MM-2026-000123 أصبح: بانتظار المستندات. يرجى إحضار نسخة من عقد الإيجار "
                               "الأصلي وبطاقة الهوية… للإيقاف أرسل إيقاف إلى 90092.")
        assert notice.parts == 2 and len(notice.text) > 67  # the second part used, not wasted
    finally:
        await stack.stop()


@on_loop
async def test_stop_on_the_short_code_silences_notifications(tmp_path: Path) -> None:
    stack = await start(tmp_path)
    try:
        await seed(stack, status="received")
        [ack] = await stack.send("omantel", OWNER, CODE, "إيقاف")
        assert ack.text == "لن تصلك رسائل تحديث طلباتك. لإعادة تفعيلها أرسل تشغيل إلى 90092."
        assert (await seed(stack, status="approved"))["notifications"] == 0
        [ack] = await stack.send("omantel", OWNER, CODE, "START")
        assert ack.text == "SMS updates on your requests are on. To stop them send STOP to 90092."
        since = len(stack.smsc("omantel").handset_messages)
        assert (await seed(stack, status="completed"))["notifications"] == 1
        [notice] = await wait(stack.smsc("omantel").wait_handset(OWNER, 1, since_index=since, timeout=5))
        assert notice.text.startswith("Muscat Municipality: request MM-2026-000123 (Building permit renewal) is now "
                                      "Completed.")
    finally:
        await stack.stop()


@on_loop
async def test_csv_import_from_another_process_is_notified_by_the_gateway(tmp_path: Path) -> None:
    """`smsgw transactions import` writes beside the running gateway; the gateway's dispatcher sends
    the notification at its next tick (the service clock is driven by the test)."""
    service_clock = Clock()
    service_clock.advance(time.time())
    stack = await start(tmp_path, service_clock=service_clock)
    try:
        await seed(stack, status="received")
        config = tmp_path / "gateway.toml"
        text = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8")
        key = engines.config_key()
        config.write_text(re.sub(r'(?m)^store_path = .*$', f'{key} = "{stack.config.store_location}"', text),
                          encoding="utf-8")
        feed = tmp_path / "feed.csv"
        feed.write_text(f"ref,service,status,msisdns\n{REF},building_permit_renewal,rejected,\n", encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "handlers.transactions.importer", str(feed), "--config", str(config),
            "--transactions-config", str(ROOT / "config" / "transactions.toml"),
            cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        assert "inserted 0, updated 1, unchanged 0, rejected 0; notifications 1" in out.decode()
        since = len(stack.smsc("omantel").handset_messages)
        service_clock.advance(5.0)  # notifications.poll_s
        [notice] = await wait(stack.smsc("omantel").wait_handset(OWNER, 1, since_index=since, timeout=5))
        assert "أصبح: مرفوض" in notice.text
    finally:
        await stack.stop()
