"""A real node for the local control plane: containerd and runc (Debian's), CNI plugins (Debian's
containernetworking-plugins) on a bridge of its own, and a kubelet built from the pinned
Kubernetes module, registered against the harness's API server. Strategy pods run there as
real containers, from images built here and imported (no registry is reachable).

Everything lives under the control plane's working directory: containerd's root and state
(network namespaces included), the CNI configuration and address leases, the kubelet's root,
the logs. The cgroups go under a root of their own in every hierarchy. `stop()` leaves nothing
behind: the kubelet stops first (so nothing is recreated), every container and sandbox is
killed and deleted through containerd, then containerd stops; what is still mounted under the
directory is unmounted, the bridge deleted, the cgroups removed, and the kernel settings the
kubelet changes (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops) are put back.

Pods land on it only when they ask: the node carries the taint REAL_NODE_TAINT and the label
REAL_NODE_LABEL; KWOK's fake nodes stay the default (and the 1,000-strategy bench's).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

REAL_NODE_LABEL = {"stratops.io/node": "real"}
REAL_NODE_TAINT = {"key": "stratops.io/real-node", "value": "true", "effect": "NoSchedule"}
PAUSE_IMAGE = "stratops.local/pause:1"
SYSCTLS = (
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
K8S_NAMESPACE = "k8s.io"  # containerd's namespace for the CRI


def cni_bin_dir() -> Path | None:
    for d in CNI_BIN_DIRS:
        if (Path(d) / "bridge").exists() and (Path(d) / "host-local").exists() and (Path(d) / "loopback").exists():
            return Path(d)
    return None


def unavailable() -> str | None:
    """Why a real node cannot start on this machine (None: it can)."""
    if os.geteuid() != 0:
        return "a real node needs root (the kubelet and containerd manage cgroups, mounts and network namespaces)"
    for b in ("containerd", "containerd-shim-runc-v2", "runc", "ctr"):
        if shutil.which(b) is None:
            return f"{b} is not installed (Debian: apt-get install containerd runc)"
    if cni_bin_dir() is None:
        return "the CNI plugins are not installed (Debian: apt-get install containernetworking-plugins)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def pause_archive(binary: Path, path: Path) -> Path:
    """A docker-archive image holding only the sandbox process (for `ctr images import`)."""

    def add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), mode, 0
        tar.addfile(info, BytesIO(data))

    layer = BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        add(t, "pause", binary.read_bytes(), 0o755)
    import hashlib

    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(path, "w") as tar:
        add(tar, "layer.tar", layer_bytes)
        add(tar, config_name, config)
        add(
            tar,
            "manifest.json",
            json.dumps([{"Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": ["layer.tar"]}]).encode(),
        )
    return path


class RealNode:
    """One kubelet node on this machine (see the module's docstring)."""

    def __init__(
        self,
        workdir: Path,
        kubelet: Path,
        pause: Path,
        kubeconfig: Path,
        ca: Path,
        start_component: Callable[[str, list[str]], Any],
        wait: Callable[[Any, Callable[[], bool]], None],
        name: str = "real-node-0",
    ) -> None:
        self.d = workdir / "node"
        self.kubelet, self.pause, self.kubeconfig, self.ca = kubelet, pause, kubeconfig, ca
        self.name = name
        self._start_component, self._wait = start_component, wait
        token = f"{random.randrange(16**4):04x}"
        third = random.randrange(1, 250)
        self.bridge = f"stbr{token}"
        self.subnet, self.gateway = f"10.88.{third}.0/24", f"10.88.{third}.1"
        self.cgroup_root = f"stratops-{token}"
        self._sysctls: dict[str, str] = {}
        self.containerd: Any = None
        self.kubelet_component: Any = None

    @property
    def socket(self) -> Path:
        return self.d / "containerd.sock"

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", K8S_NAMESPACE, *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    # -- start ----------------------------------------------------------------------------
    def start(self) -> None:
        self.d.mkdir(parents=True)
        for s in SYSCTLS:
            try:
                self._sysctls[s] = Path("/proc/sys", s).read_text().strip()
            except OSError:
                pass
        self._cgroups(create=True)
        # The bridge before the kubelet (CNI would make it with the first pod): the node's
        # address is its gateway, where the kubelet serves the API server (logs, exec).
        for cmd in (
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        self._start_containerd()
        self.import_archive(pause_archive(self.pause, self.d / "pause.tar"))
        self._start_kubelet()

    def _cgroups(self, create: bool) -> list[Path]:
        roots = []
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            if hierarchy.is_dir() and (hierarchy / "cgroup.procs").exists():
                root = hierarchy / self.cgroup_root
                if create:
                    root.mkdir(exist_ok=True)
                roots.append(root)
        return roots

    def _start_containerd(self) -> None:
        cni = self.d / "cni"
        cni.mkdir()
        (cni / "10-stratops.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "stratops",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": self.bridge,
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "dataDir": str(self.d / "cni-leases"),
                                "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]],
                            },
                        }
                    ],
                }
            )
        )
        config = self.d / "containerd.toml"
        config.write_text(f"""version = 2
root = "{self.d / "containerd" / "root"}"
state = "{self.d / "containerd" / "state"}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.d / "containerd-ttrpc.sock"}"
[debug]
  level = "warn"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{self.d / "containerd" / "opt"}"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_IMAGE}"
    # Processes here lack CAP_SYS_RESOURCE: without this every sandbox fails to start.
    restrict_oom_score_adj = true
    disable_apparmor = true
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{cni_bin_dir()}"
      conf_dir = "{cni}"
""")
        self.containerd = self._start_component("containerd", ["containerd", "--config", str(config)])
        self._wait(self.containerd, lambda: self.socket.exists() and self.ctr("version", check=False).returncode == 0)

    def import_archive(self, archive: Path) -> None:
        """Import an image archive (docker-archive or OCI) for the node's pods."""
        self.ctr("images", "import", "--no-unpack=false", str(archive), timeout=600)

    def _start_kubelet(self) -> None:
        from stratops.testing.controlplane import free_port

        config = self.d / "kubelet.yaml"
        port, healthz = free_port(), free_port()
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    # This host has cgroup v1 hierarchies; Kubernetes 1.35+ refuses them unless told.
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": f"/{self.cgroup_root}",
                    "containerRuntimeEndpoint": f"unix://{self.socket}",
                    "address": self.gateway,
                    "port": port,
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": healthz,
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": False},
                        "x509": {"clientCAFile": str(self.ca)},
                    },
                    "authorization": {"mode": "AlwaysAllow"},
                    "registerWithTaints": [REAL_NODE_TAINT],
                    "failSwapOn": False,
                    # A test node: no eviction for a full disk or memory, no image garbage collection
                    # (the images were imported, nothing could pull them again).
                    "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "syncFrequency": "10s",
                    "fileCheckFrequency": "10s",
                    "nodeStatusUpdateFrequency": "2s",
                    "serializeImagePulls": False,
                    "localStorageCapacityIsolation": False,
                    "enforceNodeAllocatable": ["pods"],
                    "cgroupsPerQOS": True,
                }
            )
        )
        self.kubelet_component = self._start_component(
            "kubelet",
            [
                str(self.kubelet),
                f"--config={config}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={self.d / 'kubelet'}",
                f"--cert-dir={self.d / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.gateway}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in REAL_NODE_LABEL.items()),
                "--v=1",
            ],
        )

    def ready(self, core: Any) -> bool:
        nodes = core.list_node(field_selector=f"metadata.name={self.name}").items
        return bool(nodes) and any(c.type == "Ready" and c.status == "True" for c in nodes[0].status.conditions or [])

    # -- stop -----------------------------------------------------------------------------
    def stop(self) -> None:
        if self.kubelet_component is not None:
            self.kubelet_component.stop(15)  # first: nothing restarts the pods from here on
        if self.containerd is not None and self.containerd.running():
            for line in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
                self.ctr("tasks", "kill", "-s", "SIGKILL", line, check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.ctr("tasks", "ls", "-q", check=False).stdout.strip():
                for line in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
                    self.ctr("tasks", "delete", "-f", line, check=False)
                time.sleep(0.2)
            for line in self.ctr("containers", "ls", "-q", check=False).stdout.split():
                self.ctr("containers", "rm", line, check=False)
            self.containerd.stop(15)
        self._unmount()
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        for root in self._cgroups(create=False):
            self._remove_cgroup(root)
        for s, v in self._sysctls.items():
            try:
                Path("/proc/sys", s).write_text(v)
            except OSError:
                pass

    def _unmount(self) -> None:
        base = str(self.d)
        mounts = [line.split()[1].replace("\\040", " ") for line in Path("/proc/mounts").read_text().splitlines()]
        for m in sorted((m for m in mounts if m.startswith(base)), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True, check=False)

    @staticmethod
    def _remove_cgroup(path: Path) -> None:
        if not path.exists():
            return
        for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _kill_and_rmdir(sub)
        _kill_and_rmdir(path)

    def leftovers(self) -> list[str]:
        """What stop() should have removed and has not (for the tests of the harness)."""
        out = []
        base = str(self.d)
        out += [
            f"mount {m}"
            for m in (ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines())
            if m.startswith(base)
        ]
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode == 0:
            out.append(f"bridge {self.bridge}")
        out += [f"cgroup {r}" for r in self._cgroups(create=False) if r.exists()]
        for s, v in self._sysctls.items():
            try:
                now = Path("/proc/sys", s).read_text().strip()
            except OSError:
                continue
            if now != v:
                out.append(f"sysctl {s}={now} (was {v})")
        shims = subprocess.run(
            ["pgrep", "-f", f"containerd-shim.*{self.socket}"], capture_output=True, text=True
        ).stdout.split()
        out += [f"shim pid {p}" for p in shims]
        return out


def _kill_and_rmdir(cg: Path) -> None:
    for _ in range(50):
        try:
            pids = (cg / "cgroup.procs").read_text().split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        try:
            cg.rmdir()
            return
        except OSError:
            time.sleep(0.05)


def pod_template(env: dict[str, str] | None = None) -> dict[str, Any]:
    """A Strategy's spec.podTemplate that puts its pods on the real node (its label, its taint
    tolerated), with ENV, and requests small enough for a few of them beside the harness."""
    template: dict[str, Any] = {
        "nodeSelector": dict(REAL_NODE_LABEL),
        "tolerations": [{"operator": "Equal", **REAL_NODE_TAINT}],
        # a laptop-sized request: the example's 500m would hold a quarter of a 2-core machine
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "512Mi"}},
    }
    if env:
        template["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return template


def api_address_policy(host: str, port: int) -> list[dict[str, Any]]:
    """A MutatingAdmissionPolicy for the harness: pods that ask for the real node reach the API
    server at HOST:PORT (the bridge's gateway), where a cluster's kube-proxy would route the
    `kubernetes` Service: this one has no kube-proxy, and needs none for anything else."""
    env = (
        f"[Object.spec.containers.env{{name: 'KUBERNETES_SERVICE_HOST', value: '{host}'}}, "
        f"Object.spec.containers.env{{name: 'KUBERNETES_SERVICE_PORT', value: '{port}'}}]"
    )
    name = "stratops-local-real-node-api"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "matchConstraints": {
                    "resourceRules": [
                        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
                    ]
                },
                "matchConditions": [
                    {
                        "name": "on-the-real-node",
                        "expression": " && ".join(
                            f"object.spec.?nodeSelector[?'{k}'].orValue('') == '{v}'"
                            for k, v in REAL_NODE_LABEL.items()
                        ),
                    }
                ],
                "mutations": [
                    {
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {
                            "expression": (
                                "Object{spec: Object.spec{containers: object.spec.containers.map(c, "
                                f"Object.spec.containers{{name: c.name, env: {env}}})}}}}"
                            )
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name},
        },
    ]
