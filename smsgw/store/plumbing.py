"""The store's plumbing: opening an engine, group commit, and `write`/`read` for feature code.

Why it is built this way
------------------------
* An MO is acknowledged to the carrier only after its row is committed, and an MT is stored before
  it is submitted.  So every write is awaited, and the await returns only after COMMIT.
* One commit per message would cap us at a few hundred messages per second.  Instead writes are
  queued; a single flusher takes every write requested while the previous transaction was
  committing and runs them all in ONE transaction with ONE commit (group commit), then resolves
  every caller.  The whole batch runs as one function on the engine's connection thread, so a
  batch costs one thread hop, not one per statement; SQLite runs batches of the MO pipeline's
  size on the loop's own thread, without any hop (smsgw/store/sqlite.py).
* A write that fails for its own reasons (unknown id, constraint) is rolled back alone and only its
  caller sees the error (the batch is re-run with a SAVEPOINT per write, see Engine.attempt_batch).
  A failure of the database itself (disk full, I/O error, locked beyond busy_timeout, connection
  lost) aborts the whole batch; every caller in it gets `StoreUnavailable` (the gateway answers
  deliver_sm with ESME_RX_T_APPN so the carrier redelivers), `healthy` turns False, and the next
  batch simply tries again, so the store recovers by itself once the database can write.
* A caller with many writes at once (the MOs and receipts that arrived in one reactor turn, their
  replies) queues them as a group (`write_group`): each is still its own write in the batch (one
  failing write fails only itself), but the group resolves ONE future with every outcome, so the
  caller wakes once per group, not once per write.  `submit` queues one write without a coroutine
  around it, for callers that only keep the future (the sender's bookkeeping).
* Times come from the caller or the injected `clock`, so tests are deterministic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from smsgw import migrations
from smsgw.log import get_logger
from smsgw.redelivery import DEFAULT_WINDOW_S as DEFAULT_MO_DEDUPE_WINDOW_S
from smsgw.store.engine import Engine, Outcome
from smsgw.store.types import Connection, StoreClosed, StoreUnavailable

log = get_logger(__name__)

T = TypeVar("T")

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


class WriteGroup:
    """Writes queued together by one caller: one future, set to every write's outcome, in order,
    once the last of them is settled (they may straddle two transactions when a batch is full)."""

    __slots__ = ("future", "outcomes", "left")

    def __init__(self, future: "asyncio.Future[list[Outcome]]", size: int) -> None:
        self.future = future
        self.outcomes: list[Outcome] = [(False, None)] * size
        self.left = size

    def settle(self, index: int, outcome: Outcome) -> None:
        self.outcomes[index] = outcome
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(self.outcomes)


#: A queued write: its op, then where its outcome goes: a future (index -1) or a group and the
#: write's place in it.
_Entry = tuple[Callable[[Any], Any], Any, int]


class Plumbing:
    """Engine, group commit and the feature API; the areas' mixins add the gateway's own writes."""

    def __init__(
        self,
        engine: Engine,
        path: str,
        clock: Callable[[], float],
        max_batch: int,
        part_dedupe_window: float,
        mo_dedupe_window: float = DEFAULT_MO_DEDUPE_WINDOW_S,
    ) -> None:
        self.engine = engine
        self._path = path
        self._clock = clock
        self._max_batch = max_batch
        self._part_dedupe_window = part_dedupe_window
        self._mo_dedupe_window = mo_dedupe_window
        self._pending: list[_Entry] = []
        self._flusher: asyncio.Future[None] | None = None
        self._closed = False
        #: The node this store serves (audit entries name it; several nodes may share a database).
        self.node: str | None = None
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
        node: str = "smsgw",
    ) -> Any:
        """Open (SQLite: creating directories and file as needed) and migrate the schema.

        `path`: a SQLite file, or a `postgresql://user@host:port/db` URL.
        `busy_timeout`: seconds a write waits for another process's lock before the batch fails
        (PostgreSQL: also the connect timeout).
        `max_batch`: most writes per transaction, bounding how long one commit keeps callers waiting.
        `part_dedupe_window`: seconds during which a part identical to one of an already assembled
        long MO is treated as a redelivery and dropped.
        `mo_dedupe_window`: seconds during which an MO with the carrier id and the content of one
        already accepted is treated as a redelivery and dropped (smsgw/redelivery.py).
        `file_group`: SQLite: the group that may read the files (0640); without one they are 0600
        (smsgw/files.py: a new store is created so, an existing one open to others is warned about).
        PostgreSQL's files are the server's to protect.
        `node`: this process's name in the database's view (PostgreSQL's application_name).
        Raises `SchemaTooNew` if the database was written by a newer gateway.
        """
        engine: Engine
        if is_postgres(path):
            from smsgw.store.postgres import PostgresEngine

            engine = await PostgresEngine.open(path, application_name=node, busy_timeout=busy_timeout)
        else:
            from smsgw.store.sqlite import SqliteEngine

            engine = await SqliteEngine.open(path, busy_timeout=busy_timeout, file_group=file_group)
        try:
            store = cls(engine, path, clock, max_batch, part_dedupe_window, mo_dedupe_window)
            store.node = node
            before, after = await engine.migrate(components, path)
            await store._opened()
        except BaseException:
            await engine.close()
            raise
        log.info("store_opened", engine=engine.name, store=engine.description, schema_from=before, schema_to=after)
        return store

    async def _opened(self) -> None:
        """Hook for the areas: state to load once the schema is there."""

    async def close(self) -> None:
        """Commit every write already requested, then close.  Later calls raise StoreClosed."""
        if self._closed:
            return
        self._closed = True
        while self._flusher is not None:
            # shield: if close() itself is cancelled, the pending writes still complete.
            await asyncio.shield(self._flusher)
        await self.engine.close()
        log.info("store_closed", commits=self.commits, writes=self.writes)

    async def size_bytes(self) -> int | None:
        """Bytes the data takes on disk (SQLite's files, PostgreSQL's database), None if unknown."""
        try:
            return await self.engine.size_bytes()
        except Exception as exc:
            if self.engine.is_op_error(exc):
                raise
            return None

    @property
    def location(self) -> str:
        """Where the data lives (a file, or the database URL without its password)."""
        return self.engine.description

    # ---------------------------------------------------------------- the feature API

    async def write(self, op: Callable[[Connection], T]) -> T:
        """Run `op(conn)` inside the next group-committed transaction; returns once COMMITTED.

        For feature modules (parking, transaction status) that own tables through a schema
        component: `op` runs on the store's thread, must be quick and must not commit itself.
        It may run more than once (a batch re-run after another write failed, or after another
        node's transaction conflicted with it on PostgreSQL): it must be a function of the
        database and its arguments only.  Raises StoreUnavailable when the batch could not be
        committed.
        """
        return await self._write(op)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the store's thread for a consistent read."""
        return await self._read(fn, *args)

    # ---------------------------------------------------------------- plumbing

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the engine's connection thread: one thread hop."""
        return await self.engine.call(fn, *args)

    async def _write(self, op: Callable[[Any], T]) -> T:
        """Queue a write for the next group commit; returns once it is COMMITTED."""
        return await self.submit(op)

    def submit(self, op: Callable[[Any], T]) -> "asyncio.Future[T]":
        """Queue a write for the next group commit; the future is set once it is COMMITTED (with
        StoreClosed at once if the store is closed)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(StoreClosed("store is closed"))
            return future
        self._pending.append((op, future, -1))
        self._start_flusher()
        return future

    def write_group(self, ops: Sequence[Callable[[Any], Any]]) -> "asyncio.Future[list[Outcome]]":
        """Queue several writes for the next group commit, each its own write (one that raises is
        rolled back alone); one future, set to [(True, result) or (False, exception)] per write,
        in order, once every one is COMMITTED or failed (StoreUnavailable).  StoreClosed at once
        if the store is closed."""
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(StoreClosed("store is closed"))
            return future
        if not ops:
            future.set_result([])
            return future
        group = WriteGroup(future, len(ops))
        self._pending.extend([(op, group, index) for index, op in enumerate(ops)])
        self._start_flusher()
        return future

    def _start_flusher(self) -> None:
        if self._flusher is None:
            # Started as a task, it first runs after the current callbacks, so writes requested
            # in the same loop iteration already share the first transaction.
            self._flusher = asyncio.ensure_future(self._flush())

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreClosed("store is closed")
        try:
            return await self.engine.read(fn, *args)
        except Exception as exc:
            if self.engine.is_op_error(exc):
                raise
            raise StoreUnavailable(f"store read failed: {type(exc).__name__}: {exc}") from exc

    async def _flush(self) -> None:
        batch: list[_Entry] = []
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    outcomes = await self.engine.run_batch([entry[0] for entry in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._batch_failed(batch, exc)
                    batch = []
                    continue
                self._batch_committed(len(batch))
                for outcome, (_, sink, index) in zip(outcomes, batch):
                    if index >= 0:
                        sink.settle(index, outcome)
                    elif sink.done():  # caller gave up (cancelled); the write stands
                        continue
                    elif outcome[0]:
                        sink.set_result(outcome[1])
                    else:
                        sink.set_exception(outcome[1])
                batch = []
        except asyncio.CancelledError:
            # Only when the loop is being torn down.  The batch may or may not have committed;
            # callers must treat it as not stored (the carrier redelivers, dedupe absorbs it).
            for _, sink, index in batch + self._pending:
                future = sink.future if index >= 0 else sink
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

    def _batch_failed(self, batch: list[_Entry], exc: Exception) -> None:
        self.failed_batches += 1
        error = f"{type(exc).__name__}: {exc}"
        if self.healthy:
            log.error("store_unavailable", error=error, batch=len(batch))
        else:
            log.warning("store_write_failed", error=error, batch=len(batch))
        self.healthy = False
        self.last_error = error
        for _, sink, index in batch:
            failure = StoreUnavailable(f"store write failed: {error}")
            failure.__cause__ = exc
            if index >= 0:
                sink.settle(index, (False, failure))
            elif not sink.done():
                sink.set_exception(failure)
