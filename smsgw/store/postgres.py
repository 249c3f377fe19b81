"""The engine for several nodes: PostgreSQL through psycopg 3, on one thread per store.

Chosen by measurement (scripts/bench_pg_drivers.py): a synchronous psycopg connection on one
thread, a whole group-commit batch run there as one function, gives twice the writes per
second of asyncpg or psycopg's async API at half the event-loop CPU, and it keeps the store's
contract that a write is a plain function of a DB-API connection.

* Isolation.  On SQLite every write runs alone (one writer), so "is this plate parked? then
  extend, else insert" cannot interleave with another booking.  Several nodes write to one
  PostgreSQL at once, so batches run SERIALIZABLE: PostgreSQL aborts a transaction whose
  outcome would differ from some one-at-a-time order (SQLSTATE 40001), and the batch runs again
  (writes are functions of the database and their arguments, so a re-run is correct).  A batch
  that keeps conflicting is split into one transaction per write.  Reads run in a REPEATABLE
  READ, READ ONLY snapshot.
* Failures.  A lost connection, a server shutting down, a lock or statement timeout fail the
  batch (every caller gets StoreUnavailable) and the next batch reconnects.  If the connection
  is lost during COMMIT the outcome is unknown; callers treat it as not stored, which is safe
  because every write the gateway retries is idempotent (MO dedupe, complete_mo, receipts).
* A dead server or network is noticed within seconds, not the kernel's minutes: TCP keepalives
  and tcp_user_timeout on the connection, lock_timeout and statement_timeout on the session.
  Seen from the server, a client that stopped or vanished mid-transaction is ended after
  IDLE_IN_TRANSACTION_S, and the locks it held go with it.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.adapt
from psycopg import errors as pgerrors
from psycopg.pq import TransactionStatus

from smsgw import migrations
from smsgw.log import get_logger
from smsgw.migrations import Component
from smsgw.store.dialect import PgDialect
from smsgw.store.engine import Engine, Op, Outcome

log = get_logger(__name__)

T = TypeVar("T")

#: Whole-batch re-runs after a serialization conflict before splitting it into single writes.
BATCH_CONFLICT_RETRIES = 3
#: Re-runs of one write alone before it fails (its caller sees StoreUnavailable).
SINGLE_CONFLICT_RETRIES = 20
#: The migration lock: one node at a time creates or upgrades the schema.
_MIGRATION_LOCK = zlib.crc32(b"smsgw.migrations")
#: A transaction of ours never waits on its client: its statements follow one another on one
#: thread.  One that idles this long belongs to a process stopped or cut off mid-transaction;
#: the server ends it, so that the locks it holds (the cluster's lease lock among them,
#: smsgw/cluster.py) are not held until TCP keepalives notice, hours later by default.  Short
#: enough that the other nodes' heartbeats, waiting on that lock, still come in time.
IDLE_IN_TRANSACTION_S = 2.0

_CONFLICTS = (pgerrors.SerializationFailure, pgerrors.DeadlockDetected)
_OP_ERRORS = (psycopg.IntegrityError, psycopg.DataError, psycopg.ProgrammingError, psycopg.NotSupportedError)


class _NumericLoader(psycopg.adapt.Loader):
    """numeric → int when whole (SUM of integers is numeric in PostgreSQL, an int in SQLite)."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def _adapt(params: Any) -> Any:
    """Parameters as SQLite takes them: bool as 0/1 (the schema's INTEGER flags), and text without
    NUL (PostgreSQL text cannot hold U+0000; an SMS decoded with one keeps a U+FFFD there)."""
    if not params:
        return params
    for p in params:
        cls = p.__class__
        if cls is bool or (cls is str and "\x00" in p):
            break
    else:
        return params
    return [int(p) if p.__class__ is bool else p.replace("\x00", "\ufffd") if p.__class__ is str else p
            for p in params]


class PgCursor:
    """A statement's result with the sqlite3 cursor's surface (fetch on a non-query is empty)."""

    __slots__ = ("_cur", "lastrowid", "rowcount")

    def __init__(self, cur: psycopg.Cursor[Any], returns_id: bool) -> None:
        self._cur = cur
        self.rowcount = cur.rowcount
        self.lastrowid: int | None = None
        if returns_id:
            rows = cur.fetchall()
            self.lastrowid = rows[-1][0] if rows else None

    @property
    def description(self) -> Any:
        return self._cur.description

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall() if self._cur.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cur) if self._cur.description is not None else iter(())


class PgConnection:
    """psycopg's connection with sqlite3's calls: what store ops and feature ops are written to."""

    def __init__(self, raw: psycopg.Connection[Any], dialect: PgDialect) -> None:
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        text, returns_id = self.dialect.translate(sql)
        cur = self.raw.cursor()
        cur.execute(text, _adapt(params))  # type: ignore[arg-type]
        return PgCursor(cur, returns_id)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> PgCursor:
        text, _ = self.dialect.translate(sql)
        if text.endswith(" RETURNING id"):
            text = text[: -len(" RETURNING id")]
        cur = self.raw.cursor()
        cur.executemany(text, [_adapt(p) for p in seq])  # type: ignore[arg-type]
        return PgCursor(cur, False)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def usable(self) -> bool:
        return not self.raw.closed and not self.raw.broken

    def close(self) -> None:
        self.raw.close()


