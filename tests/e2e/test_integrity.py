"""Nothing goes live, and nothing on a live strategy changes, without the right signatures: the
attacks of a desk's own users, each tried as the user who would try it, with the chart's Roles
as rendered (trader, risk owner, GitOps), and each refused with the field named.

People: tina and tom are traders (group stratops:traders), rita and rob risk owners (group
stratops:risk-owners), the GitOps controller applies what Git holds. The admin creates the
strategies and gates, as the GitOps controller would.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from typer.testing import CliRunner

from cases import DIGEST, example, pinned
from lifecycle_helpers import GITOPS, NAME, Desk, grant_chart_roles, strategy_doc
from stratops import GROUP, VERSION
from stratops.cli.main import app
from stratops.testing.fixtures import use_existing_cluster
from stratops.testing.wait import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(use_existing_cluster(), reason="the webhooks are served on this host"),
]
PRELAUNCH = "mean-revert-pre-launch"
RISK_ITEMS = [i["id"] for i in example("gates/pre-launch.yaml")["spec"]["items"] if i.get("signers")]
OTHER_ITEMS = [i["id"] for i in example("gates/pre-launch.yaml")["spec"]["items"] if not i.get("signers")]


@pytest.fixture
def people(cluster, kube, namespace, tmp_path) -> dict[str, Path]:
    return grant_chart_roles(cluster, kube, namespace, tmp_path)


@pytest.fixture
def desk(kube, namespace, operator):
    d = Desk(kube, namespace)
    d.create("gates", d.sign(example("gates/daily.yaml")))
    d.keep_playing()
    yield d
    d.stop_pods()


def _as(cluster, kubeconfig: Path) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api_client(kubeconfig))


def desk_as(cluster, kubeconfig: Path, desk: Desk) -> Desk:
    """DESK's helpers (patch_spec, …) through another user's client."""
    return Desk(cluster.api_client(kubeconfig), desk.ns)


def _patch(
    api: client.CustomObjectsApi, ns: str, plural: str, name: str, body: object, json_patch: bool = False
) -> None:
    if json_patch:
        api.api_client.set_default_header("Content-Type", "application/json-patch+json")
    try:
        api.patch_namespaced_custom_object(GROUP, VERSION, ns, plural, name, body)
    finally:
        api.api_client.default_headers.pop("Content-Type", None)


def _refused(fn, status: int = 403) -> str:
    """The API server's message refusing FN (which must be refused with STATUS)."""
    with pytest.raises(ApiException) as info:
        fn()
    assert info.value.status == status, info.value.body
    return " ".join(str(json.loads(info.value.body)["message"]).split())


def _cli(kubeconfig: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env={"KUBECONFIG": str(kubeconfig), "COLUMNS": "300"})
    return res.exit_code, " ".join(res.output.split())


def _sign(kubeconfig: Path, namespace: str, items: list[str], *extra: str) -> str:
    code, out = _cli(kubeconfig, "gate", "sign", PRELAUNCH, *items, "-n", namespace, "-e", "launch review", *extra)
    assert code == 0, out
    return out


def _launch(desk: Desk) -> None:
    desk.create("gates", example("gates/pre-launch.yaml"))
    desk.create("strategies", strategy_doc())
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good on paper")


def _go_live(desk: Desk, people: dict[str, Path], by: str = "tina") -> dict:
    """Four eyes: rita signs the risk items, tom the rest; BY promotes."""
    _sign(people["rita"], desk.ns, RISK_ITEMS)
    _sign(people["tom"], desk.ns, OTHER_ITEMS)
    code, out = _cli(people[by], "promote", NAME, "-n", desk.ns, "--reason", "launch approved")
    assert code == 0, out
    return desk.wait_status(lambda s: s.get("mode") == "live", "live")


