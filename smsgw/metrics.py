"""Prometheus metrics, read from the gateway's own counters at scrape time.

The hot path only bumps plain integers it keeps anyway (gateway.counters, sender.stats) and
feeds two histograms; everything else — bind state, queue depth, oldest queued age, store
health — is read live when /metrics is scraped. Each gateway has its own registry, so tests
can run several gateways in one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from smsgw.gateway import Gateway

#: Seconds; USSD screens and SMS replies both land in the low buckets when healthy.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

BIND_STATES = ("binding", "bound", "refused", "stopped")


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        #: Every sample carries node="<name>" (several nodes are scraped as one job).
        self.node: str | None = None
        self.mo_processing = Histogram(
            "smsgw_mo_processing_seconds",
            "From an MO's acceptance to its replies being committed to the queue.",
            ["carrier"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.mt_queue_time = Histogram(
            "smsgw_mt_queue_seconds",
            "From an MT being stored to the carrier accepting its last part.",
            ["carrier", "channel"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )

        # The labelled children, found once: labels() validates and locks on every call.
        self._mo_processing: dict[str, Any] = {}
        self._mt_queue_time: dict[tuple[str, str], Any] = {}

    def observe_mo_processing(self, carrier: str, seconds: float) -> None:
        child = self._mo_processing.get(carrier)
        if child is None:
            child = self._mo_processing[carrier] = self.mo_processing.labels(carrier)
        child.observe(seconds)

    def observe_mt_queue_time(self, carrier: str, channel: str, seconds: float) -> None:
        child = self._mt_queue_time.get((carrier, channel))
        if child is None:
            child = self._mt_queue_time[carrier, channel] = self.mt_queue_time.labels(carrier, channel)
        child.observe(seconds)

    def attach(self, gateway: "Gateway") -> None:
        self.registry.register(_GatewayCollector(gateway))

    def render(self) -> bytes:
        if self.node is None:
            return generate_latest(self.registry)
        return generate_latest(_Labelled(self.registry, {"node": self.node}))  # type: ignore[arg-type]


class _Labelled:
    """A registry's metrics with constant labels added to every sample, for generate_latest."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self._registry = registry
        self._labels = labels

    def collect(self) -> Iterator[Any]:
        for metric in self._registry.collect():
            metric.samples = [s._replace(labels={**self._labels, **s.labels}) for s in metric.samples]
            yield metric


