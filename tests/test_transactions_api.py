"""PUT/GET /api/v1/transactions/{ref} over a real loopback port, on a real store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from handlers.transactions.api import transaction_routes
from handlers.transactions.service import NOTICE_KIND
from smsgw.admin.server import AdminService, build_admin_service
from smsgw.config import AdminConfig, AdminToken
from tests.http_helpers import http
from tests.txn_helpers import Harness, on_loop, open_harness

pytestmark = pytest.mark.usefixtures("store_engine")

ADMIN = "backoffice-token-abcdefghijklmnop"
READER = "monitoring-token-abcdefghijklmnop"
CONFIG = AdminConfig(enabled=True, host="127.0.0.1", port=0, tokens=(
    AdminToken(name="backoffice", token=ADMIN, role="admin"),
    AdminToken(name="monitoring", token=READER, role="read-only"),
))
URL = "/api/v1/transactions/MM-2026-000123"
OWNER = "96891234567"
BODY = {"service": "building_permit_renewal", "status": "received", "msisdns": ["+968 9123 4567"],
        "note_en": "Papers received", "note_ar": "تم استلام الأوراق"}


class Api:
    def __init__(self, harness: Harness, service: AdminService) -> None:
        self.h = harness
        self.service = service

    async def __call__(self, method: str, path: str = URL, **kwargs):  # type: ignore[no-untyped-def]
        return await http(self.service.port, method, path, **kwargs)

    async def nothing_changed(self) -> bool:
        rows = await self.h.store.read(lambda c: c.execute(
            "SELECT (SELECT COUNT(*) FROM txn), (SELECT COUNT(*) FROM txn_change),"
            " (SELECT COUNT(*) FROM txn_notice), (SELECT COUNT(*) FROM outbound)").fetchone())
        return rows == (0, 0, 0, 0) and self.h.queued == []


async def _start(tmp_path: Path) -> Api:
    harness = await open_harness(tmp_path)
    service = build_admin_service(CONFIG, None, transaction_routes(harness.service, harness.clock), reactor=reactor)
    service.startService()
    return Api(harness, service)


async def _stop(api: Api) -> None:
    await api.service.stopService().asFuture(asyncio.get_running_loop())
    await api.h.close()


@pytest_twisted.async_yield_fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    # The fixture runs as a Twisted coroutine; the store is asyncio code, hence the bridges.
    started = await Deferred.fromFuture(asyncio.ensure_future(_start(tmp_path)))
    yield started
    await Deferred.fromFuture(asyncio.ensure_future(_stop(started)))


@on_loop
async def test_no_token_or_wrong_token_is_401_and_changes_nothing(api: Api) -> None:
    for kwargs in ({}, {"token": "backoffice-token-abcdefghijklmnoX"}, {"authorization": f"Basic {ADMIN}"}):
        result = await api("PUT", body=BODY, **kwargs)
        assert (result.status, result.json["error"]["code"]) == (401, "unauthorized")
        assert (await api("GET", **kwargs)).status == 401
    assert await api.nothing_changed()


@on_loop
async def test_read_only_token_cannot_put(api: Api) -> None:
    result = await api("PUT", body=BODY, token=READER)
    assert (result.status, result.json["error"]["code"]) == (403, "forbidden")
    assert await api.nothing_changed()


@on_loop
async def test_bad_input_is_400_with_the_field(api: Api) -> None:
    cases = [
        ("/api/v1/transactions/not-a-ref", BODY, "ref", "'not-a-ref' is not a reference like MM-2026-000123"),
        (URL, {**BODY, "status": "done"}, "status", 'status: unknown status "done"'),
        (URL, {**BODY, "service": None}, "service", "service: is required"),
        (URL, {**BODY, "msisdns": ["12345"]}, "msisdns", 'msisdns: "12345" is not a valid phone number'),
        (URL, {**BODY, "msisdns": "no"}, "msisdns", 'msisdns: "no" is not a valid phone number'),
        (URL, {**BODY, "msisdns": [968]}, "msisdns", "msisdns: must be a list of numbers as text"),
        (URL, {**BODY, "ref": "MM-2026-000124"}, "ref", "the reference belongs in the URL"),
        (URL, {**BODY, "colour": "red"}, "colour", "colour: unknown field"),
        (URL, {**BODY, "note_en": 5}, "note_en", "note_en: must be text or null"),
        (URL, {**BODY, "updated_at": "soon"}, "updated_at", "updated_at: 'soon' is not a date and time"),
        (URL, {key: v for key, v in BODY.items() if key != "msisdns"}, "msisdns",
         "msisdns: required for a new transaction"),
    ]
    for path, body, field, message in cases:
        result = await api("PUT", path, body=body, token=ADMIN)
        assert result.status == 400, (body, result.json)
        assert result.json["error"]["field"] == field
        assert result.json["error"]["message"].startswith(message), result.json
    result = await api("PUT", body=b"{", token=ADMIN)
    assert (result.status, result.json["error"]["code"]) == (400, "invalid_json")
    assert await api.nothing_changed()


@on_loop
async def test_put_creates_updates_and_notifies_once(api: Api) -> None:
    """201 on create; a status change is 200 with one notification queued per number; the same
    PUT again is 'unchanged' and queues nothing."""
    created = await api("PUT", body=BODY, token=ADMIN)
    assert created.status == 201
    assert created.json["result"] == "inserted" and created.json["notifications"] == 0
    assert created.json["msisdns"] == [OWNER]
    assert created.json["changes"][0]["source"] == "api:backoffice"

    changed = await api("PUT", body={**BODY, "status": "under_review", "note_ar": None}, token=ADMIN)
    assert changed.status == 200
    assert (changed.json["result"], changed.json["notifications"]) == ("updated", 1)
    assert changed.json["note_ar"] is None and changed.json["note_en"] == "Papers received"
    [queued] = api.h.queued
    assert (queued.msisdn, queued.carrier, queued.short_code, queued.kind) == (OWNER, "omantel", "90092", NOTICE_KIND)
    rows = await api.h.outbound_rows()
    assert [(r[0], r[5]) for r in rows] == [(queued.id, "queued")]  # committed before it was handed over

    again = await api("PUT", body={**BODY, "status": "under_review", "note_ar": None}, token=ADMIN)
    assert (again.status, again.json["result"], again.json["notifications"]) == (200, "unchanged", 0)
    assert len(api.h.queued) == 1


@on_loop
async def test_get_returns_the_transaction_masked_for_read_only(api: Api) -> None:
    await api("PUT", body={**BODY, "updated_at": "2026-03-12 09:15"}, token=ADMIN)
    full = await api("GET", "/api/v1/transactions/mm2026000123", token=ADMIN)
    assert full.status == 200
    assert full.json == {
        "ref": "MM-2026-000123",
        "service": "building_permit_renewal",
        "service_name": {"en": "Building permit renewal", "ar": "تجديد رخصة بناء"},
        "status": "received",
        "status_name": {"en": "Received", "ar": "تم الاستلام"},
        "open": True,
        "note_en": "Papers received",
        "note_ar": "تم استلام الأوراق",
        "updated_at": "2026-03-12T09:15:00+04:00",
        "created_at": "2026-03-12T10:30:00+04:00",
        "msisdns": [OWNER],
        "notifications_off": [],
        "changes": [{"from": None, "to": "received", "updated_at": "2026-03-12T09:15:00+04:00",
                     "changed_at": "2026-03-12T10:30:00+04:00", "source": "api:backoffice"}],
    }
    masked = await api("GET", token=READER)
    assert masked.status == 200 and masked.json["msisdns"] == ["9689****567"]
    missing = await api("GET", "/api/v1/transactions/MM-2026-999999", token=READER)
    assert (missing.status, missing.json["error"]) == (404, {"code": "not_found", "message": "no transaction MM-2026-999999"})


@on_loop
async def test_stale_put_is_409_and_changes_nothing(api: Api) -> None:
    await api("PUT", body={**BODY, "status": "approved", "updated_at": "2026-03-12T10:00:00+04:00"}, token=ADMIN)
    stale = await api("PUT", body={**BODY, "status": "received", "updated_at": "2026-03-12T08:00:00+04:00"}, token=ADMIN)
    assert stale.status == 409
    assert stale.json["error"]["code"] == "stale" and stale.json["error"]["field"] == "updated_at"
    assert (await api("GET", token=ADMIN)).json["status"] == "approved"
