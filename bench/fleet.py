"""The operator at 1, 100 and 1,000 strategies, each with the 12 example monitors.

The operator runs as its own process (`stratops operator`, as a user deploys it) under its own
identity (`stratops-operator`), so that its CPU and RSS come from /proc/<pid> and its API
requests from the kube-apiserver audit log (ControlPlane(audit=True)). The bench client is a
third identity (`stratops-bench`); the control plane's own components (controller-manager,
scheduler, KWOK) are `admin`. Monitors query bench/promapi.py, a stand-in for the Prometheus
HTTP API that answers the example queries with healthy data (see there).

Per size N, figures and the floor each is compared with (measured in the same run):
- create -> all Running: N Strategies; floor: N bare Deployments -> all Ready
- command-to-halt (kill annotation -> status.killSwitch.completedAt seen) and decision-to-halt
  (the operator's record, killSwitch.at -> completedAt); floor: a bare client writing HALTED,
  the ack, scaling to 0 and waiting for the pod to go
- breach-to-halt: a P0 bar-age monitor at 1 s on the strategy; the source turns stale -> the
  client sees completedAt; floor: a bare client polling the source every 1 s, then the same
  halt work as above
- steady state over a window: operator CPU % and RSS (floor: the idle operator's RSS; the CPU
  of the same evaluations, counted at the source, done by a bare loop through the same HTTP
  source), API requests per strategy per minute, watches apart (floor: the requests of
  Kubernetes' own controllers for the same Deployments and pods in the same window)
- garbage collection and the event loop's lag over the whole run and over the steady window
  with the latency samples, from the operator's /metrics: pauses per generation, the thaws and what they freed; and the
  objects the collector tracks and those frozen out of its collections, from the operator's
  SIGUSR1 census (no floor: a bare loop holds none of the fleet's objects)
"""

from __future__ import annotations

import copy
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from kubernetes import client

from stratops import GROUP, VERSION
from stratops.k8s.apply import install_crds
from stratops.sdk import ApiAcknowledger, ApiControl, StrategyControl
from stratops.testing import ControlPlane
from stratops.testing.controlplane import (
    _die_with_parent,
    free_port,
    operator_process,
    stop_process,
    wait_serving_metrics,
)
from stratops.testing.wait import wait_for

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import promapi  # noqa: E402

