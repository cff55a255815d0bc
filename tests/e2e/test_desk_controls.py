"""Desk-level controls on the local cluster: one kill decision for a desk or for everything."""

from __future__ import annotations

import json
import threading

import pytest
from cases import example
from lifecycle_helpers import Desk, strategy_doc
from typer.testing import CliRunner

from stratops.cli.main import app

pytestmark = pytest.mark.e2e


@pytest.fixture
def desk(kube, namespace, operator):
    d = Desk(kube, namespace)
    d.create("gates", d.sign(example("gates/daily.yaml")))
    stop = threading.Event()

    def play() -> None:  # KWOK pods run no process: play every strategy's pods, like the SDK would
        while not stop.wait(0.2):
            for s in d.custom.list_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "strategies")["items"]:
                d.play_pods(s["metadata"]["name"])

    t = threading.Thread(target=play, daemon=True)
    t.start()
    yield d
    stop.set()
    t.join()
    d.stop_pods()


def _strategy(name: str, **labels: str) -> dict:
    doc = strategy_doc()
    doc["metadata"] = {"name": name, "labels": labels}
    return doc


def _run(args: list[str], kubeconfig) -> tuple[int, str]:
    res = CliRunner().invoke(app, args, env={"KUBECONFIG": str(kubeconfig), "COLUMNS": "200"})
    return res.exit_code, res.output


def test_kill_by_selector_then_all_reports_per_strategy(desk, namespace, cluster):
    for name, labels in (("fx-a", {"desk": "fx"}), ("fx-b", {"desk": "fx", "venue": "XLON"}), ("rates-a", {"desk": "rates"})):
        desk.create("strategies", _strategy(name, **labels))
    for name in ("fx-a", "fx-b", "rates-a"):
        desk.wait_status(lambda s: s.get("phase") == "Running", f"{name} running", name=name)

    code, out = _run(["kill", "--selector", "desk=fx", "-n", namespace, "--reason", "fx desk limit breach"], cluster.kubeconfig)
    assert code == 0, out
    assert "sent to 2 strategies (desk=fx)" in out and "halted 2/2; acknowledged by the strategy: 2" in out
    for name in ("fx-a", "fx-b"):
        ks = desk.status(name)["killSwitch"]
        assert ks["completedAt"] and ks["acknowledged"] is True and ks["reason"] == "fx desk limit breach" and ks["by"] == "admin"
        assert desk.deployment(name).spec.replicas == 0
    assert "killSwitch" not in desk.status("rates-a") and desk.status("rates-a")["tradingState"] == "ACTIVE"
    # one decision: the same decision id prefix on both
    decisions = {desk.status(n)["killSwitch"]["decision"] for n in ("fx-a", "fx-b")}
    assert len(decisions) == 1 and {desk.status(n)["killSwitch"]["scope"] for n in ("fx-a", "fx-b")} == {"desk=fx"}

    code, out = _run(["kill", "--all", "-n", namespace, "--reason", "end of day: everything off"], cluster.kubeconfig)
    assert code == 0, out
    assert "sent to 3 strategies (all)" in out and "halted 3/3" in out
    assert desk.status("rates-a")["killSwitch"]["reason"] == "end of day: everything off"
    # already-halted ones stay halted with their first reason (latched, not re-decided)
    assert desk.status("fx-a")["killSwitch"]["reason"] == "fx desk limit breach"


def test_kill_needs_exactly_one_scope_and_a_reason(namespace, cluster, crds):
    code, out = _run(["kill", "--selector", "desk=none", "-n", namespace, "--reason", "x"], cluster.kubeconfig)
    assert code == 1 and "no strategy matches --selector desk=none" in " ".join(out.split())
    code, out = _run(["kill", "s", "--all", "-n", namespace, "--reason", "x"], cluster.kubeconfig)
    assert code == 1 and "name one STRATEGY, or give --selector LABELS, or --all" in " ".join(out.split())
    code, out = _run(["kill", "--all", "-n", namespace], cluster.kubeconfig)
    assert code == 1 and "--reason is required" in out
