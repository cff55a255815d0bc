"""Rendering the Helm chart with a real helm (built from its Go module by hack/build-helm.sh)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import pytest
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
    """A kubeconfig that authenticates as the ServiceAccount (a token of its own)."""
    return charts.service_account_kubeconfig(kube, Path(cluster.kubeconfig), namespace, sa, path)


operator_from_deployment = charts.operator_from_deployment
wait_for_rbac = charts.wait_for_operator_rbac
