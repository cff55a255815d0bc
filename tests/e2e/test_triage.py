"""`stratops triage` end to end: --apply against the local cluster, and the interactive prompts
answered by keystrokes in a real terminal (tmux)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cases import example
from lifecycle_helpers import NAME, Desk, strategy_doc
from stratops.cli.main import app
from terminal import Terminal


@pytest.fixture
def terminal() -> Iterator[type[Terminal]]:
    opened: list[Terminal] = []

    class _T(Terminal):
        def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, **kw)
            opened.append(self)

    yield _T
    for t in opened:
        t.close()


STRATOPS = [sys.executable, "-m", "stratops.cli.main"]


def test_interactive_triage_answered_by_keystrokes(terminal):
    t = terminal([*STRATOPS, "triage", "--strategy", "mean-revert"])
    t.wait("Which symptom?")
    t.wait("answer [1-6]")
    t.type("3")  # pnl-diverging
    t.wait("Is realised PnL outside the 95% band?")
    t.type("maybe")
    t.wait("'maybe' is not an answer")
    t.type("y")
    t.wait("Was a version or config change deployed since the divergence began?")
    t.type("2")
    t.wait("Reconciliation: Reconcile positions and open orders")
    t.type("Matched")
    t.wait("Do the drift monitors fire (PSI, KS)?")
    t.type("yes")
    screen = t.wait("[exit 0]")
    assert "THROTTLE (throttle)" in screen
    assert "Regime change: trade slower and re-validate the model." in screen
    assert "stratops throttle mean-revert --reason 'triage pnl-diverging: Yes > No > Matched > Yes'" in screen
    assert "runbook  feature-drift" in screen


@pytest.mark.e2e
def test_apply_kill_switch_through_the_cli(kube, namespace, operator, cluster):
    desk = Desk(kube, namespace)
    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2" and s.get("phase") == "Running", "known-good")
    desk.play_pods()
    try:
        res = CliRunner().invoke(
            app,
            ["triage", "acks-silent", "-a", "yes", "-a", "no", "--strategy", NAME, "-n", namespace, "--apply", "--yes"],
            env={"KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200"},
        )
        out = " ".join(res.output.split())
        assert res.exit_code == 0, res.output
        assert "KILL-SWITCH (killSwitch)" in out and "runbook broker-failover" in out
        assert "halted" in out and "acknowledged by the strategy: True" in out
        ks = desk.status()["killSwitch"]
        assert ks["latched"] and ks["completedAt"]
        assert ks["reason"] == "triage acks-silent: Yes > No" and ks["by"] == "admin"
        assert desk.deployment().spec.replicas == 0
        assert desk.control()["tradingState"] == "HALTED"
    finally:
        desk.stop_pods()


@pytest.mark.e2e
def test_interactive_apply_records_the_reconciliation_then_resumes(kube, namespace, operator, cluster, terminal):
    desk = Desk(kube, namespace)
    desk.create("gates", desk.sign(example("gates/daily.yaml")))  # resume needs the daily gate
    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2" and s.get("phase") == "Running", "known-good")
    desk.play_pods()
    try:
        desk.command("throttle", reason="feed gap")
        desk.wait_status(
            lambda s: (s.get("throttle") or {}).get("active") and s.get("tradingState") == "REDUCING", "throttled"
        )
        t = terminal(
            [*STRATOPS, "triage", "stale-data", "--strategy", NAME, "-n", namespace, "--apply"],
            env={"KUBECONFIG": str(Path(cluster.kubeconfig))},
        )
        t.wait("Has the data been current again for at least two bar intervals?")
        t.type("1")
        t.wait("Reconciliation: Reconcile positions and open orders")
        t.type("1")
        t.wait("evidence (what you compared")
        t.type("drop copy 09:10 vs book")
        t.wait("RESUME (resume)")
        t.wait(f"RESUME {NAME} in {namespace} now?")
        t.type("y")
        screen = t.wait("[exit 0]", timeout=90)
        assert "resumed" in screen
        status = desk.status()
        rec = status["lastReconciliation"]
        assert rec["result"] == "Matched" and rec["evidence"] == "drop copy 09:10 vs book"
        assert status["resume"]["reason"] == "triage stale-data: Yes > Matched"
        desk.wait_status(lambda s: s.get("tradingState") == "ACTIVE", "ACTIVE after REDUCING")
    finally:
        desk.stop_pods()


@pytest.mark.e2e
def test_daily_gate_command_names_the_strategys_gate(kube, crds, namespace, cluster):
    """The not-trading path that ends at "sign today's daily gate" names the gate from the
    strategy's spec, read from the cluster."""
    Desk(kube, namespace).create("strategies", strategy_doc())
    answers = ["-a", "yes", "-a", "no", "-a", "yes", "-a", "matched", "-a", "no"]
    res = CliRunner().invoke(
        app,
        ["triage", "not-trading", *answers, "--strategy", NAME, "-n", namespace, "-o", "json"],
        env={"KUBECONFIG": str(cluster.kubeconfig)},
    )
    assert res.exit_code == 0, res.output
    assert (
        json.loads(res.stdout)["action"]["command"]
        == f'stratops gate sign fx-daily --all --evidence "..." -n {namespace}'
    )
