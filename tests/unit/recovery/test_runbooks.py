"""Incident classes and runbooks as data, and the runbook checks over crafted cluster views."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from stratops.cli.main import app
from stratops.lifecycle import manifests
from stratops.models.monitor import IncidentClass, Severity
from stratops.recovery.classes import CARDS, card
from stratops.recovery.runbooks import (
    CATEGORIES,
    CHECKS,
    OPERATOR_ACTIONS,
    RUNBOOKS,
    ClusterView,
    Runbook,
    RunbookStep,
    by_category,
    runbook,
)


# -- incident classes -----------------------------------------------------------------------
def test_six_classes_each_with_p0_p1_and_four_steps():
    assert {c.class_ for c in CARDS} == set(IncidentClass) and len(CARDS) == 6
    for c in CARDS:
        assert c.p0 and c.p1 and c.p0 != c.p1
        assert list(c.playbook()) == ["detection", "immediateAction", "containment", "postmortem"]
        assert all(len(t) > 20 for t in c.playbook().values())
        assert c.action(Severity.P0) == "killSwitch" and c.action("P1") == "throttle"
        assert c.runbook in {r.id for r in RUNBOOKS}


def test_unknown_class_names_the_six():
    with pytest.raises(ValueError, match="one of BrokerOutage, FeatureDrift"):
        card("Meteor")


# -- runbooks: the data --------------------------------------------------------------------
def test_ten_runbooks_covering_every_category_each_ending_in_a_check():
    assert len(RUNBOOKS) == 10 and len({r.id for r in RUNBOOKS}) == 10
    assert {r.category for r in RUNBOOKS} == set(CATEGORIES)
    for r in RUNBOOKS:
        assert r.trigger and r.steps and r.verify in CHECKS
        assert all(s.kind != "operator" or s.action in OPERATOR_ACTIONS for s in r.steps)
    assert [r.id for r in by_category("drift-response")] == ["feature-drift", "config-drift"]


def test_broker_failover_is_halt_reconcile_switch_reconcile_resume_throttled():
    r = runbook("broker-failover")
    assert [(s.kind, s.action) for s in r.steps if s.kind != "wait"] == [
        ("operator", "kill"),
        ("manual", None),
        ("operator", "failover-backup"),
        ("record", None),
        ("operator", "resume-throttled"),
    ]


def test_no_runbook_resumes_without_a_reconciliation_first():
    for r in RUNBOOKS:
        kinds = [s.kind if s.kind != "operator" else s.action for s in r.steps]
        for i, k in enumerate(kinds):
            if k in ("resume", "resume-throttled"):
                assert "record" in kinds[:i], r.id


def test_bad_runbook_definitions_are_refused():
    with pytest.raises(ValueError, match="category"):
        Runbook("x", "x", "fun", "t", (), "halted")
    with pytest.raises(ValueError, match="operator action"):
        RunbookStep("s", "operator", "t", "nuke")
    with pytest.raises(ValueError, match="wait needs a check"):
        RunbookStep("s", "wait", "t", "nope")
    with pytest.raises(ValueError, match="unknown runbook 'x': one of deploy-new-version"):
        runbook("x")


# -- runbooks: the checks ------------------------------------------------------------------
def strategy(**status) -> dict:
    return {
        "metadata": {"name": "s"},
        "spec": {
            "version": "1.0",
            "mode": "paper",
            "replicas": 1,
            "brokers": {
                "primary": {"name": "a", "endpoint": "fix://a:1"},
                "backup": {"name": "b", "endpoint": "fix://b:1"},
            },
        },
        "status": status,
    }


READY = {"type": "Ready", "status": "True", "message": "1/1 pods Ready"}


def test_halted_needs_latch_halted_completion_and_no_pod():
    halted = strategy(killSwitch={"latched": True, "completedAt": "t"}, tradingState="HALTED")
    ok, detail = CHECKS["halted"](ClusterView(halted, {"spec": {"replicas": 0}}))
    assert ok and "scaled to 0" in detail
    ok, detail = CHECKS["halted"](ClusterView(halted, {"spec": {"replicas": 0}}, pods=({"metadata": {"name": "p"}},)))
    assert not ok and "1 pod(s)" in detail
    ok, detail = CHECKS["halted"](ClusterView(strategy(killSwitch={"latched": True}, tradingState="HALTED")))
    assert not ok and "not yet scaled to 0" in detail


def test_on_backup_reducing_reads_the_control_document():
    st = strategy(
        broker={"role": "backup"},
        throttle={"active": True},
        tradingState="REDUCING",
        control={"generation": 5, "acknowledgedGeneration": 5},
        conditions=[READY],
    )
    ok, _ = CHECKS["on-backup-reducing"](ClusterView(st, control={"broker": {"name": "b", "endpoint": "fix://b:1"}}))
    assert ok
    ok, detail = CHECKS["on-backup-reducing"](
        ClusterView(st, control={"broker": {"name": "a", "endpoint": "fix://a:1"}})
    )
    assert not ok and "control document broker a" in detail
    st["status"]["control"]["acknowledgedGeneration"] = 4
    ok, detail = CHECKS["on-backup-reducing"](
        ClusterView(st, control={"broker": {"name": "b", "endpoint": "fix://b:1"}})
    )
    assert not ok and "not acknowledged" in detail


def test_active_fails_with_open_incidents():
    st = strategy(
        tradingState="ACTIVE",
        resume={"stage": "Active"},
        control={"generation": 2, "acknowledgedGeneration": 2},
        conditions=[READY],
    )
    inc = {"metadata": {"name": "i1"}, "spec": {"strategy": "s"}, "status": {"phase": "Contained"}}
    assert CHECKS["active"](ClusterView(st))[0]
    ok, detail = CHECKS["active"](ClusterView(st, incidents=(inc,)))
    assert not ok and "open incidents: i1" in detail
    resolved = {**inc, "status": {"phase": "Resolved"}}
    assert CHECKS["active"](ClusterView(st, incidents=(resolved,)))[0]


def test_deployment_matches_uses_the_operator_fingerprint():
    dep = {
        "metadata": {"annotations": {}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }
    dep["metadata"]["annotations"][manifests.ANNOTATION_DESIRED] = manifests.fingerprint(dep)
    st = strategy(conditions=[READY])
    assert CHECKS["deployment-matches"](ClusterView(st, dep))[0]
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "evil"
    ok, detail = CHECKS["deployment-matches"](ClusterView(st, dep))
    assert not ok and "differs" in detail


# -- the CLI without a cluster ---------------------------------------------------------------
def test_runbook_list_show_and_errors_through_the_cli():
    r = CliRunner().invoke(app, ["runbook", "list", "-c", "broker-failover", "-o", "json"])
    assert r.exit_code == 0 and '"id": "broker-failover"' in r.output
    r = CliRunner().invoke(app, ["runbook", "show", "broker-failover"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "Switch the control document to the backup broker" in r.output and "verify:" in r.output
    r = CliRunner().invoke(app, ["runbook", "show", "nope"])
    assert r.exit_code == 1 and "unknown runbook 'nope'" in r.output
    r = CliRunner().invoke(app, ["runbook", "run", "kill-switch", "s", "--reason", "x", "--answer", "bogus=1"])
    assert r.exit_code == 1 and "unknown step(s) bogus" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["runbook", "run", "kill-switch", "s", "--reason", "x", "--answer", "broker"])
    assert r.exit_code == 1 and "write STEP=TEXT" in " ".join(r.output.split())


def test_daily_gate_check_reads_the_daily_gate_not_every_gate():
    """A resume needs today's daily gate, not the monthly one: a missing monthly gate (which
    makes GatesSatisfied False) must not hold the resume runbook's daily-gate step."""
    s = strategy(
        conditions=[
            {"type": "GatesSatisfied", "status": "False", "message": "gates not found or not listing s: fx-monthly"}
        ]
    )
    s["spec"]["gates"] = {"daily": "fx-daily", "others": ["fx-monthly"]}

    def gate(state, strategies=("s",), missing=()):
        return {
            "metadata": {"name": "fx-daily"},
            "spec": {"strategies": list(strategies)},
            "status": {
                "state": state,
                "signed": "5/5" if state == "Complete" else "4/5",
                "missingItems": list(missing),
            },
        }

    check = CHECKS["daily-gate-signed"]
    assert check(ClusterView(s, gates=(gate("Complete"),))) == (True, "daily gate fx-daily signed (5/5)")
    ok, detail = check(ClusterView(s, gates=(gate("Incomplete", missing=("limits-verified",)),)))
    assert not ok and detail == "daily gate fx-daily Incomplete: missing limits-verified"
    ok, detail = check(ClusterView(s, gates=(gate("Complete", strategies=("other",)),)))
    assert not ok and "not found or not listing" in detail
    ok, detail = check(ClusterView(s, gates=None))  # Gates not readable: the strategy's condition
    assert not ok and "fx-monthly" in detail
    assert {st.action for r in RUNBOOKS for st in r.steps if st.id == "daily-gate"} == {"daily-gate-signed"}
