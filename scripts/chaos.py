#!/usr/bin/env python3
"""Chaos run: the gateway under mixed load and injected faults, checked from the carriers' records.

    .venv/bin/python scripts/chaos.py --quick          # about 1.5 minutes
    .venv/bin/python scripts/chaos.py                  # the full run: about 10 minutes, 22 kill -9
    .venv/bin/python scripts/chaos.py --seed 7 --round-s 30 --cycles 3 --rate 60

The gateway (`smsgw run --no-simulators`) and the three carrier simulators (`python -m carriers`)
run as separate processes on loopback. Handsets on all three carriers send the `--mix` texts, each
from its own MSISDN, while one kind of fault is injected per round, and then all kinds at once:

  kill           kill -9 of the gateway at random moments, restarted at once
  link_drop      the SMSC cuts the TCP link (abort), or drops it after its next few submits
  hung           the SMSC stops reading its sockets (hung) or swallows submit_sm unanswered
  late_response  submit_sm_resp after the gateway's response timeout (or just slowly, within it)
  throttle_storm every submit_sm answered ESME_RTHROTTLED
  errors         random temporary and permanent submit_sm error statuses
  slow_reader    the SMSC reads a few hundred bytes a second: TCP pushes back on the gateway
  counter_restart the SMSC's id counter starts again, so new MOs and MTs reuse ids already seen

At the end, with the faults off and the traffic stopped, the run waits for the system to settle and
checks, from the simulators' own records and the gateway's store (read-only):

  * every MO acknowledged with deliver_sm_resp 0 was stored once and processed once, and each
    reply reached the handset exactly once, except replies failed by an injected permanent error
    (accounted from the store's outbound.reason);
  * duplicates: submit_sm parts the carrier accepted twice, each attributed to the fault that opened
    the window: a kill -9 between the carrier's accept and the gateway's commit of the response, or
    a link lost before the response, whichever side dropped it (the at-least-once windows
    smsgw/outbound.py documents; the carrier's records tell on which connection each copy came
    and which connections ended); a response that came after the response timeout on a link
    still up (the gateway must take it late and not resend: not a window, so it counts against
    the run); anything else is unexplained, a bug to chase;
  * no charge recorded twice (a parking ledger, when the store has one).

handset_messages_unexplained counts messages a handset holds beyond those the store marks sent,
where no duplicate or phantom send explains them (an MT sent after it was declared failed): a bug.
phantom_sends counts MTs the store marks failed although the carrier had accepted an earlier copy
(its response lost to a fault, the resend refused with a permanent error): the handset has it.

One JSON line of figures goes to stdout; the exit status is 1 if anything was lost, double-charged
or duplicated outside a documented at-least-once window. The fault schedule and the traffic (texts,
carriers, MSISDNs) come from `--seed`; what the processes do with them depends on timing.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import (  # noqa: E402
    CARRIERS,
    DEFAULT_MIX,
    GatewayProcess,
    InjectedMo,
    Simulators,
    Traffic,
    all_bound,
    exit_on_sigterm,
    fresh_directory,
    log_problems,
    parse_mix,
    query_store,
    routed_mix,
    store_tables,
    wait_bound,
    write_config,
)

ROUND_KINDS = ("kill", "link_drop", "hung", "late_response", "throttle_storm", "errors", "slow_reader",
               "counter_restart")
#: Statuses the errors fault draws from: temporary ones (retried) listed twice as often as permanent.
TEMPORARY_STATUSES = (0x14, 0x08, 0x64, 0x58)
PERMANENT_STATUSES = (0x45, 0x0B, 0x65)
#: A fault that makes the carrier answer late or never: the gateway resends after its timeout, and
#: the carrier may have taken the first copy (the at-least-once window of an unanswered submit).
LATE_ANSWER_FAULTS = ("late_response", "hung", "no_response", "slow_reader")
#: The at-least-once windows the gateway documents (smsgw/outbound.py): the carrier took a part
#: and the gateway lost the response to a crash or to a lost link. Any other duplicate is a finding.
DOCUMENTED_CAUSES = ("kill_between_accept_and_store", "link_lost_before_response")
#: Everything the run sets on a simulator's FaultPlan, with the value that switches it off.
FAULT_DEFAULTS: dict[str, Any] = {
    "hung": False, "no_response_to_submit": False, "response_delay_s": 0.0, "throttle_storm": False,
    "submit_error_rate": 0.0, "submit_error_statuses": [0x08], "read_bytes_per_s": None,
    "drop_link_after_submits": None,
}


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- faults ----------------------------------------------------------------------------------------


@dataclass(order=True)
class Action:
    at: float  # seconds into the round
    seq: int
    kind: str = field(compare=False)
    carrier: str | None = field(compare=False, default=None)
    changes: dict[str, Any] | None = field(compare=False, default=None)
    #: For "set" actions: when the matching clear runs (seconds into the round), for the timeline.
    until: float | None = field(compare=False, default=None)
    label: str = field(compare=False, default="")


class FaultPlanner:
    """Turns a round's kind and length into timed actions, from a seeded RNG."""

    def __init__(self, rng: random.Random, response_timeout_s: float) -> None:
        self.rng = rng
        self.response_timeout_s = response_timeout_s
        self._seq = 0

    def _action(self, at: float, kind: str, **kw: Any) -> Action:
        self._seq += 1
        return Action(at, self._seq, kind, **kw)

    def _windows(self, length: float, duration: tuple[float, float], gap: tuple[float, float]) -> list[tuple[float, float]]:
        out, t = [], 0.0
        while True:
            start = t + self.rng.uniform(*gap)
            end = start + self.rng.uniform(*duration)
            if start >= length - 0.5:
                return out
            out.append((start, min(end, length)))
            t = end

    def _set_window(self, label: str, length: float, duration: tuple[float, float], gap: tuple[float, float],
                    make: Callable[[], dict[str, Any]], carriers: int = 2) -> list[Action]:
        actions = []
        for start, end in self._windows(length, duration, gap):
            for carrier in self.rng.sample(list(CARRIERS), self.rng.randint(1, carriers)):
                changes = make()
                actions.append(self._action(start, "set", carrier=carrier, changes=changes, until=end, label=label))
                actions.append(self._action(end, "set", carrier=carrier,
                                            changes={k: FAULT_DEFAULTS[k] for k in changes}, label=label + "_end"))
        return actions

    def plan(self, kind: str, length: float, kills: int) -> list[Action]:
        rng = self.rng
        if kind == "kill":
            return [self._action(rng.uniform(0.3, length - 0.3), "kill", label="kill") for _ in range(kills)]
        if kind == "link_drop":
            actions = []
            t = rng.uniform(0.5, 2.0)
            while t < length - 0.5:
                if rng.random() < 0.5:
                    actions.append(self._action(t, "drop", carrier=rng.choice(list(CARRIERS)), label="link_drop"))
                else:
                    end = min(length, t + rng.uniform(2.0, 4.0))
                    carrier = rng.choice(list(CARRIERS))
                    actions.append(self._action(t, "set", carrier=carrier, until=end, label="drop_after_submits",
                                                changes={"drop_link_after_submits": rng.randint(1, 15)}))
                    actions.append(self._action(end, "set", carrier=carrier, label="drop_after_submits_end",
                                                changes={"drop_link_after_submits": None}))
                t += rng.uniform(1.5, 4.0)
            return actions
        if kind == "hung":
            return (self._set_window("hung", length, (2.5, 6.0), (0.5, 2.5), lambda: {"hung": True}, carriers=1)
                    + self._set_window("no_response", length, (2.5, 5.0), (1.0, 3.0),
                                       lambda: {"no_response_to_submit": True}, carriers=1))
        if kind == "late_response":
            timeout = self.response_timeout_s

            def delay() -> dict[str, Any]:
                late = rng.random() < 0.7
                return {"response_delay_s": round(timeout + rng.uniform(0.3, 1.5) if late
                                                  else rng.uniform(0.1, 0.8 * timeout), 3)}
            return self._set_window("late_response", length, (3.0, 6.0), (0.5, 2.0), delay)
        if kind == "throttle_storm":
            return self._set_window("throttle_storm", length, (2.0, 5.0), (0.5, 2.0),
                                    lambda: {"throttle_storm": True}, carriers=3)
        if kind == "errors":
            statuses = list(TEMPORARY_STATUSES) * 2 + list(PERMANENT_STATUSES)
            return self._set_window("errors", length, (3.0, 6.0), (0.3, 1.5), lambda: {
                "submit_error_rate": round(rng.uniform(0.1, 0.5), 3),
                "submit_error_statuses": statuses}, carriers=3)
        if kind == "counter_restart":
            # The SMSC's id counter starts again from where the run began: new MOs (and MTs) get
            # ids the gateway has already seen, within its redelivery window.
            actions, t = [], rng.uniform(0.5, 2.0)
            while t < length - 0.5:
                actions.append(self._action(t, "restart_counter", carrier=rng.choice(list(CARRIERS)),
                                            label="counter_restart"))
                t += rng.uniform(1.5, 4.0)
            return actions
        if kind == "slow_reader":
            return self._set_window("slow_reader", length, (3.0, 6.0), (0.5, 2.0),
                                    lambda: {"read_bytes_per_s": round(rng.uniform(200.0, 2000.0))})
        if kind == "all":
            actions = self.plan("kill", length, kills)
            for each in ROUND_KINDS[1:]:
                actions += self.plan(each, length, 0)
            return actions
        raise ValueError(f"unknown round kind {kind!r}")


