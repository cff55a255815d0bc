"""`stratops drill SCENARIO` on the example desk as `make demo` runs it: the example strategy as a
real container on the real node, a real Prometheus with the desk's history scraping it, the
twelve example monitors, the five gates. Each test starts from a desk at rest (every monitor
evaluated and green, no incident), runs one drill as the desk's administrator would, and checks
what the drill printed against the cluster: one incident of the scenario's class, the action
taken, and nothing else opened on the way (after a kill-switch, the stopped pods' missing data
opens no StaleData incident)."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lifecycle_helpers import Desk
from stratops import GROUP, VERSION
from stratops.cli.main import app
from stratops.dev import desk_at_rest, example_documents, on_real_node
from stratops.k8s.apply import apply
from stratops.testing.scrape import DeskPrometheus, monitor_queries
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAME = "mean-revert"


class ExampleDesk:
    def __init__(self, desk: Desk, prometheus: DeskPrometheus) -> None:
        self.desk, self.prometheus = desk, prometheus

    def monitors(self) -> list[dict[str, Any]]:
        return self.desk.custom.list_namespaced_custom_object(GROUP, VERSION, self.desk.ns, "monitors")["items"]

    def monitor(self, short: str) -> dict[str, Any]:
        return self.desk.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.desk.ns, "monitors", f"{NAME}-{short}"
        )

    def drill(self, scenario: str, kubeconfig: Path) -> str:
        res = CliRunner().invoke(
            app, ["drill", scenario, "-n", self.desk.ns], env={"KUBECONFIG": str(kubeconfig), "COLUMNS": "200"}
        )
        assert res.exit_code == 0 and "Traceback" not in res.output, res.output
        return res.output


@pytest.fixture
def example_desk(desk_of_real_pods: Desk, tmp_path: Path) -> Any:
    desk = desk_of_real_pods
    prometheus = DeskPrometheus(tmp_path / "prometheus", desk.ns, NAME).start()
    stop = threading.Event()

    def follow() -> None:  # the demo's loop: the scrape follows the strategy's pods
        while not stop.wait(1.0):
            try:
                prometheus.refresh(desk.kube)
            except Exception:  # the namespace is going away at the end
                pass

    threading.Thread(target=follow, daemon=True).start()
    docs = [on_real_node(d, "stratops.local/mean-revert") for d in example_documents(ROOT)]
    for d in docs:
        if d["kind"] == "Strategy":
            d["spec"]["rollbackPolicy"].update(rolloutDeadline="30s", healthyFor="2s")
        if d["kind"] == "Monitor":
            d["spec"]["source"]["prometheus"]["url"] = prometheus.url
    monitors = [d for d in docs if d["kind"] == "Monitor"]
    try:
        apply(desk.kube, [d for d in docs if d["kind"] != "Monitor"], namespace=desk.ns)
        desk.wait_status(
            lambda s: any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions") or []),
            "the example strategy Ready on the real node",
            timeout=120,
        )
        queries = monitor_queries(monitors)
        wait_for(lambda: not prometheus.missing(queries), timeout=120, what="Prometheus has every monitor's data")
        apply(desk.kube, copy.deepcopy(monitors), namespace=desk.ns)
        ex = ExampleDesk(desk, prometheus)
        wait_for(
            lambda: not any("not evaluated" in p for p in desk_at_rest(ex.monitors(), desk.incidents())),
            timeout=90,
            what="every monitor evaluated",
        )
        assert desk_at_rest(ex.monitors(), desk.incidents()) == []  # the desk starts at rest
        yield ex
    finally:
        stop.set()
        prometheus.server.stop()


@pytest.fixture
def desk_of_real_pods(kube, namespace, operator, strategy_image) -> Desk:
    return Desk(kube, namespace)


def _new_incidents(ex: ExampleDesk) -> list[dict[str, Any]]:
    return ex.desk.incidents()


def _names(incidents: list[dict[str, Any]]) -> list[str]:
    return [
        f"{i['metadata']['name']} {i['spec']['class']} {i['spec']['severity']}: {i['spec']['summary']}"
        for i in incidents
    ]


def _halted_monitors_quiet(ex: ExampleDesk, shorts: tuple[str, ...]) -> None:
    """Wait until the fast monitors have each been evaluated with the pods stopped (stale, and
    expected): from then on, a StaleData incident would already be there."""
    wait_for(
        lambda: all((ex.monitor(s).get("status") or {}).get("staleExpected") is True for s in shorts),
        timeout=90,
        what=f"{', '.join(shorts)} evaluated while halted",
    )


def test_broker_outage_drill_kills_and_says_what_the_resume_needs(example_desk, cluster):
    out = " ".join(example_desk.drill("broker-outage", cluster.kubeconfig).split())
    assert "fault broker on" in out and "finding: monitor mean-revert-infra-healthcheck breaching" in out, out
    assert "BrokerOutage P0" in out and "action: kill-switch: HALTED, acknowledged by the strategy: True" in out, out
    assert "triage (Broker outage)" in out and "stratops runbook show" in out, out
    assert "still needed" in out and "stratops reconcile mean-revert" in out and "stratops resume mean-revert" in out, (
        out
    )
    _halted_monitors_quiet(example_desk, ("data-bar-age", "model-signal-latency"))
    incidents = _new_incidents(example_desk)
    # the healthcheck's P0; slow orders may also breach the order-latency monitor (P1) first
    assert {i["spec"]["class"] for i in incidents} == {"BrokerOutage"}, _names(incidents)
    assert f"{NAME}-infra-healthcheck" in {i["spec"]["monitor"] for i in incidents}, _names(incidents)
    ks = example_desk.desk.status()["killSwitch"]
    assert ks["latched"] and ks["acknowledged"] is True and ks["completedAt"]


def test_pnl_band_drill_breaches_a_drill_copy_and_kills(example_desk, cluster):
    out = " ".join(example_desk.drill("pnl-band", cluster.kubeconfig).split())
    assert "drill monitor mean-revert-drill-pnl-band" in out and "fault pnl on" in out, out
    assert "finding: monitor mean-revert-drill-pnl-band breaching" in out and "PnLDivergence P0" in out, out
    assert "action: kill-switch" in out and "drill monitor mean-revert-drill-pnl-band deleted" in out, out
    _halted_monitors_quiet(example_desk, ("data-bar-age", "infra-order-latency"))
    [incident] = _new_incidents(example_desk)  # and none from the halted strategy's missing data
    assert incident["spec"]["class"] == "PnLDivergence" and incident["spec"]["monitor"] == f"{NAME}-drill-pnl-band"
    names = {m["metadata"]["name"] for m in example_desk.monitors()}
    assert f"{NAME}-drill-pnl-band" not in names and len(names) == 12


def test_feature_drift_drill_throttles_and_mends_the_fault(example_desk, cluster):
    out = " ".join(example_desk.drill("feature-drift", cluster.kubeconfig).split())
    assert "drill monitor at rest: 0 of the top 5 changed" in out, out  # green before the fault
    assert "finding: monitor mean-revert-drill-feature-drift breaching: 2 of the top 5 changed" in out, out
    assert "FeatureDrift P1" in out, out
    assert (
        "action: throttle: trading REDUCING with lowered limits" in out
        and "fault cleared in the running strategy" in out
    ), out
    incidents = _new_incidents(example_desk)
    assert [i["spec"]["class"] for i in incidents] == ["FeatureDrift"], _names(incidents)
    assert example_desk.desk.control()["tradingState"] == "REDUCING"
    # mended: the strategy exports its old importances again (the next scrape shows it)
    top = f'topk(5, stratops_strategy_feature_importance{{strategy="{NAME}"}})'
    wait_for(
        lambda: (
            {r["metric"]["feature"] for r in example_desk.prometheus.server.series(top)}
            == {"zscore", "spread", "momentum", "volume", "volatility"}
        ),
        timeout=30,
        what="the old top five",
    )


def test_stale_data_drill_kills_on_the_desks_own_bar_age_monitor(example_desk, cluster):
    out = " ".join(example_desk.drill("stale-data", cluster.kubeconfig).split())
    assert "fault stale on" in out and "finding: monitor mean-revert-data-bar-age breaching" in out, out
    assert "StaleData P0" in out and "action: kill-switch" in out, out
    _halted_monitors_quiet(example_desk, ("data-bar-age", "infra-order-latency"))
    incidents = _new_incidents(example_desk)
    # no bars also means no order or signal latencies: those monitors find no data first (P1)
    assert {i["spec"]["class"] for i in incidents} == {"StaleData"}, _names(incidents)
    [p0] = [i for i in incidents if i["spec"]["severity"] == "P0"]
    assert p0["spec"]["monitor"] == f"{NAME}-data-bar-age", _names(incidents)


def test_bad_rollout_drill_needs_the_daily_gate_then_rolls_back_and_puts_the_version_back(example_desk, cluster):
    desk = example_desk.desk
    res = CliRunner().invoke(
        app, ["drill", "bad-rollout", "-n", desk.ns], env={"KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200"}
    )
    out = " ".join(res.output.split())
    assert res.exit_code == 1 and "a new version is held while the daily gate fx-daily is Incomplete" in out, out
    assert "nothing was changed" in out and desk.strategy()["spec"]["version"] == "1.4.2"
    gate = desk.custom.get_namespaced_custom_object(GROUP, VERSION, desk.ns, "gates", "fx-daily")
    signed = desk.sign(gate, by=("alice", "bob"))
    desk.custom.patch_namespaced_custom_object(
        GROUP, VERSION, desk.ns, "gates", "fx-daily", {"spec": {"signatures": signed["spec"]["signatures"]}}
    )
    wait_for(
        lambda: (
            (
                desk.custom.get_namespaced_custom_object(GROUP, VERSION, desk.ns, "gates", "fx-daily").get("status")
                or {}
            ).get("state")
            == "Complete"
        ),
        timeout=30,
        what="fx-daily signed",
    )
    out = " ".join(example_desk.drill("bad-rollout", cluster.kubeconfig).split())
    assert "spec.version crash-1.4.4 (last known-good 1.4.2)" in out, out
    assert "action: rollback: running 1.4.2 again" in out and "spec.version back to 1.4.2" in out, out
    incidents = _new_incidents(example_desk)
    [rollback] = [i for i in incidents if i["spec"]["class"] == "ConfigDrift"]
    assert rollback["spec"]["action"] == "rollback" and "crash-1.4.4" in rollback["spec"]["summary"]
    # A Recreate rollout stops the old pod before the new one runs: the monitors can find no data
    # in that gap (issue 19, warm handover); nothing else may open.
    assert {i["spec"]["class"] for i in incidents} <= {"ConfigDrift", "StaleData"}, _names(incidents)
    s = example_desk.desk.wait_status(
        lambda s: (
            s.get("activeVersion") == "1.4.2"
            and any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions") or [])
        ),
        "1.4.2 running again",
    )
    assert any(b["version"] == "crash-1.4.4" for b in s.get("blockedVersions") or [])
