"""The local control plane runs real controllers: Deployments get ReplicaSets and Ready pods."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kubernetes import client

from stratops.testing.controlplane import ControlPlane, iter_processes_of, sweep_stale_workdirs
from stratops.testing.fixtures import use_existing_cluster
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e


def _deployment(name: str, replicas: int, image: str = "registry.example/desk/echo:1") -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "main", "image": image}]}},
        },
    }


def _ready_pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]


def test_deployment_gets_ready_pods_on_a_kwok_node_and_scales_to_zero(kube, namespace):
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    apps.create_namespaced_deployment(namespace, _deployment("echo", 2))

    ready = wait_for(
        lambda: (p := _ready_pods(core, namespace, "echo")) and len(p) == 2 and p, timeout=90, what="2 Ready pods"
    )
    if not use_existing_cluster():
        nodes = {p.spec.node_name for p in ready}
        assert nodes and all(n.startswith("kwok-node-") for n in nodes)
    rs = apps.list_namespaced_replica_set(namespace, label_selector="app=echo").items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].kind == "Deployment"
    wait_for(
        lambda: apps.read_namespaced_deployment_status("echo", namespace).status.ready_replicas == 2,
        timeout=60,
        what="deployment status readyReplicas=2",
    )

    apps.patch_namespaced_deployment_scale("echo", namespace, {"spec": {"replicas": 0}})
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=echo").items,
        timeout=90,
        what="pods removed after scale to 0",
    )


def test_failing_image_never_becomes_ready(kube, namespace):
    """The KWOK stage for images tagged fail-*: pods run but never become Ready."""
    if use_existing_cluster():
        pytest.skip("fault stages exist only on the local control plane")
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    apps.create_namespaced_deployment(namespace, _deployment("bad", 1, "registry.example/desk/echo:fail-1"))

    def crashlooping():
        pods = core.list_namespaced_pod(namespace, label_selector="app=bad").items
        return [
            p
            for p in pods
            for s in (p.status.container_statuses or [])
            if s.state.waiting and s.state.waiting.reason == "CrashLoopBackOff"
        ]

    wait_for(crashlooping, timeout=90, what="a CrashLoopBackOff pod")
    assert _ready_pods(core, namespace, "bad") == []


@pytest.mark.skipif(use_existing_cluster(), reason="about the local control plane itself")
def test_stop_leaves_no_process_and_no_directory():
    cp = ControlPlane(nodes=1)
    cp.start()
    pids, workdir = cp.pids(), cp.workdir
    assert len(pids) == 5 and list(iter_processes_of(pids)) == pids
    cp.stop()
    assert list(iter_processes_of(pids)) == []
    assert workdir is not None and not workdir.exists()


@pytest.mark.skipif(use_existing_cluster(), reason="about the local control plane itself")
def test_killed_parent_takes_the_control_plane_with_it(tmp_path):
    """A test run killed with SIGKILL (no teardown at all) still leaves no process behind."""
    script = textwrap.dedent("""
        import json, sys, time
        from stratops.testing.controlplane import ControlPlane
        cp = ControlPlane(log=lambda m: None).start()
        print(json.dumps({"pids": cp.pids(), "workdir": str(cp.workdir)}), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert list(iter_processes_of(info["pids"])) == info["pids"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    wait_for(
        lambda: not list(iter_processes_of(info["pids"])),
        timeout=30,
        what="control-plane processes to exit after their parent was killed",
    )
    # Nobody was left to remove the directory: the next control plane sweeps it.
    assert os.path.exists(info["workdir"])
    assert Path(info["workdir"]) in sweep_stale_workdirs()
    assert not os.path.exists(info["workdir"])


@pytest.mark.skipif(use_existing_cluster(), reason="starts its own control plane")
def test_a_port_taken_while_starting_is_survived_on_fresh_ports(monkeypatch):
    """free_port() hands out a port that is free now; another process can take it before the
    component binds it (seen in CI: kube-scheduler "bind: address already in use"). Here the
    first port handed out is held open on purpose: the start goes again on fresh ports."""
    import socket

    from stratops.testing import controlplane

    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    real, handed = controlplane.free_port, []

    def free_port() -> int:
        handed.append(taken.getsockname()[1] if not handed else real())
        return handed[-1]

    monkeypatch.setattr(controlplane, "free_port", free_port)
    said: list[str] = []
    try:
        with ControlPlane(log=said.append) as cp:
            assert client.CoreV1Api(cp.api_client()).list_namespace().items
    finally:
        taken.close()
    assert any("starting again on fresh ports" in m for m in said), said
    assert any("ready" in m for m in said)