@dataclass
class Kill:
    round_kind: str
    at: float  # epoch seconds of the SIGKILL
    recovered_after_s: float | None = None
    #: Killed again before it had recovered (no recovery time to report).
    interrupted: bool = False


@dataclass
class FaultWindow:
    label: str
    carrier: str | None
    start: float  # epoch seconds
    end: float


class Chaos:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.sims = Simulators(work)
        self.store_path = work / "chaos.sqlite3"
        self.config_path = write_config(
            work, ports=self.sims.ports, control_port=self.sims.control_port, store_path=self.store_path,
            log_level="info",
            settings={"response_timeout_s": args.response_timeout_s, "enquire_link_s": args.enquire_link_s,
                              "reconnect_initial_s": 0.05, "reconnect_max_s": 1.0},
        )
        self.gateway = GatewayProcess(self.config_path, work / "gateway.log")
        self.kills: list[Kill] = []
        self.windows: list[FaultWindow] = []
        self.drops: list[tuple[float, str]] = []
        self.fault_counts: Counter[str] = Counter()
        self.unexpected_exits: list[int | None] = []
        self._lock = threading.Lock()
        self._killing = False
        self._round_kind = ""

    # -- gateway life ----------------------------------------------------------------------------

    def watch_gateway(self) -> None:
        """Called by the traffic thread every tick: a gateway that died on its own is a crash."""
        with self._lock:
            if self._killing or self.gateway.alive() or self.gateway.proc is None:
                return
            code = self.gateway.proc.returncode
            self.unexpected_exits.append(code)
            log(f"the gateway exited by itself (status {code}); restarting")
            self.gateway.start()

    def kill_and_restart(self) -> None:
        with self._lock:
            self._killing = True
            self.gateway.kill9()
            kill = Kill(self._round_kind, time.time())
            self.kills.append(kill)
            time.sleep(random.Random(len(self.kills)).uniform(0.0, 0.3))
            self.gateway.start()
            self._killing = False
        threading.Thread(target=self._measure_recovery, args=(kill,), daemon=True).start()

    def _measure_recovery(self, kill: Kill) -> None:
        """Time from SIGKILL until every carrier is bound again (unless another kill comes first)."""
        while time.time() - kill.at < 120:
            if self.kills[-1] is not kill:
                kill.interrupted = True
                return
            try:
                # Bound sessions of the killed process vanish within a few ms; those seen later are new.
                if all_bound(self.sims.control({"op": "status"}, 5)) and time.time() - kill.at > 0.05:
                    kill.recovered_after_s = round(time.time() - kill.at, 3)
                    return
            except (OSError, RuntimeError):
                pass
            time.sleep(0.02)

    # -- rounds ----------------------------------------------------------------------------------

    def apply(self, action: Action, round_start: float) -> None:
        if action.kind == "kill":
            self.kill_and_restart()
            self.fault_counts["kill"] += 1
        elif action.kind == "drop":
            self.sims.control({"op": "drop", "carrier": action.carrier, "abort": True})
            self.drops.append((time.time(), action.carrier or ""))
            self.fault_counts["link_drop"] += 1
        elif action.kind == "restart_counter":
            self.sims.control({"op": "restart_counter", "carrier": action.carrier})
            self.fault_counts["counter_restart"] += 1
        elif action.kind == "set":
            assert action.carrier is not None and action.changes is not None
            self.sims.control({"op": "faults", "carrier": action.carrier, "set": action.changes})
            if action.until is not None:
                self.fault_counts[action.label] += 1
                self.windows.append(FaultWindow(action.label, action.carrier, time.time(),
                                                round_start + action.until))

    def run_round(self, kind: str, actions: list[Action]) -> None:
        length = self.args.round_s
        self._round_kind = kind
        log(f"round {kind}: {len(actions)} actions over {length:g} s")
        start = time.time()
        for action in actions:
            delay = start + action.at - time.time()
            if delay > 0:
                time.sleep(delay)
            try:
                self.apply(action, start)
            except (OSError, RuntimeError) as exc:
                log(f"action {action.label} failed: {exc}")
        remaining = start + length - time.time()
        if remaining > 0:
            time.sleep(remaining)
        self.clear_faults()

    def clear_faults(self) -> None:
        for carrier in CARRIERS:
            self.sims.control({"op": "faults", "carrier": carrier, "reset": True})

    # -- settle and account ----------------------------------------------------------------------

    def settled(self, stable: dict[str, Any]) -> bool:
        status = self.sims.control({"op": "status"}, 10)["carriers"]
        counts = {name: status[name]["counts"] for name in CARRIERS}
        if any(c["pending_deliveries"] or c["mos_acked"] < c["mos"] for c in counts.values()):
            return False
        if not all_bound({"carriers": status}):
            return False
        queued = query_store(self.store_path, "SELECT COUNT(*) FROM outbound WHERE state = 'queued'")[0][0]
        unprocessed = query_store(self.store_path, "SELECT COUNT(*) FROM inbound WHERE processed_at IS NULL")[0][0]
        if queued or unprocessed:
            return False
        handset = sum(c["handset_messages"] for c in counts.values())
        if stable.get("handset") != handset:
            stable["handset"], stable["since"] = handset, time.monotonic()
            return False
        return time.monotonic() - stable["since"] >= 3.0

    def settle(self) -> float | None:
        start = time.monotonic()
        stable: dict[str, Any] = {}
        while time.monotonic() - start < self.args.settle_timeout_s:
            try:
                if self.settled(stable):
                    return round(time.monotonic() - start, 1)
            except (OSError, RuntimeError, KeyError, sqlite3.Error) as exc:
                log(f"not settled yet: {exc}")
            time.sleep(0.5)
        return None


