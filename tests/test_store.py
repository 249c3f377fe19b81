"""Tests for smsgw.store: durability, dedupe, reassembly, MT/DLR state, failures, group commit.

The store is asyncio code; each test body is an asyncio coroutine run on the reactor's own event
loop (the reactor is the asyncio reactor) through the one bridge the architecture allows.

Run `python -m tests.test_store [n]` for the throughput figure (messages per second, where one
message is accept_mo + complete_mo + record_part_sent + record_dlr).
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from smsgw import migrations
from tests.engines import is_postgres, location, query, run_statements, table_names
from smsgw.message import Channel, Inbound, SessionEvent
from smsgw.store import (
    NewMo,
    NewMoPart,
    NewMt,
    SchemaTooNew,
    Store,
    StoreClosed,
    StoreUnavailable,
)
from tests.stack import on_loop


pytestmark = pytest.mark.usefixtures("store_engine")




class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


T0 = 1_700_000_000.0


def mo(i: int = 1, *, msg_id: str | None = "m1", carrier: str = "omantel", **kw: Any) -> NewMo:
    fields: dict[str, Any] = dict(
        carrier=carrier,
        carrier_msg_id=msg_id,
        msisdn="96891234567",
        short_code="90091",
        text=f"0000AB {30 * i}",
        data_coding=0,
        received_at=T0 + i,
    )
    fields.update(kw)
    return NewMo(**fields)


def mt(text: str = "ok", *, carrier: str = "omantel", **kw: Any) -> NewMt:
    fields: dict[str, Any] = dict(
        carrier=carrier,
        msisdn="96891234567",
        short_code="90091",
        text=text,
        created_at=T0 + 10,
        expires_at=T0 + 3600,
    )
    fields.update(kw)
    return NewMt(**fields)


def part(seq: int, *, total: int = 3, ref: int = 7, body: bytes | None = None, at: float = T0) -> NewMoPart:
    return NewMoPart(
        carrier="omantel",
        carrier_msg_id=None,
        msisdn="96891234567",
        short_code="90091",
        data_coding=0,
        received_at=at,
        ref=ref,
        total=total,
        seq=seq,
        body=body if body is not None else f"<p{seq}>".encode(),
    )


def join_parts(parts: dict[int, bytes], total: int) -> str | None:
    if sorted(parts) != list(range(1, total + 1)):
        return None
    return b"".join(parts[i] for i in range(1, total + 1)).decode()


def peek(path: str | Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read through a second, plain connection: sees only what is committed."""
    return query(path, sql, params)


def crash_copy(src: Path, dst: Path) -> None:
    """What kill -9 leaves on disk: the main file plus the WAL, no clean close, no checkpoint."""
    for suffix in ("", "-wal"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")


# ------------------------------------------------------------------------------------ plumbing


@pytest.mark.engine("sqlite")
@on_loop
async def test_aiosqlite_private_api(tmp_path: Path) -> None:
    """The one private aiosqlite API the store relies on still runs a function on its thread.

    If this fails after an aiosqlite upgrade, fix smsgw.store._on_connection_thread (the only user).
    """
    assert inspect.iscoroutinefunction(aiosqlite.Connection._execute), "aiosqlite changed _execute"
    assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property), "aiosqlite changed _conn"
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        ident, is_conn = await store._in_worker(
            lambda conn: (threading.get_ident(), isinstance(conn, sqlite3.Connection))
        )
        assert is_conn
        assert ident != threading.get_ident()
    finally:
        await store.close()


@pytest.mark.engine("sqlite")
@on_loop
async def test_small_batches_commit_on_the_loops_thread_large_ones_on_the_worker(tmp_path: Path) -> None:
    """A batch of the MO pipeline's size commits on the loop's own thread (no thread hop); one
    larger than INLINE_MAX on the worker, so one commit never holds the loop for long."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    try:
        engine = store.engine
        assert await store.write(lambda conn: threading.get_ident()) == threading.get_ident()
        assert (engine.inline_batches, engine.worker_batches) == (1, 0)
        big = engine.INLINE_MAX + 1
        outcomes = await store.write_group(
            [store.accept_mo_op(mo(i, msg_id=f"big{i}")) for i in range(big - 1)] + [lambda conn: threading.get_ident()]
        )
        assert all(ok for ok, _ in outcomes) and outcomes[-1][1] != threading.get_ident()
        assert (engine.inline_batches, engine.worker_batches) == (1, 1)
        assert peek(path, "SELECT COUNT(*) FROM inbound") == [(big - 1,)]
    finally:
        await store.close()


@pytest.mark.engine("sqlite")
@on_loop
async def test_a_batch_finding_the_file_locked_waits_on_the_worker_not_on_the_loop(tmp_path: Path) -> None:
    """Another process holds the write lock: the batch does not make the loop wait for it; it
    waits on the worker's thread and commits once the lock is released."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        accepted = asyncio.ensure_future(store.accept_mo(mo(1, msg_id="while-locked")))
        turns = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.3:  # the loop keeps turning meanwhile
            await asyncio.sleep(0.01)
            turns += 1
        assert turns >= 10 and not accepted.done()
        other.execute("COMMIT")
        inbound, duplicate = await asyncio.wait_for(accepted, 5)
        assert inbound is not None and not duplicate
        assert (store.engine.inline_batches, store.engine.worker_batches) == (0, 1)
        assert peek(path, "SELECT carrier_msg_id FROM inbound") == [("while-locked",)]
        await store.accept_mo(mo(2, msg_id="after"))  # and on the loop's thread again
        assert (store.engine.inline_batches, store.engine.worker_batches) == (1, 1)
    finally:
        other.close()
        await store.close()


