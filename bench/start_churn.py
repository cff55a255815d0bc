"""Operator starts under namespace churn: how long until it acts, and how many starts held
every handler (kopf's index readiness; see stratops.handlers.kopf_fixes).

Each start: three served namespaces are deleted as it starts (two hold a Strategy, so they
stay Terminating until the operator handles them), other namespaces come and go for the
whole start, and a probe Strategy is created in a fresh namespace. The figure is the time
from the probe's creation to its first status; a start that shows none within --limit
seconds counts as held.

    python bench/start_churn.py [--starts N] [--limit SECONDS]

Progress goes to stderr; a summary line goes to stdout.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml
from kubernetes import client

from stratops import GROUP, VERSION
from stratops.k8s.apply import install_crds
from stratops.testing.controlplane import ControlPlane, free_port, operator_process, repo_root, stop_process
from stratops.testing.wait import wait_for


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--limit", type=float, default=90.0, help="seconds after which a start counts as held")
    args = ap.parse_args()
    root = repo_root()
    assert root is not None, "run from a stratops checkout"
    doc = yaml.safe_load((root / "examples/strategy.yaml").read_text())
    logs = Path(tempfile.mkdtemp(prefix="stratops-bench-churn-"))
    acted: list[float] = []
    held = 0
    with ControlPlane() as cp:
        api = cp.api_client()
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        install_crds(api, root / "crds")

        def namespace(prefix: str) -> str:
            name = f"{prefix}-{uuid.uuid4().hex[:6]}"
            core.create_namespace({"metadata": {"name": name}})
            return name

        def strategy(ns: str, name: str) -> None:
            custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, "strategies", {**doc, "metadata": {"name": name}}
            )

        cert, key, ca = cp.serving_certificate("stratops-webhook")
        for i in range(args.starts):
            leftovers = [namespace("t-old") for _ in range(3)]
            for ns in leftovers[:2]:
                strategy(ns, "s")
            stop = threading.Event()

            def churn() -> None:
                while not stop.is_set():
                    ns = namespace("t-churn")
                    time.sleep(random.random() * 0.5)  # the fault's shape: short, varied lives
                    core.delete_namespace(ns)
                    time.sleep(random.random() * 0.5)

            for ns in leftovers:
                core.delete_namespace(ns)
            churner = threading.Thread(target=churn, daemon=True)
            churner.start()
            env = {
                "STRATOPS_RESYNC_SECONDS": "10",
                "STRATOPS_WEBHOOK_PORT": str(free_port()),
                "STRATOPS_WEBHOOK_ADDR": "127.0.0.1",
                "STRATOPS_WEBHOOK_HOST": "127.0.0.1",
                "STRATOPS_WEBHOOK_CERT": str(cert),
                "STRATOPS_WEBHOOK_KEY": str(key),
                "STRATOPS_WEBHOOK_CA": str(ca),
            }
            log = logs / f"operator-{i}.log"
            proc = operator_process(cp.kubeconfig, ["t-*"], log, free_port(), env=env)
            time.sleep(random.random() * 3)  # the probe arrives at a random moment of the start
            probe = namespace("t-ready")
            strategy(probe, "probe")
            began, took = time.monotonic(), None
            while time.monotonic() - began < args.limit:
                status = (
                    custom.get_namespaced_custom_object(GROUP, VERSION, probe, "strategies", "probe").get("status")
                    or {}
                )
                if status.get("phase"):
                    took = time.monotonic() - began
                    break
                time.sleep(0.1)
            stop.set()
            churner.join()
            if took is None:
                held += 1
                proc.send_signal(signal.SIGUSR1)  # the operator logs every task's stack: where it is stuck
                try:
                    wait_for(lambda: "SIGUSR1:" in log.read_text(), timeout=10, what="the operator's task dump")
                except TimeoutError:
                    print(f"start {i + 1}: no task dump in the log", file=sys.stderr)
            else:
                acted.append(took)
            print(
                f"start {i + 1}/{args.starts}: {'HELD' if took is None else f'acted after {took:.1f} s'} ({log})",
                file=sys.stderr,
                flush=True,
            )
            core.delete_namespace(probe)
            stop_process(proc, 30)
    p50 = statistics.median(acted) if acted else float("nan")
    worst = max(acted) if acted else float("nan")
    print(
        f"starts under namespace churn: {args.starts}; held (no action within {args.limit:.0f} s): {held}; "
        f"probe acted after p50 {p50:.1f} s, worst {worst:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