OPERATOR_USER, BENCH_USER = "stratops-operator", "stratops-bench"
CONTROLLERS = "admin"  # kube-controller-manager, kube-scheduler, KWOK
MONITORS = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "examples" / "monitors").glob("*.yaml"))]
T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[bench {time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


# -- /proc ------------------------------------------------------------------------------------
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- objects ----------------------------------------------------------------------------------
def strategy_doc(name: str) -> dict:
    doc = yaml.safe_load((ROOT / "examples" / "strategy.yaml").read_text())
    doc["metadata"] = {"name": name}
    doc["spec"]["rollbackPolicy"]["healthyFor"] = "1s"
    doc["spec"]["killSwitch"] = {"ackDeadline": "30s"}
    return doc


#: The checks that read instant queries only: with --grouped, their monitors read a batch.
INSTANT_CHECKS = ("threshold", "percentile", "concentration", "topKChange", "barCountMismatch", "barAge")


def _desk_wide(query: str) -> str:
    """The example's query for every strategy of the desk, grouped by strategy."""
    query = query.replace('strategy="mean-revert"', promapi.DESK)
    query = re.sub(r"by \(([^)]*)\)", lambda m: f"by ({m.group(1)}, strategy)", query)
    return re.sub(r"\b(sum|max|min|avg|count|topk)\(", r"\1 by (strategy) (", query)


def monitor_docs(strategy: str, url: str, grouped: bool = False) -> list[dict]:
    """The 12 example monitors of STRATEGY. GROUPED: those whose check reads instant queries read
    the desk-wide query instead, grouped by strategy (source.prometheus.groupBy: a batch)."""
    out = []
    for m in MONITORS:
        d = copy.deepcopy(m)
        suffix = d["metadata"]["name"].removeprefix("mean-revert-")
        d["metadata"] = {"name": f"{strategy}-{suffix}"}
        d["spec"]["strategy"] = strategy
        src = d["spec"]["source"]["prometheus"]
        src["url"] = url
        batch = grouped and d["spec"]["check"]["kind"] in INSTANT_CHECKS
        if batch:
            src["groupBy"] = "strategy"

        def own(query: str) -> str:
            return _desk_wide(query) if batch else query.replace('strategy="mean-revert"', f'strategy="{strategy}"')

        src["query"] = own(src["query"])
        for check in d["spec"]["check"].values():
            if isinstance(check, dict):
                for k in ("backupQuery", "expectedQuery"):
                    if k in check:
                        check[k] = own(check[k])
                if "baseline" in check:
                    check["baseline"]["configMapKeyRef"]["name"] = "bench-baseline"
        out.append(d)
    return out


def breach_monitor(strategy: str, url: str) -> dict:
    d = copy.deepcopy(MONITORS[0])  # 01-data-bar-age: P0, page
    d["metadata"] = {"name": f"{strategy}-breach"}
    d["spec"]["strategy"] = strategy
    d["spec"]["frequency"] = "1s"
    d["spec"]["source"]["prometheus"] = {
        "url": url,
        "query": f'max by (symbol) (time() - stratops_strategy_breach_bar_timestamp_seconds{{strategy="{strategy}"}})',
    }
    d["spec"]["alert"] = {"channel": "dashboard"}
    return d


def workload_spec(labels: dict[str, str], container: str, image: str) -> dict:
    """One replica of one container: a bare Deployment's spec (also an Argo Rollout's, bench/rollouts.py)."""
    return {
        "replicas": 1,
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": container, "image": image}]}},
    }


def _floor_deployment(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": workload_spec({"bench-floor": name}, "c", "registry.example/b:1")}


class Fleet:
    def __init__(self, cp: ControlPlane, api: client.ApiClient, url: str, ns: str) -> None:
        self.cp, self.api, self.url, self.ns = cp, api, url, ns
        self.custom, self.core, self.apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)

    def create(self, plural: str, doc: dict) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, doc)

    def items(self, plural: str) -> list[dict]:
        out, cont = [], None
        while True:
            r = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural, limit=2000, _continue=cont)
            out += r["items"]
            cont = r["metadata"].get("continue")
            if not cont:
                return out

    def status(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "strategies", name).get("status") or {}

    def running(self, names: set[str] | None = None) -> int:
        return sum(
            1
            for s in self.items("strategies")
            if (names is None or s["metadata"]["name"] in names) and (s.get("status") or {}).get("phase") == "Running"
        )

    def agent(self, name: str) -> StrategyControl:
        pod = wait_for(
            lambda: self.core.list_namespaced_pod(self.ns, label_selector=f"stratops.io/strategy={name}").items,
            timeout=60,
            what=f"pod of {name}",
        )[0].metadata.name
        a = StrategyControl(pod, ApiControl(self.ns, name, self.api), ApiAcknowledger(self.ns, name, self.api))
        a.poll()
        a.run_in_background(0.02)
        return a

    def completed(self, name: str) -> dict:
        return wait_for(
            lambda: ((s := self.status(name)).get("killSwitch") or {}).get("completedAt") and s,
            timeout=180,
            interval=0.01,
            what=f"{name} halted",
        )

    def floor_halt(self, fname: str, detect=None) -> float:  # type: ignore[no-untyped-def]
        """The halt done by a bare client on a plain Deployment; DETECT first (a breach poll)."""
        self.apps.create_namespaced_deployment(self.ns, _floor_deployment(fname))
        self.core.create_namespaced_config_map(self.ns, {"metadata": {"name": fname}, "data": {"control.json": "{}"}})
        wait_for(
            lambda: (self.apps.read_namespaced_deployment(fname, self.ns).status.ready_replicas or 0) == 1,
            timeout=120,
            interval=0.05,
        )
        t0 = time.perf_counter()
        if detect is not None:
            detect()
        self.core.patch_namespaced_config_map(fname, self.ns, {"data": {"control.json": '{"tradingState":"HALTED"}'}})
        self.core.patch_namespaced_config_map(fname, self.ns, {"data": {"ack": "1"}})
        self.apps.patch_namespaced_deployment_scale(fname, self.ns, {"spec": {"replicas": 0}})
        wait_for(
            lambda: not self.core.list_namespaced_pod(self.ns, label_selector=f"bench-floor={fname}").items,
            timeout=60,
            interval=0.01,
        )
        took = time.perf_counter() - t0
        self.apps.delete_namespaced_deployment(fname, self.ns)
        return took


def audit_counts(events: list[dict], t_from: float, t_to: float) -> dict[str, Counter]:
    """Requests per user in [t_from, t_to] (wall clock): {user: Counter((verb, resource))};
    a watch counts once, when it opens."""
    out: dict[str, Counter] = {}
    for e in events:
        verb = e.get("verb", "")
        if e.get("stage") != ("ResponseStarted" if verb == "watch" else "ResponseComplete"):
            continue
        t = _ts(e["stageTimestamp"] if verb != "watch" else e["requestReceivedTimestamp"])
        if not t_from <= t <= t_to:
            continue
        ref = e.get("objectRef") or {}
        res = ref.get("resource", "-") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        out.setdefault(e["user"]["username"], Counter())[(verb, res)] += 1
    return out


def create_phase_requests(
    events: list[dict], users: set[str], t_from: float, t_to: float
) -> tuple[int, Counter, Counter]:
    """USERS' requests (watches apart) received in [t_from, t_to]: how many, a breakdown of the
    ones a reader asks about (reads of a Strategy, answers 404 and 409), and all by verb and
    resource."""
    total, kinds, every = 0, Counter(), Counter()
    for e in events:
        verb = e.get("verb", "")
        if verb == "watch" or e.get("stage") != "ResponseComplete" or e["user"]["username"] not in users:
            continue
        if not t_from <= _ts(e["requestReceivedTimestamp"]) <= t_to:
            continue
        total += 1
        ref = e.get("objectRef") or {}
        every[f"{verb} {ref.get('resource')}" + (f"/{ref['subresource']}" if ref.get("subresource") else "")] += 1
        code = int((e.get("responseStatus") or {}).get("code") or 0)
        if code in (404, 409):
            kinds[f"{verb} {ref.get('resource')} {code}"] += 1
        elif verb == "get" and ref.get("resource") == "strategies" and not ref.get("subresource"):
            kinds["get strategies"] += 1
    return total, kinds, every


