"""`smsgw transactions import FILE.csv`: the back office's batch feed.

The file is UTF-8 CSV (a byte order mark, as Excel writes, is fine) with a header row naming the
columns, in any order and any case:

    ref,service,status,msisdns,note_en,note_ar,updated_at
    MM-2026-000123,building_permit_renewal,under_review,+96891234567;92345678,Site visit booked,,2026-03-12 10:30

ref, service, status and msisdns are required columns; note_en, note_ar and updated_at are
optional (a missing column keeps what is stored).  Several numbers go in one cell separated by
`;`.  An empty msisdns cell keeps the numbers already registered.  updated_at without an offset is
local (Asia/Muscat) time; without the column, a change is stamped with the time of the import.

Import is an idempotent upsert: importing the same file twice changes nothing the second time and
sends no notification.  Every bad row is reported with its line number and why; the good rows are
still imported.  The summary counts inserted, updated, unchanged and rejected rows.

Runs beside the gateway on the same store (SQLite in WAL mode takes both).  Notifications of the
status changes are written with the changes; the running gateway sends them within
`notifications.poll_s` seconds, or at its next start.

Exit status: 0 all rows imported, 1 some rows rejected, 2 the file or the config could not be used.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from handlers.transactions.config import (
    CONFIG_FILE,
    TransactionsConfig,
    load_transactions_config,
)
from handlers.transactions.records import (
    FIELDS,
    RecordError,
    TransactionRecord,
    parse_record,
)
from handlers.transactions.schema import SCHEMA
from handlers.transactions.service import TransactionService, UpsertOutcome
from smsgw.tomlcheck import ConfigError

__all__ = ["ImportError_", "ImportReport", "import_csv", "main"]

REQUIRED_COLUMNS = ("ref", "service", "status", "msisdns")
#: Rows upserted together: their writes share one group commit, each still its own savepoint.
CHUNK = 500


class ImportError_(Exception):
    """The file as a whole cannot be imported (unreadable, not UTF-8, bad header)."""


@dataclass
class ImportReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), in file order
    notifications: int = 0

    def summary(self) -> str:
        return (
            f"inserted {self.inserted}, updated {self.updated}, unchanged {self.unchanged}, "
            f"rejected {len(self.rejected)}; notifications {self.notifications}"
        )


def _read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(lower-cased header, [(line number where the row starts, cells)]), blank lines skipped."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImportError_(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportError_(f"{path}:{line}: the file is not valid UTF-8 (save it as CSV UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    header_line = 0
    start = 1
    try:
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header, header_line = [c.strip().lower() for c in cells], start
            else:
                rows.append((start, cells))
    except csv.Error as exc:
        raise ImportError_(f"{path}:{start}: not valid CSV in the row starting here: {exc}") from None
    if header is None:
        raise ImportError_(f"{path}: the file is empty; the first line must name the columns: {','.join(FIELDS)}")
    problems = []
    for name in header:
        if name not in FIELDS:
            problems.append(f"unknown column {name!r}" if name else "a column has no name")
    for name in REQUIRED_COLUMNS:
        if name not in header:
            problems.append(f"missing column {name!r}")
    duplicates = sorted({n for n in header if header.count(n) > 1 and n})
    problems += [f"column {n!r} appears twice" for n in duplicates]
    if problems:
        raise ImportError_(
            f"{path}:{header_line}: {'; '.join(problems)} (columns: {', '.join(FIELDS)}; required: "
            f"{', '.join(REQUIRED_COLUMNS)})"
        )
    return header, rows


async def import_csv(
    path: str, service: TransactionService, clock: Callable[[], float] = time.time
) -> ImportReport:
    """Validate every row, upsert the good ones, report the bad ones; raises ImportError_."""
    header, rows = _read_rows(path)
    config = service.config
    report = ImportReport()
    good: list[tuple[int, TransactionRecord]] = []
    for line, cells in rows:
        if len(cells) != len(header):
            report.rejected.append((line, f"expected {len(header)} fields ({','.join(header)}), got {len(cells)}"))
            continue
        try:
            good.append((line, parse_record(dict(zip(header, cells)), config, clock())))
        except RecordError as exc:
            report.rejected.append((line, exc.reason))
    source = f"csv:{os.path.basename(path)}"
    for i in range(0, len(good), CHUNK):
        chunk = good[i : i + CHUNK]
        # Issued together, the writes land in one group commit, in file order (a later row for the
        # same reference sees the earlier one).
        results = await asyncio.gather(*(service.upsert(record, source) for _, record in chunk))
        for (line, _), result in zip(chunk, results):
            if result.outcome is UpsertOutcome.INSERTED:
                report.inserted += 1
            elif result.outcome is UpsertOutcome.UPDATED:
                report.updated += 1
            elif result.outcome is UpsertOutcome.UNCHANGED:
                report.unchanged += 1
            else:
                report.rejected.append((line, result.reason))
            report.notifications += result.notifications
    report.rejected.sort()
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsgw transactions import",
        description="Import transaction statuses from a CSV file (idempotent upsert).",
    )
    parser.add_argument("file", help="CSV file: ref,service,status,msisdns[,note_en,note_ar,updated_at]")
    parser.add_argument(
        "--config", default=os.environ.get("SMSGW_CONFIG", "config/gateway.toml"),
        help="gateway TOML file: the store to write and the carriers (default: %(default)s)",
    )
    parser.add_argument(
        "--transactions-config", default=None,
        help=f"transactions TOML file (default: {CONFIG_FILE} next to the gateway config)",
    )
    return parser


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from smsgw.config import load_config
    from smsgw.log import configure
    from smsgw.store import Store, StoreUnavailable

    try:
        gateway = load_config(args.config)
        # Log events (JSON, as the gateway's) go to stderr: stdout is the report.
        configure(gateway.log_level, stream=err)
        carriers = {c.name: c.short_codes for c in gateway.carriers if c.enabled}
        tx_path = args.transactions_config or str(Path(args.config).resolve().parent / CONFIG_FILE)
        config: TransactionsConfig = load_transactions_config(tx_path, carriers)
    except ConfigError as exc:
        print(str(exc), file=err)
        return 2
    try:
        store = await Store.open(gateway.store_location, components=[SCHEMA], file_group=gateway.file_group)
    except (StoreUnavailable, OSError) as exc:
        print(f"cannot open the store {gateway.store_location}: {exc}", file=err)
        return 2
    try:
        report = await import_csv(args.file, TransactionService(store, config, time.time))
    except ImportError_ as exc:
        print(str(exc), file=err)
        return 2
    except StoreUnavailable as exc:
        print(f"the store could not be written, nothing more was imported: {exc}", file=err)
        return 2
    finally:
        await store.close()
    for line, reason in report.rejected:
        print(f"{args.file}:{line}: {reason}", file=err)
    print(report.summary(), file=out)
    if report.notifications:
        print(
            f"{report.notifications} notification(s) will be sent by the running gateway within "
            f"{config.notifications.poll_s:g} s, or when it next starts.",
            file=out,
        )
    return 1 if report.rejected else 0


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Entry point for `smsgw transactions import`; argv excludes those words.  Returns the exit status."""
    args = _parser().parse_args(argv)
    return asyncio.run(_run(args, out or sys.stdout, err or sys.stderr))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