def describe_url(url: str) -> str:
    """The URL without its password, for logs and the status API."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class PostgresEngine(Engine):
    name = "postgresql"
    BEGIN_WRITE = "BEGIN ISOLATION LEVEL SERIALIZABLE"

    def __init__(self, url: str, *, application_name: str, busy_timeout: float,
                 statement_timeout: float = 30.0) -> None:
        self.url = url
        self.application_name = application_name
        self.busy_timeout = busy_timeout
        self.statement_timeout = statement_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smsgw-store")
        self._conn: PgConnection | None = None  # only touched on the executor's thread
        self._dialect = PgDialect()
        self._connected_once = False
        self.conflicts = 0  # serialization conflicts that made a batch run again
        self.reconnects = 0

    @classmethod
    async def open(cls, url: str, *, application_name: str = "smsgw", busy_timeout: float = 5.0) -> "PostgresEngine":
        engine = cls(url, application_name=application_name, busy_timeout=busy_timeout)
        try:
            await engine.call(lambda conn: None)  # connect now: a wrong URL fails the start
        except BaseException:
            await engine.close()
            raise
        return engine

    @property
    def description(self) -> str:
        return describe_url(self.url)

    # ------------------------------------------------------------------ the thread

    def _connect(self) -> PgConnection:
        raw = psycopg.connect(
            self.url,
            autocommit=True,  # transactions are opened by BEGIN statements of ours only
            application_name=self.application_name,
            connect_timeout=max(1, int(round(self.busy_timeout))),
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
            tcp_user_timeout=int(self.busy_timeout * 2000),
            options=(f"-c lock_timeout={int(self.busy_timeout * 1000)}"
                     f" -c statement_timeout={int(self.statement_timeout * 1000)}"
                     f" -c idle_in_transaction_session_timeout={int(IDLE_IN_TRANSACTION_S * 1000)}"),
        )
        raw.adapters.register_loader("numeric", _NumericLoader)
        conn = PgConnection(raw, self._dialect)
        if self._connected_once:
            self.reconnects += 1
            log.info("store_reconnected", store=self.description)
        self._connected_once = True
        self._refresh_identity(conn)
        return conn

    def _refresh_identity(self, conn: PgConnection) -> None:
        rows = conn.raw.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND column_name = 'id' AND is_identity = 'YES'"
        ).fetchall()
        self._dialect.set_identity_tables([r[0] for r in rows])

    def _connection(self) -> PgConnection:
        conn = self._conn
        if conn is None or not conn.usable:
            if conn is not None:
                try:
                    conn.close()
                except psycopg.Error:
                    pass
            self._conn = None
            conn = self._connect()
            self._conn = conn
        return conn

    def _on_thread(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._connection()
        try:
            return fn(conn, *args)
        except pgerrors.ReadOnlySqlTransaction:
            # Connected to a server that is (now) a standby, after a failover: drop it, so the
            # next call connects again (libpq's target_session_attrs=read-write finds the primary).
            conn.close()
            raise
        finally:
            if not conn.usable:
                self._conn = None  # the next call reconnects

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_thread, fn, args)

    # ------------------------------------------------------------------ transactions

    async def run_batch(self, ops: Sequence[Op]) -> list[Outcome]:
        return await self.call(self._batch, ops)

    def _batch(self, conn: PgConnection, ops: Sequence[Op]) -> list[Outcome]:
        for attempt in range(BATCH_CONFLICT_RETRIES):
            try:
                return self.attempt_batch(conn, ops)
            except _CONFLICTS:
                self.conflicts += 1
                if len(ops) == 1:
                    return self._single(conn, ops[0], attempt + 1)
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        # Still conflicting: another node keeps touching what this batch reads.  Each write alone
        # conflicts less and is retried on its own.
        log.info("store_batch_split", writes=len(ops))
        outcomes: list[Outcome] = []
        for op in ops:
            outcomes.extend(self._single(conn, op, 0))
        return outcomes

    def _single(self, conn: PgConnection, op: Op, tries: int) -> list[Outcome]:
        for attempt in range(tries, SINGLE_CONFLICT_RETRIES):
            try:
                return self.attempt_batch(conn, [op])
            except _CONFLICTS:
                self.conflicts += 1
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        return self.attempt_batch(conn, [op])  # the last try: a conflict now fails the write

    async def size_bytes(self) -> int | None:
        return await self.read(lambda conn: conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.call(self._snapshot, fn, args)

    def _snapshot(self, conn: PgConnection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            result = fn(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            self.rollback_quietly(conn)
            raise
        return result

    async def migrate(self, components: Sequence[Component], location: str) -> tuple[int, int]:
        begin = ("BEGIN", f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        shown = describe_url(location)
        versions = await self.call(migrations.migrate, shown, begin)
        for name, steps in components:
            await self.call(migrations.migrate_component, name, steps, shown, begin)
        await self.call(self._refresh_identity)
        return versions

    async def close(self) -> None:
        def shut(_conn: Any = None) -> None:
            if self._conn is not None:
                try:
                    self._conn.close()
                except psycopg.Error:
                    pass
                self._conn = None

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=False)

    def is_op_error(self, exc: BaseException) -> bool:
        if isinstance(exc, psycopg.Error):
            return isinstance(exc, _OP_ERRORS)
        return True

    def rollback_quietly(self, conn: Any) -> None:
        if conn.usable and conn.in_transaction:
            try:
                conn.raw.execute("ROLLBACK")
            except psycopg.Error:
                pass
