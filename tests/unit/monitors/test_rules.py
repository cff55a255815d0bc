"""The Prometheus-ruler mode's compiler (stratops.monitors.rules): on the same data, the rules
Prometheus evaluates fire exactly when the operator's own evaluation breaches, with the same
value, evaluation after evaluation (consecutive windows included). Prometheus's side is real:
`promtool test rules` (built from the pinned Prometheus module) evaluates the compiled group over
the generated series."""

from __future__ import annotations

import copy
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from cases import example
from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import StrategySpec
from stratops.monitors.evaluate import evaluate
from stratops.monitors.prometheus import Series, SourceUnavailable
from stratops.monitors.rules import (
    BREACH,
    COMPILED_KINDS,
    DIGEST_LABEL,
    HEARTBEAT,
    STALE,
    CompiledMonitor,
    compile_monitor,
    prometheus_rule,
)
from stratops.testing.prometheus import monitoring_binary

T0 = datetime(2026, 12, 7, tzinfo=UTC)
STRATEGY = StrategySpec.model_validate({**example("strategy.yaml")["spec"], "barInterval": "2s", "decayHorizon": "10s"})


@pytest.fixture(scope="module")
def promtool() -> str:
    return monitoring_binary("promtool")


def _spec(check: dict[str, Any], query: str = "m", frequency: str = "2s") -> MonitorSpec:
    return MonitorSpec.model_validate(
        {
            "strategy": "alpha",
            "layer": "data",
            "source": {"prometheus": {"query": query}},
            "check": check,
            "frequency": frequency,
            "alert": {"channel": "dashboard"},
            "incident": {"class": "StaleData", "severity": "P1"},
        }
    )


class AtStep:
    """The operator's view of the same series: at evaluation I, each series' I-th value."""

    def __init__(self, series: dict[str, list[tuple[dict[str, str], list[float]]]], i: int) -> None:
        self.series, self.i = series, i

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        out = [Series(labels, [(at or T0, vals[self.i])]) for labels, vals in self.series.get(expr, [])]
        if not out:
            raise SourceUnavailable(f"no data for {expr!r}")
        return out

    def query_range(self, expr, start, end, step_s):  # type: ignore[no-untyped-def]
        raise AssertionError("no compiled check reads a range")


def _go(v: float) -> str:
    """A float as Prometheus's templates print {{ $value }} (Go's %v: shortest, no trailing .0)."""
    s = repr(float(v))
    return s[:-2] if s.endswith(".0") else s


def _selector(metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"


def _promtool(
    promtool: str,
    compiled: CompiledMonitor,
    series: dict[str, list[tuple[dict[str, str], list[float]]]],
    period: int,
    expected: list[tuple[int, str, list[dict[str, Any]]]],
) -> None:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "rules.yaml").write_text(yaml.safe_dump({"groups": [compiled.group]}))
        inputs = [
            {"series": _selector(metric, labels), "values": " ".join(_go(v) for v in vals)}
            for metric, rows in series.items()
            for labels, vals in rows
        ]
        test = {
            "rule_files": ["rules.yaml"],
            "evaluation_interval": f"{period}s",
            "tests": [
                {
                    "interval": f"{period}s",
                    "input_series": inputs,
                    "alert_rule_test": [
                        {"eval_time": f"{i * period}s", "alertname": name, "exp_alerts": alerts}
                        for i, name, alerts in expected
                    ],
                }
            ],
        }
        Path(d, "test.yaml").write_text(yaml.safe_dump(test))
        out = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=d, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr + "\n" + yaml.safe_dump(compiled.group)


def _labels(compiled: CompiledMonitor, alert: str) -> dict[str, str]:
    rule = next(r for r in compiled.group["rules"] if r["alert"] == alert)
    return dict(rule["labels"])


