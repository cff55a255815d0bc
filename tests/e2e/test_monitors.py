"""Monitors evaluated from a real Prometheus, alerting a real HTTP receiver, acting on breach."""

from __future__ import annotations

import copy

import httpx
import pytest
from typer.testing import CliRunner

from cases import example
from lifecycle_helpers import GITOPS, NAME, Desk, grant_chart_roles, strategy_doc
from stratops.cli.main import app
from stratops.monitors.evaluate import STARTING_NOTE
from stratops.testing.prometheus import PrometheusServer, sample
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e


def _monitor(namespace: str, url: str, channel: str = "slack") -> dict:
    m = copy.deepcopy(example("monitors/06-infra-queue-backlog.yaml"))  # > 1000 unprocessed
    m["spec"]["source"]["prometheus"] = {
        "url": url,
        "query": f'sum(test_queue_depth{{strategy="{namespace}"}})',
        "timeout": "2s",
    }
    m["spec"]["frequency"] = "1s"
    m["spec"]["incident"] = {"class": "RiskBreach", "severity": "P1"}
    m["spec"]["alert"] = {"channel": channel, "route": "#alerts"}
    return m


def _monitor_status(desk: Desk, name: str) -> dict:
    return (
        desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "monitors", name).get("status")
        or {}
    )


@pytest.fixture
def desk(kube, namespace, operator):
    d = Desk(kube, namespace)
    yield d
    d.stop_pods()


def test_breach_alerts_opens_incident_and_throttles_then_resolves(desk, exporter, prometheus, alert_receiver):
    depth = exporter.gauge("test_queue_depth").labels(desk.ns)
    depth.set(10)
    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")
    mon = _monitor(desk.ns, prometheus.url)
    name = mon["metadata"]["name"]
    query = mon["spec"]["source"]["prometheus"]["query"]
    wait_for(lambda: prometheus.value(query) == 10, timeout=30, what="Prometheus has scraped the series")
    desk.create("monitors", mon)
    wait_for(lambda: _monitor_status(desk, name).get("lastValue") == "10", timeout=60, what="first evaluation")
    assert _monitor_status(desk, name)["breaching"] is False

    depth.set(5000)
    st = wait_for(lambda: (s := _monitor_status(desk, name)).get("breaching") and s, timeout=60, what="breach")
    assert st["lastValue"] == "5000" and st["incident"]
    # the monitor records the incident's name before creating it (no duplicate after a crash)
    [incident] = wait_for(
        lambda: [
            i
            for i in desk.incidents()
            if i["metadata"]["name"] == st["incident"] and (i.get("status") or {}).get("steps")
        ],
        timeout=30,
        what="the incident",
    )
    assert incident["spec"]["class"] == "RiskBreach" and incident["spec"]["monitor"] == name
    assert incident["status"]["steps"]["detection"]["by"] == f"monitor/{name}"
    wait_for(lambda: desk.control()["tradingState"] == "REDUCING", timeout=30, what="P1 breach throttles")
    wait_for(
        lambda: any("[FIRING P1]" in t and f"{desk.ns}/{name}" in t for t in alert_receiver.texts()),
        timeout=30,
        what="firing message on the slack receiver",
    )

    depth.set(10)
    wait_for(lambda: _monitor_status(desk, name).get("breaching") is False, timeout=60, what="breach cleared")
    key = f"{desk.ns}/{name}"
    wait_for(
        lambda: any("[RESOLVED P1]" in t and key in t for t in alert_receiver.texts()),
        timeout=30,
        what="resolved message",
    )
    firing = [t for t in alert_receiver.texts() if "[FIRING P1]" in t and key in t]
    assert len(firing) == 1, "one firing message per breach: deduplicated"
    assert firing[0].startswith(f":rotating_light: [FIRING P1] {NAME}: ")


