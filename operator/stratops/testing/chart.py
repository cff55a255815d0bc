"""The Helm chart as rendered by a real helm (built from its Go module by hack/build-helm.sh), and
the chart's people Roles put in force on a local cluster: for the tests and the soak, which act
as a desk's traders, risk owners and GitOps controller with exactly the rights the chart gives."""

from __future__ import annotations

import base64
import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from stratops import GROUP
from stratops.testing.controlplane import repo_root
from stratops.testing.wait import wait_for

#: The chart's Roles for people (and the GitOps controller), by the suffix of their names.
PEOPLE_ROLES = ("-trader", "-risk-owner", "-gitops", "-command-delegate")
#: The groups the chart binds by default (values.yaml rbac.userRoles).
TRADERS, RISK_OWNERS = "stratops:traders", "stratops:risk-owners"


class HelmError(Exception):
    pass


def chart_dir() -> Path:
    root = repo_root()
    if root is None:
        raise HelmError("the chart is read from a stratops checkout: run from one")
    return root / "charts" / "stratops"


@functools.cache
def helm_binary() -> str:
    """The pinned helm from the cache, built on first use (HelmError when it cannot be)."""
    out = subprocess.run(
        ["bash", str(chart_dir().parent.parent / "hack" / "build-helm.sh")], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise HelmError(f"helm cannot be built: {out.stderr.strip()[-500:]}")
    return out.stdout.strip().splitlines()[-1]


def render(
    *sets: str,
    namespace: str = "desk",
    release: str = "ops",
    crds: bool = False,
    values: dict[str, Any] | None = None,
    tmp: Path | None = None,
    helm: str | None = None,
) -> list[dict[str, Any]]:
    """`helm template` the chart; the documents, or HelmError with helm's message."""
    args = [helm or helm_binary(), "template", release, str(chart_dir()), "--namespace", namespace]
    if crds:
        args.append("--include-crds")
    for s in sets:
        args += ["--set", s]
    if values is not None:
        assert tmp is not None, "values are written to a file in TMP"
        f = tmp / "values.yaml"
        f.write_text(yaml.safe_dump(values))
        args += ["--values", str(f)]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise HelmError(out.stderr)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def grant_people_roles(
    api: client.ApiClient,
    namespace: str,
    tmp: Path,
    people: dict[str, tuple[str, ...]],
    gitops: str | None = None,
    **user_roles: Any,
) -> None:
    """The chart's trader, risk-owner and GitOps Roles in NAMESPACE as rendered, bound as the chart
    binds them (the groups for people, GITOPS by name; USER_ROLES: more of rbac.userRoles); then
    wait until the authorizer holds them for each of PEOPLE (user -> groups) and GITOPS."""
    if gitops:
        user_roles = {"gitops": [{"kind": "User", "name": gitops}], **user_roles}
    docs = render(namespace=namespace, values={"rbac": {"userRoles": user_roles}}, tmp=tmp)
    rbac = client.RbacAuthorizationV1Api(api)
    for d in docs:
        if d["kind"] in ("Role", "RoleBinding") and d["metadata"]["name"].endswith(PEOPLE_ROLES):
            d["metadata"]["namespace"] = namespace
            (rbac.create_namespaced_role if d["kind"] == "Role" else rbac.create_namespaced_role_binding)(namespace, d)
    authz = client.AuthorizationV1Api(api)

    def may(user: str, groups: tuple[str, ...], verb: str, resource: str) -> bool:
        review = {
            "spec": {
                "user": user,
                "groups": list(groups),
                "resourceAttributes": {"namespace": namespace, "group": GROUP, "resource": resource, "verb": verb},
            }
        }
        return bool(authz.create_subject_access_review(review).status.allowed)

    def in_force() -> bool:
        if gitops and not may(gitops, (), "sign-for-others", "gates"):
            return False
        return all(
            may(user, groups, "patch", "strategies")
            and (RISK_OWNERS not in groups or may(user, groups, "configure-kill-switch", "strategies"))
            for user, groups in people.items()
        )

    wait_for(in_force, timeout=30, what="the chart's roles in force")


def service_account_kubeconfig(
    api: client.ApiClient,
    admin_kubeconfig: Path,
    namespace: str,
    sa: str,
    path: Path,
    pod: client.V1Pod | None = None,
    server: str | None = None,
    seconds: int = 3600,
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount SA with a token of its own (a
    TokenRequest), bound to POD when given, as the kubelet mounts it in the pod: the API server
    then names the pod in the request's user (authentication.kubernetes.io/pod-name), its audit
    log included. At SERVER (default: the admin's; a proxy in front of it, for network faults).
    The CA is inlined: the kubeconfig works in a container too."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if pod is not None:
        spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid}
    token = client.CoreV1Api(api).create_namespaced_service_account_token(sa, namespace, {"spec": spec}).status.token
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    ctx = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cl = dict(next(c for c in admin["clusters"] if c["name"] == ctx["cluster"])["cluster"])
    if "certificate-authority" in cl:
        cl["certificate-authority-data"] = base64.b64encode(Path(cl.pop("certificate-authority")).read_bytes()).decode()
    if server is not None:
        cl["server"] = server
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "sa",
                "clusters": [{"name": "c", "cluster": cl}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": namespace}}],
            }
        )
    )
    path.chmod(0o600)
    return path


