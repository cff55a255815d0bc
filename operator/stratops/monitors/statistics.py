"""The statistics behind the twelve monitors. Pure: numbers in, numbers and a method note out.

Each function returns a `Reading`: the monitored value, whether it breaches, and `detail`
saying how it was computed (method, sample sizes), which goes to the Monitor's status.
"""

from __future__ import annotations

import operator as op
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

COMPARE = {">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le}


@dataclass(frozen=True)
class Reading:
    value: float
    breach: bool
    detail: str


class NoData(ValueError):
    """Not enough data to compute the statistic: a stale-data finding, never a pass."""


class NoSamples(NoData):
    """No current samples at all (not: a baseline that cannot serve): what a strategy whose
    metrics are not yet scraped gives (spec.startupGrace)."""


def _need(values: Sequence[float] | np.ndarray, n: int, what: str) -> np.ndarray:
    try:
        arr: np.ndarray = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:  # a baseline of names where numbers belong: stale, not a crash
        raise NoData(f"{what}: not a list of numbers ({e})") from e
    arr = arr[np.isfinite(arr)]
    if arr.size < n:
        raise NoData(f"{what}: {arr.size} finite values, need at least {n}")
    return arr


def threshold(value: float, comparison: str, limit: float) -> Reading:
    return Reading(value, COMPARE[comparison](value, limit), f"value {value:g} {comparison} {limit:g}")


def failures(samples: Sequence[tuple[datetime, float]], now: datetime, within: timedelta, count: int) -> Reading:
    """A health check (1 ok, 0 failed) failing COUNT times within the last WITHIN."""
    recent = [v for t, v in samples if now - t <= within]
    if not recent:
        raise NoSamples(f"no health-check samples in the last {within}")
    failed = sum(1 for v in recent if v < 0.5)
    return Reading(failed, failed >= count, f"{failed} failures in {len(recent)} checks over {within}")


def percentile(value_seconds: float, q: float, limit_seconds: float, comparison: str = ">") -> Reading:
    """A latency quantile (already computed by the source, e.g. histogram_quantile) against a bound."""
    return Reading(
        value_seconds,
        COMPARE[comparison](value_seconds, limit_seconds),
        f"p{q * 100:g} {value_seconds:.4g}s {comparison} {limit_seconds:.4g}s",
    )


def psi(baseline: Sequence[float], current: Sequence[float], bins: int = 10, epsilon: float = 1e-4) -> Reading:
    """Population Stability Index, sum (p - q) ln(p / q), over quantile bins of the baseline.

    Edges are the baseline's inner quantiles (frozen), the outer bins open to +-inf; empty bins
    are floored at EPSILON. PSI grows with sample size: the sizes are reported.
    """
    b = _need(baseline, bins, "PSI baseline")
    c = _need(current, 1, "PSI current sample")
    edges = np.unique(np.quantile(b, np.linspace(0, 1, bins + 1)[1:-1]))
    idx_b = np.searchsorted(edges, b, side="right")
    idx_c = np.searchsorted(edges, c, side="right")
    k = edges.size + 1
    p = np.bincount(idx_b, minlength=k) / b.size
    q = np.bincount(idx_c, minlength=k) / c.size
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    value = float(np.sum((q - p) * np.log(q / p)))
    return Reading(
        value,
        False,
        f"PSI over {k} baseline-quantile bins, epsilon {epsilon:g}, n_baseline={b.size}, n_current={c.size}",
    )


def psi_any(
    features: Mapping[str, tuple[Sequence[float], Sequence[float]]], limit: float, bins: int = 10, epsilon: float = 1e-4
) -> Reading:
    """The largest PSI over FEATURES (name -> (baseline, current)); a breach if any exceeds LIMIT."""
    if not features:
        raise NoSamples("no feature samples")
    worst_name, worst = "", None
    for name, (b, c) in sorted(features.items()):
        r = psi(b, c, bins, epsilon)
        if worst is None or r.value > worst.value:
            worst_name, worst = name, r
    assert worst is not None
    return Reading(
        worst.value,
        worst.value > limit,
        f"max PSI {worst.value:.4f} on {worst_name} of {len(features)} features; {worst.detail}",
    )


def ks(baseline: Sequence[float], current: Sequence[float], limit: float) -> Reading:
    """Two-sample Kolmogorov-Smirnov statistic (scipy.stats.ks_2samp) against LIMIT."""
    # scipy.stats costs the process about 0.5 s and tens of MiB to import: only a desk with a
    # KS monitor pays for it (an operator without one idles smaller, issue 21).
    from scipy import stats

    b = _need(baseline, 2, "KS baseline")
    c = _need(current, 2, "KS current sample")
    res = stats.ks_2samp(b, c)
    value = float(res.statistic)
    return Reading(
        value,
        value > limit,
        f"KS statistic {value:.4f} (p={float(res.pvalue):.3g}), n_baseline={b.size}, n_current={c.size}",
    )


def band(daily: Sequence[float], confidence: float, lookback_days: int, consecutive_days: int) -> Reading:
    """The last CONSECUTIVE_DAYS daily values all outside the CONFIDENCE band of the preceding
    LOOKBACK_DAYS (empirical quantiles: no normality assumed)."""
    x = _need(daily, consecutive_days + 5, "daily series")
    recent, history = x[-consecutive_days:], x[:-consecutive_days][-lookback_days:]
    lo, hi = np.quantile(history, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    outside = int(np.sum((recent < lo) | (recent > hi)))
    return Reading(
        float(recent[-1]),
        outside == consecutive_days,
        f"{outside}/{consecutive_days} last days outside the {confidence:.0%} band [{lo:.4g}, {hi:.4g}] of "
        f"{history.size} days",
    )


def excess_cost(
    realised_bps: Sequence[float], expected_bps: Sequence[float], limit_bps: float, consecutive_days: int
) -> Reading:
    """Realised minus expected above LIMIT_BPS on each of the last CONSECUTIVE_DAYS days."""
    r = _need(realised_bps, consecutive_days, "realised cost")
    e = _need(expected_bps, consecutive_days, "expected cost")
    diff = r[-consecutive_days:] - e[-consecutive_days:]
    over = int(np.sum(diff > limit_bps))
    return Reading(
        float(diff[-1]),
        over == consecutive_days,
        f"{over}/{consecutive_days} last days with realised - expected > {limit_bps:g} bps (last {diff[-1]:.3g} bps)",
    )


def concentration(by_name: Mapping[str, float], max_share: float, min_total: float = 0.0) -> Reading:
    """Share of the day's PnL from one name: |pnl of the name| / sum of |pnl| over names. A total
    below MIN_TOTAL is not judged: early in the day, a few fills make any split lopsided."""
    if not by_name:
        raise NoSamples("no per-name PnL")
    total = sum(abs(v) for v in by_name.values())
    if total == 0:
        return Reading(0.0, False, "no PnL today")
    name, v = max(by_name.items(), key=lambda kv: abs(kv[1]))
    share = abs(v) / total
    if total < min_total:
        return Reading(
            share,
            False,
            f"{name} is {share:.1%} of |PnL| across {len(by_name)} names, but the total "
            f"{total:.6g} is below the materiality floor {min_total:.6g}: not judged",
        )
    return Reading(share, share > max_share, f"{name} is {share:.1%} of |PnL| across {len(by_name)} names")


def topk_change(baseline: Sequence[str], current_scores: Mapping[str, float], k: int, min_changed: int) -> Reading:
    """How many of the baseline's top K are not in the current top K."""
    if not current_scores:
        raise NoSamples("no current scores")
    top = [n for n, _ in sorted(current_scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
    changed = len(set(baseline[:k]) - set(top))
    return Reading(changed, changed >= min_changed, f"{changed} of the top {k} changed; now {', '.join(top)}")


def bar_count_mismatch(primary: float, backup: float, tolerance: int) -> Reading:
    diff = abs(primary - backup)
    return Reading(diff, diff > tolerance, f"primary {primary:g} bars, backup {backup:g} bars")


def bar_age(age_by_symbol: Mapping[str, float], bar_interval_s: float, max_intervals: float) -> Reading:
    """Age of the last bar of the stalest symbol against MAX_INTERVALS x the bar interval."""
    if not age_by_symbol:
        raise NoSamples("no bar ages")
    sym, age = max(age_by_symbol.items(), key=lambda kv: kv[1])
    limit = bar_interval_s * max_intervals
    return Reading(
        age, age > limit, f"{sym}: last bar {age:.1f}s old, limit {limit:g}s ({max_intervals:g} x {bar_interval_s:g}s)"
    )
