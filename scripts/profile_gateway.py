#!/usr/bin/env python3
"""Where the gateway's time goes under bench load: CPU µs per MO→MT and the top functions.

    .venv/bin/python scripts/profile_gateway.py [--workload help|status|parking] [--count 20000]
                                                [--window 10] [--out DIR]

The same processes as scripts/bench.py (simulators in their own process, `smsgw run
--no-simulators` on the bench's config and a durable store).  After a warm-up, two saturation
runs of `--count` MOs:
  1. unobserved: the gateway process's CPU time (user + system, all threads, from /proc) over
     the run, divided by the MOs answered, is `cpu_us_per_mo_mt` (their receipts included);
  2. under py-spy (a sampling profiler outside the process, `pip install -e '.[profile]'`, needs ptrace
     rights: root or CAP_SYS_PTRACE): the samples of the gateway's threads.  `top_self` is the
     share of the main thread's busy samples spent in each function itself, `top_inclusive` in
     it or what it calls; `thread_busy` how much of a core each thread (the reactor's, the
     store's) kept busy while the MOs flowed.  On the standard loop the wait in epoll shows apart ("select"); on uvloop
     (the default where installed) the loop is C code py-spy cannot look into, so its own work and
     its wait in epoll both show as AsyncioSelectorReactor.run.
`store_writes_per_commit` is how well group commit batched over the gateway's life: per message,
a commit costs about as much as the writes it carries, so a change that splits batches shows here
before it shows in the CPU figure's noise.
One JSON line.  `--out DIR` also keeps py-spy's raw stacks (raw.txt: collapsed stacks, for
flamegraph.pl or speedscope).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench import (  # noqa: E402
    CARRIERS, STATUS_BASES, TRANSACTION_ROUTES, WARMUP, bench_config, check_transactions_feature, load, paid_all_day,
    parking_mix, seed_transactions, status_mix,
)
from scripts.procs import control, cpu_seconds, free_port, require_bound, spawn_simulators, stop_process  # noqa: E402

#: py-spy's raw frame: "function (file:line)"; the thread root (with --threads): "thread (0x...)".
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def load_request(workload: str, count: int, base: int, transactions: int, rate: float = 0) -> dict[str, Any]:
    if workload == "help":
        return load(count, rate, base, keyword="HELP", to="90091")
    if workload == "parking":
        return load(count, rate, base, mix=parking_mix(count, base % 1000003))
    return load(count, rate, base, mix=status_mix(count, transactions))


#: Leaf functions where a thread waits rather than works (py-spy cannot always tell): the store's
#: thread waiting for its next job, Twisted's idle thread pool.  The reactor's epoll wait is kept
#: apart as "select": under saturation it is mostly the poll itself.
_WAITS = ("_connection_worker_thread", "Condition.wait", "Event.wait", "Queue.get", "_wait_for_tstate_lock")


def parse_raw(path: Path) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """Self and inclusive sample counts per function of the reactor thread (all its samples),
    busy samples per thread."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    main_total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        thread, *frames = stack.split(";")
        names = [_name(frame) for frame in frames]
        count = int(count_text)
        leaf = names[-1] if names else ""
        if leaf.startswith(_WAITS):
            continue
        label = re.sub(r"^thread \(\d+\): ", "", thread)
        if label == "MainThread":
            main_total += count
            self_counts[leaf] += count
            for name in set(names):
                inclusive[name] += count
            if leaf.startswith("EpollSelector.select"):
                label += " (select)"
        threads[label] += count
    return self_counts, inclusive, threads, main_total


