"""The Monitor resource: one check on one layer of one strategy.

The check is a union in the Kubernetes idiom: `check.kind` names the statistic and the member of
the same name holds its parameters (exactly one member is set). Between them the kinds cover the
twelve monitors of the seed's table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from stratops.models.common import Duration, Model, Rule, SecretKeyRef, parse_duration


class Layer(str, Enum):
    infrastructure = "infrastructure"
    data = "data"
    model = "model"
    pnl = "pnl"


class Channel(str, Enum):
    page = "page"  # wakes on-call
    slack = "slack"  # queues
    dashboard = "dashboard"  # informs, never wakes anyone


class IncidentClass(str, Enum):
    broker_outage = "BrokerOutage"
    feature_drift = "FeatureDrift"
    pnl_divergence = "PnLDivergence"
    stale_data = "StaleData"
    config_drift = "ConfigDrift"
    risk_breach = "RiskBreach"


class Severity(str, Enum):
    P0 = "P0"  # stop
    P1 = "P1"  # slow


Comparison = Literal[">", ">=", "<", "<="]


class PrometheusSource(Model):
    """A PromQL query against the Prometheus HTTP API."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="Prometheus base URL; defaults to the operator's --prometheus-url.",
    )
    query: str = Field(
        min_length=1, max_length=4096, description="PromQL expression; its result is the monitored value (or vector)."
    )
    timeout: str = Duration("Query timeout; a timeout is a stale-data finding, never a pass.", default="10s")
    auth_secret_ref: SecretKeyRef | None = Field(default=None, description="Bearer token for the Prometheus API.")
    group_by: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        max_length=128,
        description="Evaluate in a batch: the query is the desk-wide one, grouped by this label (e.g. `max by "
        "(strategy) (queue_depth)` with groupBy strategy), and this monitor reads only the series whose label is its "
        "strategy's name (none: no data, a stale finding). The monitors of one source with the same query run it once "
        "per half period (at most 5 s), however many strategies they watch.",
    )


class StrategyReportSource(Model):
    """A value the strategy reports itself through the SDK (StrategyControl.report): evaluated
    by the operator on every report, event-driven, the fastest a monitor can be."""

    report: Literal["exposure", "loss"] = Field(
        description="exposure: gross exposure in the account currency; loss: today's loss (positive). Summed over the "
        "strategy's pods."
    )


class Source(Model):
    """Where the monitored values come from: exactly one of prometheus and strategy."""

    prometheus: PrometheusSource | None = Field(default=None, description="The Prometheus HTTP API.")
    strategy: StrategyReportSource | None = Field(
        default=None, description="A value reported by the strategy itself (exposure, loss): evaluated on every report."
    )
    __rules__ = (
        Rule(
            cel="has(self.prometheus) != has(self.strategy)",
            message="source: set exactly one of prometheus and strategy",
            check=lambda s: (s.prometheus is None) != (s.strategy is None),
        ),
    )


class Baseline(Model):
    """A reference sample for drift statistics: a ConfigMap key or a fixed Prometheus window."""

    config_map_key_ref: SecretKeyRef | None = Field(
        default=None, description="ConfigMap key holding the sample (JSON list of numbers, or of names for top-k)."
    )
    prometheus_range: BaselineRange | None = Field(
        default=None, description="A Prometheus range query at a fixed window."
    )
    __rules__ = (
        Rule(
            cel="has(self.configMapKeyRef) != has(self.prometheusRange)",
            message="baseline: set exactly one of configMapKeyRef and prometheusRange",
            check=lambda b: (b.config_map_key_ref is None) != (b.prometheus_range is None),
        ),
    )


class BaselineRange(Model):
    """A fixed window of a Prometheus series used as the reference sample."""

    query: str = Field(min_length=1, max_length=4096, description="PromQL expression.")
    start: AwareDatetime = Field(description="Window start (RFC 3339, with its offset).")
    end: AwareDatetime = Field(description="Window end (RFC 3339, with its offset).")
    step: str = Duration("Resolution of the range query.", default="1m")
    __rules__ = (
        Rule(
            cel="timestamp(self.end) > timestamp(self.start)",
            message="baseline.prometheusRange.end must be after start",
            field_path=".end",
            check=lambda r: r.end > r.start,
        ),
    )


Baseline.model_rebuild()


class ThresholdCheck(Model):
    """Value compared with a threshold for N consecutive evaluations (e.g. > 1000 unprocessed)."""

    operator: Comparison = Field(default=">", description="Breach when value <operator> value.")
    value: float = Field(description="The threshold.")
    consecutive_windows: int = Field(default=1, ge=1, le=1000, description="Evaluations in a row that must breach.")


