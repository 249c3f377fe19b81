"""What the store needs of a database engine, and the batch runner both engines share.

An engine owns ONE connection and the thread it runs on.  Every call crosses to that thread
once: a whole group-commit batch is one function run there (`run_batch`), so a batch costs one
thread hop whatever the number of statements.  (SQLite adds a second connection, on which the
small batches run on the loop's own thread: smsgw/store/sqlite.py says why and how.)  Engines
differ only in how a transaction is opened (`BEGIN_WRITE`), which of their errors belong to one
write rather than to the database (`is_op_error`), and, for PostgreSQL, retrying a batch another
node's transaction conflicted with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from smsgw.migrations import Component

T = TypeVar("T")

Op = Callable[[Any], Any]
Outcome = tuple[bool, Any]  # (True, result) or (False, the exception the write raised)


class Engine:
    """Base of SqliteEngine and PostgresEngine (smsgw/store/sqlite.py, postgres.py)."""

    #: "sqlite" or "postgresql"
    name: str = ""
    #: The statement that opens a write transaction.
    BEGIN_WRITE: str = "BEGIN"

    # ------------------------------------------------------------------ to implement

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(conn, *args)` on the connection's thread, outside any transaction we opened."""
        raise NotImplementedError

    async def run_batch(self, ops: Sequence[Op]) -> list[Outcome]:
        """Every op of a batch in one transaction, committed; see `attempt_batch`."""
        raise NotImplementedError

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(conn, *args)` on a consistent view of committed data."""
        raise NotImplementedError

    async def migrate(self, components: Sequence[Component], location: str) -> tuple[int, int]:
        """The core schema, then each component, each in one exclusive transaction."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def is_op_error(self, exc: BaseException) -> bool:
        """True when `exc` belongs to the write that raised it (bad data, unknown id, a bug),
        False when the database failed (disk full, connection lost): then the batch aborts."""
        raise NotImplementedError

    async def size_bytes(self) -> int | None:
        """Bytes the data takes (files, or the database), None if unknown."""
        raise NotImplementedError

    async def on_each_connection(self, fn: Callable[[Any], Any]) -> None:
        """Run `fn(conn)` on every connection the engine holds (a session setting such as a
        read-only mode, which must reach the connection batches run on)."""
        await self.call(fn)

    @property
    def description(self) -> str:
        """Where the data lives, for logs and the status API (never a password)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared

    def attempt_batch(self, conn: Any, ops: Sequence[Op]) -> list[Outcome]:
        """Run every write of a batch in one transaction; runs on the connection thread.

        Returns (True, result) or (False, exception) per write.  Raises if the database itself
        failed; then nothing of the batch is committed.

        Writes rarely fail on their own (unknown id, a bug), so the batch first runs without
        per-write savepoints (they cost ~15% of throughput).  If one write does fail, that attempt
        is rolled back and the batch runs again with each write in its own SAVEPOINT, so only the
        failing write is undone.  Writes are functions of the database state and their arguments,
        so the second run gives the same results.
        """
        outcomes = self._attempt(conn, ops, isolate=False)
        if outcomes is None:
            outcomes = self._attempt(conn, ops, isolate=True)
        assert outcomes is not None
        return outcomes

    def _attempt(self, conn: Any, ops: Sequence[Op], isolate: bool) -> list[Outcome] | None:
        outcomes: list[Outcome] = []
        conn.execute(self.BEGIN_WRITE)
        try:
            for op in ops:
                if isolate:
                    conn.execute("SAVEPOINT op")
                try:
                    result = op(conn)
                except Exception as exc:
                    if not self.is_op_error(exc):
                        raise  # the database failed, not this write: abort the batch
                    if not isolate:
                        conn.execute("ROLLBACK")
                        return None
                    conn.execute("ROLLBACK TO SAVEPOINT op")
                    conn.execute("RELEASE SAVEPOINT op")
                    outcomes.append((False, exc))
                else:
                    if isolate:
                        conn.execute("RELEASE SAVEPOINT op")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except BaseException:
            self.rollback_quietly(conn)
            raise
        return outcomes

    def rollback_quietly(self, conn: Any) -> None:
        """Undo whatever transaction is open; the database may have rolled back by itself."""
        raise NotImplementedError