# -- attack 1: unsign by editing items -------------------------------------------------------------
def test_a_trader_cannot_unsign_a_gate_by_editing_its_items(cluster, desk, people):
    _launch(desk)
    _sign(people["rita"], desk.ns, RISK_ITEMS)
    tina, rita = _as(cluster, people["tina"]), _as(cluster, people["rita"])
    gate = desk.custom.get_namespaced_custom_object(GROUP, VERSION, desk.ns, "gates", PRELAUNCH)
    unrequire = [
        {"op": "replace", "path": f"/spec/items/{n}/required", "value": False}
        for n, i in enumerate(gate["spec"]["items"])
        if i["id"] not in RISK_ITEMS
    ]
    msg = _refused(lambda: _patch(tina, desk.ns, "gates", PRELAUNCH, unrequire, json_patch=True))
    assert "tina may sign this gate but not change its checklist (spec.items, strategies, minSigners, session)" in msg
    only_signed = [i for i in gate["spec"]["items"] if i["id"] in RISK_ITEMS]
    msg = _refused(lambda: _patch(tina, desk.ns, "gates", PRELAUNCH, {"spec": {"items": only_signed}}))
    assert "may sign this gate but not change its checklist" in msg
    # not even a risk owner, once it carries a signature: the checklist is frozen (Git changes it)
    msg = _refused(lambda: _patch(rita, desk.ns, "gates", PRELAUNCH, unrequire, json_patch=True))
    assert (
        "the checklist (spec.items, strategies, minSigners, session) is frozen once the gate carries a signature" in msg
    )
    msg = _refused(lambda: desk_as(cluster, people["tina"], desk).patch_spec(mode="live"))
    assert "spec.mode: live without the pre-launch signatures" in msg and "missing " + ", ".join(OTHER_ITEMS) in msg
    assert desk.strategy()["spec"]["mode"] == "paper" and desk.status()["mode"] == "paper"


# -- attack 2: the wrong cadence ------------------------------------------------------------------------
def test_the_prelaunch_gate_must_be_of_cadence_prelaunch(cluster, desk, people):
    _launch(desk)
    tina = desk_as(cluster, people["tina"], desk)
    weekly = example("gates/weekly.yaml")
    desk.create("gates", weekly)
    msg = _refused(
        lambda: _patch(
            tina.custom,
            desk.ns,
            "gates",
            weekly["metadata"]["name"],
            {"spec": {"strategies": [*weekly["spec"]["strategies"], "another-strategy"]}},
        )
    )
    assert "may sign this gate but not change its checklist" in msg
    gates = {**desk.strategy()["spec"]["gates"], "preLaunch": "fx-daily"}  # the daily gate: signed, and lists it
    msg = _refused(lambda: tina.patch_spec(gates=gates))
    assert "spec.gates.preLaunch: gate fx-daily has cadence daily; name a gate of cadence preLaunch" in msg
    msg = _refused(lambda: tina.patch_spec(gates=gates, mode="live"))
    assert "gate fx-daily has cadence daily, not preLaunch" in msg
    assert desk.status()["mode"] == "paper"


