"""pytest fixtures: a session-scoped cluster and a namespace per test.

The cluster is the local control plane, or, with USE_EXISTING_CLUSTER=1, the cluster of the
current KUBECONFIG (kind included). Enable with `pytest_plugins = ["stratops.testing.fixtures"]`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from stratops.testing.controlplane import ControlPlane

#: Lines of the session operator's log attached to a failed test that ran in its namespaces.
FAILURE_LOG_LINES = 120


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used the session operator gets that operator's log lines about the
    test's namespace: a flake in CI can then be read, not guessed at."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    funcargs = getattr(item, "funcargs", {})
    op, ns = funcargs.get("operator"), funcargs.get("namespace")
    if not report.failed or not isinstance(op, dict) or not isinstance(ns, str):
        return
    log = op.get("log")
    if not isinstance(log, Path) or not log.exists():
        return
    with log.open(errors="replace") as f:
        lines = [line.rstrip("\n") for line in f if ns in line]
    if lines:
        report.sections.append(
            (
                f"session operator log, lines naming {ns} (last {FAILURE_LOG_LINES})",
                "\n".join(lines[-FAILURE_LOG_LINES:]),
            )
        )


@dataclass
class Cluster:
    kubeconfig: Path
    control_plane: ControlPlane | None

    def api_client(self, kubeconfig: Path | None = None) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for another user (client certificate); local control plane only."""
        if self.control_plane is None:
            pytest.skip("minting user credentials needs the local control plane")
        return self.control_plane.user_kubeconfig(user, groups)