#: A response is committed within milliseconds of its arrival; a kill more than this long after the
#: carrier accepted a part cannot explain a resend of it (unless a fault was holding the response).
KILL_WINDOW_S = 5.0


def cause_of(copy: dict[str, Any], kept: dict[str, Any], carrier: str, chaos: Chaos,
             links_lost: dict[str, float]) -> tuple[str, float | None]:
    """Which fault opened the window in which one part was accepted twice, and for a kill, how
    long after the first accept it came.

    `copy`: the carrier's record of the copy the store does not know; `kept`: of the one it does.
    Their times are accept times, not send times: an SMSC that stopped reading may accept, once it
    reads again, a submit from a link the gateway has already given up on, after the resend.
    `links_lost`: the carrier's own record of which of its ESME connections ended, and when.
    """
    copy_at, kept_at = copy["received_at"], kept["received_at"]
    low, high = min(copy_at, kept_at), max(copy_at, kept_at)
    late_answer = any(w.label in LATE_ANSWER_FAULTS and w.carrier == carrier
                      and w.start <= t <= w.end + 1.0 for w in chaos.windows for t in (low, high))
    kills = [k.at - low for k in chaos.kills if low <= k.at <= high]
    if kills and (min(kills) <= KILL_WINDOW_S or late_answer):
        return "kill_between_accept_and_store", min(kills)
    # The copy came on a connection that then ended, the resend on another: the gateway resends
    # on a new link only what the old one never answered, and an answer written on a live link
    # would have reached it. So the answer was lost with the link: that window, whoever dropped
    # it (the gateway gives up on a hung SMSC's link by itself).
    if copy.get("link") != kept.get("link") and str(copy.get("link")) in links_lost:
        return "link_lost_before_response", None
    if any(low <= t <= high and c == carrier for t, c in chaos.drops) or any(
        w.label.startswith("drop_after_submits") and w.carrier == carrier and w.start <= high and low <= w.end
        for w in chaos.windows
    ):
        return "link_lost_before_response", None
    if late_answer:
        return "response_after_timeout", None
    if copy_at > kept_at:
        # Sent again after the carrier's acceptance was in the store, with no fault to explain it.
        return "resent_after_response_recorded", None
    return "unexplained", None


