"""Retention: what is deleted when, what is never touched, in batches; `smsgw store stats`; and a
gateway bound over real SMPP whose store forgets old messages by itself."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from handlers.parking.retention import RULES as PARKING_RULES
from handlers.parking.schema import COMPONENT as PARKING
from handlers.transactions.retention import RULES as TXN_RULES
from handlers.transactions.schema import SCHEMA as TRANSACTIONS
from smsgw.admin.state import OPERATOR_SCHEMA
from smsgw.retention import CORE_RULES, DAY, RetentionConfig, RetentionService, stats_main
from smsgw.store import NewMo, NewMoPart, NewMt, Store
from smsgw.ussd.sessions import SCHEMA as USSD_SESSIONS
from tests import engines
from tests.http_helpers import http
from tests.stack import eventually, on_loop, start_stack

pytestmark = pytest.mark.usefixtures("store_engine")

NOW = 1_800_000_000.0
RULES = (*CORE_RULES, *PARKING_RULES, *TXN_RULES)
CONFIG = RetentionConfig(messages_days=90, receipts_days=7, accounting_days=400, part_redelivery_s=3600,
                         batch_rows=200, pause_s=0.001)


def clock_at(now: float) -> Clock:
    clock = Clock()
    clock.advance(now)
    return clock


async def open_store(tmp_path: Path) -> Store:
    return await Store.open(engines.location(tmp_path), clock=lambda: NOW,
                            components=[USSD_SESSIONS, OPERATOR_SCHEMA, PARKING, TRANSACTIONS])


async def exchange(store: Store, msisdn: str, at: float, *, reply_state: str = "delivered",
                   processed: bool = True) -> tuple[int, int | None]:
    """An MO at `at` and, if processed, its reply, submitted and receipted: (inbound id, outbound id)."""
    inbound, _ = await store.accept_mo(NewMo("omantel", f"m{msisdn}{at}", msisdn, "90091", "PARK 1234AB 30", 0, at))
    assert inbound is not None
    if not processed:
        return inbound.id, None
    [mt] = await store.complete_mo(inbound.id, [NewMt("omantel", msisdn, "90091", "Parked until 11:00", at,
                                                      at + 86400)])
    if reply_state != "queued":
        await store.record_part_sent(mt.id, 1, 1, f"s{mt.id}", f"s{mt.id}", at + 1)
        await store.record_dlr("omantel", f"s{mt.id}", "DELIVRD", None, True, "id:x stat:DELIVRD", at + 2)
    return inbound.id, mt.id


async def count(store: Store, sql: str, *args: Any) -> int:
    return await store.read(lambda c: c.execute(sql, args).fetchone()[0])


@on_loop
async def test_a_sweep_removes_what_is_past_its_window_and_never_live_work(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        old = NOW - 91 * DAY
        recent = NOW - 89 * DAY
        old_pair = await exchange(store, "96891000001", old)
        recent_pair = await exchange(store, "96891000002", recent)
        unprocessed, _ = await exchange(store, "96891000003", old, processed=False)
        _, still_queued = await exchange(store, "96891000004", old, reply_state="queued")
        await store.record_dlr("omantel", "nobody", "DELIVRD", None, True, "raw", NOW - 8 * DAY)
        await store.record_dlr("omantel", "nobody-yet", "DELIVRD", None, True, "raw", NOW - 6 * DAY)
        # A long MO assembled two hours ago: its parts are past the one-hour redelivery window.
        for seq in (1, 2):
            await store.accept_mo_part(
                NewMoPart("omantel", None, "96891000005", "90091", 0, NOW - 7200, 9, 2, seq, b"ab"),
                lambda parts, total: "".join(p.decode() for _, p in sorted(parts.items())) if len(parts) == total
                else None)

        def feature_rows(conn: sqlite3.Connection) -> None:
            for sid, end_at in ((1, NOW - 401 * DAY), (2, NOW - 399 * DAY)):
                conn.execute(
                    "INSERT INTO parking_session (id, ticket, plate, zone, carrier, msisdn, short_code, lang, start_at,"
                    " end_at, tariff_baisa, unit_minutes, state, created_at, updated_at) VALUES"
                    " (?, ?, '1234AB', 'M1', 'omantel', '96891000001', '90091', 'en', ?, ?, 100, 30, 'active', ?, ?)",
                    (sid, f"T{sid}", end_at - 1800, end_at, end_at - 1800, end_at))
                conn.execute(
                    "INSERT INTO parking_ledger (session_id, kind, amount_baisa, carrier, msisdn, at, local_date,"
                    " local_time) VALUES (?, 'charge', 100, 'omantel', '96891000001', ?, '2026-01-01', 'x')",
                    (sid, end_at - 1800))
            charge = conn.execute("SELECT id FROM parking_ledger WHERE session_id = 1").fetchone()[0]
            conn.execute(
                "INSERT INTO parking_ledger (session_id, kind, amount_baisa, carrier, msisdn, charge_id, at,"
                " local_date, local_time) VALUES (1, 'credit', 50, 'omantel', '96891000001', ?, ?, '2026-01-01', 'x')",
                (charge, NOW - 401 * DAY))
            conn.execute("INSERT INTO parking_request (request_id, operation, outcome, at) VALUES (1, 'book', '{}', ?)",
                         (old,))
            for msisdn, expires_at in (("96891000030", old), ("96891000031", NOW + 60)):
                conn.execute("INSERT INTO parking_pending (msisdn, plate, minutes, extend, quoted_baisa, lang,"
                             " created_at, expires_at) VALUES (?, '1234AB', 30, 0, 100, 'en', ?, ?)",
                             (msisdn, expires_at - 120, expires_at))
            conn.execute("INSERT INTO txn (ref, service, status, updated_at, created_at) VALUES"
                         " ('MM-2026-000001', 'x', 'received', ?, ?)", (old, old))
            conn.execute("INSERT INTO txn_change (id, ref, new_status, updated_at, changed_at, source) VALUES"
                         " (1, 'MM-2026-000001', 'received', ?, ?, 'test')", (old, old))
            for msisdn, seen_at, opted_out in (("96891000020", old, 0), ("96891000021", old, 1),
                                               ("96891000022", old, 0), ("96891000023", recent, 0)):
                conn.execute("INSERT INTO txn_subscriber (msisdn, carrier, lang, seen_at, opted_out) VALUES"
                             " (?, 'omantel', 'en', ?, ?)", (msisdn, seen_at, opted_out))
            conn.execute("INSERT INTO txn_msisdn (msisdn, ref) VALUES ('96891000022', 'MM-2026-000001')")
            for nid, state in ((1, "queued"), (2, "pending")):
                conn.execute("INSERT INTO txn_notice (id, change_id, ref, msisdn, text, created_at, state) VALUES"
                             " (?, 1, 'MM-2026-000001', ?, 'your request', ?, ?)", (nid, f"9689100001{nid}", old, state))

        await store.write(feature_rows)
        service = RetentionService(store, CONFIG, RULES, clock_at(NOW))
        service.running = True  # as under a started gateway, without its timer
        removed = await service.sweep()
        # Old MOs: the answered one, and the one whose reply is still queued (the reply stays).
        assert removed["outbound"] == 1 and removed["inbound"] == 2 and removed["dlr_unmatched"] == 1
        assert removed["mo_part_done"] == 1 and removed["parking_session"] == 1 and removed["txn_notice"] == 1

        ids = await store.read(lambda c: {
            "inbound": sorted(r[0] for r in c.execute("SELECT id FROM inbound")),
            "outbound": sorted(r[0] for r in c.execute("SELECT id FROM outbound")),
        })
        assert old_pair[0] not in ids["inbound"] and old_pair[1] not in ids["outbound"]
        assert recent_pair[0] in ids["inbound"] and recent_pair[1] in ids["outbound"]
        assert unprocessed in ids["inbound"]  # acknowledged, not yet answered: redone at start
        assert still_queued in ids["outbound"]  # still to be sent
        assert await count(store, "SELECT COUNT(*) FROM outbound WHERE id = ? AND inbound_id IS NULL", still_queued) == 1
        assert await count(store, "SELECT COUNT(*) FROM mt_part WHERE outbound_id = ?", old_pair[1]) == 0
        assert await count(store, "SELECT COUNT(*) FROM dlr WHERE outbound_id = ?", old_pair[1]) == 0
        assert await count(store, "SELECT COUNT(*) FROM dlr WHERE outbound_id = ?", recent_pair[1]) == 1
        assert await count(store, "SELECT COUNT(*) FROM dlr WHERE outbound_id IS NULL") == 1  # the 6-day one
        assert await count(store, "SELECT COUNT(*) FROM mo_part_done") == 0
        assert await count(store, "SELECT COUNT(*) FROM parking_session") == 1  # within the accounting period
        assert await count(store, "SELECT COUNT(*) FROM parking_ledger") == 1
        assert await count(store, "SELECT COUNT(*) FROM parking_request") == 0
        assert await count(store, "SELECT msisdn FROM parking_pending") == "96891000031"  # still open
        assert await count(store, "SELECT state FROM txn_notice") == "pending"  # not sent yet: kept
        assert await count(store, "SELECT COUNT(*) FROM txn") == 1  # the back office's record
        # Forgotten: a number that only looked something up long ago.  Kept: an opt-out, a number
        # registered to a transaction (its notices need its carrier and language), a recent one.
        kept = await store.read(lambda c: sorted(m for (m,) in c.execute("SELECT msisdn FROM txn_subscriber")))
        assert kept == ["96891000021", "96891000022", "96891000023"]
        # Nothing older than its window is left of the old number.
        assert await count(store, "SELECT COUNT(*) FROM inbound WHERE msisdn = '96891000001'") == 0
        assert await count(store, "SELECT COUNT(*) FROM outbound WHERE msisdn = '96891000001'") == 0
        # A second sweep finds nothing more.
        assert sum((await service.sweep()).values()) == 0
    finally:
        await store.close()


@on_loop
async def test_pruning_goes_in_batches_of_batch_rows(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        for i in range(46):  # the newest stays (its id must not be given out again): 45 to remove
            await exchange(store, f"968910{i:05d}", NOW - 100 * DAY + i)
        service = RetentionService(store, RetentionConfig(batch_rows=10, pause_s=0.001), CORE_RULES, clock_at(NOW))
        service.running = True
        commits = store.commits
        removed = await service.sweep()
        assert removed["outbound"] == 45 and removed["inbound"] == 45
        assert removed["mo_seen"] == 46  # every fingerprint is past its day, the newest MO's too
        # 5 batches per rule for 45 or 46 keys (the last one short), one each for the rules with
        # nothing to remove (unmatched receipts, assembled parts, USSD dialogues), and one to
        # create the indexes.
        assert service.last_sweep["batches"] == 5 + 5 + 5 + 3
        assert store.commits - commits >= 19
    finally:
        await store.close()


@on_loop
async def test_store_stats_shows_rows_sizes_oldest_rows_and_windows(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await exchange(store, "96891000001", NOW - 5 * DAY)
    await exchange(store, "96891000002", NOW - 1 * DAY)
    await store.close()
    where = engines.location(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert stats_main(["--store", where, "--json"], out, err) == 0, err.getvalue()
    report = json.loads(out.getvalue())
    tables = report["tables"]
    assert tables["inbound"]["rows"] == 2 and tables["inbound"]["oldest"] == NOW - 5 * DAY
    assert tables["inbound"]["bytes"] > 0 and tables["inbound"]["windows"] == ["messages"]
    assert tables["mt_part"]["windows"] == ["messages"] and "receipts" in tables["dlr"]["windows"]
    assert tables["parking_ledger"]["windows"] == ["accounting"] and tables["txn"]["windows"] == []
    assert tables["outbound"]["rows"] == 2 and report["retention"]["messages"] == 90 * DAY
    if engines.is_postgres():
        assert report["database_bytes"] > 0 and report["store"].startswith("postgresql://")
    else:
        assert report["pages"] > 0 and report["files"][where] > 0
    out = io.StringIO()
    assert stats_main(["--store", where], out, err) == 0, err.getvalue()
    text = out.getvalue()
    assert "inbound" in text and "messages 90.0 d" in text and "accounting 3650.0 d" in text
    assert stats_main(["--store", str(tmp_path / "absent.sqlite3")], io.StringIO(), err) == 2


@pytest.mark.engine("sqlite")
def test_retention_keys_are_checked_with_file_line_and_key() -> None:
    from smsgw.config import ConfigError, parse_config
    from tests.test_config import BASE, FILE

    config = parse_config(BASE + "\n[retention]\nmessages_days = 30\nbatch_rows = 50\n", FILE)
    assert (config.retention.messages_days, config.retention.batch_rows) == (30.0, 50)
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "\n[retention]\nmessages_days = 0\nbatch_size = 50\n", FILE)
    text = str(info.value)
    assert "retention.messages_days: must be a number greater than 0" in text
    assert 'retention.batch_size: unknown key; did you mean "batch_rows"?' in text


@on_loop
async def test_a_running_gateway_forgets_old_messages_by_itself(tmp_path: Path) -> None:
    """Over real SMPP: with a window of one second and a sweep every 0.2 s, a HELP exchange is
    gone from the store soon after (all but the newest rows, which keep ids from being reused),
    counted in /metrics, and the next message is answered."""
    retention = RetentionConfig(messages_days=1.0 / DAY, interval_s=0.2, pause_s=0.001)
    stack = await start_stack(tmp_path, carriers=["omantel"], retention=retention)
    try:
        await stack.texts("omantel", "96891230001", "90091", "HELP")
        await stack.texts("omantel", "96891230002", "90091", "HELP")
        store = stack.gateway.store
        assert store is not None
        assert await count(store, "SELECT COUNT(*) FROM inbound") == 2
        await eventually(lambda: _only_the_newest(store), timeout=10)
        assert await count(store, "SELECT COUNT(*) FROM mt_part") == 1
        assert await count(store, "SELECT COUNT(*) FROM inbound WHERE msisdn = '96891230001'") == 0
        assert stack.gateway.admin is not None
        token = next(t.token for t in stack.config.admin.tokens if t.role == "read-only")
        metrics = (await http(stack.gateway.admin.port, "GET", "/metrics", token=token)).raw.decode()
        for rule in ("inbound", "outbound"):  # several nodes label every sample with the node too
            assert re.search(rf'smsgw_retention_removed_total{{[^}}]*rule="{rule}"[^}}]*}} 1\.0', metrics), rule
        assert len(await stack.texts("omantel", "96891230001", "90091", "HELP")) == 1
    finally:
        await stack.stop()


async def _only_the_newest(store: Store) -> bool:
    return await count(store, "SELECT (SELECT COUNT(*) FROM inbound) + (SELECT COUNT(*) FROM outbound)") == 2


@on_loop
async def test_stopping_the_gateway_mid_sweep_stops_between_batches(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        for i in range(30):
            await exchange(store, f"968910{i:05d}", NOW - 100 * DAY + i)
        service = RetentionService(store, RetentionConfig(batch_rows=5, pause_s=0.01), CORE_RULES, clock_at(NOW))
        service.running = True
        sweep = asyncio.ensure_future(service.sweep())
        await eventually(lambda: service.removed["outbound"] >= 5)
        service.running = False
        removed = await sweep
        assert 0 < removed["outbound"] < 30  # stopped early; the rest waits for the next sweep
    finally:
        await store.close()


@pytest.mark.engine("sqlite")
@on_loop
async def test_only_the_node_holding_the_jobs_role_prunes(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        for i in range(3):
            await exchange(store, f"968910{i:05d}", NOW - 100 * DAY + i)
        jobs = [False]
        clock = clock_at(NOW)
        service = RetentionService(store, RetentionConfig(interval_s=10, pause_s=0.001), CORE_RULES, clock,
                                   runs_jobs=lambda: jobs[0])
        service.startService()
        try:
            clock.advance(10)
            await asyncio.sleep(0.05)
            assert service.sweeps == 0 and await count(store, "SELECT COUNT(*) FROM inbound") == 3
            jobs[0] = True  # this node took the role over
            clock.advance(10)
            await eventually(lambda: service.sweeps == 1)
            assert service.removed["inbound"] == 2  # the newest stays
        finally:
            service.stopService()
    finally:
        await store.close()


@pytest.mark.engine("sqlite")
def test_a_postgresql_url_is_shown_without_its_password() -> None:
    from smsgw.retention import _redacted

    assert _redacted("postgresql://smsgw:s3cret@db.example:5432/smsgw") == "postgresql://smsgw:***@db.example:5432/smsgw"
    assert _redacted("postgresql://smsgw@127.0.0.1/smsgw") == "postgresql://smsgw@127.0.0.1/smsgw"