def use_existing_cluster() -> bool:
    return os.environ.get("USE_EXISTING_CLUSTER", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if use_existing_cluster():
        path = Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser()
        yield Cluster(kubeconfig=path, control_plane=None)
        return
    from stratops.testing import realnode

    # The audit log (Metadata level) names who asked for what: tests of attribution and the
    # bench's request counting read it, and it is where to look when a test goes wrong. A real
    # node joins the KWOK ones wherever one can run here (root, containerd, runc, CNI).
    with ControlPlane(audit=True, real_node=realnode.unavailable() is None) as cp:
        assert cp.kubeconfig is not None
        yield Cluster(kubeconfig=cp.kubeconfig, control_plane=cp)


def _cannot(why: str) -> None:
    """Skip, saying why; fail instead where STRATOPS_REQUIRE_REAL_NODE=1 (CI: these tests must run)."""
    if os.environ.get("STRATOPS_REQUIRE_REAL_NODE", "") == "1":
        pytest.fail(f"STRATOPS_REQUIRE_REAL_NODE=1, but: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> object:
    """The local control plane's real node (stratops.testing.realnode): pods that select
    REAL_NODE_LABEL and tolerate REAL_NODE_TAINT run there as real containers. On a kind cluster
    of hack/kind-up.sh (STRATOPS_KIND_CLUSTER), its node (stratops.testing.kind), labelled alike."""
    from stratops.testing import kind, realnode

    if cluster.control_plane is None:
        if (name := kind.cluster()) is not None:
            return kind.KindNode(name)  # hack/kind-e2e.sh: the kind node runs the real containers
        _cannot(
            "a real node is part of the local control plane or a kind cluster of hack/kind-up.sh "
            "(USE_EXISTING_CLUSTER=1 without STRATOPS_KIND_CLUSTER runs without one)"
        )
    assert cluster.control_plane is not None
    if cluster.control_plane.node is None:
        _cannot(f"no real node here: {realnode.unavailable()}")
    return cluster.control_plane.node


STRATEGY_VERSIONS = ("1.4.2", "1.4.3", "crash-1.4.4")


@pytest.fixture(scope="session")
def strategy_image(real_node: object) -> dict[str, str]:
    """The example strategy's image (examples/strategy-app), built here and imported into the
    real node as stratops.local/mean-revert:<version> for each of STRATEGY_VERSIONS ("crash-…"
    exits at start: a crash-looping release). Returns {version: manifest digest}."""
    from stratops.testing import images, kind

    tags = {v: f"{images.STRATEGY_REPOSITORY}:{v}" for v in STRATEGY_VERSIONS}
    if isinstance(real_node, kind.KindNode):
        try:  # loaded by hack/kind-e2e.sh (kind load docker-image); else built and loaded below
            return {v: images.digest(real_node, t) for v, t in tags.items()}
        except images.ImageUnavailable:
            pass
    try:
        built = images.strategy_image()
    except images.ImageUnavailable as e:
        _cannot(str(e))
    digests = images.load(real_node, built, list(tags.values()))
    return {v: digests[t] for v, t in tags.items()}


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> client.ApiClient:
    """An admin API client for the session's cluster."""
    return cluster.api_client()


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    from stratops.testing.admission import POLICY_LABEL

    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": name, "labels": {"stratops.io/test": "true", **POLICY_LABEL}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def own_namespace(kube: client.ApiClient) -> Iterator[str]:
    """A namespace outside the session operator's t-* scope, for a test that runs its own
    operators (restarts, peering, the image)."""
    from stratops.testing.admission import POLICY_LABEL

    name = f"o-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": name, "labels": POLICY_LABEL}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def crds(kube: client.ApiClient) -> list[str]:
    """The stratops CRDs from crds/, installed once per session and served."""
    from stratops.k8s.apply import install_crds
    from stratops.testing.controlplane import repo_root

    root = repo_root()
    if root is None:
        pytest.skip("needs a stratops checkout (crds/)")
    return install_crds(kube, root / "crds")


@pytest.fixture(scope="session")
def alert_receiver() -> Iterator[object]:
    """An HTTP receiver for the operator's alert channels (Slack at /slack, Alertmanager at /am)."""
    from stratops.testing.prometheus import AlertReceiver

    r = AlertReceiver()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def alertmanager() -> Iterator[object]:
    """A real Alertmanager: the operator's page channel posts to it."""
    from stratops.testing.prometheus import AlertmanagerServer

    am = AlertmanagerServer().start()
    yield am
    am.stop()


@pytest.fixture(scope="session")
def exporter() -> Iterator[object]:
    from stratops.testing.prometheus import Exporter

    e = Exporter()
    yield e
    e.stop()


@pytest.fixture(scope="session")
def prometheus(exporter: object) -> Iterator[object]:
    """A real Prometheus scraping the test exporter every second."""
    from stratops.testing.prometheus import PrometheusServer

    p = PrometheusServer([f"127.0.0.1:{exporter.port}"]).start()  # type: ignore[attr-defined]
    yield p
    p.stop()


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, crds: list[str], alert_receiver: object, alertmanager: object
) -> Iterator[dict[str, object]]:
    """The stratops operator (`stratops operator -n 't-*'` as a process) for the session.

    Yields {"metrics": URL}. The test namespaces of the `namespace` fixture match t-*. Its
    slack channel posts to `alert_receiver`, its page channel to the real `alertmanager`.
    """
    from stratops.testing.controlplane import free_port

    port = free_port()
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    os.environ["STRATOPS_METRICS_PORT"] = str(port)
    os.environ.setdefault("STRATOPS_RESYNC_SECONDS", "10")
    os.environ["STRATOPS_SLACK_WEBHOOK_URL"] = f"{alert_receiver.url}/slack"  # type: ignore[attr-defined]
    os.environ["STRATOPS_ALERTMANAGER_URL"] = alertmanager.url  # type: ignore[attr-defined]
    if cluster.control_plane is not None:
        # The gate-signature webhook, served on the host; the API server trusts it via the CA.
        cert, key, ca = cluster.control_plane.serving_certificate("stratops-webhook")
        os.environ.update(
            {
                "STRATOPS_WEBHOOK_PORT": str(free_port()),
                "STRATOPS_WEBHOOK_ADDR": "127.0.0.1",
                "STRATOPS_WEBHOOK_HOST": "127.0.0.1",
                "STRATOPS_WEBHOOK_CERT": str(cert),
                "STRATOPS_WEBHOOK_KEY": str(key),
                "STRATOPS_WEBHOOK_CA": str(ca),
            }
        )
    # The chart's default allow-lists, and registries and Prometheus URLs the tests use. The
    # tests' admin client (cluster-admin: every RBAC verb, command-for-others and
    # sign-for-others included) plays several people (by: bob, ops, …) as a ChatOps bot would.
    os.environ.update(
        {
            "STRATOPS_ALLOWED_REGISTRIES": "registry.example,stratops.local",
            "STRATOPS_ALLOWED_PROMETHEUS_URLS": "http://127.0.0.1",
            "STRATOPS_STRATEGY_SECRET_LABELS": "stratops.io/secret-use=strategy",
            "STRATOPS_MONITOR_SECRET_LABELS": "stratops.io/secret-use=monitor",
        }
    )
    # The operator as its own process, as in production: nothing of the test process (its
    # imports, thread pools, captured output) can stall it.
    import tempfile

    from stratops.testing.controlplane import free_port, operator_process, stop_process, wait_serving_metrics

    log_path = Path(tempfile.mkdtemp(prefix="stratops-operator-")) / "operator.log"

    def start() -> tuple[object, str]:
        live = free_port()
        # Liveness as in the chart: the held_handlers probe fails when kopf holds every handler
        # for too long (STRATOPS_HANDLERS_HELD_LIMIT_SECONDS), and the kubelet restarts it.
        proc = operator_process(
            cluster.kubeconfig,
            ["t-*"],
            log_path,
            port,
            liveness_port=live,
            env={"STRATOPS_HANDLERS_HELD_LIMIT_SECONDS": "45"},
        )
        wait_serving_metrics(proc, port, log_path)  # type: ignore[arg-type]
        return proc, f"http://127.0.0.1:{live}/healthz"

    proc, liveness = start()
    # Admission as the chart sets it up: the policies in the API server for the tests'
    # namespaces (and those where tests run their own operators), the webhooks for t-*.
    from stratops.testing import admission

    local = cluster.control_plane is not None
    admission.install(
        cluster.api_client(),
        f"https://127.0.0.1:{os.environ['STRATOPS_WEBHOOK_PORT']}" if local else None,
        Path(os.environ["STRATOPS_WEBHOOK_CA"]) if local else None,
        {"matchLabels": {"stratops.io/test": "true"}},
    )
    try:
        _wait_until_acting(cluster, timeout=180, liveness=liveness)
    except HandlersHeld as held:
        # What the kubelet does with the chart's livenessProbe; said loudly, not hidden.
        import warnings

        warnings.warn(f"session operator restarted by its liveness probe: {held}", stacklevel=1)
        stop_process(proc, 30)  # type: ignore[arg-type]
        proc, liveness = start()
        _wait_until_acting(cluster, timeout=180, liveness=liveness)
    yield {"metrics": f"http://127.0.0.1:{port}/metrics", "log": log_path}
    stop_process(proc, 30)  # type: ignore[arg-type]