def account(chaos: Chaos, injected: list[InjectedMo], records: dict[str, Any]) -> dict[str, Any]:
    from smsgw.smpp import constants as c

    store = chaos.store_path
    # Keyed with the MSISDN as well: a carrier that restarted its counter gives an id twice (each
    # MSISDN of the run sends one MO, so the pair names one MO).
    inbound_rows = query_store(store, "SELECT id, carrier, carrier_msg_id, msisdn, processed_at FROM inbound")
    inbound = {(r[1], r[2], r[3]): r for r in inbound_rows}
    inbound_per_msisdn = Counter((r[1], r[3]) for r in inbound_rows)
    outbound_rows = query_store(store, "SELECT id, carrier, msisdn, state, reason, inbound_id, kind FROM outbound")
    replies_of: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    delivered_to: Counter[tuple[str, str]] = Counter()
    for row in outbound_rows:
        if row[5] is not None:
            replies_of[row[5]].append(row)
        if row[3] in ("sent", "delivered", "undelivered"):
            delivered_to[(row[1], row[2])] += 1
    # (carrier, message id, handset): message ids repeat after a counter restart too.
    recorded_ids = {(r[0], r[1], r[2]) for r in query_store(
        store, "SELECT p.carrier, p.smsc_id_raw, o.msisdn FROM mt_part AS p JOIN outbound AS o ON o.id = p.outbound_id")}

    mos_by_id = {(name, mo["mo_id"], mo["from"]): mo for name, rec in records.items() for mo in rec["mos"]}
    # Handsets that may rightly hold more messages than the store says went: a part accepted twice
    # (a duplicate) or accepted while the store recorded no copy of it (a phantom send).
    explained_extra: set[tuple[str, str]] = set()
    for name, rec in records.items():
        copies_of = Counter((mt["to"], mt["digest"]) for mt in rec["mts"])
        explained_extra.update((name, to) for (to, _), n in copies_of.items() if n > 1)
        explained_extra.update((name, mt["to"]) for mt in rec["mts"]
                              if (name, mt["message_id"], mt["to"]) not in recorded_ids)
    handset_count: Counter[tuple[str, str]] = Counter(
        (name, m["msisdn"]) for name, rec in records.items() for m in rec["handset"])

    figures: Counter[str] = Counter()
    failed_reasons: Counter[str] = Counter()
    lost_examples: list[dict[str, Any]] = []
    permanent = {c.status_name(status) for status in PERMANENT_STATUSES}
    for mo in injected:
        smsc_mo = mos_by_id.get((mo.carrier, mo.mo_id, mo.msisdn))
        if smsc_mo is None or not smsc_mo["acked"]:
            figures["mos_unacked"] += 1
            continue
        figures["mos_acked"] += 1
        row = inbound.get((mo.carrier, mo.mo_id, mo.msisdn))
        problem = None
        if row is None:
            problem = "acknowledged but not in the store"
        elif row[4] is None:
            problem = "stored but never processed"
        elif inbound_per_msisdn[(mo.carrier, mo.msisdn)] > 1:
            figures["mos_processed_twice"] += 1
        replies = replies_of.get(row[0], []) if row is not None else []
        if row is not None and row[4] is not None and not replies:
            figures["mos_processed_without_reply"] += 1
        for reply in replies:
            state, reason = reply[3], reply[4] or ""
            if state == "failed":
                # outbound.reason reads "carrier refused: <status name>" for a permanent submit error.
                injected_status = reason.startswith("carrier refused: ") and reason.split(": ", 1)[1] in permanent
                figures["replies_failed_by_injected_permanent_error" if injected_status
                        else "replies_failed_otherwise"] += 1
                failed_reasons[reason] += 1
            elif state == "expired":
                figures["replies_expired"] += 1
            elif state == "queued":
                problem = problem or "reply still queued after settling"
            else:
                figures["replies_sent"] += 1
        got = handset_count[(mo.carrier, mo.msisdn)]
        expected = delivered_to[(mo.carrier, mo.msisdn)]
        if got < expected:
            figures["replies_missing_at_handset"] += expected - got
            problem = problem or f"{expected} reply(ies) marked sent, {got} on the handset"
        elif got > expected:
            figures["handset_extra_messages"] += got - expected
            if (mo.carrier, mo.msisdn) not in explained_extra:
                # Sent although the store has it failed or expired, with no lost response to blame.
                figures["handset_messages_unexplained"] += got - expected
        if problem is not None:
            figures["mos_lost"] += 1
            if len(lost_examples) < 10:
                lost_examples.append({"carrier": mo.carrier, "mo_id": mo.mo_id, "text": mo.text, "problem": problem})

    # Duplicates: parts the carrier accepted whose response the gateway never recorded, where the
    # same part (same handset, same bytes) was accepted again.
    duplicates: Counter[str] = Counter()
    phantom = 0
    kill_gaps: list[float] = []
    duplicate_examples: list[dict[str, Any]] = []
    for name, rec in records.items():
        by_digest: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for mt in rec["mts"]:
            by_digest[(mt["to"], mt["digest"])].append(mt)
        for copies in by_digest.values():
            copies.sort(key=lambda mt: mt["received_at"])
            recorded = [mt for mt in copies if (name, mt["message_id"], mt["to"]) in recorded_ids]
            # The copy the store knows is the one sent; without one (the MT ended failed), the first.
            kept = recorded[0] if recorded else copies[0]
            for mt in copies:
                if mt is kept or (name, mt["message_id"], mt["to"]) in recorded_ids:
                    continue
                cause, kill_gap = cause_of(mt, kept, name, chaos, rec.get("links_lost", {}))
                duplicates[cause] += 1
                if kill_gap is not None:
                    kill_gaps.append(kill_gap)
                if cause not in DOCUMENTED_CAUSES and sum(e["cause"] == cause for e in duplicate_examples) < 3:
                    duplicate_examples.append({"cause": cause, "carrier": name, "copy": mt, "kept": kept})
            if not recorded:
                phantom += 1  # the handset has it, while the store says the MT never went
    return {
        "figures": figures, "duplicates": duplicates, "phantom_sends": phantom, "failed_reasons": failed_reasons,
        "kill_gaps": kill_gaps,
        "lost_examples": lost_examples, "duplicate_examples": duplicate_examples,
    }


