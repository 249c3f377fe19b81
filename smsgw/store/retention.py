"""Retention's SQL: which rows go once they are older than a window, as plain SQL both engines run.

smsgw/retention.py decides when (a sweep every `interval_s`, batches with pauses, only on the
node holding the jobs role); this module is what the store runs for it: each `Rule` selects at
most `limit` keys older than a cutoff (through an index the rule brings, created if missing),
then deletes (or updates) the rows of those keys, children first, all in one write of the group
commit.  The core tables' rules are here; features bring rules for their own tables
(`Feature.retention`).  `stats` describes a store table by table for `smsgw store stats`.

Never touched while live: an MO not yet processed, an MT still queued.  The newest MO and MT
always stay: SQLite gives out the highest id again once it is deleted, and rows elsewhere (a
reminder, a notice) may still name it.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from smsgw.store.types import Connection

__all__ = ["CORE_RULES", "WINDOWS", "RetentionArea", "Rule", "create_indexes", "prune_batch", "stats"]

#: The windows a rule can name (smsgw/retention.py: RetentionConfig.window_s).
WINDOWS: Final = ("messages", "receipts", "part_redelivery", "mo_redelivery", "accounting")


@dataclass(frozen=True)
class Rule:
    """What to remove from one table once it is older than a window.

    `select` returns the keys to remove (`key_columns` of them per row), oldest first; its `?`
    parameters are, in order, the values `select_params` names ("cutoff": the time before which
    rows go, "limit": the batch size).  Each statement of `remove` then runs with those keys:
    `{keys}` stands for `?, ?, …` (one key column), `{match}` for `(a = ? AND b = ?) OR …`
    (several).  Children are removed before their parents.  `indexes` are the CREATE INDEX IF
    NOT EXISTS statements that keep `select`, and the foreign-key checks of `remove`, cheap on a
    big table.  The SQL keeps to what both engines run (smsgw/store/__init__.py).
    """

    name: str
    table: str
    window: str
    select: str
    remove: tuple[str, ...]
    indexes: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = ("id",)
    select_params: tuple[str, ...] = ("cutoff", "limit")

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"retention rule {self.name}: unknown window {self.window!r}")


CORE_RULES: Final[tuple[Rule, ...]] = (
    # MTs first: a reply goes with the MO it answered, and the MO rule below then finds no reply
    # pointing at it.  A queued MT is still to be sent (its validity expires it long before).  The
    # newest row of a table always stays, so that an id is never given out twice (SQLite would
    # reuse the highest one), which rows elsewhere (a reminder, a notice) may still name.
    Rule(
        "outbound", "outbound", "messages",
        "SELECT id FROM outbound WHERE created_at < ? AND state <> 'queued'"
        " AND id < (SELECT MAX(id) FROM outbound) ORDER BY created_at LIMIT ?",
        (
            "DELETE FROM dlr WHERE outbound_id IN ({keys})",
            "DELETE FROM mt_part WHERE outbound_id IN ({keys})",
            "DELETE FROM outbound WHERE id IN ({keys})",
        ),
    ),
    # Processed MOs only: an unprocessed one is work the gateway redoes at start.
    Rule(
        "inbound", "inbound", "messages",
        "SELECT id FROM inbound WHERE received_at < ? AND processed_at IS NOT NULL"
        " AND id < (SELECT MAX(id) FROM inbound) ORDER BY received_at LIMIT ?",
        (
            "UPDATE outbound SET inbound_id = NULL WHERE inbound_id IN ({keys})",
            "DELETE FROM mo_part_done WHERE inbound_id IN ({keys})",
            "DELETE FROM inbound WHERE id IN ({keys})",
        ),
        # Deleting an MO makes the database look for the rows that point at it.
        (
            "CREATE INDEX IF NOT EXISTS outbound_inbound ON outbound (inbound_id) WHERE inbound_id IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS mo_part_done_inbound ON mo_part_done (inbound_id)",
        ),
    ),
    Rule(
        "dlr_unmatched", "dlr", "receipts",
        "SELECT id FROM dlr WHERE outbound_id IS NULL AND received_at < ? ORDER BY received_at LIMIT ?",
        ("DELETE FROM dlr WHERE id IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS dlr_unmatched_at ON dlr (received_at) WHERE outbound_id IS NULL",),
    ),
    # The parts of a long MO once assembled: kept only to recognise a redelivered part.
    Rule(
        "mo_part_done", "mo_part_done", "part_redelivery",
        "SELECT DISTINCT inbound_id FROM mo_part_done WHERE done_at < ? ORDER BY inbound_id LIMIT ?",
        ("DELETE FROM mo_part_done WHERE inbound_id IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS mo_part_done_inbound ON mo_part_done (inbound_id)",),
    ),
    # The fingerprints of accepted MOs (smsgw/redelivery.py): a claim older than its window is
    # taken over by the next MO anyway; pruned here, in batches, not inside an MO's own write.
    Rule(
        "mo_seen", "mo_seen", "mo_redelivery",
        "SELECT carrier, carrier_msg_id, content_hash FROM mo_seen WHERE received_at < ?"
        " ORDER BY received_at LIMIT ?",
        ("DELETE FROM mo_seen WHERE {match}",),
        key_columns=("carrier", "carrier_msg_id", "content_hash"),
    ),
    # Ended USSD dialogues; an open one is live.
    Rule(
        "ussd_session", "ussd_session", "messages",
        "SELECT carrier, msisdn, session_ref FROM ussd_session WHERE updated_at < ? AND state <> 'open'"
        " ORDER BY updated_at LIMIT ?",
        ("DELETE FROM ussd_session WHERE {match}",),
        ("CREATE INDEX IF NOT EXISTS ussd_session_updated ON ussd_session (updated_at)",),
        key_columns=("carrier", "msisdn", "session_ref"),
    ),
)


def prune_batch(conn: Connection, rule: Rule, cutoff: float, limit: int) -> int:
    """One batch of `rule` (on the store's thread, inside its transaction): keys removed."""
    values = {"cutoff": cutoff, "limit": limit}
    rows = conn.execute(rule.select, [values[name] for name in rule.select_params]).fetchall()
    if not rows:
        return 0
    if len(rule.key_columns) == 1:
        params: list[Any] = [row[0] for row in rows]
        fill = {"keys": ",".join("?" * len(rows)), "match": ""}
    else:
        term = "(" + " AND ".join(f"{column} = ?" for column in rule.key_columns) + ")"
        params = [value for row in rows for value in row]
        fill = {"keys": "", "match": " OR ".join([term] * len(rows))}
    for statement in rule.remove:
        conn.execute(statement.format(**fill), params)
    return len(rows)


def create_indexes(conn: Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        conn.execute(statement)


class RetentionArea:
    """The store's side of retention (a mixin of Store, like its other areas)."""

    async def prune(self, rule: Rule, cutoff: float, limit: int) -> int:
        """One batch of `rule`: at most `limit` keys older than `cutoff` removed, once COMMITTED."""
        return await self.write(functools.partial(prune_batch, rule=rule, cutoff=cutoff, limit=limit))  # type: ignore[attr-defined]

    async def prepare_retention(self, rules: Sequence[Rule]) -> None:
        """Create the indexes `rules` need, where missing (once, before the first sweep)."""
        statements = list(dict.fromkeys(index for rule in rules for index in rule.indexes))
        await self.write(functools.partial(create_indexes, statements=statements))  # type: ignore[attr-defined]


_DELETES_FROM = re.compile(r"DELETE FROM (\w+)")

#: Columns that say when a row was written, in order of preference, for "oldest row".
_TIME_COLUMNS = ("received_at", "created_at", "done_at", "sent_at", "at", "opened_at", "window_start",
                 "changed_at", "seen_at", "chosen_at", "updated_at")


def stats(conn: Any, rules: Sequence[Rule] = CORE_RULES) -> dict[str, Any]:
    """Per table: rows, bytes (table and indexes, where the engine tells), the time column and
    its oldest value, and the windows of the rules that prune it.  `conn` is an sqlite3 or a
    psycopg connection (read-only is enough)."""
    catalog: _SqliteCatalog | _PgCatalog = (
        _SqliteCatalog(conn) if isinstance(conn, sqlite3.Connection) else _PgCatalog(conn))
    windows: dict[str, list[str]] = {}
    for rule in rules:
        # Every table a rule deletes from (parts and receipts go with their MT) follows its window.
        for table in dict.fromkeys([rule.table, *_DELETES_FROM.findall(" ".join(rule.remove))]):
            windows.setdefault(table, []).append(rule.window)
    result: dict[str, Any] = {}
    for table in catalog.tables():
        columns = catalog.columns(table)
        time_column = next((c for c in _TIME_COLUMNS if c in columns), None)
        rows = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        oldest = None
        if time_column is not None:
            oldest = conn.execute(f'SELECT MIN("{time_column}") FROM "{table}"').fetchone()[0]
        result[table] = {"rows": rows, "bytes": catalog.size(table), "time_column": time_column, "oldest": oldest,
                         "windows": windows.get(table, [])}
    return result


class _SqliteCatalog:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._sizes: dict[str, int] = {}
        try:
            self._sizes = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        except sqlite3.Error:
            pass  # an SQLite built without dbstat: sizes unknown, the rest still stands
        self._owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall())

    def tables(self) -> list[str]:
        return [row[0] for row in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self.conn.execute(f'PRAGMA table_info("{table}")')]

    def size(self, table: str) -> int | None:
        if table not in self._sizes:
            return None
        return self._sizes[table] + sum(n for name, n in self._sizes.items() if self._owner.get(name) == table)


class _PgCatalog:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def tables(self) -> list[str]:
        return [row[0] for row in self.conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]

    def columns(self, table: str) -> list[str]:
        return [row[0] for row in self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s", (table,))]

    def size(self, table: str) -> int | None:
        return self.conn.execute("SELECT pg_total_relation_size(%s::regclass)", (f'"{table}"',)).fetchone()[0]
