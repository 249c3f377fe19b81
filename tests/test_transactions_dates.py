"""Dates and echoed input on the back office's feed: a date outside a sane range is refused with
its field named, a bad date already in the store never breaks a transaction (GET, STATUS by SMS),
and no error quotes more than a short prefix of what was sent.  Gateway over real SMPP, feed
over real loopback HTTP, the store file changed on disk as an older version would have left it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import engines
from tests.http_helpers import http
from tests.stack import Stack, start_stack
from tests.txn_helpers import on_loop

pytestmark = pytest.mark.usefixtures("store_engine")

CODE = "90092"
REF = "MM-2026-000123"
OWNER = "96891234567"
URL = f"/api/v1/transactions/{REF}"
BODY = {"service": "building_permit_renewal", "status": "under_review", "msisdns": [OWNER],
        "updated_at": "2026-03-12T10:30:00+04:00"}
#: 0001-01-01T00:00:00 in Muscat: what a PUT of that date stored before dates were checked.
YEAR_ONE = -62135611200.0


def admin(stack: Stack) -> str:
    return next(t.token for t in stack.config.admin.tokens if t.role == "admin")


def port(stack: Stack) -> int:
    assert stack.gateway.admin is not None
    return stack.gateway.admin.port


@pytest.mark.parametrize("when, says", [
    ("0001-01-01T00:00:00", "before 2000-01-01"),
    ("1999-12-31T23:59:59+04:00", "before 2000-01-01"),
    ("9999-12-31T23:59:59-14:00", "is in the future"),
    ("2026-02-30T10:00:00", "is not a date and time"),
])
@on_loop
async def test_a_date_outside_a_sane_range_is_400_naming_the_field(tmp_path: Path, when: str, says: str) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        result = await http(port(stack), "PUT", URL, token=admin(stack), body={**BODY, "updated_at": when})
        assert result.status == 400, result.json
        assert result.json["error"]["field"] == "updated_at" and says in result.json["error"]["message"]
        assert (await http(port(stack), "GET", URL, token=admin(stack))).status == 404  # nothing stored
    finally:
        await stack.stop()


@on_loop
async def test_a_bad_date_already_stored_does_not_break_the_transaction(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        assert (await http(port(stack), "PUT", URL, token=admin(stack), body=BODY)).status == 201
        # As an earlier version stored it: straight into the file, as another process would.
        engines.run_statements(stack.config.store_location, [
            ("UPDATE txn SET updated_at = ? WHERE ref = ?", (YEAR_ONE, REF)),
            ("UPDATE txn_change SET updated_at = ? WHERE ref = ?", (YEAR_ONE, REF)),
        ])
        got = await http(port(stack), "GET", URL, token=admin(stack))
        assert got.status == 200, got.json
        assert got.json["status"] == "under_review" and got.json["updated_at"] is None
        assert got.json["changes"][0]["updated_at"] is None
        [reply] = await stack.texts("omantel", OWNER, CODE, f"STATUS {REF}")
        assert reply == f"{REF} Building permit renewal: Under review."
        # And the feed can put it right: a correct date is not "older" than the broken one.
        fixed = await http(port(stack), "PUT", URL, token=admin(stack), body={**BODY, "status": "approved"})
        assert fixed.status == 200 and fixed.json["updated_at"] == "2026-03-12T10:30:00+04:00"
    finally:
        await stack.stop()


@on_loop
async def test_errors_quote_only_a_short_prefix_of_what_was_sent(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, carriers=["omantel"])
    try:
        huge = "MM-" + "7" * 15_997  # a 16,000-character reference
        result = await http(port(stack), "GET", f"/api/v1/transactions/{huge}", token=admin(stack))
        assert (result.status, result.json["error"]["field"]) == (400, "ref")
        assert len(result.raw) < 400 and "16000 characters" in result.json["error"]["message"]
        for field, value in (("status", "x" * 16_000), ("msisdns", ["9" * 16_000]),
                             ("updated_at", "2" * 16_000), ("s" * 16_000, 1)):
            body = {**BODY, field: value}
            result = await http(port(stack), "PUT", URL, token=admin(stack), body=body)
            assert result.status == 400, (field[:10], result.json)
            assert len(result.raw) < 600, (field[:10], len(result.raw))
        nested = await http(port(stack), "PUT", URL, token=admin(stack), body=b"[" * 50_000)
        assert (nested.status, nested.json["error"]["code"]) == (400, "invalid_json")
    finally:
        await stack.stop()
