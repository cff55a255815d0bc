"""The Helm chart on the local cluster: its rendered manifests are created for real (the API
server validates the Deployment, RBAC, webhook configuration, and the ServiceMonitor and
PrometheusRule against the prometheus-operator's own CRD schemas), and the operator runs with
exactly the chart's RBAC, as the chart's ServiceAccount, through a whole kill-switch.
"""

from __future__ import annotations

import copy
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

from chart import CHART, ROOT, kinds, operator_from_deployment, render, sa_kubeconfig, wait_for_rbac
from lifecycle_helpers import Desk, strategy_doc
from stratops.k8s.apply import apply, install_crds
from stratops.lifecycle.manifests import identity_name
from stratops.testing.controlplane import free_port, operator_process, stop_process
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def prometheus_operator_crds(kube) -> list[str]:
    """ServiceMonitor and PrometheusRule CRDs of a pinned prometheus-operator release (a Go module)."""
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "hack" / "prometheus-operator-crds.sh")], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"prometheus-operator CRDs not available through the Go module proxy: {e}")
    crd_dir = Path(out.stdout.strip())
    ext = client.ApiextensionsV1Api(kube)
    names = []
    for kind in ("servicemonitors", "prometheusrules"):
        try:
            # A cluster that runs the prometheus-operator keeps its own CRDs: never overwrite them.
            names.append(ext.read_custom_resource_definition(f"{kind}.monitoring.coreos.com").metadata.name)
        except ApiException:
            names += install_crds(kube, crd_dir / f"monitoring.coreos.com_{kind}.yaml")
    return names