def charge_around_the_clock(directory: Path) -> bool:
    """Make every hour of every day a paid parking hour in the run's copy of parking.toml, so that
    bookings are charged whenever the run happens (the double-charge check needs charges)."""
    path = directory / "parking.toml"
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    days = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
    for day in days:
        text = re.sub(rf"(?m)^{day} = \[.*\]$", f'{day} = ["00:00-24:00"]', text)
    text = re.sub(r"(?ms)^holidays = \[.*?\]$", "holidays = []", text)
    path.write_text(text, encoding="utf-8")
    return all(f'{day} = ["00:00-24:00"]' in text for day in days)


def double_charges(store: Path) -> tuple[str | None, int | None, int | None]:
    """(ledger table, MOs charged more than once, charges recorded), or Nones without a ledger.

    A charge row is keyed to the MO that caused it by request_id (or inbound_id); without either,
    by MSISDN, which works here because each MSISDN of the run sends one MO.
    """
    for table, columns in store_tables(store).items():
        if "ledger" not in table.lower():
            continue
        key = next((k for k in ("request_id", "inbound_id", "msisdn") if k in columns), None)
        if key is None:
            continue
        charges_only = " AND kind = 'charge'" if "kind" in columns else ""
        rows = query_store(store, f'SELECT COUNT(*) FROM (SELECT "{key}" FROM "{table}" '
                                  f'WHERE "{key}" IS NOT NULL{charges_only} GROUP BY "{key}" HAVING COUNT(*) > 1)')
        charges = query_store(store, f'SELECT COUNT(*) FROM "{table}" WHERE 1 = 1{charges_only}')
        return table, rows[0][0], charges[0][0]
    return None, None, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round of each kind (~1.5 min)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cycles", type=int, default=2, help="times through the one-kind rounds")
    parser.add_argument("--all-rounds", type=int, default=2, help="rounds with every fault at once")
    parser.add_argument("--round-s", type=float, default=25.0)
    parser.add_argument("--kills-per-round", type=int, default=7)
    parser.add_argument("--kills-per-all-round", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40.0, help="MOs a second across the carriers")
    parser.add_argument("--mix", default=DEFAULT_MIX, help="TEXT@SHORT_CODE=WEIGHT;... ({plate}: a fresh plate)")
    parser.add_argument("--response-timeout-s", type=float, default=2.0, help="the gateway's, for every carrier")
    parser.add_argument("--enquire-link-s", type=float, default=5.0)
    parser.add_argument("--settle-timeout-s", type=float, default=240.0)
    parser.add_argument("--keep", metavar="DIR", help="keep logs and store in DIR")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.quick:
        args.cycles, args.all_rounds, args.round_s = 1, 1, 7.0
        args.kills_per_round, args.kills_per_all_round, args.rate = 3, 2, 30.0
        args.settle_timeout_s = min(args.settle_timeout_s, 120.0)

    tmp = tempfile.TemporaryDirectory(prefix="smsgw-chaos-")
    work = fresh_directory(Path(args.keep) if args.keep else Path(tmp.name))
    chaos = Chaos(args, work)
    paid_all_day = charge_around_the_clock(work)
    mix, skipped, handlers = routed_mix(chaos.config_path, parse_mix(args.mix))
    if not mix:
        raise SystemExit(f"no --mix text is routed to a handler (skipped: {skipped})")
    log(f"mix {handlers}; not routed, skipped: {skipped}")
    planner = FaultPlanner(random.Random(f"{args.seed}:faults"), args.response_timeout_s)
    plan = [kind for _ in range(args.cycles) for kind in ROUND_KINDS] + ["all"] * args.all_rounds
    # The whole schedule up front: it depends on the seed alone, never on how the run goes.
    schedule = [(kind, sorted(planner.plan(kind, args.round_s, args.kills_per_round if kind == "kill"
                                           else args.kills_per_all_round))) for kind in plan]
    started = time.monotonic()
    traffic: Traffic | None = None
    records: dict[str, Any] = {}
    settle_s: float | None = None
    try:
        chaos.sims.start()
        chaos.gateway.start()
        if wait_bound(chaos.sims.control_port, 30) is None:
            raise SystemExit("the gateway did not bind to the simulators in time")
        traffic = Traffic(chaos.sims, mix, args.rate, args.seed, 96890000000, chaos.watch_gateway)
        traffic.start()
        for kind, actions in schedule:
            chaos.run_round(kind, actions)
        traffic.stop()
        chaos.clear_faults()
        log(f"settling: {len(traffic.injected)} MOs injected")
        settle_s = chaos.settle()
        records = chaos.sims.control({"op": "records"}, 120)["carriers"]
        if args.keep:  # for a post-mortem next to the store and the logs
            (work / "records.json").write_text(json.dumps(records), encoding="utf-8")
            (work / "timeline.json").write_text(json.dumps({
                "kills": [vars(k) for k in chaos.kills], "drops": chaos.drops,
                "windows": [vars(w) for w in chaos.windows]}), encoding="utf-8")
    finally:
        # The processes go whatever else failed: a script that dies must not leave them running.
        try:
            if traffic is not None and traffic.is_alive():
                traffic.stop()
        finally:
            try:
                exit_code = chaos.gateway.stop()
            finally:
                chaos.sims.stop()
    assert traffic is not None
    result = account(chaos, traffic.injected, records)
    ledger, doubles, charges = double_charges(chaos.store_path)
    problems = log_problems(chaos.gateway.log_path)
    figures, duplicates = result["figures"], result["duplicates"]
    recoveries = sorted(k.recovered_after_s for k in chaos.kills if k.recovered_after_s is not None)
    kill_round = [k.recovered_after_s for k in chaos.kills if k.round_kind == "kill" and k.recovered_after_s]
    documented = sum(duplicates[cause] for cause in DOCUMENTED_CAUSES)
    out = {
        "seed": args.seed,
        "mode": "quick" if args.quick else "full",
        "rounds": len(plan),
        "round_kinds": plan,
        "faults": dict(sorted(chaos.fault_counts.items())),
        "faults_total": sum(chaos.fault_counts.values()),
        "kills": len(chaos.kills),
        "mix": handlers,
        "mix_skipped": skipped,
        "mos": len(traffic.injected),
        "mos_acked": figures["mos_acked"],
        "mos_unacked": figures["mos_unacked"],
        "lost": figures["mos_lost"],
        "mos_processed_twice": figures["mos_processed_twice"],
        "mos_processed_without_reply": figures["mos_processed_without_reply"],
        "replies_sent": figures["replies_sent"],
        "replies_failed_by_injected_permanent_error": figures["replies_failed_by_injected_permanent_error"],
        "replies_failed_otherwise": figures["replies_failed_otherwise"],
        "replies_expired": figures["replies_expired"],
        "duplicates": sum(duplicates.values()),
        "duplicates_by_cause": dict(sorted(duplicates.items())),
        "duplicates_outside_documented_windows": sum(duplicates.values()) - documented,
        "kill_duplicates_max_s_from_accept_to_kill": round(max(result["kill_gaps"]), 3) if result["kill_gaps"]
        else None,
        "kill_duplicates_median_s_from_accept_to_kill": round(sorted(result["kill_gaps"])[len(result["kill_gaps"]) // 2],
                                                              3) if result["kill_gaps"] else None,
        "duplicates_in_documented_windows": documented,
        "handset_extra_messages": figures["handset_extra_messages"],
        "handset_messages_unexplained": figures["handset_messages_unexplained"],
        "phantom_sends": result["phantom_sends"],
        "double_charges": doubles,
        "ledger_table": ledger,
        "charges_recorded": charges,
        "parking_paid_around_the_clock": paid_all_day,
        "max_recovery_s": max(kill_round) if kill_round else None,
        "max_recovery_any_round_s": recoveries[-1] if recoveries else None,
        "median_recovery_s": recoveries[len(recoveries) // 2] if recoveries else None,
        "kills_before_recovery": sum(k.interrupted for k in chaos.kills),
        "unrecovered_kills": sum(k.recovered_after_s is None and not k.interrupted for k in chaos.kills),
        "gateway_unexpected_exits": len(chaos.unexpected_exits),
        "gateway_tracebacks": problems["tracebacks"],
        "gateway_exception_events": problems["exception_events"],
        "settled_after_s": settle_s,
        "elapsed_s": round(time.monotonic() - started, 1),
        "gateway_exit_code": exit_code,
        "failed_reasons": dict(result["failed_reasons"].most_common(8)),
        "lost_examples": result["lost_examples"][:5],
        "undocumented_duplicate_examples": result["duplicate_examples"][:3],
        "log_examples": problems["examples"][:3],
        "work_dir": str(work) if args.keep else None,
    }
    print(json.dumps(out, ensure_ascii=False))
    tmp.cleanup()
    bad = (out["lost"] or out["mos_unacked"] or out["mos_processed_twice"] or out["double_charges"]
           or out["duplicates_outside_documented_windows"] or out["gateway_unexpected_exits"]
           or out["replies_failed_otherwise"] or out["handset_messages_unexplained"] or settle_s is None)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
