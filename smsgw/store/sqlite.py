"""The embedded engine: one SQLite file in WAL mode; small batches on the loop's thread, the rest
on aiosqlite's connection thread.

* journal_mode=WAL with synchronous=NORMAL: a committed transaction is in the WAL file (written to
  the OS) before COMMIT returns, so it survives the process being killed (kill -9, crash, OOM),
  which is the fault model we design for.  Only an OS crash or power loss can lose the last few
  transactions (never corrupt the file); synchronous=FULL would close that gap at the cost of one
  fsync per batch.
* BEGIN IMMEDIATE takes the write lock when a batch starts, so "locked" fails there (after
  busy_timeout), before any work, rather than at COMMIT.
* Errors of one write (constraint, bad data, a bug) roll back that write only; every other
  sqlite3.Error (disk full, I/O error, locked beyond busy_timeout) is the database failing.

Batches commit on the loop's own thread
---------------------------------------
A group-commit batch is a few dozen small statements and a COMMIT that only writes to the WAL
(no fsync, see above).  Handing it to another thread and back (a queue, a futex wake-up, a call
into the loop and its wake-up) cost about as much as the batch, and the MO's acknowledgement
waited for both hops.  So batches of up to `INLINE_MAX` writes run on the loop's thread, on a
connection of their own (the "batch connection"), which must never make the loop wait:
* for a lock: its busy_timeout is 0; a batch that finds the file locked (by another process, or
  by a checkpoint on the worker) runs on aiosqlite's worker thread instead, which waits there;
* for a disk: it never checkpoints (wal_autocheckpoint = 0), since a checkpoint fsyncs.  The
  worker runs one every `CHECKPOINT_EVERY` inline commits: PASSIVE (it takes no lock a writer
  needs), or RESTART once the WAL has passed `WAL_RESTART_PAGES` pages, since passive checkpoints
  racing steady commits never let it start over.  A RESTART holds the write lock while it waits
  for other processes' readers, so it waits at most `RESTART_WAIT_S`, and after one a reader
  kept from finishing, the next few are passive again;
* for a long commit: a larger batch (start-up's backlog, a retention sweep) runs on the worker.
Reads, migrations and `call` stay on aiosqlite's connection and thread.  An in-memory database
cannot be shared by two connections, so it keeps everything on the worker.
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from smsgw import files, migrations
from smsgw.log import get_logger
from smsgw.migrations import Component
from smsgw.store.engine import Engine, Op, Outcome

T = TypeVar("T")

# Errors that belong to one write (bad data, a bug in that write): roll back that write only.
# Every other sqlite3.Error is the database failing and aborts the whole batch.
_OP_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError)

#: Another connection holds the lock a batch needs.
_LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

log = get_logger(__name__)


class SqliteEngine(Engine):
    name = "sqlite"
    BEGIN_WRITE = "BEGIN IMMEDIATE"

    #: Batches of at most this many writes commit on the loop's thread (see the module notes).
    INLINE_MAX = 256
    #: Inline commits between two checkpoints on the worker.
    CHECKPOINT_EVERY = 64
    #: WAL pages beyond which the next checkpoint is RESTART.
    WAL_RESTART_PAGES = 8000
    #: Passive checkpoints before RESTART is tried again after one a reader kept from finishing.
    PASSIVE_AFTER_BUSY_RESTART = 8

    def __init__(self, db: aiosqlite.Connection, path: str, file_group: str | None = None,
                 busy_timeout: float = 5.0) -> None:
        self._db = db
        self.path = path
        self.file_group = file_group
        self.busy_timeout = busy_timeout  # the worker's: a RESTART checkpoint puts it back after
        self._batch_conn: sqlite3.Connection | None = None  # used on the loop's thread only
        self._since_checkpoint = 0
        self._restart_next = False
        self._passive_left = 0
        self._checkpoint: asyncio.Future[None] | None = None
        self.inline_batches = 0
        self.worker_batches = 0
        self.checkpoints = 0
        self.restarts = 0  # of them in RESTART mode

    @classmethod
    async def open(cls, path: str, busy_timeout: float = 5.0, file_group: str | None = None) -> "SqliteEngine":
        files.prepare_store(path, file_group)
        # isolation_level=None: the sqlite3 module must not open transactions behind our back;
        # the batch runner issues BEGIN/COMMIT itself.
        db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout, cached_statements=256)
        engine = cls(db, path, file_group, busy_timeout)
        try:
            await engine.call(_setup, path, busy_timeout)
        except BaseException:
            await db.close()
            raise
        return engine

    @property
    def description(self) -> str:
        return self.path

    async def size_bytes(self) -> int | None:
        total, found = 0, False
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.path.getsize(self.path + suffix)
                found = True
            except OSError:
                continue
        return total if found else None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await _on_connection_thread(self._db, fn, args)

    async def run_batch(self, ops: Sequence[Op]) -> list[Outcome]:
        conn = self._batch_conn
        if conn is not None and len(ops) <= self.INLINE_MAX:
            try:
                outcomes = self.attempt_batch(conn, ops)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in _LOCKED:
                    raise
                # Locked by another connection: nothing was committed, and writes may run again.
            else:
                self.inline_batches += 1
                self._committed_inline()
                return outcomes
        self.worker_batches += 1
        return await self.call(self.attempt_batch, ops)

    def _open_batch_connection(self) -> None:
        """Once the schema is migrated, so that its statement cache starts on the final schema."""
        if self.path == ":memory:" or self._batch_conn is not None:
            return
        # check_same_thread off only because a test's loop may not be on the thread that opened
        # the store; the connection is still used by the loop's thread alone.
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0, cached_statements=256,
                               check_same_thread=False)
        try:
            _setup(conn, self.path, 0)
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        self._batch_conn = conn

    def _committed_inline(self) -> None:
        self._since_checkpoint += 1
        if self._since_checkpoint >= self.CHECKPOINT_EVERY and self._checkpoint is None:
            self._since_checkpoint = 0
            self._checkpoint = asyncio.ensure_future(self._run_checkpoint())

    async def _run_checkpoint(self) -> None:
        restart = self._restart_next
        mode = "RESTART" if restart else "PASSIVE"
        try:
            busy, wal_pages, _ = await self.call(_checkpoint, mode, self.busy_timeout)
        except sqlite3.Error as exc:
            # Nothing is lost: the WAL keeps every commit until a later checkpoint succeeds.
            log.warning("store_checkpoint_failed", mode=mode, error=f"{type(exc).__name__}: {exc}")
        else:
            self.checkpoints += 1
            if restart:
                self.restarts += 1
                self._restart_next = False
                # A reader elsewhere kept the WAL: passive ones until it has had time to go,
                # rather than making writers wait RESTART_WAIT_S every few commits.
                self._passive_left = self.PASSIVE_AFTER_BUSY_RESTART if busy else 0
            elif self._passive_left > 0:
                self._passive_left -= 1
            else:
                self._restart_next = wal_pages >= self.WAL_RESTART_PAGES
        finally:
            self._checkpoint = None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        # Reads run in autocommit on the writer's own thread: no write of this process can
        # interleave with them, and WAL lets other processes' readers and writers in beside.
        return await self.call(fn, *args)

    async def migrate(self, components: Sequence[Component], location: str) -> tuple[int, int]:
        versions = await self.call(migrations.migrate, location)
        for name, steps in components:
            await self.call(migrations.migrate_component, name, steps, location)
        files.secure_store_companions(self.path, self.file_group)  # -wal and -shm exist by now
        self._open_batch_connection()
        return versions

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.shield(self._checkpoint)
        if self._batch_conn is not None:
            self._batch_conn.close()
            self._batch_conn = None
            log.info("store_batches", inline=self.inline_batches, worker=self.worker_batches,
                     checkpoints=self.checkpoints, restarts=self.restarts)
        try:
            await self.call(lambda conn: conn.execute("PRAGMA optimize"))
        except sqlite3.Error:
            pass  # an optimiser hint is not worth failing shutdown for
        await self._db.close()

    async def on_each_connection(self, fn: Callable[[Any], Any]) -> None:
        await self.call(fn)
        if self._batch_conn is not None:
            fn(self._batch_conn)

    def is_op_error(self, exc: BaseException) -> bool:
        return not isinstance(exc, sqlite3.Error) or isinstance(exc, _OP_ERRORS)

    def rollback_quietly(self, conn: Any) -> None:
        # After SQLITE_FULL or IOERR SQLite may already have rolled back by itself.
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass


#: How long a RESTART checkpoint waits for the write lock and for other readers: meanwhile every
#: batch waits behind it, so it gives up early and a later one tries again.
RESTART_WAIT_S = 0.05


def _checkpoint(conn: sqlite3.Connection, mode: str, busy_timeout: float) -> tuple[int, int, int]:
    """(busy, WAL pages, pages checkpointed); runs on the worker's connection."""
    if mode != "RESTART":
        return conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {int(RESTART_WAIT_S * 1000)}")
    try:
        return conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")


def _setup(conn: sqlite3.Connection, path: str, busy_timeout: float) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal" and path != ":memory:":
        from smsgw.store.types import StoreUnavailable

        raise StoreUnavailable(f"could not switch the database to WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous = NORMAL")  # see module docstring: durable against kill -9
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    # The functions shared SQL may use beyond SQLite's core set (see smsgw/store/__init__.py);
    # builds without the math functions get them from Python.
    try:
        conn.execute("SELECT floor(1.5)")
    except sqlite3.OperationalError:
        conn.create_function("floor", 1, lambda x: None if x is None else math.floor(x), deterministic=True)


# The ONE use of aiosqlite's private API.  aiosqlite offers no public "run this function on the
# connection thread"; `Connection._execute` is the primitive all its public methods are built on,
# and `Connection._conn` is the sqlite3 connection it owns.  Running a whole batch as one function
# is what makes group commit cost one thread hop, so we rely on both, here only.
# tests/test_store.py::test_aiosqlite_private_api fails loudly if aiosqlite changes them.
async def _on_connection_thread(db: aiosqlite.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return await db._execute(_call_with_connection, db, fn, args)


def _call_with_connection(db: aiosqlite.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(db._conn, *args)  # runs on the connection thread