@pytest.fixture
def release_namespace(kube):
    name = f"c-{uuid.uuid4().hex[:10]}"  # outside the session operator's t-*: this test runs its own
    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def test_rendered_chart_is_accepted_and_its_rbac_runs_the_operator(
    cluster, kube, crds, prometheus_operator_crds, release_namespace, tmp_path
):
    ns, release = release_namespace, f"r{uuid.uuid4().hex[:6]}"
    # On the local cluster KWOK "runs" the Deployment's pods (nothing executes); on another cluster
    # (USE_EXISTING_CLUSTER=1) the image may be absent or would really run: no replicas there.
    local = cluster.control_plane is not None
    docs = render(
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        "peering.lifetime=10",
        *([] if local else ["replicas=0"]),
        namespace=ns,
        release=release,
        crds=True,
    )
    by = kinds(docs)
    install_crds(kube, CHART / "crds")  # what `helm install` does with crds/ (identical to crds/ for stratops.io)
    objects = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    vwc = by["ValidatingWebhookConfiguration"][0]["metadata"]["name"]
    log = tmp_path / "operator.log"
    proc = None
    desk = Desk(kube, ns)
    try:
        apply(kube, objects)  # a real create: the API server validates every object
        fullname = by["Deployment"][0]["metadata"]["name"]
        custom = client.CustomObjectsApi(kube)
        rule = custom.get_namespaced_custom_object("monitoring.coreos.com", "v1", ns, "prometheusrules", fullname)
        assert len(rule["spec"]["groups"][0]["rules"]) == 10
        if local:
            apps = client.AppsV1Api(kube)
            wait_for(
                lambda: (apps.read_namespaced_deployment(fullname, ns).status.available_replicas or 0) == 2,
                timeout=60,
                what="the operator Deployment's two replicas scheduled and available (KWOK)",
            )
            pdb = client.PolicyV1Api(kube).read_namespaced_pod_disruption_budget(fullname, ns)
            assert pdb.spec.min_available == 1

            # The webhook configuration routes gate writes in this namespace to the operator's
            # Service (whose KWOK pods serve nothing, so with failurePolicy Fail it is refused).
            # The API server loads webhook configurations asynchronously: wait for it (dry runs
            # go through admission too, and leave nothing behind).
            def refused_by_webhook() -> bool:
                try:
                    custom.create_namespaced_custom_object(
                        "stratops.io", "v1alpha1", ns, "gates", _example_gates()[0], dry_run="All"
                    )
                except ApiException as e:
                    return "gate-signatures.stratops.io" in (e.body or "")
                return False

            wait_for(
                refused_by_webhook, timeout=30, what="gate writes refused through the chart's webhook configuration"
            )
        # This test's operator runs on the host, where the chart's Service cannot send it admission
        # requests: the webhook configuration goes (the admission policies stay, in the API server).
        client.AdmissionregistrationV1Api(kube).delete_validating_webhook_configuration(vwc)
        dry = strategy_doc()
        dry["metadata"]["annotations"] = {"stratops.io/kill": '{"reason": "no by"}'}
        # Refused by the policy itself: a 503 while the API server has not yet built the new
        # CRD's schema for its mutating policies (seconds, on a loaded machine) is not that.
        wait_for(
            lambda: (
                "a command must begin"
                in _refusal(
                    lambda: custom.create_namespaced_custom_object(
                        "stratops.io", "v1alpha1", ns, "strategies", dry, dry_run="All"
                    )
                )
            ),
            timeout=60,
            what="the chart's admission policies bound to its namespace",
        )

        # The operator as the chart's ServiceAccount, with the chart's arguments and environment.
        namespaces, env = operator_from_deployment(by["Deployment"][0], "chart-replica")
        assert namespaces == [ns]
        env["STRATOPS_RESYNC_SECONDS"] = "10"
        kubeconfig = sa_kubeconfig(cluster, kube, ns, fullname, tmp_path / "sa.kubeconfig")
        wait_for_rbac(kube, ns, fullname)
        proc = operator_process(kubeconfig, namespaces, log, free_port(), env=env)
        wait_for(
            lambda: (
                "chart-replica"
                in (
                    custom.get_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings", fullname).get("status")
                    or {}
                )
            ),
            timeout=60,
            what="the operator registered in the chart's KopfPeering",
        )

        desk.create("strategies", strategy_doc(killSwitch={"ackDeadline": "30s"}))
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "known-good", timeout=90)
        # The strategy pods' identity, made with the chart's own grants (RBAC lets a Role grant
        # only what its maker holds): the Deployment's pods run as it.
        rb = client.RbacAuthorizationV1Api(kube).read_namespaced_role_binding(identity_name("mean-revert"), ns)
        assert rb.subjects[0].name == identity_name("mean-revert")
        assert desk.deployment().spec.template.spec.service_account_name == identity_name("mean-revert")
        # The operator's own token makes strategy pods only as their strategy's identity
        # (stratops-deployments): not as another ServiceAccount of the namespace, not on the host.
        as_operator = client.AppsV1Api(cluster.api_client(kubeconfig))
        made = desk.deployment().to_dict()
        template = client.ApiClient().sanitize_for_serialization(desk.deployment().spec.template)

        def deployment(name: str, **pod: Any) -> dict[str, Any]:
            t = copy.deepcopy(template)
            t["spec"].update(pod)
            return {
                "metadata": {"name": name, "labels": made["metadata"]["labels"]},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"stolen": name}},
                    "template": {**t, "metadata": {"labels": {"stolen": name}}},
                },
            }

        wait_for(
            lambda: (
                "stratops-deployments"
                in _refusal(
                    lambda: as_operator.create_namespaced_deployment(
                        ns, deployment("probe", serviceAccountName="default"), dry_run="All"
                    )
                )
            ),
            timeout=30,
            what="the chart's stratops-deployments policy enforced",
        )
        for name, pod, field in (
            ("as-default", {"serviceAccountName": "default"}, "serviceAccountName"),
            ("as-operator", {"serviceAccountName": fullname}, "serviceAccountName"),
            ("on-host", {"hostNetwork": True}, "host's network"),
            ("host-path", {"volumes": [*t_volumes(template), {"name": "root", "hostPath": {"path": "/"}}]}, "hostPath"),
        ):
            body = _refusal(
                lambda: as_operator.create_namespaced_deployment(ns, deployment(name, **pod), dry_run="All")
            )
            assert "stratops-deployments" in body and field in body, (name, body)
        unlabelled = deployment("unlabelled")
        unlabelled["metadata"]["labels"] = {}
        assert "metadata.labels[stratops.io/strategy]" in _refusal(
            lambda: as_operator.create_namespaced_deployment(ns, unlabelled, dry_run="All")
        )
        assert (
            _refusal(lambda: as_operator.create_namespaced_deployment(ns, deployment("as-itself"), dry_run="All")) == ""
        )
        desk.play_pods()
        desk.command("kill", reason="runaway orders")
        desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "kill-switch completed", timeout=60)
        wait_for(lambda: desk.events("KillSwitchCompleted"), timeout=30, what="completion event")
        assert desk.deployment().spec.replicas == 0
        # kopf's own notes that it cannot follow CRDs cluster-wide are expected: namespaced on purpose.
        forbidden = [
            line
            for line in log.read_text().splitlines()
            if "forbidden" in line.lower() and "Not enough permissions" not in line
        ]
        assert forbidden == [], "the chart's Role lacks a permission the operator used"
    finally:
        desk.stop_pods()
        stop_process(proc, 30)
        admission = client.AdmissionregistrationV1Api(kube)
        for delete, kind in (
            (admission.delete_validating_webhook_configuration, "ValidatingWebhookConfiguration"),
            (admission.delete_validating_admission_policy_binding, "ValidatingAdmissionPolicyBinding"),
            (admission.delete_mutating_admission_policy_binding, "MutatingAdmissionPolicyBinding"),
        ):
            for d in by.get(kind, []):  # the policies stay: shared, like CRDs (the session's are the same)
                try:
                    delete(d["metadata"]["name"])
                except ApiException:
                    pass


