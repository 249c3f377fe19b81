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
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carriers.control import control_request  # noqa: E402

CARRIERS = {"omantel": "omt_dev1", "ooredoo": "ord_dev1", "friendi": "frd_dev1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    path = tmp / "bench.toml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def control(port: int, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for event in control_request("127.0.0.1", port, request, timeout=timeout):
        last = event
        if event.get("event") == "error":
            raise RuntimeError(event.get("message"))
    return last


def wait_bound(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = control(port, {"op": "status"}, 5)
            carriers = status.get("carriers", status)
            if all(len(carriers.get(n, {}).get("sessions", [])) >= (2 if n == "ooredoo" else 1) for n in CARRIERS):
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.1)
    raise SystemExit("the gateway did not bind to the simulators in time")


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
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="smsgw-bench-") as tmpdir:
        tmp = Path(tmpdir)
        ports = {name: free_port() for name in CARRIERS}
        control_port = free_port()
        config = bench_config(tmp, ports, control_port, args.tps, args.window)
        sim_args = []
        for name, password in CARRIERS.items():
            sim_args += ["--sim", f"{name}:{ports[name]}:mm_smsgw:{password}:{args.tps}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        sims = subprocess.Popen(
            [sys.executable, "-m", "carriers", *sim_args, "--control-port", str(control_port), "--log-level", "warning"],
            cwd=str(ROOT), env=env, stdout=open(tmp / "sims.log", "wb"), stderr=subprocess.STDOUT,
        )
        gateway = None
        try:
            time.sleep(0.5)
            profile = ["-m", "cProfile", "-o", os.path.abspath(args.profile)] if args.profile else []
            gateway = subprocess.Popen(
                [sys.executable, *profile, "-m", "smsgw.cli", "run", "--no-simulators", "--config", str(config)],
                cwd=str(ROOT), env=env, stdout=open(tmp / "gateway.log", "wb"), stderr=subprocess.STDOUT,
            )
            wait_bound(control_port)
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
            rss = peak_rss_mb(gateway.pid)
        finally:
            for proc in (gateway, sims):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
            for proc in (gateway, sims):
                if proc is not None:
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
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
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
