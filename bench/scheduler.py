"""The monitor scheduler's own CPU per evaluation (stratops.controller.monitor.MonitorScheduler),
without Kubernetes or a source: N monitors due every PERIOD, each read ahead with a stand-in
that waits LATENCY on the event loop (as a source's answer does), then evaluated in a worker
thread by a call of about 10 µs. The floor: the same reads and calls made by a bare loop
(asyncio.gather of the reads, the calls inline), in the same run.

    python bench/scheduler.py [--monitors 4000] [--period 5] [--latency 0.02] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from stratops.controller.monitor import MonitorScheduler
from stratops.monitors.prometheus import AsyncSharedQueries


def evaluate(view: dict, strategy: dict | None, now: object = None, answers: object = None) -> None:
    """About 10 µs of work: the bench measures what is around it."""
    x = 0
    for i in range(200):
        x += i


def _view(i: int, batched: bool) -> dict:
    prom: dict = {"url": "http://stand-in", "query": "sum by (strategy) (q)"}
    if batched:
        prom["groupBy"] = "strategy"
    return {
        "metadata": {"name": f"m{i}", "namespace": "desk"},
        "spec": {"strategy": "s", "source": {"prometheus": prom}},
    }


class _Source:
    """A source whose every answer takes LATENCY on the event loop."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    async def query(self, expr: str) -> list:
        await asyncio.sleep(self.latency)
        return []


async def scheduled(
    monitors: int, period: float, latency: float, seconds: float, batched: bool = False
) -> tuple[int, float, dict]:
    """BATCHED: the monitors read one desk-wide query (groupBy), shared as the operator shares it
    (AsyncSharedQueries, at most every half period), and are evaluated in batches."""
    source, shared = _Source(latency), AsyncSharedQueries()

    async def prefetch(view: dict, strategy: dict | None, now: object) -> dict:
        if batched:
            return {"read": await shared.query(source, "sum by (strategy) (q)", period / 2)}
        return {"read": await source.query("q")}  # the source's answer

    sched = MonitorScheduler(evaluate, 8, may_act=lambda: True, prefetch=prefetch, in_flight=256, per_source=192)
    sched.strategies = {("desk", "s"): [{"spec": {}}]}
    for i in range(monitors):
        sched.seen("desk", f"m{i}", _view(i, batched), period, listed=True)
    task = asyncio.get_running_loop().create_task(sched.run())
    await asyncio.sleep(period + 1)  # bench: past the first beats, spread over the period

    def count() -> int:
        return sched.schedule.tally.on_time + sum(sched.schedule.tally.late.values())

    n0, c0 = count(), time.process_time()
    await asyncio.sleep(seconds)  # bench: the measurement window
    n, cpu = count() - n0, time.process_time() - c0
    task.cancel()
    return n, cpu, dict(sched.schedule.tally.late)


async def floor(n: int, latency: float, batch: int, shared: bool = False) -> float:
    """CPU of N reads and calls in a bare loop, BATCH reads at a time (SHARED: one read for
    BATCH calls)."""

    async def read() -> dict:
        await asyncio.sleep(latency)
        return {"read": 1}

    c0 = time.process_time()
    for _ in range(0, n, batch):
        if shared:
            await read()
            for _ in range(batch):
                evaluate({}, None)
            continue
        for _answer in await asyncio.gather(*(read() for _ in range(batch))):
            evaluate({}, None)
    return time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--monitors", type=int, default=4000)
    p.add_argument("--period", type=float, default=5.0)
    p.add_argument("--latency", type=float, default=0.02, help="seconds the stand-in source takes per read")
    p.add_argument("--seconds", type=float, default=20.0, help="the measurement window")
    a = p.parse_args()
    print(f"[bench] {a.monitors} monitors every {a.period:g}s, reads of {a.latency * 1e3:g} ms", file=sys.stderr)
    n, cpu, late = asyncio.run(scheduled(a.monitors, a.period, a.latency, a.seconds))
    rate = n / a.seconds
    bare = asyncio.run(floor(n, a.latency, max(1, int(rate * a.latency))))
    print(f"{'evaluations / s':48s} {rate:10.0f}  late: {late or 'none'}")
    print(f"{'scheduler CPU per evaluation (µs)':48s} {cpu / n * 1e6:10.0f}  {cpu / bare:.1f}x floor")
    print(f"{'floor: bare loop, same reads and calls (µs)':48s} {bare / n * 1e6:10.0f}  -")
    print(f"{'scheduler CPU, % of one core':48s} {100 * cpu / a.seconds:10.1f}  -")
    # Batched: one desk-wide query (groupBy) for all, read at most every half period.
    n, cpu, late = asyncio.run(scheduled(a.monitors, a.period, a.latency, a.seconds, batched=True))
    rate = n / a.seconds
    bare = asyncio.run(floor(n, a.latency, max(1, int(rate * a.period / 2)), shared=True))
    print(f"{'batched: evaluations / s':48s} {rate:10.0f}  late: {late or 'none'}")
    print(f"{'batched: scheduler CPU per evaluation (µs)':48s} {cpu / n * 1e6:10.0f}  {cpu / bare:.1f}x floor")
    print(f"{'batched floor: one read per half period, calls (µs)':48s} {bare / n * 1e6:10.0f}  -")
    print(f"{'batched: scheduler CPU, % of one core':48s} {100 * cpu / a.seconds:10.1f}  -")


if __name__ == "__main__":
    main()
