"""Retention: personal data is kept no longer than it is needed, and the store stops growing.

Every message body and number the gateway stores (MO and MT rows, their parts and receipts, USSD
dialogues, feature rows such as notification texts) is deleted once it is older than
`[retention] messages_days`; receipts that never matched an MT after `receipts_days`; the parts
of long MOs already assembled once their redelivery window (`[gateway] part_dedupe_window_s`) is
over; the parking
ledger and its sessions (settlement data) only after `accounting_days`.  What is still being
worked on is never touched: an MO not yet processed, an MT still queued.

Each `Rule` is plain SQL, so another engine can run it as is: a SELECT of at most `limit` keys
older than a cutoff (using an index the rule brings, created if missing), then DELETE (or
UPDATE) statements for those keys, children first.  `RetentionService` runs the rules in small
batches, each one write of the store's group commit, with a pause between batches, so pruning
takes turns with live traffic instead of holding the write lock for a long delete; a sweep
repeats every `interval_s`.  Features bring rules for their own tables (`Feature.retention`).

`smsgw store stats` (`stats_main`) shows each table's rows, bytes and oldest row beside the
windows in force.  Tables not pruned here on purpose: the transactions and their registered
numbers (the back office's records, changed through its feed), opt-outs (a STOP must be
honoured for as long as the number may be notified), language choices made in the USSD menu
(ussd_language), route changes and the audit log (no message bodies, numbers masked).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import re
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TextIO

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from smsgw.log import get_logger

if TYPE_CHECKING:
    from smsgw.store import Connection

__all__ = ["CORE_RULES", "RetentionConfig", "RetentionService", "Rule", "prune_batch", "rules_for", "stats", "stats_main"]

log = get_logger(__name__)

DAY: Final = 86400.0
#: Windows a rule can name, each a `RetentionConfig` setting.
WINDOWS: Final = ("messages", "receipts", "dedupe", "accounting")


@dataclass(frozen=True, kw_only=True)
class RetentionConfig:
    """`[retention]`: how long each kind of data is kept, and how pruning paces itself."""

    enabled: bool = True
    messages_days: float = 90.0  # MO/MT bodies and numbers, parts, receipts, dialogues, notices
    receipts_days: float = 7.0  # delivery receipts that never matched an MT
    accounting_days: float = 3650.0  # parking sessions and ledger: what settlements are made of
    dedupe_window_s: float = 3600.0  # parts of assembled long MOs: [gateway] part_dedupe_window_s
    batch_rows: int = 200  # keys removed per write: the longest a live write waits behind pruning
    pause_s: float = 0.05  # between two batches
    interval_s: float = 300.0  # between sweeps

    def window_s(self, window: str) -> float:
        return {
            "messages": self.messages_days * DAY,
            "receipts": self.receipts_days * DAY,
            "dedupe": self.dedupe_window_s,
            "accounting": self.accounting_days * DAY,
        }[window]


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
        "mo_part_done", "mo_part_done", "dedupe",
        "SELECT DISTINCT inbound_id FROM mo_part_done WHERE done_at < ? ORDER BY inbound_id LIMIT ?",
        ("DELETE FROM mo_part_done WHERE inbound_id IN ({keys})",),
        ("CREATE INDEX IF NOT EXISTS mo_part_done_inbound ON mo_part_done (inbound_id)",),
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


def _create_indexes(conn: Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        conn.execute(statement)


class RetentionService(Service):
    """Prunes the store by `rules` every `config.interval_s`, in batches (see the module notes)."""

    name = "retention"

    def __init__(self, store: Any, config: RetentionConfig, rules: Sequence[Rule], clock: IReactorTime,
                 runs_jobs: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self.config = config
        self.rules = tuple(rules)
        self.clock = clock
        #: Several nodes on one database: only the one holding the jobs role prunes.
        self.runs_jobs = runs_jobs
        #: Rows' keys removed per rule since start (smsgw_retention_removed_total).
        self.removed: Counter[str] = Counter()
        self.sweeps = 0
        self.last_sweep: dict[str, Any] = {}
        self._loop: LoopingCall | None = None
        self._running: asyncio.Future[Any] | None = None
        self._indexed = False

    def startService(self) -> None:
        super().startService()
        if not self.config.enabled:
            return
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.config.interval_s, now=False)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._running is not None and not self._running.done():
            # Stop between batches: the sweep checks `running` after each one.
            return Deferred.fromFuture(asyncio.ensure_future(_quietly(self._running)))
        return None

    def _tick(self) -> None:
        if not self.runs_jobs():
            return
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._sweep_logged())

    async def _sweep_logged(self) -> None:
        from smsgw.store import StoreUnavailable

        try:
            await self.sweep()
        except StoreUnavailable as exc:
            log.warning("retention_sweep_interrupted", error=str(exc))  # the next sweep carries on
        except Exception:
            log.exception("retention_sweep_failed")

    async def sweep(self) -> dict[str, int]:
        """Remove everything past its window, batch by batch; returns keys removed per rule."""
        if not self._indexed:
            started = time.monotonic()
            await self.store.write(functools.partial(
                _create_indexes, statements=list(dict.fromkeys(i for r in self.rules for i in r.indexes))))
            self._indexed = True
            log.info("retention_indexes_ready", ms=round((time.monotonic() - started) * 1000, 1))
        now = self.clock.seconds()
        removed: Counter[str] = Counter()
        batches = 0
        slowest = 0.0
        started = time.monotonic()
        for rule in self.rules:
            cutoff = now - self.config.window_s(rule.window)
            while True:
                began = time.monotonic()
                count = await self.store.write(functools.partial(
                    prune_batch, rule=rule, cutoff=cutoff, limit=self.config.batch_rows))
                slowest = max(slowest, time.monotonic() - began)
                batches += 1
                removed[rule.name] += count
                self.removed[rule.name] += count
                if count < self.config.batch_rows or not self.running or not self.runs_jobs():
                    break
                # A breather on the event loop, not on `clock`: live writes get the store in between.
                await asyncio.sleep(self.config.pause_s)
            if not self.running or not self.runs_jobs():
                break
        self.sweeps += 1
        self.last_sweep = {"at": now, "removed": dict(removed), "batches": batches,
                           "ms": round((time.monotonic() - started) * 1000, 1),
                           "slowest_batch_ms": round(slowest * 1000, 1)}
        if sum(removed.values()):
            log.info("retention_swept", **self.last_sweep)
        return dict(removed)


async def _quietly(future: asyncio.Future[Any]) -> None:
    try:
        await future
    except BaseException:
        pass


# --------------------------------------------------------------------------------------------------
# smsgw store stats

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


def _file_sizes(path: str) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for suffix in ("", "-wal", "-shm"):
        try:
            out[path + suffix] = os.path.getsize(path + suffix)
        except OSError:
            out[path + suffix] = None
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} d"


#: Tables the store prunes by itself, as their own rule says.
_PRUNED_BY_THE_STORE = {
    "mo_seen": "[gateway] mo_dedupe_window_s (by the store)",
    "mo_part": "until assembled, or mo_reassembly_timeout_s",
}


def _window_text(config: RetentionConfig, windows: Sequence[str], table: str = "") -> str:
    if not windows:
        return _PRUNED_BY_THE_STORE.get(table, "not pruned by retention")
    return ", ".join(f"{w} {_age(config.window_s(w))}" for w in dict.fromkeys(windows))


def stats_main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`smsgw store stats`: sizes and oldest rows of the store named by the config (read-only)."""
    out, err = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(prog="smsgw store stats",
                                     description="Rows, bytes and oldest row per table of the gateway's store.")
    parser.add_argument("--config", default=os.environ.get("SMSGW_CONFIG", "config/gateway.toml"),
                        help="gateway TOML file (default: %(default)s)")
    parser.add_argument("--store", help="the database file or PostgreSQL URL (default: the store of --config)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    from smsgw.config import ConfigError, load_config
    from smsgw.store.plumbing import is_postgres

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=err)
        return 2
    location = args.store or config.store_location
    postgres = is_postgres(location)
    if not postgres and not os.path.exists(location):
        print(f"no database at {location}", file=err)
        return 2
    from smsgw.app import features

    rules = rules_for(features())
    shown = _redacted(location) if postgres else location
    try:
        report = _pg_report(location, rules) if postgres else _sqlite_report(location, rules)
    except Exception as exc:  # sqlite3.Error, psycopg.Error: unreachable, or not a store
        print(f"cannot read {shown}: {exc}", file=err)
        return 2
    retention = dataclasses.replace(config.retention, dedupe_window_s=config.part_dedupe_window_s)
    report = {"store": shown, **report,
              "retention": {"enabled": retention.enabled, **{w: retention.window_s(w) for w in WINDOWS}}}
    if args.json:
        print(json.dumps(report, ensure_ascii=False), file=out)
        return 0
    now = time.time()
    if "pages" in report:
        files = ", ".join(f"{os.path.basename(p)} {n / 1e6:.1f} MB" for p, n in report["files"].items()
                          if n is not None)
        print(f"{shown}: {files}; {report['pages']} pages of {report['page_size']} bytes, "
              f"{report['free_pages']} free", file=out)
    else:
        print(f"{shown}: {report['database_bytes'] / 1e6:.1f} MB", file=out)
    print(f"retention {'on' if retention.enabled else 'OFF'}: messages {_age(retention.window_s('messages'))}, "
          f"receipts {_age(retention.window_s('receipts'))}, accounting {_age(retention.window_s('accounting'))}",
          file=out)
    print(f"{'table':<20} {'rows':>10} {'MB':>9}  {'oldest row':<12} kept for", file=out)
    for name, t in report["tables"].items():
        size = f"{t['bytes'] / 1e6:.2f}" if t["bytes"] is not None else "-"
        oldest = _age(now - t["oldest"]) if isinstance(t["oldest"], (int, float)) else "-"
        print(f"{name:<20} {t['rows']:>10} {size:>9}  {oldest:<12} {_window_text(retention, t['windows'], name)}",
              file=out)
    return 0


def _sqlite_report(path: str, rules: Sequence[Rule]) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        tables = stats(conn, rules)
        page_size, pages, free = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                                  for p in ("page_size", "page_count", "freelist_count"))
    finally:
        conn.close()
    return {"files": _file_sizes(path), "page_size": page_size, "pages": pages, "free_pages": free,
            "tables": tables}


def _pg_report(url: str, rules: Sequence[Rule]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.read_only = True
        tables = stats(conn, rules)
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"database_bytes": size, "tables": tables}


def _redacted(url: str) -> str:
    """A PostgreSQL URL without its password, for output."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def rules_for(features: Sequence[Any]) -> list[Rule]:
    """The core rules, then each feature's own."""
    return [*CORE_RULES, *(rule for feature in features for rule in feature.retention)]
