"""The event loop's lateness (stratops.handlers.startup.watch_loop_lag): what a kill handled on
the loop waits for, whatever holds the loop."""

from __future__ import annotations

import asyncio
import time

from stratops import metrics as M
from stratops.handlers import startup


def _over(seconds: float) -> float:
    """Samples of stratops_event_loop_lag_seconds above SECONDS (a bucket bound)."""
    count = sum(s.value for s in M.EVENT_LOOP_LAG_SECONDS.collect()[0].samples if s.name.endswith("_count"))
    within = next(
        s.value
        for s in M.EVENT_LOOP_LAG_SECONDS.collect()[0].samples
        if s.name.endswith("_bucket") and float(s.labels["le"]) == seconds
    )
    return count - within


def test_a_loop_held_for_half_a_second_is_sampled_late(monkeypatch):
    monkeypatch.setattr(startup, "LOOP_LAG_TICK_SECONDS", 0.01)

    async def scenario() -> float:
        before = _over(0.25)
        await startup.watch_loop_lag()
        await asyncio.sleep(0.05)  # a few ticks on time
        time.sleep(0.5)  # the fault: the loop held, as by a long collection
        deadline = time.monotonic() + 10
        while _over(0.25) == before and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in asyncio.all_tasks():
            if task.get_name() == "stratops: event loop lag":
                task.cancel()
        return _over(0.25) - before

    assert asyncio.run(scenario()) >= 1
