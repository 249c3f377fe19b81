#!/usr/bin/env python3
"""MO→MT benchmark: simulators and gateway as separate processes, one JSON line of figures.

    .venv/bin/python scripts/bench.py [--count 20000] [--rate 500] [--keyword HELP]

Two runs against one gateway:
  * saturation: `count` MOs queued at once across the three carriers; the figure is
    sustained MO→MT msg/s (first MO to last reply).
  * latency: `--latency-count` MOs offered at `--rate` msg/s; the figures are p50/p95/p99
    of the time from deliver_sm written to the reply's last part received.
The store is durable (WAL, synchronous=NORMAL) exactly as in production; carrier TPS limits
are lifted so that the gateway, not a contract, is what is measured.

    .venv/bin/python scripts/bench.py --status [--transactions 100000]

    .venv/bin/python scripts/bench.py --engines [--count 20000] [--rate 500]

compares the store engines in one run, each with fresh simulators: one node on SQLite, one node on
PostgreSQL, two nodes on PostgreSQL (every carrier allowing two binds, one per node).  Per setup:
MO→MT msg/s at saturation, p50/p99 at --rate, and CPU per message (ms, the gateway processes'
user+system time over the saturation run; PostgreSQL's own processes apart).  PostgreSQL is a
throwaway server from the installed binaries (scripts/pgserver.py), fsync on, as in production.

`--status` adds the transaction-status mix (issue 5): the store is first loaded with `--transactions`
transactions through `smsgw transactions import` (its rate is reported), then the same two runs
are made with STATUS queries on 90092 next to the HELP runs: 90 % ask for a reference registered
to the sender (3 in 4 in English, 1 in 4 in Arabic with حالة), 10 % for one that exists but is
registered to someone else (the privacy path: same reply as an unknown reference).  Every STATUS
MO comes from its own number, so the failed-look-up limit never silences one.  Needs the
transactions feature registered in smsgw.app.features() (the gateway must know the handler).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.procs import control, free_port, peak_rss_mb, require_bound, spawn_simulators, stop_process  # noqa: E402

CARRIERS = {"omantel": "omt_dev1", "ooredoo": "ord_dev1", "friendi": "frd_dev1"}



def bench_config(tmp: Path, ports: dict[str, int], control_port: int, tps: float, window: int) -> Path:
    text = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^store_path = .*$", f'store_path = "{(tmp / "bench.sqlite3").as_posix()}"', text)
    text = re.sub(r"(?m)^embedded_simulators = .*$", "embedded_simulators = false", text)
    text = re.sub(r"(?m)^log_level = .*$", 'log_level = "warning"', text)
    text = re.sub(r"(?m)^tps = .*$", f"tps = {tps}", text)
    text = re.sub(r"(?m)^window = .*$", f"window = {window}", text)
    for name, default in (("omantel", 12775), ("ooredoo", 12776), ("friendi", 12777)):
        text = text.replace(f"port = {default}", f"port = {ports[name]}")
    text = text.replace("port = 12780", f"port = {control_port}")
    # The admin API: a free port, never the fixed one a running gateway may hold.
    text = re.sub(r"(?m)^(\[admin\](?:\n(?!\[).*)*?\nport = )\d+", r"\g<1>0", text)
    path = tmp / "bench.toml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    for source in (ROOT / "config").glob("*.toml"):  # feature configs live beside it
        if source.name != "gateway.toml":
            (tmp / source.name).write_bytes(source.read_bytes())
    return path


# -- the parking mix (issue 4) -------------------------------------------------------------------

PARKING_LETTERS = ("A", "B", "D", "H", "M", "R", "S", "W", "K", "T")


def parking_mix(count: int, salt: int) -> list[list[str]]:
    """Per 20 MOs: 12 new bookings (1 in 4 in Arabic), 5 re-bookings of an earlier plate (the
    extension path) and 3 MY — each MO from its own number, as the load runner sends them."""
    mix: list[list[str]] = []
    plates: list[str] = []
    for j in range(count):
        slot = j % 20
        if slot < 12 or not plates:
            plate = f"{(salt * 7919 + j) % 99999 + 1}{PARKING_LETTERS[j % len(PARKING_LETTERS)]}"
            plates.append(plate)
            text = f"حجز {plate} ٣٠" if j % 4 == 3 else f"{plate} 30"
        elif slot < 17:
            text = f"{plates[(j * 31) % len(plates)]} 30"
        else:
            text = "مواقفي" if j % 2 else "MY"
        mix.append(["90091", text])
    return mix


def paid_all_day(tmp: Path) -> None:
    """Bookings in free hours store nothing; the bench measures the paid path, every hour."""
    path = tmp / "parking.toml"
    text = path.read_text(encoding="utf-8")
    for day in ("sun", "mon", "tue", "wed", "thu", "fri", "sat"):
        text = re.sub(rf"(?m)^{day} = .*$", f'{day} = ["00:00-24:00"]', text)
    text = re.sub(r"(?s)holidays = \[.*?\]", "holidays = []", text)
    path.write_text(text, encoding="utf-8")




# -- the STATUS mix (issue 5) --------------------------------------------------------------------

STATUS_CODE = "90092"
#: Senders of the STATUS runs: valid Omani mobile ranges, because the importer validates the numbers
#: it registers (the HELP runs' bases need not be).
STATUS_BASES = {"warmup": 96891000000, "saturation": 96892000000, "latency": 96893000000}
#: The control port reads one JSON line of at most 1 MiB; a STATUS mix names one reference per MO.
MAX_MIX_BYTES = 1000 * 1000
TRANSACTION_ROUTES = """
[[routes]]
keyword = "STATUS"
aliases = ["حالة", "استعلام"]
handler = "transactions"
short_codes = ["90092"]

