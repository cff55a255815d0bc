"""The event loop's lateness (stratops.handlers.startup.watch_loop_lag): what a kill handled on
the loop waits for, whatever holds the loop."""

from __future__ import annotations

import asyncio
import time

from stratops import metrics as M
from stratops.handlers import startup


def _samples(over: float = -1.0) -> float:
    """Samples of stratops_event_loop_lag_seconds (above OVER, a bucket bound, if given)."""
    samples = M.EVENT_LOOP_LAG_SECONDS.collect()[0].samples
    count = sum(s.value for s in samples if s.name.endswith("_count"))
    if over < 0:
        return count
    return count - next(s.value for s in samples if s.name.endswith("_bucket") and float(s.labels["le"]) == over)


async def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within 10 s"
        await asyncio.sleep(0.01)  # the loop's own ticks must run meanwhile


def test_a_loop_held_for_half_a_second_is_sampled_late(monkeypatch):
    monkeypatch.setattr(startup, "LOOP_LAG_TICK_SECONDS", 0.01)

    async def scenario() -> float:
        before, late_before = _samples(), _samples(over=0.25)
        await startup.watch_loop_lag()
        await _until(lambda: _samples() > before, "tick on time")
        time.sleep(0.5)  # the fault: the loop held, as by a long collection
        await _until(lambda: _samples(over=0.25) > late_before, "late tick")
        for task in asyncio.all_tasks():
            if task.get_name() == "stratops: event loop lag":
                task.cancel()
        return _samples(over=0.25) - late_before

    assert asyncio.run(scenario()) >= 1
