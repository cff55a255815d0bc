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
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from lifecycle_helpers import Desk, strategy_doc
from stratops import GROUP, VERSION
from stratops.k8s.apply import install_crds
from stratops.testing.controlplane import free_port, operator_process, stop_process
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e
PEERING = "stratops"
LIFETIME = 10  # seconds a silent replica's record stays valid: how long the takeover may take
CHART_CRDS = Path(__file__).resolve().parents[2] / "charts" / "stratops" / "crds"


class Replica:
    def __init__(self, cluster, namespace: str, identity: str, log: Path, priority: str = "random") -> None:
        self.identity, self.log, self.port = identity, log, free_port()
        env = {
            "STRATOPS_PEERING": PEERING,
            "STRATOPS_PEERING_PRIORITY": priority,
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


def _control_writes(replicas: list[Replica]) -> str:
    """Every control document write, replica by replica, and every warning: what a failure needs."""
    lines = [
        f"{r.identity}: {line}"
        for r in replicas
        for line in r.log.read_text().splitlines()
        if "control document" in line or "WARNING" in line or "ERROR" in line
    ]
    return "\n".join(lines)


def _events(desk: Desk, strategy: str, reason: str) -> list:
    return [e for e in desk.events(reason) if e.involved_object.name == strategy]


@pytest.fixture
def peering(kube, crds, own_namespace) -> None:
    install_crds(kube, CHART_CRDS / "kopf.dev_peerings.yaml")
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        own_namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}},
    )


def test_one_replica_acts_and_the_standby_takes_over(cluster, kube, peering, own_namespace, tmp_path):
    custom = client.CustomObjectsApi(kube)
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
        assert desk.control()["generation"] == 2, _control_writes(replicas)
        assert desk.status()["killSwitch"]["at"] == done["killSwitch"]["at"]
        assert ("mean-revert", "kill_switch") not in standby.actions()
    finally:
        desk.stop_pods()
        for r in replicas:
            stop_process(r.proc, 30)


def test_a_replica_resumed_after_a_pause_acts_on_the_desk_as_it_is_now(cluster, kube, peering, own_namespace, tmp_path):
    """A replica paused while another acted (a higher-priority peer joined) resumes when that
    peer dies. What changed meanwhile is in no event it will see: a Gate deleted meanwhile must
    not still count as signed (kopf kept it in its index for good, and the promotion went live)."""
    from cases import example

    desk = Desk(kube, own_namespace)
    first = Replica(cluster, own_namespace, "replica-a", tmp_path / "replica-a.log", priority="10")
    later = None
    try:
        doc = strategy_doc()
        # Without the chart's admission policies here: the authors they would record.
        doc["metadata"]["annotations"] = {f"{GROUP}/trading-author": "admin", f"{GROUP}/mode-author": "admin"}
        desk.create("gates", desk.sign(example("gates/daily.yaml")))
        gate = desk.sign(example("gates/pre-launch.yaml"), doc["spec"])
        desk.create("gates", gate)
        desk.create("strategies", doc)
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good on paper", timeout=90)
        gates = client.CustomObjectsApi(kube)
        gate_name = gate["metadata"]["name"]

        def gate_state() -> str | None:
            g = gates.get_namespaced_custom_object(GROUP, VERSION, own_namespace, "gates", gate_name)
            return (g.get("status") or {}).get("state")

        wait_for(lambda: gate_state() == "Complete", timeout=30, what="the signed gate seen by the first replica")

        # A replica with a higher priority joins: the first one pauses, and the new one acts.
        later = Replica(cluster, own_namespace, "replica-c", tmp_path / "replica-c.log", priority="20")
        wait_for(lambda: "Pausing operations" in first.log.read_text(), timeout=60, what="the first replica paused")
        # Meanwhile the pre-launch approval is withdrawn: the Gate is deleted.
        gates.delete_namespaced_custom_object(GROUP, VERSION, own_namespace, "gates", gate_name)

        def gate_gone() -> bool:
            try:
                gates.get_namespaced_custom_object(GROUP, VERSION, own_namespace, "gates", gate_name)
            except ApiException as e:
                return e.status == 404
            return False

        wait_for(gate_gone, timeout=30, what="the gate deleted")
        # The acting replica dies; the first one resumes once its record lapses.
        later.proc.send_signal(signal.SIGKILL)
        later.proc.wait(30)
        wait_for(
            lambda: "Resuming operations" in first.log.read_text().split("Pausing operations", 1)[1],
            timeout=LIFETIME + 60,
            what="the first replica resumed",
        )
        desk.patch_spec(mode="live")
        status = desk.wait_status(
            lambda s: (
                next((c for c in s.get("conditions") or [] if c["type"] == "Promoted"), {}).get("reason")
                == "GatesIncomplete"
            ),
            "the promotion refused: its gate is gone",
            timeout=60,
        )
        promoted = next(c for c in status["conditions"] if c["type"] == "Promoted")
        assert gate_name in promoted["message"], promoted
        assert status.get("mode") != "live" and desk.control()["mode"] == "paper", _control_writes([first])
    finally:
        desk.stop_pods()
        for r in [first, later]:
            if r is not None:
                stop_process(r.proc, 30)


