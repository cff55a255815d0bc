"""Runbooks through the real CLI against the local cluster: broker failover end to end with the
example strategy, dry run, refusals that change nothing, and the run record."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from typer.testing import CliRunner

from cases import example
from lifecycle_helpers import NAME, Desk, strategy_doc
from stratops.cli.main import app
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e

# What on-call needs to run runbooks in one namespace (and nothing cluster-wide).
ONCALL_RULES = [
    {
        "apiGroups": ["stratops.io"],
        "resources": ["strategies", "incidents"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    # promote changes spec.mode: a spec change (the admission policies ask for this verb)
    {"apiGroups": ["stratops.io"], "resources": ["strategies"], "verbs": ["edit-spec"]},
    {"apiGroups": ["stratops.io"], "resources": ["monitors", "gates", "auditsegments"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
]


@pytest.fixture
def oncall(cluster, kube, namespace) -> str:
    rbac = client.RbacAuthorizationV1Api(kube)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "oncall"}, "rules": ONCALL_RULES})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "oncall"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "oncall"},
            "subjects": [{"kind": "User", "name": "dana", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    return str(cluster.user_kubeconfig("dana"))


@pytest.fixture
def desk(kube, namespace, operator):
    d = Desk(kube, namespace)
    d.create("gates", d.sign(example("gates/daily.yaml")))
    d.create("strategies", strategy_doc())
    d.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good")
    d.keep_playing()
    yield d
    d.stop_pods()


def _run(args: list[str], kubeconfig: str):
    res = CliRunner().invoke(app, args, env={"KUBECONFIG": kubeconfig, "COLUMNS": "200"})
    return res, " ".join(res.output.split())


def test_broker_failover_runbook_end_to_end(desk, namespace, oncall):
    desk.wait_status(
        lambda s: s.get("tradingState") == "ACTIVE" and (s.get("control") or {}).get("acknowledgedGeneration", 0) >= 1,
        "ACTIVE acknowledged",
    )
    before = desk.control()
    assert before["broker"]["name"] == "prime-a"
    base = ["runbook", "run", "broker-failover", NAME, "-n", namespace, "--reason", "prime-a acks silent"]

    # Dry run: shows every step and changes nothing.
    res, out = _run([*base, "--dry-run"], oncall)
    assert res.exit_code == 0, res.output
    assert "would run: stratops failover --to backup" in out and "dry run" in out
    assert desk.control()["generation"] == before["generation"]
    # every command consumed; what stays is who last changed the spec (recorded at admission)
    assert not [
        a
        for a in desk.strategy()["metadata"].get("annotations") or {}
        if a.startswith("stratops.io/") and not a.endswith("-author")
    ]

    # No terminal and no --yes/--answer: refused before anything is done.
    res, out = _run(base, oncall)
    assert res.exit_code == 1 and "give --answer for open-orders=..., positions=..." in out
    res, out = _run(
        [*base, "--answer", "open-orders=none working", "--answer", "positions=Matched: prime-b statement"], oncall
    )
    assert res.exit_code == 1 and "rerun with --yes" in out
    res, out = _run([*base, "--yes", "--answer", "open-orders=none", "--answer", "positions=maybe"], oncall)
    assert res.exit_code == 1 and "answer 'Matched: evidence'" in out
    assert desk.control()["generation"] == before["generation"] and desk.status()["tradingState"] == "ACTIVE"

    res, out = _run(
        [
            *base,
            "--yes",
            "--answer",
            "open-orders=prime-a confirms 0 working orders, ticket 4711",
            "--answer",
            "positions=Matched: prime-b positions statement vs strategy fills",
        ],
        oncall,
    )
    assert res.exit_code == 0, res.output
    assert "verify (control document on the backup broker, REDUCING acknowledged, Ready): PASS" in out

    # What the runbook did, as the cluster has it.
    st = desk.status()
    ctl = desk.control()
    assert ctl["broker"]["name"] == "prime-b" and ctl["broker"]["endpoint"].startswith("fix://")
    assert ctl["tradingState"] == "REDUCING"
    assert st["broker"]["role"] == "backup" and st["broker"]["by"] == "dana"
    assert st["killSwitch"]["latched"] is False and st["throttle"]["active"] is True
    assert st["lastReconciliation"]["by"] == "dana" and "prime-b" in st["lastReconciliation"]["evidence"]
    assert st["effectiveLimits"]["maxPosition"] < desk.strategy()["spec"]["riskLimits"]["maxPosition"]
    assert len(desk.running_pods()) == desk.strategy()["spec"]["replicas"]
    reasons = [e.reason for e in desk.events()]
    for r in ("KillSwitch", "BrokerFailover", "ReconciliationRecorded", "Resume"):
        assert r in reasons, reasons

    # The run is recorded in the strategy's audit trail: who (as admission attributed it), every
    # step with the manual answers, the verify verdict.
    from stratops.cli.audit import read_trails

    trails = wait_for(
        lambda: (
            (t := read_trails(desk.kube, namespace))
            and any(
                e.get("reason") == "RunbookRun" and not e["record"]["runbookRun"].get("dryRun")
                for entries, _ in t.values()
                for e in entries
            )
            and t
        ),
        timeout=30,
        what="the run in the audit trail",
    )
    [record] = [
        e["record"]["runbookRun"]
        for (_, kind, _name), (entries, findings) in trails.items()
        if kind == "Strategy"
        for e in entries
        if e.get("reason") == "RunbookRun" and not e["record"]["runbookRun"].get("dryRun")
    ]
    assert all(not findings for _, findings in trails.values())
    assert record["by"] == "dana" and record["verify"]["passed"] is True and record["outcome"] == "completed"
    steps = {s["id"]: s for s in record["steps"]}
    assert list(steps) == ["halt", "halted", "open-orders", "switch", "positions", "resume", "reducing"]
    assert steps["open-orders"]["note"] == "prime-a confirms 0 working orders, ticket 4711"
    assert steps["positions"]["result"] == "Matched"
    wait_for(lambda: desk.events("RunbookRun"), timeout=10, what="RunbookRun event")
    res, out = _run(["runbook", "history", NAME, "-n", namespace], oncall)
    assert res.exit_code == 0 and "broker-failover" in out and "dana" in out and "PASS" in out

    res, out = _run(["runbook", "verify", "broker-failover", NAME, "-n", namespace], oncall)
    assert res.exit_code == 0 and "PASS" in out
    res, out = _run(["runbook", "verify", "kill-switch", NAME, "-n", namespace], oncall)
    assert res.exit_code == 1 and "FAIL" in out and "kill-switch not latched" in out


def test_failover_refused_while_trading_changes_nothing(desk, namespace, oncall):
    desk.wait_status(lambda s: s.get("tradingState") == "ACTIVE", "ACTIVE")
    res, out = _run(["failover", NAME, "-n", namespace, "--reason", "try"], oncall)
    assert res.exit_code == 1 and "halt order entry first" in out
    assert desk.control()["broker"]["name"] == "prime-a" and "broker" not in desk.status()


def test_describe_and_promote_from_the_cli(desk, namespace, oncall, kube):
    res, out = _run(["describe", NAME, "-n", namespace], oncall)
    assert res.exit_code == 0, res.output
    assert f"{namespace}/{NAME}" in out and "broker primary: prime-a" in out and "maxPosition" in out
    res, out = _run(["describe", NAME, "-n", namespace, "-o", "json"], oncall)
    [obj] = json.loads(res.output)
    assert obj["strategy"]["metadata"]["name"] == NAME and obj["control"]["broker"]["name"] == "prime-a"

    # Promotion refused before anything changes: no pre-launch gate yet.
    res, out = _run(["promote", NAME, "-n", namespace, "--reason", "paper passed"], oncall)
    assert res.exit_code == 1 and "pre-launch gate mean-revert-pre-launch not found" in out
    assert desk.strategy()["spec"]["mode"] == "paper"
    gates = example("gates/pre-launch.yaml")
    desk.create("gates", desk.sign(gates, desk.strategy()["spec"]))
    res, out = _run(["promote", NAME, "-n", namespace, "--reason", "paper passed"], oncall)
    assert res.exit_code == 0, res.output
    assert "live" in out and desk.status()["mode"] == "live"
    note = json.loads(desk.strategy()["metadata"]["annotations"]["stratops.io/promoted-by"])
    assert note["by"] == "dana" and note["reason"] == "paper passed"


def test_no_cluster_is_a_clear_error(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    res, out = _run(["status", "-n", "x"], str(cfg))
    assert res.exit_code == 1 and "cannot reach the Kubernetes API server at https://127.0.0.1:1" in out
    assert "Traceback" not in res.output


def test_containment_by_hand_is_attributed(desk, namespace, oncall):
    desk.create(
        "incidents",
        {
            "apiVersion": "stratops.io/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "route-amber"},
            "spec": {
                "class": "BrokerOutage",
                "severity": "P1",
                "strategy": NAME,
                "action": "none",
                "summary": "prime-a status page amber",
            },
        },
    )
    res, out = _run(
        ["incident", "contain", "route-amber", "-n", namespace, "--detail", "orders confirmed at prime-a"], oncall
    )
    assert res.exit_code == 0, res.output
    inc = wait_for(
        lambda: (
            (
                (
                    i := desk.custom.get_namespaced_custom_object(
                        "stratops.io", "v1alpha1", namespace, "incidents", "route-amber"
                    )
                ).get("status")
                or {}
            ).get("phase")
            == "Contained"
            and i
        ),
        timeout=30,
        what="contained",
    )
    assert inc["status"]["steps"]["containment"] == {
        **inc["status"]["steps"]["containment"],
        "by": "dana",
        "detail": "orders confirmed at prime-a",
    }
    res, out = _run(["incident", "show", "route-amber", "-n", namespace], oncall)
    assert "✓ containment" in out and "by dana" in out and "P1 means: degraded but confirmed" in out
