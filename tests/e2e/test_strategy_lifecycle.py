"""The strategy lifecycle on the local cluster, with the operator running in-process."""

from __future__ import annotations

import copy

import httpx
import pytest
from kubernetes.client.exceptions import ApiException

from cases import DIGEST, example
from lifecycle_helpers import GITOPS, NAME, PRELAUNCH_SIGNERS, Desk, grant_chart_roles, strategy_doc
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def desk(kube, namespace, operator):
    d = Desk(kube, namespace)
    yield d
    d.stop_pods()


def _known_good(desk: Desk, version: str) -> dict:
    return desk.wait_status(
        lambda s: s.get("lastKnownGood") == version and s.get("phase") == "Running", f"{version} known-good"
    )


def test_deploy_creates_owned_objects_and_records_known_good(desk):
    desk.create("gates", desk.sign(example("gates/daily.yaml")))  # new versions need the daily gate
    strategy = desk.create("strategies", strategy_doc())
    status = _known_good(desk, "1.4.2")
    dep = desk.deployment()
    assert dep.metadata.owner_references[0].uid == strategy["metadata"]["uid"]
    assert dep.metadata.labels["stratops.io/strategy"] == NAME
    pod_spec = dep.spec.template.spec
    assert (
        pod_spec.containers[0].image == "registry.example/fx-desk/mean-revert:1.4.2@" + DIGEST
    )  # the tag names it, the digest pins it
    assert pod_spec.volumes[0].config_map.name == f"{NAME}-control"
    assert pod_spec.containers[0].volume_mounts[0].mount_path == "/etc/stratops/control"
    control = desk.control()
    assert control["tradingState"] == "ACTIVE" and control["limits"]["maxPosition"] == 2_000_000
    assert status["revisionHistory"][-1]["version"] == "1.4.2"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"

    desk.patch_spec(version="1.4.3")
    _known_good(desk, "1.4.3")
    assert desk.version() == "1.4.3"
    assert [r["version"] for r in desk.status()["revisionHistory"]] == ["1.4.2", "1.4.3"]
    assert desk.events("KnownGood")


def test_a_strategy_carries_no_finalizer_and_its_name_serves_again_at_once(cluster, kube, desk, tmp_path):
    """Issue 21: kopf puts no finalizer on a Strategy (it was a patch per new Strategy, and a
    first pass that waited for it). The one an earlier release put on it is taken off (kopf does
    it), other finalizers kept. A Strategy deleted and made again at once under its name is served
    by a daemon of its own: the old one ended on the DELETED event, not holding the name's pokes.
    The desk's GitOps identity applies and deletes it; the finalizers stand for an earlier release
    and another controller, so the administrator sets them."""
    gitops = Desk(cluster.api_client(grant_chart_roles(cluster, kube, desk.ns, tmp_path)[GITOPS]), desk.ns)

    def strategies() -> list[dict]:
        return gitops.custom.list_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "strategies")["items"]

    def delete() -> None:
        gitops.custom.delete_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "strategies", NAME)

    def patch_finalizers(finalizers: list[str]) -> None:
        desk.custom.patch_namespaced_custom_object(
            "stratops.io", "v1alpha1", desk.ns, "strategies", NAME, {"metadata": {"finalizers": finalizers}}
        )

    gitops.create("strategies", strategy_doc())
    _known_good(desk, "1.4.2")
    assert not desk.strategy()["metadata"].get("finalizers")
    patch_finalizers(["stratops.io/finalizer", "example.com/keep"])  # as an earlier release left it
    wait_for(
        lambda: desk.strategy()["metadata"].get("finalizers") == ["example.com/keep"],
        timeout=30,
        what="the earlier release's finalizer taken off, the others kept",
    )
    delete()
    patch_finalizers([])  # the other finalizer's owner releases it, as it would
    wait_for(lambda: not strategies(), timeout=60, what="the strategy gone")
    for made in (1, 2):
        uid = gitops.create("strategies", strategy_doc())["metadata"]["uid"]
        status = _known_good(desk, "1.4.2")
        assert desk.strategy()["metadata"]["uid"] == uid and status["revisionHistory"][-1]["version"] == "1.4.2"
        if made == 1:  # deleted with nothing holding it, and made again at once
            delete()
            wait_for(lambda: not strategies(), timeout=60, what="the strategy gone")