class FailuresCheck(Model):
    """A health check that fails `count` times within `within` (e.g. healthcheck fails 2x in 60s).
    The query returns 1 for success and 0 for failure."""

    count: int = Field(ge=1, le=1000, description="Failures that make a breach.")
    within: str = Duration("Time window the failures are counted in.")


class PercentileCheck(Model):
    """A latency percentile over a window: against a fixed value, or a fraction of the decay horizon."""

    quantile: float = Field(gt=0, lt=1, description="E.g. 0.95 or 0.99.")
    window: str = Duration("Window the percentile is computed over.", default="1m")
    value_seconds: float | None = Field(
        default=None, gt=0, description="Breach above this many seconds (e.g. 0.5 for 500ms)."
    )
    fraction_of_decay_horizon: float | None = Field(
        default=None, gt=0, le=1, description="Breach above this fraction of spec.decayHorizon (e.g. 0.5)."
    )
    consecutive_windows: int = Field(default=1, ge=1, le=1000, description="Windows in a row that must breach.")
    __rules__ = (
        Rule(
            cel="has(self.valueSeconds) != has(self.fractionOfDecayHorizon)",
            message="percentile: set exactly one of valueSeconds and fractionOfDecayHorizon",
            check=lambda p: (p.value_seconds is None) != (p.fraction_of_decay_horizon is None),
        ),
    )


class PSICheck(Model):
    """Population Stability Index over quantile bins of the baseline, on any of the top-N features."""

    baseline: Baseline = Field(description="Reference sample.")
    threshold: float = Field(default=0.25, gt=0, description="Breach when PSI exceeds this (0.1 warn, 0.25 act).")
    bins: int = Field(default=10, ge=2, le=100, description="Quantile bins frozen from the baseline.")
    top_features: int = Field(
        default=10, ge=1, le=1000, description="How many features are checked; any one breaching is a breach."
    )
    epsilon: float = Field(default=0.0001, gt=0, lt=0.01, description="Floor for empty bins (recorded in status).")


class KSCheck(Model):
    """Two-sample Kolmogorov-Smirnov statistic of recent values against the baseline."""

    baseline: Baseline = Field(description="Reference sample.")
    threshold: float = Field(default=0.15, gt=0, le=1, description="Breach when the KS statistic exceeds this.")
    window: str = Duration("Recent window compared with the baseline.", default="1h")


class BandCheck(Model):
    """Daily value outside a confidence band for N days in a row."""

    confidence: float = Field(default=0.95, gt=0, lt=1, description="Band coverage, e.g. 0.95.")
    lookback_days: int = Field(default=60, ge=5, le=3650, description="Days of history the band is estimated from.")
    consecutive_days: int = Field(
        default=3, ge=1, le=365, description="Days in a row outside the band that make a breach."
    )


class ExcessCostCheck(Model):
    """Realised minus expected (cost or slippage) above X bps for N days in a row."""

    expected_query: str = Field(min_length=1, max_length=4096, description="PromQL for the expected value, in bps.")
    threshold_bps: float = Field(gt=0, description="Breach when realised - expected exceeds this, in bps.")
    consecutive_days: int = Field(default=5, ge=1, le=365, description="Days in a row that must breach.")


class ConcentrationCheck(Model):
    """Share of the total coming from a single name (the query returns one series per name)."""

    max_share: float = Field(gt=0, le=1, description="Breach when one name's share of the total exceeds this.")
    min_total: float = Field(
        default=0,
        ge=0,
        description=(
            "Materiality: below this total (of absolute values across names, e.g. the day's |PnL|) the split "
            "across names is noise and is not judged. 0 judges every total."
        ),
    )


class TopKChangeCheck(Model):
    """The top-k set (e.g. of feature importances) changes by at least M members against the baseline."""

    baseline: Baseline = Field(description="The reference top-k set.")
    k: int = Field(ge=1, le=1000, description="Size of the set.")
    min_changed: int = Field(ge=1, le=1000, description="Breach when at least this many members changed.")
    __rules__ = (
        Rule(
            cel="self.minChanged <= self.k",
            message="topKChange.minChanged must not exceed topKChange.k",
            field_path=".minChanged",
            check=lambda t: t.min_changed <= t.k,
        ),
    )


class BarCountMismatchCheck(Model):
    """Bar count from the primary feed (the source query) against the backup feed."""

    backup_query: str = Field(min_length=1, max_length=4096, description="PromQL for the backup feed's bar count.")
    tolerance: int = Field(default=0, ge=0, description="Allowed difference in bars.")


class BarAgeCheck(Model):
    """Age of the last bar of any symbol (the query returns seconds since the last bar, per symbol)."""

    max_bar_intervals: float = Field(
        default=2.0, gt=0, description="Breach when the age exceeds this many spec.barInterval of the strategy."
    )