def test_prometheus_down_is_a_stale_finding_never_a_pass(desk, exporter):
    exporter.gauge("test_queue_depth").labels(desk.ns).set(10)
    own = PrometheusServer([f"127.0.0.1:{exporter.port}"]).start()
    try:
        desk.create("strategies", strategy_doc())
        desk.wait_status(lambda s: s.get("phase") == "Running", "running")
        mon = _monitor(desk.ns, own.url, channel="dashboard")
        wait_for(lambda: own.value(mon["spec"]["source"]["prometheus"]["query"]) == 10, timeout=30, what="scraped")
        desk.create("monitors", mon)
        name = mon["metadata"]["name"]
        wait_for(lambda: _monitor_status(desk, name).get("lastValue") == "10", timeout=60, what="first evaluation")
    finally:
        own.stop()
    st = wait_for(lambda: (s := _monitor_status(desk, name)).get("stale") and s, timeout=60, what="stale finding")
    assert st["breaching"] is False and "stale" in st["detail"] and st["lastValue"] == "n/a"
    [incident] = wait_for(
        lambda: [i for i in desk.incidents() if i["metadata"]["name"] == st["incident"]],
        timeout=30,
        what="the StaleData incident",
    )
    assert incident["spec"]["class"] == "StaleData"
    wait_for(lambda: desk.control()["tradingState"] == "REDUCING", timeout=30, what="stale data slows the strategy")


def test_undeliverable_alert_is_retried_counted_and_delivered_later(
    desk, exporter, prometheus, alert_receiver, operator
):
    def failures() -> float:
        text = httpx.get(operator["metrics"]).text
        return sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith('stratops_alert_delivery_failures_total{channel="slack"')
        )

    depth = exporter.gauge("test_queue_depth").labels(desk.ns)
    depth.set(10)
    desk.create("strategies", strategy_doc())
    mon = _monitor(desk.ns, prometheus.url)
    name = mon["metadata"]["name"]
    query = mon["spec"]["source"]["prometheus"]["query"]
    wait_for(lambda: prometheus.value(query) == 10, timeout=30, what="Prometheus has scraped the series")
    before = failures()
    alert_receiver.failing = True
    try:
        desk.create("monitors", mon)
        wait_for(lambda: _monitor_status(desk, name).get("lastValue") == "10", timeout=60, what="first evaluation")
        depth.set(5000)
        st = wait_for(
            lambda: (s := _monitor_status(desk, name)).get("lastAlert") and s, timeout=60, what="alert attempted"
        )
        assert st["lastAlert"]["delivered"] is False and st["lastAlert"]["state"] == "firing"
        wait_for(lambda: failures() >= before + 3, timeout=30, what="failures counted")
    finally:
        alert_receiver.failing = False
    wait_for(lambda: _monitor_status(desk, name)["lastAlert"]["delivered"] is True, timeout=60, what="delivered later")
    assert any("[FIRING P1]" in t and f"{desk.ns}/{name}" in t for t in alert_receiver.texts())


def test_p0_breach_pages_alertmanager_and_kills_the_strategy(desk, exporter, prometheus, alertmanager):
    age = exporter.gauge("test_bar_age_seconds", ("strategy", "symbol"))
    age.labels(desk.ns, "EURUSD").set(30)
    desk.create("strategies", strategy_doc(killSwitch={"ackDeadline": "2s"}))
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")
    m = copy.deepcopy(example("monitors/01-data-bar-age.yaml"))  # age > 2 x 1m bar interval: page, P0
    m["spec"]["source"]["prometheus"] = {
        "url": prometheus.url,
        "query": f'max by (symbol) (test_bar_age_seconds{{strategy="{desk.ns}"}})',
    }
    m["spec"]["frequency"] = "1s"
    name = m["metadata"]["name"]
    wait_for(lambda: prometheus.value(m["spec"]["source"]["prometheus"]["query"]) == 30, timeout=30, what="scraped")
    desk.create("monitors", m)
    wait_for(lambda: _monitor_status(desk, name).get("lastValue") == "30", timeout=60, what="first evaluation")
    age.labels(desk.ns, "EURUSD").set(600)
    st = wait_for(lambda: (s := _monitor_status(desk, name)).get("breaching") and s, timeout=60, what="breach")
    assert "EURUSD" in st["detail"]
    status = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "P0 kill-switch completed")
    assert status["killSwitch"]["incident"] == st["incident"]
    assert desk.deployment().spec.replicas == 0
    alerts = wait_for(
        lambda: [a for a in alertmanager.alerts(monitor=name, namespace=desk.ns) if a["status"]["state"] == "active"],
        timeout=30,
        what="alert in Alertmanager",
    )
    assert len(alerts) == 1, alerts  # one alert per monitor: Alertmanager deduplicates on the labels
    assert alerts[0]["labels"]["severity"] == "P0" and alerts[0]["labels"]["strategy"] == NAME