def test_failed_rollout_is_rolled_back_blocked_and_opens_an_incident(desk):
    desk.create("gates", desk.sign(example("gates/daily.yaml")))
    desk.create("strategies", strategy_doc())
    _known_good(desk, "1.4.2")
    desk.patch_spec(version="fail-2")
    wait_for(lambda: desk.version() == "fail-2", timeout=30, what="bad version rolled out")
    status = desk.wait_status(
        lambda s: any(b["version"] == "fail-2" for b in s.get("blockedVersions") or []), "fail-2 blocked", timeout=60
    )
    wait_for(lambda: desk.version() == "1.4.2", timeout=30, what="rolled back to 1.4.2")
    [incident] = [i for i in desk.incidents() if "fail-2" in i["spec"]["summary"]]
    assert incident["spec"]["class"] == "ConfigDrift"
    assert incident["status"]["steps"]["immediateAction"]["detail"].startswith("rolled back fail-2 -> 1.4.2")
    assert status["blockedVersions"][0]["incident"] == incident["metadata"]["name"]
    desk.wait_status(lambda s: s["phase"] == "Running" and s["activeVersion"] == "1.4.2", "running 1.4.2 again")
    # spec still names fail-2: a fresh reconcile (any change pokes it) keeps 1.4.2
    desk.patch_spec(replicas=2)
    desk.wait_status(lambda s: s["phase"] == "Running" and s.get("observedGeneration", 0) >= 3, "reconciled replicas 2")
    assert desk.version() == "1.4.2" and desk.deployment().spec.replicas == 2


def test_new_version_held_while_the_daily_gate_is_not_signed(desk):
    desk.create("strategies", strategy_doc())
    _known_good(desk, "1.4.2")
    desk.patch_spec(version="1.4.3")
    wait_for(lambda: desk.events("VersionHeld"), timeout=30, what="version held")
    assert "daily gate fx-daily is not found" in desk.events("VersionHeld")[0].message
    assert desk.version() == "1.4.2"
    desk.create("gates", desk.sign(example("gates/daily.yaml")))
    _known_good(desk, "1.4.3")


def test_manual_rollback_by_annotation(desk):
    desk.create("gates", desk.sign(example("gates/daily.yaml")))
    desk.create("strategies", strategy_doc())
    _known_good(desk, "1.4.2")
    desk.patch_spec(version="1.5.0")
    _known_good(desk, "1.5.0")
    desk.command("rollback", reason="fills look wrong")
    wait_for(lambda: desk.version() == "1.4.2", timeout=30, what="manual rollback")
    # The executor writes the Deployment before the status (see stratops.k8s.executor): wait for both
    status = desk.wait_status(lambda s: s.get("blockedVersions"), "1.5.0 blocked", timeout=30)
    assert [b["version"] for b in status["blockedVersions"]] == ["1.5.0"]
    # The command's annotation is cleared after the status write (stratops.k8s.executor): wait for it
    wait_for(
        lambda: "stratops.io/rollback" not in (desk.strategy()["metadata"].get("annotations") or {}),
        timeout=30,
        what="the rollback command cleared",
    )
    # Events are written after the Deployment and the status: wait for them
    assert "fills look wrong" in wait_for(lambda: desk.events("Rollback"), timeout=30, what="Rollback event")[0].message