class _GatewayCollector:
    def __init__(self, gateway: "Gateway") -> None:
        self.gateway = gateway

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        gw = self.gateway
        mo = CounterMetricFamily("smsgw_mo", "Mobile-originated messages by carrier and result.",
                                 labels=["carrier", "result"])
        dlr = CounterMetricFamily("smsgw_dlr", "Delivery receipts received.", labels=["carrier"])
        for (carrier, key), value in sorted(gw.carrier_counters.items()):
            if key == "dlr":
                dlr.add_metric([carrier], value)
            elif key.startswith("mo_"):
                mo.add_metric([carrier, key[3:]], value)
        yield mo
        yield dlr

        submits = CounterMetricFamily("smsgw_submit", "submit_sm PDUs by carrier and outcome.",
                                      labels=["carrier", "outcome"])
        mts = CounterMetricFamily("smsgw_mt", "MTs that reached a final state in this run.",
                                  labels=["carrier", "result"])
        depth = GaugeMetricFamily("smsgw_queue_depth", "MTs waiting to be sent, in memory.", labels=["carrier"])
        oldest = GaugeMetricFamily("smsgw_queue_oldest_seconds", "Age of the oldest MT held for sending.",
                                   labels=["carrier"])
        tps = GaugeMetricFamily("smsgw_tps_limit", "The sending rate currently allowed.", labels=["carrier"])
        paused = GaugeMetricFamily("smsgw_carrier_paused", "1 when an operator paused sending.", labels=["carrier"])
        unknown = GaugeMetricFamily("smsgw_submit_awaiting_late_response",
                                    "Parts whose submit_sm timed out, held until the SMSC answers late or cannot.",
                                    labels=["carrier"])
        now = gw.clock.seconds()
        if gw.queue is not None:
            for carrier, sender in sorted(gw.queue.senders.items()):
                stats = sender.stats
                submits.add_metric([carrier, "submitted"], stats.submitted)
                submits.add_metric([carrier, "accepted"], stats.accepted)
                submits.add_metric([carrier, "throttled"], stats.throttled)
                submits.add_metric([carrier, "retried"], stats.retried)
                mts.add_metric([carrier, "failed"], stats.failed)
                mts.add_metric([carrier, "expired"], stats.expired)
                depth.add_metric([carrier], sender.depth)
                first = sender.oldest_created_at()
                oldest.add_metric([carrier], max(0.0, now - first) if first is not None else 0.0)
                tps.add_metric([carrier], sender.rate.current)
                paused.add_metric([carrier], 1.0 if sender.paused else 0.0)
                unknown.add_metric([carrier], stats.awaiting_late)
        yield from (submits, mts, depth, oldest, tps, paused, unknown)

        bind = GaugeMetricFamily("smsgw_bind_state", "1 for the carrier link's current state.",
                                 labels=["carrier", "state"])
        window = GaugeMetricFamily("smsgw_window_in_use", "Requests awaiting a response.", labels=["carrier"])
        for carrier, connector in sorted(gw.connectors.items()):
            state = connector.state
            for name in BIND_STATES:
                bind.add_metric([carrier, name], 1.0 if state == name else 0.0)
            session = connector.transmitter()
            window.add_metric([carrier], session.outstanding if session is not None else 0)
        yield bind
        yield window

        store = gw.store
        healthy = GaugeMetricFamily("smsgw_store_healthy", "0 while the store cannot write (alarm).")
        healthy.add_metric([], 1.0 if store is not None and store.healthy else 0.0)
        yield healthy
        failures = CounterMetricFamily("smsgw_store_failed_batches", "Write batches the store could not commit.")
        failures.add_metric([], store.failed_batches if store is not None else 0)
        yield failures

        abuse = CounterMetricFamily("smsgw_abuse", "MOs not answered normally, by reason.", labels=["reason"])
        for reason, value in sorted(gw.abuse.counters.items()):
            abuse.add_metric([reason], value)
        yield abuse

        refused = CounterMetricFamily(
            "smsgw_admin_refused",
            "Admin API requests and connections refused before reaching an endpoint, by reason.",
            labels=["reason"],
        )
        if gw.admin is not None:
            for reason, value in sorted(gw.admin.site.refusals.items()):
                refused.add_metric([reason], value)
        yield refused

        pruned = CounterMetricFamily("smsgw_retention_removed", "Rows removed by retention, by rule.",
                                     labels=["rule"])
        if gw.retention is not None:
            for rule, value in sorted(gw.retention.removed.items()):
                pruned.add_metric([rule], value)
        yield pruned

        member = gw.cluster
        if member is not None:
            fenced = GaugeMetricFamily("smsgw_cluster_fenced",
                                       "1 while this node cannot renew its lease and has cut its binds.")
            fenced.add_metric([], 1.0 if member.fenced else 0.0)
            jobs = GaugeMetricFamily("smsgw_cluster_jobs", "1 while this node runs the once-only jobs.")
            jobs.add_metric([], 1.0 if member.jobs and not member.fenced else 0.0)
            slots = GaugeMetricFamily("smsgw_cluster_bind_slot", "1 for each carrier bind slot this node holds.",
                                      labels=["carrier", "slot"])
            for carrier, slot in sorted(member.slots.items()):
                slots.add_metric([carrier, str(slot)], 1.0)
            beats = CounterMetricFamily("smsgw_cluster_heartbeats", "Lease renewals, by result.", labels=["result"])
            beats.add_metric(["ok"], member.heartbeats)
            beats.add_metric(["failed"], member.failed_heartbeats)
            events = CounterMetricFamily("smsgw_cluster_events", "Fences and lost leases.", labels=["event"])
            events.add_metric(["fenced"], member.fences)
            events.add_metric(["lease_lost"], member.resets)
            nodes = GaugeMetricFamily("smsgw_cluster_nodes_alive", "Nodes whose lease runs, as last seen.")
            nodes.add_metric([], sum(1 for n in member.view.nodes if n["alive"]))
            yield from (fenced, jobs, slots, beats, events, nodes)
