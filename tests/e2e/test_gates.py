"""Gates on the local cluster: signatures attributable through the admission webhook (two users
with their own client certificates, RBAC on), status and expiry, the CLI."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from typer.testing import CliRunner

from cases import example
from lifecycle_helpers import Desk, strategy_doc
from stratops.cli.main import app
from stratops.testing.fixtures import use_existing_cluster
from stratops.testing.wait import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(use_existing_cluster(), reason="the webhook is served on this host")]
GITOPS = "system:serviceaccount:argocd:argocd-application-controller"


@pytest.fixture
def users(cluster, kube, namespace):
    """alice (a risk owner), bob, mallory and the GitOps controller may edit gates and read
    strategies; the GitOps controller may also write signatures on behalf of their signers."""
    rbac = client.RbacAuthorizationV1Api(kube)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "signer"},
            "rules": [
                {
                    "apiGroups": ["stratops.io"],
                    "resources": ["gates"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch"],
                },
                {"apiGroups": ["stratops.io"], "resources": ["strategies"], "verbs": ["get", "list"]},
            ],
        },
    )
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "gitops"},
            "rules": [
                {"apiGroups": ["stratops.io"], "resources": ["gates"], "verbs": ["sign-for-others", "edit-checklist"]}
            ],
        },
    )
    names = ["alice", "bob", "mallory", GITOPS]
    for role, who in (("signer", names), ("gitops", [GITOPS])):
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": role},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [{"kind": "User", "name": n, "apiGroup": "rbac.authorization.k8s.io"} for n in who],
            },
        )
    groups = {"alice": ("stratops:risk-owners",), "bob": ("stratops:traders",), "mallory": ("stratops:traders",)}
    return {n: cluster.user_kubeconfig(n, groups.get(n, ())) for n in names}


def _as(cluster, kubeconfig) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api_client(kubeconfig))


def _sig(item: str, signer: str, at: datetime | None = None, **extra) -> dict:
    return {
        "item": item,
        "signer": signer,
        "signedAt": (at or datetime.now(UTC)).isoformat(),
        "evidence": "checked",
        **extra,
    }


def _patch_sigs(api: client.CustomObjectsApi, ns: str, gate: str, sigs: list[dict]) -> None:
    api.patch_namespaced_custom_object("stratops.io", "v1alpha1", ns, "gates", gate, {"spec": {"signatures": sigs}})


def _refusal(fn) -> str:
    with pytest.raises(ApiException) as info:
        fn()
    assert info.value.status == 403, info.value.body
    return json.loads(info.value.body)["message"]


def _gate_status(desk: Desk, name: str) -> dict:
    return (
        desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", desk.ns, "gates", name).get("status") or {}
    )


def test_signatures_are_attributable(cluster, kube, namespace, operator, users):
    desk = Desk(kube, namespace)
    gate = example("gates/weekly.yaml")
    name = gate["metadata"]["name"]
    alice, bob, mallory = (_as(cluster, users[u]) for u in ("alice", "bob", "mallory"))
    alice.create_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", gate)

    # bob cannot sign as alice (the API server's own check: no operator needed)
    msg = _refusal(lambda: _patch_sigs(bob, namespace, name, [_sig("tickets-groomed", "alice")]))
    assert "spec.signatures[tickets-groomed]: signer is alice but the request is made by bob" in msg
    # alice signs as alice, bob as bob
    _patch_sigs(alice, namespace, name, [_sig("tickets-groomed", "alice")])
    current = desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", name)["spec"][
        "signatures"
    ]
    _patch_sigs(bob, namespace, name, current + [_sig("alert-noise-audited", "bob")])
    # mallory can neither remove nor alter alice's signature
    both = desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", name)["spec"][
        "signatures"
    ]
    msg = _refusal(lambda: _patch_sigs(mallory, namespace, name, [s for s in both if s["item"] != "tickets-groomed"]))
    assert "spec.signatures[tickets-groomed]: signed by alice; only they may change or remove their signature" in msg
    altered = [dict(s, evidence="forged") if s["item"] == "tickets-groomed" else s for s in current] + [
        _sig("alert-noise-audited", "bob")
    ]
    assert "signer is alice but the request is made by mallory" in _refusal(
        lambda: _patch_sigs(mallory, namespace, name, altered)
    )
    # a signer may not edit the checklist: its items are the risk owners' and Git's
    items = copy.deepcopy(gate["spec"]["items"])
    items[0]["text"] = "Tickets looked at, more or less"
    msg = _refusal(
        lambda: alice.patch_namespaced_custom_object(
            "stratops.io", "v1alpha1", namespace, "gates", name, {"spec": {"items": items}}
        )
    )
    assert "alice may sign this gate but not change its checklist" in msg
    # a signature is dated when it is made: neither ahead nor back
    signed = desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", name)["spec"][
        "signatures"
    ]
    for at in (datetime.now(UTC) + timedelta(minutes=4), datetime.now(UTC) - timedelta(days=1)):
        msg = _refusal(lambda: _patch_sigs(alice, namespace, name, signed + [_sig("drift-reviewed", "alice", at)]))
        assert "spec.signatures[drift-reviewed].signedAt" in msg and "is not the time of signing" in msg

    st = wait_for(lambda: (s := _gate_status(desk, name)).get("signed") == "2/3" and s, timeout=30, what="status 2/3")
    assert st["state"] == "Incomplete" and st["missingItems"] == ["drift-reviewed"]


def test_gitops_identity_may_apply_signatures_others_may_not(cluster, kube, namespace, operator, users):
    gate = example("gates/monthly.yaml")
    gate["spec"]["signatures"] = [_sig(i["id"], "alice") for i in gate["spec"]["items"]]
    msg = _refusal(
        lambda: _as(cluster, users["bob"]).create_namespaced_custom_object(
            "stratops.io", "v1alpha1", namespace, "gates", gate
        )
    )
    assert "signer is alice but the request is made by bob" in msg
    _as(cluster, users[GITOPS]).create_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", gate)
    desk = Desk(kube, namespace)
    wait_for(
        lambda: _gate_status(desk, gate["metadata"]["name"]).get("state") == "Complete", timeout=30, what="complete"
    )


def test_expiry_moves_the_state(kube, namespace, operator):
    desk = Desk(kube, namespace)
    gate = example("gates/weekly.yaml")
    soon = datetime.now(UTC) - timedelta(days=7) + timedelta(seconds=4)
    gate["spec"]["signatures"] = [_sig(i["id"], "admin", soon) for i in gate["spec"]["items"]]
    desk.create("gates", gate)
    name = gate["metadata"]["name"]
    wait_for(lambda: _gate_status(desk, name).get("state") == "Complete", timeout=30, what="complete")
    st = wait_for(lambda: (s := _gate_status(desk, name)).get("state") == "Expired" and s, timeout=60, what="expired")
    assert st["signed"] == "0/3" and "expired" in st["message"]


def test_prelaunch_signed_with_the_cli_promotes_and_a_new_version_needs_it_again(
    cluster, kube, namespace, operator, users, tmp_path
):
    desk = Desk(kube, namespace)
    desk.create("gates", desk.sign(example("gates/daily.yaml")))
    gate = example("gates/pre-launch.yaml")
    name = gate["metadata"]["name"]
    desk.create("gates", gate)
    doc = strategy_doc()
    desk.create("strategies", doc)
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good on paper")
    runner = CliRunner()
    alice = {"KUBECONFIG": str(users["alice"]), "COLUMNS": "200"}
    bob = {"KUBECONFIG": str(users["bob"]), "COLUMNS": "200"}
    risk_items = [i["id"] for i in gate["spec"]["items"] if i.get("signers")]
    other_items = [i["id"] for i in gate["spec"]["items"] if not i.get("signers")]
    assert risk_items and other_items

    def sign(env: dict, items: list[str], *extra: str) -> str:
        res = runner.invoke(
            app, ["gate", "sign", name, *items, "-n", namespace, "-e", "https://wiki/launch-review", *extra], env=env
        )
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    # a risk item is the risk owners' only
    res = runner.invoke(app, ["gate", "sign", name, risk_items[0], "-n", namespace, "-e", "x"], env=bob)
    assert (
        res.exit_code == 1
        and "may be signed only by members of stratops:risk-owners; bob is in stratops:traders"
        in " ".join(res.output.split())
    )
    assert "as alice for mean-revert:1.4.2:" in sign(alice, risk_items)
    # one signer does not promote: refused before anything changes
    res = runner.invoke(
        app,
        ["promote", "mean-revert", "-n", namespace, "--reason", "launch", "--no-wait"],
        env={"KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200"},
    )
    assert res.exit_code == 1 and "missing " + ", ".join(other_items) in " ".join(res.output.split())
    sign(bob, other_items)
    st = wait_for(lambda: (s := _gate_status(desk, name)).get("state") == "Complete" and s, timeout=30, what="complete")
    assert st["signed"] == "6/6" and st["signers"] == ["alice", "bob"]
    res = runner.invoke(
        app,
        ["promote", "mean-revert", "-n", namespace, "--reason", "launch"],
        env={"KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    assert desk.status()["approved"]["signers"] == ["alice", "bob"]

    # a new version on a live strategy: refused at admission until signed for it
    msg = _refusal(lambda: desk.patch_spec(version="1.5.0"))
    assert "spec.version changed on a live strategy without the pre-launch signatures for the new spec" in msg
    assert desk.version() == "1.4.2" and desk.strategy()["spec"]["version"] == "1.4.2"
    # signed for the change before it is applied (--for the changed manifest), then applied
    changed = copy.deepcopy(desk.strategy())
    changed["spec"]["version"] = "1.5.0"
    path = tmp_path / "strategy.yaml"
    path.write_text(yaml.safe_dump({k: changed[k] for k in ("apiVersion", "kind", "metadata", "spec")}))
    assert "for mean-revert:1.5.0:" in sign(alice, risk_items, "--for", str(path))
    sign(bob, other_items, "--for", str(path))
    desk.patch_spec(version="1.5.0")
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.5.0", "1.5.0 rolled out and known-good")
    assert desk.status()["approved"]["subject"].startswith("mean-revert:1.5.0:")
    wait_for(lambda: desk.events("ChangeApproved"), timeout=30, what="ChangeApproved event")

    res = runner.invoke(app, ["gate", "sign", "no-such-gate", "x", "-n", namespace, "-e", "x"], env=alice)
    assert res.exit_code == 1 and "gate no-such-gate not found" in res.output
    wait_for(lambda: _gate_status(desk, name).get("state") == "Complete", timeout=30, what="complete for 1.5.0")
    res = runner.invoke(app, ["gate", "audit", "--cadence", "preLaunch", "-n", namespace], env=alice)
    assert res.exit_code == 0 and "all complete" in res.output and "last signed by bob" in " ".join(res.output.split())
    desk.custom.patch_namespaced_custom_object(
        "stratops.io",
        "v1alpha1",
        namespace,
        "gates",
        "fx-daily",
        {
            "spec": {
                "signatures": [
                    s
                    for s in desk.custom.get_namespaced_custom_object(
                        "stratops.io", "v1alpha1", namespace, "gates", "fx-daily"
                    )["spec"]["signatures"]
                    if s["item"] != "limits-verified"
                ]
            }
        },
    )
    wait_for(lambda: _gate_status(desk, "fx-daily").get("state") == "Incomplete", timeout=30, what="daily incomplete")
    res = runner.invoke(app, ["gate", "audit", "--cadence", "daily", "-n", namespace], env=alice)
    assert (
        res.exit_code == 1 and "ATTENTION" in res.output and "missing limits-verified" in " ".join(res.output.split())
    )