def test_throttle_lowers_limits_and_never_raises_them(desk):
    desk.create("strategies", strategy_doc())
    _known_good(desk, "1.4.2")
    desk.command("throttle", reason="latency spike")
    wait_for(lambda: desk.control()["tradingState"] == "REDUCING", timeout=30, what="REDUCING")
    control = desk.control()
    assert control["limits"]["maxPosition"] == 1_000_000 and control["limits"]["maxOrderRate"] == 2.5
    desk.wait_status(lambda s: s.get("phase") == "Throttled", "phase Throttled")  # status follows the control write
    limits = copy.deepcopy(strategy_doc()["spec"]["riskLimits"])
    limits["maxPosition"] = 9_000_000
    desk.patch_spec(riskLimits=limits)
    desk.wait_status(lambda s: s.get("observedGeneration") == 2, "spec change seen")
    assert desk.control()["limits"]["maxPosition"] == 1_000_000
    assert desk.events("Throttle")


def test_kill_switch_halts_waits_for_ack_then_scales_to_zero_and_stays_latched(desk, operator):
    desk.create("strategies", strategy_doc())
    _known_good(desk, "1.4.2")
    desk.play_pods()
    wait_for(lambda: desk.status().get("control", {}).get("acknowledgedGeneration") == 1, timeout=30, what="first ack")
    desk.command("kill", reason="runaway orders")
    status = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "kill-switch completed")
    ks = status["killSwitch"]
    assert ks["latched"] and ks["acknowledged"] is True and ks["by"] == "alice"
    assert desk.control()["tradingState"] == "HALTED" and desk.control()["generation"] == ks["haltGeneration"]
    assert desk.deployment().spec.replicas == 0 and desk.running_pods() == []
    assert status["phase"] == "Halted"
    # latched: a spec change does not bring pods back
    desk.patch_spec(replicas=2, version="1.4.4")
    desk.wait_status(lambda s: s.get("observedGeneration") == 2, "spec change seen")
    assert desk.deployment().spec.replicas == 0 and desk.status()["killSwitch"]["latched"]
    metrics = httpx.get(operator["metrics"]).text
    count = next(line for line in metrics.splitlines() if line.startswith("stratops_kill_switch_seconds_count"))
    assert float(count.split()[-1]) >= 1
    assert f'stratops_actions_total{{action="kill_switch",namespace="{desk.ns}",strategy="{NAME}"}} 1.0' in metrics


def test_unacknowledged_halt_is_scaled_to_zero_at_the_deadline_and_reported(desk):
    doc = strategy_doc()
    doc["spec"]["killSwitch"] = {"ackDeadline": "2s"}
    desk.create("strategies", doc)
    _known_good(desk, "1.4.2")
    desk.command("kill", reason="test without acks")
    status = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "kill-switch completed")
    assert status["killSwitch"]["acknowledged"] is False
    [finding] = [i for i in desk.incidents() if i["spec"]["class"] == "StaleData"]
    assert finding["spec"]["severity"] == "P0" and "not acknowledged" in finding["spec"]["summary"]
    wait_for(lambda: desk.events("KillSwitchUnacknowledged"), timeout=30, what="KillSwitchUnacknowledged event")


def _incident(name: str, severity: str, cls: str = "RiskBreach") -> dict:
    return {
        "apiVersion": "stratops.io/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name},
        "spec": {"class": cls, "severity": severity, "strategy": NAME, "summary": f"{severity} test"},
    }


def test_p1_incident_throttles_and_p0_incident_kills(desk):
    desk.create("strategies", strategy_doc(killSwitch={"ackDeadline": "2s"}))
    _known_good(desk, "1.4.2")
    desk.create("incidents", _incident("slow-fills", "P1", "PnLDivergence"))
    wait_for(lambda: desk.control()["tradingState"] == "REDUCING", timeout=30, what="P1 throttles")
    desk.wait_status(lambda s: (s.get("throttle") or {}).get("incident") == "slow-fills", "throttle recorded")
    desk.create("incidents", _incident("limit-breach", "P0"))
    desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "P0 kills")
    assert desk.status()["killSwitch"]["incident"] == "limit-breach"
    inc = next(i for i in desk.incidents() if i["metadata"]["name"] == "limit-breach")
    assert "kill-switch" in inc["status"]["steps"]["immediateAction"]["detail"]