def floor_cpu_per_evaluation(url: str, repeat: int) -> dict[str, float]:
    """CPU seconds of one evaluation of each example monitor through the same HTTP source, in a
    bare loop (no Kubernetes): the floor of the operator's monitor CPU."""
    from stratops.models.monitor import MonitorSpec
    from stratops.models.strategy import StrategySpec
    from stratops.monitors.evaluate import evaluate
    from stratops.monitors.prometheus import Prometheus

    base = promapi.baselines()
    strategy = StrategySpec.model_validate(strategy_doc("floor")["spec"])
    out: dict[str, float] = {}
    prom = Prometheus(url, 5.0)
    for doc in monitor_docs("floor", url):
        spec = MonitorSpec.model_validate(doc["spec"])
        t = time.process_time()
        for _ in range(repeat):
            ev = evaluate(spec, strategy, prom, lambda n, k: base[k], datetime.now(UTC), 0)
            if ev.finding:
                raise RuntimeError(f"the stand-in source is not healthy for {doc['metadata']['name']}: {ev.detail}")
        out[promapi.key_of(spec.source.prometheus.query)] = (time.process_time() - t) / repeat
    return out


def metric_families(metrics_port: int) -> list:
    """The operator's /metrics, parsed."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", trust_env=False, timeout=10).text
    return list(text_string_to_metric_families(text))


def schedule_counts(metrics_port: int) -> dict[tuple[str, str], float]:
    """The operator's own count of scheduled evaluations, by timing and reason
    (stratops_monitor_evaluations_total); empty for an operator without one schedule."""
    out: dict[tuple[str, str], float] = {}
    for fam in metric_families(metrics_port):
        if fam.name == "stratops_monitor_evaluations":
            for sample in fam.samples:
                if sample.name.endswith("_total"):
                    out[(sample.labels["timing"], sample.labels["reason"])] = sample.value
    return out


def _pause_summary(count: int, seconds: float, buckets: dict[float, float]) -> dict:
    """A generation's pauses: how many, their seconds, how many over 100 ms, and the smallest
    histogram bound that holds them all."""
    reached = [le for le, v in sorted(buckets.items()) if v >= count]
    p99 = [le for le, v in sorted(buckets.items()) if v >= 0.99 * count]
    return {
        "p99_at_most_s": p99[0] if p99 and count else None,
        "count": count,
        "seconds": seconds,
        "over_100ms": int(count - buckets.get(0.1, 0)),
        "at_most_s": reached[0] if reached and count else None,
        "buckets": buckets,
    }


def gc_figures(metrics_port: int) -> dict:
    """The operator's garbage collections since it started, from its /metrics: per generation
    the pauses (_pause_summary), the thaws and what the thaws freed."""
    out: dict = {"pauses": {}}
    raw: dict[str, dict] = {}
    for fam in metric_families(metrics_port):
        if fam.name in (
            "stratops_gc_pause_seconds",
            "stratops_gc_pause_cpu_seconds",
            "stratops_event_loop_lag_seconds",
        ):
            for sample in fam.samples:
                which = sample.labels.get("generation", "loop lag")
                which += " cpu" if fam.name == "stratops_gc_pause_cpu_seconds" else ""
                g = raw.setdefault(which, {"count": 0, "seconds": 0.0, "buckets": {}})
                if sample.name.endswith("_count"):
                    g["count"] = int(sample.value)
                elif sample.name.endswith("_sum"):
                    g["seconds"] = sample.value
                elif sample.name.endswith("_bucket"):
                    g["buckets"][float(sample.labels["le"])] = sample.value
        elif fam.name in ("stratops_gc_thaws", "stratops_gc_thaw_freed_objects"):
            out[fam.name.removeprefix("stratops_gc_")] = int(fam.samples[0].value)
    out["pauses"] = {k: _pause_summary(g["count"], g["seconds"], g["buckets"]) for k, g in raw.items()}
    out["loop_lag"] = out["pauses"].pop("loop lag", _pause_summary(0, 0.0, {}))
    out["cpu"] = {
        k.removesuffix(" cpu"): out["pauses"].pop(k) for k in [k for k in out["pauses"] if k.endswith(" cpu")]
    }
    return out


def gc_census(op: subprocess.Popen, log: Path) -> dict[str, int]:
    """The operator's own census of what its collector tracks, by generation, and the frozen
    objects (its SIGUSR1 dump); empty if the dump does not come."""
    import signal

    mark = log.stat().st_size
    op.send_signal(signal.SIGUSR1)
    pattern = re.compile(r"gc: tracked objects young ([\d,]+), middle ([\d,]+), old ([\d,]+), frozen ([\d,]+)")

    def found() -> re.Match | None:
        with log.open("rb") as f:
            f.seek(mark)
            return pattern.search(f.read().decode(errors="replace"))

    try:
        m = wait_for(found, timeout=60, what="the operator's gc census")
    except Exception as e:  # the figure is missing, the run's others stand
        progress(f"no gc census: {e}")
        return {}
    return dict(zip(("young", "middle", "old", "frozen"), (int(x.replace(",", "")) for x in m.groups()), strict=True))


def gc_since(before: dict, after: dict) -> dict:
    """The pauses and the loop's lag of gc_figures between two readings."""

    def since(g: dict, b: dict) -> dict:
        buckets = {le: v - b["buckets"].get(le, 0) for le, v in g["buckets"].items()}
        return _pause_summary(g["count"] - b["count"], g["seconds"] - b["seconds"], buckets)

    empty = _pause_summary(0, 0.0, {})
    out: dict = {"pauses": {k: since(g, before["pauses"].get(k) or empty) for k, g in after["pauses"].items()}}
    out["loop_lag"] = since(after["loop_lag"], before.get("loop_lag") or empty)
    out["cpu"] = {k: since(g, (before.get("cpu") or {}).get(k) or empty) for k, g in (after.get("cpu") or {}).items()}
    return out


