"""The gateway's durable state: one SQLite database (WAL) behind a group-commit writer.

Why it is built this way
------------------------
* An MO is acknowledged to the carrier only after its row is committed, and an MT is stored before
  it is submitted.  So every write is awaited, and the await returns only after COMMIT.
* One commit per message would cap us at a few hundred messages per second.  Instead writes are
  queued; a single flusher takes every write requested while the previous transaction was
  committing and runs them all in ONE transaction with ONE commit (group commit), then resolves
  every caller.  The whole batch runs as one function on aiosqlite's connection thread, so a batch
  costs one thread hop, not one per statement.
* A write that fails for its own reasons (unknown id, constraint) is rolled back alone and only its
  caller sees the error (the batch is re-run with a SAVEPOINT per write, see _run_batch).  A
  failure of the database itself (disk full, I/O error, locked beyond busy_timeout) aborts the
  whole batch; every caller in it gets `StoreUnavailable` (the gateway answers deliver_sm with ESME_RX_T_APPN so the carrier
  redelivers), `healthy` turns False, and the next batch simply tries again, so the store recovers
  by itself once the disk can write.
* journal_mode=WAL with synchronous=NORMAL: a committed transaction is in the WAL file (written to
  the OS) before COMMIT returns, so it survives the process being killed (kill -9, crash, OOM),
  which is the fault model we design for.  Only an OS crash or power loss can lose the last few
  transactions (never corrupt the file); synchronous=FULL would close that gap at the cost of one
  fsync per batch.
* Only this module writes SQL.  Times come from the caller or the injected `clock`, so tests are
  deterministic.
* Retention is not handled yet: inbound, outbound, mt_part and dlr rows (and unmatched receipts)
  are kept for ever; mo_part_done rows are pruned after `part_dedupe_window`, mo_seen rows (the
  redelivery fingerprints) after `mo_dedupe_window`.
"""

from __future__ import annotations

import asyncio
import functools
import random
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiosqlite

from smsgw import files, migrations
from smsgw.log import get_logger
from smsgw.message import Channel, Inbound, SessionEvent
from smsgw.redelivery import DEFAULT_WINDOW_S as DEFAULT_MO_DEDUPE_WINDOW_S
from smsgw.redelivery import content_hash

log = get_logger(__name__)

T = TypeVar("T")

# (carrier, msisdn, short_code, ref, total): the identity of one long MO being reassembled.
PartKey = tuple[str, str, str, int, int]

# Outbound states.
QUEUED: Final = "queued"
SENT: Final = "sent"
DELIVERED: Final = "delivered"
UNDELIVERED: Final = "undelivered"
FAILED: Final = "failed"
EXPIRED: Final = "expired"
MT_STATES: Final = (QUEUED, SENT, DELIVERED, UNDELIVERED, FAILED, EXPIRED)
_OPEN_STATES: Final = (QUEUED, SENT)

# The receipt `stat:` value (or message_state mapped to it) that means the handset got the part.
DLR_DELIVERED: Final = "DELIVRD"


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewMo:
    """A complete MO as decoded from deliver_sm, before it has an id."""

    carrier: str
    carrier_msg_id: str | None
    msisdn: str
    short_code: str
    text: str
    data_coding: int
    received_at: float
    channel: str = "sms"
    session_id: str | None = None
    session_event: str = "none"


@dataclass(frozen=True, slots=True)
class NewMoPart:
    """One part of a long MO (UDH or SAR), body still encoded as received."""

    carrier: str
    carrier_msg_id: str | None
    msisdn: str
    short_code: str
    data_coding: int
    received_at: float
    ref: int
    total: int
    seq: int
    body: bytes

    @property
    def key(self) -> PartKey:
        return (self.carrier, self.msisdn, self.short_code, self.ref, self.total)


@dataclass(frozen=True, slots=True)
class NewMt:
    """An MT to store before it is sent."""

    carrier: str
    msisdn: str
    short_code: str
    text: str
    created_at: float
    expires_at: float
    channel: str = "sms"
    session_id: str | None = None
    end_session: bool = True
    inbound_id: int | None = None
    kind: str = "reply"  # reply | notice | reminder ... (for later features and metrics)


@dataclass(slots=True)
class Outbound:
    """A queued or sent MT as the outbound queue sees it."""

    id: int
    carrier: str
    msisdn: str
    short_code: str
    text: str
    channel: str
    session_id: str | None
    end_session: bool
    created_at: float
    expires_at: float
    state: str
    attempts: int
    concat_ref: int
    parts_sent: dict[int, str]  # part_no -> normalised smsc id
    kind: str = "reply"
    inbound_id: int | None = None
    last_error: str | None = None
    total_parts: int | None = None  # known once the first part was submitted


class StoreUnavailable(Exception):
    """The database could not commit (or read); nothing of the failed request was stored."""


class StoreClosed(StoreUnavailable):
    """The store was closed (shutdown); same handling as any other unavailability."""


SchemaTooNew = migrations.SchemaTooNew


# --------------------------------------------------------------------------------------------
# SQL shared by several operations
# --------------------------------------------------------------------------------------------

_INBOUND_COLS = "id, carrier, msisdn, short_code, text, received_at, channel, session_event, session_id"
_OUTBOUND_COLS = (
    "id, carrier, msisdn, short_code, text, channel, session_id, end_session, created_at, "
    "expires_at, state, attempts, concat_ref, kind, inbound_id, last_error, total_parts"
)
_PART_KEY_WHERE = "carrier = ? AND msisdn = ? AND short_code = ? AND ref = ? AND total = ?"

# Errors that belong to one write (bad data, a bug in that write): roll back that write only.
# Every other sqlite3.Error is the database failing and aborts the whole batch.
_OP_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError)

_IN_CHUNK = 500  # ids per `IN (...)`, well under SQLite's bound-variable limit
_MO_SEEN_PRUNE_EVERY_S = 60.0


