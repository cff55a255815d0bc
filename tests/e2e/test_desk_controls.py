"""Desk-level controls on the local cluster: one kill decision for a desk or for everything."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from typer.testing import CliRunner

from cases import example
from lifecycle_helpers import PRELAUNCH_SIGNERS, Desk, strategy_doc
from stratops.cli.main import app

pytestmark = pytest.mark.e2e


@pytest.fixture
def desk(kube, namespace, operator):
    d = Desk(kube, namespace)
    d.create("gates", d.sign(example("gates/daily.yaml")))
    d.keep_playing()
    yield d
    d.stop_pods()


def _strategy(name: str, **labels: str) -> dict:
    doc = strategy_doc()
    doc["metadata"] = {"name": name, "labels": labels}
    return doc


def _run(args: list[str], kubeconfig) -> tuple[int, str]:
    res = CliRunner().invoke(app, args, env={"KUBECONFIG": str(kubeconfig), "COLUMNS": "200"})
    return res.exit_code, res.output


def test_kill_by_selector_then_all_reports_per_strategy(desk, namespace, cluster):
    for name, labels in (
        ("fx-a", {"desk": "fx"}),
        ("fx-b", {"desk": "fx", "venue": "XLON"}),
        ("rates-a", {"desk": "rates"}),
    ):
        desk.create("strategies", _strategy(name, **labels))
    for name in ("fx-a", "fx-b", "rates-a"):
        desk.wait_status(lambda s: s.get("phase") == "Running", f"{name} running", name=name)

    code, out = _run(
        ["kill", "--selector", "desk=fx", "-n", namespace, "--reason", "fx desk limit breach"], cluster.kubeconfig
    )
    assert code == 0, out
    assert "sent to 2 strategies (desk=fx)" in out and "halted 2/2; acknowledged by the strategy: 2" in out
    for name in ("fx-a", "fx-b"):
        ks = desk.status(name)["killSwitch"]
        assert (
            ks["completedAt"]
            and ks["acknowledged"] is True
            and ks["reason"] == "fx desk limit breach"
            and ks["by"] == "admin"
        )
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


def test_evidence_pack_from_a_known_scenario(desk, namespace, cluster, tmp_path):
    from datetime import datetime, timedelta

    from stratops.testing.wait import wait_for

    start = datetime.now(UTC) - timedelta(seconds=5)
    doc = strategy_doc()
    # A scenario with one incident: no rollout of it may miss a 4 s deadline on a busy machine.
    doc["spec"]["rollbackPolicy"]["rolloutDeadline"] = "60s"
    desk.create("gates", desk.sign(example("gates/pre-launch.yaml"), doc["spec"]))  # approvers of 1.4.2
    desk.create("strategies", doc)
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "deployed and known-good")
    desk.patch_spec(mode="live")
    desk.wait_status(lambda s: s.get("mode") == "live", "promoted")
    desk.create(
        "incidents",
        {
            "apiVersion": "stratops.io/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "breach"},
            "spec": {
                "class": "RiskBreach",
                "severity": "P0",
                "strategy": "mean-revert",
                "summary": "position limit breached",
            },
        },
    )
    desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "halted")
    code, out = _run(
        [
            "incident",
            "resolve",
            "breach",
            "-n",
            namespace,
            "--reason",
            "fixed",
            "--root-cause",
            "fat finger",
            "--action",
            "four-eyes on manual orders",
            "--owner",
            "risk",
        ],
        cluster.kubeconfig,
    )
    assert code == 0, out
    desk.command("reconciliation", result="Matched", evidence="broker statement vs fills", by="ops")
    desk.wait_status(lambda s: (s.get("lastReconciliation") or {}).get("result") == "Matched", "reconciled")
    desk.command("resume", reason="postmortem done", by="bob")
    desk.wait_status(lambda s: not s["killSwitch"]["latched"], "resumed")
    limits = desk.strategy()["spec"]["riskLimits"]
    lowered = {**doc["spec"], "riskLimits": {**limits, "maxPosition": limits["maxPosition"] / 2}}
    # a live strategy's limits change only with the pre-launch gate signed for the new ones
    signed = desk.sign(example("gates/pre-launch.yaml"), lowered)
    desk.custom.patch_namespaced_custom_object(
        "stratops.io",
        "v1alpha1",
        namespace,
        "gates",
        "mean-revert-pre-launch",
        {"spec": {"signatures": signed["spec"]["signatures"]}},
    )
    desk.patch_spec(riskLimits=lowered["riskLimits"])
    desk.wait_status(lambda s: s["effectiveLimits"]["maxPosition"] == limits["maxPosition"] / 2, "limit lowered")
    # Events expire; the pack must not depend on them.
    wait_for(lambda: desk.events("LimitsLowered"), timeout=30, what="last event written")
    desk.core.delete_collection_namespaced_event(namespace)

    code, out = _run(
        ["audit", "export", "--since", start.isoformat(), "-n", namespace, "--out", str(tmp_path / "pack")],
        cluster.kubeconfig,
    )
    assert code == 0, out
    pack = json.loads((tmp_path / "pack" / "evidence.json").read_text())
    [dep] = [d for d in pack["deployments"] if d["version"] == "1.4.2"]
    assert dep["knownGoodAt"] and {a["item"] for a in dep["approvers"]} == {
        i["id"] for i in example("gates/pre-launch.yaml")["spec"]["items"]
    }
    assert {a["signer"] for a in dep["approvers"]} == set(PRELAUNCH_SIGNERS)
    assert {s["gate"] for s in pack["gateSignatures"]} == {"mean-revert-pre-launch", "fx-daily"}
    assert len(pack["incidents"]) == 1, [(i["name"], i.get("summary")) for i in pack["incidents"]]
    [inc] = pack["incidents"]
    assert inc["name"] == "breach" and inc["phase"] == "Resolved" and inc["postmortem"]["owner"] == "risk"
    assert set(inc["steps"]) == {"detection", "immediateAction", "containment", "postmortem"}
    assert 0 <= inc["secondsToAction"] <= inc["secondsToContainment"] <= inc["secondsToResolution"]
    [kill] = [e for e in pack["killSwitches"] if e["reason"] == "KillSwitch"]
    assert kill["record"]["killSwitch"]["incident"] == "breach"
    assert any(e["reason"] == "KillSwitchCompleted" for e in pack["killSwitches"])
    [resume] = [e for e in pack["resumes"] if e["reason"] == "Resume"]
    assert resume["record"]["resume"]["by"] == "bob" and resume["record"]["resume"]["reason"] == "postmortem done"
    assert [e["reason"] for e in pack["promotions"]] == ["Promoted"]
    assert any(e["reason"] == "LimitsLowered" for e in pack["limitChanges"])
    assert pack["reconciliations"][0]["record"]["lastReconciliation"]["by"] == "ops"
    md = (tmp_path / "pack" / "evidence.md").read_text()
    for section in (
        "## Deployments (",
        "## Gate signatures (",
        "## Incidents (1)",
        "## Kill-switches (",
        "## Resumes (",
        "## Limit changes (",
    ):
        assert section in md
    assert "fat finger" in md and "risk-officer (backtest-reviewed)" in md


def _user(cluster, kube, namespace, user: str) -> str:
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(kube)
    name = f"oncall-{user}"
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": name},
            "rules": [
                {"apiGroups": ["stratops.io"], "resources": ["strategies"], "verbs": ["get", "list", "watch", "patch"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    return str(cluster.user_kubeconfig(user))


def test_commands_are_attributable_and_rearm_needs_a_designated_user(desk, namespace, cluster, kube):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from stratops.testing.wait import wait_for

    doc = strategy_doc(killSwitch={"ackDeadline": "20s", "rearmBy": ["risk-officer"]})
    desk.create("strategies", doc)
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")
    mallory, officer = _user(cluster, kube, namespace, "mallory"), _user(cluster, kube, namespace, "risk-officer")

    # A command naming someone else is refused at admission, and nothing is applied.
    forged = client.CustomObjectsApi(cluster.api_client(mallory))
    with pytest.raises(ApiException) as err:
        forged.patch_namespaced_custom_object(
            "stratops.io",
            "v1alpha1",
            namespace,
            "strategies",
            "mean-revert",
            {"metadata": {"annotations": {"stratops.io/kill": json.dumps({"reason": "x", "by": "risk-officer"})}}},
        )
    assert err.value.status == 403 and 'a command must begin {\\"by\\": \\"mallory\\"' in err.value.body
    assert "killSwitch" not in desk.status()

    # An exposure-linked halt: a P0 incident that requires re-arm.
    desk.create(
        "incidents",
        {
            "apiVersion": "stratops.io/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "exposure"},
            "spec": {
                "class": "RiskBreach",
                "severity": "P0",
                "strategy": "mean-revert",
                "requireRearm": True,
                "summary": "gross exposure above 5m",
                "postmortem": {"rootCause": "runaway", "actions": ["cap"], "owner": "risk"},
            },
        },
    )
    desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "halted")
    assert desk.status()["killSwitch"]["rearmRequired"] is True
    code, out = _run(["incident", "resolve", "exposure", "-n", namespace, "--reason", "capped"], cluster.kubeconfig)
    assert code == 0, out
    desk.command("reconciliation", result="Matched", evidence="broker vs fills", by="ops")
    desk.wait_status(lambda s: (s.get("lastReconciliation") or {}).get("result") == "Matched", "reconciled")
    code, out = _run(["resume", "mean-revert", "-n", namespace, "--reason", "try"], cluster.kubeconfig)
    assert code == 1 and "re-arm required first" in " ".join(out.split()) and "risk-officer" in out

    code, out = _run(["rearm", "mean-revert", "-n", namespace, "--reason", "I can"], mallory)
    assert (
        code == 1
        and "the re-arm must be given by one of spec.killSwitch.rearmBy as it was before this request (risk-officer), "
        "not mallory"
        in " ".join(out.split())
    )
    code, out = _run(["rearm", "mean-revert", "-n", namespace, "--reason", "exposure capped, limits checked"], officer)
    assert code == 0, out
    ks = desk.status()["killSwitch"]
    assert ks["rearmedBy"] == "risk-officer" and ks["latched"] is True  # re-arm resumes nothing
    code, out = _run(["resume", "mean-revert", "-n", namespace, "--reason", "re-armed"], cluster.kubeconfig)
    assert code == 0, out
    wait_for(lambda: desk.control()["tradingState"] in ("REDUCING", "ACTIVE"), timeout=30, what="trading again")


def test_a_rogue_pod_running_old_code_is_found_halted_and_removed(desk, namespace):
    """Knight Capital, 2012: one server of eight still ran the old code. Here: a pod nobody's
    Deployment owns, labelled as the strategy, running an old image."""
    from stratops.testing.wait import wait_for

    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good")
    desk.wait_status(
        lambda s: any(c["type"] == "FleetVerified" and c["status"] == "True" for c in s.get("conditions") or []),
        "fleet verified",
    )
    desk.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "mean-revert-legacy", "labels": {"stratops.io/strategy": "mean-revert"}},
            "spec": {
                "containers": [{"name": "strategy", "image": "registry.example/fx-desk/mean-revert:1.3.9"}],
                "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    )
    status = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "halted", timeout=60)
    assert (
        "fleet verification failed" in status["killSwitch"]["reason"]
        and "mean-revert-legacy" in status["killSwitch"]["reason"]
    )
    [inc] = [i for i in desk.incidents() if "-fleet-" in i["metadata"]["name"]]
    assert inc["spec"]["class"] == "ConfigDrift" and inc["spec"]["severity"] == "P0"
    wait_for(lambda: not desk.running_pods(), timeout=30, what="every pod gone, the rogue one included")
    wait_for(lambda: desk.events("FleetMismatch"), timeout=30, what="FleetMismatch event")


def test_exposure_reported_by_the_strategy_trips_the_kill_switch(desk, namespace):
    from stratops.testing.wait import wait_for

    desk.create("strategies", strategy_doc(killSwitch={"ackDeadline": "20s", "rearmBy": ["risk-officer"]}))
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")
    desk.create(
        "monitors",
        {
            "apiVersion": "stratops.io/v1alpha1",
            "kind": "Monitor",
            "metadata": {"name": "gross-exposure"},
            "spec": {
                "strategy": "mean-revert",
                "layer": "pnl",
                "description": "gross exposure cap",
                "source": {"strategy": {"report": "exposure"}},
                "check": {"kind": "threshold", "threshold": {"operator": ">", "value": 5000000}},
                "frequency": "1s",
                "alert": {"channel": "page"},
                "incident": {"class": "RiskBreach", "severity": "P0", "requireRearm": True},
            },
        },
    )
    agent = wait_for(
        lambda: next((a for a in desk.agents if a.applied is not None), None), timeout=30, what="a pod playing"
    )
    agent.report(exposure=4_000_000)
    wait_for(
        lambda: (
            (
                desk.custom.get_namespaced_custom_object(
                    "stratops.io", "v1alpha1", namespace, "monitors", "gross-exposure"
                ).get("status")
                or {}
            )
            .get("detail", "")
            .startswith("evaluated by the operator on every report")
        ),
        timeout=30,
        what="monitor handed to the strategy's daemon",
    )
    assert "killSwitch" not in desk.status()
    agent.report(exposure=6_500_000)
    st = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "halted on the report", timeout=60)
    assert st["killSwitch"]["rearmRequired"] is True and "gross-exposure" in st["killSwitch"]["reason"]
    [inc] = [i for i in desk.incidents() if i["metadata"]["name"].startswith("mean-revert-gross-exposure-")]
    assert inc["spec"]["requireRearm"] is True and "reported exposure 6.5e+06 > 5e+06" in inc["spec"]["summary"]


def test_the_charts_trader_role_is_enough_for_a_desk_kill(desk, namespace, cluster, kube, tmp_path):
    """The chart's people roles, applied as rendered: a trader kills their desk by selector."""
    from chart import grant_traders

    grant_traders(kube, namespace, ["tina"], tmp_path)
    desk.create("strategies", _strategy("fx-a", desk="fx"))
    desk.wait_status(lambda s: s.get("phase") == "Running", "running", name="fx-a")
    tina = cluster.user_kubeconfig("tina")
    code, out = _run(["describe", "fx-a", "-n", namespace], tina)
    assert code == 0, out
    code, out = _run(["kill", "--selector", "desk=fx", "-n", namespace, "--reason", "desk drill"], tina)
    assert code == 0, out
    assert desk.status("fx-a")["killSwitch"]["by"] == "tina"
    code, out = _run(["runbook", "verify", "kill-switch", "fx-a", "-n", namespace], tina)
    assert code == 0 and "PASS" in out
