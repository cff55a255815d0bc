"""Real strategy pods (the local control plane's real node: kubelet, containerd, runc): how fast
the control document reaches the process, and what a kill costs end to end with real containers
against KWOK's fake pods, in the same run.

Figures, each with its floor from the same run (ratio = figure / floor):
- control propagation, API watch: the host writes the control ConfigMap; a probe process in a
  real pod (the example strategy's image, the strategy's own ServiceAccount) sees the new
  generation through the SDK's WatchControl. Floor: a watch on the same ConfigMap from the host.
- control propagation, mounted file: the same writes, seen in the ConfigMap volume the kubelet
  refreshes (its syncFrequency is 10 s here; Kubernetes' default is 1 min). Floor: the watch.
- command-to-halt with a real container: kill annotation written -> status.killSwitch.completedAt
  read back (HALTED acknowledged by the real process, scaled to 0, the container exited after
  SIGTERM and the pod gone). Floor: the same on a KWOK pod, acknowledged by the SDK on the host.
- the real process's acknowledgement: the operator's HALTED (killSwitch.at) -> the pod's ack
  arriving in a host-side watch.

The probe pod and the host share one clock (one machine), so a pod's time.time() and the host's
compare directly. Each file sample waits until the file showed the write before the next one,
so no write overtakes another.

    python bench/real_pods.py [--samples N]

Needs what the real node needs (root, containerd, runc, CNI plugins) and Docker for the images.
Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

from stratops import GROUP, VERSION
from stratops.k8s.apply import install_crds
from stratops.lifecycle.control import CONTROL_KEY, BrokerInUse, ControlDocument, EffectiveLimits, Mode, TradingState
from stratops.lifecycle.manifests import ack_name, control_name, identity, identity_name
from stratops.sdk import ApiAcknowledger, ApiControl, StrategyControl
from stratops.testing import admission, images, realnode
from stratops.testing.controlplane import (
    ControlPlane,
    free_port,
    operator_process,
    repo_root,
    stop_process,
    wait_serving_metrics,
)
from stratops.testing.wait import wait_for

BENCH_USER = "bench"

# Runs in the probe pod: follows the control document as a strategy does (WatchControl) and
# polls the mounted file; prints each new generation with the time it was seen.
PROBE = r"""
import os, time
from stratops.sdk import FileControl, WatchControl
w = WatchControl(os.environ["NS"], os.environ["STRATEGY"])
f = FileControl(os.environ["STRATOPS_CONTROL_FILE"])
seen = {"watch": 0, "file": 0}
print("probe ready", flush=True)
while True:
    w.changed.wait(0.005)
    w.changed.clear()
    for how, doc in (("watch", w.read()), ("file", f.read())):
        if doc is not None and doc.generation > seen[how]:
            seen[how] = doc.generation
            print(f"{how} {doc.generation} {time.time():.6f}", flush=True)
"""


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def control_doc(strategy: str, generation: int) -> str:
    return ControlDocument(
        strategy=strategy,
        generation=generation,
        trading_state=TradingState.ACTIVE,
        mode=Mode.paper,
        limits=EffectiveLimits(max_position=100, max_order_rate=10, max_daily_loss=1000),
        broker=BrokerInUse(name="paper", endpoint="sim://paper"),
        reason=f"bench write {generation}",
    ).to_json()


def placement() -> dict[str, Any]:
    t = realnode.REAL_NODE_TAINT
    return {
        "nodeSelector": dict(realnode.REAL_NODE_LABEL),
        "tolerations": [{"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]}],
    }


class Lines:
    """A pod's log, followed from the start, each line with the host time it arrived."""

    def __init__(self, core: client.CoreV1Api, ns: str, pod: str) -> None:
        self.lines: list[str] = []

        def run() -> None:
            try:
                for raw in core.read_namespaced_pod_log(pod, ns, follow=True, _preload_content=False):
                    self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            except Exception:  # the pod went: what was read is what counts
                pass

        threading.Thread(target=run, daemon=True).start()

    def seen(self, how: str, generation: int) -> float | None:
        for line in list(self.lines):
            parts = line.split()
            if len(parts) == 3 and parts[0] == how and int(parts[1]) == generation:
                return float(parts[2])
        return None