def _inbound(row: Sequence[Any]) -> Inbound:
    return Inbound(
        id=row[0],
        carrier=row[1],
        msisdn=row[2],
        short_code=row[3],
        text=row[4],
        received_at=row[5],
        channel=Channel(row[6]),
        session=SessionEvent(row[7]),
        session_id=row[8],
    )


def _outbound(row: Sequence[Any], parts_sent: dict[int, str] | None = None) -> Outbound:
    return Outbound(
        id=row[0],
        carrier=row[1],
        msisdn=row[2],
        short_code=row[3],
        text=row[4],
        channel=row[5],
        session_id=row[6],
        end_session=bool(row[7]),
        created_at=row[8],
        expires_at=row[9],
        state=row[10],
        attempts=row[11],
        concat_ref=row[12],
        parts_sent=parts_sent if parts_sent is not None else {},
        kind=row[13],
        inbound_id=row[14],
        last_error=row[15],
        total_parts=row[16],
    )


def _run_batch(
    conn: sqlite3.Connection, ops: list[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[bool, Any]]:
    """Run every write of a batch in one transaction; runs on the connection thread.

    Returns (True, result) or (False, exception) per write.  Raises if the database itself failed;
    then nothing of the batch is committed.

    Writes rarely fail on their own (unknown id, a bug), so the batch first runs without
    per-write savepoints (they cost ~15% of throughput).  If one write does fail, that attempt is
    rolled back and the batch runs again with each write in its own SAVEPOINT, so only the failing
    write is undone.  Writes are functions of the database state and their arguments, so the
    second run gives the same results.
    """
    outcomes = _attempt_batch(conn, ops, isolate=False)
    if outcomes is None:
        outcomes = _attempt_batch(conn, ops, isolate=True)
    assert outcomes is not None
    return outcomes


def _attempt_batch(
    conn: sqlite3.Connection, ops: list[Callable[[sqlite3.Connection], Any]], isolate: bool
) -> list[tuple[bool, Any]] | None:
    outcomes: list[tuple[bool, Any]] = []
    # IMMEDIATE takes the write lock now, so "locked" fails here (after busy_timeout), before any
    # work, rather than at COMMIT.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op in ops:
            if isolate:
                conn.execute("SAVEPOINT op")
            try:
                result = op(conn)
            except Exception as exc:
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, _OP_ERRORS):
                    raise  # the database failed, not this write: abort the batch
                if not isolate:
                    conn.execute("ROLLBACK")
                    return None
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                outcomes.append((False, exc))
            else:
                if isolate:
                    conn.execute("RELEASE op")
                outcomes.append((True, result))
        conn.execute("COMMIT")
    except BaseException:
        # After SQLITE_FULL or IOERR SQLite may already have rolled back by itself.
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
    return outcomes