def _agree(promtool: str, spec: MonitorSpec, series: dict[str, list[tuple[dict[str, str], list[float]]]]) -> None:
    """The operator's evaluations over the series, and promtool's alerts at the same times."""
    compiled = compile_monitor("desk", "watch", spec, STRATEGY)
    assert isinstance(compiled, CompiledMonitor), compiled
    period = int(timedelta(seconds=float(compiled.group["interval"].rstrip("s"))).total_seconds())
    steps = len(next(iter(series.values()))[0][1])
    expected: list[tuple[int, str, list[dict[str, Any]]]] = []
    consecutive = 0
    for i in range(steps):
        ev = evaluate(
            spec, STRATEGY, AtStep(series, i), lambda n, k: "", T0 + timedelta(seconds=i * period), consecutive
        )
        consecutive = ev.consecutive
        assert not ev.stale, ev.detail
        breach = (
            [{"exp_labels": _labels(compiled, BREACH), "exp_annotations": {"value": _go(ev.value)}}]
            if ev.breaching
            else []
        )
        expected.append((i, BREACH, breach))
        expected.append((i, STALE, []))
        expected.append((i, HEARTBEAT, [{"exp_labels": _labels(compiled, HEARTBEAT)}]))
    _promtool(promtool, compiled, series, period, expected)


# Values on a coarse grid: Prometheus's text and Python's floats print them alike.
value = hs.integers(min_value=-40, max_value=40).map(lambda n: n / 4)
positive = hs.integers(min_value=0, max_value=40).map(lambda n: n / 4)
SYMBOLS = [{"symbol": "EURUSD"}, {"symbol": "GBPUSD"}, {"symbol": "USDJPY"}]


def _rows(draw: Any, values: Any, steps: int, names: list[dict[str, str]]) -> list[tuple[dict[str, str], list[float]]]:
    n = draw(hs.integers(min_value=1, max_value=len(names)))
    return [(names[j], draw(hs.lists(values, min_size=steps, max_size=steps))) for j in range(n)]


@hs.composite
def cases(draw: Any, kind: str) -> tuple[MonitorSpec, dict[str, list[tuple[dict[str, str], list[float]]]]]:
    steps = draw(hs.integers(min_value=1, max_value=6))
    frequency = f"{draw(hs.integers(min_value=1, max_value=3))}s"
    in_a_row = draw(hs.integers(min_value=1, max_value=3))
    if kind == "threshold":
        op = draw(hs.sampled_from([">", ">=", "<", "<="]))
        check = {"operator": op, "value": draw(value), "consecutiveWindows": in_a_row}
        return _spec({"kind": kind, kind: check}, frequency=frequency), {"m": _rows(draw, value, steps, SYMBOLS)}
    if kind == "percentile":
        check = (
            {"quantile": 0.99, "valueSeconds": draw(positive.filter(bool)), "consecutiveWindows": in_a_row}
            if draw(hs.booleans())
            else {"quantile": 0.99, "fractionOfDecayHorizon": 0.5, "consecutiveWindows": in_a_row}
        )
        return _spec({"kind": kind, kind: check}, frequency=frequency), {"m": _rows(draw, positive, steps, SYMBOLS)}
    if kind == "barAge":
        check = {"maxBarIntervals": draw(hs.sampled_from([0.5, 1.0, 2.0, 2.5]))}
        return _spec({"kind": kind, kind: check}, frequency=frequency), {"m": _rows(draw, positive, steps, SYMBOLS)}
    if kind == "barCountMismatch":
        check = {"backupQuery": "b", "tolerance": draw(hs.integers(min_value=0, max_value=3))}
        counts = hs.integers(min_value=0, max_value=20).map(float)
        data = {"m": _rows(draw, counts, steps, SYMBOLS), "b": _rows(draw, counts, steps, SYMBOLS)}
        return _spec({"kind": kind, "barCountMismatch": check}, frequency=frequency), data
    check = {"maxShare": draw(hs.sampled_from([0.3, 0.5, 0.75])), "minTotal": draw(hs.sampled_from([0, 2, 10]))}
    names = [{"name": n} for n in ("EURUSD", "GBPUSD", "USDJPY", "AUDUSD")]
    return _spec({"kind": kind, kind: check}, frequency=frequency), {"m": _rows(draw, value, steps, names)}