def propagation(api: client.ApiClient, ns: str, image: str, samples: int) -> dict[str, list[float]]:
    """Host write -> seen by the watch in the pod, by the mounted file in the pod, and by a host watch."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    name = "probe"
    for obj in identity(name, ns, "none"):
        obj["metadata"].pop("ownerReferences")  # no Strategy owns these: the GC must leave them
        {
            "ServiceAccount": lambda o: core.create_namespaced_service_account(ns, o),
            "Role": lambda o: rbac.create_namespaced_role(ns, o),
            "RoleBinding": lambda o: rbac.create_namespaced_role_binding(ns, o),
        }[obj["kind"]](obj)
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": control_name(name)}, "data": {CONTROL_KEY: control_doc(name, 1)}}
    )
    mount = "/etc/stratops/control"
    core.create_namespaced_pod(
        ns,
        {
            "metadata": {"name": "probe"},
            "spec": {
                **placement(),
                "serviceAccountName": identity_name(name),
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "probe",
                        "image": image,
                        "command": ["python", "-c", PROBE],
                        "env": [
                            {"name": "NS", "value": ns},
                            {"name": "STRATEGY", "value": name},
                            {"name": "STRATOPS_CONTROL_FILE", "value": f"{mount}/{CONTROL_KEY}"},
                        ],
                        "volumeMounts": [{"name": "control", "mountPath": mount, "readOnly": True}],
                    }
                ],
                "volumes": [{"name": "control", "configMap": {"name": control_name(name)}}],
            },
        },
    )
    wait_for(
        lambda: core.read_namespaced_pod("probe", ns).status.phase == "Running", timeout=120, what="probe pod Running"
    )
    log = Lines(core, ns, "probe")
    wait_for(lambda: log.seen("watch", 1) and log.seen("file", 1), timeout=60, what="the probe following generation 1")

    host: dict[int, float] = {}

    def host_watch() -> None:
        try:
            for ev in watch.Watch().stream(
                core.list_namespaced_config_map,
                ns,
                field_selector=f"metadata.name={control_name(name)}",
                timeout_seconds=3600,
            ):
                raw = (ev["object"].data or {}).get(CONTROL_KEY)
                if raw:
                    host.setdefault(json.loads(raw)["generation"], time.time())
        except Exception:  # the control plane stopped: the samples are taken
            pass

    threading.Thread(target=host_watch, daemon=True).start()
    out: dict[str, list[float]] = {"watch": [], "file": [], "host": []}
    for gen in range(2, samples + 2):
        t0 = time.time()
        core.patch_namespaced_config_map(control_name(name), ns, {"data": {CONTROL_KEY: control_doc(name, gen)}})
        w = wait_for(lambda: log.seen("watch", gen), timeout=30, interval=0.01, what=f"watch sees {gen}")
        f = wait_for(lambda: log.seen("file", gen), timeout=180, interval=0.05, what=f"file shows {gen}")
        h = wait_for(lambda: host.get(gen), timeout=30, interval=0.01, what=f"host watch sees {gen}")
        out["watch"].append(w - t0)
        out["file"].append(f - t0)
        out["host"].append(h - t0)
        progress(f"propagation {gen - 1}/{samples}: watch {w - t0:.3f}s, file {f - t0:.1f}s, host watch {h - t0:.3f}s")
    core.delete_namespaced_pod("probe", ns, grace_period_seconds=0)
    return out


def strategy(name: str, real: bool) -> dict[str, Any]:
    """The example strategy, paper-trading with no desk gates, as KWOK runs it or (REAL) as the
    image built here on the real node, the way the demo places it."""
    from stratops.dev import on_real_node

    root = repo_root()
    assert root is not None
    doc = yaml.safe_load((root / "examples/strategy.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"].update(replicas=1, mode="paper", killSwitch={"ackDeadline": "20s"})
    doc["spec"].pop("gates", None)
    return on_real_node(doc, images.STRATEGY_REPOSITORY) if real else doc


def kills(api: client.ApiClient, ns: str, samples: int) -> dict[str, list[float]]:
    """Command-to-halt on real pods and on KWOK pods, interleaved so both see the same noise."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    out: dict[str, list[float]] = {"real": [], "kwok": [], "ack": []}

    def status(name: str) -> dict[str, Any]:
        return custom.get_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name).get("status") or {}

    def one(name: str, real: bool) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "strategies", strategy(name, real))
        wait_for(lambda: status(name).get("phase") == "Running", timeout=180, what=f"{name} Running")
        pods = wait_for(
            lambda: [
                p
                for p in core.list_namespaced_pod(ns, label_selector=f"stratops.io/strategy={name}").items
                if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            ],
            timeout=120,
            what=f"{name}'s pod Ready",
        )
        agent = None
        if not real:  # KWOK runs no process: the SDK on the host plays the pod, as in bench/fleet.py
            agent = StrategyControl(pods[0].metadata.name, ApiControl(ns, name, api), ApiAcknowledger(ns, name, api))
            agent.poll()
            agent.run_in_background(0.02)
        acks: dict[str, float] = {}

        def ack_watch() -> None:
            try:
                for ev in watch.Watch().stream(
                    core.list_namespaced_config_map,
                    ns,
                    field_selector=f"metadata.name={ack_name(name)}",
                    timeout_seconds=120,
                ):
                    for v in (ev["object"].data or {}).values():
                        if json.loads(v).get("tradingState") == "HALTED":
                            acks.setdefault("at", time.time())
            except Exception:  # the strategy deleted: done
                pass

        threading.Thread(target=ack_watch, daemon=True).start()
        t0 = time.perf_counter()
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            "strategies",
            name,
            {
                "metadata": {
                    "annotations": {"stratops.io/kill": json.dumps({"by": BENCH_USER, "reason": "bench", "id": name})}
                }
            },
        )
        st = wait_for(
            lambda: ((s := status(name)).get("killSwitch") or {}).get("completedAt") and s,
            timeout=120,
            interval=0.01,
            what=f"{name} halted",
        )
        out["real" if real else "kwok"].append(time.perf_counter() - t0)
        if real:
            at = wait_for(lambda: acks.get("at"), timeout=30, what=f"{name}'s ack seen")
            out["ack"].append(at - ts(st["killSwitch"]["at"]))
        if agent is not None:
            agent.stop()
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name)

    for i in range(samples):
        one(f"real-{i}", True)
        one(f"kwok-{i}", False)
        progress(
            f"kill {i + 1}/{samples}: real {out['real'][-1]:.2f}s (ack {out['ack'][-1]:.2f}s), KWOK "
            f"{out['kwok'][-1]:.2f}s"
        )
    return out


