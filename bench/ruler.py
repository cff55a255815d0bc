"""Breach-to-halt in the Prometheus-ruler mode beside the embedded mode, in one run (issue 21).

One local control plane, one real Prometheus (scraping a test exporter every second, evaluating
the operator's PrometheusRules), one real Alertmanager (routing the rules' alerts to the
operator's receiver), and two operators as their own processes: one in the ruler mode, one
evaluating its monitors itself, each serving a namespace of its own. Samples alternate between
them. Each sample is a fresh strategy (its pod played by the SDK, acknowledging) with a P0
threshold monitor at 1 s on its own series; the bench sets the series past the threshold and
times, from that moment:
- the decision: the operator's record of the kill (`status.killSwitch.at`);
- the halt: `status.killSwitch.completedAt` read back (HALTED acknowledged, Deployment at 0, no pod).
Floor, measured in the same run for each sample: a bare client polling Prometheus every 10 ms
until the query shows the new value (the scrape; both modes wait for it).

    python bench/ruler.py [--samples 10] [--out bench/out]
"""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from kubernetes import client

from stratops import GROUP, VERSION
from stratops.k8s.apply import install_crds
from stratops.sdk import ApiAcknowledger, ApiControl, StrategyControl
from stratops.testing import ControlPlane
from stratops.testing.controlplane import free_port, operator_process, stop_process, wait_serving_metrics
from stratops.testing.prometheus import (
    AlertmanagerServer,
    Exporter,
    PrometheusServer,
    RuleSync,
    ruler_alertmanager_config,
)
from stratops.testing.wait import wait_for

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fleet import _pct, _ts, progress, strategy_doc  # noqa: E402  (the fleet bench's, shared)

MODES = ("ruler", "embedded")


def monitor_doc(strategy: str, url: str, series: str) -> dict:
    m = yaml.safe_load((ROOT / "examples" / "monitors" / "06-infra-queue-backlog.yaml").read_text())
    m = copy.deepcopy(m)
    m["metadata"] = {"name": f"{strategy}-backlog"}
    m["spec"]["strategy"] = strategy
    m["spec"]["source"]["prometheus"] = {"url": url, "query": f'sum(bench_queue_depth{{series="{series}"}})'}
    m["spec"]["frequency"] = "1s"
    m["spec"]["incident"] = {"class": "RiskBreach", "severity": "P0"}
    m["spec"]["alert"] = {"channel": "dashboard"}
    return m