# -- attack 3: change a live strategy unsigned ---------------------------------------------------------
def test_a_live_strategy_changes_only_with_fresh_signatures(cluster, desk, people, tmp_path):
    _launch(desk)
    status = _go_live(desk, people)
    assert status["approved"]["promotedBy"] == "tina" and status["approved"]["signers"] == ["rita", "tom"]
    approved = status["approved"]["hash"]
    assert len(approved) == 64 and status["approved"]["subject"] == f"{NAME}:1.4.2:{approved}"  # the full SHA-256
    # every declared limit reaches the strategy's pods, for its SDK to enforce before an order goes
    controls = desk.control()["controls"]
    assert (
        controls["maxOrderValue"] == 500000
        and controls["venues"] == ["LMAX", "EBS"]
        and controls["priceCollarBps"] == 50
    )
    tina, rita = desk_as(cluster, people["tina"], desk), desk_as(cluster, people["rita"], desk)
    spec = desk.strategy()["spec"]
    changes = {
        "image": pinned(spec["image"], "sha256:" + "ee" * 32),
        "brokers": {
            **spec["brokers"],
            "primary": {**spec["brokers"]["primary"], "endpoint": "fix://elsewhere.example:9876"},
        },
        "podTemplate": {
            **spec["podTemplate"],
            "env": [*spec["podTemplate"]["env"], {"name": "RISK_MODE", "value": "off"}],
        },
        "replicas": 2,
        "throttle": {"factor": 0.99},
    }
    for field, value in changes.items():
        msg = _refused(lambda: tina.patch_spec(**{field: value}))
        assert f"spec.{field} changed on a live strategy without the pre-launch signatures for the new spec" in msg, msg
        assert f"Have two people (not the author) sign the items of gate {PRELAUNCH}" in msg
    # kill-switch settings: not a trader's at all; a risk owner's only with fresh signatures; bounded
    msg = _refused(lambda: tina.patch_spec(killSwitch={"ackDeadline": "60s"}))
    assert "spec.killSwitch: tina may not change kill-switch settings" in msg
    msg = _refused(lambda: rita.patch_spec(killSwitch={"ackDeadline": "60s"}))
    assert "spec.killSwitch changed on a live strategy without the pre-launch signatures" in msg
    msg = _refused(lambda: rita.patch_spec(killSwitch={"ackDeadline": "9999h"}), status=422)
    assert "spec.killSwitch.ackDeadline" in msg and "must be at most 120s" in msg
    assert (
        desk.image() == f"registry.example/fx-desk/mean-revert:1.4.2@{DIGEST}" and desk.deployment().spec.replicas == 1
    )
    assert desk.status()["approved"]["hash"] == approved

    # the change, signed for first by two people (not its author), then applied by its author
    changed = copy.deepcopy(desk.strategy())
    changed["spec"]["replicas"] = 2
    path = tmp_path / "mean-revert.yaml"
    path.write_text(yaml.safe_dump({k: changed[k] for k in ("apiVersion", "kind", "metadata", "spec")}))
    _sign(people["rita"], desk.ns, RISK_ITEMS, "--for", str(path))
    _sign(people["tom"], desk.ns, OTHER_ITEMS, "--for", str(path))
    tina.patch_spec(replicas=2)
    status = desk.wait_status(lambda s: s["approved"]["hash"] != approved, "the change approved")
    assert status["approved"]["author"] == "tina" and status["approved"]["spec"]["replicas"] == 2
    wait_for(lambda: desk.deployment().spec.replicas == 2, timeout=30, what="two pods")


# -- attack 4: one person does it all ------------------------------------------------------------------
def test_separation_of_duties(cluster, desk, people):
    """The author's own signature is refused; one signer does not promote; two distinct signers
    from the right groups do."""
    _launch(desk)
    tina = desk_as(cluster, people["tina"], desk)
    tina.patch_spec(replicas=2)  # tina is now the author of the trading-relevant spec
    assert desk.strategy()["metadata"]["annotations"]["stratops.io/trading-author"] == "tina"
    code, out = _cli(people["tina"], "gate", "sign", PRELAUNCH, "--all", "-n", desk.ns, "-e", "all good")
    assert code == 1 and f"item {RISK_ITEMS[0]} may be signed only by members of stratops:risk-owners" in out
    code, out = _cli(people["tina"], "gate", "sign", PRELAUNCH, *OTHER_ITEMS, "-n", desk.ns, "-e", "all good")
    assert (
        code == 1
        and f"tina last changed the trading-relevant spec of {NAME}, so may not sign its pre-launch items" in out
    )
    # one signer does not promote
    _sign(people["rita"], desk.ns, RISK_ITEMS + OTHER_ITEMS)
    code, out = _cli(people["tina"], "promote", NAME, "-n", desk.ns, "--reason", "go")
    assert code == 1 and "needs 2 distinct signers, has 1 (rita)" in out
    assert desk.strategy()["spec"]["mode"] == "paper"
    # two distinct signers, each from the groups their items name, do
    gate = desk.custom.get_namespaced_custom_object(GROUP, VERSION, desk.ns, "gates", PRELAUNCH)
    _patch(
        _as(cluster, people["rita"]),
        desk.ns,
        "gates",
        PRELAUNCH,
        {"spec": {"signatures": [s for s in gate["spec"]["signatures"] if s["item"] in RISK_ITEMS]}},
    )
    _sign(people["tom"], desk.ns, OTHER_ITEMS)
    code, out = _cli(people["tina"], "promote", NAME, "-n", desk.ns, "--reason", "four eyes")
    assert code == 0, out
    assert desk.status()["approved"]["signers"] == ["rita", "tom"] and desk.status()["approved"]["author"] == "tina"