def _logged_at(log: Path, marker: str) -> list[float]:
    """Wall-clock times of the log lines containing MARKER (the operator logs in UTC)."""
    from datetime import UTC, datetime

    return [
        datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
        for line in log.read_text(errors="replace").splitlines()
        if marker in line and line.startswith("[")
    ]


def test_an_api_server_away_longer_than_the_lifetime_never_leaves_two_replicas_acting(
    cluster, kube, peering, own_namespace, tmp_path
):
    """Found by the soak: the API server away for longer than the peering lifetime, the standby
    took over (the leader's record had lapsed) while the leader carried on, and both wrote. The
    leader now fences itself before its record lapses, and acts again only after the standby
    has seen it alive (and paused)."""
    if cluster.control_plane is None:
        pytest.skip("restarts the local control plane's kube-apiserver")
    desk = Desk(kube, own_namespace)
    leader = Replica(cluster, own_namespace, "replica-a", tmp_path / "replica-a.log", priority="20")
    standby = None
    try:
        wait_for(lambda: _logged_at(leader.log, "Resuming operations"), timeout=60, what="the leader acting")
        standby = Replica(cluster, own_namespace, "replica-b", tmp_path / "replica-b.log", priority="10")
        peers = client.CustomObjectsApi(kube)
        wait_for(
            lambda: (
                "replica-b"
                in (
                    peers.get_namespaced_custom_object("kopf.dev", "v1", own_namespace, "kopfpeerings", PEERING).get(
                        "status"
                    )
                    or {}
                )
            ),
            timeout=60,
            what="the standby registered",
        )
        desk.create("strategies", strategy_doc())
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good", timeout=90)
        assert not _logged_at(standby.log, "Resuming operations"), "the standby waited"
        cluster.control_plane.restart("kube-apiserver", down_for=LIFETIME + 4)
        wait_for(
            lambda: _logged_at(leader.log, "fence lifted"), timeout=LIFETIME * 3 + 30, what="the leader acting again"
        )
        [fenced] = _logged_at(leader.log, "] fenced: ")
        [lifted] = _logged_at(leader.log, "fence lifted")
        resumed = _logged_at(standby.log, "Resuming operations")
        paused = _logged_at(standby.log, "Pausing operations")
        # The leader stopped before the standby could start, and started again only after the
        # standby had stopped: never both at once.
        assert all(fenced < t for t in resumed), (fenced, resumed)
        assert all(any(t < p < lifted for p in paused) for t in resumed), (resumed, paused, lifted)
        # ...and it acts: a kill lands.
        desk.play_pods()
        desk.command("kill", reason="after the outage")
        desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "kill-switch completed", timeout=60)
    finally:
        desk.stop_pods()
        for r in (leader, standby):
            if r is not None:
                stop_process(r.proc, 30)