def evaluations(counts_before: dict[str, int], counts_after: dict[str, int]) -> Counter:
    """Evaluations per series key between two /bench/counts readings (two-query checks count once)."""
    d = Counter({k: counts_after.get(k, 0) - counts_before.get(k, 0) for k in counts_after})
    d["bars_total"] //= 2  # primary and backup
    d.pop("expected_cost", None)
    return +d


def _frequency_s(text: str) -> float:
    from stratops.models.common import parse_duration

    return parse_duration(text).total_seconds()


#: One safety-net period (STRATOPS_RESYNC_SECONDS' default): every idle strategy is looked at once.
IDLE_WINDOW = 60.0
#: Per fleet size, the raw figures (--out writes them, and the plots).
RESULTS: list[dict] = []
SCHEDULED = sum(60 / _frequency_s(m["spec"]["frequency"]) for m in MONITORS)  # evaluations/strategy/min


def run_size(
    cp: ControlPlane,
    admin: client.ApiClient,
    api: client.ApiClient,
    op_kubeconfig: Path,
    url: str,
    n: int,
    samples: int,
    window: float,
    rows: list[tuple[str, str, str]],
    env: dict[str, str],
    floor_cpu: dict[str, float],
    source_pid: int,
    label: str = "",
    grouped: bool = False,
) -> None:
    """One fleet size. GROUPED: the monitors whose check reads instant queries read one
    desk-wide query in batches (groupBy: strategy)."""
    ns = f"bench-n{n}{label}"
    rec: dict = {"strategies": n, "monitors": 12 * n}
    RESULTS.append(rec)
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    wait_for(lambda: core.list_namespaced_service_account(ns).items, timeout=60)
    f = Fleet(cp, api, url, ns)
    f.core.create_namespaced_config_map(ns, {"metadata": {"name": "bench-baseline"}, "data": promapi.baselines()})
    assert cp.workdir is not None
    log = cp.workdir / f"operator-{ns}.log"
    op = operator_process(
        op_kubeconfig, [ns], log, metrics_port=(mport := free_port()), env={"STRATOPS_LIFECYCLE_WORKERS": "16", **env}
    )
    tag = f"{n} strateg{'y' if n == 1 else 'ies'}{label}"
    try:
        wait_serving_metrics(op, mport, log)
        time.sleep(2)  # bench: let the idle operator settle before reading its floor RSS
        idle_rss = rss_mib(op.pid)
        # fresh strategies for latency samples when the fleet is smaller than the samples need
        kill_names = [f"s{i:04d}" for i in range(min(n, samples))] if n >= 2 * samples else []
        breach_names = [f"s{i:04d}" for i in range(samples, 2 * samples)] if n >= 2 * samples else []

        # -- create -> all Running, floor: as many bare Deployments -> Ready
        progress(f"{tag}: creating {n} strategies")
        names = [f"s{i:04d}" for i in range(n)]
        _, off = cp.audit_events(0)
        t, w0 = time.perf_counter(), time.time()
        for s in names:
            f.create("strategies", strategy_doc(s))
        wait_for(lambda: f.running() == n, timeout=60 + 2 * n, interval=1.0 if n > 100 else 0.2, what=f"{n} Running")
        ready_s, w1 = time.perf_counter() - t, time.time()
        progress(f"{tag}: all Running in {ready_s:.1f}s; floor: {n} bare Deployments")
        t, fw0 = time.perf_counter(), time.time()
        for i in range(n):
            f.apps.create_namespaced_deployment(ns, _floor_deployment(f"fd{i:04d}"))
        wait_for(
            lambda: (
                sum(
                    1
                    for d in f.apps.list_namespaced_deployment(ns, label_selector=None).items
                    if d.metadata.name.startswith("fd") and (d.status.ready_replicas or 0) == 1
                )
                == n
            ),
            timeout=60 + 2 * n,
            interval=1.0 if n > 100 else 0.2,
            what="floor Deployments Ready",
        )
        floor_ready, fw1 = time.perf_counter() - t, time.time()
        f.apps.delete_collection_namespaced_deployment(ns, label_selector="bench-floor")
        time.sleep(2)  # audit batches land within ~1 s
        events, off = cp.audit_events(off)
        mine, kinds, every = create_phase_requests(events, {OPERATOR_USER}, w0, w1)
        floor_reqs, _, _ = create_phase_requests(events, {CONTROLLERS}, fw0, fw1)
        rows.append(
            (
                f"{tag}: create -> all Running (s)",
                f"{ready_s:.1f}",
                f"{n / ready_s:.1f} strategies/s; {ready_s / floor_ready:.1f}x floor ({n} bare Deployments -> Ready, "
                f"{floor_ready:.1f}s)",
            )
        )

        rows.append(
            (
                f"{tag}: operator API requests / strategy, create -> Running",
                f"{mine / n:.1f}",
                f"{mine / floor_reqs if floor_reqs else float('inf'):.1f}x floor (Kubernetes' controllers, "
                f"{floor_reqs / n:.1f} per bare Deployment -> Ready); of them per strategy: "
                + (", ".join(f"{k} {v / n:.2f}" for k, v in sorted(kinds.items())) or "none read, none refused")
                + "; all: "
                + ", ".join(f"{k} {v / n:.2f}" for k, v in every.most_common()),
            )
        )

        # -- idle: every strategy Running, nothing changing, no monitor yet
        # Idle is after the last decision a new strategy makes by itself: known-good after healthyFor.
        wait_for(
            lambda: sum(1 for x in f.items("strategies") if (x.get("status") or {}).get("lastKnownGood")) == n,
            timeout=300 + n,
            interval=2.0,
            what=f"{n} strategies known-good",
        )
        progress(f"{tag}: idle, {IDLE_WINDOW:.0f}s window")
        time.sleep(5)  # bench: past the last known-good writes
        i0, icpu0 = time.time(), cpu_seconds(op.pid)
        time.sleep(IDLE_WINDOW)  # bench: the measurement window itself (one safety-net period)
        i1, icpu1 = time.time(), cpu_seconds(op.pid)
        rec.update(idle_cpu_pct=100 * (icpu1 - icpu0) / (i1 - i0), idle_rss_mib=rss_mib(op.pid), empty_rss_mib=idle_rss)
        rows.append(
            (
                f"{tag}: operator CPU idle, no monitors (% of one core)",
                f"{100 * (icpu1 - icpu0) / (i1 - i0):.2f}",
                f"RSS {rss_mib(op.pid):.0f} MiB (idle before any object: {idle_rss:.0f} MiB); "
                f"{100 * (icpu1 - icpu0) / (i1 - i0) / n * 1000:.3f}% per 1,000 strategies",
            )
        )

        # -- monitors
        httpx.post(f"{url}/bench/fleet", params={"n": n}, trust_env=False).raise_for_status()
        progress(f"{tag}: creating {12 * n} monitors{' (the instant ones in batches)' if grouped else ''}")
        t = time.perf_counter()
        for s in names:
            for m in monitor_docs(s, url, grouped):
                f.create("monitors", m)
        total = 12 * n

        def evaluated() -> int:
            return sum(1 for m in f.items("monitors") if (m.get("status") or {}).get("lastEvaluation"))

        wait_for(
            lambda: evaluated() >= total,
            timeout=120 + 1.0 * total,
            interval=max(1.0, n / 100),
            what=f"{total} monitors evaluated once",
        )
        first_s = time.perf_counter() - t
        progress(f"{tag}: every monitor evaluated once after {first_s:.1f}s")
        findings = [
            m["metadata"]["name"]
            for m in f.items("monitors")
            if (m.get("status") or {}).get("breaching") or (m.get("status") or {}).get("stale")
        ]
        rows.append(
            (
                f"{tag}: {total} monitors created -> each evaluated once (s)",
                f"{first_s:.1f}",
                f"{total / first_s:.0f} monitors/s; findings {len(findings)}",
            )
        )

        # -- steady state: CPU, RSS, API requests
        progress(f"{tag}: steady state, {window:.0f}s window")
        time.sleep(min(30.0, window / 2))  # bench: past the first-evaluation burst
        _, off = cp.audit_events(0)  # what came before the window is not counted
        c0 = httpx.get(f"{url}/bench/counts", trust_env=False).json()
        sc0 = schedule_counts(mport)
        gc0 = gc_figures(mport)
        w0, cpu0, src0 = time.time(), cpu_seconds(op.pid), cpu_seconds(source_pid)
        time.sleep(window)  # bench: the measurement window itself
        w1, cpu1, src1 = time.time(), cpu_seconds(op.pid), cpu_seconds(source_pid)
        load = os.getloadavg()[1]
        c1 = httpx.get(f"{url}/bench/counts", trust_env=False).json()
        sc1 = schedule_counts(mport)
        rss = rss_mib(op.pid)
        time.sleep(2)  # audit batches land within ~1 s
        more, off = cp.audit_events(off)
        by_user = audit_counts(more, w0, w1)
        minutes = (w1 - w0) / 60
        mine = by_user.get(OPERATOR_USER, Counter())
        watches = sum(v for (verb, _), v in mine.items() if verb == "watch")
        reqs = sum(v for (verb, _), v in mine.items() if verb != "watch")
        ctl = sum(v for (verb, _), v in by_user.get(CONTROLLERS, Counter()).items() if verb != "watch")
        evs = evaluations(c0, c1)
        rec.update(cpu_pct=100 * (cpu1 - cpu0) / (w1 - w0), rss_mib=rss, load=load)
        floor_cpu_s = sum(floor_cpu.get(k, 0.0) * v for k, v in evs.items())
        rec.update(
            floor_cpu_pct=100 * floor_cpu_s / (w1 - w0), evaluations_per_strategy_min=sum(evs.values()) / minutes / n
        )
        cpu_pct = 100 * (cpu1 - cpu0) / (w1 - w0)
        top = ", ".join(
            f"{verb} {res} {v / minutes / n:.2f}" for (verb, res), v in mine.most_common(4) if verb != "watch"
        )
        refresh = float(env.get("STRATOPS_MONITOR_STATUS_SECONDS", "300"))
        note = (
            f"; NOTE window {window:.0f}s < the {refresh:.0f}s status refresh: refreshes not counted"
            if window < refresh
            else ""
        )
        timing = {k: sc1.get(k, 0.0) - sc0.get(k, 0.0) for k in sc1}
        scheduled = sum(timing.values())
        on_time = sum(v for (t, _), v in timing.items() if t == "on_time")
        rec.update(on_time_pct=100 * on_time / scheduled if scheduled else None)
        late = ", ".join(f"{t} {r or '-'} {v:.0f}" for (t, r), v in sorted(timing.items()) if t != "on_time" and v)
        rows.append(
            (
                f"{tag}: scheduled evaluations started on time (%)",
                f"{100 * on_time / scheduled:.2f}" if scheduled else "n/a",
                (f"{scheduled:.0f} in the window; late or skipped: {late or 'none'}" if scheduled else "no schedule"),
            )
        )
        evaluated_min = sum(v for (t, _), v in timing.items() if t in ("on_time", "late")) / minutes / n
        rec.update(source_queries_per_strategy_min=sum(c1.values()) / minutes / n - sum(c0.values()) / minutes / n)
        rows.append(
            (
                f"{tag}: source queries / strategy / min",
                f"{rec['source_queries_per_strategy_min']:.2f}",
                f"the operator's scheduled evaluations: {evaluated_min:.1f} / strategy / min"
                + (" (instant checks read in batches: one query serves the desk)" if grouped else ""),
            )
        )
        rows.append(
            (
                f"{tag}: operator API requests / strategy / min",
                f"{reqs / minutes / n:.2f}",
                f"{(reqs / ctl if ctl else float('inf')):.1f}x floor (controllers {ctl / minutes / n:.2f}); "
                f"watches opened {watches}; top: {top or 'none'}{note}",
            )
        )
        rows.append(
            (
                f"{tag}: operator CPU at steady state (% of one core)",
                f"{cpu_pct:.1f}",
                f"{(cpu1 - cpu0) / floor_cpu_s if floor_cpu_s else float('inf'):.1f}x floor "
                f"({sum(evs.values()) / minutes / n:.1f} of {SCHEDULED:.1f} scheduled evaluations/strategy/min in a "
                "bare loop: "
                f"{100 * floor_cpu_s / (w1 - w0):.1f}%); source {100 * (src1 - src0) / (w1 - w0):.0f}%, load avg "
                f"{load:.1f} on {os.cpu_count()} cores",
            )
        )
        rows.append(
            (
                f"{tag}: operator RSS at steady state (MiB)",
                f"{rss:.0f}",
                f"{rss / idle_rss:.1f}x floor (idle operator {idle_rss:.0f} MiB)",
            )
        )
        progress(
            f"{tag}: {reqs / minutes / n:.2f} req/strategy/min, CPU {cpu_pct:.1f}%, RSS {rss:.0f} MiB; by verb: "
            + ", ".join(f"{verb} {res}={v}" for (verb, res), v in mine.most_common())
        )

        # -- latency: command-to-halt, decision-to-halt; breach-to-halt
        command, decision, floor = [], [], []
        for i in range(samples):
            name = kill_names[i] if kill_names else f"k{i:03d}"
            if not kill_names:
                f.create("strategies", strategy_doc(name))
                wait_for(lambda: f.status(name).get("phase") == "Running", timeout=120, what=f"{name} Running")
            agent = f.agent(name)
            t0 = time.perf_counter()
            f.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "strategies",
                name,
                {
                    "metadata": {
                        "annotations": {
                            "stratops.io/kill": json.dumps({"reason": "bench", "by": BENCH_USER, "id": f"b{i}"})
                        }
                    }
                },
            )
            st = f.completed(name)
            command.append(time.perf_counter() - t0)
            decision.append(_ts(st["killSwitch"]["completedAt"]) - _ts(st["killSwitch"]["at"]))
            agent.stop()
            if not kill_names:
                f.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name)
            floor.append(f.floor_halt(f"floor-k{i}"))
        progress(f"{tag}: command-to-halt p50 {statistics.median(command):.2f}s")
        rec.update(command_to_halt=command, command_floor=floor)
        fl = statistics.median(floor)
        rows.append(
            (
                f"{tag}: command-to-halt p50 / p99 (s)",
                f"{statistics.median(command):.2f} / {_pct(command, 0.99):.2f}",
                f"{statistics.median(command) / fl:.1f}x floor ({fl:.2f}s), n={samples}",
            )
        )
        rows.append(
            (
                f"{tag}: decision-to-halt p50 / p99 (s)",
                f"{statistics.median(decision):.2f} / {_pct(decision, 0.99):.2f}",
                f"{statistics.median(decision) / fl:.1f}x floor",
            )
        )

        breach, bfloor = [], []
        for i in range(samples):
            name = breach_names[i] if breach_names else f"b{i:03d}"
            if not breach_names:
                f.create("strategies", strategy_doc(name))
                wait_for(lambda: f.status(name).get("phase") == "Running", timeout=120, what=f"{name} Running")
            # names repeat across sizes and the stand-in is shared: start from fresh bars
            httpx.post(f"{url}/bench/age", params={"strategy": name, "age": "5"}, trust_env=False)
            f.create("monitors", breach_monitor(name, url))
            mon = f"{name}-breach"
            wait_for(
                lambda: (
                    f.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "monitors", mon).get("status") or {}
                ).get("lastEvaluation"),
                timeout=120,
                what=f"{mon} evaluated",
            )
            agent = f.agent(name)
            t0 = time.perf_counter()
            httpx.post(f"{url}/bench/age", params={"strategy": name, "age": "600"}, trust_env=False)
            f.completed(name)
            breach.append(time.perf_counter() - t0)
            httpx.post(f"{url}/bench/age", params={"strategy": name, "age": "5"}, trust_env=False)
            agent.stop()
            f.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "monitors", mon)
            if not breach_names:
                f.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name)
            fname = f"floor-b{i}"
            httpx.post(f"{url}/bench/age", params={"strategy": fname, "age": "5"}, trust_env=False)
            q = f'max by (symbol) (time() - stratops_strategy_breach_bar_timestamp_seconds{{strategy="{fname}"}})'

            def detect(fname: str = fname, q: str = q, phase: float = (i + 0.5) / samples) -> None:
                httpx.post(f"{url}/bench/age", params={"strategy": fname, "age": "600"}, trust_env=False)
                # a bare loop at the monitor's frequency (1 s): query, compare, sleep. The breach
                # lands at a phase of its period spread evenly over the samples.
                time.sleep(phase)  # bench: the floor loop's next tick
                while True:
                    r = httpx.get(f"{url}/api/v1/query", params={"query": q}, trust_env=False).json()
                    if max(float(s["value"][1]) for s in r["data"]["result"]) > 120:
                        return
                    time.sleep(1.0)  # bench: the floor's polling period

            bfloor.append(f.floor_halt(fname, detect))
        progress(f"{tag}: breach-to-halt p50 {statistics.median(breach):.2f}s")
        rec.update(breach_to_halt=breach, breach_floor=bfloor)
        gcf = rec["gc"] = gc_figures(mport)
        rec["gc_steady"] = gc_since(gc0, gcf)
        census = gc_census(op, log)
        rec["gc"]["tracked"] = census

        def pauses(fig: dict) -> str:
            def cpu(k: str) -> str:
                c = (fig.get("cpu") or {}).get(k)
                return f"; the collecting thread's CPU {c['seconds']:.1f}s, {c['over_100ms']} over 100 ms" if c else ""

            return "; ".join(
                f"generation {k}: {g['count']} ({g['seconds']:.1f}s, {g['over_100ms']} over 100 ms, "
                f"each <= {g['at_most_s']}s{cpu(k)})"
                for k, g in sorted(fig["pauses"].items())
                if g["count"]
            )

        rows.append(
            (
                f"{tag}: garbage-collection pauses over the run (s)",
                f"{sum(g['seconds'] for g in gcf['pauses'].values()):.1f}",
                pauses(gcf) + f"; thaws {gcf.get('thaws', 0)} (freed {gcf.get('thaw_freed_objects', 0):,})",
            )
        )
        if census:
            walked = sum(census[g] for g in ("young", "middle", "old"))
            rows.append(
                (
                    f"{tag}: objects the collector tracks, per strategy",
                    f"{(walked + census['frozen']) / n:,.0f}",
                    f"young {census['young']:,}, middle {census['middle']:,}, old {census['old']:,}, frozen "
                    f"{census['frozen']:,} (a full collection walks all but the frozen: {walked:,})",
                )
            )
        for label, fig in (("over the run", gcf), ("steady window and latency samples", rec["gc_steady"])):
            lag = fig["loop_lag"]
            rows.append(
                (
                    f"{tag}: event loop lag p99 / max, {label} (s)",
                    f"<= {lag['p99_at_most_s']} / <= {lag['at_most_s']}",
                    f"{lag['count']} samples every 0.25 s, {lag['over_100ms']} over 100 ms (histogram bounds)",
                )
            )
        rows.append(
            (
                f"{tag}: garbage-collection pauses, steady window and latency samples (s)",
                f"{sum(g['seconds'] for g in rec['gc_steady']['pauses'].values()):.1f}",
                pauses(rec["gc_steady"]) or "none",
            )
        )
        bf = statistics.median(bfloor)
        rows.append(
            (
                f"{tag}: breach-to-halt p50 / p99 (s)",
                f"{statistics.median(breach):.2f} / {_pct(breach, 0.99):.2f}",
                f"{statistics.median(breach) / bf:.1f}x floor ({bf:.2f}s: poll 1 s + halt), n={samples}",
            )
        )
    finally:
        stop_process(op, 30)
        if op.returncode not in (0, -15, None):
            progress(f"operator exited {op.returncode}; log tail:\n{log.read_text()[-3000:]}")


