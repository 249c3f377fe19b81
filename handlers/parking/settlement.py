"""Daily settlement: one CSV per carrier of the parking charges and credits it billed on a day.

A carrier's billing team reconciles this file against what it took from its subscribers'
airtime, so it carries the full MSISDN (the file goes to that carrier only, never to another),
every ledger entry of the day in order, and a closing TOTAL line.  The day is the parking time
zone's calendar day (Asia/Muscat), as stored with each ledger entry.

`write_settlement` reads through the store's API; `main(argv)` is the command
`smsgw parking settlement --date 2026-11-24 [--carrier omantel] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from handlers.parking.schema import COMPONENT
from smsgw import csvfile
from smsgw.files import open_private
from smsgw.log import get_logger
from smsgw.store import Connection, Store

__all__ = ["COLUMNS", "SettlementRow", "main", "settlement_rows", "write_settlement"]

log = get_logger(__name__)

COLUMNS = (
    "entry_id", "local_time", "carrier", "ticket", "plate", "zone", "msisdn", "kind", "minutes",
    "refunds_entry", "charge_baisa", "credit_baisa", "net_baisa",
)


@dataclass(frozen=True)
class SettlementRow:
    entry_id: int
    local_time: str
    carrier: str
    ticket: str
    plate: str
    zone: str
    msisdn: str
    kind: str  # charge | credit
    minutes: int
    refunds_entry: int | None  # a credit: the charge entry it gives back
    amount_baisa: int

    def cells(self) -> list[object]:
        charge = self.amount_baisa if self.kind == "charge" else 0
        credit = self.amount_baisa if self.kind == "credit" else 0
        return [
            self.entry_id, self.local_time, self.carrier, self.ticket, self.plate, self.zone, self.msisdn,
            self.kind, self.minutes or "", self.refunds_entry or "", charge, credit, charge - credit,
        ]


def _op_rows(conn: Connection, day: str, carrier: str | None) -> list[SettlementRow]:
    sql = (
        "SELECT l.id, l.local_time, l.carrier, s.ticket, s.plate, s.zone, l.msisdn, l.kind, l.minutes,"
        " l.charge_id, l.amount_baisa FROM parking_ledger AS l JOIN parking_session AS s ON s.id = l.session_id"
        " WHERE l.local_date = ?"
    )
    args: list[object] = [day]
    if carrier is not None:
        sql += " AND l.carrier = ?"
        args.append(carrier)
    return [SettlementRow(*row) for row in conn.execute(sql + " ORDER BY l.carrier, l.id", args)]


async def settlement_rows(store: Store, day: date, carrier: str | None = None) -> list[SettlementRow]:
    """Ledger entries of `day` (parking time zone), for one carrier or all, in entry order."""
    return await store.read(_op_rows, day.isoformat(), carrier)


def _write_csv(path: Path, day: date, carrier: str, rows: Sequence[SettlementRow], file_group: str | None) -> None:
    charges = sum(r.amount_baisa for r in rows if r.kind == "charge")
    credits = sum(r.amount_baisa for r in rows if r.kind == "credit")
    tickets = len({r.ticket for r in rows})
    tmp = path.with_name(path.name + ".tmp")
    # Full numbers: private from creation (0600, 0640 with a file group); cells never start a
    # formula (a sender id "=2+5" is written '=2+5): finance opens these files in a spreadsheet.
    with open_private(tmp, file_group) as f:
        out = csvfile.writer(f)
        out.writerow(COLUMNS)
        for row in rows:
            out.writerow(row.cells())
        out.writerow(["TOTAL", day.isoformat(), carrier, f"{tickets} tickets", "", "", "", f"{len(rows)} entries",
                      "", "", charges, credits, charges - credits])
    # Rename last: the billing team's pick-up job never sees a half-written file.
    os.replace(tmp, path)


async def write_settlement(
    store: Store | str | os.PathLike[str],
    day: date | str,
    carrier: str | None = None,
    out_dir: str | os.PathLike[str] = ".",
    *,
    carriers: Iterable[str] = (),
    file_group: str | None = None,
) -> list[Path]:
    """Write `parking-settlement-<day>-<carrier>.csv` for `carrier`, or for every carrier with
    entries that day plus those in `carriers` (a carrier with none gets a file with a zero total,
    so "nothing to settle" is stated, not implied).  Returns the files written.

    `store` is an open Store or the path of the gateway's database (opened and closed here).
    The files are created 0600, or 0640 for `file_group` ([gateway] file_group).
    """
    if isinstance(day, str):
        day = date.fromisoformat(day)
    if not isinstance(store, Store):
        opened = await Store.open(os.fspath(store), components=[COMPONENT], file_group=file_group)
        try:
            return await write_settlement(opened, day, carrier, out_dir, carriers=carriers, file_group=file_group)
        finally:
            await opened.close()
    rows = await settlement_rows(store, day, carrier)
    names = [carrier] if carrier is not None else sorted({r.carrier for r in rows} | set(carriers))
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        path = folder / f"parking-settlement-{day.isoformat()}-{name}.csv"
        mine = [r for r in rows if r.carrier == name]
        _write_csv(path, day, name, mine, file_group)
        log.info("parking_settlement_written", carrier=name, day=day.isoformat(), entries=len(mine), path=str(path))
        written.append(path)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsgw parking settlement",
        description="Write one CSV per carrier of the parking charges and credits of a day.",
    )
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="the day, YYYY-MM-DD (Asia/Muscat)")
    parser.add_argument("--carrier", help="only this carrier (default: every carrier)")
    parser.add_argument("--out", default=".", help="folder for the files (default: the current folder)")
    parser.add_argument("--store", help="the gateway database: a SQLite file or a postgresql:// URL (default: the store of --config)")
    parser.add_argument(
        "--config", default=os.environ.get("SMSGW_CONFIG", "config/gateway.toml"),
        help="gateway TOML file, for the database path and the carrier list (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    carriers: list[str] = []
    file_group: str | None = None
    store_path = args.store
    if store_path is None or args.carrier is None:
        from smsgw.config import ConfigError, load_config

        try:
            config = load_config(args.config)
        except ConfigError as exc:
            if store_path is None:
                print(str(exc), file=sys.stderr)
                return 2
        else:
            store_path = store_path or config.store_location
            carriers = [c.name for c in config.carriers if c.enabled]
            file_group = config.file_group
    if args.carrier is not None and carriers and args.carrier not in carriers:
        print(f"unknown carrier {args.carrier!r} (known: {', '.join(carriers)})", file=sys.stderr)
        return 2
    from smsgw.store import is_postgres

    if not is_postgres(store_path) and not Path(store_path).exists():
        print(f"no database at {store_path}", file=sys.stderr)
        return 2
    paths = asyncio.run(write_settlement(store_path, args.date, args.carrier, args.out, carriers=carriers,
                                         file_group=file_group))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
