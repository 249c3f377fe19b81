#!/usr/bin/env python3
"""Soak: the gateway under steady load for a long time, its memory sampled; one JSON line.

    .venv/bin/python scripts/soak.py                         # 30 minutes at 200 MO/s, mixed
    .venv/bin/python scripts/soak.py --minutes 3 --rate 100  # a short run
    .venv/bin/python scripts/soak.py --backlog --minutes 5   # outbound backlog: memory vs queue depth
    .venv/bin/python scripts/soak.py --retention --minutes 6  # retention: store size levels off

Steady mode: the simulators' `load` op sends the routed `--mix` texts at `--rate` a second, round
robin over the three carriers, each MO from a fresh MSISDN, and waits for one reply to each. The
gateway's RSS is read from /proc every `--sample-s` seconds. Figures: RSS at launch, at the start
of the measured window (after a warm-up of `--warmup-s`), at the end, its peak, and its growth in
MB per hour (least-squares slope over the measured window), with the messages sent, lost and
duplicated. Carrier TPS limits are raised to `--tps` so the offered rate is not throttled.

Backlog mode: every carrier answers ESME_RTHROTTLED to every submit (a throttle storm) while MOs
keep arriving at `--rate`, so the outbound queue only grows. Figures: whether MOs kept being
acknowledged, the backlog reached, RSS against backlog (MB per 10,000 queued MTs), then, with the
storm lifted, how long the backlog took to drain and whether every MO got exactly one reply.
Retention mode: steady load with a retention window of `--retention-window-s` (instead of 90
days) and a sweep every `--retention-interval-s`, the store's files sampled with the RSS.  Figures:
database and WAL size over time, rows held, the size when the window was first full and at the
end, and its growth (MB per minute) over the part of the run after the window filled, which
levels off at zero when pruning keeps pace; with the latencies, to compare with a plain steady run.
Every mode stops by itself.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import (  # noqa: E402
    CARRIERS,
    DEFAULT_MIX,
    GatewayProcess,
    Simulators,
    Traffic,
    exit_on_sigterm,
    fresh_directory,
    log_problems,
    parse_mix,
    peak_rss_mb,
    query_store,
    routed_mix,
    rss_mb,
    wait_bound,
    write_config,
)

#: As the chaos mix, but bookings of 300 minutes: their reminders (10 minutes before the end) fall
#: after any soak, where the load runner would count them as second replies.
SOAK_MIX = DEFAULT_MIX.replace("{plate} 30@", "{plate} 300@")
#: For --retention: no bookings.  A booking's session and ledger entries are accounting data, kept
#: for the accounting period (and a session still running is never pruned): they would grow the
#: store by design during any run shorter than that.
RETENTION_MIX = DEFAULT_MIX.replace("{plate} 30@90091", "MY@90091")


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None for fewer than two distinct x."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    if var_x == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var_x


def queued_mts(store: Path) -> int | None:
    try:
        return query_store(store, "SELECT COUNT(*) FROM outbound WHERE state = 'queued'")[0][0]
    except Exception:  # sqlite3.Error, or the file not created yet
        return None


def store_sample(store: Path) -> dict[str, Any]:
    """Sizes of the store's files (MB) and the message rows it holds."""
    sizes = {}
    for suffix in ("", "-wal"):
        try:
            sizes[suffix] = round((store.parent / (store.name + suffix)).stat().st_size / 1e6, 2)
        except OSError:
            sizes[suffix] = None
    try:
        rows = query_store(store, "SELECT (SELECT COUNT(*) FROM inbound) + (SELECT COUNT(*) FROM outbound)")[0][0]
    except Exception:  # sqlite3.Error, or the file not created yet
        rows = None
    return {"db_mb": sizes[""], "wal_mb": sizes["-wal"], "rows": rows}


def table_rows(store: Path) -> dict[str, int]:
    """Rows per table of the store at the end: what retention removed, and what it keeps by design."""
    from smsgw.retention import stats

    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return {name: table["rows"] for name, table in stats(conn).items() if table["rows"]}
    finally:
        conn.close()


