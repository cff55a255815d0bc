"""Evaluate one Monitor: fetch from its source, compute its statistic, carry its breach count.

`evaluate()` takes the data access as a `Fetcher` so that the logic is tested without a
Prometheus; the operator passes the real one. Anything missing (source down, no data, no
baseline) makes the evaluation stale: a finding, never a pass.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from stratops.models.common import parse_duration
from stratops.models.monitor import Baseline, MonitorSpec
from stratops.models.strategy import StrategySpec
from stratops.monitors import statistics as S
from stratops.monitors.prometheus import Answer, NoSeries, Series, SourceUnavailable, SourceUnreachable

DAY = timedelta(days=1)
NAME_LABELS = ("feature", "symbol", "name", "instrument")


class Fetcher(Protocol):
    def query(self, expr: str, at: datetime | None = None) -> list[Series]: ...
    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]: ...


BaselineLoader = Callable[[str, str], str]  # (configmap, key) -> text; raises KeyError if missing


@dataclass(frozen=True)
class Evaluation:
    value: float | None
    breaching: bool
    stale: bool
    consecutive: int
    detail: str
    unreachable: bool = False  # stale because the source itself did not answer (not: no data)
    no_data: bool = False  # stale because the query answered with nothing (no series, no current samples)

    @property
    def finding(self) -> bool:
        """Breaching, or unable to tell (stale): both are reported."""
        return self.breaching or self.stale


class OneStrategy:
    """A Fetcher that keeps, of a desk-wide query grouped by LABEL, the series of one strategy
    (source.prometheus.groupBy): a batch's fan-out. Its series lose the label, so a statistic
    sees what the strategy's own query would have given."""

    def __init__(self, fetch: Fetcher, label: str, strategy: str) -> None:
        self.fetch, self.label, self.strategy = fetch, label, strategy

    def _mine(self, series: list[Series], expr: str) -> list[Series]:
        if isinstance(series, Answer):  # a batch's: indexed and stripped once for every reader
            mine = series.by(self.label).get(self.strategy, [])
        else:
            mine = [
                Series({k: v for k, v in s.labels.items() if k != self.label}, s.points)
                for s in series
                if s.labels.get(self.label) == self.strategy
            ]
        if not mine:
            raise NoSeries(f"no data for {self.label}={self.strategy!r} in {expr!r}")
        return mine

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        return self._mine(self.fetch.query(expr, at), expr)

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        return self._mine(self.fetch.query_range(expr, start, end, step_s), expr)


def series_name(s: Series) -> str:
    for label in NAME_LABELS:
        if label in s.labels:
            return s.labels[label]
    return ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "__name__") or "value"


def _by_name(series: list[Series]) -> dict[str, float]:
    return {series_name(s): s.last for s in series}


@functools.lru_cache(maxsize=256)
def _decoded(text: str) -> object:
    """A baseline's JSON, decoded once per text (the same text serves a minute of evaluations,
    and finding an evaluation's reads runs its check more than once): never mutated."""
    return json.loads(text)


def _baseline(b: Baseline, load: BaselineLoader, fetch: Fetcher) -> object:
    if b.config_map_key_ref is not None:
        try:
            text = load(b.config_map_key_ref.name, b.config_map_key_ref.key)
        except KeyError as e:
            raise S.NoData(
                f"baseline ConfigMap {b.config_map_key_ref.name} key {b.config_map_key_ref.key} not found"
            ) from e
        try:
            return _decoded(text)
        except ValueError as e:
            raise S.NoData(f"baseline {b.config_map_key_ref.name}/{b.config_map_key_ref.key} is not JSON") from e
    r = b.prometheus_range
    assert r is not None
    series = fetch.query_range(r.query, r.start, r.end, parse_duration(r.step).total_seconds())
    if len(series) == 1 and not any(k in series[0].labels for k in NAME_LABELS):
        return [v for _, v in series[0].points]
    return {series_name(s): [v for _, v in s.points] for s in series}


