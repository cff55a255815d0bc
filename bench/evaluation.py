"""One monitor evaluation's own CPU outside the scheduler (stratops.k8s.monitoring.MonitorRunner):
its reads made ahead on the event loop (`prefetch`) and its evaluation, decision and bookkeeping
in a worker (`run`), for each of the 12 example monitors, with no network and no API server (a
stand-in source answers at once, the same answer to each query every time; status writes are
counted, not sent: a monitor that breaches writes its count of breaches in a row at every
evaluation, one at rest only at its status refresh). The floor: the same
monitor's check alone (stratops.monitors.evaluate) over the same answers, in the same run, so
the ratio is what the runner adds around the statistic.

    python bench/evaluation.py [--evaluations 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import yaml

from stratops.k8s.monitoring import MonitorRunner
from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import StrategySpec
from stratops.monitors.evaluate import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monitors import NOW, SyntheticSource  # the same plausible answers

ROOT = Path(__file__).resolve().parent.parent


class SteadySource:
    """SyntheticSource's first answer to each query, every time: a desk at rest, whose verdicts
    do not change, so the runner writes no status between its refreshes (the steady state)."""

    def __init__(self, src: SyntheticSource) -> None:
        self.src, self.answers = src, {}  # type: ignore[var-annotated]

    def query(self, expr: str, at: datetime | None = None) -> Any:
        return self.answers.setdefault(("q", expr), self.src.query(expr, at))

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> Any:
        return self.answers.setdefault(("r", expr), self.src.query_range(expr, start, end, step_s))


class AsyncSource:
    """SyntheticSource's answers, awaited as a source's are on the event loop."""

    def __init__(self, src: SteadySource) -> None:
        self.src = src

    async def query(self, expr: str, at: datetime | None = None) -> Any:
        return self.src.query(expr, at)

    async def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> Any:
        return self.src.query_range(expr, start, end, step_s)


def runner_for(src: SteadySource, baselines: dict[str, str]) -> tuple[MonitorRunner, list[object]]:
    from kubernetes import client

    writes: list[object] = []
    runner = MonitorRunner(client.ApiClient(), notifier=SimpleNamespace(deliver=lambda a: (True, "")))  # type: ignore[arg-type]
    runner.custom = SimpleNamespace(  # type: ignore[assignment]  # the status write, not sent
        patch_namespaced_custom_object_status=lambda *a: writes.append(a)
    )
    runner.executor = SimpleNamespace(  # type: ignore[assignment]
        create_incident=lambda *a, **k: None, event=lambda *a, **k: None, join_incident=lambda *a, **k: False
    )
    runner._source = lambda *a: src  # type: ignore[method-assign,assignment]
    runner._async_source = lambda *a: AsyncSource(src)  # type: ignore[method-assign,assignment]
    runner._loader = lambda ns: lambda name, key: baselines[key]  # type: ignore[method-assign,assignment]
    return runner, writes


async def measure(evaluations: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    src = SteadySource(SyntheticSource(rng))
    baselines = {
        "features.json": json.dumps({f"f{i}": list(rng.normal(size=2000)) for i in range(10)}),
        "signal.json": json.dumps(list(rng.normal(size=2000))),
        "top-features.json": json.dumps([f"S{i}" for i in range(5)]),
    }
    strategy = yaml.safe_load((ROOT / "examples" / "strategy.yaml").read_text())
    strat = {"spec": strategy["spec"], "status": {}, "uid": "s1", "generation": 1}
    strategy_spec = StrategySpec.model_validate(strategy["spec"])
    runner, writes = runner_for(src, baselines)
    pool = ThreadPoolExecutor(2)
    rows = []
    for path in sorted((ROOT / "examples" / "monitors").glob("*.yaml")):
        mon = yaml.safe_load(path.read_text())
        mon["spec"]["source"].get("prometheus", {})["url"] = "http://stand-in"
        name = path.stem
        body = {
            "metadata": {"name": name, "namespace": "desk", "uid": f"u-{name}", "generation": 1},
            "spec": mon["spec"],
            "status": {},
        }
        spec = MonitorSpec.model_validate(mon["spec"])
        runner.run(body, strat, NOW)  # its first evaluation writes; the rest are the steady state
        heavy = mon["spec"]["check"]["kind"] in ("psi", "ks")
        n = max(50, evaluations // 20) if heavy else evaluations
        w0, cpu0 = len(writes), time.process_time()
        for i in range(n):
            now = NOW + timedelta(milliseconds=i)
            answers = await runner.prefetch(body, strat, now, pool)
            runner.run(body, strat, now, answers)
        cpu = (time.process_time() - cpu0) / n
        load = lambda name, key: baselines[key]  # noqa: E731
        cpu0 = time.process_time()
        for i in range(n):
            evaluate(spec, strategy_spec, src, load, NOW + timedelta(milliseconds=i), 0)
        floor = (time.process_time() - cpu0) / n
        rows.append({"monitor": name, "n": n, "us": cpu * 1e6, "floor_us": floor * 1e6, "writes": len(writes) - w0})
    pool.shutdown()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--evaluations", type=int, default=3000, help="per monitor (a twentieth for PSI and KS)")
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    a = p.parse_args()
    rows = asyncio.run(measure(a.evaluations))
    print(f"{'monitor':34} {'n':>6} {'CPU us/eval':>12} {'floor us':>10} {'x floor':>8} {'writes':>7}")
    for r in rows:
        print(
            f"{r['monitor']:34} {r['n']:6d} {r['us']:12.1f} {r['floor_us']:10.1f} "
            f"{r['us'] / r['floor_us']:8.2f} {r['writes']:7d}"
        )
    light = [r for r in rows if r["n"] == a.evaluations]
    us = sum(r["us"] for r in light) / len(light)
    fl = sum(r["floor_us"] for r in light) / len(light)
    print(f"{'mean of the frequent checks':34} {'':6} {us:12.1f} {fl:10.1f} {us / fl:8.2f}")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