def _name(frame: str) -> str:
    found = _FRAME.match(frame)
    if not found:
        return frame
    file = found.group("file")
    for marker in ("site-packages/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        file = os.path.relpath(file, ROOT) if file.startswith(str(ROOT)) else file
    return f"{found.group('func')} ({file})"


def store_batching(log_path: Path) -> dict[str, Any]:
    """How the store batched over the gateway's life (its closing lines): writes per group commit
    (each commit writes every page it touched to the WAL once, so fewer, larger commits cost less
    per message) and, on SQLite, where the batches ran."""
    figures: dict[str, Any] = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"store_closed"' in line:
            event = json.loads(line)
            commits = event.get("commits") or 0
            figures["store_writes_per_commit"] = round(event.get("writes", 0) / commits, 2) if commits else None
        elif '"store_batches"' in line:
            event = json.loads(line)
            figures["store_batches"] = {k: event.get(k) for k in ("inline", "worker", "checkpoints", "restarts")}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["help", "status", "parking"], default="help")
    parser.add_argument("--count", type=int, default=20000, help="MOs in each saturation run")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--tps", type=float, default=20000.0)
    parser.add_argument("--log-level", default="info", help="the gateway's log level (default: the shipped one)")
    parser.add_argument("--transactions", type=int, default=100_000, help="transactions in the store (status)")
    parser.add_argument("--offered", type=float, default=0.0,
                        help="MOs per second offered in both runs (0: all at once, saturation); a fixed rate "
                             "keeps the work per message comparable between two trees on a noisy machine")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, help="keep py-spy's raw stacks here")
    parser.add_argument("--cpu-only", action="store_true", help="only the unobserved run: CPU per MO→MT, no sampling")
    args = parser.parse_args(argv)
    spy = None if args.cpu_only else py_spy()
    if args.workload == "status":
        check_transactions_feature()
        if 2 * args.count + WARMUP > args.transactions // 2:
            raise SystemExit("--transactions must be at least twice the STATUS MOs of the runs")
    with tempfile.TemporaryDirectory(prefix="smsgw-profile-") as tmpdir:
        tmp = Path(tmpdir)
        ports = {name: free_port() for name in CARRIERS}
        control_port = free_port()
        config = bench_config(tmp, ports, control_port, args.tps, args.window, args.log_level)
        if args.workload == "parking":
            paid_all_day(tmp)
        bases = {"warmup": 96870000000, "unobserved": 96880000000, "profiled": 96890000000}
        if args.workload == "status":
            text = config.read_text(encoding="utf-8")
            if not re.search(r'(?m)^keyword = "STATUS"', text):  # the shipped config may route it already
                config.write_text(text + TRANSACTION_ROUTES, encoding="utf-8")
            bases = {"warmup": STATUS_BASES["warmup"], "unobserved": STATUS_BASES["saturation"],
                     "profiled": STATUS_BASES["latency"]}
            seed_transactions(tmp, config, args.transactions,
                              {"warmup": WARMUP, "saturation": args.count, "latency": args.count})
        sims = spawn_simulators(ports, control_port, args.tps, tmp / "sims.log")
        gateway = spy_proc = None
        raw = (args.out or tmp) / "raw.txt"
        try:
            time.sleep(0.5)
            gateway = subprocess.Popen(
                [sys.executable, "-m", "smsgw.cli", "run", "--no-simulators", "--config", str(config)],
                cwd=str(ROOT), env=dict(os.environ, PYTHONUNBUFFERED="1"),
                stdout=open(tmp / "gateway.log", "wb"), stderr=subprocess.STDOUT,
            )
            require_bound(control_port, 20.0)
            control(control_port, load_request(args.workload, WARMUP, bases["warmup"], args.transactions), 300)
            before = cpu_seconds([gateway.pid])
            unobserved = control(control_port, load_request(args.workload, args.count, bases["unobserved"],
                                                            args.transactions, args.offered), 900)
            cpu = cpu_seconds([gateway.pid]) - before
            profiled: dict[str, Any] = {}
            if spy is not None:
                if args.out:
                    args.out.mkdir(parents=True, exist_ok=True)
                spy_proc = subprocess.Popen(
                    [spy, "record", "--pid", str(gateway.pid), "--rate", str(args.rate), "--format", "raw",
                     "--threads", "--output", str(raw)],
                    stdout=open(tmp / "py-spy.log", "wb"), stderr=subprocess.STDOUT,
                )
                time.sleep(1.0)  # attached before the first MO
                profiled = control(control_port, load_request(args.workload, args.count, bases["profiled"],
                                                              args.transactions, args.offered), 900)
                spy_proc.send_signal(signal.SIGINT)
                spy_proc.wait(60)
                profiled["sampled_s"] = profiled.get("elapsed_s") or 0
        finally:
            if spy_proc is not None and spy_proc.poll() is None:
                spy_proc.kill()
            stop_process(gateway)
            stop_process(sims)
        replied = unobserved.get("replied") or 0
        figures: dict[str, Any] = {
            "workload": args.workload,
            "mo_count": args.count,
            "window": args.window,
            "log_level": args.log_level,
            "offered": args.offered or "saturation",
            "mo_mt_msgs_per_s": unobserved.get("msgs_per_s"),
            "cpu_us_per_mo_mt": round(cpu * 1e6 / replied) if replied else None,
            "cpu_util": round(cpu / unobserved["elapsed_s"], 2) if unobserved.get("elapsed_s") else None,
            "lost": unobserved.get("lost"),
            **store_batching(tmp / "gateway.log"),
        }
        if args.cpu_only:
            pass
        elif spy is None:
            figures["profile"] = "py-spy is not installed (pip install -e '.[profile]'): CPU figure only"
        elif not raw.exists():
            figures["profile"] = f"py-spy wrote nothing: {(tmp / 'py-spy.log').read_text(errors='replace')[-500:]}"
        else:
            self_counts, inclusive, threads, main_total = parse_raw(raw)
            # Busy samples per second of the run / the sampling rate: the share of one core each thread
            # kept busy while the MOs were flowing (py-spy samples a little longer than that).
            span = args.rate * (profiled.get("elapsed_s") or 1)
            figures.update({
                "profiled_msgs_per_s": profiled.get("msgs_per_s"),
                "samples": main_total,
                "thread_busy": {name: round(n / span, 2) for name, n in threads.most_common()},
                "top_self": [[name, round(100 * n / main_total, 1)] for name, n in self_counts.most_common(args.top)],
                "top_inclusive": [[name, round(100 * n / main_total, 1)]
                                  for name, n in inclusive.most_common(args.top + 15)
                                  if not name.startswith(("<module>", "run (", "main (", "run_forever", "_run_once",
                                                          "_run (", "runReactorWithLogging", "startRunning"))][:args.top],
            })
        print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
