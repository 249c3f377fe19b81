"""Transaction status by SMS on a real store: privacy, rate limit, MY, notifications, opt-out.

Messages go through the real router (with the routes proposed for gateway.toml), handler and
service; the store is a real SQLite file that tests close and reopen to play a restart.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from handlers import texts
from handlers.transactions.config import NotificationConfig, TransactionsConfig
from handlers.transactions.service import NOTICE_KIND, UpsertOutcome
from tests.txn_helpers import T0, Clock, on_loop, open_harness

pytestmark = pytest.mark.usefixtures("store_engine")

REF = "MM-2026-000123"
OWNER = "96891234567"
OTHER_OWNER = "96892345678"
STRANGER = "96893456789"

# Wording the residents see (English must stay 7-bit; Arabic keeps ASCII digits).
STATUS_EN = f"{REF} Building permit renewal: Under review. Updated 2026-03-12 10:30. Note: Site visit on 15 March"
STATUS_AR = f"{REF} تجديد رخصة بناء: قيد المراجعة. آخر تحديث 2026-03-12 10:30. ملاحظة: زيارة الموقع في 15 مارس"
NOT_FOUND_EN = f"No request {REF} is registered to this number. Check the number or call 1111."
NOT_FOUND_AR = f"لا يوجد طلب {REF} مسجل لهذا الرقم. تأكد من الرقم أو اتصل على 1111."


async def seed(h, ref: str = REF, status: str = "under_review", msisdns: str = OWNER, **more: str):
    return await h.feed(ref=ref, service="building_permit_renewal", status=status, msisdns=msisdns,
                        note_en="Site visit on 15 March", note_ar="زيارة الموقع في 15 مارس", **more)


# -- queries and privacy --------------------------------------------------------------------------------


@on_loop
async def test_owner_gets_status_in_the_language_they_wrote_in(tmp_path: Path) -> None:
    """STATUS gives service, status, last update (Muscat time) and note; حالة gives the same in Arabic."""
    h = await open_harness(tmp_path)
    try:
        await seed(h)
        assert await h.sms(OWNER, f"STATUS {REF}") == [STATUS_EN]
        assert await h.sms(OWNER, "حالة MM-٢٠٢٦-٠٠٠١٢٣") == [STATUS_AR]  # Arabic-Indic digits
        assert await h.sms(OWNER, "status mm 2026 123") == [STATUS_EN]
        assert await h.sms(OWNER, "استعلام ۲۰۲۶۰۰۰۱۲۳") == [STATUS_AR]  # Persian digits, no prefix
        assert texts.fits_7bit(STATUS_EN)
    finally:
        await h.close()


@on_loop
async def test_non_owner_and_unknown_reference_get_byte_identical_replies(tmp_path: Path) -> None:
    """A number not registered to an existing reference learns nothing: its reply is the one an
    unknown reference gets, byte for byte, in both languages; and both count as failed look-ups."""
    with_txn = await open_harness(tmp_path / "a")
    without = await open_harness(tmp_path / "b")
    try:
        await seed(with_txn)
        for text, expected in ((f"STATUS {REF}", NOT_FOUND_EN), (f"حالة {REF}", NOT_FOUND_AR)):
            non_owner = await with_txn.sms(STRANGER, text)
            unknown = await without.sms(STRANGER, text)
            assert non_owner == unknown == [expected]
            assert [t.encode("utf-8") for t in non_owner] == [t.encode("utf-8") for t in unknown]
        counters = []
        for h in (with_txn, without):
            counters.append(await h.store.read(
                lambda c: c.execute("SELECT failures FROM txn_lookup_limit WHERE msisdn = ?", (STRANGER,)).fetchone()
            ))
        assert counters == [(2,), (2,)]
        # A second registered number does see it.
        await seed(with_txn, msisdns=f"{OWNER};{STRANGER}")
        assert await with_txn.sms(STRANGER, f"STATUS {REF}") == [STATUS_EN]
    finally:
        await with_txn.close()
        await without.close()


@on_loop
async def test_removed_number_loses_access(tmp_path: Path) -> None:
    h = await open_harness(tmp_path)
    try:
        await seed(h, msisdns=f"{OWNER};{OTHER_OWNER}")
        assert await h.sms(OTHER_OWNER, f"STATUS {REF}") == [STATUS_EN]
        await seed(h, msisdns=OWNER)
        assert await h.sms(OTHER_OWNER, f"STATUS {REF}") == [NOT_FOUND_EN]
    finally:
        await h.close()


@on_loop
async def test_missing_or_malformed_reference_gets_an_example_and_is_not_counted(tmp_path: Path) -> None:
    h = await open_harness(tmp_path)
    try:
        usage_en = "Send STATUS and your request number, e.g. STATUS MM-2026-000123"
        usage_ar = "أرسل حالة ثم رقم الطلب، مثال: حالة MM-2026-000123"
        assert await h.sms(OWNER, "STATUS") == [usage_en]
        assert await h.sms(OWNER, "حالة") == [usage_ar]
        for _ in range(15):
            assert await h.sms(STRANGER, "STATUS hello") == [usage_en]
        assert await h.store.read(lambda c: c.execute("SELECT COUNT(*) FROM txn_lookup_limit").fetchone()) == (0,)
    finally:
        await h.close()


# -- rate limit -------------------------------------------------------------------------------------------


@on_loop
async def test_failed_lookups_are_limited_politely_once_then_silently(tmp_path: Path) -> None:
    """10 failures an hour get the normal reply, the 11th a polite notice, later ones nothing,
    also after a restart; the owner of a reference is still answered; the next window is normal."""
    clock = Clock()
    h = await open_harness(tmp_path, clock=clock)
    try:
        await seed(h, msisdns=STRANGER)  # the prober owns one reference of their own
        for i in range(10):
            ref = f"MM-2026-{900000 + i}"
            assert await h.sms(STRANGER, f"STATUS {ref}") == [NOT_FOUND_EN.replace(REF, ref)]
            clock.now += 60
        [notice] = await h.sms(STRANGER, "STATUS MM-2026-900010")
        assert notice == (
            "Too many requests were not found. For your security, look-ups from this number are paused "
            "for 50 min. For help call 1111."
        )
        assert await h.sms(STRANGER, "STATUS MM-2026-900011") == []
        assert await h.sms(STRANGER, "حالة MM-2026-900012") == []
        await h.reopen()  # durable: a restart does not reset the counter
        assert await h.sms(STRANGER, "STATUS MM-2026-900013") == []
        # Owning a reference discloses nothing to anyone else: still answered.
        assert await h.sms(STRANGER, f"STATUS {REF}") == [STATUS_EN]
        # Other numbers are not affected.
        assert await h.sms(OTHER_OWNER, "STATUS MM-2026-900014") == [NOT_FOUND_EN.replace(REF, "MM-2026-900014")]
        clock.now = T0 + 3600  # the window (from the first failure) is over
        assert await h.sms(STRANGER, "STATUS MM-2026-900015") == [NOT_FOUND_EN.replace(REF, "MM-2026-900015")]
    finally:
        await h.close()


@on_loop
async def test_limit_notice_in_arabic(tmp_path: Path) -> None:
    config = dataclasses.replace(TransactionsConfig(), max_failed_lookups=1)
    h = await open_harness(tmp_path, config)
    try:
        assert await h.sms(STRANGER, f"حالة {REF}") == [NOT_FOUND_AR]
        [notice] = await h.sms(STRANGER, f"حالة {REF}")
        assert notice == (
            "لم يتم العثور على طلبات كثيرة. حفاظا على أمانك أوقف الاستعلام من هذا الرقم لمدة 60 دقيقة. "
            "للمساعدة اتصل على 1111."
        )
        assert await h.sms(STRANGER, f"حالة {REF}") == []
    finally:
        await h.close()


# -- MY -----------------------------------------------------------------------------------------------


@on_loop
async def test_my_lists_open_requests_most_recent_first(tmp_path: Path) -> None:
    clock = Clock()
    h = await open_harness(tmp_path, clock=clock)
    try:
        assert await h.sms(OWNER, "MY") == ["No open requests are registered to this number."]
        assert await h.sms(OWNER, "طلباتي") == ["لا توجد طلبات مفتوحة مسجلة لهذا الرقم."]
        await h.feed(ref="MM-2026-000001", service="parking_permit", status="received", msisdns=OWNER)
        clock.now += 60
        await h.feed(ref="MM-2026-000002", service="lease_contract_renewal", status="completed", msisdns=OWNER)
        clock.now += 60
        await h.feed(ref="MM-2026-000003", service="general_request", status="awaiting_documents",
                     msisdns=f"{OWNER};{OTHER_OWNER}")
        clock.now += 60
        await h.feed(ref="MM-2026-000004", service="parking_permit", status="received", msisdns=OTHER_OWNER)
        clock.now += 60
        await h.feed(ref="MM-2026-000001", service="parking_permit", status="approved")  # now the most recent
        assert await h.sms(OWNER, "MY") == [
            "Your open requests:\n"
            + "MM-2026-000001 Parking permit: Approved\n"
            + "MM-2026-000003 General service request: Awaiting documents"
        ]
        assert await h.sms(OWNER, "طلباتي") == [
            "طلباتك المفتوحة:\n"
            + "MM-2026-000001 تصريح مواقف: تمت الموافقة\n"
            + "MM-2026-000003 طلب خدمة عامة: بانتظار المستندات"
        ]
    finally:
        await h.close()


@on_loop
async def test_my_fits_in_two_parts_and_says_how_many_more(tmp_path: Path) -> None:
    clock = Clock()
    h = await open_harness(tmp_path, clock=clock)
    try:
        for i in range(1, 21):
            clock.now += 60
            await h.feed(ref=f"MM-2026-{i:06d}", service="commercial_licence_renewal", status="under_review",
                         msisdns=OWNER)
        for text in ("MY", "طلباتي"):
            [reply] = await h.sms(OWNER, text)
            assert texts.sms_parts(reply) <= 2
            lines = reply.split("\n")
            shown = lines[1:-1]
            assert shown[0].startswith("MM-2026-000020") and shown[1].startswith("MM-2026-000019")
            more = 20 - len(shown)
            assert more > 0 and lines[-1] in (f"and {more} more", f"وطلبات أخرى: {more}")
            # As many as fit: one more line would not.
            assert len(shown) >= 3
    finally:
        await h.close()


# -- notifications -----------------------------------------------------------------------------------------


async def notices(h) -> list[tuple]:
    return [row for row in await h.outbound_rows() if row[4] == NOTICE_KIND]


@on_loop
async def test_status_change_notifies_each_number_exactly_once(tmp_path: Path) -> None:
    """One SMS per registered number per change, committed with the change and handed to the
    queue; an identical re-feed, a note change and a restart send nothing more."""
    h = await open_harness(tmp_path)
    try:
        result = await seed(h, status="received", msisdns=f"{OWNER};{OTHER_OWNER}")
        assert (result.outcome, result.notifications) == (UpsertOutcome.INSERTED, 0)  # on_create is off
        assert h.queued == []
        result = await seed(h, status="under_review", msisdns=f"{OWNER};{OTHER_OWNER}")
        assert (result.outcome, result.status_changed, result.notifications) == (UpsertOutcome.UPDATED, True, 2)
        rows = await notices(h)
        assert [(r[2], r[3], r[5]) for r in rows] == [(OWNER, "90092", "queued"), (OTHER_OWNER, "90092", "queued")]
        assert [o.id for o in h.queued] == [r[0] for r in rows]  # handed to the queue, after commit
        assert rows[0][6] == (
            "بلدية مسقط: طلبك MM-2026-000123 (تجديد رخصة بناء) أصبح: قيد المراجعة. زيارة الموقع في 15 مارس. "
            "لإيقاف الرسائل أرسل إيقاف إلى 90092."
        )
        assert (await seed(h, status="under_review", msisdns=f"{OWNER};{OTHER_OWNER}")).outcome is UpsertOutcome.UNCHANGED
        result = await h.feed(ref=REF, service="building_permit_renewal", status="under_review", note_en="New note")
        assert (result.outcome, result.notifications) == (UpsertOutcome.UPDATED, 0)
        await h.reopen()
        assert (await seed(h, status="under_review", msisdns=f"{OWNER};{OTHER_OWNER}")).outcome is UpsertOutcome.UPDATED
        assert await h.service.dispatch_pending() == 0
        assert len(await notices(h)) == 2 and len(h.queued) == 2
    finally:
        await h.close()


@on_loop
async def test_notification_uses_the_carrier_and_language_last_used(tmp_path: Path) -> None:
    """A number that wrote to us from Ooredoo in English is notified there in English; one that
    never wrote gets the default carrier and language."""
    h = await open_harness(tmp_path)
    try:
        await seed(h, status="received", msisdns=f"{OWNER};{OTHER_OWNER}")
        await h.sms(OWNER, f"STATUS {REF}", carrier="ooredoo")
        await seed(h, status="approved", msisdns=f"{OWNER};{OTHER_OWNER}")
        rows = {r[2]: r for r in await notices(h)}
        assert rows[OWNER][1] == "ooredoo"
        assert rows[OWNER][6] == (
            "Muscat Municipality: request MM-2026-000123 (Building permit renewal) is now Approved. "
            "Site visit on 15 March. To stop these SMS send STOP to 90092."
        )
        assert rows[OTHER_OWNER][1] == "omantel" and "أصبح: تمت الموافقة" in rows[OTHER_OWNER][6]
        for row in rows.values():
            assert texts.sms_parts(row[6]) <= 2
    finally:
        await h.close()


@on_loop
async def test_long_note_is_shortened_to_fit(tmp_path: Path) -> None:
    h = await open_harness(tmp_path)
    try:
        await h.feed(ref=REF, service="general_request", status="received", msisdns=OWNER, note_en="word " * 90)
        [reply] = await h.sms(OWNER, f"STATUS {REF}")
        assert texts.sms_parts(reply) == 2 and reply.endswith("...")
        await h.feed(ref=REF, service="general_request", status="approved", note_en="word " * 90)
        [row] = await notices(h)
        assert texts.sms_parts(row[6]) <= 2 and "..." in row[6]
    finally:
        await h.close()


@on_loop
async def test_opt_out_is_honoured_and_opt_in_restores(tmp_path: Path) -> None:
    h = await open_harness(tmp_path)
    try:
        await seed(h, status="received", msisdns=f"{OWNER};{OTHER_OWNER}")
        assert await h.sms(OWNER, "STOP") == [
            "You will no longer get SMS updates on your requests. To turn them on again send START to 90092."
        ]
        await seed(h, status="under_review", msisdns=f"{OWNER};{OTHER_OWNER}")
        assert [r[2] for r in await notices(h)] == [OTHER_OWNER]
        # Queries still work: STOP is about notifications only.
        assert await h.sms(OWNER, f"STATUS {REF}") == [STATUS_EN]
        assert await h.sms(OWNER, "تشغيل") == ["تم تفعيل رسائل تحديث طلباتك. لإيقافها أرسل إيقاف إلى 90092."]
        await seed(h, status="approved", msisdns=f"{OWNER};{OTHER_OWNER}")
        assert [r[2] for r in await notices(h)] == [OTHER_OWNER, OWNER, OTHER_OWNER]
        await h.reopen()  # the choice is durable
        assert await h.sms(OTHER_OWNER, "إيقاف") == ["لن تصلك رسائل تحديث طلباتك. لإعادة تفعيلها أرسل تشغيل إلى 90092."]
        await h.reopen()
        await seed(h, status="completed", msisdns=f"{OWNER};{OTHER_OWNER}")
        assert [r[2] for r in await notices(h)][3:] == [OWNER]
    finally:
        await h.close()


@on_loop
async def test_notices_written_outside_the_gateway_are_sent_once_by_it(tmp_path: Path) -> None:
    """The importer (no outbound queue) leaves notices pending with the change; the gateway turns
    each into exactly one MT, also when asked again or after a restart; a number that opted out
    in between is left out."""
    importer = await open_harness(tmp_path, in_gateway=False)
    await seed(importer, status="received", msisdns=f"{OWNER};{OTHER_OWNER}")
    await seed(importer, status="approved", msisdns=f"{OWNER};{OTHER_OWNER}")
    assert await notices(importer) == []
    pending = await importer.store.read(lambda c: c.execute("SELECT msisdn, state FROM txn_notice").fetchall())
    assert pending == [(OWNER, "pending"), (OTHER_OWNER, "pending")]
    await importer.close()

    gateway = await open_harness(tmp_path)
    try:
        await gateway.sms(OTHER_OWNER, "STOP", carrier="ooredoo")
        assert await gateway.service.dispatch_pending() == 1
        assert [(r[1], r[2]) for r in await notices(gateway)] == [("omantel", OWNER)]
        assert await gateway.service.dispatch_pending() == 0
        await gateway.reopen()
        assert await gateway.service.dispatch_pending() == 0
        states = await gateway.store.read(lambda c: c.execute("SELECT msisdn, state FROM txn_notice").fetchall())
        assert states == [(OWNER, "queued"), (OTHER_OWNER, "suppressed")]
        assert len(gateway.queued) == 1
    finally:
        await gateway.close()


@on_loop
async def test_on_create_notifies_new_transactions_when_configured(tmp_path: Path) -> None:
    config = dataclasses.replace(TransactionsConfig(), notifications=NotificationConfig(on_create=True))
    h = await open_harness(tmp_path, config)
    try:
        assert (await seed(h, status="received")).notifications == 1
    finally:
        await h.close()


# -- the feed's rules ---------------------------------------------------------------------------------------


@on_loop
async def test_out_of_order_updates_are_refused(tmp_path: Path) -> None:
    h = await open_harness(tmp_path)
    try:
        await seed(h, status="approved", updated_at="2026-03-12 10:00")
        result = await seed(h, status="received", updated_at="2026-03-12T09:00:00+04:00")
        assert result.outcome is UpsertOutcome.STALE
        assert result.reason == "older than the stored update of 2026-03-12T10:00:00+04:00"
        detail = await h.service.get(REF)
        assert detail is not None and detail.transaction.status == "approved"
        assert (await seed(h, status="completed", updated_at="2026-03-12 10:20")).outcome is UpsertOutcome.UPDATED
    finally:
        await h.close()


@on_loop
async def test_a_new_transaction_needs_a_number(tmp_path: Path) -> None:
    h = await open_harness(tmp_path)
    try:
        result = await h.feed(ref=REF, service="general_request", status="received")
        assert (result.outcome, result.reason) == (UpsertOutcome.REJECTED, "msisdns: required for a new transaction")
        assert await h.service.get(REF) is None
    finally:
        await h.close()


@on_loop
async def test_a_bare_reference_works_with_a_default_route(tmp_path: Path) -> None:
    """With an optional `keyword = "*"` route on 90092, a message that is only a reference is a STATUS."""
    from handlers.transactions.handler import TransactionsHandler
    from smsgw.config import RouteConfig
    from smsgw.router import Router
    from tests.txn_helpers import ROUTES

    h = await open_harness(tmp_path)
    try:
        await seed(h)
        default = RouteConfig(keyword="*", aliases=(), handler="transactions", short_codes=("90092",))
        h.router = Router((*ROUTES, default), {"transactions": TransactionsHandler(h.service)})
        assert await h.sms(OWNER, "mm-2026-000123") == [STATUS_EN]
        assert await h.sms(OWNER, "hello") == ["Send STATUS and your request number, e.g. STATUS MM-2026-000123"]
    finally:
        await h.close()
