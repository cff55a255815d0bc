"""Rendering the Helm chart with a real helm (built from its Go module by hack/build-helm.sh)."""

from __future__ import annotations

import base64
import functools
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from stratops.testing import chart as charts
from stratops.testing.chart import HelmError  # noqa: F401  (the tests catch it from here)

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "stratops"


@functools.cache
def helm_binary() -> str:
    """The pinned helm from the cache (built on first use). Skips when it cannot be built."""
    if shutil.which("go") is None and not list(Path("~/.cache/stratops").expanduser().glob("helm-*/helm")):
        pytest.skip("helm is built from Go modules: needs go (or a cached build)")
    return charts.helm_binary()


def render(*sets: str, **kw: Any) -> list[dict[str, Any]]:
    """`helm template` the chart (stratops.testing.chart.render with the tests' helm)."""
    return charts.render(*sets, helm=helm_binary(), **kw)


def kinds(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by.setdefault(d["kind"], []).append(d)
    return by


def grant_traders(kube, namespace: str, traders: list[str], tmp: Path) -> None:
    """The chart's trader Role and its RoleBinding for TRADERS in NAMESPACE, applied as rendered."""
    docs = render(
        namespace=namespace, values={"rbac": {"userRoles": {"traders": [{"name": t} for t in traders]}}}, tmp=tmp
    )
    rbac = client.RbacAuthorizationV1Api(kube)
    for d in docs:
        if d["kind"] == "Role" and d["metadata"]["name"].endswith("-trader"):
            rbac.create_namespaced_role(namespace, d)
        elif d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-trader"):
            rbac.create_namespaced_role_binding(namespace, d)


def sa_kubeconfig(cluster, kube, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a bound token), like the pod would."""
    token = (
        client.CoreV1Api(kube)
        .create_namespaced_service_account_token(sa, namespace, {"spec": {"expirationSeconds": 3600}})
        .status.token
    )
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    ctx = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cl = dict(next(c for c in admin["clusters"] if c["name"] == ctx["cluster"])["cluster"])
    if "certificate-authority" in cl:  # inline it: the kubeconfig must work in a container too
        ca = Path(cl.pop("certificate-authority")).read_bytes()
        cl["certificate-authority-data"] = base64.b64encode(ca).decode()
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


def wait_for_rbac(kube, namespace: str, sa: str, timeout: float = 30) -> None:
    """Until the API server's authorizer has the chart's Role and RoleBinding (it learns them
    asynchronously): an operator started earlier would log 403s and retry."""
    from stratops.testing.wait import wait_for

    authz = client.AuthorizationV1Api(kube)
    user = f"system:serviceaccount:{namespace}:{sa}"

    def allowed() -> bool:
        checks = [("stratops.io", "strategies", "watch"), ("kopf.dev", "kopfpeerings", "patch")]
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
