"""stratops benchmarks: prints a table of figures, each with a ratio to a floor measured in the
same run, so that the machine's noise cancels out. Run with `make bench`.

Figures (`python bench/run.py [--quick]`):
- local control plane start (etcd, apiserver, controllers, KWOK node Ready)
- Deployment create -> all pods Ready, for N deployments at once; floor: N bare ConfigMap
  creates (one API round-trip each), so the ratio is the cost of the controllers' work.
- kill-switch command-to-halt and decision-to-halt with 1 and 200 strategies (bench/kill_switch.py)
- one sweep of the 12 example monitors x 1,000 strategies, PSI and KS on 10^6 samples (bench/monitors.py)
"""

from __future__ import annotations

import statistics
import sys
import time

from kubernetes import client

from stratops.testing import ControlPlane
from stratops.testing.wait import wait_for


def _deploy(name: str) -> dict:
    labels = {"app": name}
    return {"metadata": {"name": name}, "spec": {
        "replicas": 1, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "main", "image": "registry.example/b:1"}]}}}}


def main() -> int:
    rows: list[tuple[str, str, str]] = []
    starts = []
    for _ in range(2):
        t = time.perf_counter()
        with ControlPlane(log=lambda m: None):
            starts.append(time.perf_counter() - t)
    rows.append(("control plane start (s, median of 2)", f"{statistics.median(starts):.2f}", "-"))

    with ControlPlane(log=lambda m: None) as cp:
        api = cp.api_client()
        apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
        for n in (1, 20):
            ns = f"bench-{n}"
            core.create_namespace({"metadata": {"name": ns}})
            wait_for(lambda: core.list_namespaced_service_account(ns).items, timeout=60)
            t = time.perf_counter()
            for i in range(n):
                core.create_namespaced_config_map(ns, {"metadata": {"name": f"floor-{i}"}})
            floor = time.perf_counter() - t
            t = time.perf_counter()
            for i in range(n):
                apps.create_namespaced_deployment(ns, _deploy(f"d{i}"))
            wait_for(lambda: sum(1 for d in apps.list_namespaced_deployment(ns).items
                                 if (d.status.ready_replicas or 0) == 1) == n,
                     timeout=300, interval=0.05)
            took = time.perf_counter() - t
            rows.append((f"{n} Deployment(s) create -> Ready (s)", f"{took:.2f}", f"{took / floor:.1f}x floor ({floor:.3f}s)"))

    import kill_switch
    import monitors

    monitors.main(rows, strategies=1000 if "--quick" not in sys.argv else 100)

    kill_switch.main(rows, sizes=(1, 200) if "--quick" not in sys.argv else (1, 20), samples=15 if "--quick" not in sys.argv else 5)

    width = max(len(r[0]) for r in rows)
    print(f"{'figure'.ljust(width)}  {'value':>13}  ratio")
    for name, value, ratio in rows:
        print(f"{name.ljust(width)}  {value:>13}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
