"""Evaluation in batches (source.prometheus.groupBy): one desk-wide query grouped by strategy,
fanned out to each strategy's monitor, gives the verdicts the strategies' own queries give on
the same data; and the monitors of one source share one query per period, failures included."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from cases import example
from stratops.models.monitor import MonitorSpec
from stratops.monitors.evaluate import evaluate
from stratops.monitors.prometheus import Batched, Series, SharedQueries, SourceUnavailable

NOW = datetime(2026, 12, 6, 9, tzinfo=UTC)
STRATEGIES = ["alpha", "beta", "gamma", "delta"]


class Fake:
    """A source holding, per strategy, its series (labels without the strategy, and a value)."""

    def __init__(self, data: dict[str, list[tuple[dict[str, str], float]]]) -> None:
        self.data, self.calls = data, 0

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        self.calls += 1
        if expr.startswith("own:"):  # one strategy's own query
            out = [Series(labels, [(NOW, v)]) for labels, v in self.data.get(expr[4:], [])]
        else:  # the desk-wide one, grouped by strategy
            out = [Series({**labels, "strategy": s}, [(NOW, v)]) for s, rows in self.data.items() for labels, v in rows]
        if not out:
            raise SourceUnavailable(f"no data for {expr!r}")
        return out

    def query_range(self, expr, start, end, step_s):  # type: ignore[no-untyped-def]
        raise AssertionError("not used by these checks")


def _spec(path: str, strategy: str, grouped: bool) -> MonitorSpec:
    doc = example(path)["spec"]
    prom = {"query": "desk-wide", "groupBy": "strategy"} if grouped else {"query": f"own:{strategy}"}
    return MonitorSpec.model_validate({**doc, "strategy": strategy, "source": {"prometheus": prom}})


values = hs.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
one_series = hs.lists(hs.tuples(hs.just({}), values), min_size=0, max_size=1)
by_symbol = hs.lists(
    hs.tuples(hs.sampled_from([{"symbol": "EURUSD"}, {"symbol": "GBPUSD"}, {"symbol": "USDJPY"}]), values),
    min_size=0,
    max_size=3,
    unique_by=lambda r: r[0]["symbol"],
)


@settings(max_examples=200, deadline=None)
@given(
    hs.sampled_from(["monitors/06-infra-queue-backlog.yaml", "monitors/12-pnl-concentration.yaml"]),
    hs.data(),
)
def test_a_batch_gives_each_strategy_the_verdict_its_own_query_gives(path, data):
    rows = by_symbol if "concentration" in path else one_series
    desk = Fake({s: data.draw(rows, label=s) for s in STRATEGIES})
    for s in STRATEGIES:
        alone = evaluate(_spec(path, s, grouped=False), None, desk, lambda n, k: "", NOW, 0)
        batch = evaluate(_spec(path, s, grouped=True), None, desk, lambda n, k: "", NOW, 0)
        assert (batch.value, batch.breaching, batch.stale, batch.consecutive) == (
            alone.value,
            alone.breaching,
            alone.stale,
            alone.consecutive,
        ), (s, desk.data)
        if not batch.stale:
            assert batch.detail == alone.detail


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_monitors_of_one_source_share_one_query_per_period():
    desk, clock = Fake({"alpha": [({}, 5.0)], "beta": [({}, 2000.0)]}), Clock()
    shared = SharedQueries(clock)
    for _ in range(50):  # fifty monitors of the desk, within one half period
        Batched(desk, shared, max_age=0.5).query("desk-wide")
    assert desk.calls == 1 and shared.queries == 1 and shared.reads == 50
    clock.t = 0.6
    Batched(desk, shared, max_age=0.5).query("desk-wide")
    assert desk.calls == 2, "older than the period's half: asked again"


def test_a_source_down_costs_one_query_per_period_not_one_per_monitor():
    class Down:
        calls = 0

        def query(self, expr, at=None):  # type: ignore[no-untyped-def]
            Down.calls += 1
            raise SourceUnavailable("connection refused")

    shared = SharedQueries(Clock())
    for _ in range(20):
        with pytest.raises(SourceUnavailable, match="connection refused"):
            Batched(Down(), shared, max_age=1.0).query("desk-wide")
    assert Down.calls == 1


def test_monitors_evaluating_at_once_wait_for_the_one_query_in_flight():
    release, started = threading.Event(), threading.Event()

    class Slow(Fake):
        def query(self, expr, at=None):  # type: ignore[no-untyped-def]
            started.set()
            release.wait(5)
            return super().query(expr, at)

    desk, shared = Slow({"alpha": [({}, 5.0)]}), SharedQueries()
    got: list[int] = []
    workers = [
        threading.Thread(target=lambda: got.append(len(Batched(desk, shared, 10.0).query("desk-wide"))))
        for _ in range(8)
    ]
    for w in workers:
        w.start()
    started.wait(5)
    release.set()
    for w in workers:
        w.join(10)
    assert got == [1] * 8 and desk.calls == 1


def test_grouped_windows_read_within_one_step_share_one_range_query():
    """Issue 21: a batch's range reads (windows) are shared too, not only its instant queries: a
    grouped monitor's window ends on its step's grid, so the monitors evaluating within one step
    read the very same window. It ends at the first grid time at or after the evaluation, so
    the last step's samples are read now, not at the next evaluation. One's own query keeps its
    window ending at its evaluation."""
    from datetime import timedelta

    sent: list[tuple[datetime, datetime]] = []

    class Source:
        def query(self, expr, at=None):  # type: ignore[no-untyped-def]
            raise AssertionError("a failures check reads a window")

        def query_range(self, expr, start, end, step_s):  # type: ignore[no-untyped-def]
            sent.append((start, end))
            return [Series({"strategy": s}, [(end, 1.0)]) for s in STRATEGIES]

    doc = example("monitors/04-infra-healthcheck.yaml")["spec"]  # failures within 60 s
    shared = SharedQueries()
    minute = timedelta(minutes=1)
    second = timedelta(seconds=1)
    for i, strategy in enumerate(STRATEGIES * 3):  # twelve monitors evaluating within one second
        spec = MonitorSpec.model_validate(
            {**doc, "strategy": strategy, "source": {"prometheus": {"query": "desk-up", "groupBy": "strategy"}}}
        )
        ev = evaluate(spec, None, Batched(Source(), shared, 5.0), lambda n, k: "", NOW + 0.08 * (i + 1) * second, 0)
        assert not ev.stale, ev.detail
    assert sent == [(NOW + second - minute, NOW + second)] and shared.queries == 1 and shared.reads == 12
    ev = evaluate(spec, None, Batched(Source(), shared, 5.0), lambda n, k: "", NOW + 1.5 * second, 0)
    assert sent[1] == (NOW + 2 * second - minute, NOW + 2 * second)
    own = MonitorSpec.model_validate({**doc, "strategy": "alpha", "source": {"prometheus": {"query": "own:alpha"}}})
    evaluate(own, None, Source(), lambda n, k: "", NOW + timedelta(seconds=1.5), 0)
    assert sent[2][1] == NOW + timedelta(seconds=1.5)


@settings(max_examples=300, deadline=None)
@given(
    at=hs.floats(min_value=0.0, max_value=86_400.0, allow_nan=False),
    span=hs.sampled_from([10.0, 60.0, 300.0, 3_600.0]),
)
def test_a_grouped_window_covers_its_evaluation_and_no_more_than_its_span(at, span):
    """Whatever the time of the evaluation: a grouped window ends at or after it, less than a
    step after, and starts no earlier than SPAN before it: a sample at the evaluation is read,
    none older than the check's span."""
    from datetime import timedelta

    from stratops.monitors.evaluate import _window

    sent: list[tuple[datetime, datetime, float]] = []

    class Source:
        def query_range(self, expr, start, end, step_s):  # type: ignore[no-untyped-def]
            sent.append((start, end, step_s))
            return []

    now = NOW + timedelta(seconds=at)
    _window(Source(), "desk-up", now, timedelta(seconds=span), points=60, on_grid=True)  # type: ignore[arg-type]
    [(start, end, step)] = sent
    assert now <= end < now + timedelta(seconds=step) + timedelta(microseconds=1)
    assert now - timedelta(seconds=span) <= start and end - start == timedelta(seconds=span)


