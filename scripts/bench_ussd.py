#!/usr/bin/env python3
"""USSD screen round-trip benchmark: simulators and gateway as separate processes, one JSON line.

    .venv/bin/python scripts/bench_ussd.py [--dialogues 100] [--handsets 4] [--backlog 10000]

A screen's round trip is measured by the simulator, as a handset would feel it: from the
deliver_sm carrying the handset's input being written to the gateway, to the submit_sm with the
next screen being accepted. Each dialogue is a complete parking booking (language, menu, plate,
zone, duration, confirm: 8 screens) or a request status look-up, on the three carriers in turn,
several handsets at once, each answering the moment a screen arrives (so together they offer
more screens a second than real people would: the figures say how many, and how many submits the
carriers' USSD budgets throttled; the gateway paces screens to each carrier's `ussd_tps`). Two
runs against one gateway:
  * idle: nothing else queued;
  * backlog: `--backlog` HELP MOs are pushed through first, with the carriers' SMS TPS set to
    `--tps`, so their replies pile up as an SMS backlog (its size is read from the gateway's
    store before and after the run); the same dialogues then run behind it.
Target: p99 < 50 ms in both.

The gateway runs the parking, transactions and USSD features (`--serve-gateway`, this script
started again as the gateway process), so screens come from the real menus and services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carriers.load import percentile
from scripts.procs import control, free_port, require_bound, spawn_simulators, stop_process

CARRIERS = {"omantel": "omt_dev1", "ooredoo": "ord_dev1", "friendi": "frd_dev1"}
TARGET_P99_MS = 50.0



def bench_config(tmp: Path, ports: dict[str, int], control_port: int, tps: float) -> Path:
    text = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^store_path = .*$", f'store_path = "{(tmp / "bench.sqlite3").as_posix()}"', text)
    text = re.sub(r"(?m)^embedded_simulators = .*$", "embedded_simulators = false", text)
    text = re.sub(r"(?m)^log_level = .*$", 'log_level = "warning"', text)
    text = re.sub(r"(?m)^tps = .*$", f"tps = {tps}", text)
    # The admin API's fixed port could be taken by a gateway already running on this machine.
    text = re.sub(r"(?m)^(\[admin\](?:\n(?!\[).*)*?\nenabled = )true", r"\g<1>false", text)
    for name, default in (("omantel", 12775), ("ooredoo", 12776), ("friendi", 12777)):
        text = text.replace(f"port = {default}", f"port = {ports[name]}")
    text = text.replace("port = 12780", f"port = {control_port}")
    path = tmp / "bench.toml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    for name in ("parking.toml", "transactions.toml", "ussd.toml"):
        (tmp / name).write_text((ROOT / "config" / name).read_text(encoding="utf-8"), encoding="utf-8")
    return path


def serve_gateway(config_path: str) -> int:
    """The gateway process: `smsgw run --no-simulators` with the parking, transactions and USSD
    features (listed here so the benchmark does not depend on which features the CLI enables)."""
    from smsgw import reactor as smsgw_reactor

    smsgw_reactor.install()
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from handlers import parking, transactions, ussd
    from smsgw.config import load_config
    from smsgw.gateway import Gateway
    from smsgw.log import configure

    config = load_config(config_path)
    configure(config.log_level)
    gateway = Gateway(config, [parking.FEATURE, transactions.FEATURE, ussd.FEATURE], reactor=reactor)
    started: dict[str, bool] = {}

    async def boot() -> None:
        await gateway.start()
        started["ok"] = True

    def shutdown() -> Deferred[None] | None:
        return Deferred.fromFuture(asyncio.ensure_future(gateway.stop())) if started else None

    reactor.callWhenRunning(lambda: asyncio.ensure_future(boot()))
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    reactor.run()
    return 0


def dialogue(port: int, carrier: str, msisdn: str, kind: str) -> list[float]:
    """One complete dialogue; the simulator's round-trip time of each screen, in ms."""
    answers = ["1", "1", "1", "1234AB", "1", "2", "1"] if kind == "book" else ["1", "2", "MM-2026-000123"]
    rtts: list[float] = []
    event = control(port, {"op": "dial", "carrier": carrier, "from": msisdn, "code": "*141#", "timeout": 10})
    for answer in answers:
        if event.get("event") != "screen":
            raise RuntimeError(f"{carrier}: no screen ({event})")
        rtts.append(float(event["rtt_ms"]))
        if event.get("end"):
            return rtts
        event = control(port, {"op": "answer", "dialogue": event["dialogue"], "text": answer, "timeout": 10})
    if event.get("event") != "screen" or not event.get("end"):
        raise RuntimeError(f"{carrier}: the dialogue did not end ({event})")
    rtts.append(float(event["rtt_ms"]))
    return rtts