CHECK_KINDS = (
    "threshold",
    "failures",
    "percentile",
    "psi",
    "ks",
    "band",
    "excessCost",
    "concentration",
    "topKChange",
    "barCountMismatch",
    "barAge",
)
CheckKind = Literal[
    "threshold",
    "failures",
    "percentile",
    "psi",
    "ks",
    "band",
    "excessCost",
    "concentration",
    "topKChange",
    "barCountMismatch",
    "barAge",
]
_CHECK_ATTR = {
    "threshold": "threshold",
    "failures": "failures",
    "percentile": "percentile",
    "psi": "psi",
    "ks": "ks",
    "band": "band",
    "excessCost": "excess_cost",
    "concentration": "concentration",
    "topKChange": "top_k_change",
    "barCountMismatch": "bar_count_mismatch",
    "barAge": "bar_age",
}


def _member_rules() -> tuple[Rule, ...]:
    members = ", ".join(f"has(self.{k})" for k in CHECK_KINDS)
    rules = [
        Rule(
            cel=f"[{members}].filter(x, x).size() == 1",
            message="check: set exactly one member, the one named by check.kind",
            check=lambda c: sum(getattr(c, a) is not None for a in _CHECK_ATTR.values()) == 1,
        )
    ]

    def present(kind: str, attr: str) -> Callable[[Any], bool]:
        return lambda c: c.kind != kind or getattr(c, attr) is not None

    for kind, attr in _CHECK_ATTR.items():
        rules.append(
            Rule(
                cel=f"self.kind != '{kind}' || has(self.{kind})",
                message=f"check.{kind} is required when check.kind is {kind}",
                field_path=f".{kind}",
                reason="FieldValueRequired",
                check=present(kind, attr),
            )
        )
    return tuple(rules)


class Check(Model):
    """The statistic and its parameters."""

    kind: CheckKind = Field(description="Which statistic: " + ", ".join(CHECK_KINDS) + ".")
    threshold: ThresholdCheck | None = Field(default=None, description="Parameters when kind is threshold.")
    failures: FailuresCheck | None = Field(default=None, description="Parameters when kind is failures.")
    percentile: PercentileCheck | None = Field(default=None, description="Parameters when kind is percentile.")
    psi: PSICheck | None = Field(default=None, description="Parameters when kind is psi.")
    ks: KSCheck | None = Field(default=None, description="Parameters when kind is ks.")
    band: BandCheck | None = Field(default=None, description="Parameters when kind is band.")
    excess_cost: ExcessCostCheck | None = Field(default=None, description="Parameters when kind is excessCost.")
    concentration: ConcentrationCheck | None = Field(default=None, description="Parameters when kind is concentration.")
    top_k_change: TopKChangeCheck | None = Field(default=None, description="Parameters when kind is topKChange.")
    bar_count_mismatch: BarCountMismatchCheck | None = Field(
        default=None, description="Parameters when kind is barCountMismatch."
    )
    bar_age: BarAgeCheck | None = Field(default=None, description="Parameters when kind is barAge.")
    __rules__ = _member_rules()


class IncidentSpecOfMonitor(Model):
    """What a breach opens."""

    class_: IncidentClass = Field(alias="class", description="Incident class opened on a breach.")
    severity: Severity = Field(description="P0 stops (kill-switch), P1 slows (throttle).")
    action: Literal["auto", "killSwitch", "throttle", "rollback", "none"] = Field(
        default="auto",
        description="auto: P0 kill-switch, P1 throttle, a rollout-related breach rolls back; none only records.",
    )
    require_rearm: bool = Field(
        default=False,
        description="A kill-switch from this monitor (exposure-linked, repeated execution) stays on until a user in "
        "spec.killSwitch.rearmBy of the strategy re-arms it.",
    )


class Alerting(Model):
    """Where the alert goes."""

    channel: Channel = Field(description="page wakes on-call, slack queues, dashboard never wakes anyone.")
    route: str | None = Field(
        default=None, max_length=253, description="Channel detail, e.g. #alerts or a PagerDuty service."
    )


MIN_FREQUENCY, MAX_FREQUENCY = "1s", "744h"


