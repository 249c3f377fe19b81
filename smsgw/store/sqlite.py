"""The embedded engine: one SQLite file in WAL mode, on aiosqlite's connection thread.

* journal_mode=WAL with synchronous=NORMAL: a committed transaction is in the WAL file (written to
  the OS) before COMMIT returns, so it survives the process being killed (kill -9, crash, OOM),
  which is the fault model we design for.  Only an OS crash or power loss can lose the last few
  transactions (never corrupt the file); synchronous=FULL would close that gap at the cost of one
  fsync per batch.
* BEGIN IMMEDIATE takes the write lock when a batch starts, so "locked" fails there (after
  busy_timeout), before any work, rather than at COMMIT.
* Errors of one write (constraint, bad data, a bug) roll back that write only; every other
  sqlite3.Error (disk full, I/O error, locked beyond busy_timeout) is the database failing.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from smsgw import files, migrations
from smsgw.migrations import Component
from smsgw.store.engine import Engine, Op, Outcome

T = TypeVar("T")

# Errors that belong to one write (bad data, a bug in that write): roll back that write only.
# Every other sqlite3.Error is the database failing and aborts the whole batch.
_OP_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError)


class SqliteEngine(Engine):
    name = "sqlite"
    BEGIN_WRITE = "BEGIN IMMEDIATE"

    def __init__(self, db: aiosqlite.Connection, path: str, file_group: str | None = None) -> None:
        self._db = db
        self.path = path
        self.file_group = file_group

    @classmethod
    async def open(cls, path: str, busy_timeout: float = 5.0, file_group: str | None = None) -> "SqliteEngine":
        files.prepare_store(path, file_group)
        # isolation_level=None: the sqlite3 module must not open transactions behind our back;
        # the batch runner issues BEGIN/COMMIT itself.
        db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout, cached_statements=256)
        engine = cls(db, path, file_group)
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
        return await self.call(self.attempt_batch, ops)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        # Reads run in autocommit on the writer's own thread: no write of this process can
        # interleave with them, and WAL lets other processes' readers and writers in beside.
        return await self.call(fn, *args)

    async def migrate(self, components: Sequence[Component], location: str) -> tuple[int, int]:
        versions = await self.call(migrations.migrate, location)
        for name, steps in components:
            await self.call(migrations.migrate_component, name, steps, location)
        files.secure_store_companions(self.path, self.file_group)  # -wal and -shm exist by now
        return versions

    async def close(self) -> None:
        try:
            await self.call(lambda conn: conn.execute("PRAGMA optimize"))
        except sqlite3.Error:
            pass  # an optimiser hint is not worth failing shutdown for
        await self._db.close()

    def is_op_error(self, exc: BaseException) -> bool:
        return not isinstance(exc, sqlite3.Error) or isinstance(exc, _OP_ERRORS)

    def rollback_quietly(self, conn: Any) -> None:
        # After SQLITE_FULL or IOERR SQLite may already have rolled back by itself.
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass


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
