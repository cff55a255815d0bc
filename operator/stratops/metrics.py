"""The operator's Prometheus metrics (prometheus-client). kopf has no exporter of its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ACTIONS = Counter(
    "stratops_actions_total",
    "Automatic or commanded actions taken by the operator.",
    ["namespace", "strategy", "action"],
)
KILL_SWITCH_SECONDS = Histogram(
    "stratops_kill_switch_seconds",
    "Time from the kill-switch decision to HALTED, acknowledged and scaled to 0.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
TRADING_STATE = Gauge(
    "stratops_strategy_trading_state",
    "1 for the strategy's current trading state, 0 for the others.",
    ["namespace", "strategy", "state"],
)
INCIDENTS_OPENED = Counter(
    "stratops_incidents_opened_total",
    "Incidents opened by the operator.",
    ["namespace", "strategy", "class_", "severity"],
)
RECONCILE_ERRORS = Counter(
    "stratops_reconcile_errors_total",
    "Reconciles that failed and will be retried.",
    ["namespace", "strategy"],
)
RECONCILE_SECONDS = Histogram(
    "stratops_reconcile_seconds",
    "Time to decide and carry out one reconcile that wrote something.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HANDLERS_HELD_SECONDS = Gauge(
    "stratops_handlers_held_seconds",
    "How long kopf has been holding every handler for its index readiness (0 normally; a moment at start).",
)

GATE_COMPLETE = Gauge(
    "stratops_gate_complete",
    "1 while every required item of the gate is signed and unexpired, else 0.",
    ["namespace", "gate", "cadence"],
)
GATE_EXPIRY = Gauge(
    "stratops_gate_expiry_timestamp_seconds",
    "When the gate's earliest signature lapses (Unix time).",
    ["namespace", "gate", "cadence"],
)
OPTIONAL_WRITE_FAILURES = Counter(
    "stratops_optional_write_failures_total",
    "Writes the kill path does not depend on (incidents, the ack ConfigMap) that failed; the decision went on.",
    ["namespace", "what"],
)
AUDIT_FAILURES = Counter(
    "stratops_audit_write_failures_total",
    "Audit trail writes that failed (kept and retried; the decision itself was not affected).",
    ["namespace"],
)
AUDIT_PENDING = Gauge(
    "stratops_audit_pending_entries",
    "Audit entries written to status but not yet to the trail (retried).",
)

KILL_WATCH_HALTS = Counter(
    "stratops_kill_watch_halts_total",
    "Kills carried out by the kill watch because no reconcile took them up in time (0 normally).",
    ["namespace", "strategy"],
)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Expose /metrics on PORT (0 disables)."""
    if port:
        start_http_server(port, addr=address)


MONITOR_EVALUATIONS = Counter(
    "stratops_monitor_evaluations_total",
    "Scheduled monitor evaluations by timing: on_time, late (reason: workers, source or loop) or skipped "
    "(a whole period missed). A monitor's first evaluation after it is seen is not counted.",
    ["timing", "reason"],
)
MONITOR_SOURCE_READS = Counter(
    "stratops_monitor_source_reads_total",
    "Monitor evaluations' reads of their source, by where they were made: ahead (on the event "
    "loop, holding no worker) or in_worker (the evaluation made it itself, waiting in its worker).",
    ["made"],
)
MONITOR_LATENESS_SECONDS = Histogram(
    "stratops_monitor_evaluation_lateness_seconds",
    "How long after its due time a scheduled monitor evaluation started.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
GC_PAUSE_SECONDS = Histogram(
    "stratops_gc_pause_seconds",
    "How long each of Python's garbage collections stopped the operator, by generation (2: a full one).",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
GC_PAUSE_CPU_SECONDS = Histogram(
    "stratops_gc_pause_cpu_seconds",
    "The collecting thread's CPU time in each collection: well under stratops_gc_pause_seconds, it waited.",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
EVENT_LOOP_LAG_SECONDS = Histogram(
    "stratops_event_loop_lag_seconds",
    "How late the operator's event loop ran a timer, sampled every 0.25 s: what a kill on the loop waited for.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
GC_THAWS = Counter(
    "stratops_gc_thaws_total", "Full collections that thawed the frozen objects and walked them once more."
)
GC_THAW_FREED = Counter(
    "stratops_gc_thaw_freed_objects_total",
    "Objects in reference cycles freed by the full collections that thawed: garbage that waited, frozen.",
)
MONITORS_SCHEDULED = Gauge("stratops_monitors_scheduled", "Monitors on this operator's evaluation schedule.")
RULER_NOTIFICATIONS = Counter(
    "stratops_ruler_notifications_total",
    "Alertmanager notifications to the Prometheus-ruler receiver: taken, unauthorized (no or a wrong bearer "
    "token) or malformed.",
    ["result"],
)
RECONCILES_SKIPPED = Counter(
    "stratops_reconciles_skipped_total",
    "Safety-net passes skipped: the Strategy and what it owns unchanged since a pass that had nothing to do "
    "(a full pass is made at least every STRATOPS_RESYNC_FULL_SECONDS).",
)


class MonitorSeries(Collector):
    """stratops_monitor_value, _breaching and _stale: one entry per monitor, made into samples at
    each scrape (0.3 KiB a monitor). Three labelled Gauges kept a child object per monitor and
    series (2.4 KiB a monitor: 280 MiB at 10,000 strategies x 12 monitors), and kept a deleted
    monitor's series, its last stale or breaching 1 too, for as long as the process ran."""

    LABELS = ("namespace", "monitor", "strategy", "layer")

    def __init__(self) -> None:
        self._by: dict[tuple[str, str], tuple[str, str, float, bool, bool]] = {}
        self._lock = threading.Lock()

    def set(
        self, namespace: str, monitor: str, strategy: str, layer: str, value: float, breaching: bool, stale: bool
    ) -> None:
        with self._lock:
            self._by[(namespace, monitor)] = (strategy, layer, value, breaching, stale)

    def remove(self, namespace: str, monitor: str) -> None:
        """MONITOR is gone: its series end."""
        with self._lock:
            self._by.pop((namespace, monitor), None)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            entries = list(self._by.items())
        value, breaching, stale = self._families()
        for (namespace, monitor), (strategy, layer, v, b, st) in entries:
            labels = [namespace, monitor, strategy, layer]
            value.add_metric(labels, v)
            breaching.add_metric(labels, 1.0 if b else 0.0)
            stale.add_metric(labels, 1.0 if st else 0.0)
        yield from (value, breaching, stale)

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("stratops_monitor_value", "Last value of a monitor.", labels=self.LABELS),
            GaugeMetricFamily("stratops_monitor_breaching", "1 while a monitor breaches.", labels=self.LABELS),
            GaugeMetricFamily(
                "stratops_monitor_stale",
                "1 while a monitor's source is unreachable or has no data.",
                labels=self.LABELS,
            ),
        )


MONITOR_SERIES = MonitorSeries()
REGISTRY.register(MONITOR_SERIES)