# -- attack 5: self-service re-arm -------------------------------------------------------------------------
def test_nobody_adds_themselves_to_rearm_by_and_rearms(cluster, desk, people):
    desk.create("strategies", strategy_doc(killSwitch={"ackDeadline": "20s", "rearmBy": ["rita"]}))
    desk.wait_status(lambda s: s.get("phase") == "Running", "running")
    tina, rob = desk_as(cluster, people["tina"], desk), desk_as(cluster, people["rob"], desk)
    rearm = {"stratops.io/rearm": json.dumps({"by": "tina", "reason": "I can"})}
    patch = {
        "metadata": {"annotations": rearm},
        "spec": {"killSwitch": {"ackDeadline": "20s", "rearmBy": ["rita", "tina"]}},
    }
    msg = _refused(lambda: _patch(tina.custom, desk.ns, "strategies", NAME, patch))
    assert (
        "the re-arm must be given by one of spec.killSwitch.rearmBy as it was before this request (rita), not tina"
        in msg
    )
    msg = _refused(lambda: _patch(tina.custom, desk.ns, "strategies", NAME, {"spec": patch["spec"]}))
    assert "spec.killSwitch: tina may not change kill-switch settings" in msg
    # a risk owner may change them, but not to re-arm in the same breath: the old list decides
    rearm = {"stratops.io/rearm": json.dumps({"by": "rob", "reason": "I can"})}
    patch = {
        "metadata": {"annotations": rearm},
        "spec": {"killSwitch": {"ackDeadline": "20s", "rearmBy": ["rita", "rob"]}},
    }
    msg = _refused(lambda: _patch(rob.custom, desk.ns, "strategies", NAME, patch))
    assert (
        "the re-arm must be given by one of spec.killSwitch.rearmBy as it was before this request (rita), not rob"
        in msg
    )
    assert desk.strategy()["spec"]["killSwitch"]["rearmBy"] == ["rita"]


# -- attack 6: commands while no operator runs ------------------------------------------------------------
def test_the_api_server_refuses_a_forged_command_with_no_operator_running(
    cluster, kube, operator, own_namespace, tmp_path
):
    """A namespace no operator serves and no webhook reaches: the admission policies alone."""
    people = grant_chart_roles(cluster, kube, own_namespace, tmp_path)
    desk = Desk(kube, own_namespace)
    desk.create("strategies", strategy_doc())
    tina = _as(cluster, people["tina"])

    def annotate(value: str) -> None:
        _patch(tina, own_namespace, "strategies", NAME, {"metadata": {"annotations": {"stratops.io/kill": value}}})

    msg = _refused(lambda: annotate(json.dumps({"by": "rita", "reason": "runaway"})))
    assert 'metadata.annotations[stratops.io/kill]: a command must begin {"by": "tina", …}' in msg
    assert "a command must begin" in _refused(lambda: annotate("runaway orders"))  # nobody to attribute it to
    assert "a command must begin" in _refused(lambda: annotate('{"reason": "x", "by": "tina"}'))  # `by` first
    annotate(json.dumps({"by": "tina", "reason": "runaway"}))  # her own kill is never blocked
    kill = json.loads(desk.strategy()["metadata"]["annotations"]["stratops.io/kill"])
    assert kill["by"] == "tina"