def run_dialogues(port: int, count: int, handsets: int, msisdn_base: int) -> list[tuple[str, float]]:
    """(carrier, round trip in ms) of every screen of `count` dialogues, `handsets` at a time."""
    def one(n: int) -> list[tuple[str, float]]:
        carrier = list(CARRIERS)[n % len(CARRIERS)]
        rtts = dialogue(port, carrier, str(msisdn_base + n), "book" if n % 2 == 0 else "status")
        return [(carrier, rtt) for rtt in rtts]

    with ThreadPoolExecutor(max_workers=handsets) as pool:
        return [screen for screens in pool.map(one, range(count)) for screen in screens]


def measured_run(port: int, count: int, handsets: int, msisdn_base: int) -> dict[str, Any]:
    """Figures of one run, with the screen rate offered and the submits the carriers throttled:
    handsets that answer at once offer more than a USSD gateway's budget (Friendi's is 100/s)."""
    throttled_before = carriers_throttled(port)
    start = time.monotonic()
    screens = run_dialogues(port, count, handsets, msisdn_base)
    elapsed = time.monotonic() - start
    return {**figures([rtt for _, rtt in screens]), "screens_per_s": round(len(screens) / elapsed, 1),
            "carrier_throttled": carriers_throttled(port) - throttled_before,
            # Per carrier: where the offered rate passes a carrier's ussd_tps, screens wait for it.
            "p99_ms_by_carrier": {name: figures([rtt for c, rtt in screens if c == name])["p99_ms"]
                                  for name in CARRIERS}}


def carriers_throttled(port: int) -> int:
    carriers = control(port, {"op": "status"}).get("carriers", {})
    return sum(info.get("counts", {}).get("throttled", 0) for info in carriers.values())


def queued_sms(store: Path) -> int:
    """SMS waiting in the gateway's store (read-only; WAL lets a reader in beside the writer)."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute("SELECT COUNT(*) FROM outbound WHERE state = 'queued' AND channel = 'sms'").fetchone()[0]


def figures(rtts: list[float]) -> dict[str, Any]:
    ordered = sorted(rtts)
    return {
        "screens": len(ordered),
        "p50_ms": round(percentile(ordered, 50) or 0.0, 2),
        "p99_ms": round(percentile(ordered, 99) or 0.0, 2),
        "max_ms": round(ordered[-1], 2) if ordered else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=100, help="dialogues per run")
    parser.add_argument("--handsets", type=int, default=4, help="dialogues running at once")
    parser.add_argument("--backlog", type=int, default=10_000, help="SMS replies queued for the second run")
    parser.add_argument("--tps", type=float, default=20.0, help="each carrier's SMS TPS in the gateway")
    parser.add_argument("--serve-gateway", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_gateway:
        return serve_gateway(args.serve_gateway)

    with tempfile.TemporaryDirectory(prefix="smsgw-bench-ussd-") as tmpdir:
        tmp = Path(tmpdir)
        ports = {name: free_port() for name in CARRIERS}
        control_port = free_port()
        config = bench_config(tmp, ports, control_port, args.tps)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        sims = spawn_simulators(ports, control_port, 100000, tmp / "sims.log")
        gateway = None
        try:
            time.sleep(0.5)
            gateway = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--serve-gateway", str(config)],
                cwd=str(tmp), env=env, stdout=open(tmp / "gateway.log", "wb"), stderr=subprocess.STDOUT,
            )
            require_bound(control_port)
            run_dialogues(control_port, 6, 2, 96870000000)  # warm-up: imports, statement caches
            idle = measured_run(control_port, args.dialogues, args.handsets, 96871000000)

            # The backlog: HELP MOs whose replies the carriers' SMS TPS cannot drain quickly. The load
            # request waits for every reply, which takes minutes; it runs on its own and is dropped.
            threading.Thread(
                target=lambda: _quietly(control, control_port, {
                    "op": "load", "count": args.backlog, "rate": 0, "keyword": "HELP", "to": "90091",
                    "msisdn_base": 96880000000, "idle_timeout": 600}, 3600),
                daemon=True,
            ).start()
            store = tmp / "bench.sqlite3"
            deadline = time.monotonic() + 120
            while queued_sms(store) < args.backlog * 0.95 and time.monotonic() < deadline:
                time.sleep(0.2)
            before = queued_sms(store)
            backlog_run = measured_run(control_port, args.dialogues, args.handsets, 96872000000)
            after = queued_sms(store)
            backlog = {**backlog_run, "sms_queued_before": before, "sms_queued_after": after}
        finally:
            stop_process(gateway)
            stop_process(sims)
        result = {
            "dialogues_per_run": args.dialogues,
            "handsets": args.handsets,
            "sms_tps_per_carrier": args.tps,
            "idle": idle,
            "backlog": backlog,
            "target_p99_ms": TARGET_P99_MS,
            "target_met": idle["p99_ms"] < TARGET_P99_MS and backlog["p99_ms"] < TARGET_P99_MS,
        }
        print(json.dumps(result))
    return 0


def _quietly(fn: Any, *args: Any) -> None:
    """Run a request whose end does not matter: the processes are stopped under it."""
    try:
        fn(*args)
    except (OSError, RuntimeError, ValueError):
        return


if __name__ == "__main__":
    raise SystemExit(main())