def _window(
    fetch: Fetcher, expr: str, now: datetime, span: timedelta, points: int = 120, on_grid: bool = False
) -> list[Series]:
    """The last SPAN of EXPR at NOW, about POINTS points. ON_GRID (a grouped monitor): ending on
    the step's grid, at the first grid time at or after NOW, so that the monitors of a batch
    evaluating within one step read the very same window, and share it (Prometheus evaluates a
    range at start + k x step anyway). It ends after NOW, not before: its last point is the
    source's latest sample, so a failed check in the last step is seen at this evaluation, not
    the next; the window's first step, older than SPAN ago, is what is left out."""
    step = max(span.total_seconds() / points, 1.0)
    if on_grid:
        now = datetime.fromtimestamp(math.ceil(now.timestamp() / step) * step, UTC)
    return fetch.query_range(expr, now - span, now, step)


def _apply(f: Callable[..., S.Reading], *args: object) -> S.Reading:
    return f(*args)


def compute(
    spec: MonitorSpec,
    strategy: StrategySpec | None,
    fetch: Fetcher,
    load: BaselineLoader,
    now: datetime,
    statistic: Callable[..., S.Reading] = _apply,
) -> tuple[S.Reading, int]:
    """(reading, windows needed in a row) for SPEC at NOW. STATISTIC(f, *args) computes the
    check's statistic f once every read is made (stratops.monitors.prefetch stops there)."""
    c = spec.check
    if spec.source.prometheus is None:  # a strategy-reported monitor: decided on each report (lifecycle.decide)
        raise ValueError("source.strategy: this monitor is evaluated on its strategy's reports, not by a query")
    expr = spec.source.prometheus.query
    group_by = spec.source.prometheus.group_by
    grouped = bool(group_by)
    if group_by:
        fetch = OneStrategy(fetch, group_by, spec.strategy)
    frequency = parse_duration(spec.frequency)
    if c.kind == "threshold":
        assert c.threshold
        vals = [s.last for s in fetch.query(expr, now)]
        worst = max(vals) if c.threshold.operator.startswith(">") else min(vals)
        return statistic(S.threshold, worst, c.threshold.operator, c.threshold.value), c.threshold.consecutive_windows
    if c.kind == "failures":
        assert c.failures
        within = parse_duration(c.failures.within)
        points = [p for s in _window(fetch, expr, now, within, points=60, on_grid=grouped) for p in s.points]
        return statistic(S.failures, points, now, within, c.failures.count), 1
    if c.kind == "percentile":
        p = c.percentile
        assert p
        value = max(s.last for s in fetch.query(expr, now))
        if p.value_seconds is not None:
            limit = p.value_seconds
        else:
            if strategy is None:
                raise S.NoData(f"strategy {spec.strategy} not found: its decay horizon is needed")
            limit = parse_duration(strategy.decay_horizon).total_seconds() * (p.fraction_of_decay_horizon or 0)
        return statistic(S.percentile, value, p.quantile, limit), p.consecutive_windows
    if c.kind == "psi":
        assert c.psi
        base = _baseline(c.psi.baseline, load, fetch)
        if not isinstance(base, dict):
            raise S.NoData("PSI baseline must map feature -> sample")
        current = {
            series_name(s): [v for _, v in s.points] for s in _window(fetch, expr, now, frequency, on_grid=grouped)
        }
        features = {f: (base[f], current[f]) for f in list(base)[: c.psi.top_features] if f in current}
        if not features:
            raise S.NoSamples("no current sample for any baseline feature")
        return statistic(S.psi_any, features, c.psi.threshold, c.psi.bins, c.psi.epsilon), 1
    if c.kind == "ks":
        assert c.ks
        base = _baseline(c.ks.baseline, load, fetch)
        current = [
            v for s in _window(fetch, expr, now, parse_duration(c.ks.window), on_grid=grouped) for _, v in s.points
        ]
        return statistic(S.ks, base if isinstance(base, list) else [], current, c.ks.threshold), 1
    if c.kind == "band":
        b = c.band
        assert b
        days = b.lookback_days + b.consecutive_days
        daily = [v for _, v in fetch.query_range(expr, now - days * DAY, now, DAY.total_seconds())[0].points]
        return statistic(S.band, daily, b.confidence, b.lookback_days, b.consecutive_days), 1
    if c.kind == "excessCost":
        e = c.excess_cost
        assert e
        span = e.consecutive_days * DAY
        realised = [v for _, v in fetch.query_range(expr, now - span, now, DAY.total_seconds())[0].points]
        expected = [v for _, v in fetch.query_range(e.expected_query, now - span, now, DAY.total_seconds())[0].points]
        return statistic(S.excess_cost, realised, expected, e.threshold_bps, e.consecutive_days), 1
    if c.kind == "concentration":
        assert c.concentration
        return statistic(
            S.concentration, _by_name(fetch.query(expr, now)), c.concentration.max_share, c.concentration.min_total
        ), 1
    if c.kind == "topKChange":
        t = c.top_k_change
        assert t
        base = _baseline(t.baseline, load, fetch)
        if not isinstance(base, list):
            raise S.NoData("top-k baseline must be a list of names")
        return statistic(S.topk_change, [str(x) for x in base], _by_name(fetch.query(expr, now)), t.k, t.min_changed), 1
    if c.kind == "barCountMismatch":
        m = c.bar_count_mismatch
        assert m
        primary = sum(s.last for s in fetch.query(expr, now))
        backup = sum(s.last for s in fetch.query(m.backup_query, now))
        return statistic(S.bar_count_mismatch, primary, backup, m.tolerance), 1
    if c.kind == "barAge":
        assert c.bar_age
        if strategy is None:
            raise S.NoData(f"strategy {spec.strategy} not found: its bar interval is needed")
        interval = parse_duration(strategy.bar_interval).total_seconds()
        return statistic(S.bar_age, _by_name(fetch.query(expr, now)), interval, c.bar_age.max_bar_intervals), 1
    raise S.NoData(f"unknown check kind {c.kind}")