@pytest.mark.engine("sqlite")
@on_loop
async def test_the_worker_checkpoints_passive_then_restart_and_the_wal_starts_over(tmp_path: Path) -> None:
    """Inline commits never checkpoint themselves; the worker does every CHECKPOINT_EVERY commits,
    PASSIVE, and RESTART after a passive one found the WAL long; the WAL then starts over."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    try:
        engine = store.engine
        engine.CHECKPOINT_EVERY = 5
        engine.WAL_RESTART_PAGES = 1  # every passive checkpoint is followed by a RESTART
        for i in range(200):
            await store.accept_mo(mo(i, msg_id=f"c{i}"))
            while engine._checkpoint is not None:  # one at a time: commits are faster than fsyncs
                await asyncio.sleep(0.001)
        assert engine.checkpoints == 200 // 5 and engine.restarts == engine.checkpoints // 2
        wal_pages = query(path, "PRAGMA wal_checkpoint(PASSIVE)")[0][1]
        assert wal_pages < 100, wal_pages  # 200 commits of several pages each, but started over
    finally:
        await store.close()
    assert peek(path, "SELECT COUNT(*) FROM inbound") == [(200,)]


@pytest.mark.engine("sqlite")
@on_loop
async def test_a_reader_elsewhere_holding_the_wal_never_stops_the_commits(tmp_path: Path) -> None:
    """A reader in another process pins the WAL, so a RESTART cannot finish: it gives up after
    RESTART_WAIT_S, the next checkpoints are passive, every commit goes on, and once the reader
    has gone the WAL starts over."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        engine = store.engine
        engine.CHECKPOINT_EVERY = 5
        engine.WAL_RESTART_PAGES = 1
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM inbound").fetchone()
        for i in range(50):
            await asyncio.wait_for(store.accept_mo(mo(i, msg_id=f"r{i}")), 1.0)
            while engine._checkpoint is not None:
                await asyncio.sleep(0.001)
        assert engine.restarts == 1  # tried once, then passive while the reader may still be there
        assert query(path, "PRAGMA wal_checkpoint(PASSIVE)")[0][1] >= 100  # pinned meanwhile
        reader.execute("COMMIT")
        for i in range(50, 70):
            await store.accept_mo(mo(i, msg_id=f"r{i}"))
            while engine._checkpoint is not None:
                await asyncio.sleep(0.001)
        assert query(path, "PRAGMA wal_checkpoint(PASSIVE)")[0][1] < 100
    finally:
        reader.close()
        await store.close()
    assert peek(path, "SELECT COUNT(*) FROM inbound") == [(70,)]


