"""The operator image: built with Docker (from a base built locally when no registry is
reachable), run once for `stratops --version`, and once as the operator against the local
cluster, with the chart's RBAC, arguments and environment, non-root and read-only.

Skipped, with the reason, where no Docker engine runs.
"""

from __future__ import annotations

import subprocess
import uuid

import httpx
import pytest

import stratops
from chart import CHART, kinds, operator_from_deployment, render, sa_kubeconfig, wait_for_rbac
from lifecycle_helpers import Desk, strategy_doc
from stratops.k8s.apply import apply, install_crds
from stratops.testing import images
from stratops.testing.controlplane import free_port
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e


def _docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    return images.docker(*args, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    try:
        return images.operator_image()
    except images.ImageUnavailable as e:
        pytest.skip(str(e))


def test_image_runs_non_root_and_prints_its_version(image):
    out = _docker(
        "run", "--rm", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", image, "--version"
    )
    assert out.stdout.strip() == f"stratops {stratops.__version__}"
    user = _docker("image", "inspect", image, "--format", "{{.Config.User}}").stdout.strip()
    assert user == "65532:65532"


def test_image_runs_the_operator_against_the_cluster(image, cluster, kube, crds, own_namespace, tmp_path):
    """The container as the chart's pod would run it: its ServiceAccount's token, its Role, its
    arguments and environment, read-only root filesystem, no capabilities."""
    ns = own_namespace
    install_crds(kube, CHART / "crds")
    docs = render("replicas=1", namespace=ns, release="img")
    by = kinds(docs)
    apply(kube, [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding", "KopfPeering")])
    dep = by["Deployment"][0]
    namespaces, env = operator_from_deployment(dep, "image-replica")
    kubeconfig = sa_kubeconfig(
        cluster, kube, ns, dep["spec"]["template"]["spec"]["serviceAccountName"], tmp_path / "kubeconfig"
    )
    kubeconfig.chmod(0o644)  # read by the image's non-root user
    wait_for_rbac(kube, ns, dep["spec"]["template"]["spec"]["serviceAccountName"])
    metrics, health = free_port(), free_port()
    name = f"stratops-{uuid.uuid4().hex[:8]}"
    args = [
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--volume",
        f"{kubeconfig}:/etc/stratops/kubeconfig:ro",
        "--env",
        "KUBECONFIG=/etc/stratops/kubeconfig",
    ]
    for k, v in env.items():
        args += ["--env", f"{k}={v}"]
    args += [
        image,
        "operator",
        *[f"--namespace={n}" for n in namespaces],
        f"--metrics-port={metrics}",
        f"--liveness=http://127.0.0.1:{health}/healthz",
    ]
    _docker(*args)
    desk = Desk(kube, ns)
    try:

        def healthy() -> bool:
            if _docker("inspect", name, "--format", "{{.State.Running}}").stdout.strip() != "true":
                raise RuntimeError(_docker("logs", name, check=False).stderr[-3000:])
            try:
                return httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, what="the containerised operator's /healthz")
        desk.create("strategies", strategy_doc())
        desk.wait_status(
            lambda s: s.get("lastKnownGood") == "1.4.2", "the strategy deployed by the container", timeout=90
        )
        text = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=2).text
        assert f'stratops_strategy_trading_state{{namespace="{ns}",state="ACTIVE",strategy="mean-revert"}} 1.0' in text
    finally:
        logs = _docker("logs", name, check=False)
        _docker("rm", "--force", name, check=False)
    assert "Traceback" not in logs.stdout + logs.stderr
