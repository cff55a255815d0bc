"""Decision-to-halt with 1 and 200 strategies under management (issue 4's figures).

For each sample: the strategy runs with its pod played by the SDK (acknowledging), the bench
writes the kill annotation and waits for status.killSwitch.completedAt. Two figures:
- command-to-halt: annotation written -> completion seen by the client (what on-call feels)
- decision-to-halt: the operator's own record, killSwitch.at -> completedAt
Floor: the same API work by a bare client (write HALTED, the ack, scale to 0, wait for the pod
to go), so the ratio is the operator's overhead.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import datetime
from pathlib import Path

from kubernetes import client

from stratops import GROUP, VERSION
from stratops.k8s.apply import install_crds
from stratops.sdk import ApiAcknowledger, ApiControl, StrategyControl
from stratops.testing import ControlPlane
from stratops.testing.wait import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _strategy(name: str) -> dict:
    import yaml

    doc = yaml.safe_load((ROOT / "examples" / "strategy.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"]["rollbackPolicy"]["healthyFor"] = "1s"
    doc["spec"]["killSwitch"] = {"ackDeadline": "30s"}
    return doc


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def run(managed: int, samples: int, api: client.ApiClient, ns: str) -> dict[str, float]:
    custom, core, apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)
    names = [f"s{i:04d}" for i in range(managed)]
    for n in names:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "strategies", _strategy(n))

    def running() -> int:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "strategies")["items"]
        return sum(1 for s in items if (s.get("status") or {}).get("phase") == "Running")

    t = time.perf_counter()
    wait_for(lambda: running() == managed, timeout=600, interval=0.5, what=f"{managed} strategies Running")
    ready_s = time.perf_counter() - t
    command, decision, floor = [], [], []
    for i in range(samples):
        name = names[i % managed] if managed >= samples else None
        if name is None:  # one strategy at a time: a fresh one per sample
            name = f"one{i:03d}"
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "strategies", _strategy(name))
            wait_for(lambda: (custom.get_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name).get("status") or {}).get("phase") == "Running", timeout=120)
        pod = core.list_namespaced_pod(ns, label_selector=f"stratops.io/strategy={name}").items[0].metadata.name
        agent = StrategyControl(pod, ApiControl(ns, name, api), ApiAcknowledger(ns, name, api))
        agent.poll()
        agent.run_in_background(0.02)
        t0 = time.perf_counter()
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name, {"metadata": {"annotations": {
            "stratops.io/kill": json.dumps({"reason": "bench", "by": "bench", "id": f"b{i}"})}}})
        st = wait_for(lambda: ((s := custom.get_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name).get("status") or {})
                               .get("killSwitch") or {}).get("completedAt") and s, timeout=120, interval=0.01)
        command.append(time.perf_counter() - t0)
        decision.append(_ts(st["killSwitch"]["completedAt"]) - _ts(st["killSwitch"]["at"]))
        agent.stop()
        if managed < samples:
            custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name)
        # floor: the same API work by a bare client on a plain Deployment
        fname = f"floor{managed}-{i}"
        labels = {"bench-floor": fname}
        apps.create_namespaced_deployment(ns, {"metadata": {"name": fname}, "spec": {
            "replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.example/b:1"}]}}}})
        core.create_namespaced_config_map(ns, {"metadata": {"name": fname}, "data": {"control.json": "{}"}})
        wait_for(lambda: (apps.read_namespaced_deployment(fname, ns).status.ready_replicas or 0) == 1, timeout=60, interval=0.01)
        t0 = time.perf_counter()
        core.patch_namespaced_config_map(fname, ns, {"data": {"control.json": '{"tradingState":"HALTED"}'}})
        core.patch_namespaced_config_map(fname, ns, {"data": {"ack": "1"}})
        apps.patch_namespaced_deployment_scale(fname, ns, {"spec": {"replicas": 0}})
        wait_for(lambda: not core.list_namespaced_pod(ns, label_selector=f"bench-floor={fname}").items, timeout=60, interval=0.01)
        floor.append(time.perf_counter() - t0)
        apps.delete_namespaced_deployment(fname, ns)
    return {"ready_s": ready_s, "cmd_p50": statistics.median(command), "cmd_p99": _pct(command, 0.99),
            "dec_p50": statistics.median(decision), "dec_p99": _pct(decision, 0.99),
            "floor_p50": statistics.median(floor), "samples": samples}


def main(rows: list[tuple[str, str, str]], sizes: tuple[int, ...] = (1, 200), samples: int = 15) -> None:
    from kopf.testing import KopfRunner

    with ControlPlane(log=lambda m: None) as cp:
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        os.environ.setdefault("STRATOPS_METRICS_PORT", "0")
        api = cp.api_client()
        install_crds(api, ROOT / "crds")
        with KopfRunner(["run", "-m", "stratops.handlers", "--standalone", "-n", "bench-*"]):
            for n in sizes:
                ns = f"bench-k{n}"
                client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
                wait_for(lambda: client.CoreV1Api(api).list_namespaced_service_account(ns).items, timeout=60)
                r = run(n, samples, api, ns)
                rows.append((f"{n} strategies: create -> all Running (s)", f"{r['ready_s']:.1f}", f"{n / r['ready_s']:.1f} strategies/s"))
                rows.append((f"{n} strategies: command-to-halt p50 / p99 (s)", f"{r['cmd_p50']:.2f} / {r['cmd_p99']:.2f}",
                             f"{r['cmd_p50'] / r['floor_p50']:.1f}x floor ({r['floor_p50']:.2f}s), n={r['samples']}"))
                rows.append((f"{n} strategies: decision-to-halt p50 / p99 (s)", f"{r['dec_p50']:.2f} / {r['dec_p99']:.2f}",
                             f"{r['dec_p50'] / r['floor_p50']:.1f}x floor"))
