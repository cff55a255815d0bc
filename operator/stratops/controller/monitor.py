"""The Monitor controller's part outside the MonitorRunner (stratops.k8s.monitoring): what an
evaluation reads of its Monitor, and the one scheduler that evaluates every monitor (the
MonitorRunner evaluates each)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from stratops import metrics as M
from stratops.controller.runtime import log, plain, strategy_key
from stratops.controller.threads import HandbackThreads
from stratops.monitors.schedule import LATE_SECONDS, Schedule, Start

#: Monitors due within this of each other are started in one round of the loop.
TICK_SECONDS = LATE_SECONDS / 100


def monitor_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an evaluation reads of its Monitor, not the whole body: its managedFields are often
    larger than its spec, and were copied at every evaluation of thousands of monitors."""
    meta = body.get("metadata", {})
    return {
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation")},
        "spec": plain(body.get("spec") or {}),
        "status": plain(body.get("status") or {}),
    }


def source_of(view: Mapping[str, Any]) -> str | None:
    """The source a monitor reads (its Prometheus URL, or the operator's default): the lane
    its evaluations run in (stratops.monitors.schedule). None: it reads none."""
    prom = ((view.get("spec") or {}).get("source") or {}).get("prometheus")
    if not isinstance(prom, Mapping):
        return None
    return prom.get("url") or os.environ.get("STRATOPS_PROMETHEUS_URL") or None


def batch_of(view: Mapping[str, Any]) -> tuple[str | None, str, str] | None:
    """The batch a monitor is evaluated in: the monitors that read one desk-wide query of one
    source (source.prometheus.groupBy). The schedule starts those due soon together (its
    `_pull`), and one task reads and evaluates them (`_run_batch`). None: evaluated on its own."""
    prom = ((view.get("spec") or {}).get("source") or {}).get("prometheus")
    if not isinstance(prom, Mapping) or not prom.get("groupBy"):
        return None
    return source_of(view), str(prom.get("query")), str(prom["groupBy"])


#: A read made one after another in a batch that takes longer than this has waited on its
#: source (the batch's answer was not shared): the batch's other reads are made at once, not
#: one after another behind it.
BATCH_SERIAL_READ_SECONDS = 0.002

#: A batch's monitors evaluated by one worker call, at most: a large batch is shared among the
#: workers, and its first verdicts do not wait for its last.
BATCH_PER_CALL = 100

#: Prefetch(view, strategy, now): an evaluation's reads, made on the event loop (None: none).
Prefetch = Callable[[dict[str, Any], "dict[str, Any] | None", datetime], Awaitable[Any]]


