"""Restart safety: the operator SIGKILLed mid-kill-switch, mid-rollback and mid-promotion
finishes the job on restart, and does nothing twice."""

from __future__ import annotations

import signal

import pytest

from lifecycle_helpers import Desk, strategy_doc
from stratops.testing.controlplane import operator_process, stop_process
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e


class Operators:
    """The operator processes of one test, on its own namespace: start one, SIGKILL it and
    start the next; every one is stopped at the end."""

    def __init__(self, cluster, namespace: str, log) -> None:
        self.cluster, self.namespace, self.log = cluster, namespace, log
        self.procs: list = []

    def start(self):
        p = operator_process(self.cluster.kubeconfig, [self.namespace], self.log, env={"STRATOPS_RESYNC_SECONDS": "10"})
        self.procs.append(p)
        return p

    def kill(self) -> None:
        self.procs[-1].send_signal(signal.SIGKILL)
        self.procs[-1].wait(30)

    def stop(self) -> None:
        for p in self.procs:
            stop_process(p, 30)


@pytest.fixture
def operators(cluster, own_namespace, tmp_path):
    ops = Operators(cluster, own_namespace, tmp_path / "operator.log")
    yield ops
    ops.stop()


def test_operator_killed_mid_kill_switch_completes_it_on_restart(kube, crds, own_namespace, operators):
    desk = Desk(kube, own_namespace)
    operators.start()
    try:
        desk.create("strategies", strategy_doc(killSwitch={"ackDeadline": "120s"}))
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good", timeout=90)
        desk.command("kill", reason="runaway orders")
        # The operator wrote HALTED and recorded the latch; it now waits for the strategy's ack.
        before = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("haltGeneration"), "HALTED written")
        assert desk.control()["tradingState"] == "HALTED"
        assert desk.deployment().spec.replicas == 1
        operators.kill()

        desk.play_pods()  # the strategy acknowledges while no operator runs
        wait_for(
            lambda: desk.core.read_namespaced_config_map("mean-revert-ack", own_namespace).data,
            timeout=30,
            what="ack written",
        )
        operators.start()
        after = desk.wait_status(
            lambda s: (s.get("killSwitch") or {}).get("completedAt"), "kill-switch completed", timeout=90
        )
    finally:
        desk.stop_pods()
    ks_before, ks_after = before["killSwitch"], after["killSwitch"]
    assert ks_after["at"] == ks_before["at"], "the decision was not made twice"
    assert ks_after["haltGeneration"] == ks_before["haltGeneration"] == desk.control()["generation"] == 2
    assert ks_after["acknowledged"] is True
    assert desk.deployment().spec.replicas == 0 and desk.running_pods() == []
    wait_for(lambda: desk.events("KillSwitchCompleted"), timeout=30, what="completion event")  # written after status
    assert len(desk.events("KillSwitch")) == 1 and len(desk.events("KillSwitchCompleted")) == 1


def test_operator_killed_mid_rollback_finishes_it_once(kube, crds, own_namespace, operators):
    from cases import example

    desk = Desk(kube, own_namespace)
    operators.start()
    try:
        desk.create("gates", desk.sign(example("gates/daily.yaml")))
        desk.create("strategies", strategy_doc())
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good 1.4.2", timeout=90)
        desk.patch_spec(version="1.5.0")
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.5.0", "known-good 1.5.0", timeout=90)
        desk.command("rollback", reason="fills look wrong")
        # Killed the moment the Deployment goes back: the status write may or may not be done.
        wait_for(lambda: desk.version() == "1.4.2", timeout=30, interval=0.02, what="rollback started")
        operators.kill()
        operators.start()
        status = desk.wait_status(
            lambda s: (
                s.get("activeVersion") == "1.4.2"
                and s.get("phase") == "Running"
                and "stratops.io/rollback" not in (desk.strategy()["metadata"].get("annotations") or {})
            ),
            "rollback finished after restart",
            timeout=90,
        )
    finally:
        operators.stop()
    assert [b["version"] for b in status["blockedVersions"]] == ["1.5.0"]
    assert desk.version() == "1.4.2"
    # Events are written after status and are best effort: a crash between the two loses the
    # event, never duplicates it. Status is the durable record.
    assert len(desk.events("Rollback")) <= 1, [e.message for e in desk.events("Rollback")]


def test_operator_killed_mid_promotion_finishes_it_once(kube, crds, operator, own_namespace, operators):
    # `operator`: the admission stack (it records the trading spec's author, which a promotion
    # needs); it serves t-*, not this namespace. Alone, without it, this test could never pass.
    from cases import example

    desk = Desk(kube, own_namespace)
    operators.start()
    try:
        doc = strategy_doc()
        desk.create("gates", desk.sign(example("gates/daily.yaml")))
        desk.create("gates", desk.sign(example("gates/pre-launch.yaml"), doc["spec"]))
        desk.create("strategies", doc)
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good", timeout=90)
        desk.patch_spec(mode="live")
        # Killed the moment the control document says live: the status may still say paper.
        wait_for(
            lambda: (desk.control() or {}).get("mode") == "live", timeout=30, interval=0.02, what="promotion started"
        )
        operators.kill()
        operators.start()
        status = desk.wait_status(lambda s: s.get("mode") == "live", "live after restart", timeout=90)
    finally:
        operators.stop()
    assert desk.control()["mode"] == "live"
    assert next(c for c in status["conditions"] if c["type"] == "Promoted")["status"] == "True"
    assert len(desk.events("Promoted")) <= 1