def retention_figures(args: argparse.Namespace, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The store's size over a retention soak: when the window first filled, at the end, and the
    growth after the window (plus a sweep, plus a margin) was full."""
    full_at = args.retention_window_s + args.retention_interval_s
    settled = [s for s in samples if s["t"] >= full_at * 1.5 and s["db_mb"] is not None]
    growth = slope([(s["t"] / 60, s["db_mb"]) for s in settled])
    at_window = next((s for s in samples if s["t"] >= full_at and s["db_mb"] is not None), None)
    return {
        "retention_window_s": args.retention_window_s,
        "retention_interval_s": args.retention_interval_s,
        "db_mb_when_window_full": at_window["db_mb"] if at_window else None,
        "db_mb_end": samples[-1]["db_mb"] if samples else None,
        "db_mb_peak": max((s["db_mb"] or 0 for s in samples), default=None),
        "wal_mb_peak": max((s["wal_mb"] or 0 for s in samples), default=None),
        "rows_when_window_full": at_window["rows"] if at_window else None,
        "rows_end": samples[-1]["rows"] if samples else None,
        "db_growth_mb_per_min_after_window": round(growth, 3) if growth is not None else None,
        "store_samples": samples[:: max(1, len(samples) // 24)],
    }


def steady(args: argparse.Namespace, sims: Simulators, gateway: GatewayProcess,
           pairs: list[list[str]], store: Path | None = None) -> dict[str, Any]:
    duration = args.minutes * 60.0
    count = max(1, int(args.rate * duration))
    result: dict[str, Any] = {}

    def load() -> None:
        try:
            result.update(sims.control(
                {"op": "load", "count": count, "rate": args.rate, "mix": pairs, "msisdn_base": 96880000000,
                 "timeout": duration + 300, "idle_timeout": 60, "settle_s": 2.0},
                timeout=duration + 400,
            ))
        except (OSError, RuntimeError) as exc:
            result["error"] = str(exc)

    assert gateway.pid is not None
    rss_launch = rss_mb(gateway.pid)
    runner = threading.Thread(target=load, name="load", daemon=True)
    started = time.monotonic()
    runner.start()
    samples: list[tuple[float, float]] = []
    stored: list[dict[str, Any]] = []
    while runner.is_alive():
        runner.join(args.sample_s)
        rss = rss_mb(gateway.pid)
        if store is not None and runner.is_alive():
            stored.append({"t": round(time.monotonic() - started, 1), **store_sample(store)})
        if rss is not None and runner.is_alive():
            samples.append((time.monotonic() - started, rss))
            if len(samples) % max(1, int(60 / args.sample_s)) == 0:
                extra = f", store {stored[-1]['db_mb']} MB, {stored[-1]['rows']} rows" if stored else ""
                log(f"{samples[-1][0]:.0f} s: RSS {rss} MB{extra}")
    measured = [(t, rss) for t, rss in samples if t >= args.warmup_s] or samples
    growth = slope(measured)
    # State kept for a time window (per-MSISDN limits, dedupe) grows until the window is full and
    # then holds: the second half of a long run shows the steady state.
    second_half = [(t, rss) for t, rss in measured if t >= (measured[0][0] + measured[-1][0]) / 2] if measured else []
    growth_late = slope(second_half)
    figures = {
        "mode": "retention" if store is not None else "steady",
        "minutes": args.minutes,
        "rate": args.rate,
        "messages": result.get("sent"),
        "replied": result.get("replied"),
        "lost": result.get("lost"),
        "duplicates": result.get("duplicates"),
        "mo_redeliveries": result.get("mo_redeliveries"),
        "achieved_msgs_per_s": result.get("msgs_per_s"),
        "p50_ms": result.get("p50_ms"),
        "p99_ms": result.get("p99_ms"),
        "rss_launch_mb": rss_launch,
        "rss_start_mb": measured[0][1] if measured else None,
        "rss_end_mb": measured[-1][1] if measured else None,
        "rss_peak_mb": peak_rss_mb(gateway.pid),
        "growth_mb_per_hour": round(growth * 3600, 1) if growth is not None else None,
        "growth_mb_per_hour_second_half": round(growth_late * 3600, 1) if growth_late is not None else None,
        "warmup_s": args.warmup_s,
        "samples": len(measured),
        "finished": result.get("finished") or result.get("error"),
    }
    if store is not None:
        figures.update(retention_figures(args, stored))
    return figures


def backlog(args: argparse.Namespace, sims: Simulators, gateway: GatewayProcess, store: Path,
            mix: list[Any]) -> dict[str, Any]:
    assert gateway.pid is not None
    for carrier in CARRIERS:
        sims.control({"op": "faults", "carrier": carrier, "set": {"throttle_storm": True}})
    rss_launch = rss_mb(gateway.pid)
    traffic = Traffic(sims, mix, args.rate, args.seed, 96870000000)
    started = time.monotonic()
    traffic.start()
    samples: list[dict[str, Any]] = []
    try:
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(args.sample_s)
            counts = sims.control({"op": "status"}, 10)["carriers"]
            sample = {
                "t": round(time.monotonic() - started, 1), "rss_mb": rss_mb(gateway.pid), "queued": queued_mts(store),
                "mos": sum(c["counts"]["mos"] for c in counts.values()),
                "mos_acked": sum(c["counts"]["mos_acked"] for c in counts.values()),
            }
            samples.append(sample)
            log(f"{sample['t']:.0f} s: RSS {sample['rss_mb']} MB, {sample['queued']} MTs queued, "
                f"{sample['mos_acked']}/{sample['mos']} MOs acknowledged")
    finally:
        traffic.stop()
    fill_end = samples[-1] if samples else {}
    points = [(s["queued"], s["rss_mb"]) for s in samples if s["queued"] is not None and s["rss_mb"]]
    per_queued = slope(points)
    # With the queue bounded in memory, RSS stops following the backlog once the in-memory part
    # is full: the second half of the fill shows it.
    per_queued_late = slope(points[len(points) // 2:])
    # The storm lifts: the backlog must drain, each MO answered once.
    for carrier in CARRIERS:
        sims.control({"op": "faults", "carrier": carrier, "reset": True})
    drain_started = time.monotonic()
    drained_after: float | None = None
    while time.monotonic() - drain_started < args.drain_timeout_s:
        if queued_mts(store) == 0:
            drained_after = round(time.monotonic() - drain_started, 1)
            break
        time.sleep(1.0)
    time.sleep(3.0)  # late duplicates, if any, arrive now
    records = sims.control({"op": "records"}, 300)["carriers"]
    received = Counter((name, m["msisdn"]) for name, rec in records.items() for m in rec["handset"])
    lost = sum(1 for mo in traffic.injected if received[(mo.carrier, mo.msisdn)] == 0)
    duplicates = sum(max(0, received[(mo.carrier, mo.msisdn)] - 1) for mo in traffic.injected)
    return {
        "mode": "backlog",
        "minutes": args.minutes,
        "rate": args.rate,
        "mos": len(traffic.injected),
        "mos_acked_during_storm": fill_end.get("mos_acked"),
        "max_mos_unacked": max((s["mos"] - s["mos_acked"] for s in samples), default=None),
        "backlog_peak": max((s["queued"] or 0 for s in samples), default=None),
        "rss_launch_mb": rss_launch,
        "rss_start_mb": samples[0]["rss_mb"] if samples else None,
        "rss_end_of_fill_mb": fill_end.get("rss_mb"),
        "rss_peak_mb": peak_rss_mb(gateway.pid),
        "rss_mb_per_10k_queued": round(per_queued * 10_000, 2) if per_queued is not None else None,
        "rss_mb_per_10k_queued_second_half": round(per_queued_late * 10_000, 2) if per_queued_late is not None
        else None,
        "drained_after_s": drained_after,
        "lost": lost,
        "duplicates": duplicates,
        "samples": samples[:: max(1, len(samples) // 20)],
    }


def _config_value(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=None, help="default 30 (steady) or 5 (backlog)")
    parser.add_argument("--rate", type=float, default=200.0, help="MOs a second across the carriers")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--warmup-s", type=float, default=None, help="default: 10%% of the run, at most 120 s")
    parser.add_argument("--tps", type=float, default=500.0, help="per-carrier TPS, gateway and SMSC")
    parser.add_argument("--mix", default=None, help="TEXT@SHORT_CODE=WEIGHT;... (routed entries only)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backlog", action="store_true", help="throttle storm while MOs keep coming")
    parser.add_argument("--drain-timeout-s", type=float, default=600.0)
    parser.add_argument("--retention", action="store_true",
                        help="steady load with a short retention window: the store's size over time")
    parser.add_argument("--retention-window-s", type=float, default=90.0, help="messages kept this long")
    parser.add_argument("--retention-interval-s", type=float, default=5.0, help="seconds between sweeps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a gateway config key, wherever it appears (e.g. window_s=60); repeatable")
    parser.add_argument("--keep", metavar="DIR", help="keep logs and store in DIR")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.minutes is None:
        args.minutes = 5.0 if args.backlog else 6.0 if args.retention else 30.0
    if args.mix is None:
        args.mix = RETENTION_MIX if args.retention else SOAK_MIX
    if args.warmup_s is None:
        args.warmup_s = min(120.0, args.minutes * 6.0)

    with tempfile.TemporaryDirectory(prefix="smsgw-soak-") as tmpdir:
        work = fresh_directory(Path(args.keep) if args.keep else Path(tmpdir))
        sims = Simulators(work, tps=args.tps)
        store = work / "soak.sqlite3"
        settings: dict[str, Any] = {"tps": args.tps, "reconnect_initial_s": 0.1}
        if args.retention:
            window_days = args.retention_window_s / 86400
            settings.update({"messages_days": window_days, "receipts_days": window_days,
                             "part_dedupe_window_s": max(60.0, min(3600.0, args.retention_window_s)),
                             "mo_dedupe_window_s": max(60.0, min(86400.0, args.retention_window_s)),
                             "interval_s": args.retention_interval_s})
            args.sample_s = min(args.sample_s, 5.0)
        for item in args.set:
            key, _, value = item.partition("=")
            settings[key.strip()] = _config_value(value.strip())
        config = write_config(work, ports=sims.ports, control_port=sims.control_port, store_path=store,
                              settings=settings)
        mix, skipped, handlers = routed_mix(config, parse_mix(args.mix))
        if not mix:
            raise SystemExit(f"no --mix text is routed to a handler (skipped: {skipped})")
        gateway = GatewayProcess(config, work / "gateway.log")
        try:
            sims.start()
            gateway.start()
            if wait_bound(sims.control_port, 30) is None:
                raise SystemExit("the gateway did not bind to the simulators in time")
            if args.backlog:
                figures = backlog(args, sims, gateway, store, mix)
            else:
                # Concrete texts, weighted by repetition, in a seeded order; plates vary per text.
                rng = random.Random(args.seed)
                pairs = [[e.short_code, e.text(i)] for e in mix for i in range(max(1, round(e.weight * 10)))]
                rng.shuffle(pairs)
                figures = steady(args, sims, gateway, pairs, store if args.retention else None)
            alive = gateway.alive()
        finally:
            try:
                exit_code = gateway.stop()
            finally:
                sims.stop()
        if args.retention:
            figures["rows_per_table_end"] = table_rows(store)
        problems = log_problems(gateway.log_path)
        figures.update({
            "mix": handlers, "mix_skipped": skipped, "tps": args.tps, "settings": args.set,
            "gateway_alive_at_end": alive, "gateway_exit_code": exit_code,
            "gateway_tracebacks": problems["tracebacks"], "gateway_exception_events": problems["exception_events"],
        })
        print(json.dumps(figures, ensure_ascii=False))
    return 0 if alive and not figures.get("lost") else 1


if __name__ == "__main__":
    raise SystemExit(main())
