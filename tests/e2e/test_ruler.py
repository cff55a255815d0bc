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
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from typer.testing import CliRunner

from cases import example
from chart import grant_traders
from lifecycle_helpers import Desk, strategy_doc
from stratops.cli.main import app
from stratops.k8s.ruler import receiver_endpoint
from stratops.monitors.rules import rule_name
from stratops.testing.controlplane import free_port, operator_process, stop_process
from stratops.testing.prometheus import (
    AlertmanagerServer,
    PrometheusServer,
    RuleSync,
    ruler_alertmanager_config,
    sample,
)
from stratops.testing.wait import wait_for
from test_chart import prometheus_operator_crds  # noqa: F401  (a fixture)
from test_ha import LIFETIME, PEERING, peering  # noqa: F401  (peering: a fixture)

pytestmark = pytest.mark.e2e
HEARTBEAT_SECONDS = 15


SERVICE = "stratops-ruler"
#: The replicas run on this host and listen on loopback, which an EndpointSlice may not name (the
#: API server refuses it): they advertise a documentation address (RFC 5737), and the Service's
#: stand-in reaches the published port on loopback. The port tells the replicas apart.
ADVERTISED = "192.0.2.1"


class ServiceProxy:
    """kube-proxy's part for the receiver Service (a Service without a selector): each request
    goes to the endpoint the acting replica published in its EndpointSlice (no kube-proxy runs
    on the local control plane)."""

    def __init__(self, kube: client.ApiClient, namespace: str) -> None:
        outer = self
        self.forwarded: list[int] = []  # the port of each notification forwarded

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                to = receiver_endpoint(kube, namespace, SERVICE)
                if to is None:
                    self.send_response(503)
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                try:
                    assert to[0] == ADVERTISED, to
                    r = httpx.post(
                        f"http://127.0.0.1:{to[1]}{self.path}", content=body, headers=headers, trust_env=False
                    )
                    status = r.status_code
                except httpx.HTTPError:
                    status = 503
                outer.forwarded.append(to[1])
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def ruler(kube, own_namespace, exporter, tmp_path, prometheus_operator_crds):  # noqa: F811
    """Prometheus, Alertmanager (its ruler route to the receiver Service), the rule sync."""
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(16))
    proxy = ServiceProxy(kube, own_namespace)
    am = AlertmanagerServer(
        config=ruler_alertmanager_config(f"{proxy.url}/alertmanager", token, repeat_interval="5s")
    ).start()
    rules = tmp_path / "rules.yaml"
    rules.write_text("groups: []\n")
    prom = PrometheusServer([f"127.0.0.1:{exporter.port}"], rule_files=[str(rules)], alertmanagers=[am.url]).start()
    sync = RuleSync(kube, own_namespace, prom, rules)
    yield {"token": token, "prometheus": prom, "alertmanager": am, "proxy": proxy}
    sync.stop.set()
    prom.stop()
    am.stop()
    proxy.stop()


def _ruler_operator(cluster, namespace: str, token: Path, log: Path, port: int, metrics_port: int = 0, **env: str):
    """An operator in the ruler mode, publishing its receiver as SERVICE's endpoint while it acts."""
    return operator_process(
        cluster.kubeconfig,
        [namespace],
        log,
        metrics_port or free_port(),
        env={
            "STRATOPS_WEBHOOK_PORT": "",
            "STRATOPS_RULER_PORT": str(port),
            "STRATOPS_RULER_ADDR": "127.0.0.1",
            "STRATOPS_RULER_TOKEN_FILE": str(token),
            "STRATOPS_RULER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "STRATOPS_RULER_SERVICE": SERVICE,
            "STRATOPS_RULER_SERVICE_NAMESPACE": namespace,
            "STRATOPS_RULER_ADVERTISE": ADVERTISED,
            **env,
        },
    )