def t_volumes(template: dict[str, Any]) -> list[dict[str, Any]]:
    return list(template["spec"].get("volumes") or [])


def _refusal(create) -> str:
    """The API server's refusal of CREATE ('' if it accepted)."""
    try:
        create()
    except ApiException as e:
        return e.body or str(e.status)
    return ""


def _example_gates() -> list[dict[str, Any]]:
    docs = []
    for f in sorted((ROOT / "examples" / "gates").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d and d.get("kind") == "Gate")
    return docs


@pytest.mark.kind
def test_cluster_wide_chart_is_accepted_by_the_api_server(kube, crds, prometheus_operator_crds):
    """The cluster-wide variant, server-side dry run (it would otherwise serve every namespace)."""
    install_crds(kube, CHART / "crds")
    dyn = dynamic.DynamicClient(kube)
    docs = render(
        "watch.clusterWide=true",
        "metrics.serviceMonitor.enabled=true",
        "metrics.prometheusRule.enabled=true",
        namespace="default",
        release=f"r{uuid.uuid4().hex[:6]}",
    )
    for d in docs:
        res = dyn.resources.get(api_version=d["apiVersion"], kind=d["kind"])
        kw = {"namespace": d["metadata"].get("namespace", "default")} if res.namespaced else {}
        res.server_side_apply(body=d, field_manager="stratops-test", force_conflicts=True, dry_run="All", **kw)
    assert {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"} <= set(kinds(docs))


@pytest.mark.kind
def test_helm_install_and_upgrade_keep_the_webhook_certificate(cluster, kube, crds, release_namespace):
    """A real `helm install` and `helm upgrade` against the cluster: the generated certificate is
    looked up and kept (rotating it would break gate writes until every pod restarted), and
    `helm uninstall` removes the cluster-scoped webhook configuration."""
    from chart import helm_binary

    ns, release = release_namespace, f"h{uuid.uuid4().hex[:6]}"
    helm = [helm_binary(), "--kubeconfig", str(cluster.kubeconfig), "--namespace", ns]
    extra = [] if cluster.control_plane is not None else ["--set", "replicas=0"]  # the image may be absent
    # The session installed the (shared, cluster-scoped) admission policies: this release binds them.
    extra += ["--set", "admissionPolicies.installPolicies=false"]
    core, admission = client.CoreV1Api(kube), client.AdmissionregistrationV1Api(kube)
    secret, vwc = f"{release}-stratops-webhook-tls", f"{release}-stratops-admission"

    def current() -> tuple[str, str]:
        crt = core.read_namespaced_secret(secret, ns).data["tls.crt"]
        return crt, admission.read_validating_webhook_configuration(vwc).webhooks[0].client_config.ca_bundle

    try:
        subprocess.run([*helm, "install", release, str(CHART), *extra], check=True, capture_output=True)
        crt, ca = current()
        assert ca == core.read_namespaced_secret(secret, ns).data["ca.crt"]
        subprocess.run(
            [*helm, "upgrade", release, str(CHART), "--set", "operator.resyncSeconds=30", *extra],
            check=True,
            capture_output=True,
        )
        assert current() == (crt, ca)
        dep = client.AppsV1Api(kube).read_namespaced_deployment(f"{release}-stratops", ns)
        env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
        assert env["STRATOPS_RESYNC_SECONDS"] == "30"
    finally:
        subprocess.run([*helm, "uninstall", release], capture_output=True)
    with pytest.raises(ApiException) as gone:
        admission.read_validating_webhook_configuration(vwc)
    assert gone.value.status == 404