@pytest.mark.engine("sqlite")
@on_loop
async def test_migrations_fresh_file_and_reopen(tmp_path: Path) -> None:
    """A fresh file (in a new directory) gets the latest schema in WAL mode; reopening keeps it and the data."""
    path = location(tmp_path / "deep" / "dir", "gw.db")
    store = await Store.open(path)
    await store.accept_mo(mo())
    await store.close()
    assert peek(path, "SELECT version FROM schema_version") == [(migrations.LATEST,)]
    assert peek(path, "PRAGMA journal_mode") == [("wal",)]
    tables = {r[0] for r in peek(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"inbound", "mo_part", "mo_part_done", "outbound", "mt_part", "dlr", "schema_version"} <= tables

    store = await Store.open(path)
    try:
        assert peek(path, "SELECT version FROM schema_version") == [(migrations.LATEST,)]
        assert [m.text for m in await store.unprocessed_mos()] == ["0000AB 30"]
        pragmas = await store._in_worker(
            lambda c: [c.execute(f"PRAGMA {p}").fetchone()[0] for p in ("synchronous", "foreign_keys", "busy_timeout")]
        )
        assert pragmas == [1, 1, 5000]  # NORMAL, ON, 5 s
    finally:
        await store.close()


@on_loop
async def test_newer_schema_refused(tmp_path: Path) -> None:
    """Opening a database written by a newer gateway fails with a clear error and changes nothing."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    await store.close()
    query(path, "UPDATE schema_version SET version = ?", (migrations.LATEST + 1,))
    with pytest.raises(SchemaTooNew, match=r"schema version \d+, newer than"):
        await Store.open(path)
    assert peek(path, "SELECT version FROM schema_version") == [(migrations.LATEST + 1,)]


@on_loop
async def test_failed_migration_leaves_schema_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration step that fails rolls back every step of that upgrade."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    await store.close()
    broken = migrations.MIGRATIONS + (("CREATE TABLE newer (x INTEGER)", "THIS IS NOT SQL"),)
    monkeypatch.setattr(migrations, "MIGRATIONS", broken)
    monkeypatch.setattr(migrations, "LATEST", len(broken))
    with pytest.raises(Exception, match="syntax error"):
        await Store.open(path)
    assert peek(path, "SELECT version FROM schema_version") == [(len(broken) - 1,)]
    assert "newer" not in table_names(path)


# ------------------------------------------------------------------------------------ MO


@on_loop
async def test_accept_mo_is_committed_when_it_returns(tmp_path: Path) -> None:
    """accept_mo returns only after the row is committed: another connection sees it at once."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    try:
        inbound, duplicate = await store.accept_mo(
            mo(channel="ussd", session_id="s-9", session_event="new", text="*123#")
        )
        assert not duplicate
        assert isinstance(inbound, Inbound)
        assert (inbound.channel, inbound.session, inbound.session_id) == (Channel.USSD, SessionEvent.NEW, "s-9")
        rows = peek(path, "SELECT id, carrier_msg_id, text, processed_at FROM inbound")
        assert rows == [(inbound.id, "m1", "*123#", None)]
    finally:
        await store.close()


@on_loop
async def test_duplicate_mo(tmp_path: Path) -> None:
    """A redelivery (same carrier, id and content) returns the first row; a None id never is one."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        first, dup = await store.accept_mo(mo(1, msg_id="A"))
        assert not dup
        again, dup = await store.accept_mo(mo(1, msg_id="A", received_at=T0 + 300))
        assert dup and again == first
        other, dup = await store.accept_mo(mo(1, msg_id="A", carrier="ooredoo"))
        assert not dup and other is not None and other.id != first.id
        # Two identical messages in the same batch: still one row.
        (a, dup_a), (b, dup_b) = await asyncio.gather(
            store.accept_mo(mo(4, msg_id="B")), store.accept_mo(mo(4, msg_id="B"))
        )
        assert (dup_a, dup_b) == (False, True) and a == b
        n1, d1 = await store.accept_mo(mo(5, msg_id=None))
        n2, d2 = await store.accept_mo(mo(5, msg_id=None))
        assert not d1 and not d2 and n1.id != n2.id
        assert (await store.counts())["mo_received"] == 5
    finally:
        await store.close()


@on_loop
async def test_a_reused_mo_id_with_other_content_is_a_new_message(tmp_path: Path) -> None:
    """Carriers reuse MO ids (a counter restarts or wraps): the same id from another sender, to
    another short code or with another text is a new MO, never dropped."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        first, _ = await store.accept_mo(mo(1, msg_id="A", text="HELP"))
        for changed in ({"msisdn": "96899887766"}, {"short_code": "90092"}, {"text": "MY"},
                        {"channel": "ussd", "session_id": "s-1", "session_event": "new"}):
            again, dup = await store.accept_mo(mo(2, msg_id="A", **{"text": "HELP", **changed}))
            assert not dup and again is not None and again.id != first.id, changed
        assert (await store.counts())["mo_received"] == 5
    finally:
        await store.close()


@on_loop
async def test_the_same_mo_after_the_window_is_a_new_message(tmp_path: Path) -> None:
    """A redelivery comes within the window; the same id and content later is a new message, and
    from then on that later copy is the one its own redeliveries match."""
    store = await Store.open(location(tmp_path, "gw.db"), mo_dedupe_window=600.0)
    try:
        first, _ = await store.accept_mo(mo(0, msg_id="A", text="HELP"))
        _, dup = await store.accept_mo(mo(0, msg_id="A", text="HELP", received_at=T0 + 599))
        assert dup
        later, dup = await store.accept_mo(mo(0, msg_id="A", text="HELP", received_at=T0 + 601))
        assert not dup and later is not None and later.id != first.id
        again, dup = await store.accept_mo(mo(0, msg_id="A", text="HELP", received_at=T0 + 900))
        assert dup and again == later
    finally:
        await store.close()


@on_loop
async def test_remembered_mo_ids_are_pruned_after_the_window(tmp_path: Path) -> None:
    """The fingerprints of accepted MOs are kept for the window only: retention deletes older
    ones (in batches, not inside an MO's write), and the table stays bounded."""
    from smsgw.store.retention import CORE_RULES

    [rule] = [r for r in CORE_RULES if r.table == "mo_seen"]
    path = location(tmp_path, "gw.db")
    store = await Store.open(path, mo_dedupe_window=600.0)
    try:
        for i in range(10):
            await store.accept_mo(mo(0, msg_id=f"old-{i}", received_at=T0 + i))
        await store.accept_mo(mo(0, msg_id="new", received_at=T0 + 3600))
        assert await store.prune(rule, T0 + 3600 - 600, 4) == 4
        assert await store.prune(rule, T0 + 3600 - 600, 100) == 6
        assert peek(path, "SELECT carrier_msg_id FROM mo_seen") == [("new",)]
        assert (await store.counts())["mo_received"] == 11  # the messages themselves are kept
    finally:
        await store.close()


@on_loop
async def test_an_existing_store_upgrades_to_content_dedupe(tmp_path: Path) -> None:
    """A store written before the content rule upgrades in place: its MOs are still recognised
    when redelivered, and a reused id with other content is taken as new."""
    path = location(tmp_path, "gw.db")
    run_statements(path, [
        ("CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)", ()),
        *((statement, ()) for statement in migrations.MIGRATIONS[0]),
        ("INSERT INTO schema_version (id, version) VALUES (1, 1)", ()),
        ("INSERT INTO inbound (carrier, carrier_msg_id, msisdn, short_code, text, data_coding, channel,"
         " session_event, received_at, processed_at) VALUES ('omantel', 'A', '96891234567', '90091', 'HELP',"
         " 0, 'sms', 'none', ?, ?)", (T0, T0 + 1)),
    ])
    store = await Store.open(path)
    try:
        assert peek(path, "SELECT version FROM schema_version") == [(migrations.LATEST,)]
        again, dup = await store.accept_mo(mo(0, msg_id="A", text="HELP", received_at=T0 + 60))
        assert dup and again is not None and again.id == 1
        new, dup = await store.accept_mo(mo(0, msg_id="A", text="MY", received_at=T0 + 60))
        assert not dup and new is not None and new.id != again.id
    finally:
        await store.close()


@on_loop
async def test_invalid_channel_rejected_before_queueing(tmp_path: Path) -> None:
    """A bad channel or session event fails its caller at once and commits nothing."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        with pytest.raises(ValueError):
            await store.accept_mo(mo(channel="fax"))
        with pytest.raises(ValueError):
            await store.accept_mo(mo(session_event="maybe"))
        assert store.commits == 0
    finally:
        await store.close()


@on_loop
async def test_parts_reassembled_in_reverse_order_with_duplicate(tmp_path: Path) -> None:
    """Parts arriving last-first, one twice, give one Inbound; a part redelivered afterwards is ignored."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    try:
        calls: list[tuple[dict[int, bytes], int]] = []

        def assemble(parts: dict[int, bytes], total: int) -> str | None:
            calls.append((dict(parts), total))
            return join_parts(parts, total)

        assert await store.accept_mo_part(part(3, at=T0), assemble) == (None, False)
        assert await store.accept_mo_part(part(3, at=T0 + 1), assemble) == (None, True)
        assert await store.accept_mo_part(part(2, at=T0 + 2), assemble) == (None, False)
        assert calls == []  # not called before `total` parts are there
        inbound, dup = await store.accept_mo_part(part(1, at=T0 + 3), assemble)
        assert not dup and inbound is not None
        assert inbound.text == "<p1><p2><p3>"
        assert inbound.received_at == T0 + 3
        assert calls == [({1: b"<p1>", 2: b"<p2>", 3: b"<p3>"}, 3)]
        assert peek(path, "SELECT COUNT(*) FROM mo_part") == [(0,)]
        assert [m.id for m in await store.unprocessed_mos()] == [inbound.id]

        # The carrier never saw our ack for part 2 and sends it again: no new group, no second MO.
        assert await store.accept_mo_part(part(2, at=T0 + 60), assemble) == (None, True)
        assert peek(path, "SELECT COUNT(*) FROM mo_part") == [(0,)]
        # A different message that happens to reuse the reference is a new group.
        assert await store.accept_mo_part(part(2, at=T0 + 61, body=b"<new>"), assemble) == (None, False)
        assert (await store.counts())["mo_parts_pending"] == 1
    finally:
        await store.close()


@on_loop
async def test_assemble_failure_keeps_the_part(tmp_path: Path) -> None:
    """If the assemble callback raises, the part is still stored and the group waits for the timeout."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:

        def broken(parts: dict[int, bytes], total: int) -> str | None:
            raise UnicodeDecodeError("utf-16-be", b"\x00", 0, 1, "bad")

        assert await store.accept_mo_part(part(1, total=1), broken) == (None, False)
        groups = await store.expired_part_groups(T0 + 1)
        assert [(key, parts) for key, parts, _ in groups] == [
            (("omantel", "96891234567", "90091", 7, 1), {1: b"<p1>"})
        ]
    finally:
        await store.close()


@on_loop
async def test_expired_groups_and_accept_partial(tmp_path: Path) -> None:
    """Groups older than the cut-off are listed and can be accepted as a partial message, once."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    try:
        await store.accept_mo_part(part(1, ref=1, at=T0), join_parts)
        await store.accept_mo_part(part(3, ref=1, at=T0 + 50), join_parts)
        await store.accept_mo_part(part(1, ref=2, at=T0 + 100), join_parts)

        groups = await store.expired_part_groups(T0 + 60)
        assert len(groups) == 1
        key, parts, first = groups[0]
        assert key == ("omantel", "96891234567", "90091", 1, 3)
        assert parts == {1: b"<p1>", 3: b"<p3>"}
        assert first == {
            "carrier": "omantel",
            "carrier_msg_id": None,
            "msisdn": "96891234567",
            "short_code": "90091",
            "data_coding": 0,
            "received_at": T0,
            "ref": 1,
            "total": 3,
            "seq": 1,
        }

        # A part arrived after the sweep read the group: the caller's text would drop it.
        await store.accept_mo_part(part(2, ref=1, total=3, at=T0 + 61, body=b"<late>"), lambda p, t: None)
        with pytest.raises(LookupError):
            await store.accept_partial(key, "<p1>…<p3>", expected_seqs=parts.keys())

        inbound = await store.accept_partial(key, "<p1><late><p3>", expected_seqs={1, 2, 3})
        assert inbound.text == "<p1><late><p3>"
        assert peek(path, "SELECT parts, partial FROM inbound WHERE id = ?", (inbound.id,)) == [(3, 1)]
        with pytest.raises(LookupError):
            await store.accept_partial(key, "again")
        remaining = await store.expired_part_groups(T0 + 1000)
        assert [k for k, _, _ in remaining] == [("omantel", "96891234567", "90091", 2, 3)]
    finally:
        await store.close()


@on_loop
async def test_an_mo_not_answered_as_asked_shows_why(tmp_path: Path) -> None:
    """complete_mo records why an MO was not answered normally; history shows that state (muted,
    limited, ignored) instead of "processed"."""
    store = await Store.open(location(tmp_path, "gw.db"), clock=FakeClock())
    try:
        states = {}
        for i, disposition in enumerate((None, "muted", "limited", "ignored")):
            inbound, _ = await store.accept_mo(mo(i, msg_id=f"d{i}"))
            await store.complete_mo(inbound.id, [], disposition=disposition)
            states[inbound.id] = disposition or "processed"
        unprocessed, _ = await store.accept_mo(mo(9, msg_id="d9"))
        states[unprocessed.id] = "received"
        assert {h["id"]: h["state"] for h in await store.history()} == states
    finally:
        await store.close()


@on_loop
async def test_complete_mo_is_idempotent(tmp_path: Path) -> None:
    """complete_mo queues the replies once; calling it again for the same MO adds nothing."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path, clock=FakeClock())
    try:
        inbound, _ = await store.accept_mo(mo())
        out = await store.complete_mo(inbound.id, [mt("one"), mt("two", kind="notice", end_session=False)])
        assert [o.text for o in out] == ["one", "two"]
        assert all(o.state == "queued" and o.attempts == 0 and o.parts_sent == {} for o in out)
        assert all(o.inbound_id == inbound.id for o in out)
        assert all(0 <= o.concat_ref <= 255 for o in out)
        assert out[1].concat_ref == (out[0].concat_ref + 1) % 256
        assert (out[1].kind, out[1].end_session) == ("notice", False)
        assert await store.complete_mo(inbound.id, [mt("three")]) == []
        assert peek(path, "SELECT COUNT(*) FROM outbound") == [(2,)]
        assert peek(path, "SELECT processed_at FROM inbound") == [(T0,)]
        assert await store.unprocessed_mos() == []
        with pytest.raises(LookupError):
            await store.complete_mo(9999, [mt()])
    finally:
        await store.close()


@on_loop
async def test_failing_write_does_not_fail_its_batch(tmp_path: Path) -> None:
    """A write that fails for its own reasons is rolled back alone; the rest of its batch commits."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        commits = store.commits
        results = await asyncio.gather(
            store.accept_mo(mo(1, msg_id="x1")),
            store.complete_mo(424242, [mt()]),
            store.accept_mo(mo(2, msg_id="x2")),
            return_exceptions=True,
        )
        assert isinstance(results[1], LookupError)
        assert results[0][1] is False and results[2][1] is False
        assert store.commits == commits + 1
        assert store.healthy
        assert (await store.counts())["mo_received"] == 2
    finally:
        await store.close()


@on_loop
async def test_write_group_one_future_per_group_each_write_its_own(tmp_path: Path) -> None:
    """A group of writes commits in one transaction and resolves one future with every outcome, in
    order; a write that fails for its own reasons fails alone, its neighbours commit."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    try:
        commits = store.commits
        group = store.write_group([
            store.accept_mo_op(mo(1, msg_id="w1")),
            store.complete_mo_op(424242, [mt()]),
            store.accept_mo_op(mo(2, msg_id="w2")),
            store.accept_mo_op(mo(1, msg_id="w1")),  # the first one's redelivery, in the same group
        ])
        assert not group.done()  # nothing is decided before the commit
        outcomes = await group
        assert store.commits == commits + 1
        [(ok1, (first, dup1)), (ok2, missing), (ok3, (_, dup3)), (ok4, (again, dup4))] = outcomes
        assert (ok1, dup1, ok3, dup3) == (True, False, True, False)
        assert ok2 is False and isinstance(missing, LookupError)
        assert ok4 is True and dup4 is True and again.id == first.id
        assert peek(path, "SELECT COUNT(*) FROM inbound") == [(2,)]
        assert await store.write_group([]) == []
    finally:
        await store.close()
    with pytest.raises(StoreClosed):
        await store.write_group([store.accept_mo_op(mo(3, msg_id="w3"))])
    with pytest.raises(StoreClosed):
        await store.record_attempt(1, 1, "late")


async def store_on_a_full_disk(tmp_path: Path) -> Store:
    """A SQLite store with one MO in it, its file capped at its current size: the next page it
    needs is "disk full"."""
    store = await Store.open(location(tmp_path, "gw.db"))
    await store.accept_mo(mo(0, msg_id="before"))
    await store.engine.on_each_connection(
        lambda c: c.execute(f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}")
    )
    return store


@pytest.mark.engine("sqlite")
@on_loop
async def test_write_group_fails_whole_when_the_database_does(tmp_path: Path) -> None:
    """The database failing the batch (a full disk): every write of the group gets
    StoreUnavailable in its place; the next group commits."""
    store = await store_on_a_full_disk(tmp_path)
    try:
        outcomes = await store.write_group(
            [store.accept_mo_op(mo(i, msg_id=f"f{i}", text="x" * 5000)) for i in range(1, 4)]
        )
        assert [ok for ok, _ in outcomes] == [False, False, False]
        assert all(isinstance(error, StoreUnavailable) for _, error in outcomes)
        assert not store.healthy
        await store.engine.on_each_connection(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        [(ok, (inbound, duplicate))] = await store.write_group([store.accept_mo_op(mo(1, msg_id="f1"))])
        assert ok and not duplicate and inbound is not None and store.healthy
        assert peek(location(tmp_path, "gw.db"), "SELECT carrier_msg_id FROM inbound ORDER BY id") == [("before",), ("f1",)]
    finally:
        await store.close()


# ------------------------------------------------------------------------------------ restart


@on_loop
async def test_restart_resumes_exactly_the_unfinished_work(tmp_path: Path) -> None:
    """After a crash, unprocessed_mos and queued_mts hold exactly what was not done, partly sent MTs included."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    a, _ = await store.accept_mo(mo(1, msg_id="a"))
    b, _ = await store.accept_mo(mo(2, msg_id="b"))
    c, _ = await store.accept_mo(mo(3, msg_id="c"))
    done, partly, unsent = await store.complete_mo(a.id, [mt("done"), mt("partly"), mt("unsent")])
    other = await store.enqueue_mt(mt("notice", carrier="ooredoo", kind="notice"))
    await store.record_part_sent(done.id, 1, 1, "aa01", "AA01", T0 + 20)
    await store.record_part_sent(partly.id, 1, 2, "bb01", "BB01", T0 + 21)
    await store.record_attempt(unsent.id, 2, "ESME_RTHROTTLED")

    if is_postgres():
        # The store is still open, as on a node that died: another opens the same database.
        reopened_paths = [path]
    else:
        crashed = str(tmp_path / "crashed.db")
        crash_copy(path, crashed)  # the store is still open: nothing was closed or checkpointed
        reopened_paths = [crashed, path]  # after kill -9, and after a clean shutdown
    for reopened_path in reopened_paths:
        reopened = await Store.open(reopened_path)
        try:
            assert [m.id for m in await reopened.unprocessed_mos()] == [b.id, c.id]
            queued = await reopened.queued_mts()
            assert [(o.id, o.text) for o in queued] == [(partly.id, "partly"), (unsent.id, "unsent"), (other.id, "notice")]
            assert queued[0].parts_sent == {1: "bb01"} and queued[0].total_parts == 2
            assert (queued[1].attempts, queued[1].last_error) == (2, "ESME_RTHROTTLED")
            assert [o.id for o in await reopened.queued_mts(carrier="ooredoo")] == [other.id]
            assert [o.id for o in await reopened.queued_mts(limit=1)] == [partly.id]
            assert (await reopened.get_outbound(done.id)).state == "sent"
        finally:
            await reopened.close()
    await store.close()


@on_loop
async def test_concat_ref_rotates_per_carrier_across_restarts(tmp_path: Path) -> None:
    """Concatenation references rotate 0..255 per carrier and continue after a restart."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    refs = [(await store.enqueue_mt(mt())).concat_ref for _ in range(3)]
    await store.close()
    assert refs == [(refs[0] + i) % 256 for i in range(3)]
    store = await Store.open(path)
    try:
        assert (await store.enqueue_mt(mt())).concat_ref == (refs[-1] + 1) % 256
    finally:
        await store.close()


@on_loop
async def test_close_flushes_pending_writes(tmp_path: Path) -> None:
    """close() commits the writes already requested, then refuses new ones."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    tasks = [asyncio.ensure_future(store.accept_mo(mo(i, msg_id=f"c{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # the tasks request their writes; none is committed yet
    assert store._pending and peek(path, "SELECT COUNT(*) FROM inbound") == [(0,)]
    await store.close()
    assert all(t.done() and not t.result()[1] for t in tasks)
    assert peek(path, "SELECT COUNT(*) FROM inbound") == [(20,)]
    with pytest.raises(StoreClosed):
        await store.accept_mo(mo(99, msg_id="late"))
    with pytest.raises(StoreUnavailable):  # StoreClosed is a StoreUnavailable: the gateway answers 0x64
        await store.counts()


# ------------------------------------------------------------------------------------ MT and DLR


@on_loop
async def test_single_part_mt_sent_then_delivered(tmp_path: Path) -> None:
    """A one-part MT goes queued -> sent -> delivered; an intermediate receipt changes nothing."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        out = await store.enqueue_mt(mt())
        await store.record_part_sent(out.id, 1, 1, "0a1b", "0A1B", T0 + 11)
        assert (await store.outbound_state(out.id))["state"] == "sent"
        assert await store.record_dlr("omantel", "0a1b", "ENROUTE", None, False, "id:0A1B stat:ENROUTE", T0 + 12) == out.id
        assert (await store.outbound_state(out.id))["state"] == "sent"
        assert await store.record_dlr("omantel", "0a1b", "delivrd", "000", True, "id:0A1B stat:DELIVRD", T0 + 13) == out.id
        state = await store.outbound_state(out.id)
        assert state["state"] == "delivered"
        assert state["parts"] == [
            {
                "part_no": 1,
                "smsc_id": "0a1b",
                "smsc_id_raw": "0A1B",
                "sent_at": T0 + 11,
                "dlr_state": "DELIVRD",
                "dlr_error": "000",
                "dlr_final": True,
                "dlr_at": T0 + 13,
            }
        ]
        # A receipt for the same id from another carrier is not ours.
        assert await store.record_dlr("ooredoo", "0a1b", "DELIVRD", None, True, "", T0 + 14) is None
        assert await store.outbound_state(12345) == {}
        assert await store.get_outbound(12345) is None
    finally:
        await store.close()


@on_loop
async def test_receipt_before_submit_sm_resp(tmp_path: Path) -> None:
    """A receipt that overtakes its submit_sm_resp is kept and matched when the resp is recorded."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        out = await store.enqueue_mt(mt())
        assert await store.record_dlr("omantel", "77", "DELIVRD", None, True, "id:77 stat:DELIVRD", T0 + 11) is None
        assert (await store.counts())["dlr_unmatched"] == 1
        await store.record_part_sent(out.id, 1, 1, "77", "0x4D", T0 + 12)
        assert (await store.outbound_state(out.id))["state"] == "delivered"
        assert (await store.counts())["dlr_unmatched"] == 0
    finally:
        await store.close()


@on_loop
async def test_multipart_mt_final_only_when_every_part_is(tmp_path: Path) -> None:
    """A long MT is delivered only when every part is DELIVRD, undelivered if any part failed."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        good = await store.enqueue_mt(mt("long one"))
        bad = await store.enqueue_mt(mt("long two"))
        for n in (1, 2, 3):
            await store.record_part_sent(good.id, n, 3, f"g{n}", f"G{n}", T0 + 20 + n)
        await store.record_part_sent(bad.id, 1, 2, "b1", "B1", T0 + 30)
        assert (await store.get_outbound(bad.id)).state == "queued"  # part 2 not sent yet
        await store.record_dlr("omantel", "b1", "DELIVRD", None, True, "", T0 + 31)
        assert (await store.get_outbound(bad.id)).state == "queued"

        await store.record_dlr("omantel", "g1", "DELIVRD", None, True, "", T0 + 40)
        await store.record_dlr("omantel", "g3", "DELIVRD", None, True, "", T0 + 41)
        assert (await store.outbound_state(good.id))["state"] == "sent"
        await store.record_dlr("omantel", "g2", "DELIVRD", None, True, "", T0 + 42)
        assert (await store.outbound_state(good.id))["state"] == "delivered"
        # A late intermediate receipt does not undo a final one.
        await store.record_dlr("omantel", "g2", "ENROUTE", None, False, "", T0 + 43)
        state = await store.outbound_state(good.id)
        assert state["state"] == "delivered" and state["parts"][1]["dlr_state"] == "DELIVRD"

        await store.record_part_sent(bad.id, 2, 2, "b2", "B2", T0 + 50)
        assert (await store.get_outbound(bad.id)).state == "sent"
        await store.record_dlr("omantel", "b2", "UNDELIV", "001", True, "", T0 + 51)
        assert (await store.get_outbound(bad.id)).state == "undelivered"
        assert (await store.get_outbound(bad.id)).parts_sent == {1: "b1", 2: "b2"}
    finally:
        await store.close()


@on_loop
async def test_record_final_and_attempts(tmp_path: Path) -> None:
    """record_final ends a queued MT with its reason; a finished MT keeps its final state."""
    store = await Store.open(location(tmp_path, "gw.db"))
    try:
        out = await store.enqueue_mt(mt())
        await store.record_attempt(out.id, 1, "ESME_RMSGQFUL")
        await store.record_final(out.id, "failed", "ESME_RINVDSTADR", T0 + 20)
        await store.record_final(out.id, "expired", "ttl", T0 + 30)
        state = await store.outbound_state(out.id)
        assert (state["state"], state["reason"], state["attempts"], state["last_error"]) == (
            "failed",
            "ESME_RINVDSTADR",
            1,
            "ESME_RMSGQFUL",
        )
        assert await store.queued_mts() == []
        with pytest.raises(ValueError):
            await store.record_final(out.id, "delivered", None, T0)
        with pytest.raises(LookupError):
            await store.record_final(999, "failed", None, T0)
        with pytest.raises(LookupError):
            await store.record_attempt(999, 1, None)
        with pytest.raises(LookupError):
            await store.record_part_sent(999, 1, 1, "x", "X", T0)
    finally:
        await store.close()


# ------------------------------------------------------------------------------------ failures


@pytest.mark.engine("sqlite")
@on_loop
async def test_disk_full_fails_the_batch_and_recovers(tmp_path: Path) -> None:
    """When the disk is full every caller of the batch gets StoreUnavailable; later writes work again."""
    store = await store_on_a_full_disk(tmp_path)
    try:
        results = await asyncio.gather(
            *(store.accept_mo(mo(i, msg_id=f"full{i}", text="x" * 5000)) for i in range(1, 6)),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreUnavailable) for r in results), results
        assert not store.healthy
        assert "full" in (store.last_error or "")
        assert peek(location(tmp_path, "gw.db"), "SELECT carrier_msg_id FROM inbound") == [("before",)]

        await store.engine.on_each_connection(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        inbound, dup = await store.accept_mo(mo(1, msg_id="full1", text="x" * 5000))
        assert not dup and inbound is not None
        assert store.healthy and store.last_error is None
        assert store.failed_batches == 1
    finally:
        await store.close()


@pytest.mark.engine("sqlite")
@on_loop
async def test_locked_database_fails_then_recovers(tmp_path: Path) -> None:
    """A lock held beyond busy_timeout makes writes StoreUnavailable; they work once it is released."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path, busy_timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.accept_mo(mo())
        assert not store.healthy
        assert await store.unprocessed_mos() == []  # reads still work (WAL)
        other.execute("ROLLBACK")
        assert (await store.accept_mo(mo()))[1] is False
        assert store.healthy
    finally:
        other.close()
        await store.close()


# ------------------------------------------------------------------------------------ group commit


@on_loop
async def test_group_commit_batches_concurrent_writes(tmp_path: Path) -> None:
    """200 concurrent accept_mo share one commit; writes made during a commit share the next one."""
    path = location(tmp_path, "gw.db")
    store = await Store.open(path)
    try:
        commits = store.commits
        results = await asyncio.gather(*(store.accept_mo(mo(i, msg_id=f"g{i}")) for i in range(200)))
        assert len({r[0].id for r in results}) == 200
        assert store.commits - commits == 1
        assert peek(path, "SELECT COUNT(*) FROM inbound") == [(200,)]

        commits = store.commits
        first = [asyncio.ensure_future(store.accept_mo(mo(i, msg_id=f"h{i}"))) for i in range(10)]
        # Until the first batch is committing (on a thread) or committed (on the loop's own).
        while store.commits == commits and (store._flusher is None or store._pending):
            await asyncio.sleep(0)
        second = [asyncio.ensure_future(store.accept_mo(mo(i, msg_id=f"k{i}"))) for i in range(50)]
        await asyncio.gather(*first, *second)
        assert store.commits - commits == 2
    finally:
        await store.close()


@on_loop
async def test_history_and_counts(tmp_path: Path) -> None:
    """history lists a number's MOs and MTs newest first; counts reports rows per state."""
    store = await Store.open(location(tmp_path, "gw.db"), clock=FakeClock())
    try:
        a, _ = await store.accept_mo(mo(1, msg_id="a"))
        await store.accept_mo(mo(2, msg_id="b", msisdn="96899999999"))
        (reply,) = await store.complete_mo(a.id, [mt("reply", created_at=T0 + 5)])
        history = await store.history(msisdn="96891234567")
        assert [(h["direction"], h["id"], h["state"]) for h in history] == [
            ("mt", reply.id, "queued"),
            ("mo", a.id, "processed"),
        ]
        assert [h["direction"] for h in await store.history(since=T0 + 2)] == ["mt", "mo"]
        assert len(await store.history(limit=1)) == 1
        counts = await store.counts()
        assert counts["mo_received"] == 2 and counts["mo_unprocessed"] == 1
        assert counts["mt_queued"] == 1 and counts["mt_delivered"] == 0
    finally:
        await store.close()


# ------------------------------------------------------------------------------------ benchmark


async def bench_store(n: int, path: str | None = None, concurrency: int = 500) -> float:
    """Messages per second for accept_mo + complete_mo + record_part_sent + record_dlr each,
    with `concurrency` messages in flight (as many carriers' windows would give)."""
    workdir = None
    if path is None:
        workdir = tempfile.mkdtemp()
        path = str(Path(workdir) / "bench.db")
    store = await Store.open(path)

    async def lane(first: int) -> None:
        # A fixed set of lanes rather than n tasks behind a semaphore: asyncio's semaphore costs
        # O(waiters) per release and would measure itself instead of the store.
        for i in range(first, n, concurrency):
            inbound, _ = await store.accept_mo(mo(i, msg_id=f"b{i}"))
            (out,) = await store.complete_mo(inbound.id, [mt("reply")])
            await store.record_part_sent(out.id, 1, 1, f"{i:x}", f"{i:X}", T0 + i)
            await store.record_dlr("omantel", f"{i:x}", "DELIVRD", None, True, "stat:DELIVRD", T0 + i)

    try:
        start = time.perf_counter()
        await asyncio.gather(*(lane(k) for k in range(min(concurrency, n))))
        elapsed = time.perf_counter() - start
        assert (await store.counts())["mt_delivered"] == n
    finally:
        await store.close()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return n / elapsed


@on_loop
async def test_bench_store_runs(tmp_path: Path) -> None:
    """The benchmark drives every message to delivered (speed is measured by hand, not asserted)."""
    assert await bench_store(300, location(tmp_path, "bench.db")) > 0


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rate = asyncio.run(bench_store(count))
    print(f"{count} messages: {rate:,.0f} msgs/s (accept_mo + complete_mo + record_part_sent + record_dlr)")


@on_loop
async def test_feature_component_schema_and_transactions(tmp_path: Path) -> None:
    """A feature's schema component is migrated at open, and `write` commits before returning."""
    steps = (("CREATE TABLE widget (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",),)
    path = location(tmp_path, "gw.sqlite3")
    store = await Store.open(path, components=[("widgets", steps)])
    try:
        await store.write(lambda conn: conn.execute("INSERT INTO widget (name) VALUES ('a')"))
        assert query(path, "SELECT name FROM widget") == [("a",)]
        names = await store.read(lambda conn: [r[0] for r in conn.execute("SELECT name FROM widget")])
        assert names == ["a"]
    finally:
        await store.close()
    store = await Store.open(path, components=[("widgets", steps)])  # re-open: no re-create
    await store.close()
    with pytest.raises(SchemaTooNew):
        await Store.open(path, components=[("widgets", ())])
