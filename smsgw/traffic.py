"""The periodic `traffic` event: what the gateway did since the last one, in one info line.

Per-message events are logged at debug (smsgw/log.py); this is what an operator reads at info
instead.  Every `interval_s` (and once more when the gateway stops), if anything happened:

  {"event": "traffic", "interval_s": 60.0,
   "mo": {"omantel": {"accepted": 1200, "duplicate": 3}, ...},  "dlr": {"omantel": 1180, ...},
   "mt": {"omantel": {"submitted": 1210, "accepted": 1205, "throttled": 5}, ...},
   "processed": 1203, "abuse": {"limited": 2}, "debug_events": {"mo_accepted": 1203, ...}}

and any other gateway-wide counter that moved (carried_out_unanswered, ...).

Only non-zero counts appear.  The figures are differences of counters the gateway keeps anyway
(the same ones /metrics reads), so the hot path pays nothing for this line.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from smsgw.log import get_logger, suppressed_events

if TYPE_CHECKING:
    from smsgw.gateway import Gateway

log = get_logger(__name__)

#: How often the line is written while traffic flows.
TRAFFIC_INTERVAL_S = 60.0

_MT_FIELDS = ("submitted", "accepted", "throttled", "retried", "failed", "expired")
#: Gateway-wide counters the line already shows per carrier (from carrier_counters).
_BY_CARRIER = frozenset({"mo", "mo_duplicate", "mo_rejected", "dlr"})


class TrafficLog(Service):
    """Writes the `traffic` event from the gateway's counters every `interval_s`."""

    def __init__(self, gateway: "Gateway", interval_s: float = TRAFFIC_INTERVAL_S) -> None:
        self.gateway = gateway
        self.interval_s = interval_s
        self._last = self._snapshot()
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._last = self._snapshot()
        self._loop = LoopingCall(self.emit)
        self._loop.clock = self.gateway.clock
        self._loop.start(self.interval_s, now=False)

    def stopService(self) -> Any:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.emit()  # what happened since the last line is not lost with the process
        return super().stopService()

    def _snapshot(self) -> Counter[tuple[str, ...]]:
        gw = self.gateway
        counts: Counter[tuple[str, ...]] = Counter()
        for (carrier, key), value in gw.carrier_counters.items():
            if key == "dlr":
                counts["dlr", carrier] = value
            elif key.startswith("mo_"):
                counts["mo", carrier, key[3:]] = value
        if gw.queue is not None:
            for carrier, sender in gw.queue.senders.items():
                for name in _MT_FIELDS:
                    counts["mt", carrier, name] = getattr(sender.stats, name)
        for key, value in gw.counters.items():
            if key not in _BY_CARRIER:  # processed, carried_out_unanswered, ...: gateway-wide only
                counts[key,] = value
        for reason, value in gw.abuse.counters.items():
            counts["abuse", reason] = value
        for event, value in suppressed_events.items():
            counts["debug_events", event] = value
        return counts

    def summary(self) -> dict[str, Any]:
        """What changed since the last call (nested by kind and carrier), and forget it."""
        now = self._snapshot()
        changed: dict[str, Any] = {}
        for key, value in now.items():
            delta = value - self._last.get(key, 0)
            if delta <= 0:
                continue
            *path, leaf = key
            node = changed
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = delta
        self._last = now
        return changed

    def emit(self) -> None:
        changed = self.summary()
        if changed:
            log.info("traffic", interval_s=self.interval_s, **changed)
