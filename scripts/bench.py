#!/usr/bin/env python3
"""MO→MT benchmark: simulators and gateway as separate processes, one JSON line of figures.

    .venv/bin/python scripts/bench.py [--count 20000] [--rate 500] [--keyword HELP]
    .venv/bin/python scripts/bench.py --all --peer kannel [--rounds 3]

Per workload, against one gateway:
  * saturation: `count` MOs queued at once across the three carriers; the figure is
    sustained MO→MT msg/s (first MO to last reply).
  * latency: `--latency-count` MOs offered at `--rate` msg/s; the figures are p50/p95/p99
    of the time from deliver_sm written to the reply's last part received.
The store is durable (WAL, synchronous=NORMAL) exactly as in production; carrier TPS limits
are lifted so that the gateway, not a contract, is what is measured.  The simulators (SMSCs
and load generator) run in a process of their own; `sim_cpu_util` says how busy it was during
the saturation run (1.0 is a whole core: the load side, not the gateway, would be the limit),
`cpu_us_per_mo_mt` what the gateway's process spent per answered MO, its receipt included.

Workloads: HELP always; `--parking` the parking mix (bookings, extensions, MY); `--status` the
transaction-status mix (issue 5): the store is first loaded with `--transactions` transactions
through `smsgw transactions import` (its rate is reported), then STATUS queries on 90092: 90 %
ask for a reference registered to the sender (3 in 4 in English, 1 in 4 in Arabic with حالة),
10 % for one that exists but is registered to someone else (the privacy path: same reply as an
unknown reference).  Every STATUS MO comes from its own number, so the failed-look-up limit never
silences one.  `--all` is both.

`--peer kannel` then runs the same workloads through Kannel (bearerbox + smsbox from the
distribution's package) bound to fresh simulators of the same kind, and adds its figures and
smsgw ÷ Kannel per workload ("vs_kannel"); what Kannel is asked to do is in
scripts/kannel_peer.py.  Without the package the bench says so and runs smsgw alone.
`--rounds N` repeats the pair N times (smsgw, then Kannel, fresh each time): on a shared machine
whose speed drifts by a factor of two within minutes, one pair can land either way, so
"vs_kannel" is then the median of the rounds' ratios and "vs_kannel_rounds" lists each round's
[smsgw, Kannel, ratio]; the other figures are the first round's.

    .venv/bin/python scripts/bench.py --engines [--count 20000] [--rate 500]

compares the store engines in one run, each with fresh simulators: one node on SQLite, one node on
PostgreSQL, two nodes on PostgreSQL (every carrier allowing two binds, one per node).  Per setup:
MO→MT msg/s at saturation, p50/p99 at --rate, and CPU per message (ms, the gateway processes'
user+system time over the saturation run; PostgreSQL's own processes apart).  PostgreSQL is a
throwaway server from the installed binaries (scripts/pgserver.py), fsync on, as in production.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carriers.control import control_request  # noqa: E402
from scripts.procs import (  # noqa: E402
    control, cpu_seconds, free_port, peak_rss_mb, require_bound, spawn_simulators, stop_process,
)

CARRIERS = {"omantel": "omt_dev1", "ooredoo": "ord_dev1", "friendi": "frd_dev1"}



def bench_config(tmp: Path, ports: dict[str, int], control_port: int, tps: float, window: int,
                 log_level: str = "info") -> Path:
    """The shipped config on these ports, a fresh store and the bench's TPS and window.  The log
    level is the shipped one unless told otherwise: what production logs is part of the cost."""
    text = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^store_path = .*$", f'store_path = "{(tmp / "bench.sqlite3").as_posix()}"', text)
    text = re.sub(r"(?m)^embedded_simulators = .*$", "embedded_simulators = false", text)
    text = re.sub(r"(?m)^log_level = .*$", f'log_level = "{log_level}"', text)
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


def status_owners(transactions: int, counts: dict[str, int]) -> Iterator[tuple[int, str, list[str]]]:
    """(j, reference, registered numbers) of every transaction: reference j < count of a run is
    registered to that run's sender base + j; the others to someone who never asks."""
    for j in range(transactions):
        numbers = [str(STATUS_BASES[run] + j) for run, n in counts.items() if j < n]
        yield j, status_ref(j), numbers or [str(99000000 + j % 900000)]