@contextmanager
def real_node_desk(ns: str, versions: tuple[str, ...]) -> Iterator[tuple[ControlPlane, client.ApiClient]]:
    """A local control plane with its real node, the example strategy's image imported under
    VERSIONS, the CRDs, namespace NS and the chart's admission policies (stratops-acks among
    them: each ack write pays for it)."""
    root = repo_root()
    assert root is not None, "run from a stratops checkout"
    with ControlPlane(real_node=True) as cp:
        assert cp.node is not None and cp.kubeconfig is not None
        api = cp.api_client()
        progress("building and importing the example strategy's image")
        images.load(cp.node, images.strategy_image(), [f"{images.STRATEGY_REPOSITORY}:{v}" for v in versions])
        install_crds(api, root / "crds")
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": ns, "labels": admission.POLICY_LABEL}})
        admission.install(api, None, None, None)
        wait_for(lambda: core.list_namespaced_service_account(ns).items, timeout=60, what="the default ServiceAccount")
        yield cp, api


@contextmanager
def bench_operator(cp: ControlPlane, ns: str) -> Iterator[None]:
    """The operator as a process serving NS (the example's registries allowed), until the end."""
    assert cp.kubeconfig is not None
    log = Path(tempfile.mkdtemp(prefix=f"stratops-{ns}-")) / "operator.log"
    port = free_port()
    op = operator_process(
        cp.kubeconfig,
        [ns],
        log,
        metrics_port=port,
        env={"STRATOPS_ALLOWED_REGISTRIES": "registry.example,stratops.local", "STRATOPS_RESYNC_SECONDS": "10"},
    )
    try:
        wait_serving_metrics(op, port, log)
        yield
    finally:
        stop_process(op, 30)


def run(rows: list[tuple[str, str, str]], samples: int) -> None:
    """Append this benchmark's figures to ROWS (name, value, ratio to its floor)."""
    ns = "bench-real"
    tag = f"{images.STRATEGY_REPOSITORY}:1.4.2"
    with real_node_desk(ns, ("1.4.2",)) as (cp, api):
        progress(f"control propagation, {samples} writes")
        p = propagation(api, ns, tag, samples)
        host = statistics.median(p["host"])
        for how, label in (("watch", "API watch (SDK)"), ("file", "mounted file, kubelet syncFrequency 10s")):
            xs = p[how]
            rows.append(
                (
                    f"real pod: control propagation, {label}, p50 / p99 (s)",
                    f"{statistics.median(xs):.3f} / {pct(xs, 0.99):.3f}",
                    f"{statistics.median(xs) / host:.1f}x floor (host watch {host:.3f}s), n={len(xs)}",
                )
            )

        with bench_operator(cp, ns):
            progress(f"command-to-halt, {samples} real and {samples} KWOK strategies")
            k = kills(api, ns, samples)
        kw = statistics.median(k["kwok"])
        rows.append(
            (
                "real pod: command-to-halt, p50 / p99 (s)",
                f"{statistics.median(k['real']):.2f} / {pct(k['real'], 0.99):.2f}",
                f"{statistics.median(k['real']) / kw:.1f}x floor (KWOK pod, SDK on the host: {kw:.2f}s / "
                f"{pct(k['kwok'], 0.99):.2f}s), n={samples}",
            )
        )
        rows.append(
            (
                "real pod: HALTED written -> its ack seen, p50 / p99 (s)",
                f"{statistics.median(k['ack']):.2f} / {pct(k['ack'], 0.99):.2f}",
                f"{statistics.median(k['ack']) / host:.1f}x floor (host watch {host:.3f}s)",
            )
        )


def unavailable() -> str | None:
    """Why this benchmark cannot run here (None: it can)."""
    return realnode.unavailable() or images.docker_unavailable()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=15)
    args = ap.parse_args()
    if (why := unavailable()) is not None:
        print(f"bench/real_pods.py cannot run here: {why}", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, str]] = []
    run(rows, args.samples)
    print_table(rows)
    return 0


def print_table(rows: list[tuple[str, str, str]]) -> None:
    """ROWS (figure, value, ratio to its floor) as the benchmarks print them, with the machine's load."""
    width, vwidth = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(
        f"{'figure'.ljust(width)}  {'value'.rjust(vwidth)}  ratio  (load avg {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores)"
    )
    for name, value, ratio in rows:
        print(f"{name.ljust(width)}  {value.rjust(vwidth)}  {ratio}")


if __name__ == "__main__":
    sys.exit(main())