@pytest.mark.parametrize("kind", COMPILED_KINDS)
def test_the_ruler_fires_when_the_operator_would_breach(promtool: str, kind: str) -> None:
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cases(kind))
    def agree(case: Any) -> None:
        _agree(promtool, *case)

    agree()


def test_a_query_that_returns_nothing_is_a_stale_finding_not_a_pass(promtool: str) -> None:
    spec = _spec({"kind": "threshold", "threshold": {"operator": ">", "value": 1}}, query='m{symbol="none"}')
    compiled = compile_monitor("desk", "watch", spec, STRATEGY)
    assert isinstance(compiled, CompiledMonitor)
    stale = {**_labels(compiled, STALE), "symbol": "none"}  # absent() keeps the selector's equalities
    series = {"m": [({"symbol": "EURUSD"}, [5.0, 5.0])]}
    _promtool(promtool, compiled, series, 2, [(1, STALE, [{"exp_labels": stale}]), (1, BREACH, [])])
    with pytest.raises(SourceUnavailable):
        AtStep(series, 1).query('m{symbol="none"}')


@pytest.mark.parametrize(
    ("check", "why"),
    [
        ({"kind": "failures", "failures": {"count": 2, "within": "1m"}}, "check.kind failures"),
        ({"kind": "psi", "psi": {"baseline": {"configMapKeyRef": {"name": "b", "key": "k"}}}}, "check.kind psi"),
    ],
)
def test_checks_the_ruler_cannot_evaluate_stay_in_the_operator(check: dict[str, Any], why: str) -> None:
    got = compile_monitor("desk", "watch", _spec(check), STRATEGY)
    assert isinstance(got, str) and got.startswith(why)


def test_a_batch_or_a_reported_value_or_a_fraction_of_a_second_stays_in_the_operator() -> None:
    threshold = {"kind": "threshold", "threshold": {"operator": ">", "value": 1}}
    grouped = _spec(threshold).model_copy(deep=True)
    assert grouped.source.prometheus is not None
    grouped.source.prometheus.group_by = "strategy"
    assert "groupBy" in str(compile_monitor("desk", "w", grouped, STRATEGY))
    assert "whole seconds" in str(compile_monitor("desk", "w", _spec(threshold, frequency="1500ms"), STRATEGY))
    bar_age = _spec({"kind": "barAge", "barAge": {"maxBarIntervals": 2}})
    assert "not found" in str(compile_monitor("desk", "w", bar_age, None))


def test_the_digest_names_the_rules_and_the_object_is_the_monitor_s() -> None:
    spec = _spec({"kind": "threshold", "threshold": {"operator": ">", "value": 1}})
    a = compile_monitor("desk", "watch", spec, STRATEGY)
    changed = copy.deepcopy(spec)
    assert changed.check.threshold is not None
    changed.check.threshold.value = 2
    b = compile_monitor("desk", "watch", changed, STRATEGY)
    assert isinstance(a, CompiledMonitor) and isinstance(b, CompiledMonitor)
    assert a.digest != b.digest
    assert a == compile_monitor("desk", "watch", spec, STRATEGY)  # deterministic
    assert {r["labels"][DIGEST_LABEL] for r in a.group["rules"]} == {a.digest}
    sharded = compile_monitor("desk", "watch", spec, STRATEGY, shard=1)
    assert isinstance(sharded, CompiledMonitor) and sharded.digest != a.digest
    assert {r["labels"]["stratops_shard"] for r in sharded.group["rules"]} == {"1"}
    assert all("stratops_shard" not in r["labels"] for r in a.group["rules"])
    obj = prometheus_rule("desk", "watch", "uid-1", a)
    assert obj["kind"] == "PrometheusRule" and obj["spec"]["groups"] == [a.group]
    owner = obj["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Monitor", "watch", "uid-1", True)