# -- defence in depth: the operator refuses what admission would have -------------------------------------
def test_with_admission_bypassed_the_operator_neither_promotes_nor_applies_an_unsigned_change(
    cluster, kube, operator, own_namespace, tmp_path
):
    """No webhook reaches this namespace (its own operator serves none): a promotion without
    signatures, and a live change without them, are stored, and the operator acts on neither."""
    from stratops.testing.controlplane import operator_process, stop_process

    desk = Desk(kube, own_namespace)
    proc = operator_process(
        cluster.kubeconfig,
        [own_namespace],
        tmp_path / "operator.log",
        env={"STRATOPS_RESYNC_SECONDS": "10", "STRATOPS_WEBHOOK_PORT": ""},
    )
    try:
        desk.create("gates", desk.sign(example("gates/daily.yaml")))
        desk.create("gates", example("gates/pre-launch.yaml"))
        doc = strategy_doc(mode="live")
        desk.create("strategies", doc)
        status = desk.wait_status(
            lambda s: any(
                c["type"] == "Promoted" and c["reason"] == "GatesIncomplete" for c in s.get("conditions") or []
            ),
            "promotion blocked",
        )
        assert status["mode"] == "paper" and desk.control()["mode"] == "paper"
        signed = desk.sign(example("gates/pre-launch.yaml"), doc["spec"])
        _patch(desk.custom, own_namespace, "gates", PRELAUNCH, {"spec": {"signatures": signed["spec"]["signatures"]}})
        status = desk.wait_status(lambda s: s.get("mode") == "live", "live once signed by two")
        approved = status["approved"]["hash"]
        desk.patch_spec(image=pinned(doc["spec"]["image"], "sha256:" + "ee" * 32))
        status = desk.wait_status(
            lambda s: any(c["type"] == "SpecApproved" and c["status"] == "False" for c in s.get("conditions") or []),
            "the change held",
        )
        held = next(c for c in status["conditions"] if c["type"] == "SpecApproved")
        assert "spec.image changed on a live strategy but not applied" in held["message"]
        assert status["approved"]["hash"] == approved and desk.image().endswith(DIGEST)
        wait_for(lambda: desk.events("ChangeHeld"), timeout=30, what="ChangeHeld event")
    finally:
        stop_process(proc, 30)


# -- attack 7: a change the webhook cannot read --------------------------------------------------------------
def test_a_signature_the_operator_cannot_read_is_refused(cluster, desk, people):
    _launch(desk)
    tina = _as(cluster, people["tina"])
    now = datetime.now(UTC).isoformat()
    forged = {"item": OTHER_ITEMS[0], "signer": "tom", "signedAt": now, "evidence": "x"}
    msg = _refused(lambda: _patch(tina, desk.ns, "gates", PRELAUNCH, {"spec": {"signatures": [forged]}}))
    assert f"spec.signatures[{OTHER_ITEMS[0]}]: signer is tom but the request is made by tina" in msg
    # the API server's date-time format takes an offset of +25:00; the operator cannot read it
    odd = {"item": OTHER_ITEMS[0], "signer": "tina", "signedAt": "2026-12-01T08:00:00+25:00", "evidence": "x"}
    msg = _refused(lambda: _patch(tina, desk.ns, "gates", PRELAUNCH, {"spec": {"signatures": [odd]}}), status=400)
    assert "spec cannot be read, so it cannot be checked" in msg
    assert not desk.custom.get_namespaced_custom_object(GROUP, VERSION, desk.ns, "gates", PRELAUNCH)["spec"].get(
        "signatures"
    )


# -- attack 8: a chosen signing time -----------------------------------------------------------------------------
def test_a_signature_is_dated_at_admission(cluster, desk, people):
    _launch(desk)
    tina = _as(cluster, people["tina"])
    for at in (datetime.now(UTC) + timedelta(minutes=5), datetime.now(UTC) - timedelta(hours=20)):
        sig = {"item": OTHER_ITEMS[0], "signer": "tina", "signedAt": at.isoformat(), "evidence": "x"}
        msg = _refused(lambda: _patch(tina, desk.ns, "gates", PRELAUNCH, {"spec": {"signatures": [sig]}}))
        assert f"spec.signatures[{OTHER_ITEMS[0]}].signedAt" in msg and "is not the time of signing" in msg