def test_baseline_configmap_missing_is_stale_until_it_is_created(desk, exporter, prometheus):
    """A KS monitor whose baseline ConfigMap does not exist yet: stale (a finding, never a
    pass). Once the ConfigMap is created the next evaluation uses it: a missing baseline is not
    remembered (baselines are otherwise read once a period, STRATOPS_MONITOR_REFS_SECONDS)."""
    exporter.gauge("test_signal").labels(desk.ns).set(0.5)
    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")
    mon = copy.deepcopy(example("monitors/07-model-ks.yaml"))
    query = f'test_signal{{strategy="{desk.ns}"}}'
    mon["spec"]["source"]["prometheus"] = {"url": prometheus.url, "query": query, "timeout": "2s"}
    mon["spec"]["check"]["ks"]["window"] = "1m"
    mon["spec"]["check"]["ks"]["baseline"]["configMapKeyRef"] = {"name": "signal-baseline", "key": "signal.json"}
    mon["spec"]["frequency"] = "1s"
    mon["spec"]["alert"]["channel"] = "dashboard"
    name = mon["metadata"]["name"]
    wait_for(lambda: prometheus.value(query) == 0.5, timeout=30, what="Prometheus has scraped the series")
    desk.create("monitors", mon)
    st = wait_for(lambda: (s := _monitor_status(desk, name)).get("stale") and s, timeout=60, what="stale: no baseline")
    assert "baseline ConfigMap signal-baseline key signal.json not found" in st["detail"]

    desk.core.create_namespaced_config_map(
        desk.ns, {"metadata": {"name": "signal-baseline"}, "data": {"signal.json": "[0.5, 0.5, 0.5, 0.5]"}}
    )
    st = wait_for(
        lambda: (s := _monitor_status(desk, name)).get("stale") is False and s,
        timeout=60,
        what="evaluated against the baseline",
    )
    assert st["breaching"] is False and st["lastValue"] == "0" and "not found" not in st["detail"]


def test_a_source_outage_is_one_incident_per_strategy_and_one_page(desk, exporter, alertmanager):
    """One root cause, one incident (issue 21): three monitors of one strategy, of three classes,
    all reading a Prometheus that goes away. Each goes stale; the first opens the strategy's
    StaleData incident and the others join it; Alertmanager, routing by namespace, strategy and
    incident class as the README advises, holds the three alerts in one group: one page."""
    exporter.gauge("test_queue_depth").labels(desk.ns).set(10)
    own = PrometheusServer([f"127.0.0.1:{exporter.port}"]).start()
    names = []
    try:
        desk.create("strategies", strategy_doc())
        desk.wait_status(lambda s: s.get("phase") == "Running", "running")
        for i, class_ in enumerate(("RiskBreach", "BrokerOutage", "FeatureDrift")):
            mon = _monitor(desk.ns, own.url, channel="page")
            mon["metadata"]["name"] = name = f"queue-{i}"
            mon["spec"]["incident"] = {"class": class_, "severity": "P1"}
            names.append(name)
            if i == 0:
                query = mon["spec"]["source"]["prometheus"]["query"]
                wait_for(lambda q=query: own.value(q) == 10, timeout=30, what="scraped")
            desk.create("monitors", mon)
        for name in names:
            wait_for(
                lambda n=name: _monitor_status(desk, n).get("lastValue") == "10", timeout=60, what=f"{name} evaluated"
            )
    finally:
        own.stop()
    stale = [
        wait_for(
            lambda n=name: (s := _monitor_status(desk, n)).get("stale") and s.get("incident") and s,
            timeout=60,
            what=f"{name} stale",
        )
        for name in names
    ]
    assert len({s["incident"] for s in stale}) == 1, stale
    [incident] = wait_for(
        lambda: [
            i for i in desk.incidents() if (i.get("status") or {}).get("monitors") and len(i["status"]["monitors"]) == 3
        ],
        timeout=30,
        what="one incident grouping the three monitors",
    )
    assert incident["spec"]["class"] == "StaleData" and sorted(incident["status"]["monitors"]) == names
    assert len(desk.incidents()) == 1
    groups = wait_for(
        lambda: [g for g in alertmanager.groups(namespace=desk.ns) if len(g["alerts"]) == 3] or None,
        timeout=30,
        what="the three alerts in one Alertmanager group",
    )
    assert len(alertmanager.groups(namespace=desk.ns)) == 1 and groups[0]["labels"]["incident_class"] == "StaleData"
    wait_for(lambda: desk.control()["tradingState"] == "REDUCING", timeout=30, what="stale data slows the strategy")
    assert desk.status()["throttle"]["causes"] == ["StaleData"]  # one cause: one throttle level