def prometheus_operator_crds() -> Path:
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "prometheus-operator-crds.sh")], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip()) / "monitoring.coreos.com_prometheusrules.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10, help="breaches per mode")
    ap.add_argument(
        "--group-interval",
        default="1s",
        help="Alertmanager's group_interval on the ruler's route (a change in a monitor's group waits for its tick)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write ruler-gi<group interval>.json and its breach-to-halt CDF (.png) here",
    )
    args = ap.parse_args()

    results: dict[str, dict[str, list[float]]] = {m: {"decision": [], "halt": [], "floor": []} for m in MODES}
    with ControlPlane(log=progress) as cp:
        admin = cp.api_client()
        install_crds(admin, ROOT / "crds")
        install_crds(admin, prometheus_operator_crds())
        assert cp.workdir is not None
        work = cp.workdir
        core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
        namespaces = {m: f"bench-{m}" for m in MODES}
        for ns in namespaces.values():
            core.create_namespace({"metadata": {"name": ns}})
        token = work / "ruler-token"
        token.write_text(secrets.token_hex(16))
        port = free_port()
        exporter = Exporter()
        depth = exporter.gauge("bench_queue_depth", ("series",))
        am_config = ruler_alertmanager_config(f"http://127.0.0.1:{port}/alertmanager", token)
        am_config["route"]["routes"][0]["group_interval"] = args.group_interval
        am = AlertmanagerServer(config=am_config)
        am.start()
        rules = work / "rules.yaml"
        rules.write_text("groups: []\n")
        prom = PrometheusServer([f"127.0.0.1:{exporter.port}"], rule_files=[str(rules)], alertmanagers=[am.url])
        prom.start()
        sync = RuleSync(admin, namespaces["ruler"], prom, rules)
        operators = {}
        try:
            for mode, ns in namespaces.items():
                env = {"STRATOPS_WEBHOOK_PORT": ""}
                if mode == "ruler":
                    env.update(
                        STRATOPS_RULER_PORT=str(port),
                        STRATOPS_RULER_ADDR="127.0.0.1",
                        STRATOPS_RULER_TOKEN_FILE=str(token),
                    )
                log, mport = work / f"operator-{mode}.log", free_port()
                operators[mode] = (operator_process(cp.kubeconfig, [ns], log, mport, env=env), log)
                wait_serving_metrics(operators[mode][0], mport, log)
            progress(f"both operators serving; {args.samples} breaches per mode, alternating")
            for i in range(args.samples):
                for mode in MODES if i % 2 == 0 else reversed(MODES):
                    ns, name = namespaces[mode], f"s{i:03d}"
                    series = f"{mode}-{name}"
                    depth.labels(series).set(10)
                    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "strategies", strategy_doc(name))

                    def status(ns: str = ns, name: str = name) -> dict:
                        return (
                            custom.get_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name).get("status")
                            or {}
                        )

                    wait_for(lambda: status().get("phase") == "Running", timeout=120, what=f"{ns}/{name} Running")
                    mon = monitor_doc(name, prom.url, series)
                    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "monitors", mon)

                    def mstatus(ns: str = ns, mon: dict = mon) -> dict:
                        got = custom.get_namespaced_custom_object(
                            GROUP, VERSION, ns, "monitors", mon["metadata"]["name"]
                        )
                        return got.get("status") or {}

                    if mode == "ruler":
                        wait_for(lambda: mstatus().get("evaluatedBy") == "ruler", timeout=120, what="held by the ruler")
                    else:
                        wait_for(lambda: mstatus().get("lastEvaluation"), timeout=60, what="evaluated")
                    pod = wait_for(
                        lambda ns=ns, name=name: (
                            core.list_namespaced_pod(ns, label_selector=f"stratops.io/strategy={name}").items
                        ),
                        timeout=60,
                        what="its pod",
                    )[0].metadata.name
                    agent = StrategyControl(pod, ApiControl(ns, name, admin), ApiAcknowledger(ns, name, admin))
                    agent.run_in_background(0.02)
                    query = mon["spec"]["source"]["prometheus"]["query"]
                    # The breach lands at a phase of the 1 s period spread evenly over the samples:
                    # right after the wait above, it would land at the same phase of the operator's
                    # beat every time.
                    time.sleep((i + 0.5) / args.samples)  # bench: the breach's phase
                    t0_wall, t0 = time.time(), time.perf_counter()
                    depth.labels(series).set(5000)
                    wait_for(lambda q=query: prom.value(q) == 5000, timeout=30, interval=0.01, what="scraped")
                    floor = time.perf_counter() - t0
                    st = wait_for(
                        lambda: ((s := status()).get("killSwitch") or {}).get("completedAt") and s,
                        timeout=120,
                        interval=0.01,
                        what=f"{ns}/{name} halted",
                    )
                    halt = time.perf_counter() - t0
                    agent.stop()
                    results[mode]["decision"].append(_ts(st["killSwitch"]["at"]) - t0_wall)
                    results[mode]["halt"].append(halt)
                    results[mode]["floor"].append(floor)
                    progress(f"{mode} {name}: decision {results[mode]['decision'][-1]:.2f}s, halt {halt:.2f}s")
                    if mode == "ruler":
                        assert mstatus().get("evaluatedBy") == "ruler", "the breach was not the ruler's"
        finally:
            sync.stop.set()
            for proc, _ in operators.values():
                stop_process(proc, 30)
            prom.stop()
            am.stop()
            exporter.stop()

    rows = []
    for mode in MODES:
        r = results[mode]
        f = statistics.median(r["floor"])
        rows.append(
            (
                mode,
                f"{statistics.median(r['decision']):.2f} / {_pct(r['decision'], 0.99):.2f}",
                f"{statistics.median(r['halt']):.2f} / {_pct(r['halt'], 0.99):.2f}",
                f"{f:.2f}",
            )
        )
    print("| mode | breach -> decision p50 / p99 (s) | breach -> halted p50 / p99 (s) | floor: scraped, p50 (s) |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"n = {args.samples} per mode; monitor at 1 s, scrape and rule evaluation at 1 s, Alertmanager's "
        f"group_interval {args.group_interval}"
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        tag = f"ruler-gi{args.group_interval}"
        (args.out / f"{tag}.json").write_text(json.dumps(results, indent=1))
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            progress("matplotlib not installed (pip install -e .[bench]): no plot")
            return
        fig, ax = plt.subplots(figsize=(6, 4))
        for mode in MODES:
            xs = sorted(results[mode]["halt"])
            ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=mode)
        title = f"Ruler mode beside embedded (Alertmanager group_interval {args.group_interval})"
        ax.set(xlabel="breach -> halted (s)", ylabel="fraction of breaches", title=title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / f"{tag}-breach-to-halt.png", dpi=110)


if __name__ == "__main__":
    main()