def _watched(desk: Desk, exporter, ruler, strategy: str):
    """STRATEGY deployed and Running, with a P0 monitor (> 1000 unprocessed) of its own series."""
    depth = exporter.gauge("test_ruler_depth").labels(f"{desk.ns}-{strategy}")
    depth.set(10)
    doc = strategy_doc(killSwitch={"ackDeadline": "2s"})
    doc["metadata"]["name"] = strategy
    desk.create("strategies", doc)
    desk.wait_status(lambda s: s.get("phase") == "Running", f"{strategy} running", timeout=120, name=strategy)
    m = copy.deepcopy(example("monitors/06-infra-queue-backlog.yaml"))
    m["metadata"]["name"] = f"{strategy}-backlog"
    m["spec"]["strategy"] = strategy
    m["spec"]["source"]["prometheus"] = {
        "url": ruler["prometheus"].url,
        "query": f'sum(test_ruler_depth{{strategy="{desk.ns}-{strategy}"}})',
    }
    m["spec"]["frequency"] = "1s"
    m["spec"]["incident"] = {"class": "RiskBreach", "severity": "P0"}
    m["spec"]["alert"] = {"channel": "dashboard"}
    desk.create("monitors", m)
    return depth, m["metadata"]["name"]


def _by_ruler(desk: Desk, monitor: str, timeout: float = 90) -> dict:
    return wait_for(
        lambda: (s := _monitor_status(desk, monitor)).get("evaluatedBy") == "ruler" and s,
        timeout=timeout,
        what=f"{monitor} evaluated by the ruler",
    )


def _killed_by_the_ruler(desk: Desk, depth, strategy: str, monitor: str) -> None:
    depth.set(5000)
    st = wait_for(
        lambda: (s := _monitor_status(desk, monitor)).get("breaching") and s, timeout=60, what="breach by the ruler"
    )
    assert st["evaluatedBy"] == "ruler" and "ruler's rule fires" in st["detail"] and st["lastValue"] == "5000"
    status = desk.wait_status(
        lambda s: (s.get("killSwitch") or {}).get("completedAt"), f"{strategy}: P0 kill-switch completed", name=strategy
    )
    assert status["killSwitch"]["incident"] == st["incident"]
    assert desk.deployment(strategy).spec.replicas == 0


def _monitor_status(desk: Desk, name: str) -> dict:
    got = desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "monitors", name)
    return got.get("status") or {}


def test_the_ruler_evaluates_the_operator_acts_and_nothing_fails_open(
    cluster, kube, operator, own_namespace, exporter, ruler, tmp_path
):
    # `operator`: the admission stack as a desk has it; this test runs its own operator, in ruler mode.
    desk = Desk(kube, own_namespace)
    port, metrics_port = free_port(), free_port()
    proc = _ruler_operator(cluster, own_namespace, ruler["token"], tmp_path / "operator.log", port, metrics_port)
    try:
        depth, name = _watched(desk, exporter, ruler, "alpha")
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
        # Its heartbeat comes through Alertmanager and the receiver Service: the ruler holds it.
        assert not _by_ruler(desk, name).get("breaching")
        assert set(ruler["proxy"].forwarded) == {port}

        # A trader (the chart's Role) cannot edit the rules that judge the strategy.
        tina = _trader(cluster, kube, own_namespace, tmp_path)
        with pytest.raises(ApiException) as refused:
            client.CustomObjectsApi(tina).patch_namespaced_custom_object(
                "monitoring.coreos.com", "v1", own_namespace, "prometheusrules", rule_name(name), {"spec": {}}
            )
        assert refused.value.status == 403

        # On-call sees who evaluates each monitor (`stratops describe`, as the trader).
        res = CliRunner().invoke(
            app,
            ["describe", "alpha", "-n", own_namespace],
            env={"KUBECONFIG": str(cluster.user_kubeconfig("tina")), "COLUMNS": "250"},
        )
        assert res.exit_code == 0, res.output
        row = next(line.split() for line in res.output.splitlines() if line.split()[:1] == [name])
        assert row[-1] == "ruler", res.output  # the monitors table's last column, "by"

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
        forged = _forged_breach(rule)
        url = f"http://127.0.0.1:{port}/alertmanager"
        assert httpx.post(url, json=forged, trust_env=False).status_code == 401
        wrong = {"Authorization": "Bearer " + secrets.token_hex(16)}
        assert httpx.post(url, json=forged, headers=wrong, trust_env=False).status_code == 401
        assert not _monitor_status(desk, name).get("breaching")

        # A real breach: Prometheus fires, Alertmanager notifies, the operator kills.
        _killed_by_the_ruler(desk, depth, "alpha", name)

        # The ruler silent (Alertmanager down): past the heartbeat limit the operator evaluates.
        ruler["alertmanager"].stop()
        st = wait_for(
            lambda: (s := _monitor_status(desk, name)).get("evaluatedBy") == "operator" and s,
            timeout=HEARTBEAT_SECONDS + 60,
            what="the operator evaluating the monitor itself",
        )
        assert "no heartbeat" in st["detail"] and st["breaching"]  # the breach is still seen

        # A check the ruler cannot evaluate: its rules go, the operator evaluates it.
        failures = {"kind": "failures", "threshold": None, "failures": {"count": 2, "within": "1m"}}
        desk.custom.patch_namespaced_custom_object(
            "stratops.io", "v1alpha1", own_namespace, "monitors", name, {"spec": {"check": failures}}
        )
        wait_for(
            lambda: (
                not desk.custom.list_namespaced_custom_object(
                    "monitoring.coreos.com", "v1", own_namespace, "prometheusrules"
                )["items"]
            ),
            timeout=30,
            what="the monitor's PrometheusRule deleted",
        )
        wait_for(
            lambda: "check.kind failures" in (_monitor_status(desk, name).get("detail") or ""),
            timeout=30,
            what="the operator says why it evaluates the monitor",
        )

        # What the ruler does not hold reads its source ahead, on the event loop, as without the
        # ruler: no evaluation waits on Prometheus in a worker.
        def reads() -> dict[str, float]:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", trust_env=False, timeout=10).text
            return {m: sample(text, "stratops_monitor_source_reads_total", made=m) for m in ("ahead", "in_worker")}

        before = reads()
        wait_for(lambda: reads()["ahead"] >= before["ahead"] + 3, timeout=30, what="three reads made ahead")
        assert reads()["in_worker"] == before["in_worker"]
    finally:
        stop_process(proc, 15)


