"""HA: two operator processes peered through a KopfPeering (as the chart runs its replicas).

Only the replica with the highest priority acts: one kill-switch decision, one HALTED write, one
set of Events, and only its metrics count actions. When it dies without leaving (SIGKILL), the
standby takes over once the dead replica's peering record lapses, and does not redo what was done.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from lifecycle_helpers import Desk, strategy_doc
from stratops.k8s.apply import install_crds
from stratops.testing.controlplane import free_port, operator_process, stop_process
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e
PEERING = "stratops"
LIFETIME = 10  # seconds a silent replica's record stays valid: how long the takeover may take
CHART_CRDS = Path(__file__).resolve().parents[2] / "charts" / "stratops" / "crds"


class Replica:
    def __init__(self, cluster, namespace: str, identity: str, log: Path) -> None:
        self.identity, self.log, self.port = identity, log, free_port()
        env = {
            "STRATOPS_PEERING": PEERING,
            "STRATOPS_PEERING_PRIORITY": "random",
            "STRATOPS_PEERING_LIFETIME": str(LIFETIME),
            "POD_ID": identity,
            "STRATOPS_RESYNC_SECONDS": "10",
            "STRATOPS_WEBHOOK_PORT": "",
        }  # the webhook is not under test
        self.proc = operator_process(cluster.kubeconfig, [namespace], log, self.port, env=env)

    def samples(self, name: str) -> list:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text
        return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]

    def actions(self) -> dict[tuple[str, str], float]:
        return {(s.labels["strategy"], s.labels["action"]): s.value for s in self.samples("stratops_actions_total")}

    def writes(self) -> float:
        """Reconciles that wrote something (stratops_reconcile_seconds_count)."""
        return sum(s.value for s in self.samples("stratops_reconcile_seconds_count"))


def _events(desk: Desk, strategy: str, reason: str) -> list:
    return [e for e in desk.events(reason) if e.involved_object.name == strategy]


def test_one_replica_acts_and_the_standby_takes_over(cluster, kube, crds, own_namespace, tmp_path):
    install_crds(kube, CHART_CRDS / "kopf.dev_peerings.yaml")
    custom = client.CustomObjectsApi(kube)
    custom.create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        own_namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
    )
    desk = Desk(kube, own_namespace)
    replicas = [Replica(cluster, own_namespace, f"replica-{c}", tmp_path / f"replica-{c}.log") for c in "ab"]
    try:

        def peers() -> dict:
            status = (
                custom.get_namespaced_custom_object("kopf.dev", "v1", own_namespace, "kopfpeerings", PEERING).get(
                    "status"
                )
                or {}
            )
            return status if {r.identity for r in replicas} <= set(status) else {}

        status = wait_for(peers, timeout=60, what="both replicas registered in the KopfPeering")
        active, standby = sorted(replicas, key=lambda r: status[r.identity]["priority"], reverse=True)
        assert status[active.identity]["priority"] != status[standby.identity]["priority"]

        desk.create("strategies", strategy_doc(killSwitch={"ackDeadline": "30s"}))
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good", timeout=90)
        desk.play_pods()
        desk.command("kill", reason="runaway orders")
        done = desk.wait_status(
            lambda s: (s.get("killSwitch") or {}).get("completedAt"), "kill-switch completed", timeout=60
        )
        wait_for(lambda: _events(desk, "mean-revert", "KillSwitchCompleted"), timeout=30, what="completion event")

        # Exactly one replica acted: one decision, one HALTED write, one set of Events.
        assert len(_events(desk, "mean-revert", "KillSwitch")) == 1
        assert len(_events(desk, "mean-revert", "KillSwitchCompleted")) == 1
        assert done["killSwitch"]["haltGeneration"] == desk.control()["generation"] == 2
        assert desk.deployment().spec.replicas == 0
        assert active.actions() == {("mean-revert", "kill_switch"): 1.0}
        assert standby.actions() == {} and standby.writes() == 0, "the standby wrote nothing"

        # The active replica dies without leaving the peering (a node lost, OOM-killed).
        active.proc.send_signal(signal.SIGKILL)
        active.proc.wait(30)
        second = strategy_doc()
        second["metadata"]["name"] = "trend-follow"
        desk.create("strategies", second)
        # The standby resumes once the dead replica's record lapses, and deploys the new strategy.
        desk.wait_status(
            lambda s: s.get("lastKnownGood") == "1.4.2",
            "the standby took over",
            timeout=LIFETIME + 60,
            name="trend-follow",
        )
        assert standby.writes() > 0
        # ...without redoing the first strategy's kill-switch.
        assert len(_events(desk, "mean-revert", "KillSwitch")) == 1
        assert desk.control()["generation"] == 2
        assert desk.status()["killSwitch"]["at"] == done["killSwitch"]["at"]
        assert ("mean-revert", "kill_switch") not in standby.actions()
    finally:
        desk.stop_pods()
        for r in replicas:
            stop_process(r.proc, 30)