def test_a_flapping_monitor_is_one_incident_until_a_person_resolves_it(
    desk, exporter, prometheus, alert_receiver, cluster, kube, tmp_path
):
    """Hysteresis (issue 21, spec.clearFor): a monitor that recovers and breaches again within
    its window stays in one episode: no second incident, no resolved-then-firing messages. Once
    a risk owner (the chart's Role, through the CLI) resolves the incident, the next breach opens
    a new one: a flap is never a way around a resolution."""
    people = grant_chart_roles(cluster, kube, desk.ns, tmp_path)
    depth = exporter.gauge("test_queue_depth").labels(desk.ns)
    depth.set(10)
    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")
    mon = _monitor(desk.ns, prometheus.url)
    mon["spec"]["clearFor"] = "5m"
    name, key = mon["metadata"]["name"], f"{desk.ns}/{mon['metadata']['name']}"
    wait_for(lambda: prometheus.value(mon["spec"]["source"]["prometheus"]["query"]) == 10, timeout=30, what="scraped")
    desk.create("monitors", mon)
    wait_for(lambda: _monitor_status(desk, name).get("lastValue") == "10", timeout=60, what="first evaluation")

    def flap() -> str:
        depth.set(5000)
        st = wait_for(
            lambda: (s := _monitor_status(desk, name)).get("breaching") and s.get("incident") and s,
            timeout=60,
            what="breach",
        )
        depth.set(10)
        wait_for(
            lambda: (s := _monitor_status(desk, name)).get("breaching") is False and s.get("clearingSince"),
            timeout=60,
            what="the finding clears, its episode kept",
        )
        return str(st["incident"])

    first = flap()
    assert flap() == first and flap() == first
    mine = [i["metadata"]["name"] for i in desk.incidents() if i["spec"].get("monitor") == name]
    assert mine == [first], "three breaches within clearFor: one incident"
    st = _monitor_status(desk, name)
    assert st["finding"] == "breach" and st["incident"] == first
    wait_for(lambda: any("[FIRING P1]" in t and key in t for t in alert_receiver.texts()), timeout=30, what="page")
    texts = [t for t in alert_receiver.texts() if key in t]
    assert sum("[FIRING P1]" in t for t in texts) == 1 and not any("[RESOLVED" in t for t in texts), texts
    assert any(
        e.reason == "FindingBack" and first in e.message
        for e in desk.core.list_namespaced_event(desk.ns, field_selector=f"involvedObject.name={name}").items
    )

    res = CliRunner().invoke(
        app,
        ["incident", "resolve", first, "-n", desk.ns, "--reason", "backlog drained", "--root-cause", "slow venue"]
        + ["--action", "queue alarm lowered", "--owner", "rita"],
        env={"KUBECONFIG": str(people["rita"]), "COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    depth.set(5000)
    st = wait_for(
        lambda: (s := _monitor_status(desk, name)).get("incident") not in (None, first) and s,
        timeout=60,
        what="a new incident once the first is resolved",
    )
    [new] = wait_for(
        lambda: [i for i in desk.incidents() if i["metadata"]["name"] == st["incident"] and i.get("status")],
        timeout=30,
        what="the new incident",
    )
    assert new["status"]["phase"] != "Resolved" and new["status"]["steps"]["detection"]["by"] == f"monitor/{name}"


def test_monitors_applied_with_their_strategy_wait_for_its_first_data(
    desk, exporter, prometheus, cluster, kube, tmp_path
):
    """A desk applies a Strategy and its Monitors together (a GitOps merge, by the desk's GitOps
    identity under the chart's Role): until Prometheus has scraped the new pods there is no data,
    and that is no finding (spec.startupGrace): no StaleData incident, no throttle of a strategy
    just born. A monitor whose query never matches is still a finding, once its strategy has been
    Ready for the grace."""
    gitops = Desk(cluster.api_client(grant_chart_roles(cluster, kube, desk.ns, tmp_path)[GITOPS]), desk.ns)
    depth = exporter.gauge("test_queue_depth")  # no child for this desk yet: no series (a child is one, at 0)
    waiting = _monitor(desk.ns, prometheus.url)
    waiting["metadata"]["name"] = "queue-waiting"
    never = _monitor(desk.ns, prometheus.url)
    never["metadata"]["name"] = "queue-never"
    never["spec"]["source"]["prometheus"]["query"] = f'sum(test_never_exported{{strategy="{desk.ns}"}})'
    never["spec"]["startupGrace"] = "6s"
    gitops.create("monitors", waiting)
    gitops.create("monitors", never)
    gitops.create("strategies", strategy_doc())
    st = wait_for(
        lambda: (s := _monitor_status(desk, "queue-waiting")).get("staleExpected") and s,
        timeout=60,
        what="no data yet, and expected",
    )
    assert st["detail"].startswith(STARTING_NOTE) and not st.get("incident") and not st.get("firstData"), st
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")

    # The query that never matches: a StaleData finding once the strategy has been Ready 6 s.
    st = wait_for(
        lambda: (s := _monitor_status(desk, "queue-never")).get("incident") and s,
        timeout=60,
        what="the never-matching monitor's stale finding after its grace",
    )
    assert st["stale"] is True and not st.get("staleExpected") and not st["detail"].startswith(STARTING_NOTE)
    ready_at = next(c for c in desk.status()["conditions"] if c["type"] == "Ready")["lastTransitionTime"]
    assert st["lastEvaluation"] >= ready_at, "not before the strategy was Ready"

    depth.labels(desk.ns).set(10)
    st = wait_for(
        lambda: (s := _monitor_status(desk, "queue-waiting")).get("lastValue") == "10" and s,
        timeout=60,
        what="the first data",
    )
    assert st.get("firstData") and not st.get("staleExpected") and not st.get("incident")
    for incident in desk.incidents():
        assert incident["spec"].get("monitor") != "queue-waiting"
        assert "queue-waiting" not in ((incident.get("status") or {}).get("monitors") or []), incident


def test_a_source_down_for_the_desk_is_one_desk_finding_and_one_page(desk, exporter, alertmanager, operator):
    """Issue 21: two strategies whose monitors read one Prometheus that goes away. Each strategy
    gets its own StaleData incident and throttle (what its card asks for); the desk gets one
    StratopsSourceDown alert, which holds back (Alertmanager inhibition, as the README advises)
    the per-strategy stale alerts of that source: one page."""
    exporter.gauge("test_queue_depth").labels(desk.ns).set(10)
    own = PrometheusServer([f"127.0.0.1:{exporter.port}"]).start()
    strategies = [NAME, "trend-follow"]
    try:
        for strategy in strategies:
            doc = strategy_doc()
            doc["metadata"]["name"] = strategy
            desk.create("strategies", doc)
        for strategy in strategies:
            desk.wait_status(lambda s: s.get("phase") == "Running", f"{strategy} running", name=strategy)
        for strategy in strategies:
            mon = _monitor(desk.ns, own.url, channel="page")
            mon["metadata"]["name"] = f"queue-{strategy}"
            mon["spec"]["strategy"] = strategy
            query = mon["spec"]["source"]["prometheus"]["query"]
            wait_for(lambda q=query: own.value(q) == 10, timeout=30, what="scraped")
            desk.create("monitors", mon)
        for strategy in strategies:
            wait_for(
                lambda n=f"queue-{strategy}": _monitor_status(desk, n).get("lastValue") == "10",
                timeout=60,
                what=f"{strategy}'s monitor evaluated",
            )
    finally:
        own.stop()
    source = own.url.rstrip("/")
    [down] = wait_for(
        lambda: alertmanager.alerts(alertname="StratopsSourceDown", namespace=desk.ns) or None,
        timeout=60,
        what="one desk-level StratopsSourceDown alert",
    )
    assert down["labels"]["source"] == source and down["status"]["state"] == "active"
    assert "trend-follow" in down["annotations"]["summary"] and NAME in down["annotations"]["summary"]
    # Each strategy's own finding and action go on, their pages held back by the desk's.
    for strategy in strategies:
        wait_for(
            lambda s=strategy: desk.status(s).get("throttle", {}).get("causes") == ["StaleData"],
            timeout=30,
            what=f"{strategy} throttled by its own StaleData incident",
        )
    stale = wait_for(
        lambda: (
            a
            if len(a := alertmanager.alerts(alertname="StratopsMonitorBreach", namespace=desk.ns)) == 2
            and all(x["status"]["state"] == "suppressed" for x in a)
            else None
        ),
        timeout=30,
        what="the two per-strategy stale alerts, inhibited",
    )
    assert {a["labels"]["strategy"] for a in stale} == set(strategies)
    assert all(a["labels"]["source"] == source and a["status"]["inhibitedBy"] for a in stale)
    stale_incidents = [i for i in desk.incidents() if i["spec"]["class"] == "StaleData"]
    assert sorted(i["spec"]["strategy"] for i in stale_incidents) == sorted(strategies), "one per strategy"
    metrics = httpx.get(operator["metrics"]).text
    assert f'stratops_source_down{{namespace="{desk.ns}",source="{source}"}} 1.0' in metrics


def test_a_window_ending_after_the_evaluation_ends_on_the_latest_sample(exporter, prometheus):
    """A grouped monitor's window ends at the first grid time at or after its evaluation
    (stratops.monitors.evaluate._window). A real Prometheus answers a range ending after now with
    its latest sample as the last point: a failed check just scraped is read at once."""
    import math
    from datetime import UTC, datetime, timedelta

    from stratops.monitors.prometheus import Prometheus

    up = exporter.gauge("test_window_up", labels=("strategy",))
    up.labels("alpha").set(1)
    wait_for(lambda: prometheus.value('test_window_up{strategy="alpha"}') == 1, timeout=30, what="up scraped")
    up.labels("alpha").set(0)  # the health check fails
    wait_for(lambda: prometheus.value('test_window_up{strategy="alpha"}') == 0, timeout=30, what="down scraped")
    now = datetime.now(UTC)
    end = datetime.fromtimestamp(math.ceil(now.timestamp()) + 1, UTC)  # after now, on a 1 s grid
    source = Prometheus(prometheus.url)
    try:
        [series] = source.query_range('test_window_up{strategy="alpha"}', end - timedelta(seconds=60), end, 1.0)
    finally:
        source.close()
    last_at, last = series.points[-1]
    assert last_at == end and last == 0, series.points[-3:]
    assert any(v == 1 for _, v in series.points), "the window holds the samples before the failure"


def test_monitors_in_a_batch_share_a_query_and_each_reads_its_own_strategy(desk, exporter, prometheus, operator):
    """Issue 21: three strategies' monitors read one desk-wide query grouped by strategy
    (source.prometheus.groupBy). Each reads its own strategy's series; a breach of one is that
    strategy's alone; the queries they send are counted apart from the evaluations they answer."""
    before = httpx.get(operator["metrics"]).text
    depth = exporter.gauge("test_desk_depth", labels=("namespace", "strategy"))
    strategies = [NAME, "trend-follow", "carry"]
    for strategy in strategies:
        depth.labels(desk.ns, strategy).set(10)
        doc = strategy_doc()
        doc["metadata"]["name"] = strategy
        desk.create("strategies", doc)
    query = f'max by (strategy) (test_desk_depth{{namespace="{desk.ns}"}})'
    wait_for(lambda: len(prometheus.series(query)) == 3, timeout=30, what="the three series scraped")
    for strategy in strategies:
        desk.wait_status(lambda s: s.get("phase") == "Running", f"{strategy} running", name=strategy)
        mon = _monitor(desk.ns, prometheus.url)
        mon["metadata"]["name"] = f"depth-{strategy}"
        mon["spec"]["strategy"] = strategy
        mon["spec"]["source"]["prometheus"] = {
            "url": prometheus.url,
            "query": query,
            "timeout": "2s",
            "groupBy": "strategy",
        }
        desk.create("monitors", mon)
    for strategy in strategies:
        wait_for(
            lambda s=strategy: _monitor_status(desk, f"depth-{s}").get("lastValue") == "10",
            timeout=60,
            what=f"{strategy}'s monitor reads its own series",
        )
    depth.labels(desk.ns, "trend-follow").set(5000)
    st = wait_for(
        lambda: (s := _monitor_status(desk, "depth-trend-follow")).get("breaching") and s.get("incident") and s,
        timeout=60,
        what="trend-follow's breach",
    )
    assert st["lastValue"] == "5000"
    desk.wait_status(lambda s: (s.get("throttle") or {}).get("active"), "trend-follow throttled", name="trend-follow")
    for other in (NAME, "carry"):
        ms = _monitor_status(desk, f"depth-{other}")
        assert ms["breaching"] is False and ms["lastValue"] == "10" and not ms.get("incident"), (other, ms)
        assert not (desk.status(other).get("throttle") or {}).get("active"), f"{other} is not trend-follow"
    source = prometheus.url.rstrip("/")
    text = httpx.get(operator["metrics"]).text

    def gauge(name: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith(f'{name}{{source="{source}"}}'))
        return float(line.split()[-1])

    assert 1 <= gauge("stratops_batch_queries") <= gauge("stratops_batch_reads")
    # Every read was made ahead, on the event loop; no evaluation waited on the source in a worker.
    reads = {
        m: sample(text, "stratops_monitor_source_reads_total", made=m)
        - sample(before, "stratops_monitor_source_reads_total", made=m)
        for m in ("ahead", "in_worker")
    }
    assert reads["ahead"] >= 3 and reads["in_worker"] == 0, reads


def test_a_monitor_carries_no_finalizer_and_one_left_by_an_earlier_release_is_taken_off(desk, exporter, prometheus):
    """Monitors are evaluated by one schedule, not a kopf daemon each: none gets a finalizer. The
    finalizer an earlier release (a daemon per monitor) put on every Monitor is taken off (kopf
    does it, as no handler of Monitors needs one), so the Monitor can still be deleted."""
    exporter.gauge("test_queue_depth").labels(desk.ns).set(10)
    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")
    new = _monitor(desk.ns, prometheus.url, channel="dashboard")
    desk.create("monitors", new)
    name = new["metadata"]["name"]
    wait_for(lambda: _monitor_status(desk, name).get("lastEvaluation"), timeout=60, what="first evaluation")

    def get(n: str) -> dict:
        return desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "monitors", n)

    assert not get(name)["metadata"].get("finalizers")
    old = _monitor(desk.ns, prometheus.url, channel="dashboard")
    old["metadata"] = {"name": "from-an-earlier-release", "finalizers": ["stratops.io/finalizer", "example.com/keep"]}
    desk.create("monitors", old)
    wait_for(
        lambda: get("from-an-earlier-release")["metadata"].get("finalizers") == ["example.com/keep"],
        timeout=30,
        what="the earlier release's finalizer taken off, the others kept",
    )
    for n in (name, "from-an-earlier-release"):
        desk.custom.delete_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "monitors", n)
    # The other finalizer's owner releases it, as it would: then nothing holds the Monitor.
    desk.custom.patch_namespaced_custom_object(
        "stratops.io", "v1alpha1", desk.ns, "monitors", "from-an-earlier-release", {"metadata": {"finalizers": []}}
    )

    def deleted() -> bool:
        names = [
            m["metadata"]["name"]
            for m in desk.custom.list_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "monitors")["items"]
        ]
        return name not in names and "from-an-earlier-release" not in names

    wait_for(deleted, timeout=30, what="both Monitors deleted")