[[routes]]
keyword = "MY"
aliases = ["طلباتي"]
handler = "transactions"
short_codes = ["90092"]
"""


def status_ref(j: int) -> str:
    return f"MM-2026-{j:06d}"


def status_mix(count: int, transactions: int) -> list[list[str]]:
    """MO j asks for reference j, registered to its sender (base + j); every 10th asks for a
    reference registered to someone else instead; every 4th is in Arabic."""
    mix = []
    for j in range(count):
        ref = status_ref(j) if j % 10 != 9 else status_ref(transactions - 1 - j % (transactions // 2))
        mix.append([STATUS_CODE, f"{'حالة' if j % 4 == 3 else 'STATUS'} {ref}"])
    if len(json.dumps(mix, ensure_ascii=False).encode()) > MAX_MIX_BYTES:
        raise SystemExit(f"a STATUS run of {count} MOs does not fit one control request; use fewer")
    return mix


def write_status_feed(path: Path, transactions: int, counts: dict[str, int]) -> None:
    """`transactions` rows; reference j < count of a run is registered to that run's sender base + j."""
    services = ("building_permit_renewal", "parking_permit", "lease_contract_renewal",
                "commercial_licence_renewal", "general_request")
    statuses = ("received", "under_review", "awaiting_documents", "approved")
    with open(path, "w", encoding="utf-8", newline="") as feed:
        feed.write("ref,service,status,msisdns,note_en,updated_at\n")
        for j in range(transactions):
            numbers = [str(STATUS_BASES[run] + j) for run, n in counts.items() if j < n]
            if not numbers:
                numbers = [str(99000000 + j % 900000)]  # someone who never asks
            feed.write(f"{status_ref(j)},{services[j % 5]},{statuses[j % 4]},{';'.join(numbers)},"
                       f"Reviewed by the permits section,2026-03-{1 + j % 28:02d} 10:{j % 60:02d}\n")


def seed_transactions(tmp: Path, config: Path, transactions: int, counts: dict[str, int]) -> dict[str, Any]:
    """Load the store through the real importer, as a separate process; its rate is a figure too."""
    feed = tmp / "transactions.csv"
    write_status_feed(feed, transactions, counts)
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "handlers.transactions.importer", str(feed), "--config", str(config)],
        cwd=str(ROOT), capture_output=True, text=True, check=False,
    )
    elapsed = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"seeding the transactions failed:\n{run.stderr[-2000:]}")
    return {"transactions": transactions, "import_s": round(elapsed, 2),
            "import_rows_per_s": round(transactions / elapsed), "import_summary": run.stdout.splitlines()[0]}


