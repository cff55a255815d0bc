"""stratops beside Argo Rollouts on the same work, on one local control plane (issue 21).

Argo Rollouts is built from its pinned Go module (hack/rollouts, hack/build-rollouts.sh; cached)
and runs as its own process under its own identity (`argo-rollouts`), namespaced, as the
operator does (`stratops-operator`): CPU and RSS come from /proc/<pid>, API requests from the
kube-apiserver audit log. The pods are KWOK's, for both. Blocks alternate which goes first.

Per block, per side, N objects with one replica each (stratops: the example Strategy in paper,
no monitors; Argo: a canary Rollout of the same pod):
- create -> all Ready: wall time, controller CPU, API requests per object (watches apart);
- RSS with no object, and idle with N; idle CPU over a window once everything has settled;
- a breach: a metric read that breaches -> the controller's first write that acts on it, and
  -> the pods of the bad version going (each counted from the breaching read, which the
  stand-in source timestamps, to the write's arrival in the audit log):
  - stratops: a P0 bar-age monitor at 1 s; acts = the control document HALTED, pods going =
    its Deployment scaled to 0 (after the pod's acknowledgement, the SDK running beside it);
  - Argo: a canary at its pause step with a background analysis of the same query at 1 s and
    failureLimit 0; acts = the Rollout aborted, pods going = the canary ReplicaSet scaled to 0.

    python bench/rollouts.py --n 500 --blocks 5 --samples 5 [--argo-qps 40] [--out bench/out]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from kubernetes import client

from stratops import GROUP, VERSION
from stratops.k8s.apply import install_crds
from stratops.lifecycle.manifests import control_name
from stratops.testing import ControlPlane
from stratops.testing.controlplane import (
    _die_with_parent,
    free_port,
    operator_process,
    stop_process,
    wait_serving_metrics,
)
from stratops.testing.wait import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promapi
from fleet import (
    BENCH_USER,
    OPERATOR_USER,
    ROOT,
    Fleet,
    _pct,
    _ts,
    breach_monitor,
    cpu_seconds,
    create_phase_requests,
    progress,
    rss_mib,
    strategy_doc,
    workload_spec,
)

ARGO_USER = "argo-rollouts"
ARGO = ("argoproj.io", "v1alpha1")
IMAGE = "registry.example/mean-revert:1.4.2"
QUERY = 'max by (symbol) (time() - stratops_strategy_breach_bar_timestamp_seconds{strategy="%s"})'


def rollouts_build() -> Path:
    """The directory holding rollouts-controller and Argo's CRDs (built the first time)."""
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-rollouts.sh")], stdout=subprocess.PIPE, text=True, check=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def rollout_doc(name: str, image: str = IMAGE) -> dict:
    """A canary Rollout of the strategy's pod: half the weight, a pause, and a background
    analysis of its bars from the first step."""
    canary = {
        "steps": [{"setWeight": 50}, {"pause": {}}],
        "analysis": {"templates": [{"templateName": "bar-age"}], "args": [{"name": "strategy", "value": name}]},
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {**workload_spec({"app": name}, "strategy", image), "strategy": {"canary": canary}},
    }


