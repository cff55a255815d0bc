"""The Prometheus-ruler mode (issue 21): a Monitor whose check PromQL can express compiles to
Prometheus alerting rules, evaluated by Prometheus (or a Thanos or Mimir ruler); Alertmanager
sends their alerts to the operator's receiver (stratops.k8s.ruler), which acts as on its own
evaluation. Pure: a spec in, rules out.

Each monitor's rule group has three alerts, all labelled with the monitor and the digest of the
group, so the operator takes an alert only from the rules it compiled for the spec it holds:
- `StratopsRuleBreach`: the check breaches, for as many evaluations in a row as it asks;
- `StratopsRuleStale`: the query returns nothing (a finding, never a pass, as in the operator);
- `StratopsRuleHeartbeat`: always firing. It proves the group is loaded, evaluated, and that its
  alerts reach the operator. Without a recent heartbeat of the current digest the operator
  evaluates the monitor itself: the mode never fails open.

The checks that need a baseline or scipy (psi, ks, topKChange, band, excessCost) stay in the
operator, and so does `failures` (a subquery's steps align to the clock, the operator's window to
the evaluation: their counts can differ by one at the edges).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from stratops import API_VERSION
from stratops.models.common import parse_duration
from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import StrategySpec

#: Labels every compiled alert carries. Alertmanager routes on RULER_LABEL to the operator only
#: (the operator pages as in its own evaluation: one page per incident, not one per rule).
RULER_LABEL = "stratops_ruler"
NAMESPACE_LABEL, MONITOR_LABEL, DIGEST_LABEL, FINDING_LABEL = (
    "stratops_namespace",
    "stratops_monitor",
    "stratops_digest",
    "stratops_finding",
)
#: The shard whose operator wrote the rules (STRATOPS_SHARD's index): Alertmanager routes each
#: shard's alerts to that shard's receiver Service.
SHARD_LABEL = "stratops_shard"
BREACH, STALE, HEARTBEAT = "StratopsRuleBreach", "StratopsRuleStale", "StratopsRuleHeartbeat"
FINDINGS = {BREACH: "breach", STALE: "stale", HEARTBEAT: "heartbeat"}
#: The kinds the ruler can evaluate exactly as the operator does.
COMPILED_KINDS = ("threshold", "percentile", "barAge", "barCountMismatch", "concentration")


@dataclass(frozen=True)
class CompiledMonitor:
    group: dict[str, Any]  # one Prometheus rule group (name, interval, rules)
    digest: str  # of the group's rules: the alerts carry it

    @property
    def name(self) -> str:
        return str(self.group["name"])


def _seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def _prom_duration(seconds: float) -> str:
    """A Prometheus duration (integral milliseconds at most): 1.5 s is 1500ms."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _num(x: float) -> str:
    return repr(float(x))


def breach_expr(spec: MonitorSpec, strategy: StrategySpec | None) -> tuple[str, str, int] | str:
    """(breach expression, stale expression, evaluations in a row) of SPEC, or why it cannot be
    compiled. The breach expression's value is the monitored value."""
    c, prom = spec.check, spec.source.prometheus
    if prom is None:
        return "source.strategy: evaluated on the strategy's reports"
    if prom.group_by:
        return "source.prometheus.groupBy: a batch, evaluated by the operator"
    if c.kind not in COMPILED_KINDS:
        return f"check.kind {c.kind}: evaluated by the operator"
    q = f"({prom.query})"
    stale = f"absent({q})"
    if c.kind == "threshold":
        t = c.threshold
        assert t
        worst = "max" if t.operator.startswith(">") else "min"
        return f"{worst}({q}) {t.operator} {_num(t.value)}", stale, t.consecutive_windows
    if c.kind == "percentile":
        p = c.percentile
        assert p
        if p.value_seconds is not None:
            limit = p.value_seconds
        elif strategy is None:
            return f"strategy {spec.strategy} not found: its decay horizon is needed"
        else:
            limit = _seconds(strategy.decay_horizon) * (p.fraction_of_decay_horizon or 0)
        return f"max({q}) > {_num(limit)}", stale, p.consecutive_windows
    if c.kind == "barAge":
        assert c.bar_age
        if strategy is None:
            return f"strategy {spec.strategy} not found: its bar interval is needed"
        limit = _seconds(strategy.bar_interval) * c.bar_age.max_bar_intervals
        return f"max({q}) > {_num(limit)}", stale, 1
    if c.kind == "barCountMismatch":
        m = c.bar_count_mismatch
        assert m
        b = f"({m.backup_query})"
        return (
            f"abs(sum({q}) - on() sum({b})) > {_num(m.tolerance)}",
            f"absent({q}) or on() absent({b})",
            1,
        )
    k = c.concentration
    assert k
    total = f"sum(abs({q}))"
    return (
        f"(max(abs({q})) / on() {total} > {_num(k.max_share)}) and on() ({total} >= {_num(k.min_total)})",
        stale,
        1,
    )


def compile_monitor(
    namespace: str, name: str, spec: MonitorSpec, strategy: StrategySpec | None, shard: int | None = None
) -> CompiledMonitor | str:
    """The rule group of monitor NAMESPACE/NAME (SHARD: the index of the shard that serves it,
    None when unsharded), or why the operator evaluates it itself."""
    got = breach_expr(spec, strategy)
    if isinstance(got, str):
        return got
    breach, stale, in_a_row = got
    period = _seconds(spec.frequency)
    if period < 1 or period != int(period):
        return f"spec.frequency {spec.frequency}: a rule group's interval is whole seconds"
    labels = {RULER_LABEL: "true", NAMESPACE_LABEL: namespace, MONITOR_LABEL: name, "strategy": spec.strategy}
    if shard is not None:
        labels[SHARD_LABEL] = str(shard)
    rules: list[dict[str, Any]] = [
        {
            "alert": BREACH,
            "expr": breach,
            # Firing at the n-th evaluation in a row that breaches, as the operator's count.
            **({"for": _prom_duration((in_a_row - 1) * period)} if in_a_row > 1 else {}),
            "labels": dict(labels),
            "annotations": {"value": "{{ $value }}"},
        },
        {"alert": STALE, "expr": stale, "labels": dict(labels)},
        {"alert": HEARTBEAT, "expr": "vector(1)", "labels": dict(labels)},
    ]
    digest = hashlib.sha256(json.dumps([period, rules], sort_keys=True).encode()).hexdigest()[:16]
    for r in rules:
        r["labels"][DIGEST_LABEL] = digest
    group = {"name": f"stratops/{namespace}/{name}", "interval": _prom_duration(period), "rules": rules}
    return CompiledMonitor(group, digest)


def rule_name(monitor: str) -> str:
    """The PrometheusRule of a monitor (its own: the monitor owns it, and it goes with it)."""
    return f"stratops-monitor-{monitor}"[:253]


def prometheus_rule(namespace: str, monitor: str, uid: str, compiled: CompiledMonitor) -> dict[str, Any]:
    """The prometheus-operator PrometheusRule holding a monitor's group, owned by the Monitor."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": rule_name(monitor),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "stratops", "stratops.io/monitor": monitor},
            "annotations": {"stratops.io/digest": compiled.digest},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Monitor",
                    "name": monitor,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {"groups": [compiled.group]},
    }
