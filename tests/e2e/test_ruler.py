"""The Prometheus-ruler mode (issue 21), end to end with a real Prometheus and a real
Alertmanager: the operator writes a monitor's rules as a PrometheusRule, Prometheus evaluates
them, Alertmanager's webhook brings their alerts to the operator, which acts on a breach as on
its own evaluation (incident, kill-switch). A notification without the bearer token changes
nothing; without a heartbeat from the ruler the operator evaluates the monitor itself.

prometheus-operator itself is not run (it manages Prometheus pods, and KWOK's pods run nothing):
the test copies the PrometheusRules into Prometheus's rule file and reloads it, as
prometheus-operator's reloader does."""

from __future__ import annotations

import copy
import secrets
import threading
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cases import example
from chart import grant_traders
from lifecycle_helpers import Desk, strategy_doc
from stratops.monitors.rules import rule_name
from stratops.testing.controlplane import free_port, operator_process, stop_process
from stratops.testing.prometheus import AlertmanagerServer, PrometheusServer
from stratops.testing.wait import wait_for
from test_chart import prometheus_operator_crds  # noqa: F401  (a fixture)

pytestmark = pytest.mark.e2e
HEARTBEAT_SECONDS = 15


class RuleSync:
    """prometheus-operator's part: the namespace's PrometheusRules into the rule file, reloaded."""

    def __init__(self, kube: client.ApiClient, namespace: str, prometheus: PrometheusServer, path: Path) -> None:
        self.custom, self.ns, self.prometheus, self.path = client.CustomObjectsApi(kube), namespace, prometheus, path
        self.stop, self.written = threading.Event(), ""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                items = self.custom.list_namespaced_custom_object(
                    "monitoring.coreos.com", "v1", self.ns, "prometheusrules"
                )["items"]
                text = yaml.safe_dump({"groups": [g for i in items for g in i["spec"].get("groups", [])]})
                if text != self.written:
                    self.path.write_text(text)
                    self.prometheus.reload()
                    self.written = text
            except Exception:  # the next round tries again; the test's waits say what never came
                continue


@pytest.fixture
def ruler(kube, own_namespace, exporter, tmp_path, prometheus_operator_crds):  # noqa: F811
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(16))
    port = free_port()
    am = AlertmanagerServer(
        config={
            "route": {
                "receiver": "null",
                "routes": [
                    {
                        # The route the README gives: the ruler's alerts go to the operator only.
                        "matchers": ['stratops_ruler="true"'],
                        "receiver": "stratops",
                        "group_by": ["stratops_namespace", "stratops_monitor"],
                        "group_wait": "0s",
                        "group_interval": "1s",
                        "repeat_interval": "5s",
                    }
                ],
            },
            "receivers": [
                {"name": "null"},
                {
                    "name": "stratops",
                    "webhook_configs": [
                        {
                            "url": f"http://127.0.0.1:{port}/alertmanager",
                            "send_resolved": True,
                            "http_config": {"authorization": {"credentials_file": str(token)}},
                        }
                    ],
                },
            ],
        }
    ).start()
    rules = tmp_path / "rules.yaml"
    rules.write_text("groups: []\n")
    prom = PrometheusServer([f"127.0.0.1:{exporter.port}"], rule_files=[str(rules)], alertmanagers=[am.url]).start()
    sync = RuleSync(kube, own_namespace, prom, rules)
    yield {"port": port, "token": token, "prometheus": prom, "alertmanager": am}
    sync.stop.set()
    prom.stop()
    am.stop()


def _monitor_status(desk: Desk, name: str) -> dict:
    got = desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "monitors", name)
    return got.get("status") or {}


