"""The on-call CLI against the local cluster: commands are attributed to the authenticated user."""

from __future__ import annotations

import pytest
from kubernetes import client
from typer.testing import CliRunner

from lifecycle_helpers import NAME, Desk, strategy_doc
from stratops.cli.main import app

pytestmark = pytest.mark.e2e


@pytest.fixture
def oncall(cluster, kube, namespace):
    """User 'carol' (client certificate) allowed to read and annotate strategies in the namespace."""
    rbac = client.RbacAuthorizationV1Api(kube)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "oncall"},
            "rules": [
                {"apiGroups": ["stratops.io"], "resources": ["strategies"], "verbs": ["get", "list", "watch", "patch"]}
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "oncall"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "oncall"},
            "subjects": [{"kind": "User", "name": "carol", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    return str(cluster.user_kubeconfig("carol"))


def test_kill_resume_and_status_from_the_cli(kube, namespace, operator, oncall):
    desk = Desk(kube, namespace)
    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good")
    desk.play_pods()
    runner = CliRunner()
    env = {"KUBECONFIG": oncall, "COLUMNS": "200"}
    try:
        res = runner.invoke(app, ["kill", NAME, "-n", namespace, "--reason", "cli drill"], env=env)
        assert res.exit_code == 0, res.output
        out = " ".join(res.output.split())  # rich wraps to the terminal width
        assert "halted" in out and "acknowledged by the strategy: True" in out
        ks = desk.status()["killSwitch"]
        assert ks["by"] == "carol" and ks["reason"] == "cli drill"

        res = runner.invoke(app, ["resume", NAME, "-n", namespace, "--reason", "too early"], env=env)
        out = " ".join(res.output.split())
        assert res.exit_code == 1 and "refused" in out and "no reconciliation recorded" in out

        res = runner.invoke(app, ["status", "-n", namespace], env=env)
        assert res.exit_code == 0 and NAME in res.output and "HALTED" in res.output
        res = runner.invoke(app, ["status", "-n", namespace, "-o", "json"], env=env)
        import json

        [obj] = json.loads(res.output)
        assert obj["status"]["killSwitch"]["by"] == "carol" and obj["status"]["tradingState"] == "HALTED"
        res = runner.invoke(app, ["status", "-n", namespace, "-o", "xml"], env=env)
        assert res.exit_code == 1 and "--output must be table, wide, json or yaml" in res.output
        res = runner.invoke(app, ["status", "-n", namespace, "-o", "wide"], env=env)
        assert res.exit_code == 0 and "UNSIGNED GATES" in " ".join(res.output.split()), res.output

        res = runner.invoke(app, ["kill", "no-such", "-n", namespace, "--reason", "x"], env=env)
        assert res.exit_code == 1 and "strategy no-such not found" in " ".join(res.output.split())
        assert "Traceback" not in res.output
    finally:
        desk.stop_pods()


def test_user_without_rights_gets_a_clear_error(cluster, kube, namespace, operator):
    desk = Desk(kube, namespace)
    desk.create("strategies", strategy_doc())
    res = CliRunner().invoke(
        app,
        ["kill", NAME, "-n", namespace, "--reason", "x"],
        env={"KUBECONFIG": str(cluster.user_kubeconfig("mallory"))},
    )
    out = " ".join(res.output.split())
    assert res.exit_code == 1 and "cannot read strategy" in out and "Forbidden" in out
    assert "stratops.io/kill" not in (desk.strategy()["metadata"].get("annotations") or {})
