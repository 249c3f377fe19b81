"""Where the store of the running test lives: a SQLite file in its tmp_path, or the PostgreSQL
database the `store_engine` fixture made for it (tests/conftest.py); and plain reads of it that
bypass the gateway (a second connection sees only what is committed)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ENGINES = ("sqlite", "postgresql")

#: For a test on PostgreSQL: makes a new database and returns its URL; None: SQLite.
_new_database: Callable[[], str] | None = None
#: The databases made for the running test, by the SQLite path they stand for.
_databases: dict[str, str] = {}


@contextlib.contextmanager
def using(new_database: Callable[[], str] | None) -> Iterator[None]:
    global _new_database
    before, _new_database = _new_database, new_database
    _databases.clear()
    try:
        yield
    finally:
        _new_database = before
        _databases.clear()


def is_postgres() -> bool:
    return _new_database is not None


def location(tmp_path: Path | str, name: str = "smsgw.sqlite3") -> str:
    """The store for this test: the SQLite file `name` in tmp_path, or on PostgreSQL a database
    standing for that file (the same path always gives the same database, another path another)."""
    path = str(Path(tmp_path) / name)
    if _new_database is None:
        return path
    if path not in _databases:
        _databases[path] = _new_database()
    return _databases[path]


def config_key() -> str:
    """The `[gateway]` key naming the store in a config file."""
    return "store_url" if _new_database is not None else "store_path"


def query(where: str | Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of `sql` (qmark parameters) read through a connection of its own."""
    where = str(where)
    if where.startswith("postgresql://"):
        import psycopg

        from smsgw.store.dialect import placeholders

        with psycopg.connect(where, autocommit=True) as conn:
            cur = conn.execute(placeholders(sql), tuple(params))
            return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []
    import sqlite3

    conn = sqlite3.connect(where, uri=where.startswith("file:"), timeout=1)
    try:
        rows = conn.execute(sql, tuple(params)).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def table_names(where: str | Path) -> set[str]:
    where = str(where)
    if where.startswith("postgresql://"):
        return {r[0] for r in query(where, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    return {r[0] for r in query(where, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def run_statements(where: str | Path, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """Run SQL written for SQLite (DDL included) in one transaction, on either engine."""
    where = str(where)
    if where.startswith("postgresql://"):
        import psycopg

        from smsgw.store.dialect import PgDialect

        dialect = PgDialect()
        with psycopg.connect(where) as conn:
            for sql, params in statements:
                conn.execute(dialect.translate(sql)[0], tuple(params))
        return
    import sqlite3

    conn = sqlite3.connect(where, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for sql, params in statements:
            conn.execute(sql, tuple(params))
        conn.execute("COMMIT")
    finally:
        conn.close()


def without_node_label(metrics_text: str, node: str) -> str:
    """/metrics as a single node shows it: several nodes label every sample with node="..."
    (checked apart, in tests/test_cluster.py), which exact-line assertions leave out."""
    import re

    text = re.sub(rf',?node="{re.escape(node)}"', "", metrics_text)
    return text.replace("{,", "{").replace("{}", "")
