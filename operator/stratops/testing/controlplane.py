"""A real, local Kubernetes control plane for tests and the demo (like controller-runtime's envtest).

It starts, on loopback and free ports: etcd, kube-apiserver (RBAC on, client certificates),
kube-controller-manager, kube-scheduler and KWOK with fake nodes, so a Deployment gets a
ReplicaSet and Pods that become Running and Ready. Certificates, service-account keys and an
admin kubeconfig are generated per run in a temporary directory, which is removed on stop.

Children are started with PR_SET_PDEATHSIG so that they die with the Python process even when
it is killed with SIGKILL; `stop()` (also run at exit) terminates them in order.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml

from stratops.testing.pki import CertificateAuthority, KeyPair, service_account_keys

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubelet", "pause")
SERVICE_CIDR = "10.96.0.0/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


class ControlPlaneError(RuntimeError):
    """A component failed to start or to become healthy; the message carries its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Linux: the child gets SIGKILL when the thread that started it exits, so a crashed or
    # killed test run leaves no etcd or apiserver behind.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setpgrp()


def stop_process(p: subprocess.Popen | None, timeout: float = 10.0) -> None:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL if it has not exited within TIMEOUT seconds."""
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout)


def operator_process(
    kubeconfig: Path | str,
    namespaces: list[str],
    log: Path,
    metrics_port: int = 0,
    env: dict[str, str] | None = None,
    liveness_port: int | None = None,
) -> subprocess.Popen:  # type: ignore[type-arg]
    """`stratops operator` as a child process (dies with us), logging to LOG."""
    args = [sys.executable, "-m", "stratops.cli.main", "operator", "--metrics-port", str(metrics_port)]
    if liveness_port is not None:
        args += ["--liveness", f"http://127.0.0.1:{liveness_port}/healthz"]
    for ns in namespaces:
        args += ["-n", ns]
    with log.open("a") as out:
        return subprocess.Popen(
            args,
            env={**os.environ, **(env or {}), "KUBECONFIG": str(kubeconfig)},
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


def wait_serving_metrics(proc: subprocess.Popen, port: int, log: Path, timeout: float = 60.0) -> None:  # type: ignore[type-arg]
    """Until the operator started by operator_process serves /metrics on PORT; fails at once,
    with the log's tail, if the process exits first."""
    from stratops.testing.wait import wait_for

    def serving() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the operator exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    # wait_for retries on exceptions: an exit is final, so check it once more to fail clearly.
    try:
        wait_for(serving, timeout=timeout, what="the operator's metrics endpoint")
    except TimeoutError:
        if proc.poll() is not None:
            raise RuntimeError(f"the operator exited ({proc.returncode}): {log.read_text()[-3000:]}") from None
        raise


def sweep_stale_workdirs() -> list[Path]:
    """Remove working directories left by control planes whose owner process is gone (a run
    killed outright has no chance to clean up; its children died with it)."""
    removed = []
    for d in Path(tempfile.gettempdir()).glob("stratops-cp-*"):
        try:
            pid = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def repo_root() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "hack" / "build-controlplane.sh").exists():
            return parent
    return None


def kubectl_binary() -> Path | None:
    """kubectl at the control plane's version, built from hack/kubectl's pinned Go module into
    the cache (hack/build-kubectl.sh; about three minutes the first time, then cached). Where it
    cannot be built (no checkout, or no Go), the kubectl on PATH; None when there is none."""
    root = repo_root()
    cache = Path(
        os.environ.get("STRATOPS_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stratops"
    )
    if root is not None and (shutil.which("go") or list(cache.glob("kubectl-*/kubectl"))):
        out = subprocess.run(
            ["bash", str(root / "hack" / "build-kubectl.sh")], stdout=subprocess.PIPE, text=True, check=True
        )
        return Path(out.stdout.strip().splitlines()[-1])
    found = shutil.which("kubectl")
    return Path(found) if found else None


def find_binaries() -> dict[str, Path]:
    """Locate the control-plane binaries.

    A directory named by STRATOPS_ASSETS or KUBEBUILDER_ASSETS is used for every binary it
    holds; the rest come from the build cache, built from hack/controlplane when missing.
    """
    found: dict[str, Path] = {}
    for var in ("STRATOPS_ASSETS", "KUBEBUILDER_ASSETS"):
        d = os.environ.get(var)
        if d:
            for b in BINARIES:
                p = Path(d) / b
                if b not in found and p.is_file() and os.access(p, os.X_OK):
                    found[b] = p
    missing = [b for b in BINARIES if b not in found]
    if not missing:
        return found
    root = repo_root()
    if root is None:
        raise ControlPlaneError(
            f"missing control-plane binaries {missing}: set KUBEBUILDER_ASSETS to a directory "
            "holding them, or run from a stratops checkout (hack/build-controlplane.sh builds them)"
        )
    # The script prints its own progress when it has to build; a cache hit is silent.
    proc = subprocess.run(
        ["bash", str(root / "hack" / "build-controlplane.sh")],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ControlPlaneError("hack/build-controlplane.sh failed (see its output above)")
    out = Path(proc.stdout.strip().splitlines()[-1])
    for b in missing:
        found[b] = out / b
    return found


@dataclass
class Component:
    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, workdir: Path) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                preexec_fn=_die_with_parent,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)