def test_resume_refused_until_resolved_reconciled_and_daily_signed_then_reducing_then_active(desk, cluster):
    desk.create("strategies", strategy_doc())
    _known_good(desk, "1.4.2")
    desk.play_pods()
    desk.create("incidents", _incident("breach", "P0"))
    desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "halted")
    desk.stop_pods()
    # The operator records containment itself once the safe state is observed (halted, 0 pods).
    inc = wait_for(
        lambda: (
            (
                (
                    i := desk.custom.get_namespaced_custom_object(
                        "stratops.io", "v1alpha1", desk.ns, "incidents", "breach"
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
    assert inc["status"]["steps"]["containment"]["by"] == "stratops-operator"
    assert inc["status"]["steps"]["containment"]["detail"].startswith("halted: HALTED")
    from typer.testing import CliRunner

    from stratops.cli.main import app

    res = CliRunner().invoke(
        app,
        ["incident", "show", "breach", "-n", desk.ns],
        env={"KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200"},
    )
    out = " ".join(res.output.split())
    assert res.exit_code == 0 and "Risk breach P0" in out and "P0 means: a hard limit breached" in out
    assert (
        "✓ containment" in out and "· postmortem to do:" in out and "runbook: stratops runbook show kill-switch" in out
    )

    desk.command("resume", reason="fixed", by="bob")
    wait_for(lambda: desk.events("ResumeRefused"), timeout=30, what="resume refused")
    msg = desk.events("ResumeRefused")[0].message
    assert "incidents not resolved: breach" in msg and "no reconciliation recorded" in msg
    assert "daily gate fx-daily not found" in msg
    assert desk.status()["killSwitch"]["latched"] and desk.deployment().spec.replicas == 0

    # resolving needs the postmortem: refused without it, accepted with it (CLI)
    desk.custom.patch_namespaced_custom_object(
        "stratops.io",
        "v1alpha1",
        desk.ns,
        "incidents",
        "breach",
        {"metadata": {"annotations": {"stratops.io/resolve": '{"by": "bob", "reason": "x"}'}}},
    )
    inc = wait_for(
        lambda: (
            (
                (
                    i := desk.custom.get_namespaced_custom_object(
                        "stratops.io", "v1alpha1", desk.ns, "incidents", "breach"
                    )
                ).get("status")
                or {}
            ).get("message")
            and i
        ),
        timeout=30,
        what="resolve refused",
    )
    assert "spec.postmortem (rootCause, actions, owner) is required" in inc["status"]["message"]
    assert inc["status"].get("phase") == "Contained"
    res = CliRunner().invoke(
        app,
        [
            "incident",
            "resolve",
            "breach",
            "-n",
            desk.ns,
            "--reason",
            "limit raised by mistake",
            "--root-cause",
            "limit typo in Git",
            "--action",
            "review limit PRs",
            "--owner",
            "risk",
        ],
        env={"KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    inc = desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "incidents", "breach")
    assert inc["status"]["phase"] == "Resolved" and inc["status"]["steps"]["postmortem"]["by"] == "admin"
    assert [
        k for k in ("detection", "immediateAction", "containment", "postmortem") if k in inc["status"]["steps"]
    ] == ["detection", "immediateAction", "containment", "postmortem"]
    desk.command("reconciliation", result="Matched", evidence="broker statement 2026-11-24 vs fills", by="ops")
    desk.wait_status(
        lambda s: (s.get("lastReconciliation") or {}).get("result") == "Matched", "reconciliation recorded"
    )
    desk.create("gates", desk.sign(example("gates/daily.yaml")))
    desk.command("resume", reason="fixed", by="bob")
    wait_for(lambda: desk.control()["tradingState"] == "REDUCING", timeout=30, what="REDUCING first")
    # the status write follows the control document's: wait for it rather than race it
    desk.wait_status(lambda s: not s["killSwitch"]["latched"], "kill-switch unlatched")
    wait_for(lambda: desk.running_pods(), timeout=30, what="pods back")
    desk.play_pods()
    wait_for(lambda: desk.control()["tradingState"] == "ACTIVE", timeout=60, what="then ACTIVE")
    status = desk.wait_status(
        lambda s: s.get("phase") == "Running" and s["resume"]["stage"] == "Active", "running again"
    )
    assert status["resume"]["by"] == "bob"


def test_promotion_refused_until_prelaunch_gate_signed(desk):
    doc = strategy_doc()
    desk.create("strategies", doc)
    gate = example("gates/pre-launch.yaml")
    desk.create("gates", gate)
    desk.wait_status(lambda s: s.get("phase") == "Running", "running on paper")
    # Refused at admission, before anything changes: the message names the missing items.
    with pytest.raises(ApiException) as refused:
        desk.patch_spec(mode="live")
    assert (
        refused.value.status == 403
        and "backtest-reviewed" in refused.value.body
        and "rollback-rehearsed" in refused.value.body
    )
    assert desk.strategy()["spec"]["mode"] == "paper" and desk.control()["mode"] == "paper"
    signed = desk.sign(gate, doc["spec"])
    desk.custom.patch_namespaced_custom_object(
        "stratops.io",
        "v1alpha1",
        desk.ns,
        "gates",
        gate["metadata"]["name"],
        {"spec": {"signatures": signed["spec"]["signatures"]}},
    )
    desk.patch_spec(mode="live")
    status = desk.wait_status(lambda s: s.get("mode") == "live", "promoted")
    assert desk.control()["mode"] == "live"
    assert status["approved"]["promotedBy"] == "admin" and sorted(status["approved"]["signers"]) == sorted(
        PRELAUNCH_SIGNERS
    )
    wait_for(lambda: desk.events("Promoted"), timeout=30, what="Promoted event")


def test_manual_change_of_the_deployment_is_reverted_and_recorded(desk):
    desk.create("strategies", strategy_doc())
    _known_good(desk, "1.4.2")
    desk.apps.patch_namespaced_deployment(
        NAME,
        desk.ns,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "strategy", "image": "registry.example/someone/else:latest"}]}
                }
            }
        },
    )
    wait_for(lambda: desk.events("ConfigDrift"), timeout=30, what="drift detected")
    wait_for(
        lambda: desk.version() == "1.4.2" and "mean-revert:1.4.2" in desk.image(), timeout=30, what="drift reverted"
    )
    drift = [i for i in desk.incidents() if "changed outside Git" in i["spec"]["summary"]]
    assert len(drift) == 1 and drift[0]["spec"]["class"] == "ConfigDrift"


def test_example_strategy_process_acknowledges_the_kill_switch(desk, cluster, tmp_path):
    """examples/strategy-app runs as a real process playing the pod: it applies HALTED and acks."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    desk.create("strategies", strategy_doc())
    status = _known_good(desk, "1.4.2")
    assert desk.strategy()["metadata"]["generation"] == 1  # the operator never writes spec
    [pod] = desk.running_pods()
    app = Path(__file__).resolve().parents[2] / "examples" / "strategy-app" / "paper_mean_revert.py"
    out = (tmp_path / "strategy.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(app), "--namespace", desk.ns, "--strategy", NAME, "--pod", pod, "--interval", "0.05"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: desk.status().get("control", {}).get("acknowledgedGeneration") == status["control"]["generation"],
            timeout=30,
            what="the example strategy's first ack",
        )
        desk.command("kill", reason="drill with the example strategy")
        status = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "kill-switch completed")
        assert status["killSwitch"]["acknowledged"] is True
    finally:
        proc.terminate()
        proc.wait(30)
        out.close()
    assert proc.returncode == 0, (tmp_path / "strategy.log").read_text()