class MonitorSpec(Model):
    """One check on one layer of one strategy."""

    strategy: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=253,
        description="Strategy in the same namespace; immutable.",
    )
    layer: Layer = Field(description="infrastructure, data, model or pnl.")
    description: str = Field(default="", max_length=1024, description="What this monitor watches, for on-call.")
    source: Source = Field(description="Where values come from.")
    check: Check = Field(description="The statistic.")
    frequency: str = Duration(
        f"How often to evaluate, {MIN_FREQUENCY} to {MAX_FREQUENCY} (daily is 24h, weekly 168h).", max_length=32
    )
    alert: Alerting = Field(description="Where the alert goes.")
    incident: IncidentSpecOfMonitor = Field(description="What a breach opens and does.")
    clear_for: str | None = Duration(
        "Hysteresis: how long a finding must stay clear before its episode ends (its resolved message is sent, "
        "and a breach after that opens a new incident). A finding that comes back within it is the same "
        "episode: no second incident, no second page, unless its incident was resolved meanwhile (then a new "
        "one opens, and acts). Default: three evaluation periods, at most 5m. 0s turns it off.",
        default=None,
        max_length=32,
    )
    startup_grace: str = Duration(
        "How long a monitor that has never read data waits for its first data once its strategy's pods are "
        "Ready (Prometheus has yet to scrape them): until then no data is expected (status.staleExpected: no "
        "finding, no incident, no alert), and while the strategy is not Ready at all. A breach on data, an "
        "unreachable source, and no data after the monitor has read data once are findings at once. This "
        "fails open for that long: a feed that never starts is reported only after it. 0s turns it off.",
        default="2m",
        max_length=32,
    )
    __rules__ = (
        Rule(
            cel=f"duration(self.frequency) >= duration('{MIN_FREQUENCY}') && duration(self.frequency) <= "
            f"duration('{MAX_FREQUENCY}')",
            message=f"spec.frequency must be between {MIN_FREQUENCY} and {MAX_FREQUENCY}",
            field_path=".frequency",
            check=lambda m: (
                parse_duration(MIN_FREQUENCY) <= parse_duration(m.frequency) <= parse_duration(MAX_FREQUENCY)
            ),
        ),
        Rule(
            cel="self.strategy == oldSelf.strategy",
            message="spec.strategy is immutable: create a new Monitor for another strategy",
            field_path=".strategy",
        ),
        Rule(
            cel="!has(self.source.strategy) || self.check.kind == 'threshold'",
            message="a monitor of a value the strategy reports (source.strategy) takes check.kind threshold",
            field_path=".check.kind",
            check=lambda m: m.source.strategy is None or m.check.kind == "threshold",
        ),
    )


class LastAlert(Model):
    """The last alert sent."""

    at: datetime = Field(description="When.")
    channel: Channel = Field(description="Channel.")
    state: Literal["firing", "resolved"] = Field(description="Firing or resolved.")
    delivered: bool = Field(description="Whether the receiver accepted it.")


class MonitorStatus(Model):
    """Evaluation results. Written only by the operator."""

    last_value: str | None = Field(default=None, description="Last value, formatted (number, or a short summary).")
    last_evaluation: datetime | None = Field(
        default=None,
        description="The evaluation this status records. Written on every change of verdict, breach count, alert or "
        "incident, and otherwise refreshed every 5 minutes (STRATOPS_MONITOR_STATUS_SECONDS), or at every "
        "evaluation when the frequency is lower: older than that plus one period means the monitor is not "
        "being evaluated. stratops_monitor_value is set at every evaluation.",
    )
    consecutive_breaches: int | None = Field(default=None, ge=0, description="Evaluations in a row that breached.")
    breaching: bool | None = Field(default=None, description="Whether the monitor is breaching now.")
    stale: bool | None = Field(
        default=None, description="True when the source was unreachable or returned no data (a finding, never a pass)."
    )
    stale_expected: bool | None = Field(
        default=None,
        description="True while the monitor is stale because no data is what its strategy gives: its kill-switch "
        "is latched (its pods are stopped), or the monitor has never read data and the strategy has not yet been "
        "Ready for spec.startupGrace. No finding, no incident, no alert. Staying stale after the resume, or past "
        "the grace, is a new finding.",
    )
    first_data: datetime | None = Field(
        default=None,
        description="When the monitor first read data (spec.startupGrace applies only before it).",
    )
    detail: str | None = Field(default=None, description="Method and sample sizes of the last evaluation.")
    last_alert: LastAlert | None = Field(default=None, description="The last alert sent.")
    incident: str | None = Field(default=None, description="The Incident opened by the current breach.")
    finding: Literal["breach", "stale"] | None = Field(
        default=None,
        description="The current episode's finding (breach, or stale data), kept while it clears (spec.clearFor).",
    )
    clearing_since: datetime | None = Field(
        default=None,
        description="Since when the episode's finding has been clear; the episode ends once this is spec.clearFor "
        "old. A finding again before that is the same episode.",
    )
    problem: str | None = Field(
        default=None,
        description="Why the monitor cannot be evaluated (e.g. its strategy does not exist); cleared when fixed.",
    )
    observed_generation: int | None = Field(default=None, description="The .metadata.generation last evaluated.")
    evaluated_by: Literal["operator", "ruler"] | None = Field(
        default=None,
        description="In the Prometheus-ruler mode: ruler while Prometheus evaluates the monitor's compiled rules "
        "(their heartbeat is recent), operator while the operator evaluates it itself (detail says why). Unset "
        "when the mode is off.",
    )