@dataclass
class ControlPlane:
    """A local control plane. Use as a context manager, or call start() and stop()."""

    nodes: int = 1
    log: Callable[[str], None] = field(default=lambda m: print(m, file=sys.stderr))
    startup_timeout: float = 120.0
    #: Opt-in kube-apiserver audit log (level Metadata, every request) at `audit_log_path`,
    #: for benchmarks that count who asks the API server for what. Off by default.
    audit: bool = False
    #: A real node (stratops.testing.realnode: containerd, runc, CNI, a kubelet) next to the
    #: KWOK ones, for pods that ask for it. Needs root and Debian's containerd, runc and CNI
    #: plugins; ControlPlaneError says what is missing.
    real_node: bool = False
    node: Any = None
    workdir: Path | None = None
    components: list[Component] = field(default_factory=list)
    kubeconfig: Path | None = None
    server: str = ""
    _ca: CertificateAuthority | None = None
    _stopped: bool = False

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    #: Starts tried again, on fresh ports, when a component finds its port taken: free_port()
    #: can only pick a port that is free *now*, and any process's outgoing connection may take
    #: it before the component binds it.
    port_retries: int = 2

    def start(self) -> ControlPlane:
        began = time.monotonic()
        binaries = find_binaries()
        sweep_stale_workdirs()
        for attempt in range(self.port_retries + 1):
            self.workdir = Path(tempfile.mkdtemp(prefix="stratops-cp-"))
            (self.workdir / "owner.pid").write_text(str(os.getpid()))
            atexit.register(self.stop)
            try:
                self._start(binaries)
                break
            except ControlPlaneError as e:
                self.stop()
                if "address already in use" not in str(e) or attempt == self.port_retries:
                    raise
                self.log(
                    "a port was taken while the control plane started; starting again on fresh ports "
                    f"({e.args[0].splitlines()[0]})"
                )
                self.components, self.node, self._stopped, self.kubeconfig, self.server = [], None, False, None, ""
            except BaseException:
                self.stop()
                raise
        self.log(f"local control plane ready in {time.monotonic() - began:.1f}s: {self.server}")
        return self

    def _start(self, binaries: dict[str, Path]) -> None:
        assert self.workdir is not None
        d = self.workdir
        pki = d / "pki"
        pki.mkdir()
        self._ca = ca = CertificateAuthority(pki)
        node = None
        if self.real_node:
            from stratops.testing import realnode

            if (why := realnode.unavailable()) is not None:
                raise ControlPlaneError(f"no real node: {why}")
            node = realnode.RealNode(
                d,
                binaries["kubelet"],
                binaries["pause"],
                d / "kubelet.kubeconfig",
                ca.cert_path,
                self._component,
                self._wait,
            )
        serving = ca.issue(
            "apiserver",
            common_name="kube-apiserver",
            server=True,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            # The real node's pods reach it on their bridge's gateway.
            ip_addresses=("127.0.0.1", "10.96.0.1", *((node.gateway,) if node else ())),
        )
        sa = service_account_keys(pki)
        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self.kubeconfig = self.user_kubeconfig("admin", groups=("system:masters",), path=d / "admin.kubeconfig")

        etcd = self._component(
            "etcd",
            [
                str(binaries["etcd"]),
                "--name=default",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                # A throw-away store: durability buys nothing and fsync is the slowest part.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(etcd, lambda: self._http_ok(f"http://127.0.0.1:{etcd_port}/health"))

        apiserver = self._component(
            "kube-apiserver",
            [
                str(binaries["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                # Loopback only, unless a real node's pods must reach it (from their bridge).
                f"--bind-address={'0.0.0.0' if node else '127.0.0.1'}",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert_path}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa.cert}",
                f"--service-account-signing-key-file={sa.key}",
                # The 'kubernetes' Service endpoint would be 127.0.0.1, which Endpoints rejects.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
                *self._audit_args(),
                *self._kubelet_client_args(ca, node),
            ],
        )
        admin = self._admin_keypair()
        self._wait(apiserver, lambda: self._http_ok(f"{self.server}/readyz", admin))

        kcm_port, sched_port, kwok_port = free_port(), free_port(), free_port()
        kc = str(self.kubeconfig)
        kcm = self._component(
            "kube-controller-manager",
            [
                str(binaries["kube-controller-manager"]),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--service-account-private-key-file={sa.key}",
                f"--root-ca-file={ca.cert_path}",
                "--use-service-account-credentials=false",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Faster reaction than the production defaults; tests wait on conditions.
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--profiling=false",
                "--v=1",
            ],
        )
        sched = self._component(
            "kube-scheduler",
            [
                str(binaries["kube-scheduler"]),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--profiling=false",
                "--v=1",
            ],
        )
        stages = d / "kwok-stages.yaml"
        stages.write_text(resources.files("stratops.testing").joinpath("kwok/stages.yaml").read_text())
        kwok = self._component(
            "kwok",
            [
                str(binaries["kwok"]),
                f"--kubeconfig={kc}",
                f"--config={stages}",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--node-ip=10.240.0.1",
                "--cidr=10.244.0.1/16",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{kwok_port}",
            ],
        )
        self._wait(kcm, lambda: self._http_ok(f"https://127.0.0.1:{kcm_port}/healthz"))
        self._wait(sched, lambda: self._http_ok(f"https://127.0.0.1:{sched_port}/healthz"))

        from kubernetes import client  # imported late: pure users of the module need none

        api = self.api_client()
        core = client.CoreV1Api(api)
        for i in range(self.nodes):
            core.create_node(self._node_manifest(f"kwok-node-{i}"))
        self._wait(kwok, lambda: self._nodes_ready(core))
        # The service-account controller creates 'default' in every namespace; pods are
        # admitted only once it exists, so wait for it before calling the cluster ready.
        self._wait(
            kcm,
            lambda: bool(core.list_namespaced_service_account("default", field_selector="metadata.name=default").items),
        )
        if node is not None:
            self._start_real_node(node, api_port)

    @staticmethod
    def _kubelet_client_args(ca: CertificateAuthority, node: Any) -> list[str]:
        """How the API server authenticates to a real node's kubelet (pod logs, exec)."""
        if node is None:
            return []
        pair = ca.issue("apiserver-kubelet-client", common_name="kube-apiserver-kubelet-client")
        # The node's name resolves nowhere here: its address is its bridge's gateway.
        return [
            f"--kubelet-client-certificate={pair.cert}",
            f"--kubelet-client-key={pair.key}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

    def _start_real_node(self, node: Any, api_port: int) -> None:
        from kubernetes import client

        from stratops.k8s.apply import apply
        from stratops.testing.realnode import api_address_policy

        began = time.monotonic()
        user = f"system:node:{node.name}"
        self.user_kubeconfig(user, ("system:nodes",), path=node.kubeconfig)
        api = self.api_client()
        # RBAC only (no Node authorizer here): the kubelet gets the node role by name.
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
            {
                "metadata": {"name": f"stratops-local-{node.name}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
                "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
            }
        )
        apply(api, api_address_policy(node.gateway, api_port))
        self.node = node
        node.start()
        core = client.CoreV1Api(api)
        self._wait(node.kubelet_component, lambda: node.ready(core))
        self.log(f"real node {node.name} Ready in {time.monotonic() - began:.1f}s (pods on {node.subnet})")

    def stop(self) -> None:
        """Stop every component (reverse start order) and remove the working directory."""
        if self._stopped:
            return
        self._stopped = True
        if self.node is not None:
            self.node.stop()  # its own order: kubelet, containers, containerd, mounts, bridge, cgroups
        for c in reversed(self.components):
            c.stop()
        if self.workdir and self.workdir.exists() and not os.environ.get("STRATOPS_KEEP_CONTROLPLANE"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.stop)

    def restart(self, name: str, down_for: float = 0.0) -> float:
        """Fault injection: stop one component (SIGTERM, then SIGKILL), keep it down for
        DOWN_FOR seconds (the outage), and start it again with the same arguments and ports;
        returns once it is ready again (seconds it took, the outage included)."""
        began = time.monotonic()
        c = next((c for c in self.components if c.name == name), None)
        if c is None or self.workdir is None:
            raise ControlPlaneError(f"no component {name!r}: one of {', '.join(c.name for c in self.components)}")
        c.stop()
        time.sleep(down_for)  # the outage itself, not a wait for anything
        c.start(self.workdir)
        if name == "kube-apiserver":
            admin = self._admin_keypair()
            self._wait(c, lambda: self._http_ok(f"{self.server}/readyz", admin))
        return time.monotonic() - began

    # -- audit (opt-in) --------------------------------------------------------------------
    @property
    def audit_log_path(self) -> Path | None:
        return self.workdir / "audit.log" if self.audit and self.workdir is not None else None

    def _audit_args(self) -> list[str]:
        if not self.audit:
            return []
        assert self.workdir is not None
        policy = self.workdir / "audit-policy.yaml"
        # Metadata: who, verb, resource, status; no bodies. A request logs ResponseComplete; a
        # watch also logs ResponseStarted when it opens (count a watch by that stage).
        policy.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived"],
                    "rules": [{"level": "Metadata"}],
                }
            )
        )
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log_path}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
        ]

    def audit_events(self, since_offset: int = 0) -> tuple[list[dict], int]:  # type: ignore[type-arg]
        """Audit events written after byte offset SINCE_OFFSET, and the offset to read from next
        time. Requires `audit=True`. Batched: events land within ~1 s of the request."""
        import json

        path = self.audit_log_path
        if path is None:
            raise ControlPlaneError("the audit log is off: ControlPlane(audit=True)")
        if not path.exists():
            return [], since_offset
        with path.open("rb") as f:
            f.seek(since_offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        events = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        return events, since_offset + end

    # -- access --------------------------------------------------------------------------
    def pids(self) -> list[int]:
        return [c.process.pid for c in self.components if c.process is not None]

    def api_client(self, kubeconfig: Path | None = None):  # type: ignore[no-untyped-def]
        """A kubernetes.client.ApiClient for the admin (or the given kubeconfig)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def user_kubeconfig(
        self, user: str, groups: tuple[str, ...] = (), path: Path | None = None, server: str | None = None
    ) -> Path:
        """Write a kubeconfig that authenticates as USER (client certificate CN) in GROUPS, at
        SERVER (default: the API server; a proxy in front of it, for network faults)."""
        assert self._ca is not None and self.workdir is not None
        import re

        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", user)  # kubeconfig paths are split on ':'
        pair = self._ca.issue(f"user-{safe}", common_name=user, organizations=groups)
        path = path or self.workdir / f"{safe}.kubeconfig"
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "stratops-local",
            "clusters": [
                {
                    "name": "stratops-local",
                    "cluster": {"server": server or self.server, "certificate-authority": str(self._ca.cert_path)},
                }
            ],
            "users": [{"name": user, "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)}}],
            "contexts": [
                {
                    "name": "stratops-local",
                    "context": {"cluster": "stratops-local", "user": user, "namespace": "default"},
                }
            ],
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def serving_certificate(self, name: str, ip: str = "127.0.0.1") -> tuple[Path, Path, Path]:
        """(cert, key, ca) for a server on IP that the apiserver trusts through the CA: for an
        admission webhook served on the host."""
        assert self._ca is not None
        pair = self._ca.issue(name, common_name=name, server=True, ip_addresses=(ip,), dns_names=("localhost",))
        return pair.cert, pair.key, self._ca.cert_path

    # -- internals -----------------------------------------------------------------------
    def _admin_keypair(self) -> KeyPair:
        assert self.workdir is not None
        return KeyPair(self.workdir / "pki" / "user-admin.crt", self.workdir / "pki" / "user-admin.key")

    def _component(self, name: str, args: list[str]) -> Component:
        assert self.workdir is not None
        c = Component(name, args, self.workdir / f"{name}.log")
        self.components.append(c)
        c.start(self.workdir)
        return c

    def _wait(self, component: Component, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = "none"
        while time.monotonic() < deadline:
            if not component.running():
                raise ControlPlaneError(
                    f"{component.name} exited during startup (code "
                    f"{component.process.returncode if component.process else '?'}); "
                    f"last lines of {component.log.name}:\n{component.tail()}"
                )
            try:
                if ready():
                    return
            except Exception as e:  # not ready yet; the deadline decides
                last_error = repr(e)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{component.name} not ready after {self.startup_timeout:.0f}s "
            f"(last check error: {last_error}); "
            f"last lines of {component.log.name}:\n{component.tail()}"
        )

    def _http_ok(self, url: str, client_cert: KeyPair | None = None) -> bool:
        # Health endpoints of the controller-manager and scheduler use self-signed serving
        # certificates; only the apiserver's is checked against the CA.
        verify: bool | ssl.SSLContext = False
        if client_cert is not None and self._ca is not None:
            verify = ssl.create_default_context(cafile=str(self._ca.cert_path))
            verify.load_cert_chain(str(client_cert.cert), str(client_cert.key))
        r = httpx.get(url, verify=verify, timeout=2.0, trust_env=False)
        return r.status_code == 200

    @staticmethod
    def _node_manifest(name: str) -> dict:  # type: ignore[type-arg]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
        }

    def _nodes_ready(self, core) -> bool:  # type: ignore[no-untyped-def]
        nodes = core.list_node(label_selector="type=kwok").items
        ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))]
        return len(ready) >= self.nodes


def iter_processes_of(pids: list[int]) -> Iterator[int]:
    """The pids among PIDS that are still alive (zombies count as gone)."""
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            yield pid
