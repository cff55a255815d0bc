"""The kind tier, driven as a user drives it: `make kind-e2e` (hack/kind-up.sh: a kind cluster
with the chart installed from its image; then a subset of this suite against it with
USE_EXISTING_CLUSTER=1), the chart's own operator taking a real strategy through a kill-switch
inside the cluster, then `make kind-down`, after which nothing is left on the machine.

No registry is reachable here: kind-up assembles the node image from the pinned control plane
(hack/build-kind-node-image.sh) and runs kind on its own Docker engine (hack/kind/dockerd.sh).
Skipped, saying why, without root, Docker, runc, debootstrap or Go; CI sets
STRATOPS_REQUIRE_REAL_NODE=1, and there it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from lifecycle_helpers import Desk
from stratops.testing.fixtures import _cannot, use_existing_cluster
from test_real_pods import NAME, ready_pods, real_strategy

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(use_existing_cluster(), reason="makes a kind cluster of its own")]

ROOT = Path(__file__).resolve().parents[2]
#: The suite's tests run on the kind cluster: the example strategy as a real container on the kind
#: node (probes, metrics), and its whole kill-switch (acknowledged by the process, scale to 0,
#: SIGTERM, the exit recorded), with the suite's operator on this host.
SUBSET = (
    "tests/e2e/test_real_pods.py::test_strategy_runs_as_a_real_container_ready_through_its_probe",
    "tests/e2e/test_real_pods.py::test_kill_switch_is_acknowledged_by_the_real_process_and_it_exits_cleanly",
)
#: Set by this session's fixtures for its own cluster and operator: the inner session sets its own.
SESSION_ENV = ("KUBECONFIG", "USE_EXISTING_CLUSTER", "DOCKER_HOST", "STRATOPS_KIND_CLUSTER")
KEPT_STRATOPS_ENV = (
    "STRATOPS_CACHE_DIR",
    "STRATOPS_REQUIRE_REAL_NODE",
    "STRATOPS_MONITORING_ASSETS",
    "STRATOPS_ASSETS",
    "STRATOPS_BASE_IMAGE",
)
RUN_DIR = Path(os.environ.get("STRATOPS_KIND_RUN_DIR", "/run/stratops-kind"))
#: Kernel settings the kubelet sets (vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1)
#: and that no namespace holds: the kind node has copies of its own (hack/kind/node's entrypoint).
TUNABLES = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}


def unavailable() -> str | None:
    """Why the kind tier cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "the kind tier needs root (debootstrap, a Docker engine of its own)"
    for tool, package in (
        ("dockerd", "docker.io"),
        ("docker", "docker.io"),
        ("runc", "runc"),
        ("debootstrap", "debootstrap"),
        ("go", "golang-go"),
    ):
        if shutil.which(tool) is None:
            return f"the kind tier needs {tool} (Debian: apt-get install {package})"
    return None


def make(target: str, env: dict[str, str], log: Path, timeout: float) -> tuple[int, str, float]:
    """`make TARGET` in the checkout, as a user types it: (exit code, its output, seconds)."""
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(
            ["make", target], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        ).returncode
    return code, log.read_text(errors="replace"), time.monotonic() - started


