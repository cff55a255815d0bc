"""Gates on the local cluster: signatures attributable through the admission webhook (two users
with their own client certificates, RBAC on), status and expiry, the CLI."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest
from cases import example
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from lifecycle_helpers import Desk, strategy_doc
from typer.testing import CliRunner

from stratops.cli.main import app
from stratops.testing.fixtures import use_existing_cluster
from stratops.testing.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(use_existing_cluster(), reason="the webhook is served on this host")]
GITOPS = "system:serviceaccount:argocd:argocd-application-controller"


@pytest.fixture
def users(cluster, kube, namespace):
    """alice, bob and the GitOps controller may edit gates and read strategies; so may mallory."""
    rbac = client.RbacAuthorizationV1Api(kube)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "signer"}, "rules": [
        {"apiGroups": ["stratops.io"], "resources": ["gates"], "verbs": ["get", "list", "watch", "create", "update", "patch"]},
        {"apiGroups": ["stratops.io"], "resources": ["strategies"], "verbs": ["get", "list"]}]})
    names = ["alice", "bob", "mallory", GITOPS]
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "signer"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "signer"},
        "subjects": [{"kind": "User", "name": n, "apiGroup": "rbac.authorization.k8s.io"} for n in names]})
    return {n: cluster.user_kubeconfig(n) for n in names}


def _as(cluster, kubeconfig) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api_client(kubeconfig))


def _sig(item: str, signer: str, at: datetime | None = None, **extra) -> dict:
    return {"item": item, "signer": signer, "signedAt": (at or datetime.now(timezone.utc)).isoformat(), "evidence": "checked", **extra}


def _patch_sigs(api: client.CustomObjectsApi, ns: str, gate: str, sigs: list[dict]) -> None:
    api.patch_namespaced_custom_object("stratops.io", "v1alpha1", ns, "gates", gate, {"spec": {"signatures": sigs}})


def _refusal(fn) -> str:
    with pytest.raises(ApiException) as info:
        fn()
    assert info.value.status == 403, info.value.body
    return json.loads(info.value.body)["message"]


def _gate_status(desk: Desk, name: str) -> dict:
    return desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "gates", name).get("status") or {}


def test_signatures_are_attributable(cluster, kube, namespace, operator, users):
    desk = Desk(kube, namespace)
    gate = example("gates/weekly.yaml")
    name = gate["metadata"]["name"]
    alice, bob, mallory = (_as(cluster, users[u]) for u in ("alice", "bob", "mallory"))
    alice.create_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", gate)

    # bob cannot sign as alice
    msg = _refusal(lambda: _patch_sigs(bob, namespace, name, [_sig("tickets-groomed", "alice")]))
    assert "signer is 'alice' but the request is made by 'bob'" in msg
    # alice signs as alice, bob as bob
    _patch_sigs(alice, namespace, name, [_sig("tickets-groomed", "alice")])
    current = desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", name)["spec"]["signatures"]
    _patch_sigs(bob, namespace, name, current + [_sig("alert-noise-audited", "bob")])
    # mallory can neither remove nor alter alice's signature
    msg = _refusal(lambda: _patch_sigs(mallory, namespace, name, [s for s in current if s["item"] != "tickets-groomed"] + [_sig("alert-noise-audited", "bob")]))
    assert "signed by 'alice'; only they may remove their signature" in msg
    altered = [dict(s, evidence="forged") if s["item"] == "tickets-groomed" else s for s in current] + [_sig("alert-noise-audited", "bob")]
    assert "only they may change their signature" in _refusal(lambda: _patch_sigs(mallory, namespace, name, altered))
    # the text of a signed item cannot change, even for its signer
    items = copy.deepcopy(gate["spec"]["items"])
    items[0]["text"] = "Tickets looked at, more or less"
    msg = _refusal(lambda: alice.patch_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", name, {"spec": {"items": items}}))
    assert "spec.items[tickets-groomed].text cannot change after the item was signed" in msg
    # a future-dated signature is refused
    assert "in the future" in _refusal(lambda: _patch_sigs(alice, namespace, name, current + [
        _sig("alert-noise-audited", "bob"), _sig("drift-reviewed", "alice", datetime.now(timezone.utc) + timedelta(days=1))]))

    st = wait_for(lambda: (s := _gate_status(desk, name)).get("signed") == "2/3" and s, timeout=30, what="status 2/3")
    assert st["state"] == "Incomplete" and st["missingItems"] == ["drift-reviewed"]


def test_gitops_identity_may_apply_signatures_others_may_not(cluster, kube, namespace, operator, users):
    gate = example("gates/monthly.yaml")
    gate["spec"]["signatures"] = [_sig(i["id"], "alice") for i in gate["spec"]["items"]]
    msg = _refusal(lambda: _as(cluster, users["bob"]).create_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", gate))
    assert "request is made by 'bob'" in msg
    _as(cluster, users[GITOPS]).create_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", gate)
    desk = Desk(kube, namespace)
    wait_for(lambda: _gate_status(desk, gate["metadata"]["name"]).get("state") == "Complete", timeout=30, what="complete")


def test_expiry_moves_the_state(kube, namespace, operator):
    desk = Desk(kube, namespace)
    gate = example("gates/weekly.yaml")
    soon = datetime.now(timezone.utc) - timedelta(days=7) + timedelta(seconds=4)
    gate["spec"]["signatures"] = [_sig(i["id"], "admin", soon) for i in gate["spec"]["items"]]
    desk.create("gates", gate)
    name = gate["metadata"]["name"]
    wait_for(lambda: _gate_status(desk, name).get("state") == "Complete", timeout=30, what="complete")
    st = wait_for(lambda: (s := _gate_status(desk, name)).get("state") == "Expired" and s, timeout=60, what="expired")
    assert st["signed"] == "0/3" and "expired" in st["message"]


def test_prelaunch_signed_with_the_cli_promotes_and_a_new_version_needs_it_again(cluster, kube, namespace, operator, users):
    desk = Desk(kube, namespace)
    desk.create("gates", desk.sign(example("gates/daily.yaml")))
    gate = example("gates/pre-launch.yaml")
    desk.create("gates", gate)
    desk.create("strategies", strategy_doc(mode="live"))
    desk.wait_status(lambda s: any(c["type"] == "Promoted" and c["reason"] == "GatesIncomplete" for c in s.get("conditions") or []), "blocked")
    runner = CliRunner()
    env = {"KUBECONFIG": str(users["alice"]), "COLUMNS": "200"}
    res = runner.invoke(app, ["gate", "sign", gate["metadata"]["name"], "--all", "-n", namespace, "-e", "https://wiki/launch-review"], env=env)
    assert res.exit_code == 0, res.output
    assert "as alice for mean-revert:1.4.2:" in " ".join(res.output.split())
    desk.wait_status(lambda s: s.get("mode") == "live", "promoted")
    st = wait_for(lambda: (s := _gate_status(desk, gate["metadata"]["name"])).get("state") == "Complete" and s, timeout=30, what="complete")
    assert st["signed"] == "6/6"

    desk.patch_spec(version="1.5.0")
    wait_for(lambda: _gate_status(desk, gate["metadata"]["name"]).get("state") == "Incomplete", timeout=30,
             what="pre-launch signatures no longer valid for 1.5.0")
    wait_for(lambda: desk.events("VersionHeld"), timeout=30, what="1.5.0 held")
    assert desk.version() == "1.4.2"

    res = runner.invoke(app, ["gate", "sign", "no-such-gate", "x", "-n", namespace, "-e", "x"], env=env)
    assert res.exit_code == 1 and "gate no-such-gate not found" in res.output
    res = runner.invoke(app, ["gate", "audit", "--cadence", "preLaunch", "-n", namespace], env=env)
    assert res.exit_code == 1 and "ATTENTION" in res.output and "last signed by alice" in " ".join(res.output.split())
    res = runner.invoke(app, ["gate", "audit", "--cadence", "daily", "-n", namespace], env=env)
    assert res.exit_code == 0 and "all complete" in res.output
