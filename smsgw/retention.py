"""Retention: personal data is kept no longer than it is needed, and the store stops growing.

Every message body and number the gateway stores (MO and MT rows, their parts and receipts, USSD
dialogues, feature rows such as notification texts and pending questions) is deleted once it is
older than `[retention] messages_days`; receipts that never matched an MT after `receipts_days`;
the redelivery fingerprints of MOs after `[gateway] mo_dedupe_window_s`, the parts of assembled
long MOs after `part_dedupe_window_s`; the parking ledger and its sessions (settlement data)
only after `accounting_days`.  What is still being worked on is never touched: an MO not yet
processed, an MT still queued.

What goes is the store's business (smsgw/store/retention.py: rules of plain SQL both engines
run; features bring rules for their own tables through `Feature.retention`).  When is decided
here: `RetentionService` sweeps every `interval_s`, each rule in batches of `batch_rows` keys,
each batch one write of the store's group commit, with a pause between batches, so pruning takes
turns with live traffic instead of holding the write lock for a long delete.  With several nodes
on one PostgreSQL only the node holding the jobs role sweeps.

`smsgw store stats` (`stats_main`) shows each table's rows, bytes and oldest row beside the
windows in force.  Tables not pruned on purpose: the transactions and their registered numbers
(the back office's records, changed through its feed), opt-outs (a STOP must be honoured for as
long as the number may be notified), language choices made in the USSD menu (ussd_language),
route changes and the audit log (no message bodies, numbers masked).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from smsgw.log import get_logger
from smsgw.store.retention import CORE_RULES, WINDOWS, Rule, stats

__all__ = ["CORE_RULES", "DAY", "RetentionConfig", "RetentionService", "Rule", "rules_for", "stats_main"]

log = get_logger(__name__)

DAY: Final = 86400.0


@dataclass(frozen=True, kw_only=True)
class RetentionConfig:
    """`[retention]`: how long each kind of data is kept, and how pruning paces itself."""

    enabled: bool = True
    messages_days: float = 90.0  # MO/MT bodies and numbers, parts, receipts, dialogues, notices
    receipts_days: float = 7.0  # delivery receipts that never matched an MT
    accounting_days: float = 3650.0  # parking sessions and ledger: what settlements are made of
    # The redelivery windows are [gateway] settings (the gateway fills them in): what is kept for
    # them is needed for exactly that long.
    part_redelivery_s: float = 3600.0  # parts of assembled long MOs: part_dedupe_window_s
    mo_redelivery_s: float = 86400.0  # the fingerprints of accepted MOs: mo_dedupe_window_s
    batch_rows: int = 200  # keys removed per write: the longest a live write waits behind pruning
    pause_s: float = 0.05  # between two batches
    interval_s: float = 300.0  # between sweeps

    def window_s(self, window: str) -> float:
        return {
            "messages": self.messages_days * DAY,
            "receipts": self.receipts_days * DAY,
            "part_redelivery": self.part_redelivery_s,
            "mo_redelivery": self.mo_redelivery_s,
            "accounting": self.accounting_days * DAY,
        }[window]


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
            await self.store.prepare_retention(self.rules)
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
                count = await self.store.prune(rule, cutoff, self.config.batch_rows)
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


#: Tables the store empties by itself as it works.
_PRUNED_BY_THE_STORE = {
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
    retention = with_redelivery_windows(config.retention, config)
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


def with_redelivery_windows(retention: RetentionConfig, config: Any) -> RetentionConfig:
    """`retention` with the redelivery windows of the gateway's config (`[gateway]`)."""
    return dataclasses.replace(retention, part_redelivery_s=config.part_dedupe_window_s,
                               mo_redelivery_s=config.mo_dedupe_window_s)