def check_transactions_feature() -> None:
    from smsgw.app import features

    if not any("transactions" in f.handlers for f in features()):
        raise SystemExit("--status needs the transactions feature: add handlers.transactions.FEATURE to "
                         "smsgw.app.features()")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (from /proc), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids(server: Any) -> list[int]:
    from scripts.pgserver import _children

    pid = server.postmaster_pid
    return [pid, *_children(pid)] if pid else []


def engine_run(tmp: Path, args: argparse.Namespace, setup: str, server: Any) -> dict[str, Any]:
    """One setup ("sqlite-1", "postgresql-1", "postgresql-2"): fresh simulators and nodes."""
    engine, nodes = setup.split("-")
    work = tmp / setup
    work.mkdir()
    ports = {name: free_port() for name in CARRIERS}
    control_port = free_port()
    config = bench_config(work, ports, control_port, args.tps, args.window)
    text = config.read_text(encoding="utf-8")
    if engine == "postgresql":
        url = server.create_database(setup.replace("-", "_"))
        text = re.sub(r"(?m)^store_path = .*$", f'store_url = "{url}"', text)
        text = re.sub(r"(?m)^(\[carriers\.\w+\])$", rf"\1\nmax_binds = {nodes}", text)
    config.write_text(text, encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    sims = spawn_simulators(ports, control_port, args.tps, work / "sims.log")
    gateways: list[subprocess.Popen[bytes]] = []
    try:
        time.sleep(0.5)
        for i in range(int(nodes)):
            gateways.append(subprocess.Popen(
                [sys.executable, "-m", "smsgw.cli", "run", "--no-simulators", "--config", str(config),
                 "--node", f"bench{i + 1}", "--admin-port", "0"],
                cwd=str(ROOT), env=env, stdout=open(work / f"gateway{i + 1}.log", "wb"), stderr=subprocess.STDOUT,
            ))
        require_bound(control_port, 30.0)
        if int(nodes) > 1:  # every node holds its bind of every carrier before the clock starts
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status = control(control_port, {"op": "status"}, 5)
                if all(len(c.get("sessions", [])) >= 2 * int(nodes) - (0 if name == "ooredoo" else int(nodes))
                       for name, c in status.get("carriers", {}).items()):
                    break
                time.sleep(0.2)
        control(control_port, {"op": "load", "count": 300, "rate": 0, "keyword": args.keyword,
                               "to": args.short_code, "msisdn_base": 96870000000}, 120)
        pids = [g.pid for g in gateways]
        db_pids = postgres_pids(server) if engine == "postgresql" else []
        cpu0, db0 = cpu_seconds(pids), cpu_seconds(db_pids)
        saturation = control(control_port, {"op": "load", "count": args.count, "rate": 0, "keyword": args.keyword,
                                            "to": args.short_code, "msisdn_base": 96880000000, "settle_s": 1.0}, 900)
        cpu1, db1 = cpu_seconds(pids), cpu_seconds(db_pids)
        latency = control(control_port, {"op": "load", "count": args.latency_count, "rate": args.rate,
                                         "keyword": args.keyword, "to": args.short_code,
                                         "msisdn_base": 96890000000, "settle_s": 1.0}, 900)
    finally:
        for gateway in gateways:
            stop_process(gateway)
        stop_process(sims)
    return {
        "mo_mt_msgs_per_s": saturation.get("msgs_per_s"),
        "saturation_p99_ms": saturation.get("p99_ms"),
        "p50_ms": latency.get("p50_ms"),
        "p99_ms": latency.get("p99_ms"),
        "gateway_cpu_ms_per_msg": round((cpu1 - cpu0) * 1000 / args.count, 3),
        "postgres_cpu_ms_per_msg": round((db1 - db0) * 1000 / args.count, 3) if db_pids else None,
        "lost": (saturation.get("lost") or 0) + (latency.get("lost") or 0),
        "duplicates": (saturation.get("duplicates") or 0) + (latency.get("duplicates") or 0),
    }


def compare_engines(args: argparse.Namespace) -> int:
    from scripts.pgserver import PgServer

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as tmpdir, PgServer(fsync=True) as server:
        for setup in ("sqlite-1", "postgresql-1", "postgresql-2"):
            results[setup] = engine_run(Path(tmpdir), args, setup, server)
    base = results["sqlite-1"]["mo_mt_msgs_per_s"] or 1
    for setup in results.values():
        setup["vs_sqlite"] = round((setup["mo_mt_msgs_per_s"] or 0) / base, 2)
    print(json.dumps({"keyword": args.keyword, "mo_count": args.count, "offered_rate": args.rate,
                      "cores": os.cpu_count(), "engines": results}, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="MOs in the saturation run")
    parser.add_argument("--rate", type=float, default=500.0, help="offered msg/s in the latency run")
    parser.add_argument("--latency-count", type=int, default=5000, help="MOs in the latency run")
    parser.add_argument("--keyword", default="HELP")
    parser.add_argument("--short-code", default="90091")
    parser.add_argument("--tps", type=float, default=20000.0, help="per-carrier TPS (gateway and SMSC)")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--profile", metavar="FILE", help="run the gateway under cProfile, stats written to FILE")
    parser.add_argument("--parking", action="store_true", help="also run the parking mix (book/extend/my)")
    parser.add_argument("--status", action="store_true", help="also run the STATUS mix over --transactions")
    parser.add_argument("--transactions", type=int, default=100_000, help="transactions in the store (--status)")
    parser.add_argument("--status-count", type=int, default=20000, help="MOs in the STATUS saturation run")
    parser.add_argument("--engines", action="store_true",
                        help="compare 1 node on SQLite, 1 node on PostgreSQL and 2 nodes on PostgreSQL")
    args = parser.parse_args(argv)
    if args.engines:
        return compare_engines(args)
    if args.status:
        check_transactions_feature()
        counts = {"warmup": 300, "saturation": args.status_count, "latency": args.latency_count}
        if max(counts.values()) > args.transactions // 2:
            raise SystemExit("--transactions must be at least twice the largest STATUS run")

    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as tmpdir:
        tmp = Path(tmpdir)
        ports = {name: free_port() for name in CARRIERS}
        control_port = free_port()
        config = bench_config(tmp, ports, control_port, args.tps, args.window)
        seeding: dict[str, Any] = {}
        if args.parking:
            paid_all_day(tmp)
        if args.status:
            text = config.read_text(encoding="utf-8")
            if not re.search(r'(?m)^keyword = "STATUS"', text):
                config.write_text(text + TRANSACTION_ROUTES, encoding="utf-8")
            (tmp / "transactions.toml").write_text(
                (ROOT / "config" / "transactions.toml").read_text(encoding="utf-8"), encoding="utf-8")
            seeding = seed_transactions(tmp, config, args.transactions, counts)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        sims = spawn_simulators(ports, control_port, args.tps, tmp / "sims.log")
        gateway = None
        try:
            time.sleep(0.5)
            profile = ["-m", "cProfile", "-o", os.path.abspath(args.profile)] if args.profile else []
            gateway = subprocess.Popen(
                [sys.executable, *profile, "-m", "smsgw.cli", "run", "--no-simulators", "--config", str(config)],
                cwd=str(ROOT), env=env, stdout=open(tmp / "gateway.log", "wb"), stderr=subprocess.STDOUT,
            )
            require_bound(control_port, 20.0)
            # Warm-up: first-use costs (imports, statement cache) are not what we measure.
            control(control_port, {"op": "load", "count": 300, "rate": 0, "keyword": args.keyword,
                                   "to": args.short_code, "msisdn_base": 96870000000}, 120)
            saturation = control(
                control_port,
                {"op": "load", "count": args.count, "rate": 0, "keyword": args.keyword, "to": args.short_code,
                 "msisdn_base": 96880000000, "settle_s": 1.0},
                600,
            )
            latency = control(
                control_port,
                {"op": "load", "count": args.latency_count, "rate": args.rate, "keyword": args.keyword,
                 "to": args.short_code, "msisdn_base": 96890000000, "settle_s": 1.0},
                600,
            )
            parking_runs: dict[str, dict[str, Any]] = {}
            if args.parking:
                for run, count, rate, base in (("warmup", 300, 0, 96771000000), ("saturation", args.count, 0, 96772000000),
                                               ("latency", args.latency_count, args.rate, 96773000000)):
                    parking_runs[run] = control(
                        control_port,
                        {"op": "load", "count": count, "rate": rate, "msisdn_base": base,
                         "mix": parking_mix(count, base % 1000003), "settle_s": 1.0},
                        600,
                    )
            status_runs: dict[str, dict[str, Any]] = {}
            if args.status:
                for run, count, rate in (("warmup", counts["warmup"], 0), ("saturation", counts["saturation"], 0),
                                         ("latency", counts["latency"], args.rate)):
                    status_runs[run] = control(
                        control_port,
                        {"op": "load", "count": count, "rate": rate, "msisdn_base": STATUS_BASES[run],
                         "mix": status_mix(count, args.transactions), "settle_s": 1.0},
                        600,
                    )
            rss = peak_rss_mb(gateway.pid)
        finally:
            stop_process(gateway)
            stop_process(sims)
        figures = {
            "keyword": args.keyword,
            "mo_count": args.count,
            "mo_mt_msgs_per_s": saturation.get("msgs_per_s"),
            "saturation_p50_ms": saturation.get("p50_ms"),
            "saturation_p99_ms": saturation.get("p99_ms"),
            "offered_rate": args.rate,
            "latency_mo_count": args.latency_count,
            "p50_ms": latency.get("p50_ms"),
            "p95_ms": latency.get("p95_ms"),
            "p99_ms": latency.get("p99_ms"),
            "latency_run_msgs_per_s": latency.get("msgs_per_s"),
            "peak_rss_mb": rss,
            "lost": (saturation.get("lost") or 0) + (latency.get("lost") or 0),
            "duplicates": (saturation.get("duplicates") or 0) + (latency.get("duplicates") or 0),
            "mo_redeliveries": (saturation.get("mo_redeliveries") or 0) + (latency.get("mo_redeliveries") or 0),
            "finished": [saturation.get("finished"), latency.get("finished")],
        }
        if args.parking:
            sat, lat = parking_runs["saturation"], parking_runs["latency"]
            figures["parking"] = {
                "mo_count": args.count,
                "mo_mt_msgs_per_s": sat.get("msgs_per_s"),
                "help_ratio": round(sat["msgs_per_s"] / saturation["msgs_per_s"], 2)
                if sat.get("msgs_per_s") and saturation.get("msgs_per_s") else None,
                "saturation_p99_ms": sat.get("p99_ms"),
                "offered_rate": args.rate,
                "p50_ms": lat.get("p50_ms"),
                "p99_ms": lat.get("p99_ms"),
                "lost": (sat.get("lost") or 0) + (lat.get("lost") or 0),
                "duplicates": (sat.get("duplicates") or 0) + (lat.get("duplicates") or 0),
            }
        if args.status:
            sat, lat = status_runs["saturation"], status_runs["latency"]
            figures["status"] = {
                **seeding,
                "mo_count": counts["saturation"],
                "mo_mt_msgs_per_s": sat.get("msgs_per_s"),
                "saturation_p50_ms": sat.get("p50_ms"),
                "saturation_p99_ms": sat.get("p99_ms"),
                "offered_rate": args.rate,
                "latency_mo_count": counts["latency"],
                "p50_ms": lat.get("p50_ms"),
                "p95_ms": lat.get("p95_ms"),
                "p99_ms": lat.get("p99_ms"),
                "lost": (sat.get("lost") or 0) + (lat.get("lost") or 0),
                "duplicates": (sat.get("duplicates") or 0) + (lat.get("duplicates") or 0),
                "finished": [sat.get("finished"), lat.get("finished")],
            }
        print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