# -- attack 9: the confused deputy ---------------------------------------------------------------------------------
def test_strategies_and_monitors_name_only_allowed_secrets_registries_and_prometheus(cluster, desk, people):
    _launch(desk)
    core = client.CoreV1Api(desk.kube)
    core.create_namespaced_secret(
        desk.ns, {"metadata": {"name": "ops-stratops-webhook-tls"}, "data": {"tls.key": "eA=="}}
    )
    core.create_namespaced_secret(
        desk.ns,
        {"metadata": {"name": "broker-key", "labels": {"stratops.io/secret-use": "strategy"}}, "data": {"key": "eA=="}},
    )
    core.create_namespaced_secret(
        desk.ns,
        {
            "metadata": {"name": "prom-token", "labels": {"stratops.io/secret-use": "monitor"}},
            "data": {"token": "eA=="},
        },
    )
    tina = desk_as(cluster, people["tina"], desk)
    env = desk.strategy()["spec"]["podTemplate"]["env"]
    steal = {
        "podTemplate": {
            "env": [*env, {"name": "K", "secretKeyRef": {"name": "ops-stratops-webhook-tls", "key": "tls.key"}}]
        }
    }
    msg = _refused(lambda: tina.patch_spec(**steal))
    assert (
        f"spec.podTemplate.env[{len(env)}].secretKeyRef.name: Secret ops-stratops-webhook-tls may not be referenced"
        in msg
    )
    tina.patch_spec(podTemplate={"env": [*env, {"name": "K", "secretKeyRef": {"name": "broker-key", "key": "key"}}]})
    msg = _refused(lambda: tina.patch_spec(image="evil.example/desk/mean-revert"))
    assert "spec.image: evil.example/desk/mean-revert is not from an allowed registry (registry.example" in msg
    msg = _refused(lambda: tina.patch_spec(image="registry.example.evil.com/mean-revert"))
    assert "is not from an allowed registry" in msg

    gitops = _as(cluster, people[GITOPS])
    monitor = example("monitors/06-infra-queue-backlog.yaml")
    prom = monitor["spec"]["source"]["prometheus"]
    for url, secret, why in (
        (
            "http://127.0.0.1:9090",
            "ops-stratops-webhook-tls",
            "spec.source.prometheus.authSecretRef.name: Secret ops-stratops-webhook-tls may not be referenced",
        ),
        (
            "http://evil.example:9090",
            "prom-token",
            "spec.source.prometheus.url: http://evil.example:9090 is not an allowed",
        ),
        ("http://me@127.0.0.1:9090", "prom-token", "is not an allowed Prometheus"),
    ):
        bad = copy.deepcopy(monitor)
        bad["spec"]["source"]["prometheus"] = {**prom, "url": url, "authSecretRef": {"name": secret, "key": "token"}}
        msg = _refused(lambda: gitops.create_namespaced_custom_object(GROUP, VERSION, desk.ns, "monitors", bad))
        assert why in msg, msg
    good = copy.deepcopy(monitor)
    good["spec"]["source"]["prometheus"] = {
        **prom,
        "url": "http://127.0.0.1:9090",
        "authSecretRef": {"name": "prom-token", "key": "token"},
    }
    gitops.create_namespaced_custom_object(GROUP, VERSION, desk.ns, "monitors", good)


def test_with_spec_through_git_only_a_trader_commands_but_never_edits(cluster, kube, desk, tmp_path):
    people = grant_chart_roles(cluster, kube, desk.ns, tmp_path, specThroughGitOpsOnly=True)
    _launch(desk)
    tina = desk_as(cluster, people["tina"], desk)
    msg = _refused(lambda: tina.patch_spec(replicas=2))
    assert "spec: tina may give commands but not change the spec here: it changes through Git" in msg
    code, out = _cli(people["tina"], "kill", NAME, "-n", desk.ns, "--reason", "still hers to stop")
    assert code == 0 and "halted" in out, out