def analysis_template(url: str) -> dict:
    """The bar-age monitor's check as Argo writes it: the same query, at 1 s, failing at once."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "bar-age"},
        "spec": {
            "args": [{"name": "strategy"}],
            "metrics": [
                {
                    "name": "bar-age",
                    "interval": "1s",
                    "failureLimit": 0,
                    "successCondition": "result[0] < 120",
                    "provider": {"prometheus": {"address": url, "query": QUERY % "{{args.strategy}}"}},
                }
            ],
        },
    }


def first_write(events: list[dict], user: str, after: float, resource: str, name: str) -> float | None:
    """When USER's first write (create, update, patch) of RESOURCE/NAME after AFTER (wall clock)
    reached the API server."""
    times = [
        _ts(e["requestReceivedTimestamp"])
        for e in events
        if e["user"]["username"] == user
        and e.get("stage") == "ResponseComplete"
        and e.get("verb") in ("create", "update", "patch")
        and _ts(e["requestReceivedTimestamp"]) >= after
        and ((e.get("objectRef") or {}).get("resource"), (e.get("objectRef") or {}).get("name")) == (resource, name)
    ]
    return min(times) if times else None


class Side:
    """One controller over one namespace: start, create N, settle, breach."""

    name = ""
    user = ""
    acting = going = ""  # resources: see the subclasses

    def __init__(self, cp: ControlPlane, admin: client.ApiClient, api: client.ApiClient, url: str, ns: str) -> None:
        self.cp, self.admin, self.api, self.url, self.ns = cp, admin, api, url, ns
        self.custom, self.core, self.apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)
        self.proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    def start(self) -> None:
        raise NotImplementedError

    def create(self, i: int) -> None:
        raise NotImplementedError

    def ready(self) -> int:
        raise NotImplementedError

    def settled(self) -> bool:
        return True

    def breach(self, i: int, breach_at: Callable[[str], float]) -> tuple[str, str, str]:
        """Arm object I, make its source breach; returns the names whose writes time the reaction."""
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 30)

    def items(self, group: str, version: str, plural: str) -> list[dict]:
        out, cont = [], None
        while True:
            r = self.custom.list_namespaced_custom_object(group, version, self.ns, plural, limit=2000, _continue=cont)
            out += r["items"]
            if not (cont := r["metadata"].get("continue")):
                return out


class Stratops(Side):
    name, user = "stratops", OPERATOR_USER

    def start(self) -> None:
        assert self.cp.workdir is not None
        log = self.cp.workdir / f"operator-{self.ns}.log"
        kubeconfig = self.cp.user_kubeconfig(OPERATOR_USER, groups=("system:masters",))
        self.proc = operator_process(kubeconfig, [self.ns], log, metrics_port=(port := free_port()))
        wait_serving_metrics(self.proc, port, log)
        self.fleet = Fleet(self.cp, self.api, self.url, self.ns)
        self.agents: list = []

    def create(self, i: int) -> None:
        self.fleet.create("strategies", strategy_doc(f"s{i:04d}"))

    def ready(self) -> int:
        return self.fleet.running()

    def settled(self) -> bool:
        # The last decision a new strategy makes by itself: known-good after healthyFor.
        return all((s.get("status") or {}).get("lastKnownGood") for s in self.fleet.items("strategies"))

    def breach(self, i: int, breach_at: Callable[[str], float]) -> tuple[str, str, str]:
        name = f"s{i:04d}"
        httpx.post(f"{self.url}/bench/age", params={"strategy": name, "age": "5"}, trust_env=False)
        self.fleet.create("monitors", breach_monitor(name, self.url))
        mon = f"{name}-breach"
        wait_for(
            lambda: (
                self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "monitors", mon).get("status") or {}
            ).get("lastEvaluation"),
            timeout=120,
            what=f"{mon} evaluated",
        )
        agent = self.fleet.agent(name)
        breach_at(name)
        self.fleet.completed(name)
        agent.stop()
        return name, control_name(name), name

    #: What the writes that time the reaction are to: acting on the breach, and the pods going.
    acting, going = "configmaps", "deployments"


class Argo(Side):
    name, user = "Argo Rollouts", ARGO_USER

    def __init__(self, *args, build: Path, qps: float, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kw)
        self.build, self.qps = build, qps

    def start(self) -> None:
        assert self.cp.workdir is not None
        log = self.cp.workdir / f"rollouts-{self.ns}.log"
        kubeconfig = self.cp.user_kubeconfig(ARGO_USER, groups=("system:masters",))
        healthz = free_port()
        args = [
            str(self.build / "rollouts-controller"),
            f"--kubeconfig={kubeconfig}",
            "--namespaced",
            f"--namespace={self.ns}",
            "--leader-elect=false",
            f"--metricsPort={free_port()}",
            f"--healthzPort={healthz}",
            "--loglevel=warn",
            f"--qps={self.qps:g}",
            f"--burst={int(2 * self.qps)}",
        ]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"rollouts-controller exited {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                return httpx.get(f"http://127.0.0.1:{healthz}/healthz", trust_env=False, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, what="rollouts-controller healthy")
        self.custom.create_namespaced_custom_object(*ARGO, self.ns, "analysistemplates", analysis_template(self.url))

    def create(self, i: int) -> None:
        self.custom.create_namespaced_custom_object(*ARGO, self.ns, "rollouts", rollout_doc(f"r{i:04d}"))

    def ready(self) -> int:
        return sum(1 for r in self.items(*ARGO, "rollouts") if (r.get("status") or {}).get("phase") == "Healthy")

    def breach(self, i: int, breach_at: Callable[[str], float]) -> tuple[str, str, str]:
        name = f"r{i:04d}"
        httpx.post(f"{self.url}/bench/age", params={"strategy": name, "age": "5"}, trust_env=False)
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "strategy", "image": IMAGE + "-v2"}]}}}}
        self.custom.patch_namespaced_custom_object(*ARGO, self.ns, "rollouts", name, patch)

        def measured() -> bool:  # the canary paused, its background analysis reading healthy bars
            runs = [
                a
                for a in self.items(*ARGO, "analysisruns")
                if any(o.get("name") == name for o in a["metadata"].get("ownerReferences") or [])
            ]
            return any(
                (m.get("successful") or 0) >= 1
                for a in runs
                for m in (a.get("status") or {}).get("metricResults") or []
            )

        wait_for(measured, timeout=120, what=f"{name}'s canary analysed")
        breach_at(name)
        wait_for(
            lambda: (
                self.custom.get_namespaced_custom_object(*ARGO, self.ns, "rollouts", name).get("status") or {}
            ).get("abort"),
            timeout=120,
            interval=0.05,
            what=f"{name} aborted",
        )
        canary = wait_for(
            lambda: [
                rs.metadata.name
                for rs in self.apps.list_namespaced_replica_set(self.ns, label_selector=f"app={name}").items
                if rs.spec.template.spec.containers[0].image.endswith("-v2") and rs.spec.replicas == 0
            ],
            timeout=120,
            interval=0.05,
            what=f"{name}'s canary scaled to 0",
        )[0]
        return name, name, canary

    #: What the writes that time the reaction are to: acting on the breach, and the pods going.
    acting, going = "rollouts", "replicasets"


def run_side(side: Side, n: int, samples: int, idle: float, rec: dict) -> None:
    core = client.CoreV1Api(side.admin)
    core.create_namespace({"metadata": {"name": side.ns}})
    wait_for(lambda: core.list_namespaced_service_account(side.ns).items, timeout=60, what="namespace ready")
    side.start()
    assert side.proc is not None
    pid = side.proc.pid
    try:
        time.sleep(2)  # bench: the idle controller settles before its empty RSS is read
        rec["empty_rss_mib"] = rss_mib(pid)
        _, off = side.cp.audit_events(0)
        progress(f"{side.name} ({side.ns}): creating {n}")
        w0, cpu0 = time.time(), cpu_seconds(pid)
        for i in range(n):
            side.create(i)
        wait_for(lambda: side.ready() == n, timeout=120 + 2 * n, interval=1.0, what=f"{n} Ready ({side.name})")
        w1, cpu1 = time.time(), cpu_seconds(pid)
        time.sleep(2)  # audit batches land within ~1 s
        events, off = side.cp.audit_events(off)
        reqs, kinds, every = create_phase_requests(events, {side.user}, w0, w1)
        rec.update(ready_s=w1 - w0, create_cpu_s=cpu1 - cpu0, requests_per_object=reqs / n)
        rec["requests"] = {k: v / n for k, v in every.most_common()}
        rec["refused_or_read"] = {k: v / n for k, v in kinds.most_common()}  # 404s, 409s, reads of a Strategy
        progress(
            f"{side.name}: {n} Ready in {w1 - w0:.1f}s, CPU {cpu1 - cpu0:.1f}s, {reqs / n:.1f} requests/object: "
            + ", ".join(f"{k} {v / n:.2f}" for k, v in every.most_common(8))
            + "; of them "
            + (", ".join(f"{k} {v / n:.2f}" for k, v in kinds.most_common()) or "none refused")
        )
        wait_for(side.settled, timeout=300 + n, interval=2.0, what=f"{side.name} settled")
        time.sleep(5)  # bench: past the last settling writes
        i0, c0 = time.time(), cpu_seconds(pid)
        time.sleep(idle)  # bench: the idle window itself
        rec.update(idle_cpu_pct=100 * (cpu_seconds(pid) - c0) / (time.time() - i0), idle_rss_mib=rss_mib(pid))
        progress(f"{side.name}: idle CPU {rec['idle_cpu_pct']:.2f}%, RSS {rec['idle_rss_mib']:.0f} MiB")
        acts, going = [], []
        for i in range(samples):

            def breach_at(strategy: str) -> float:
                httpx.post(f"{side.url}/bench/age", params={"strategy": strategy, "age": "600"}, trust_env=False)
                return time.time()

            names = side.breach(i, breach_at)
            read_at = wait_for(
                lambda: httpx.get(
                    f"{side.url}/bench/breach-read", params={"strategy": names[0]}, trust_env=False
                ).json()["at"],
                timeout=30,
                what="the breaching read",
            )
            time.sleep(2)  # audit batches land within ~1 s
            events, off = side.cp.audit_events(off)
            a = first_write(events, side.user, read_at, side.acting, names[1])
            g = first_write(events, side.user, read_at, side.going, names[2])
            if a is None or g is None:
                raise RuntimeError(f"{side.name}: no write found after the breaching read of {names[0]}: {a}, {g}")
            acts.append(a - read_at)
            going.append(g - read_at)
            httpx.post(f"{side.url}/bench/age", params={"strategy": names[0], "age": "5"}, trust_env=False)
        rec.update(breach_to_action=acts, breach_to_pods_going=going)
        progress(
            f"{side.name}: breaching read -> acts p50 {statistics.median(acts):.3f}s, "
            f"-> pods going p50 {statistics.median(going):.3f}s"
        )
    finally:
        side.stop()
        core.delete_namespace(side.ns)  # not awaited: the next side's namespace is another


def main(n: int, blocks: int, samples: int, idle: float, argo_qps: float, out: Path | None) -> list[dict]:
    build = rollouts_build()
    results: list[dict] = []
    with ControlPlane(log=lambda m: None, audit=True) as cp:
        admin = cp.api_client()
        install_crds(admin, ROOT / "crds")
        install_crds(admin, build / "crds")
        api = cp.api_client(cp.user_kubeconfig(BENCH_USER, groups=("system:masters",)))
        port = free_port()
        assert cp.workdir is not None
        with (cp.workdir / "promapi.log").open("ab") as log:
            src = subprocess.Popen(
                [sys.executable, str(Path(promapi.__file__).resolve()), str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: httpx.get(f"{url}/-/ready", trust_env=False).status_code == 200, timeout=30)
            for b in range(blocks):
                order = ("argo", "stratops") if b % 2 == 0 else ("stratops", "argo")
                for which in order:
                    rec: dict = {"side": which, "block": b, "n": n}
                    side: Side = (
                        Argo(cp, admin, api, url, f"argo-b{b}", build=build, qps=argo_qps)
                        if which == "argo"
                        else Stratops(cp, admin, api, url, f"stratops-b{b}")
                    )
                    run_side(side, n, samples, idle, rec)
                    results.append(rec)
                    if out is not None:
                        out.mkdir(parents=True, exist_ok=True)
                        (out / "rollouts.json").write_text(json.dumps(results, indent=1))
        finally:
            stop_process(src)
    return results


def table(results: list[dict], n: int, argo_qps: float) -> list[tuple[str, str, str, str]]:
    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results if r["side"] == side)

    def pooled(side: str, key: str) -> list[float]:
        return [x for r in results if r["side"] == side for x in r[key]]

    rows = []
    for label, key, fmt in (
        ("create -> all Ready, median of blocks (s)", "ready_s", "{:.1f}"),
        ("controller CPU, create -> Ready (s)", "create_cpu_s", "{:.1f}"),
        ("API requests / object, create phase", "requests_per_object", "{:.1f}"),
        ("RSS, no object (MiB)", "empty_rss_mib", "{:.0f}"),
        ("RSS, idle with N (MiB)", "idle_rss_mib", "{:.0f}"),
        ("idle CPU (% of one core)", "idle_cpu_pct", "{:.2f}"),
    ):
        a, s = med("argo", key), med("stratops", key)
        rows.append((label, fmt.format(a), fmt.format(s), f"{s / a:.2f}x" if a else "-"))
    for label, key in (
        ("breaching read -> acting write, p50 / p99 (s)", "breach_to_action"),
        ("breaching read -> pods going, p50 / p99 (s)", "breach_to_pods_going"),
    ):
        a, s = pooled("argo", key), pooled("stratops", key)
        rows.append(
            (
                label,
                f"{statistics.median(a):.3f} / {_pct(a, 0.99):.3f}",
                f"{statistics.median(s):.3f} / {_pct(s, 0.99):.3f}",
                f"{statistics.median(s) / statistics.median(a):.2f}x",
            )
        )
    blocks = len({r["block"] for r in results})
    rows.append((f"(blocks {blocks}, {n} objects per side, Argo --qps {argo_qps:g})", "", "", ""))
    return rows


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=500, help="objects per side per block")
    p.add_argument("--blocks", type=int, default=5, help="interleaved blocks (each runs both sides)")
    p.add_argument("--samples", type=int, default=5, help="breaches per side per block")
    p.add_argument("--idle", type=float, default=60.0, help="idle window (s)")
    p.add_argument("--argo-qps", type=float, default=40.0, help="Argo's --qps (its default: 40; --burst is twice)")
    p.add_argument("--out", default=None, help="write the raw figures here (rollouts.json)")
    a = p.parse_args()
    res = main(a.n, a.blocks, a.samples, a.idle, a.argo_qps, Path(a.out) if a.out else None)
    rows = table(res, a.n, a.argo_qps)
    w = max(len(r[0]) for r in rows)
    print(f"\n{'figure':<{w}}  {'Argo Rollouts':>16}  {'stratops':>16}  stratops/Argo")
    for label, argo, strat, ratio in rows:
        print(f"{label:<{w}}  {argo:>16}  {strat:>16}  {ratio}")