class MonitorScheduler:
    """Every monitor of this operator evaluated at its own frequency by one loop and a bounded
    pool of workers (stratops.monitors.schedule): no kopf daemon, task or finalizer per monitor.

    With PREFETCH, an evaluation first makes its reads of the source on the event loop, then is
    evaluated over their answers in a worker: up to IN_FLIGHT evaluations wait on their sources
    at once, and the workers only compute and write. Without it, each evaluation is one call in
    a worker, and at most WORKERS are in flight. Of those, at most PER_SOURCE wait on one
    source (default: no bound): a source that never answers holds no more until its timeout, and
    the other sources' monitors go on. An evaluation whose reads were made ahead gives its place
    back before it is computed, so the bound binds on the source, not on the workers.

    kopf's event handler for Monitors puts each one as last seen (`seen`) and takes it off when
    it is deleted (`gone`). The loop evaluates only while this replica may act (peering, the
    fence), and a namespace's monitors only once its streams have listed again after a pause,
    so no evaluation decides on a status from before another replica's writes.
    """

    def __init__(
        self,
        evaluate: Callable[[dict[str, Any], dict[str, Any] | None], Any],
        workers: int,
        may_act: Callable[[], bool],
        relisting: Callable[[str], bool] = lambda ns: False,
        clock: Callable[[], float] = time.monotonic,
        late_seconds: float = LATE_SECONDS,
        forget: Callable[[str, str], None] = lambda ns, name: None,
        prefetch: Prefetch | None = None,
        in_flight: int | None = None,
        per_source: int | None = None,
    ) -> None:
        self.evaluate, self.prefetch = evaluate, prefetch
        #: WORKERS threads evaluate, handing results back in batches (stratops.controller.threads).
        self.threads = HandbackThreads(workers)
        #: Evaluations started and not finished, at most (the schedule's "workers").
        self.workers = max(1, in_flight if in_flight and prefetch is not None else workers)
        #: What the evaluator holds of a monitor that is gone (its last written status), dropped.
        self.forget = forget
        self.may_act, self.relisting, self.clock = may_act, relisting, clock
        self.schedule = Schedule(late_seconds, source_of, per_source, batch=batch_of if prefetch is not None else None)
        #: kopf's strategies_by_name index (a live mapping), handed over by the event handler.
        self.strategies: Mapping[Any, Any] = {}
        self.running = 0
        self._wake: asyncio.Event | None = None
        self._full = False  # the loop waits for an evaluation to end, not for a due time
        self._wake_at = 0.0  # when the loop wakes on its own (the clock's time)
        self._skipped = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def seen(self, namespace: str, name: str, view: dict[str, Any], period: float, listed: bool) -> None:
        """The monitor as kopf last saw it. LISTED: found by a listing (the operator's start, a
        resume), so spread over its period with the others found with it."""
        self.schedule.put((namespace, name), view, period, self.clock(), spread=listed)
        M.MONITORS_SCHEDULED.set(len(self.schedule))
        self._poke()

    def gone(self, namespace: str, name: str) -> None:
        self.schedule.remove((namespace, name))
        self.forget(namespace, name)
        M.MONITORS_SCHEDULED.set(len(self.schedule))

    def evaluate_now(self, namespace: str, name: str) -> None:
        """Evaluate NAME at once (the ruler's notification changed its finding)."""
        self.schedule.due_now((namespace, name), self.clock())
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _ready(self, key: tuple[str, str]) -> bool:
        return not self.relisting(key[0])

    def strategy_of(self, view: Mapping[str, Any]) -> dict[str, Any] | None:
        key = strategy_key(view["metadata"].get("namespace"), (view.get("spec") or {}).get("strategy", ""))
        return next(iter(self.strategies.get(key, [])), None)

    async def _read(self, start: Start, strategy: dict[str, Any] | None, now: datetime) -> Any:
        """START's reads made ahead (None: not made, it makes them itself). Once they are made it
        no longer waits on its source, and its place in its lane is given back."""
        try:
            answers = await self.prefetch(start.view, strategy, now)  # type: ignore[misc]
        except Exception as e:  # the evaluation makes its reads itself, as without prefetch
            log.debug("[%s/%s] reads not made ahead: %s", start.key[0], start.key[1], e)
            return None
        if answers is not None and self.schedule.lane_done(start.lane):
            self._poke()  # a monitor parked for that place is due again
        return answers

    async def _run_one(self, start: Start) -> None:
        strategy = self.strategy_of(start.view)
        lane = start.lane  # its place among those waiting on its source, given back once
        try:
            if self.prefetch is None:
                ev = await self.threads.run(self.evaluate, start.view, strategy)
            else:
                now = datetime.now(UTC)
                answers = await self._read(start, strategy, now)
                lane = None if answers is not None else lane
                ev = await self.threads.run(self.evaluate, start.view, strategy, now, answers)
            self._found(start, ev)
        except Exception as e:  # an evaluation that cannot finish is retried at its next beat
            log.error("[%s/%s] monitor evaluation failed: %s", start.key[0], start.key[1], e)
        finally:
            self._ended(start, strategy, lane)

    async def _run_batch(self, starts: list[Start]) -> None:
        """STARTS, of one batch (`batch_of`), read and evaluated together: their shared query is
        read once, and the others find its answer at once, so their reads are made one after
        another without a task each (a read that waits is followed by the rest at once); then
        worker calls of BATCH_PER_CALL evaluate them, one after another, each on its own. What
        each evaluation does and writes is what it does alone."""
        strategies = [self.strategy_of(s.view) for s in starts]
        lanes: list[Any] = [s.lane for s in starts]  # each place given back once: here or at the end
        answers: list[Any] = [None] * len(starts)

        async def read(i: int) -> None:
            answers[i] = await self._read(starts[i], strategies[i], now)
            if answers[i] is not None:
                lanes[i] = None

        try:
            now = datetime.now(UTC)
            for i in range(len(starts)):
                began = time.perf_counter()
                await read(i)
                if i and time.perf_counter() - began > BATCH_SERIAL_READ_SECONDS:
                    await asyncio.gather(*(read(j) for j in range(i + 1, len(starts))))
                    break
            calls = [(s.view, strategies[i], now, answers[i]) for i, s in enumerate(starts)]
            chunks = [calls[i : i + BATCH_PER_CALL] for i in range(0, len(calls), BATCH_PER_CALL)]
            results = [
                r
                for done in await asyncio.gather(*(self.threads.run(self._evaluate_each, c) for c in chunks))
                for r in done
            ]
            for start, (ok, value) in zip(starts, results, strict=True):
                if ok:
                    self._found(start, value)
                else:
                    log.error("[%s/%s] monitor evaluation failed: %s", start.key[0], start.key[1], value)
        except Exception as e:  # the batch's evaluations are retried at their next beats
            log.error("monitor batch of %d (%s/%s, ...) failed: %s", len(starts), *starts[0].key, e)
        finally:
            for i, start in enumerate(starts):
                self._ended(start, strategies[i], lanes[i])

    def _evaluate_each(self, calls: list[tuple[Any, ...]]) -> list[tuple[bool, Any]]:
        """Each call's evaluation, in a worker: its result, or the exception it ended in."""
        out: list[tuple[bool, Any]] = []
        for args in calls:
            try:
                out.append((True, self.evaluate(*args)))
            except Exception as e:  # one monitor's failure is its own: the batch's others go on
                out.append((False, e))
        return out

    def _found(self, start: Start, ev: Any) -> None:
        if getattr(ev, "finding", False):
            log.warning("[%s/%s] monitor finding: %s", start.key[0], start.key[1], ev.detail)

    def _ended(self, start: Start, strategy: dict[str, Any] | None, lane: Any) -> None:
        unparked = self.schedule.lane_done(lane)
        self.running -= 1
        # Look again soon for a strategy applied after its monitors.
        due = self.schedule.finished(start.key, self.clock(), 2.0 if strategy is None else None)
        if self.schedule.tally.skipped != self._skipped:
            M.MONITOR_EVALUATIONS.labels("skipped", "").inc(self.schedule.tally.skipped - self._skipped)
            self._skipped = self.schedule.tally.skipped
        # The loop is woken only where it would otherwise start something late: it waits for
        # a free place, a parked monitor is due again, or this one is due before the loop
        # wakes. Woken at every end, it went round once or twice per evaluation.
        if self._full or unparked or (due is not None and due < self._wake_at):
            self._poke()

    def _started(self, starts: list[Start]) -> None:
        """STARTS, taken in one round: a batch's (`batch_of`) in one task, the others one each."""
        batches: dict[Any, list[Start]] = {}
        for start in starts:
            if not start.first:
                M.MONITOR_EVALUATIONS.labels("late" if start.reason else "on_time", start.reason).inc()
                M.MONITOR_LATENESS_SECONDS.observe(max(0.0, start.late))
            self.running += 1
            batch = batch_of(start.view) if self.prefetch is not None else None
            if batch is None:
                self._task(self._run_one(start), start.key[1])
            else:
                batches.setdefault(batch, []).append(start)
        for members in batches.values():
            if len(members) == 1:
                self._task(self._run_one(members[0]), members[0].key[1])
            else:
                self._task(self._run_batch(members), f"{members[0].key[1]} and {len(members) - 1} more")

    def _task(self, run: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(run, name=f"stratops: monitor {what}")
        self._tasks.add(task)  # held until it ends: the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """For ever: start what is due, then sleep until the next due time, a new monitor or a
        finished evaluation."""
        self._wake = asyncio.Event()
        try:
            await self._loop()
        finally:
            self.threads.close()

    async def _loop(self) -> None:
        acting: bool | None = None  # None: not yet; False: paused since it acted
        while True:
            self._wake.clear()
            if not self.may_act():
                acting = False if acting else acting
                await self._sleep(0.5)
                continue
            now = self.clock()
            if acting is False:
                self.schedule.resume(now)  # due afresh: not late for the time another replica acted
            acting = True
            free = self.workers - self.running
            if free > 0:
                self._started(self.schedule.take(now, free, self._ready))
            due = self.schedule.next_due()
            self._full = False
            if due is None:
                wait = 1.0
            elif due > now:
                # Monitors due within a tick are started together: one round for them, not one
                # each (at thousands of evaluations a second, a round per monitor was most of
                # the loop's CPU). A tick is a hundredth of the lateness that counts as late.
                wait = min(max(due - now, TICK_SECONDS), 1.0)
            elif self.running >= self.workers:
                self._full = True  # an evaluation that ends wakes the loop
                wait = 1.0
            else:
                wait = 0.1  # due but held back: its namespace is being listed again
            self._wake_at = now + wait
            await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that comes
        # as the event is set (gh-86296), and the loop, poked at every finished evaluation,
        # then went on after the operator cancelled it.
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