def evaluate(
    spec: MonitorSpec,
    strategy: StrategySpec | None,
    fetch: Fetcher,
    load: BaselineLoader,
    now: datetime,
    consecutive_before: int,
) -> Evaluation:
    try:
        reading, needed = compute(spec, strategy, fetch, load, now)
    except SourceUnreachable as e:
        return Evaluation(None, False, True, 0, f"stale: {e}", unreachable=True)
    except (NoSeries, S.NoSamples) as e:
        return Evaluation(None, False, True, 0, f"stale: {e}", no_data=True)
    except (SourceUnavailable, S.NoData) as e:
        return Evaluation(None, False, True, 0, f"stale: {e}")
    consecutive = consecutive_before + 1 if reading.breach else 0
    return Evaluation(
        reading.value,
        consecutive >= needed,
        False,
        consecutive,
        reading.detail + (f"; {consecutive}/{needed} windows in a row" if needed > 1 else ""),
    )


#: The start of a monitor's detail while its stale finding is expected: the strategy's kill-switch
#: is latched, so its pods are stopped and export nothing.
HALTED_NOTE = "expected while the kill-switch is latched (its pods are stopped): "
#: The same while the monitor waits for its first data from a strategy starting up (spec.startupGrace).
STARTING_NOTE = "expected before the first data (strategy not Ready, or Ready for less than spec.startupGrace): "


def stale_expected(strategy_status: dict[str, object] | None) -> bool:
    """Whether no data is what a strategy in STRATEGY_STATUS should give: its kill-switch is
    latched, so the operator has scaled it to 0. A stale finding then opens no incident and sends
    no alert (each one would throttle a halted strategy and bury the incident that halted it);
    a breach on data that is still there still does both."""
    ks = (strategy_status or {}).get("killSwitch")
    return isinstance(ks, dict) and bool(ks.get("latched"))