def main(
    rows: list[tuple[str, str, str]],
    sizes: tuple[int, ...] = (1, 100, 1000),
    samples: int = 15,
    window: float = 120.0,
    env: dict[str, str] | None = None,
    source_latency: float = 0.0,
    grouped: bool = False,
) -> None:
    # A KWOK node has 1,000 CPUs (stratops.testing's stages): 2,000 of the example's pods (500m
    # each). The floor's bare Deployments run beside the strategies' pods for a while.
    nodes = max(1, -(-2 * max(sizes, default=0) * 11 // 10 // 2000))
    with ControlPlane(log=lambda m: None, audit=True, nodes=nodes) as cp:
        admin = cp.api_client()
        install_crds(admin, ROOT / "crds")
        op_kubeconfig = cp.user_kubeconfig(OPERATOR_USER, groups=("system:masters",))
        api = cp.api_client(cp.user_kubeconfig(BENCH_USER, groups=("system:masters",)))
        assert cp.workdir is not None
        port = free_port()
        with (cp.workdir / "promapi.log").open("ab") as out:
            src = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve().parent / "promapi.py"), str(port), str(source_latency)],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: httpx.get(f"{url}/-/ready", trust_env=False).status_code == 200,
                timeout=30,
                what="stand-in source",
            )
            floor_cpu = floor_cpu_per_evaluation(url, repeat=20)
            progress("floor CPU per evaluation (ms): " + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in floor_cpu.items()))
            for n in sizes:
                run_size(
                    cp,
                    admin,
                    api,
                    op_kubeconfig,
                    url,
                    n,
                    samples,
                    window,
                    rows,
                    env or {},
                    floor_cpu,
                    src.pid,
                    grouped=grouped,
                )
        finally:
            stop_process(src)