@settings(max_examples=200, deadline=None)
@given(
    rows=hs.lists(
        hs.tuples(hs.sampled_from([*STRATEGIES, None]), hs.sampled_from(["EURUSD", "GBPUSD"]), values), max_size=12
    ),
    mine=hs.sampled_from(STRATEGIES),
)
def test_a_batch_s_answer_fans_out_by_its_index_as_by_a_scan(rows, mine):
    """A batch's answer is indexed by strategy once (Answer.by), not scanned by every monitor:
    each strategy reads the series a scan would have given it, in the same order."""
    from stratops.monitors.evaluate import OneStrategy
    from stratops.monitors.prometheus import Answer

    series = [Series({"symbol": sym, **({"strategy": s} if s else {})}, [(NOW, v)]) for s, sym, v in rows]

    class Source:
        def __init__(self, answer: list[Series]) -> None:
            self.answer = answer

        def query(self, expr, at=None):  # type: ignore[no-untyped-def]
            return self.answer

    def read(answer: list[Series]) -> list[Series] | str:
        try:
            return OneStrategy(Source(answer), "strategy", mine).query("desk-wide")
        except SourceUnavailable as e:
            return str(e)

    indexed = Answer(series)
    assert read(indexed) == read(list(series))
    # Built once, on the first monitor's read, and kept: every later monitor reads the same one.
    index = indexed.__dict__["_by"]["strategy"]
    assert read(indexed) == read(list(series)) and indexed.by("strategy") is index
    # Each strategy's series, without the label, and the series with no strategy label, in the
    # answer's order.
    for key in {*STRATEGIES, None}:
        assert index.get(key, []) == [
            Series({k: v for k, v in x.labels.items() if k != "strategy"}, x.points)
            for x in series
            if x.labels.get("strategy") == key
        ]