class HandlersHeld(RuntimeError):
    """The operator's liveness probe failed: kopf held every handler for too long."""


def _wait_until_acting(cluster: Cluster, timeout: float, liveness: str | None = None) -> None:
    """Ready means acting, not just serving /metrics: kopf holds every handler until all its
    indexes are filled, and a namespace deleted while it starts has been seen to hold them
    for good (stratops.handlers.kopf_fixes). A probe strategy in a probe namespace must get a
    status first; a failed liveness probe raises HandlersHeld."""
    import httpx

    from stratops import GROUP, VERSION
    from stratops.testing.wait import wait_for

    api = cluster.api_client()
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    from stratops.testing.admission import POLICY_LABEL

    ns = f"t-ready-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {"stratops.io/test": "true", **POLICY_LABEL}}})

    def acting() -> object:
        if liveness is not None:
            try:
                r = httpx.get(liveness, timeout=5)
                if r.status_code >= 500:
                    return ("held", r.text[:500])
            except httpx.HTTPError:
                pass
        return (custom.get_namespaced_custom_object(GROUP, VERSION, ns, "strategies", "probe").get("status") or {}).get(
            "phase"
        )

    try:
        from stratops.testing.controlplane import repo_root

        root = repo_root()
        if root is None:
            return  # not a checkout: no example to probe with; the tests' own waits decide
        doc = yaml.safe_load((root / "examples" / "strategy.yaml").read_text())
        doc["metadata"] = {"name": "probe"}
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "strategies", doc)
        seen = wait_for(acting, timeout=timeout, interval=0.5, what="the operator acting on a probe strategy")
        if isinstance(seen, tuple):
            raise HandlersHeld(seen[1])
    finally:
        core.delete_namespace(ns, propagation_policy="Background")