def operator_from_deployment(dep: dict[str, Any], identity: str) -> tuple[list[str], dict[str, str]]:
    """The Deployment's namespaces and literal environment (what the pod's container would get),
    for an operator run outside the cluster: POD_ID is IDENTITY, and no webhook (its certificate is
    in the cluster's Secret, and the API server dials the Service, not this process)."""
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    namespaces = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--namespace=")]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e and not e["name"].startswith("STRATOPS_WEBHOOK_")}
    env.update({"STRATOPS_WEBHOOK_PORT": "", "POD_ID": identity})
    return namespaces, env


def wait_for_operator_rbac(api: client.ApiClient, namespace: str, sa: str, timeout: float = 30) -> None:
    """Until the API server's authorizer has the chart's Role and RoleBinding for the operator's
    ServiceAccount (it learns them asynchronously): an operator started earlier would log 403s."""
    authz = client.AuthorizationV1Api(api)
    user = f"system:serviceaccount:{namespace}:{sa}"

    def allowed() -> bool:
        checks = [(GROUP, "strategies", "watch"), ("kopf.dev", "kopfpeerings", "patch")]
        return all(
            authz.create_subject_access_review(
                {
                    "spec": {
                        "user": user,
                        "resourceAttributes": {"namespace": namespace, "group": g, "resource": r, "verb": v},
                    }
                }
            ).status.allowed
            for g, r, v in checks
        )

    wait_for(allowed, timeout=timeout, what=f"RBAC of {user} effective")


#: A replica pod that is never scheduled: it exists only so that a token can be bound to it.
REPLICA_POD_GATE = "stratops.io/runs-outside-the-cluster"


def install_operator(
    api: client.ApiClient, namespace: str, tmp: Path, release: str = "stratops"
) -> tuple[str, dict[str, Any]]:
    """The chart's operator identity in NAMESPACE as rendered: its ServiceAccount, its Role and
    RoleBinding, and its KopfPeering; then wait until the authorizer holds them. Returns the
    ServiceAccount's name and the chart's Deployment (not applied: its replicas run on this host,
    see replica_pod)."""
    docs = render(namespace=namespace, release=release, tmp=tmp, values={"watch": {"namespaces": [namespace]}})
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    fullname = dep["metadata"]["name"]
    sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    custom = client.CustomObjectsApi(api)
    for d in docs:
        if d["metadata"]["name"] != fullname:
            continue
        if d["kind"] == "ServiceAccount":
            core.create_namespaced_service_account(namespace, d)
        elif d["kind"] == "Role":
            rbac.create_namespaced_role(namespace, d)
        elif d["kind"] == "RoleBinding":
            rbac.create_namespaced_role_binding(namespace, d)
        elif d["kind"] == "KopfPeering":
            custom.create_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", d)
    wait_for_operator_rbac(api, namespace, sa)
    return sa, dep


def replica_pod(api: client.ApiClient, namespace: str, dep: dict[str, Any], name: str) -> client.V1Pod:
    """A pod of the chart's Deployment, named NAME, held unscheduled (a scheduling gate): the
    replica runs on this host, with a token bound to this pod as the kubelet would mount it."""
    template = dep["spec"]["template"]
    doc = {
        "metadata": {**template["metadata"], "name": name},
        "spec": {**template["spec"], "schedulingGates": [{"name": REPLICA_POD_GATE}]},
    }
    return client.CoreV1Api(api).create_namespaced_pod(namespace, doc)