# The ONE use of aiosqlite's private API.  aiosqlite offers no public "run this function on the
# connection thread"; `Connection._execute` is the primitive all its public methods are built on,
# and `Connection._conn` is the sqlite3 connection it owns.  Running a whole batch as one function
# is what makes group commit cost one thread hop, so we rely on both, here only.
# tests/test_store.py::test_aiosqlite_private_api fails loudly if aiosqlite changes them.
async def _on_connection_thread(db: aiosqlite.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return await db._execute(_call_with_connection, db, fn, args)


def _call_with_connection(db: aiosqlite.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(db._conn, *args)  # runs on the connection thread


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


class Store:
    """The only owner of durable state.  Create with `await Store.open(path)`."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: str,
        clock: Callable[[], float],
        max_batch: int,
        part_dedupe_window: float,
        mo_dedupe_window: float = DEFAULT_MO_DEDUPE_WINDOW_S,
    ) -> None:
        self._db = db
        self._path = path
        self._clock = clock
        self._max_batch = max_batch
        self._part_dedupe_window = part_dedupe_window
        self._mo_dedupe_window = mo_dedupe_window
        # When mo_seen was last pruned (connection thread only); 0: at the first MO.
        self._mo_seen_pruned_at = 0.0
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Future[None] | None = None
        self._closed = False
        # Next UDH/SAR reference per carrier.  Only touched on the connection thread (inside
        # writes), so it needs no lock.
        self._concat_refs: dict[str, int] = {}
        self.healthy: bool = True
        self.last_error: str | None = None
        self.commits: int = 0  # committed batches
        self.writes: int = 0  # writes in committed batches
        self.failed_batches: int = 0

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
        max_batch: int = 2000,
        part_dedupe_window: float = 3600.0,
        mo_dedupe_window: float = DEFAULT_MO_DEDUPE_WINDOW_S,
        components: Sequence[migrations.Component] = (),
        file_group: str | None = None,
    ) -> "Store":
        """Open (creating directories and file as needed) and migrate the schema.

        `busy_timeout`: seconds a write waits for another process's lock before the batch fails.
        `max_batch`: most writes per transaction, bounding how long one commit keeps callers waiting.
        `part_dedupe_window`: seconds during which a part identical to one of an already assembled
        long MO is treated as a redelivery and dropped.
        `mo_dedupe_window`: seconds during which an MO with the carrier id and the content of one
        already accepted is treated as a redelivery and dropped (smsgw/redelivery.py).
        `file_group`: the group that may read the files (0640); without one they are 0600
        (smsgw/files.py: a new store is created so, an existing one open to others is warned about).
        Raises `SchemaTooNew` if the file was written by a newer gateway.
        """
        files.prepare_store(path, file_group)
        # isolation_level=None: the sqlite3 module must not open transactions behind our back;
        # _run_batch issues BEGIN/COMMIT itself.
        db = await aiosqlite.connect(
            path, isolation_level=None, timeout=busy_timeout, cached_statements=256
        )
        try:
            store = cls(db, path, clock, max_batch, part_dedupe_window, mo_dedupe_window)
            before, after = await store._in_worker(store._setup, path, busy_timeout)
            for name, steps in components:
                await store._in_worker(migrations.migrate_component, name, steps, path)
            files.secure_store_companions(path, file_group)
        except BaseException:
            await db.close()
            raise
        log.info("store_opened", schema_from=before, schema_to=after)
        return store

    def _setup(self, conn: sqlite3.Connection, path: str, busy_timeout: float) -> tuple[int, int]:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal" and path != ":memory:":
            raise StoreUnavailable(f"could not switch the database to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")  # see module docstring: durable against kill -9
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")
        versions = migrations.migrate(conn, path)
        # Continue each carrier's reference sequence where the last run stopped, so a restart does
        # not reuse the reference of a long MT that may still be in flight.
        for carrier, ref in conn.execute(
            "SELECT carrier, concat_ref FROM outbound"
            " WHERE id IN (SELECT MAX(id) FROM outbound GROUP BY carrier)"
        ):
            self._concat_refs[carrier] = (ref + 1) % 256
        return versions

    async def close(self) -> None:
        """Commit every write already requested, then close.  Later calls raise StoreClosed."""
        if self._closed:
            return
        self._closed = True
        while self._flusher is not None:
            # shield: if close() itself is cancelled, the pending writes still complete.
            await asyncio.shield(self._flusher)
        try:
            await self._in_worker(lambda conn: conn.execute("PRAGMA optimize"))
        except sqlite3.Error:
            pass  # an optimiser hint is not worth failing shutdown for
        await self._db.close()
        log.info("store_closed", commits=self.commits, writes=self.writes)

    # ---------------------------------------------------------------- plumbing

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on aiosqlite's connection thread: one thread hop."""
        return await _on_connection_thread(self._db, fn, args)

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Queue a write for the next group commit; returns once it is COMMITTED."""
        if self._closed:
            raise StoreClosed("store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._flusher is None:
            # Started as a task, it first runs after the current callbacks, so writes requested
            # in the same loop iteration already share the first transaction.
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op(conn)` inside the next group-committed transaction; returns once COMMITTED.

        For feature modules (parking, transaction status) that own tables through a schema
        component: `op` runs on the store's thread, must be quick and must not commit itself.
        Raises StoreUnavailable when the batch could not be committed.
        """
        return await self._write(op)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the store's thread for a consistent read."""
        return await self._read(fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreClosed("store is closed")
        try:
            return await self._in_worker(fn, *args)
        except sqlite3.Error as exc:
            if isinstance(exc, _OP_ERRORS):
                raise
            raise StoreUnavailable(f"store read failed: {type(exc).__name__}: {exc}") from exc

    async def _flush(self) -> None:
        batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    outcomes = await self._in_worker(_run_batch, [op for op, _ in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._batch_failed(batch, exc)
                    batch = []
                    continue
                self._batch_committed(len(batch))
                for (ok, value), (_, future) in zip(outcomes, batch):
                    if future.done():  # caller gave up (cancelled); the write stands
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
                batch = []
        except asyncio.CancelledError:
            # Only when the loop is being torn down.  The batch may or may not have committed;
            # callers must treat it as not stored (the carrier redelivers, dedupe absorbs it).
            for _, future in batch + self._pending:
                if not future.done():
                    future.set_exception(StoreClosed("store writer cancelled"))
            self._pending.clear()
            raise
        finally:
            self._flusher = None

    def _batch_committed(self, size: int) -> None:
        self.commits += 1
        self.writes += size
        if not self.healthy:
            log.info("store_recovered", failed_batches=self.failed_batches)
            self.healthy = True
            self.last_error = None

    def _batch_failed(self, batch: list[tuple[Any, asyncio.Future[Any]]], exc: Exception) -> None:
        self.failed_batches += 1
        error = f"{type(exc).__name__}: {exc}"
        if self.healthy:
            log.error("store_unavailable", error=error, batch=len(batch))
        else:
            log.warning("store_write_failed", error=error, batch=len(batch))
        self.healthy = False
        self.last_error = error
        for _, future in batch:
            if not future.done():
                failure = StoreUnavailable(f"store write failed: {error}")
                failure.__cause__ = exc
                future.set_exception(failure)

    # ---------------------------------------------------------------- MO

    async def accept_mo(self, mo: NewMo) -> tuple[Inbound | None, bool]:
        """Store an MO; returns (stored Inbound, duplicate?) once COMMITTED.

        duplicate=True when the MO is a redelivery (smsgw/redelivery.py): the same carrier MO id
        with the same content was accepted within `mo_dedupe_window`; then the Inbound is the
        earlier row.  A None id never counts.
        """
        # Validate here so a bad value fails its caller at once, not inside a shared batch.
        channel, event = Channel(mo.channel), SessionEvent(mo.session_event)
        fingerprint = None
        if mo.carrier_msg_id is not None:
            fingerprint = content_hash(mo.msisdn, mo.short_code, mo.text, channel.value, mo.session_id, event.value)
        return await self._write(
            functools.partial(self._op_accept_mo, mo=mo, channel=channel, event=event, fingerprint=fingerprint)
        )

    def _op_accept_mo(
        self, conn: sqlite3.Connection, mo: NewMo, channel: Channel, event: SessionEvent, fingerprint: str | None
    ) -> tuple[Inbound | None, bool]:
        # Insert the MO, then claim its (carrier, id, content) with an upsert that takes over a
        # claim only once it is older than the window.  No claim means a redelivery: the MO just
        # inserted is taken out again (same transaction, never seen by anyone).  The upsert is the
        # whole decision, in SQL PostgreSQL runs as well: with several gateways on one database,
        # the second copy waits on the key and then finds it claimed.
        cur = conn.execute(
            "INSERT INTO inbound (carrier, carrier_msg_id, msisdn, short_code, text, data_coding,"
            " channel, session_id, session_event, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mo.carrier,
                mo.carrier_msg_id,
                mo.msisdn,
                mo.short_code,
                mo.text,
                mo.data_coding,
                channel.value,
                mo.session_id,
                event.value,
                mo.received_at,
            ),
        )
        inbound_id: int = cur.lastrowid  # type: ignore[assignment]
        if fingerprint is not None:
            self._prune_mo_seen(conn, mo.received_at)
            claimed = conn.execute(
                "INSERT INTO mo_seen (carrier, carrier_msg_id, content_hash, inbound_id, received_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (carrier, carrier_msg_id, content_hash) DO UPDATE"
                " SET inbound_id = excluded.inbound_id, received_at = excluded.received_at"
                " WHERE mo_seen.received_at < ?",
                (mo.carrier, mo.carrier_msg_id, fingerprint, inbound_id, mo.received_at,
                 mo.received_at - self._mo_dedupe_window),
            ).rowcount
            if claimed == 0:
                conn.execute("DELETE FROM inbound WHERE id = ?", (inbound_id,))
                row = conn.execute(
                    f"SELECT {_INBOUND_COLS} FROM inbound WHERE id = (SELECT inbound_id FROM mo_seen"
                    " WHERE carrier = ? AND carrier_msg_id = ? AND content_hash = ?)",
                    (mo.carrier, mo.carrier_msg_id, fingerprint),
                ).fetchone()
                return (_inbound(row) if row is not None else None), True
        inbound = Inbound(
            id=inbound_id,
            carrier=mo.carrier,
            msisdn=mo.msisdn,
            short_code=mo.short_code,
            text=mo.text,
            received_at=mo.received_at,
            channel=channel,
            session=event,
            session_id=mo.session_id,
        )
        return inbound, False

    def _prune_mo_seen(self, conn: sqlite3.Connection, now: float) -> None:
        """Forget claims older than the window, at most once a minute (the table stays window-sized)."""
        if now - self._mo_seen_pruned_at < _MO_SEEN_PRUNE_EVERY_S:
            return
        conn.execute("DELETE FROM mo_seen WHERE received_at < ?", (now - self._mo_dedupe_window,))
        self._mo_seen_pruned_at = now

    async def accept_mo_part(
        self, part: NewMoPart, assemble: Callable[[dict[int, bytes], int], str | None]
    ) -> tuple[Inbound | None, bool]:
        """Store one part of a long MO; once COMMITTED returns:

        (None, True)     the part was a duplicate (already stored, or part of a group assembled
                         within `part_dedupe_window` with the same body) and was ignored;
        (Inbound, False) the part completed its group: the Inbound (text from `assemble`) was
                         inserted and the group's parts removed, in the same transaction;
        (None, False)    stored, the group is still incomplete.

        `assemble(parts_by_seq, total)` runs inside the store's transaction on the connection
        thread: it must be pure and quick (decode and join).  It is called only once at least
        `total` parts are present; returning None means "not complete yet".  If it raises, the
        part is still kept (never lose a part) and the group is left to the reassembly timeout.
        """
        if part.total < 1:
            raise ValueError("a long MO has at least one part")
        return await self._write(functools.partial(self._op_accept_mo_part, part=part, assemble=assemble))

    def _op_accept_mo_part(
        self,
        conn: sqlite3.Connection,
        part: NewMoPart,
        assemble: Callable[[dict[int, bytes], int], str | None],
    ) -> tuple[Inbound | None, bool]:
        key = part.key
        if conn.execute(
            f"SELECT 1 FROM mo_part_done WHERE {_PART_KEY_WHERE} AND seq = ? AND body = ?"
            " AND done_at >= ? LIMIT 1",
            (*key, part.seq, part.body, part.received_at - self._part_dedupe_window),
        ).fetchone():
            return None, True
        cur = conn.execute(
            "INSERT INTO mo_part (carrier, msisdn, short_code, ref, total, seq, body, data_coding,"
            " carrier_msg_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (carrier, msisdn, short_code, ref, total, seq) DO NOTHING",
            (*key, part.seq, part.body, part.data_coding, part.carrier_msg_id, part.received_at),
        )
        if cur.rowcount == 0:
            return None, True
        rows = conn.execute(
            f"SELECT seq, body, data_coding, received_at FROM mo_part WHERE {_PART_KEY_WHERE}"
            " ORDER BY received_at, id",
            key,
        ).fetchall()
        if len(rows) < part.total:
            return None, False
        try:
            text = assemble({seq: body for seq, body, _, _ in rows}, part.total)
        except Exception as exc:
            log.error("mo_assemble_failed", carrier=part.carrier, error=type(exc).__name__)
            return None, False
        if text is None:
            return None, False
        # The message counts as received when its last part arrived.
        received_at = max(r[3] for r in rows)
        inbound = self._insert_assembled(conn, key, rows[0][2], text, received_at, len(rows), partial=False)
        return inbound, False

    def _insert_assembled(
        self,
        conn: sqlite3.Connection,
        key: PartKey,
        data_coding: int,
        text: str,
        received_at: float,
        n_parts: int,
        partial: bool,
    ) -> Inbound:
        carrier, msisdn, short_code, _, _ = key
        cur = conn.execute(
            "INSERT INTO inbound (carrier, carrier_msg_id, msisdn, short_code, text, data_coding,"
            " channel, session_id, session_event, received_at, parts, partial)"
            " VALUES (?, NULL, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
            (
                carrier,
                msisdn,
                short_code,
                text,
                data_coding,
                Channel.SMS.value,
                SessionEvent.NONE.value,
                received_at,
                n_parts,
                int(partial),
            ),
        )
        inbound_id = cur.lastrowid
        conn.execute(
            "DELETE FROM mo_part_done WHERE done_at < ?", (received_at - self._part_dedupe_window,)
        )
        conn.execute(
            "INSERT INTO mo_part_done (carrier, msisdn, short_code, ref, total, seq, body,"
            f" inbound_id, done_at) SELECT carrier, msisdn, short_code, ref, total, seq, body, ?, ?"
            f" FROM mo_part WHERE {_PART_KEY_WHERE}",
            (inbound_id, received_at, *key),
        )
        conn.execute(f"DELETE FROM mo_part WHERE {_PART_KEY_WHERE}", key)
        return Inbound(
            id=inbound_id,  # type: ignore[arg-type]
            carrier=carrier,
            msisdn=msisdn,
            short_code=short_code,
            text=text,
            received_at=received_at,
        )

    async def expired_part_groups(
        self, older_than: float
    ) -> list[tuple[PartKey, dict[int, bytes], dict[str, Any]]]:
        """Incomplete long MOs whose first part arrived before `older_than`.

        Each item: (key, {seq: body}, fields of the earliest-received part: carrier,
        carrier_msg_id, msisdn, short_code, data_coding, received_at, ref, total, seq).  Hand the
        key to `accept_partial`, with expected_seqs=the dict's keys.
        """
        return await self._read(self._op_expired_part_groups, older_than)

    @staticmethod
    def _op_expired_part_groups(
        conn: sqlite3.Connection, older_than: float
    ) -> list[tuple[PartKey, dict[int, bytes], dict[str, Any]]]:
        keys = conn.execute(
            "SELECT DISTINCT carrier, msisdn, short_code, ref, total FROM mo_part WHERE received_at < ?",
            (older_than,),
        ).fetchall()
        groups: list[tuple[PartKey, dict[int, bytes], dict[str, Any]]] = []
        for key in keys:
            rows = conn.execute(
                "SELECT seq, body, data_coding, carrier_msg_id, received_at FROM mo_part"
                f" WHERE {_PART_KEY_WHERE} ORDER BY received_at, id",
                key,
            ).fetchall()
            seq, _, data_coding, carrier_msg_id, received_at = rows[0]
            first = {
                "carrier": key[0],
                "carrier_msg_id": carrier_msg_id,
                "msisdn": key[1],
                "short_code": key[2],
                "data_coding": data_coding,
                "received_at": received_at,
                "ref": key[3],
                "total": key[4],
                "seq": seq,
            }
            groups.append((tuple(key), {r[0]: r[1] for r in rows}, first))  # type: ignore[arg-type]
        return groups

    async def accept_partial(
        self, key: PartKey, text: str, *, expected_seqs: Collection[int] | None = None
    ) -> Inbound:
        """Turn an expired, incomplete group into an Inbound and drop its parts, in one transaction.

        Raises LookupError if the group no longer exists (a late part completed it meanwhile), or,
        when `expected_seqs` is given, if its parts changed since `expired_part_groups` read them
        (a late part arrived: the caller should rebuild the text at the next sweep, so that part
        is not silently dropped).
        """
        key = tuple(key)  # type: ignore[assignment]
        seqs = frozenset(expected_seqs) if expected_seqs is not None else None
        return await self._write(functools.partial(self._op_accept_partial, key=key, text=text, seqs=seqs))

    def _op_accept_partial(
        self, conn: sqlite3.Connection, key: PartKey, text: str, seqs: frozenset[int] | None
    ) -> Inbound:
        rows = conn.execute(
            f"SELECT seq, data_coding, received_at FROM mo_part WHERE {_PART_KEY_WHERE} ORDER BY received_at, id",
            key,
        ).fetchall()
        if not rows:
            raise LookupError("no pending parts for that group (already assembled or accepted)")
        if seqs is not None and frozenset(r[0] for r in rows) != seqs:
            raise LookupError("the group's parts changed since they were read")
        received_at = max(r[2] for r in rows)
        return self._insert_assembled(conn, key, rows[0][1], text, received_at, len(rows), partial=True)

    async def complete_mo(
        self, inbound_id: int, replies: Sequence[NewMt], *, disposition: str | None = None
    ) -> list[Outbound]:
        """Mark the MO processed and queue its replies, in one transaction.

        `disposition`: why it was not answered normally ("muted", "limited", "ignored"), shown by
        `history` in place of "processed"; None for an MO answered normally.
        Idempotent: for an MO already processed nothing is inserted and [] is returned.  Replies
        without an inbound_id are linked to this MO.  Raises LookupError for an unknown id.
        """
        for mt in replies:
            Channel(mt.channel)
        return await self._write(
            functools.partial(self._op_complete_mo, inbound_id=inbound_id, replies=tuple(replies), at=self._clock(),
                              disposition=disposition)
        )

    def _op_complete_mo(
        self, conn: sqlite3.Connection, inbound_id: int, replies: tuple[NewMt, ...], at: float,
        disposition: str | None = None,
    ) -> list[Outbound]:
        cur = conn.execute(
            "UPDATE inbound SET processed_at = ?, disposition = ? WHERE id = ? AND processed_at IS NULL",
            (at, disposition, inbound_id),
        )
        if cur.rowcount == 0:
            if conn.execute("SELECT 1 FROM inbound WHERE id = ?", (inbound_id,)).fetchone() is None:
                raise LookupError(f"no inbound message {inbound_id}")
            return []
        return [self._insert_mt(conn, mt, inbound_id) for mt in replies]

    async def enqueue_mt(self, mt: NewMt) -> Outbound:
        """Store a standalone MT (notice, reminder) in state 'queued'; returns once COMMITTED."""
        Channel(mt.channel)
        return await self._write(functools.partial(self._insert_mt, mt=mt, inbound_id=None))

    def _next_concat_ref(self, carrier: str) -> int:
        # A carrier never seen starts at a random point, so references do not collide with
        # whatever an earlier, wiped installation left in flight.
        ref = self._concat_refs.get(carrier)
        if ref is None:
            ref = random.randrange(256)
        self._concat_refs[carrier] = (ref + 1) % 256
        return ref

    def insert_mt(self, conn: sqlite3.Connection, mt: NewMt) -> Outbound:
        """Insert an MT from inside a feature's `write` op, so it commits atomically with the
        feature's own change (a status change and its notification, a reminder and its flag).
        After the write returns, hand the Outbound to the queue (`ServiceContext.enqueue`)."""
        return self._insert_mt(conn, mt, None)

    def _insert_mt(self, conn: sqlite3.Connection, mt: NewMt, inbound_id: int | None) -> Outbound:
        link = mt.inbound_id if mt.inbound_id is not None else inbound_id
        concat_ref = self._next_concat_ref(mt.carrier)
        cur = conn.execute(
            "INSERT INTO outbound (carrier, msisdn, short_code, text, channel, session_id,"
            " end_session, kind, inbound_id, created_at, expires_at, state, concat_ref)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mt.carrier,
                mt.msisdn,
                mt.short_code,
                mt.text,
                mt.channel,
                mt.session_id,
                int(mt.end_session),
                mt.kind,
                link,
                mt.created_at,
                mt.expires_at,
                QUEUED,
                concat_ref,
            ),
        )
        return Outbound(
            id=cur.lastrowid,  # type: ignore[arg-type]
            carrier=mt.carrier,
            msisdn=mt.msisdn,
            short_code=mt.short_code,
            text=mt.text,
            channel=mt.channel,
            session_id=mt.session_id,
            end_session=mt.end_session,
            created_at=mt.created_at,
            expires_at=mt.expires_at,
            state=QUEUED,
            attempts=0,
            concat_ref=concat_ref,
            parts_sent={},
            kind=mt.kind,
            inbound_id=link,
        )

    async def unprocessed_mos(self) -> list[Inbound]:
        """MOs stored (and acknowledged) but never completed, oldest first: redo them at start-up."""
        return await self._read(self._op_unprocessed_mos)

    @staticmethod
    def _op_unprocessed_mos(conn: sqlite3.Connection) -> list[Inbound]:
        rows = conn.execute(
            f"SELECT {_INBOUND_COLS} FROM inbound WHERE processed_at IS NULL ORDER BY id"
        ).fetchall()
        return [_inbound(r) for r in rows]

    # ---------------------------------------------------------------- MT

    async def queued_mts(
        self, carrier: str | None = None, limit: int | None = None, after_id: int = 0
    ) -> list[Outbound]:
        """MTs in state 'queued' (including partly sent ones, see parts_sent), oldest first;
        `after_id` pages through a backlog larger than the queue keeps in memory."""
        return await self._read(self._op_queued_mts, carrier, limit, after_id)

    @staticmethod
    def _op_queued_mts(
        conn: sqlite3.Connection, carrier: str | None, limit: int | None, after_id: int = 0
    ) -> list[Outbound]:
        sql = f"SELECT {_OUTBOUND_COLS} FROM outbound WHERE state = ? AND id > ?"
        params: list[Any] = [QUEUED, after_id]
        if carrier is not None:
            sql += " AND carrier = ?"
            params.append(carrier)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = conn.execute(sql, params).fetchall()
        # Only MTs with a part already submitted have total_parts set; fetch parts just for those.
        started = [r[0] for r in rows if r[16] is not None]
        parts: dict[int, dict[int, str]] = {}
        for i in range(0, len(started), _IN_CHUNK):
            chunk = started[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for outbound_id, part_no, smsc_id in conn.execute(
                f"SELECT outbound_id, part_no, smsc_id FROM mt_part WHERE outbound_id IN ({marks})", chunk
            ):
                parts.setdefault(outbound_id, {})[part_no] = smsc_id
        return [_outbound(r, parts.get(r[0], {})) for r in rows]

    async def get_outbound(self, outbound_id: int) -> Outbound | None:
        return await self._read(self._op_get_outbound, outbound_id)

    @staticmethod
    def _op_get_outbound(conn: sqlite3.Connection, outbound_id: int) -> Outbound | None:
        row = conn.execute(f"SELECT {_OUTBOUND_COLS} FROM outbound WHERE id = ?", (outbound_id,)).fetchone()
        if row is None:
            return None
        parts = dict(
            conn.execute("SELECT part_no, smsc_id FROM mt_part WHERE outbound_id = ?", (outbound_id,)).fetchall()
        )
        return _outbound(row, parts)

    async def record_part_sent(
        self,
        outbound_id: int,
        part_no: int,
        total_parts: int,
        smsc_id: str,
        smsc_id_raw: str,
        sent_at: float,
    ) -> None:
        """Record a part's submit_sm_resp.  `smsc_id` must already be normalised (as record_dlr's).

        When all parts are recorded the MT becomes 'sent'.  Receipts that arrived before this
        response (stored unmatched) are matched now, so the MT may go straight to 'delivered'.
        A part submitted again (retry) replaces the earlier submission and its receipt state.
        """
        await self._write(
            functools.partial(
                self._op_record_part_sent,
                outbound_id=outbound_id,
                part_no=part_no,
                total_parts=total_parts,
                smsc_id=smsc_id,
                smsc_id_raw=smsc_id_raw,
                sent_at=sent_at,
            )
        )

    def _op_record_part_sent(
        self,
        conn: sqlite3.Connection,
        outbound_id: int,
        part_no: int,
        total_parts: int,
        smsc_id: str,
        smsc_id_raw: str,
        sent_at: float,
    ) -> None:
        row = conn.execute("SELECT carrier, state FROM outbound WHERE id = ?", (outbound_id,)).fetchone()
        if row is None:
            raise LookupError(f"no outbound message {outbound_id}")
        carrier, state = row
        conn.execute(
            "INSERT INTO mt_part (outbound_id, part_no, total_parts, carrier, smsc_id, smsc_id_raw, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (outbound_id, part_no) DO UPDATE SET total_parts = excluded.total_parts,"
            " smsc_id = excluded.smsc_id, smsc_id_raw = excluded.smsc_id_raw, sent_at = excluded.sent_at,"
            " dlr_state = NULL, dlr_error = NULL, dlr_final = 0, dlr_at = NULL",
            (outbound_id, part_no, total_parts, carrier, smsc_id, smsc_id_raw, sent_at),
        )
        early = conn.execute(
            "SELECT id, state, error, final, received_at FROM dlr"
            " WHERE carrier = ? AND smsc_id = ? AND outbound_id IS NULL ORDER BY id",
            (carrier, smsc_id),
        ).fetchall()
        for dlr_id, dlr_state, error, final, received_at in early:
            self._apply_receipt(conn, outbound_id, part_no, dlr_state, error, bool(final), received_at)
            conn.execute(
                "UPDATE dlr SET outbound_id = ?, part_no = ? WHERE id = ?", (outbound_id, part_no, dlr_id)
            )
        new_state = state
        if state in _OPEN_STATES:
            if total_parts == 1 and not early:
                new_state = SENT  # the common case, without counting parts
            else:
                new_state = self._parts_state(conn, outbound_id, total_parts) or state
        conn.execute(
            "UPDATE outbound SET total_parts = ?, state = ?, updated_at = ? WHERE id = ?",
            (total_parts, new_state, sent_at, outbound_id),
        )

    async def record_attempt(self, outbound_id: int, attempts: int, error: str | None) -> None:
        """Record the number of submit attempts so far and the last temporary error."""
        await self._write(
            functools.partial(
                self._op_record_attempt, outbound_id=outbound_id, attempts=attempts, error=error, at=self._clock()
            )
        )

    @staticmethod
    def _op_record_attempt(
        conn: sqlite3.Connection, outbound_id: int, attempts: int, error: str | None, at: float
    ) -> None:
        cur = conn.execute(
            "UPDATE outbound SET attempts = ?, last_error = ?, updated_at = ? WHERE id = ?",
            (attempts, error, at, outbound_id),
        )
        if cur.rowcount == 0:
            raise LookupError(f"no outbound message {outbound_id}")

    async def record_final(self, outbound_id: int, state: str, reason: str | None, at: float) -> None:
        """Give up on an MT: state 'failed' (permanent error, retries exhausted) or 'expired'.

        Applies only while the MT is queued or sent; a final state already reached is kept.
        """
        if state not in (FAILED, EXPIRED):
            raise ValueError(f"record_final state must be {FAILED!r} or {EXPIRED!r}, not {state!r}")
        await self._write(
            functools.partial(self._op_record_final, outbound_id=outbound_id, state=state, reason=reason, at=at)
        )

    @staticmethod
    def _op_record_final(conn: sqlite3.Connection, outbound_id: int, state: str, reason: str | None, at: float) -> None:
        cur = conn.execute(
            "UPDATE outbound SET state = ?, reason = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
            (state, reason, at, outbound_id, *_OPEN_STATES),
        )
        if cur.rowcount == 0 and conn.execute("SELECT 1 FROM outbound WHERE id = ?", (outbound_id,)).fetchone() is None:
            raise LookupError(f"no outbound message {outbound_id}")

    async def record_dlr(
        self, carrier: str, smsc_id: str, state: str, error: str | None, final: bool, raw: str, at: float
    ) -> int | None:
        """Store a delivery receipt and match it to the MT part (carrier, normalised smsc_id).

        `state` is the receipt's stat value (DELIVRD, UNDELIV, EXPIRED, REJECTD, ENROUTE...).
        When every part of the MT has a final receipt, the MT becomes 'delivered' (all DELIVRD) or
        'undelivered'.  Returns the outbound id, or None if no part matches yet: the receipt is
        kept and matched by record_part_sent when the submit_sm_resp arrives.
        """
        return await self._write(
            functools.partial(
                self._op_record_dlr,
                carrier=carrier,
                smsc_id=smsc_id,
                state=state.upper(),
                error=error,
                final=final,
                raw=raw,
                at=at,
            )
        )

    def _op_record_dlr(
        self,
        conn: sqlite3.Connection,
        carrier: str,
        smsc_id: str,
        state: str,
        error: str | None,
        final: bool,
        raw: str,
        at: float,
    ) -> int | None:
        # Newest submission first: SMSC ids can be reused over months.
        row = conn.execute(
            "SELECT p.outbound_id, p.part_no, o.state, o.total_parts FROM mt_part AS p"
            " JOIN outbound AS o ON o.id = p.outbound_id"
            " WHERE p.carrier = ? AND p.smsc_id = ? ORDER BY p.id DESC LIMIT 1",
            (carrier, smsc_id),
        ).fetchone()
        outbound_id, part_no, mt_state, total = row if row is not None else (None, None, None, None)
        conn.execute(
            "INSERT INTO dlr (carrier, smsc_id, outbound_id, part_no, state, error, final, raw, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (carrier, smsc_id, outbound_id, part_no, state, error, int(final), raw, at),
        )
        if outbound_id is None:
            return None
        applied = self._apply_receipt(conn, outbound_id, part_no, state, error, final, at)
        if applied and mt_state in _OPEN_STATES and total:
            if total == 1:  # the common case: this receipt alone decides, no need to count parts
                new_state = (DELIVERED if state == DLR_DELIVERED else UNDELIVERED) if final else SENT
            else:
                new_state = self._parts_state(conn, outbound_id, total) or mt_state
            if new_state != mt_state:
                conn.execute(
                    "UPDATE outbound SET state = ?, updated_at = ? WHERE id = ?", (new_state, at, outbound_id)
                )
        return outbound_id

    @staticmethod
    def _apply_receipt(
        conn: sqlite3.Connection,
        outbound_id: int,
        part_no: int,
        state: str,
        error: str | None,
        final: bool,
        at: float,
    ) -> bool:
        """Put a receipt on its part; False if ignored (a late intermediate after a final one)."""
        # An intermediate receipt (ENROUTE, ACCEPTD) arriving late must not undo a final one.
        cur = conn.execute(
            "UPDATE mt_part SET dlr_state = ?, dlr_error = ?, dlr_final = ?, dlr_at = ?"
            " WHERE outbound_id = ? AND part_no = ? AND (dlr_final = 0 OR ?)",
            (state, error, int(final), at, outbound_id, part_no, int(final)),
        )
        return cur.rowcount > 0

    @staticmethod
    def _parts_state(conn: sqlite3.Connection, outbound_id: int, total: int) -> str | None:
        """The state an MT's parts imply: sent, delivered or undelivered; None while a part is unsent."""
        sent, finals, delivered = conn.execute(
            "SELECT COUNT(*), TOTAL(dlr_final), TOTAL(dlr_final AND dlr_state = ?) FROM mt_part WHERE outbound_id = ?",
            (DLR_DELIVERED, outbound_id),
        ).fetchone()
        if sent < total:
            return None
        if finals >= total:
            return DELIVERED if delivered >= total else UNDELIVERED
        return SENT

    async def outbound_state(self, outbound_id: int) -> dict[str, Any]:
        """State, reason and per-part receipt states of one MT ({} if unknown); for tests and admin."""
        return await self._read(self._op_outbound_state, outbound_id)

    @staticmethod
    def _op_outbound_state(conn: sqlite3.Connection, outbound_id: int) -> dict[str, Any]:
        row = conn.execute(
            "SELECT state, reason, attempts, last_error, total_parts, updated_at FROM outbound WHERE id = ?",
            (outbound_id,),
        ).fetchone()
        if row is None:
            return {}
        parts = conn.execute(
            "SELECT part_no, smsc_id, smsc_id_raw, sent_at, dlr_state, dlr_error, dlr_final, dlr_at"
            " FROM mt_part WHERE outbound_id = ? ORDER BY part_no",
            (outbound_id,),
        ).fetchall()
        return {
            "id": outbound_id,
            "state": row[0],
            "reason": row[1],
            "attempts": row[2],
            "last_error": row[3],
            "total_parts": row[4],
            "updated_at": row[5],
            "parts": [
                {
                    "part_no": p[0],
                    "smsc_id": p[1],
                    "smsc_id_raw": p[2],
                    "sent_at": p[3],
                    "dlr_state": p[4],
                    "dlr_error": p[5],
                    "dlr_final": bool(p[6]),
                    "dlr_at": p[7],
                }
                for p in parts
            ],
        }

    # ---------------------------------------------------------------- support and metrics

    async def history(
        self, msisdn: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """MO and MT rows, newest first, for support staff.  Contains full numbers and texts:
        mask before logging or showing them anywhere else."""
        return await self._read(self._op_history, msisdn, since, limit)

    @staticmethod
    def _op_history(
        conn: sqlite3.Connection, msisdn: str | None, since: float | None, limit: int
    ) -> list[dict[str, Any]]:
        def where(time_col: str) -> tuple[str, list[Any]]:
            clauses, params = [], []
            if msisdn is not None:
                clauses.append("msisdn = ?")
                params.append(msisdn)
            if since is not None:
                clauses.append(f"{time_col} >= ?")
                params.append(since)
            return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

        mo_where, mo_params = where("received_at")
        mt_where, mt_params = where("created_at")
        items: list[dict[str, Any]] = []
        for r in conn.execute(
            "SELECT id, carrier, msisdn, short_code, text, channel, session_event, received_at,"
            f" processed_at, partial, parts, disposition FROM inbound{mo_where} ORDER BY received_at DESC LIMIT ?",
            (*mo_params, limit),
        ):
            items.append(
                {
                    "direction": "mo",
                    "id": r[0],
                    "carrier": r[1],
                    "msisdn": r[2],
                    "short_code": r[3],
                    "text": r[4],
                    "channel": r[5],
                    "session_event": r[6],
                    "at": r[7],
                    # muted / limited / ignored: stored and acknowledged, not answered as asked.
                    "state": (r[11] or "processed") if r[8] is not None else "received",
                    "processed_at": r[8],
                    "partial": bool(r[9]),
                    "parts": r[10],
                }
            )
        for r in conn.execute(
            "SELECT id, carrier, msisdn, short_code, text, channel, created_at, state, reason, kind,"
            f" inbound_id, attempts, total_parts FROM outbound{mt_where} ORDER BY created_at DESC LIMIT ?",
            (*mt_params, limit),
        ):
            items.append(
                {
                    "direction": "mt",
                    "id": r[0],
                    "carrier": r[1],
                    "msisdn": r[2],
                    "short_code": r[3],
                    "text": r[4],
                    "channel": r[5],
                    "at": r[6],
                    "state": r[7],
                    "reason": r[8],
                    "kind": r[9],
                    "inbound_id": r[10],
                    "attempts": r[11],
                    "parts": r[12],
                }
            )
        items.sort(key=lambda item: (item["at"], item["direction"] == "mt", item["id"]), reverse=True)
        return items[:limit]

    async def counts(self) -> dict[str, int]:
        """Rows per state: mo_received (all MOs), mo_unprocessed, mo_parts_pending, mt_<state> for
        every MT state, dlr_unmatched."""
        return await self._read(self._op_counts)

    @staticmethod
    def _op_counts(conn: sqlite3.Connection) -> dict[str, int]:
        counts = {
            "mo_received": conn.execute("SELECT COUNT(*) FROM inbound").fetchone()[0],
            "mo_unprocessed": conn.execute("SELECT COUNT(*) FROM inbound WHERE processed_at IS NULL").fetchone()[0],
            "mo_parts_pending": conn.execute("SELECT COUNT(*) FROM mo_part").fetchone()[0],
        }
        counts.update({f"mt_{state}": 0 for state in MT_STATES})
        for state, n in conn.execute("SELECT state, COUNT(*) FROM outbound GROUP BY state"):
            counts[f"mt_{state}"] = n
        counts["dlr_unmatched"] = conn.execute("SELECT COUNT(*) FROM dlr WHERE outbound_id IS NULL").fetchone()[0]
        return counts