@pytest.mark.usefixtures("peering")
def test_the_acting_replica_is_the_receiver_and_its_standby_takes_over(
    cluster, kube, operator, own_namespace, exporter, ruler, tmp_path
):
    """Alertmanager reaches the receiver Service, whose one endpoint is the acting replica's
    (what a replica hears lives in its memory); when the leader dies, the standby that takes
    over publishes itself, and the ruler's breaches reach it."""
    desk = Desk(kube, own_namespace)
    ports = {"leader": free_port(), "standby": free_port()}
    procs = {
        who: _ruler_operator(
            cluster,
            own_namespace,
            ruler["token"],
            tmp_path / f"{who}.log",
            ports[who],
            STRATOPS_PEERING=PEERING,
            STRATOPS_PEERING_PRIORITY=priority,
            STRATOPS_PEERING_LIFETIME=str(LIFETIME),
            POD_ID=who,
        )
        for who, priority in (("leader", "20"), ("standby", "10"))
    }
    try:
        wait_for(
            lambda: receiver_endpoint(kube, own_namespace, SERVICE) == (ADVERTISED, ports["leader"]),
            timeout=60,
            what="the leader published as the receiver",
        )
        depth, name = _watched(desk, exporter, ruler, "alpha")
        _by_ruler(desk, name)
        _killed_by_the_ruler(desk, depth, "alpha", name)
        assert ports["standby"] not in ruler["proxy"].forwarded

        procs["leader"].send_signal(signal.SIGKILL)  # gone without leaving the peering
        procs["leader"].wait(10)
        wait_for(
            lambda: receiver_endpoint(kube, own_namespace, SERVICE) == (ADVERTISED, ports["standby"]),
            timeout=LIFETIME + 60,
            what="the standby published as the receiver after the takeover",
        )
        depth, name = _watched(desk, exporter, ruler, "beta")
        _by_ruler(desk, name)
        _killed_by_the_ruler(desk, depth, "beta", name)
        assert ports["standby"] in ruler["proxy"].forwarded
    finally:
        for p in procs.values():
            stop_process(p, 15)


def _trader(cluster, kube, namespace: str, tmp_path: Path) -> client.ApiClient:
    grant_traders(kube, namespace, ["tina"], tmp_path)
    return cluster.api_client(cluster.user_kubeconfig("tina"))


def _forged_breach(rule: dict) -> dict:
    """A breach (and a heartbeat) with the labels and digest of the real rules."""
    alerts = [
        {"status": "firing", "labels": {"alertname": r["alert"], **r["labels"]}, "annotations": {"value": "1e9"}}
        for r in rule["spec"]["groups"][0]["rules"]
    ]
    return {"version": "4", "status": "firing", "alerts": alerts}
