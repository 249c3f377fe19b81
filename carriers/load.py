"""Load from the network's side: many handsets send a keyword, and we time the gateway's replies.

Each MO gets its own source MSISDN, so a reply is matched to its MO by where it is delivered;
latency runs from the moment the MO's deliver_sm was written (the gateway could have it) to
the moment the last part of the reply was accepted by the SMSC (the handset would have it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall

from carriers.records import HandsetMessage, MoRecord
from carriers.smsc import Smsc
from smsgw.log import get_logger

log = get_logger("carriers.load")


@dataclass
class LoadResult:
    sent: int
    replied: int
    lost: int
    #: Handset messages beyond the first for an MO's sender (the gateway answered twice).
    duplicates: int
    msgs_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    elapsed_s: float
    #: deliver_sm written again because the gateway answered non-zero or did not answer.
    mo_redeliveries: int
    finished: str  # "all_replied" | "idle" | "timeout"
    per_carrier: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(eq=False)
class _Entry:
    mo: MoRecord
    replies: int = 0
    replied_at: float | None = None


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


async def run_load(
    smscs: Mapping[str, Smsc],
    *,
    count: int,
    rate: float = 0.0,
    keyword: str = "HELP",
    carriers: Sequence[str] | None = None,
    msisdn_base: int = 96890000000,
    short_code: str = "90091",
    timeout: float | None = None,
    idle_timeout: float = 15.0,
    settle_s: float = 0.0,
    mix: Sequence[tuple[str, str]] | None = None,
) -> LoadResult:
    """Send `count` MOs round-robin over `carriers` and wait for one reply to each.

    Each MO is `keyword` to `short_code`, or, with `mix`, the (short code, text) pairs taken in
    turn (list a pair several times to weight it); every text must draw exactly one reply.

    rate 0 queues them all at once, so the carriers' windows set the pace; otherwise MOs are
    injected at `rate` per second of the SMSCs' clock. Stops when every MO has a reply, after
    `idle_timeout` seconds without a new reply, or after `timeout` in all; then waits `settle_s`
    more to count late duplicates.
    """
    names = list(carriers) if carriers else list(smscs)
    unknown = [n for n in names if n not in smscs]
    if unknown:
        raise ValueError(f"unknown carrier(s): {', '.join(unknown)}")
    if count < 1:
        raise ValueError("count must be at least 1")
    texts = list(mix) if mix else [(short_code, keyword)]
    targets = [smscs[n] for n in names]
    clock = targets[0].clock
    wait_clock = targets[0].wait_clock
    if timeout is None:
        timeout = 60.0 + count / 50.0
    entries: dict[tuple[str, str], _Entry] = {}
    state = {"replied": 0, "duplicates": 0, "last_reply": None, "progress_at": wait_clock.seconds()}
    finished: Deferred[str] = Deferred()

    def on_message(carrier: str, message: HandsetMessage) -> None:
        entry = entries.get((carrier, message.msisdn))
        if entry is None:
            return
        entry.replies += 1
        if entry.replies > 1:
            state["duplicates"] += 1
            return
        entry.replied_at = message.received_at
        state["replied"] += 1
        state["last_reply"] = message.received_at
        state["progress_at"] = wait_clock.seconds()
        if state["replied"] == count and not finished.called:
            finished.callback("all_replied")

    unsubscribes = [
        smsc.subscribe_handset(lambda m, name=smsc.name: on_message(name, m)) for smsc in targets
    ]
    redeliveries_before = sum(s.counters["mo_redeliveries"] for s in targets)
    start = clock.seconds()
    injected = 0

    def inject(upto: int) -> None:
        nonlocal injected
        while injected < upto:
            smsc = targets[injected % len(targets)]
            msisdn = str(msisdn_base + injected)
            to, text = texts[injected % len(texts)]
            mo_id = smsc.inject_mo(msisdn, to, text)
            entries[(smsc.name, msisdn)] = _Entry(smsc.mo(mo_id))
            injected += 1

    injector: LoopingCall | None = None
    if rate <= 0:
        inject(count)
    else:
        def tick() -> None:
            due = min(count, int((clock.seconds() - start) * rate) + 1)
            inject(due)
            if injected >= count and injector is not None and injector.running:
                injector.stop()

        injector = LoopingCall(tick)
        injector.clock = clock
        injector.start(max(0.001, min(0.05, 1.0 / rate)), now=True)

    timers: list[IDelayedCall] = []

    def give_up(reason: str) -> None:
        if not finished.called:
            finished.callback(reason)

    def check_idle() -> None:
        idle = wait_clock.seconds() - state["progress_at"]
        if idle >= idle_timeout:
            give_up("idle")
        elif not finished.called:
            timers.append(wait_clock.callLater(idle_timeout - idle, check_idle))

    timers.append(wait_clock.callLater(timeout, give_up, "timeout"))
    timers.append(wait_clock.callLater(idle_timeout, check_idle))
    try:
        how = await finished
        if settle_s > 0:
            settled: Deferred[None] = Deferred()
            timers.append(wait_clock.callLater(settle_s, settled.callback, None))
            await settled
    finally:
        for timer in timers:
            if timer.active():
                timer.cancel()
        if injector is not None and injector.running:
            injector.stop()
        for unsubscribe in unsubscribes:
            unsubscribe()

    latencies = sorted(
        (e.replied_at - e.mo.complete_written_at) * 1000.0
        for e in entries.values()
        if e.replied_at is not None and e.mo.complete_written_at is not None
    )
    end = state["last_reply"] if state["last_reply"] is not None else clock.seconds()
    elapsed = max(0.0, end - start)
    per_carrier: dict[str, dict[str, int]] = {n: {"sent": 0, "replied": 0} for n in names}
    for (carrier, _), entry in entries.items():
        per_carrier[carrier]["sent"] += 1
        if entry.replied_at is not None:
            per_carrier[carrier]["replied"] += 1
    result = LoadResult(
        sent=injected,
        replied=state["replied"],
        lost=injected - state["replied"],
        duplicates=state["duplicates"],
        msgs_per_s=round(state["replied"] / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=_round(percentile(latencies, 50)),
        p95_ms=_round(percentile(latencies, 95)),
        p99_ms=_round(percentile(latencies, 99)),
        elapsed_s=round(elapsed, 3),
        mo_redeliveries=sum(s.counters["mo_redeliveries"] for s in targets) - redeliveries_before,
        finished=how,
        per_carrier=per_carrier,
    )
    log.info("load_finished", sent=result.sent, replied=result.replied, lost=result.lost,
             duplicates=result.duplicates, msgs_per_s=result.msgs_per_s, p95_ms=result.p95_ms, finished=how)
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