def test_the_ruler_evaluates_the_operator_acts_and_nothing_fails_open(
    cluster, kube, operator, own_namespace, exporter, ruler, tmp_path
):
    # `operator`: the admission stack as a desk has it; this test runs its own operator, in ruler mode.
    desk = Desk(kube, own_namespace)
    depth = exporter.gauge("test_ruler_depth").labels(own_namespace)
    depth.set(10)
    log = tmp_path / "operator.log"
    proc = operator_process(
        cluster.kubeconfig,
        [own_namespace],
        log,
        free_port(),
        env={
            "STRATOPS_WEBHOOK_PORT": "",
            "STRATOPS_RULER_PORT": str(ruler["port"]),
            "STRATOPS_RULER_ADDR": "127.0.0.1",
            "STRATOPS_RULER_TOKEN_FILE": str(ruler["token"]),
            "STRATOPS_RULER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        },
    )
    try:
        desk.create("strategies", strategy_doc(killSwitch={"ackDeadline": "2s"}))
        desk.wait_status(lambda s: s.get("phase") == "Running", "running", timeout=120)
        m = copy.deepcopy(example("monitors/06-infra-queue-backlog.yaml"))  # > 1000 unprocessed
        m["spec"]["source"]["prometheus"] = {
            "url": ruler["prometheus"].url,
            "query": f'sum(test_ruler_depth{{strategy="{own_namespace}"}})',
        }
        m["spec"]["frequency"] = "1s"
        m["spec"]["incident"] = {"class": "RiskBreach", "severity": "P0"}
        m["spec"]["alert"] = {"channel": "dashboard"}
        name = m["metadata"]["name"]
        desk.create("monitors", m)

        # The operator writes the monitor's rules, owned by the Monitor; Prometheus loads them.
        rule = wait_for(
            lambda: desk.custom.get_namespaced_custom_object(
                "monitoring.coreos.com", "v1", own_namespace, "prometheusrules", rule_name(name)
            ),
            timeout=60,
            what="the monitor's PrometheusRule",
        )
        assert rule["metadata"]["ownerReferences"][0]["name"] == name
        wait_for(
            lambda: any(g["name"] == f"stratops/{own_namespace}/{name}" for g in ruler["prometheus"].rule_groups()),
            timeout=60,
            what="Prometheus has loaded the monitor's rule group",
        )
        # Its heartbeat comes through Alertmanager: the ruler holds the monitor.
        st = wait_for(
            lambda: (s := _monitor_status(desk, name)).get("evaluatedBy") == "ruler" and s,
            timeout=90,
            what="the monitor evaluated by the ruler",
        )
        assert not st.get("breaching")

        # A trader (the chart's Role) cannot edit the rules that judge the strategy.
        tina = _trader(cluster, kube, own_namespace, tmp_path)
        with pytest.raises(ApiException) as refused:
            client.CustomObjectsApi(tina).patch_namespaced_custom_object(
                "monitoring.coreos.com", "v1", own_namespace, "prometheusrules", rule_name(name), {"spec": {}}
            )
        assert refused.value.status == 403

        # An edit that would weaken the check (as whoever may write PrometheusRules could) is undone.
        weakened = copy.deepcopy(rule["spec"])
        weakened["groups"][0]["rules"][0]["expr"] = "vector(0) > 1"
        desk.custom.patch_namespaced_custom_object(
            "monitoring.coreos.com", "v1", own_namespace, "prometheusrules", rule_name(name), {"spec": weakened}
        )
        wait_for(
            lambda: (
                desk.custom.get_namespaced_custom_object(
                    "monitoring.coreos.com", "v1", own_namespace, "prometheusrules", rule_name(name)
                )["spec"]
                == rule["spec"]
            ),
            timeout=30,
            what="the monitor's rules written again after the edit",
        )

        # A forged notification (no token, a wrong one) is refused and changes nothing.
        forged = _forged_breach(own_namespace, name, rule)
        url = f"http://127.0.0.1:{ruler['port']}/alertmanager"
        assert httpx.post(url, json=forged, trust_env=False).status_code == 401
        wrong = {"Authorization": "Bearer " + secrets.token_hex(16)}
        assert httpx.post(url, json=forged, headers=wrong, trust_env=False).status_code == 401
        assert not _monitor_status(desk, name).get("breaching")

        # A real breach: Prometheus fires, Alertmanager notifies, the operator kills.
        depth.set(5000)
        st = wait_for(
            lambda: (s := _monitor_status(desk, name)).get("breaching") and s, timeout=60, what="breach by the ruler"
        )
        assert st["evaluatedBy"] == "ruler" and "ruler's rule fires" in st["detail"] and st["lastValue"] == "5000"
        status = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "P0 kill-switch completed")
        assert status["killSwitch"]["incident"] == st["incident"]
        assert desk.deployment().spec.replicas == 0

        # The ruler silent (Alertmanager down): past the heartbeat limit the operator evaluates.
        ruler["alertmanager"].stop()
        st = wait_for(
            lambda: (s := _monitor_status(desk, name)).get("evaluatedBy") == "operator" and s,
            timeout=HEARTBEAT_SECONDS + 60,
            what="the operator evaluating the monitor itself",
        )
        assert "no heartbeat" in st["detail"] and st["breaching"]  # the breach is still seen
    finally:
        stop_process(proc, 15)


def _trader(cluster, kube, namespace: str, tmp_path: Path) -> client.ApiClient:
    grant_traders(kube, namespace, ["tina"], tmp_path)
    return cluster.api_client(cluster.user_kubeconfig("tina"))


def _forged_breach(namespace: str, name: str, rule: dict) -> dict:
    """A breach (and a heartbeat) with the labels and digest of the real rules."""
    alerts = [
        {"status": "firing", "labels": {"alertname": r["alert"], **r["labels"]}, "annotations": {"value": "1e9"}}
        for r in rule["spec"]["groups"][0]["rules"]
    ]
    return {"version": "4", "status": "firing", "alerts": alerts}
