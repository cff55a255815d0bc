"""Monitor statistics with known answers, evaluation against a fake source, alert formats."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cases import example
from stratops.alerts import Alert, Notifier, alertmanager_body, pagerduty_body, slack_body
from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import StrategySpec
from stratops.monitors import statistics as S
from stratops.monitors.evaluate import evaluate
from stratops.monitors.prometheus import Series, SourceUnavailable

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


# -- statistics, known answers ----------------------------------------------------------------
def test_psi_known_answer_all_mass_in_one_bin():
    baseline = np.arange(100.0)  # deciles: 10 values per bin
    current = np.zeros(50)  # everything in the first bin
    r = S.psi(baseline, current, bins=10, epsilon=1e-4)
    p, eps = 0.1, 1e-4
    expected = (1 - p) * math.log(1 / p) + 9 * (eps - p) * math.log(eps / p)
    assert r.value == pytest.approx(expected, rel=1e-9)
    assert "n_baseline=100, n_current=50" in r.detail


def test_psi_is_zero_for_the_same_distribution_and_symmetric_formula():
    b = np.arange(1000.0)
    assert S.psi(b, b).value == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(1)
    shifted = rng.normal(0.5, 1, 5000)
    base = rng.normal(0, 1, 5000)
    assert S.psi(base, shifted).value > 0.1


def test_psi_outer_bins_are_open():
    r = S.psi(np.arange(100.0), np.full(10, 1e9))  # far above the baseline: last bin, not lost
    assert r.value > 1


def test_psi_any_reports_the_worst_feature():
    base = list(np.arange(100.0))
    r = S.psi_any({"ok": (base, base), "drifted": (base, [0.0] * 50)}, limit=0.25)
    assert r.breach and "drifted" in r.detail


def test_ks_known_answers():
    a = np.arange(100.0)
    assert S.ks(a, a, 0.15).value == 0
    r = S.ks(a, a + 1000, 0.15)
    assert r.value == 1.0 and r.breach and "p=" in r.detail


def test_band_three_days_in_a_row():
    history = list(np.linspace(-1, 1, 60))
    assert S.band(history + [5, 6, 7], 0.95, 60, 3).breach
    assert not S.band(history + [5, 0, 7], 0.95, 60, 3).breach


def test_excess_cost_five_days():
    assert S.excess_cost([5] * 5, [2] * 5, 2, 5).breach  # 3 bps over on each day
    assert not S.excess_cost([5, 5, 3, 5, 5], [2] * 5, 2, 5).breach


def test_concentration_share_of_absolute_pnl():
    r = S.concentration({"EURUSD": 30, "GBPUSD": -50, "USDJPY": 20}, 0.25)
    assert r.value == pytest.approx(0.5) and r.breach and "GBPUSD" in r.detail
    assert not S.concentration({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, 0.25).breach


def test_concentration_below_the_materiality_floor_is_not_judged():
    """The first fills of the day make any split lopsided: below min_total it is reported, not a breach."""
    early = {"EURUSD": 90, "GBPUSD": 10, "USDJPY": 0}
    r = S.concentration(early, 0.25, min_total=2000)
    assert not r.breach and r.value == 0.9 and "below the materiality floor 2000: not judged" in r.detail
    assert S.concentration(early, 0.25).breach  # no floor: judged
    later = {k: v * 100 for k, v in early.items()}
    assert S.concentration(later, 0.25, min_total=2000).breach  # above the floor: judged as before


def test_topk_change():
    base = ["a", "b", "c", "d", "e"]
    assert not S.topk_change(base, {"a": 5, "b": 4, "c": 3, "d": 2, "e": 1, "f": 0}, 5, 2).breach
    r = S.topk_change(base, {"a": 5, "b": 4, "c": 3, "x": 9, "y": 8}, 5, 2)
    assert r.value == 2 and r.breach


def test_failures_in_window_and_bar_age_and_mismatch():
    samples = [(NOW - timedelta(seconds=s), v) for s, v in [(70, 0), (50, 0), (20, 1), (5, 0)]]
    assert S.failures(samples, NOW, timedelta(seconds=60), 2).breach  # 50s and 5s ago
    assert not S.failures(samples, NOW, timedelta(seconds=30), 2).breach
    assert S.bar_age({"EURUSD": 130, "GBPUSD": 10}, 60, 2).breach
    assert not S.bar_age({"EURUSD": 110}, 60, 2).breach
    assert S.bar_count_mismatch(100, 98, 0).breach and not S.bar_count_mismatch(100, 100, 0).breach


def test_no_data_is_never_a_pass():
    with pytest.raises(S.NoData):
        S.ks([1.0], [], 0.1)
    with pytest.raises(S.NoData):
        S.bar_age({}, 60, 2)


# -- evaluation against a fake source ---------------------------------------------------------------
class FakeSource:
    def __init__(self, instant=None, ranges=None, down=False):
        self.instant, self.ranges, self.down = instant or {}, ranges or {}, down

    def query(self, expr, at=None):
        if self.down:
            raise SourceUnavailable("connection refused")
        if expr not in self.instant:
            raise SourceUnavailable(f"no data for {expr!r}")
        return [Series(labels, [(NOW, v)]) for labels, v in self.instant[expr]]

    def query_range(self, expr, start, end, step_s):
        if self.down:
            raise SourceUnavailable("connection refused")
        if expr not in self.ranges:
            raise SourceUnavailable(f"no data for {expr!r}")
        return [Series(labels, [(NOW, v) for v in vals]) for labels, vals in self.ranges[expr]]


def mon(path: str) -> MonitorSpec:
    return MonitorSpec.model_validate(example(path)["spec"])


STRATEGY = StrategySpec.model_validate(example("strategy.yaml")["spec"])


def no_baseline(name, key):
    raise KeyError(name)


def test_threshold_needs_consecutive_windows():
    spec = mon("monitors/05-infra-order-latency.yaml")  # p95 > 500ms for 3 windows
    q = spec.source.prometheus.query
    src = FakeSource({q: [({}, 0.8)]})
    consecutive = 0
    for i in range(3):
        ev = evaluate(spec, STRATEGY, src, no_baseline, NOW, consecutive)
        consecutive = ev.consecutive
        assert ev.breaching is (i == 2)
    ev = evaluate(spec, STRATEGY, FakeSource({q: [({}, 0.1)]}), no_baseline, NOW, consecutive)
    assert not ev.breaching and ev.consecutive == 0


def test_decay_horizon_percentile():
    spec = mon("monitors/09-model-signal-latency.yaml")  # p99 > 50% of the 30m decay horizon
    q = spec.source.prometheus.query
    assert evaluate(spec, STRATEGY, FakeSource({q: [({}, 901.0)]}), no_baseline, NOW, 0).breaching
    assert not evaluate(spec, STRATEGY, FakeSource({q: [({}, 899.0)]}), no_baseline, NOW, 0).breaching
    assert evaluate(spec, None, FakeSource({q: [({}, 1.0)]}), no_baseline, NOW, 0).stale  # needs the strategy


def test_source_down_or_empty_is_stale_not_a_pass():
    spec = mon("monitors/06-infra-queue-backlog.yaml")
    ev = evaluate(spec, STRATEGY, FakeSource(down=True), no_baseline, NOW, 5)
    assert ev.stale and not ev.breaching and ev.finding and "refused" in ev.detail
    ev = evaluate(spec, STRATEGY, FakeSource({}), no_baseline, NOW, 0)
    assert ev.stale and "no data" in ev.detail


def test_psi_monitor_with_configmap_baseline():
    import json

    spec = mon("monitors/02-data-feature-psi.yaml")
    q = spec.source.prometheus.query
    base = {"spread": list(range(100)), "momentum": list(range(100))}
    load = lambda name, key: json.dumps(base)  # noqa: E731
    src = FakeSource(ranges={q: [({"feature": "spread"}, list(range(100))), ({"feature": "momentum"}, [0] * 100)]})
    ev = evaluate(spec, STRATEGY, src, load, NOW, 0)
    assert ev.breaching and "momentum" in ev.detail
    assert evaluate(spec, STRATEGY, src, no_baseline, NOW, 0).stale  # no baseline: a finding


def test_bar_age_uses_the_strategy_bar_interval():
    spec = mon("monitors/01-data-bar-age.yaml")  # 2 x 1m
    q = spec.source.prometheus.query
    assert evaluate(spec, STRATEGY, FakeSource({q: [({"symbol": "EURUSD"}, 121.0)]}), no_baseline, NOW, 0).breaching
    assert not evaluate(spec, STRATEGY, FakeSource({q: [({"symbol": "EURUSD"}, 119.0)]}), no_baseline, NOW, 0).breaching


# -- alert formats -----------------------------------------------------------------------------------
ALERT = Alert(
    "desk/m",
    "firing",
    "page",
    "P0",
    "mean-revert: bar age",
    "EURUSD 130s",
    {"strategy": "mean-revert", "namespace": "desk"},
    None,
    NOW,
)


def test_alertmanager_and_pagerduty_and_slack_formats():
    [am] = alertmanager_body(ALERT, NOW)
    assert am["labels"]["dedup_key"] == "desk/m" and "endsAt" not in am
    [am_resolved] = alertmanager_body(Alert(**{**ALERT.__dict__, "state": "resolved"}), NOW)
    assert am_resolved["endsAt"].endswith("Z")
    pd = pagerduty_body(ALERT, "KEY")
    assert pd["event_action"] == "trigger" and pd["dedup_key"] == "desk/m" and pd["payload"]["severity"] == "critical"
    assert pagerduty_body(Alert(**{**ALERT.__dict__, "state": "resolved"}), "KEY")["event_action"] == "resolve"
    assert slack_body(ALERT)["text"].startswith(":rotating_light: [FIRING P0]")


def test_dashboard_never_pages_and_missing_receiver_is_not_delivered():
    n = Notifier.from_environment({})
    assert n.deliver(Alert(**{**ALERT.__dict__, "channel": "dashboard"}))[0]
    ok, why = n.deliver(ALERT)
    assert not ok and "no receiver" in why
    assert "hooks.slack" not in repr(
        Notifier.from_environment({"STRATOPS_SLACK_WEBHOOK_URL": "https://hooks.slack/secret"}).receivers
    )


def test_incident_action_auto_rolls_back_during_a_rollout():
    from stratops.monitors.decide import incident_action

    p0, p1 = mon("monitors/01-data-bar-age.yaml"), mon("monitors/06-infra-queue-backlog.yaml")
    steady = {"rollout": {"version": "1.4.2"}, "lastKnownGood": "1.4.2"}
    rolling = {"rollout": {"version": "1.5.0"}, "lastKnownGood": "1.4.2"}
    assert incident_action(p0, steady) == "killSwitch" and incident_action(p1, steady) == "throttle"
    assert incident_action(p1, rolling) == "rollback" and incident_action(p0, rolling) == "rollback"
    assert incident_action(p1, None) == "throttle"
    explicit = p1.model_copy(update={"incident": p1.incident.model_copy(update={"action": "none"})})
    assert incident_action(explicit, rolling) == "none"


def test_prometheus_source_sends_the_token_and_reports_errors_as_unavailable():
    import httpx

    from stratops.monitors.prometheus import Prometheus

    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("Authorization")
        if request.url.params["query"] == "bad":
            return httpx.Response(400, json={"status": "error", "error": "parse error"})
        if request.url.params["query"] == "empty":
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": []}})
        return httpx.Response(
            200,
            json={
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {"symbol": "EURUSD"}, "value": [1764000000, "42"]}],
                },
            },
        )

    prom = Prometheus("http://prom.invalid", token="s3cret", transport=httpx.MockTransport(handler))
    [series] = prom.query("up")
    assert series.last == 42 and series.labels == {"symbol": "EURUSD"} and seen["auth"] == "Bearer s3cret"
    with pytest.raises(SourceUnavailable, match="parse error"):
        prom.query("bad")
    with pytest.raises(SourceUnavailable, match="no data"):
        prom.query("empty")


def test_one_source_never_gets_more_connections_than_its_bound():
    """Thousands of evaluations of one source queue on its client's pool, not on as many sockets."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from stratops.monitors.prometheus import Prometheus

    lock, now_open, most = threading.Lock(), [0], [0]

    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            with lock:
                now_open[0] += 1
                most[0] = max(most[0], now_open[0])
            threading.Event().wait(0.05)  # the server's own work, not a synchronisation
            body = json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]}}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with lock:
                now_open[0] -= 1

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prom = Prometheus(f"http://127.0.0.1:{server.server_address[1]}", connections=3)
        workers = [threading.Thread(target=lambda: [prom.query("up") for _ in range(3)]) for _ in range(12)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        assert 1 <= most[0] <= 3, most[0]
        prom.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_baseline_of_names_where_numbers_belong_is_stale_not_a_crash():
    """Found by the prefetch property test: a KS baseline `["spread"]` raised numpy's ValueError
    out of the evaluation (logged, retried, never reported): a finding must say it."""
    spec = mon("monitors/07-model-ks.yaml")
    q = spec.source.prometheus.query
    src = FakeSource(ranges={q: [({}, [0.1, 0.2, 0.3])]})
    ev = evaluate(spec, STRATEGY, src, lambda name, key: '["spread", "momentum"]', NOW, 0)
    assert ev.stale and ev.finding and "not a list of numbers" in ev.detail


def test_a_range_answer_parses_each_point_at_its_own_time_whatever_the_series_share():
    """Sample times are built once per answer (stratops.monitors.prometheus._Times): series on
    one grid, series off it, and a scalar still read each point at its own time and value."""
    from stratops.monitors.prometheus import _parse

    t0 = 1_765_000_000.0
    rows = [
        {"metric": {"strategy": "a"}, "values": [[t0, "1"], [t0 + 1.5, "2"]]},
        {"metric": {"strategy": "b"}, "values": [[t0 + 1.5, "3"], [t0 + 3, "NaN"]]},
        {"metric": {"strategy": "c"}, "values": [[t0 + 0.25, "4"]]},
    ]
    got = _parse({"resultType": "matrix", "result": rows}, "q")
    want = [[(datetime.fromtimestamp(float(t), UTC), float(v)) for t, v in r["values"]] for r in rows]
    assert [s.labels for s in got] == [r["metric"] for r in rows]
    for series, points in zip(got, want, strict=True):
        assert [p[0] for p in series.points] == [p[0] for p in points]
        assert [str(p[1]) for p in series.points] == [str(p[1]) for p in points]
    scalar = _parse({"resultType": "scalar", "result": [t0, "7"]}, "q")
    assert scalar[0].points == [(datetime.fromtimestamp(t0, UTC), 7.0)]