def write_out(out: Path) -> None:
    """The raw figures as fleet.json, and where matplotlib is installed (`pip install -e
    .[bench]`) the plots: breach-to-halt CDF per fleet size, and RSS and CPU against fleet size."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(json.dumps(RESULTS, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress(f"wrote {out / 'fleet.json'}; no plots: matplotlib is not installed (pip install -e '.[bench]')")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in RESULTS:
        xs = sorted(r.get("breach_to_halt") or [])
        if xs:
            ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=f"{r['strategies']:,}")
        fl = sorted(r.get("breach_floor") or [])
        if fl:
            ax.step(fl, [(i + 1) / len(fl) for i in range(len(fl))], where="post", linestyle=":", color="grey")
    ax.set(xlabel="breach-to-halt (s); dotted: the floor", ylabel="fraction of breaches", title="Breach-to-halt CDF")
    ax.legend(title="strategies")
    fig.tight_layout()
    fig.savefig(out / "fleet-breach-to-halt.png", dpi=110)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    rs = [r for r in RESULTS if "rss_mib" in r]
    ns = [r["strategies"] for r in rs]
    a1.plot(ns, [r["rss_mib"] for r in rs], "o-", label="with 12 monitors each")
    a1.plot(ns, [r.get("idle_rss_mib") for r in rs], "s--", label="idle, no monitors")
    a1.set(xscale="log", xlabel="strategies", ylabel="operator RSS (MiB)")
    a1.legend()
    a2.plot(ns, [r["cpu_pct"] for r in rs], "o-", label="with 12 monitors each")
    a2.plot(ns, [r.get("floor_cpu_pct") for r in rs], ":", color="grey", label="floor: the same evaluations")
    a2.plot(ns, [r.get("idle_cpu_pct") for r in rs], "s--", label="idle, no monitors")
    a2.set(xscale="log", xlabel="strategies", ylabel="operator CPU (% of one core)")
    a2.legend()
    fig.tight_layout()
    fig.savefig(out / "fleet-rss-cpu.png", dpi=110)
    plt.close("all")
    progress(f"wrote {out / 'fleet.json'}, fleet-breach-to-halt.png and fleet-rss-cpu.png")


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1,100,1000")
    p.add_argument("--samples", type=int, default=15)
    p.add_argument("--window", type=float, default=120.0)
    p.add_argument(
        "--monitor-status-seconds",
        default=None,
        help="STRATOPS_MONITOR_STATUS_SECONDS for the operator (0: the old write-every-evaluation)",
    )
    p.add_argument(
        "--operator-pythonpath", default=None, help="run the operator from another checkout (before/after comparisons)"
    )
    p.add_argument(
        "--source-latency",
        type=float,
        default=0.0,
        help="seconds the stand-in source takes per query, as a real Prometheus does (default 0: about 0.5 ms)",
    )
    p.add_argument(
        "--grouped",
        action="store_true",
        help="monitors whose check reads instant queries read one desk-wide query in batches (groupBy: strategy)",
    )
    p.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the operator, e.g. STRATOPS_GC_THAW_SECONDS=600 (repeatable)",
    )
    p.add_argument("--out", default=None, help="write the raw figures (fleet.json) and the plots (PNG) here")
    a = p.parse_args()
    env: dict[str, str] = {}
    if a.monitor_status_seconds is not None:
        env["STRATOPS_MONITOR_STATUS_SECONDS"] = a.monitor_status_seconds
    if a.operator_pythonpath:
        env["PYTHONPATH"] = a.operator_pythonpath
    for pair in a.operator_env:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            p.error(f"--operator-env {pair!r}: give NAME=VALUE, e.g. STRATOPS_GC_THAW_SECONDS=600")
        env[name] = value
    out: list[tuple[str, str, str]] = []
    try:
        main(out, tuple(int(x) for x in a.sizes.split(",")), a.samples, a.window, env, a.source_latency, a.grouped)
    finally:
        if a.out:
            write_out(Path(a.out))
    width = max(len(r[0]) for r in out)
    for name, value, ratio in out:
        print(f"{name.ljust(width)}  {value:>13}  {ratio}")
