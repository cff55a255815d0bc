"""`make demo` / `stratops dev up`: the local control plane with stratops running on it."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from rich.console import Console

from stratops import GROUP, VERSION
from stratops.k8s.apply import apply, install_crds, load_documents
from stratops.testing.controlplane import ControlPlane, free_port, operator_process, repo_root, stop_process, wait_serving_metrics


DEMO_ENV = ".stratops-demo.env"  # in the checkout, while the demo runs: what `make shell` sources


def demo_env(kubeconfig: Path, bin_dir: Path) -> str:
    """The exports a second shell needs to drive the running demo (`make shell` sources them)."""
    import shlex

    return (f"export KUBECONFIG={shlex.quote(str(kubeconfig))}\n"
            f"export PATH={shlex.quote(str(bin_dir))}:\"$PATH\"\n")


def real_node_unavailable() -> str | None:
    """Why the demo cannot run the example strategy as a real container here (None: it can)."""
    from stratops.testing import images, realnode

    return realnode.unavailable() or images.docker_unavailable()


def on_real_node(doc: dict[str, Any], image: str) -> dict[str, Any]:
    """The example Strategy as the image built here, on the real node (its selector and toleration)."""
    if doc.get("kind") != "Strategy":
        return doc
    from stratops.testing.realnode import REAL_NODE_LABEL, REAL_NODE_TAINT

    doc = copy.deepcopy(doc)
    spec = doc["spec"]
    spec["image"] = image
    template = spec.setdefault("podTemplate", {})
    template["nodeSelector"] = dict(REAL_NODE_LABEL)
    template["tolerations"] = [{"key": REAL_NODE_TAINT["key"], "operator": "Equal", "value": REAL_NODE_TAINT["value"],
                                "effect": REAL_NODE_TAINT["effect"]}]
    # a laptop-sized request: the example's 500m would hold a quarter of a 2-core machine
    template["resources"] = {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "512Mi"}}
    return doc


def run_demo(*, examples: bool, once: bool, nodes: int, console: Console, real_node: bool | None = None) -> int:
    root = repo_root()
    if root is None:
        console.print("[red]run `stratops dev up` from a stratops checkout (it needs crds/ and examples/)")
        return 2
    why = real_node_unavailable() if real_node is not False else "turned off (--no-real-node)"
    if real_node and why:
        console.print(f"[red]error:[/] --real-node asked for, but no real node can run here: {why}")
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ControlPlane(nodes=nodes, real_node=why is None, log=lambda m: console.print(f"[dim]{m}")) as cp:
        assert cp.workdir is not None
        api = cp.api_client()
        names = install_crds(api, root / "crds")
        console.print(f"installed CRDs: {', '.join(names)}")
        image = None
        if why is None:
            from stratops.testing import images

            assert cp.node is not None
            console.print("building the example strategy's image and importing it into the real node "
                          "(the first build takes a few minutes; later ones are cached)")
            try:
                images.load(cp.node, images.strategy_image(), [f"{images.STRATEGY_REPOSITORY}:1.4.2"])
                image = images.STRATEGY_REPOSITORY
            except images.ImageUnavailable as e:
                why = str(e)
                if real_node:
                    console.print(f"[red]error:[/] --real-node asked for, but the strategy's image cannot be built here: {why}")
                    return 2
        if image is not None:
            assert cp.node is not None
            console.print(f"strategy pods: real containers on node {cp.node.name} (kubelet, containerd, runc)")
        else:
            console.print(f"strategy pods: KWOK fakes (no process runs in them): a real node cannot run here: {why}")
        metrics, webhook = free_port(), free_port()
        log = cp.workdir / "operator.log"
        assert cp.kubeconfig is not None
        cert, key, ca = cp.serving_certificate("stratops-webhook")
        operator = operator_process(cp.kubeconfig, ["default"], log, metrics, env={
            "STRATOPS_WEBHOOK_PORT": str(webhook), "STRATOPS_WEBHOOK_ADDR": "127.0.0.1", "STRATOPS_WEBHOOK_HOST": "127.0.0.1",
            "STRATOPS_WEBHOOK_CERT": str(cert), "STRATOPS_WEBHOOK_KEY": str(key), "STRATOPS_WEBHOOK_CA": str(ca)})
        try:
            console.print(f"operator started (pid {operator.pid}, metrics on http://127.0.0.1:{metrics}/metrics, log {log})")
            # Admission as the chart installs it: the policies in the API server, the webhooks
            # served by this operator.
            from stratops.testing import admission

            client.CoreV1Api(api).patch_namespace("default", {"metadata": {"labels": admission.POLICY_LABEL}})
            enforced = {"matchLabels": admission.POLICY_LABEL}
            wait_serving_metrics(operator, metrics, log)
            admission.install(api, f"https://127.0.0.1:{webhook}", ca, enforced, enforced)
            console.print("admission policies and webhooks enforced (commands and signatures attributable, four eyes)")
            if examples:
                docs = [d for d in load_documents([root / "examples"]) if str(d.get("apiVersion", "")).startswith(f"{GROUP}/")]
                if image is not None:
                    docs = [on_real_node(d, image) for d in docs]
                apply(api, docs, namespace="default")
                console.print(f"applied {len(docs)} example objects to namespace default")
                if not _wait_running(api, operator, console):
                    console.print(f"[red]the example strategy did not reach Running; operator log:[/]\n{_tail(log)}")
                    return 1
            if examples and not os.environ.get("STRATOPS_PROMETHEUS_URL"):
                console.print("[yellow]note:[/] no STRATOPS_PROMETHEUS_URL: the example monitors report stale data, "
                              "which is a finding (never a pass): they open StaleData incidents and throttle the strategy.")
            env_file = root / DEMO_ENV
            env_file.write_text(demo_env(cp.kubeconfig, Path(sys.executable).parent))
            console.print(
                "\n[bold]stratops is running on the local cluster.[/] In another shell, `make shell` (or):\n"
                f"  export KUBECONFIG={cp.kubeconfig}\n"
                f"  export PATH={Path(sys.executable).parent}:$PATH     # the stratops CLI (make setup's virtualenv)\n"
                "  stratops status\n"
                "  stratops kill mean-revert --reason 'drill'          # HALTED, then scale to 0\n"
                "  kubectl get strategies,monitors,gates,incidents      # if you have kubectl\n"
                + ("  kubectl logs -f deploy/mean-revert                   # the real process: HALTED, its ack, its exit\n"
                   if image is not None else "")
            )
            if once:
                return 0
            console.print("Press Ctrl-C to stop and clean up.")
            try:
                while not stop.wait(1.0):
                    if operator.poll() is not None:
                        console.print(f"[red]the operator exited ({operator.returncode}); log:[/]\n{_tail(log)}")
                        return 1
            except KeyboardInterrupt:
                pass
        finally:
            stop_process(operator, 15)
            (root / DEMO_ENV).unlink(missing_ok=True)  # its cluster is gone: `make shell` says so
    console.print("stopped; nothing left behind")
    return 0


def _wait_running(api: client.ApiClient, operator: "subprocess.Popen[bytes]", console: Console, timeout: float = 120) -> bool:
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline and operator.poll() is None:
        st = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "strategies", "mean-revert").get("status") or {}
        phase = st.get("phase")
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
        if phase != last:
            console.print(f"  strategy mean-revert: {phase or 'waiting for the operator'}")
            last = phase
        if ready:
            console.print(f"  strategy mean-revert: deployed and Ready ({phase}, trading {st.get('tradingState')})")
            return True
        time.sleep(0.5)
    return False


def _tail(path: Path, lines: int = 30) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
