#!/usr/bin/env python3
"""Fuzz the gateway from the SMSC's side: mutated and random PDUs, one JSON line of figures.

    .venv/bin/python scripts/fuzz.py [--cases 100000] [--seed 1] [--wellformed-every 10]

The gateway runs as its own process (`smsgw run --no-simulators`) bound to the three carrier
simulators (`python -m carriers`), all on loopback. The simulators' `fuzz` control op
(carriers/fuzz.py) writes the cases to the gateway's receiver links, judges every answer against
SMPP v3.4, and writes a well-formed HELP MO after every n-th case, right behind the garbage.

Figures: cases run, crashes (gateway process exits, tracebacks or unhandled errors in its log,
links it dropped while answers were owed), answers by command and status (the generic_nacks by
status among them), spec violations, and well-formed MOs lost. Carrier TPS limits are lifted so
that the replies the gateway sends to accepted fuzz MOs never throttle the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import (  # noqa: E402
    CARRIERS,
    GatewayProcess,
    Simulators,
    exit_on_sigterm,
    fresh_directory,
    log_problems,
    peak_rss_mb,
    wait_bound,
    write_config,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wellformed-every", type=int, default=10, help="a well-formed MO after every n-th case")
    parser.add_argument("--depth", type=int, default=64, help="cases awaiting an answer per link")
    parser.add_argument("--tps", type=float, default=5000.0, help="per-carrier TPS, gateway and SMSC")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="give up after this long")
    parser.add_argument("--keep", metavar="DIR", help="keep the logs and store in DIR")
    args = parser.parse_args(argv)
    exit_on_sigterm()

    with tempfile.TemporaryDirectory(prefix="smsgw-fuzz-") as tmpdir:
        work = fresh_directory(Path(args.keep) if args.keep else Path(tmpdir))
        sims = Simulators(work, tps=args.tps)
        config = write_config(
            work, ports=sims.ports, control_port=sims.control_port, store_path=work / "fuzz.sqlite3",
            settings={"tps": args.tps, "reconnect_initial_s": 0.05, "reconnect_max_s": 0.5},
        )
        gateway = GatewayProcess(config, work / "gateway.log")
        report: dict = {}
        try:
            sims.start()
            gateway.start()
            if wait_bound(sims.control_port, 30) is None:
                raise SystemExit("the gateway did not bind to the simulators in time")
            started = time.monotonic()
            report = sims.control(
                {"op": "fuzz", "carriers": list(CARRIERS), "cases": args.cases, "seed": args.seed,
                 "wellformed_every": args.wellformed_every, "depth": args.depth, "cover_all_kinds": True,
                 "settle_timeout_s": 60.0},
                timeout=args.max_minutes * 60,
            )
            elapsed = time.monotonic() - started
            alive_at_end = gateway.alive()
            rss_peak = peak_rss_mb(gateway.pid) if alive_at_end and gateway.pid else None
        finally:
            try:
                exit_code = gateway.stop()
            finally:
                sims.stop()
        problems = log_problems(gateway.log_path)
        answers: dict[str, int] = report.get("answers", {})
        nacks = {k.removeprefix("generic_nack "): v for k, v in sorted(answers.items()) if k.startswith("generic_nack")}
        process_deaths = 0 if alive_at_end else 1
        crashes = process_deaths + problems["tracebacks"] + problems["exception_events"] \
            + report.get("unexpected_disconnects", 0)
        figures = {
            "cases": report.get("cases"),
            "seed": args.seed,
            "crashes": crashes,
            "gateway_process_deaths": process_deaths,
            "gateway_tracebacks": problems["tracebacks"],
            "gateway_exception_events": problems["exception_events"],
            "unexpected_disconnects": report.get("unexpected_disconnects"),
            "violations": report.get("violations"),
            "nacks_by_status": nacks,
            "answers": answers,
            "links_closed_as_required": report.get("links_closed"),
            "wellformed_mos": report.get("wellformed_sent"),
            "wellformed_behind_link_garbage": report.get("wellformed_behind_link_garbage"),
            "wellformed_mos_lost": report.get("wellformed_lost"),
            "elapsed_s": round(elapsed, 1),
            "cases_per_s": round((report.get("cases") or 0) / elapsed, 1) if elapsed else None,
            "gateway_peak_rss_mb": rss_peak,
            "gateway_exit_code": exit_code,
            "finished": report.get("finished"),
            "violation_examples": report.get("violation_examples", [])[:5],
            "log_examples": problems["examples"],
        }
        print(json.dumps(figures, ensure_ascii=False))
    ok = crashes == 0 and not figures["violations"] and not figures["wellformed_mos_lost"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