def host_state() -> dict[str, object]:
    """What the kind tier may change on the host, and must leave as it found it."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    data_root = str(Path(os.environ.get("STRATOPS_CACHE_DIR", Path.home() / ".cache" / "stratops")) / "kind")
    pgrep = subprocess.run(["pgrep", "-af", f"{RUN_DIR}/"], capture_output=True, text=True)
    rules = ""
    for save in ("iptables-save", "iptables-legacy-save"):
        if shutil.which(save):
            rules += subprocess.run([save], capture_output=True, text=True).stdout
    return {
        "processes": pgrep.stdout.splitlines(),
        "mounts": [m for m in mounts if m.startswith((str(RUN_DIR), data_root))],
        # The engine's networks take their addresses from 10.213.0.0/16 (hack/kind/dockerd.sh).
        "bridges": [
            line
            for line in subprocess.run(["ip", "-4", "-br", "addr"], capture_output=True, text=True).stdout.splitlines()
            if " 10.213." in line
        ],
        "iptables rules": [line for line in rules.splitlines() if "10.213." in line],
        # The host's own interfaces, docker0 among them: the engine once deleted docker0 at start
        # ("bridge": "none"), and every `docker run` of the default engine failed until it restarted.
        "interfaces": sorted(i.name for i in Path("/sys/class/net").iterdir() if not i.name.startswith("veth")),
        "/lib/modules": Path("/lib/modules").exists(),
        # kind writes no kubeconfig there (KIND_KUBECONFIG), helm no discovery cache (KUBECACHEDIR).
        "~/.kube": (Path.home() / ".kube").exists(),
    }


def test_make_kind_e2e_runs_the_chart_and_real_strategy_pods_and_kind_down_leaves_nothing(tmp_path):
    if (why := unavailable()) is not None:
        _cannot(why)
    cluster = f"st-{uuid.uuid4().hex[:6]}"
    kubeconfig = tmp_path / "kind.kubeconfig"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SESSION_ENV and (not k.startswith("STRATOPS_") or k in KEPT_STRATOPS_ENV)
    }
    env.update(
        KIND_CLUSTER=cluster,
        KIND_KUBECONFIG=str(kubeconfig),
        # The subset runs on the kind node, or fails: it must not skip.
        STRATOPS_REQUIRE_REAL_NODE="1",
        KIND_E2E_ARGS=" ".join([*SUBSET, "-p", "no:cacheprovider"]),
    )
    before = host_state()
    timings: dict[str, float] = {}
    try:
        # Cold, this builds kind, kubeadm, kube-proxy, CoreDNS, crictl, the node image and both
        # images (about 15 minutes on two cores); warm, it creates the cluster and loads the images.
        code, out, timings["make kind-e2e"] = make("kind-e2e", env, tmp_path / "kind-e2e.log", timeout=2700)
        assert code == 0, out[-6000:]
        assert re.search(r"kind-up: creating kind cluster " + cluster, out), out[-3000:]
        summary = [line for line in out.splitlines() if re.search(r" in [\d.]+s\b", line)][-1]  # pytest's last line
        assert re.search(rf"\b{len(SUBSET)} passed\b", summary), out[-6000:]
        assert not re.search(r"failed|error|skipped|deselected", summary), out[-6000:]

        # The chart's operator, from its image, on the kind node: both replicas Available.
        api = config.new_client_from_config(config_file=str(kubeconfig))
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        deployment = apps.read_namespaced_deployment("stratops", "stratops-system")
        assert deployment.status.available_replicas == 2, deployment.status
        pods = core.list_namespaced_pod("stratops-system", label_selector="app.kubernetes.io/name=stratops").items
        assert len(pods) == 2
        for pod in pods:
            assert pod.spec.node_name == f"{cluster}-control-plane"
            (status,) = pod.status.container_statuses
            assert status.image.endswith("stratops:0.1.0") and status.ready and status.state.running, status

        # The kubelet's kernel settings went to the node's copies, not to the host's kernel
        # (another real node on this machine may set the host's meanwhile: it is not compared).
        node = ["docker", "exec", f"{cluster}-control-plane"]
        engine = {**env, "DOCKER_HOST": f"unix://{RUN_DIR}/docker.sock"}
        mounted = subprocess.run([*node, "cat", "/proc/mounts"], env=engine, capture_output=True, text=True).stdout
        for tunable, value in TUNABLES.items():
            assert f" /proc/sys/{tunable} " in mounted, mounted
            copy = subprocess.run([*node, "cat", f"/proc/sys/{tunable}"], env=engine, capture_output=True, text=True)
            assert copy.stdout.strip() == value, (tunable, copy)

        # It acts, inside the cluster: the example strategy as a real container in the chart's
        # namespace, deployed by the chart's operator, halted by a kill-switch its process
        # acknowledges, scaled to 0 and exited cleanly. Nothing on this host takes part.
        started = time.monotonic()
        desk = Desk(api, "stratops-system")
        desk.create("strategies", real_strategy())
        ready_pods(desk)
        desk.wait_status(
            lambda s: s.get("phase") == "Running" and s.get("lastKnownGood") == "1.4.2", "Running, known-good", 90
        )
        desk.command("kill", reason="kind: runaway orders (drill)")
        s = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("exitsFinalAt"), "halted, exits recorded", 90)
        assert s["killSwitch"]["acknowledged"] is True, s["killSwitch"]
        assert [e["clean"] for e in s["killSwitch"]["exits"]] == [True], s["killSwitch"]
        assert desk.deployment(NAME).spec.replicas == 0
        timings["the chart's operator: deploy, kill-switch, exit"] = time.monotonic() - started
    finally:
        code, out, timings["make kind-down"] = make("kind-down", env, tmp_path / "kind-down.log", timeout=300)
        print("kind tier timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    assert code == 0, out
    assert not kubeconfig.exists()
    after = host_state()
    assert {k: v for k, v in after.items() if v != before[k]} == {}, f"left behind, or changed: before {before}"