def write_status_feed(path: Path, transactions: int, counts: dict[str, int]) -> None:
    services = ("building_permit_renewal", "parking_permit", "lease_contract_renewal",
                "commercial_licence_renewal", "general_request")
    statuses = ("received", "under_review", "awaiting_documents", "approved")
    with open(path, "w", encoding="utf-8", newline="") as feed:
        feed.write("ref,service,status,msisdns,note_en,updated_at\n")
        for j, ref, numbers in status_owners(transactions, counts):
            feed.write(f"{ref},{services[j % 5]},{statuses[j % 4]},{';'.join(numbers)},"
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


# -- workloads and peers -------------------------------------------------------------------------

WARMUP = 300  # first-use costs (imports, statement caches) are not what is measured


@dataclass
class Workload:
    """One kind of traffic: a warm-up, a saturation run and a latency run, as control-port loads."""

    name: str
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


def load(count: int, rate: float, base: int, **what: Any) -> dict[str, Any]:
    """A control-port load: `count` MOs at `rate` msg/s (0: all at once), one sender each from `base`."""
    return {"op": "load", "count": count, "rate": rate, "msisdn_base": base, "settle_s": 1.0, **what}


def help_workload(args: argparse.Namespace) -> Workload:
    what = {"keyword": args.keyword, "to": args.short_code}
    return Workload("help", {
        "warmup": load(WARMUP, 0, 96870000000, **what),
        "saturation": load(args.count, 0, 96880000000, **what),
        "latency": load(args.latency_count, args.rate, 96890000000, **what),
    })


def workloads(args: argparse.Namespace, counts: dict[str, int]) -> list[Workload]:
    chosen = [help_workload(args)]
    if args.parking:
        chosen.append(Workload("parking", {
            run: load(count, rate, base, mix=parking_mix(count, base % 1000003))
            for run, count, rate, base in (("warmup", WARMUP, 0, 96771000000),
                                           ("saturation", args.count, 0, 96772000000),
                                           ("latency", args.latency_count, args.rate, 96773000000))
        }))
    if args.status:
        chosen.append(Workload("status", {
            run: load(counts[run], rate, STATUS_BASES[run], mix=status_mix(counts[run], args.transactions))
            for run, rate in (("warmup", 0), ("saturation", 0), ("latency", args.rate))
        }))
    return chosen


def run_workloads(control_port: int, chosen: list[Workload], peer_pids: list[int],
                  sim_pid: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Every run of every workload; each answer also gets the CPU seconds the peer and the
    simulators used during it (from /proc, so no profiler slows anything down)."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for workload in chosen:
        results[workload.name] = {}
        for run, request in workload.runs.items():
            peer_cpu, sim_cpu = cpu_seconds(peer_pids), cpu_seconds([sim_pid])
            answer = control(control_port, request, 900)
            answer["peer_cpu_s"] = cpu_seconds(peer_pids) - peer_cpu
            answer["offered_rate"] = request["rate"]
            answer["sim_cpu_s"] = cpu_seconds([sim_pid]) - sim_cpu
            results[workload.name][run] = answer
    return results


def summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    sat, lat = runs["saturation"], runs["latency"]
    replied = sat.get("replied") or 0
    elapsed = sat.get("elapsed_s") or 0
    return {
        "mo_count": sat.get("sent"),
        "mo_mt_msgs_per_s": sat.get("msgs_per_s"),
        "saturation_p50_ms": sat.get("p50_ms"),
        "saturation_p99_ms": sat.get("p99_ms"),
        "offered_rate": runs["latency"].get("offered_rate"),
        "latency_mo_count": lat.get("sent"),
        "p50_ms": lat.get("p50_ms"),
        "p95_ms": lat.get("p95_ms"),
        "p99_ms": lat.get("p99_ms"),
        "latency_run_msgs_per_s": lat.get("msgs_per_s"),
        # CPU of the gateway (bearerbox + smsbox for Kannel) per answered MO over the saturation
        # run, its receipts included; and how busy the simulators' process was meanwhile (1.0 is
        # one core: the load side would be the limit).
        "cpu_us_per_mo_mt": round(sat["peer_cpu_s"] * 1e6 / replied) if replied else None,
        "sim_cpu_util": round(sat["sim_cpu_s"] / elapsed, 2) if elapsed else None,
        "lost": (sat.get("lost") or 0) + (lat.get("lost") or 0),
        "duplicates": (sat.get("duplicates") or 0) + (lat.get("duplicates") or 0),
        "mo_redeliveries": (sat.get("mo_redeliveries") or 0) + (lat.get("mo_redeliveries") or 0),
        "finished": [sat.get("finished"), lat.get("finished")],
    }


def ask(control_port: int, carrier: str, sender: str, to: str, text: str) -> str:
    """The text of the one reply an MO gets (its parts joined by the handset)."""
    texts = [event["text"] for event in control_request("127.0.0.1", control_port,
                                                         {"op": "mo", "carrier": carrier, "from": sender, "to": to,
                                                          "text": text, "replies": 1, "timeout": 10}, timeout=15)
             if event.get("event") == "mt"]
    if not texts:
        raise SystemExit(f"no reply to {text!r} on {to}: cannot copy the gateway's answer for the peer")
    return texts[0]


def sample_answers(control_port: int, args: argparse.Namespace) -> dict[str, str]:
    """The gateway's own answers, for the peer to give the same texts (same length, same parts)."""
    answers = {"help": ask(control_port, "omantel", "96879000001", args.short_code, args.keyword)}
    answers["default"] = answers["help"]
    if args.parking:
        answers["default"] = ask(control_port, "omantel", "96779000001", "90091", "4321K 30")
    if args.status:
        base = STATUS_BASES["warmup"]
        answers["status_found"] = ask(control_port, "omantel", str(base), STATUS_CODE, f"STATUS {status_ref(0)}")
        answers["status_not_found"] = ask(control_port, "omantel", str(base + 1), STATUS_CODE,
                                          f"STATUS {status_ref(args.transactions - 1)}")
    return answers


def check_peer_answers(control_port: int, args: argparse.Namespace, answers: dict[str, str]) -> None:
    """The peer must give the answers it was configured with, or its figures mean nothing."""
    expected = [("96879000002", args.short_code, args.keyword, answers["help"])]
    if args.parking:
        expected.append(("96779000002", "90091", "4322K 30", answers["default"]))
    if args.status:
        base = STATUS_BASES["warmup"]  # reference 0 is registered to base + 0, not to base + 1
        expected.append((str(base), STATUS_CODE, f"STATUS {status_ref(0)}", answers["status_found"]))
        expected.append((str(base + 1), STATUS_CODE, f"STATUS {status_ref(args.transactions - 1)}",
                         answers["status_not_found"]))
    for sender, to, text, want in expected:
        got = ask(control_port, "omantel", sender, to, text)
        if " ".join(got.split()) != " ".join(want.split()):
            raise SystemExit(f"the peer answered {text!r} with {got!r}, expected {want!r}")


def route_words(config: Path, handler: str, keyword: str) -> tuple[str, ...]:
    from smsgw.app import load_checked_config

    for route in load_checked_config(str(config)).routes:
        if route.handler == handler and route.keyword == keyword:
            return tuple(route.aliases)
    return ()


# -- the runs ------------------------------------------------------------------------------------


def run_smsgw(args: argparse.Namespace, tmp: Path, counts: dict[str, int],
              chosen: list[Workload]) -> tuple[dict[str, Any], dict[str, str]]:
    ports = {name: free_port() for name in CARRIERS}
    control_port = free_port()
    config = bench_config(tmp, ports, control_port, args.tps, args.window, args.log_level)
    seeding: dict[str, Any] = {}
    if args.parking:
        paid_all_day(tmp)
    if args.status:
        text = config.read_text(encoding="utf-8")
        if not re.search(r'(?m)^keyword = "STATUS"', text):
            config.write_text(text + TRANSACTION_ROUTES, encoding="utf-8")
        seeding = seed_transactions(tmp, config, args.transactions, counts)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    sims = spawn_simulators(ports, control_port, args.tps, tmp / "sims.log")
    gateway = None
    answers: dict[str, str] = {}
    try:
        time.sleep(0.5)
        profile = ["-m", "cProfile", "-o", os.path.abspath(args.profile)] if args.profile else []
        gateway = subprocess.Popen(
            [sys.executable, *profile, "-m", "smsgw.cli", "run", "--no-simulators", "--config", str(config)],
            cwd=str(ROOT), env=env, stdout=open(tmp / "gateway.log", "wb"), stderr=subprocess.STDOUT,
        )
        require_bound(control_port, 20.0)
        results = run_workloads(control_port, chosen, [gateway.pid], sims.pid)
        rss = peak_rss_mb(gateway.pid)
        if args.peer:
            answers = sample_answers(control_port, args)
    finally:
        stop_process(gateway)
        stop_process(sims)
    help_ = summary(results["help"])
    figures: dict[str, Any] = {"keyword": args.keyword, "window": args.window, "log_level": args.log_level,
                               **help_, "peak_rss_mb": rss}
    if "parking" in results:
        figures["parking"] = summary(results["parking"])
        if help_["mo_mt_msgs_per_s"] and figures["parking"]["mo_mt_msgs_per_s"]:
            figures["parking"]["help_ratio"] = round(figures["parking"]["mo_mt_msgs_per_s"] / help_["mo_mt_msgs_per_s"], 2)
    if "status" in results:
        figures["status"] = {**seeding, **summary(results["status"])}
    return figures, answers


def run_kannel(args: argparse.Namespace, tmp: Path, counts: dict[str, int], chosen: list[Workload],
               answers: dict[str, str]) -> dict[str, Any]:
    from scripts.kannel_peer import KannelPeer, KannelTexts, StatusKeywords, kannel_config, kannel_version, \
        write_status_files

    ports = {name: free_port() for name in CARRIERS}
    control_port = free_port()
    config = bench_config(tmp, ports, control_port, args.tps, args.window)  # Kannel's config is made from it
    if args.status and not re.search(r'(?m)^keyword = "STATUS"', config.read_text(encoding="utf-8")):
        config.write_text(config.read_text(encoding="utf-8") + TRANSACTION_ROUTES, encoding="utf-8")
    from smsgw.app import load_checked_config

    status_kw = status_dir = None
    files = None
    if args.status:
        status_kw = StatusKeywords("STATUS", route_words(config, "transactions", "STATUS"), STATUS_CODE)
        status_dir = tmp / "status"
        found, ref0 = answers["status_found"], status_ref(0)
        files = write_status_files(status_dir, ((ref, numbers, found.replace(ref0, ref))
                                                for _, ref, numbers in status_owners(args.transactions, counts)))
    texts = KannelTexts(help=answers["help"], default=answers["default"],
                        status_not_found=answers.get("status_not_found", answers["help"]))
    kannel_conf, kannel_ports = kannel_config(
        tmp, load_checked_config(str(config)), texts, window=args.window, status=status_kw, status_dir=status_dir,
        help_aliases=route_words(config, "help", "HELP"), store=args.kannel_store)
    sims = spawn_simulators(ports, control_port, args.tps, tmp / "sims.log")
    peer = KannelPeer(kannel_conf, kannel_ports, tmp)
    try:
        time.sleep(0.5)
        peer.start()
        require_bound(control_port, 30.0)
        check_peer_answers(control_port, args, answers)
        results = run_workloads(control_port, chosen, peer.pids, sims.pid)
        time.sleep(3.0)  # the last receipts (sent up to 2 s after their MT) reach Kannel
        dlrs_waiting = peer.dlrs_waiting()
        rss = round(sum(peak_rss_mb(pid) or 0 for pid in peer.pids), 1)
    finally:
        peer.stop()
        stop_process(sims)
    figures: dict[str, Any] = {"version": kannel_version(), "store": args.kannel_store,
                               "dlrs_unmatched": dlrs_waiting, "peak_rss_mb": rss}
    if files is not None:
        figures["status_files"] = files
    for name, runs in results.items():
        figures[name] = summary(runs)
    return figures


# -- store engines (issue 15) --------------------------------------------------------------------


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
    config = bench_config(work, ports, control_port, args.tps, args.window, args.log_level)
    text = config.read_text(encoding="utf-8")
    if engine == "postgresql":
        url = server.create_database(setup.replace("-", "_"))
        text = re.sub(r"(?m)^store_path = .*$", f'store_url = "{url}"', text)
        text = re.sub(r"(?m)^(\[carriers\.\w+\])$", rf"\1\nmax_binds = {nodes}", text)
    config.write_text(text, encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    sims = spawn_simulators(ports, control_port, args.tps, work / "sims.log")
    gateways: list[subprocess.Popen[bytes]] = []
    help_ = help_workload(args).runs
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
        control(control_port, help_["warmup"], 120)
        pids = [g.pid for g in gateways]
        db_pids = postgres_pids(server) if engine == "postgresql" else []
        cpu0, db0 = cpu_seconds(pids), cpu_seconds(db_pids)
        saturation = control(control_port, help_["saturation"], 900)
        cpu1, db1 = cpu_seconds(pids), cpu_seconds(db_pids)
        latency = control(control_port, help_["latency"], 900)
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


def median_ratio(pairs: list[tuple[float | None, float | None]]) -> float | None:
    """smsgw ÷ peer, the median over rounds of each round's own ratio."""
    ratios = sorted(ours / peer for ours, peer in pairs if ours and peer)
    if not ratios:
        return None
    middle = len(ratios) // 2
    value = ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2
    return round(value, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="MOs in the saturation run")
    parser.add_argument("--rate", type=float, default=500.0, help="offered msg/s in the latency run")
    parser.add_argument("--latency-count", type=int, default=5000, help="MOs in the latency run")
    parser.add_argument("--keyword", default="HELP")
    parser.add_argument("--short-code", default="90091")
    parser.add_argument("--tps", type=float, default=20000.0, help="per-carrier TPS (gateway and SMSC)")
    parser.add_argument("--window", type=int, default=10, help="requests in flight per bind (gateway and Kannel)")
    parser.add_argument("--log-level", default="info", help="the gateway's log level (default: the shipped one)")
    parser.add_argument("--profile", metavar="FILE", help="run the gateway under cProfile, stats written to FILE")
    parser.add_argument("--parking", action="store_true", help="also run the parking mix (book/extend/my)")
    parser.add_argument("--status", action="store_true", help="also run the STATUS mix over --transactions")
    parser.add_argument("--all", action="store_true", help="HELP, the parking mix and the STATUS mix")
    parser.add_argument("--transactions", type=int, default=100_000, help="transactions in the store (--status)")
    parser.add_argument("--status-count", type=int, default=20000, help="MOs in the STATUS saturation run")
    parser.add_argument("--peer", choices=["kannel"], help="run the same load through this peer too, and compare")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --peer: smsgw then the peer, this many times; the ratio is the rounds' median")
    parser.add_argument("--kannel-store", choices=["none", "file", "spool"], default="none",
                        help="Kannel's message store (none: its default, nothing written per message)")
    parser.add_argument("--engines", action="store_true",
                        help="compare 1 node on SQLite, 1 node on PostgreSQL and 2 nodes on PostgreSQL")
    args = parser.parse_args(argv)
    if args.engines:
        return compare_engines(args)
    if args.all:
        args.parking = args.status = True
    counts = {"warmup": WARMUP, "saturation": args.status_count, "latency": args.latency_count}
    if args.status:
        check_transactions_feature()
        if max(counts.values()) > args.transactions // 2:
            raise SystemExit("--transactions must be at least twice the largest STATUS run")
    peer_missing = None
    if args.peer == "kannel":
        from scripts.kannel_peer import kannel_available

        peer_missing = kannel_available()
        if peer_missing:
            print(f"{peer_missing}: running smsgw alone", file=sys.stderr)
    chosen = workloads(args, counts)
    compare = args.peer == "kannel" and not peer_missing
    figures: dict[str, Any] = {}
    rounds: list[dict[str, Any]] = []
    for number in range(args.rounds if compare else 1):
        with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as tmpdir:
            tmp = Path(tmpdir)
            (tmp / "smsgw").mkdir()
            ours_figures, answers = run_smsgw(args, tmp / "smsgw", counts, chosen)
            if not compare:
                figures = ours_figures
                if peer_missing:
                    figures["kannel"] = {"skipped": peer_missing}
                break
            (tmp / "kannel").mkdir()
            kannel = run_kannel(args, tmp / "kannel", counts, chosen, answers)
            ours = {"help": ours_figures,
                    **{name: ours_figures[name] for name in ("parking", "status") if name in ours_figures}}
            rounds.append({name: (ours[name].get("mo_mt_msgs_per_s"), kannel[name].get("mo_mt_msgs_per_s"))
                           for name in ours})
            if number == 0:
                figures = {**ours_figures, "kannel": kannel}
    if rounds:
        figures["vs_kannel"] = {name: median_ratio([r[name] for r in rounds]) for name in rounds[0]}
        if len(rounds) > 1:
            # Each round is smsgw then Kannel back to back, so a drift in the machine's speed moves
            # both; the median of the rounds' ratios is the figure, their spread its noise.
            figures["vs_kannel_rounds"] = {
                name: [[ours, peer, round(ours / peer, 2) if ours and peer else None] for ours, peer in
                       (r[name] for r in rounds)]
                for name in rounds[0]
            }
    print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
