"""The scheduler loop (stratops.controller.monitor.MonitorScheduler) with a real thread pool and
the real clock: every monitor evaluated at its frequency by a bounded pool, only while this
replica may act, a namespace held while it is listed again, a deleted monitor never again."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time

import pytest

from stratops.controller.monitor import MonitorScheduler


class Recorder:
    def __init__(self, seconds: float = 0.0, fail: set[str] | None = None) -> None:
        self.seconds, self.fail = seconds, fail or set()
        self.calls: list[tuple[str, float, object]] = []
        self.running = self.most = 0
        self.lock = threading.Lock()

    def __call__(self, view: dict, strategy: dict | None, now: object = None, answers: object = None) -> None:
        # NOW and ANSWERS: what the scheduler passes when it reads ahead (prefetch).
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.calls.append((view["metadata"]["name"], time.monotonic(), strategy))
        try:
            if self.seconds:
                time.sleep(self.seconds)  # the evaluation's own work, in its worker thread
            if view["metadata"]["name"] in self.fail:
                raise RuntimeError("source away")
        finally:
            with self.lock:
                self.running -= 1

    def of(self, name: str) -> list[float]:
        with self.lock:
            return [t for n, t, _ in self.calls if n == name]


def _view(name: str, ns: str = "desk", strategy: str = "s") -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"strategy": strategy}}


async def _until(cond, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _run(body, **kwargs):
    async def main():
        rec = kwargs.pop("recorder", None) or Recorder()
        sched = MonitorScheduler(rec, kwargs.pop("workers", 4), **kwargs)
        sched.strategies = {("desk", "s"): [{"spec": {}}]}
        task = asyncio.get_running_loop().create_task(sched.run())
        try:
            await body(sched, rec)
        finally:
            task.cancel()
            threads = list(sched.threads._threads)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for t in threads:  # the evaluations under way end before the next test
                t.join(10)

    asyncio.run(main())


def test_each_monitor_is_evaluated_at_its_own_frequency():
    async def body(sched, rec):
        sched.seen("desk", "fast", _view("fast"), 0.1, listed=False)
        sched.seen("desk", "slow", _view("slow"), 0.5, listed=False)
        await _until(lambda: len(rec.of("slow")) >= 3)
        fast, slow = rec.of("fast"), rec.of("slow")
        # About five fast beats per slow one; each at most one beat apart (fixed rate).
        assert len(fast) >= 3 * len(slow)
        assert max(b - a for a, b in itertools.pairwise(fast)) < 0.5
        assert all(s == {"spec": {}} for _, _, s in rec.calls)  # the strategy from the index

    _run(body, may_act=lambda: True)


def test_no_more_evaluations_at_once_than_workers():
    rec = Recorder(seconds=0.05)

    async def body(sched, rec):
        for i in range(12):
            sched.seen("desk", f"m{i}", _view(f"m{i}"), 0.05, listed=False)
        await _until(lambda: len(rec.calls) >= 60)
        assert rec.most <= 3
        # More due than workers: late starts say so.
        assert sched.schedule.tally.late.get("workers", 0) + sched.schedule.tally.skipped > 0

    _run(body, may_act=lambda: True, recorder=rec, workers=3)


def test_nothing_is_evaluated_while_another_replica_acts():
    acting = {"now": False, "looks": 0}

    def may_act() -> bool:
        acting["looks"] += 1  # each look is one turn of the loop
        return acting["now"]

    async def looked(times: int) -> None:
        """Until the loop has looked at may_act TIMES more: turns in which it could have acted."""
        start = acting["looks"]
        await _until(lambda: acting["looks"] >= start + times)

    async def body(sched, rec):
        sched.seen("desk", "m", _view("m"), 0.05, listed=False)
        await looked(3)
        assert rec.calls == []
        acting["now"] = True
        await _until(lambda: len(rec.calls) >= 2)
        acting["now"] = False
        await looked(2)  # the turn that saw the pause may have started one more
        stopped = len(rec.calls)
        await looked(3)
        assert len(rec.calls) == stopped

    _run(body, may_act=may_act)


def test_a_namespace_being_listed_again_is_held_and_the_others_go_on():
    listing = {"desk"}

    async def body(sched, rec):
        sched.seen("desk", "held", _view("held"), 0.05, listed=False)
        sched.seen("other", "free", _view("free", ns="other"), 0.05, listed=False)
        await _until(lambda: len(rec.of("free")) >= 3)
        assert rec.of("held") == []
        listing.clear()
        await _until(lambda: len(rec.of("held")) >= 1)

    _run(body, may_act=lambda: True, relisting=lambda ns: ns in listing)


def test_a_deleted_monitor_is_not_evaluated_again_and_a_failing_one_does_not_stop_the_others():
    async def body(sched, rec):
        sched.seen("desk", "gone", _view("gone"), 0.05, listed=False)
        sched.seen("desk", "broken", _view("broken"), 0.05, listed=False)
        await _until(lambda: len(rec.of("gone")) >= 2 and len(rec.of("broken")) >= 3)
        sched.gone("desk", "gone")
        after = len(rec.of("gone"))
        n = len(rec.of("broken"))
        await _until(lambda: len(rec.of("broken")) >= n + 5)
        assert len(rec.of("gone")) <= after + 1  # one may have been running when it went
        assert len(sched.schedule) == 1
        assert forgotten == [("desk", "gone")], "what the evaluator held of it is dropped"

    forgotten: list[tuple[str, str]] = []
    _run(
        body,
        may_act=lambda: True,
        recorder=Recorder(fail={"broken"}),
        forget=lambda ns, name: forgotten.append((ns, name)),
    )


def test_a_monitor_of_a_strategy_not_there_yet_is_looked_at_again_within_two_seconds():
    async def body(sched, rec):
        sched.strategies = {}
        sched.seen("desk", "early", _view("early", strategy="later"), 3600.0, listed=False)
        await _until(lambda: len(rec.of("early")) >= 1)
        sched.strategies = {("desk", "later"): [{"spec": {"x": 1}}]}
        await _until(lambda: len(rec.of("early")) >= 2, seconds=5.0)
        assert rec.calls[-1][2] == {"spec": {"x": 1}}

    _run(body, may_act=lambda: True)


@pytest.mark.parametrize("listed", [True, False])
def test_an_update_keeps_the_beat_and_hands_the_newest_view(listed):
    seen: list[dict] = []

    class Keep(Recorder):
        def __call__(self, view, strategy):
            seen.append(view)
            super().__call__(view, strategy)

    async def body(sched, rec):
        sched.seen("desk", "m", _view("m"), 0.1, listed=listed)
        await _until(lambda: len(seen) >= 1, seconds=10.0)
        newer = {**_view("m"), "status": {"incident": "i-1"}}
        sched.seen("desk", "m", newer, 0.1, listed=False)
        await _until(lambda: seen[-1] is newer)
        assert len(sched.schedule) == 1

    _run(body, may_act=lambda: True, recorder=Keep())


def test_evaluations_waiting_on_their_source_hold_no_worker():
    """With prefetch (issue 21: async HTTP), an evaluation waits for its source's answer on the
    event loop: twelve monitors whose source answers only once all twelve wait on it, one
    worker, and each evaluated over its own answers in the worker, with the same time."""
    waiting = {"now": 0, "most": 0}
    seen: list[tuple[str, object]] = []
    answer = asyncio.Event()  # the source answers when the test lets it

    class Evaluate(Recorder):
        def __call__(self, view, strategy, now=None, answers=None):  # type: ignore[override]
            seen.append((view["metadata"]["name"], answers))
            assert answers == {"read at": now}
            super().__call__(view, strategy)

    async def prefetch(view, strategy, now):
        waiting["now"] += 1
        waiting["most"] = max(waiting["most"], waiting["now"])
        try:
            await answer.wait()
        finally:
            waiting["now"] -= 1
        return {"read at": now}

    async def body(sched, rec):
        for i in range(12):
            sched.seen("desk", f"m{i}", _view(f"m{i}"), 60, listed=False)
        await _until(lambda: waiting["now"] == 12)  # all twelve wait at once: none holds the worker
        assert not rec.calls
        answer.set()
        await _until(lambda: len(rec.calls) >= 12)
        assert waiting["most"] == 12 and rec.most == 1
        assert sorted(n for n, _ in seen) == sorted(f"m{i}" for i in range(12))

    _run(body, may_act=lambda: True, recorder=Evaluate(), workers=1, prefetch=prefetch, in_flight=16)


def test_a_failed_prefetch_leaves_the_reads_to_the_evaluation():
    calls: list[object] = []

    class Evaluate(Recorder):
        def __call__(self, view, strategy, now=None, answers="unset"):  # type: ignore[override]
            calls.append(answers)
            super().__call__(view, strategy)

    async def prefetch(view, strategy, now):
        raise RuntimeError("token Secret not found")

    async def body(sched, rec):
        sched.seen("desk", "m", _view("m"), 60, listed=False)
        await _until(lambda: len(rec.calls) >= 1)
        assert calls == [None]

    _run(body, may_act=lambda: True, recorder=Evaluate(), workers=1, prefetch=prefetch)


def test_a_source_that_never_answers_does_not_hold_up_the_other_sources_monitors():
    """Issue 21: in-flight places bounded per source, over real loopback sockets. One source
    accepts connections and never answers (a listening socket nobody accepts from); six of its
    monitors are due first, then two of a source that answers. With four places and three per
    source, the answering source's monitors are evaluated again and again while the hung one's
    wait out their 60 s timeout. With no bound per source, the hung source took all four and
    the others were never evaluated."""
    import json
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from stratops.monitors.prometheus import AsyncPrometheus, SourceUnavailable

    class Answers(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    answering = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=answering.serve_forever, daemon=True).start()
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel completes the handshakes; nobody reads or answers
    urls = {
        "hung": f"http://127.0.0.1:{hung.getsockname()[1]}",
        "ok": f"http://{answering.server_address[0]}:{answering.server_address[1]}",
    }
    sources: dict[str, AsyncPrometheus] = {}
    reading = {"hung": 0}

    def view(name: str, source: str) -> dict:
        return {
            "metadata": {"name": name, "namespace": "desk"},
            "spec": {"strategy": "s", "source": {"prometheus": {"url": urls[source]}}},
        }

    async def prefetch(view, strategy, now):
        url = view["spec"]["source"]["prometheus"]["url"]
        prom = sources.setdefault(url, AsyncPrometheus(url, timeout=60.0, connections=20))
        hung_one = url == urls["hung"]
        reading["hung"] += hung_one
        try:
            return {"up": await prom.query("up", now)}
        except SourceUnavailable as e:
            return {"up": e}
        finally:
            reading["hung"] -= hung_one

    async def body(sched, rec):
        try:
            for i in range(6):
                sched.seen("desk", f"hung{i}", view(f"hung{i}", "hung"), 1.0, listed=False)
            await _until(lambda: reading["hung"] >= 3)
            for i in range(2):
                sched.seen("desk", f"ok{i}", view(f"ok{i}", "ok"), 0.2, listed=False)
            await _until(lambda: len(rec.of("ok0")) >= 3 and len(rec.of("ok1")) >= 3)
            assert reading["hung"] == 3 and not any(rec.of(f"hung{i}") for i in range(6))
            assert sched.schedule.parked() >= 3
        finally:
            for prom in sources.values():
                await prom.aclose()

    try:
        _run(body, may_act=lambda: True, workers=2, prefetch=prefetch, in_flight=4, per_source=3)
    finally:
        answering.shutdown()
        answering.server_close()
        hung.close()


def test_an_evaluation_whose_reads_are_made_gives_its_source_place_back_before_it_computes():
    """The bound per source is on waiting for the source, not on the workers: with one place per
    source and one worker held by a long computation, the source's other monitors still make
    their reads. (Held to the end of each evaluation, the bound made a busy pool look like a
    busy source: 1,677 starts late for `source` in the 1,000-strategy bench.)"""
    made: list[str] = []
    go = threading.Event()

    class Evaluate(Recorder):
        def __call__(self, view, strategy, now=None, answers=None):  # type: ignore[override]
            go.wait(10)  # the computation, until the test has seen the reads
            super().__call__(view, strategy)

    async def prefetch(view, strategy, now):
        made.append(view["metadata"]["name"])
        return {"read at": now}

    def view(name: str) -> dict:
        return {
            "metadata": {"name": name, "namespace": "desk"},
            "spec": {"strategy": "s", "source": {"prometheus": {"url": "http://one-source"}}},
        }

    async def body(sched, rec):
        try:
            for i in range(3):
                sched.seen("desk", f"m{i}", view(f"m{i}"), 60, listed=False)
            await _until(lambda: len(made) == 3, seconds=5)
            assert not rec.calls  # all three read while the first still computes
        finally:
            go.set()
        await _until(lambda: len(rec.calls) == 3)

    _run(body, may_act=lambda: True, recorder=Evaluate(), workers=1, prefetch=prefetch, in_flight=8, per_source=1)


def test_the_loop_ends_when_cancelled_while_evaluations_keep_finishing():
    """The operator's cleanup cancels the loop. Each finished evaluation wakes it; a cancellation
    that came as it was woken was dropped by Python 3.11's asyncio.wait_for, and the loop went on
    evaluating after the operator had stopped it."""

    async def main():
        for _ in range(5):
            rec = Recorder()
            sched = MonitorScheduler(rec, 2, may_act=lambda: True)
            sched.strategies = {("desk", "s"): [{"spec": {}}]}
            task = asyncio.get_running_loop().create_task(sched.run())
            for i in range(20):
                sched.seen("desk", f"m{i}", _view(f"m{i}"), 0.001, listed=False)
            await _until(lambda r=rec: len(r.calls) >= 200)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert task in done, "the loop went on after it was cancelled"

    asyncio.run(main())


def test_monitors_due_together_start_in_one_round_and_an_end_wakes_the_loop_only_when_needed():
    """At thousands of evaluations a second, a round of the loop per evaluation (woken by every
    end) was most of its CPU. 200 monitors due every 50 ms: far fewer rounds than evaluations."""
    rounds = {"n": 0}

    async def body(sched, rec):
        take = sched.schedule.take

        def counted(*args, **kwargs):
            rounds["n"] += 1
            return take(*args, **kwargs)

        sched.schedule.take = counted
        for i in range(200):
            sched.seen("desk", f"m{i}", _view(f"m{i}"), 0.05, listed=True)
        await _until(lambda: len(rec.calls) >= 4000)
        assert rounds["n"] < len(rec.calls) / 4, (rounds["n"], len(rec.calls))

    async def prefetch(view, strategy, now):
        return {}

    _run(body, may_act=lambda: True, workers=4, prefetch=prefetch, in_flight=400)


def test_an_evaluation_that_ends_while_every_place_is_taken_starts_the_next_at_once():
    """One place, five monitors due together: each end wakes the loop for the next, so none
    waits out the loop's one-second sleep."""

    async def prefetch(view, strategy, now):
        return {}

    async def body(sched, rec):
        for i in range(5):
            sched.seen("desk", f"m{i}", _view(f"m{i}"), 60, listed=False)
        await _until(lambda: len(rec.calls) >= 5)
        times = sorted(t for _, t, _ in rec.calls)
        assert times[-1] - times[0] < 0.5, times

    _run(body, may_act=lambda: True, workers=1, prefetch=prefetch, in_flight=1)


def _batch_view(name: str, query: str = "sum by (strategy) (q)", group_by: str | None = "strategy") -> dict:
    prom = {"url": "http://one-source", "query": query}
    if group_by:
        prom["groupBy"] = group_by
    return {"metadata": {"name": name, "namespace": "desk"}, "spec": {"strategy": "s", "source": {"prometheus": prom}}}


def test_a_batch_due_in_one_round_is_read_once_and_evaluated_in_one_worker_call():
    """Issue 21, evaluate in batches: monitors that read one desk-wide query (groupBy) and are
    due together are read by one task and evaluated by one worker call, each over the batch's
    answer, with what it is given alone (its own view and strategy, the batch's time). A monitor
    of another query, and one not grouped, are evaluated on their own. Every place in the
    source's lane is given back: with six places, the batch of six is evaluated again and again."""
    from stratops.monitors.prometheus import AsyncSharedQueries

    shared, answer, sent = AsyncSharedQueries(), asyncio.Event(), []
    given: list[tuple[str, object, object]] = []

    class Source:
        async def query(self, expr):
            sent.append(expr)
            await answer.wait()  # the desk-wide answer, when the test lets it come
            return [f"series of {expr}"]

    class Evaluate(Recorder):
        def __call__(self, view, strategy, now=None, answers=None):  # type: ignore[override]
            given.append((view["metadata"]["name"], now, answers))
            super().__call__(view, strategy)

    async def prefetch(view, strategy, now):
        prom = view["spec"]["source"]["prometheus"]
        if not prom.get("groupBy"):
            return {"read": f"own read of {view['metadata']['name']}"}
        return {"read": await shared.query(Source(), prom["query"], 30.0)}

    async def body(sched, rec):
        calls = []
        run = sched.threads.run

        def counted(fn, *args):
            calls.append(len(args[0]) if fn == sched._evaluate_each else 1)
            return run(fn, *args)

        sched.threads.run = counted
        for i in range(6):
            sched.seen("desk", f"m{i}", _batch_view(f"m{i}"), 60, listed=False)
        sched.seen("desk", "other", _batch_view("other", query="max by (strategy) (q)"), 60, listed=False)
        sched.seen("desk", "alone", _batch_view("alone", group_by=None), 60, listed=False)
        await _until(lambda: len(rec.calls) >= 1)  # the one not grouped does not wait on the answer
        answer.set()
        await _until(lambda: len(rec.calls) >= 8)
        assert sorted(calls) == [1, 1, 6], calls  # one call for the batch of six
        assert sorted(sent) == ["max by (strategy) (q)", "sum by (strategy) (q)"]  # one read per query
        batch = [g for g in given if g[0].startswith("m")]
        assert sorted(n for n, _, _ in batch) == [f"m{i}" for i in range(6)]
        assert len({now for _, now, _ in batch}) == 1
        assert all(a == {"read": ["series of sum by (strategy) (q)"]} for _, _, a in batch)
        assert [a for n, _, a in given if n == "alone"] == [{"read": "own read of alone"}]
        for i in range(6):  # again: with a place of the batch not given back, some would wait for ever
            sched.schedule.due_now(("desk", f"m{i}"), sched.clock())
        sched._poke()
        await _until(lambda: all(len(rec.of(f"m{i}")) >= 2 for i in range(6)))

    _run(body, may_act=lambda: True, recorder=Evaluate(), workers=4, prefetch=prefetch, in_flight=16, per_source=8)


def test_a_failing_monitor_of_a_batch_does_not_stop_the_others():
    """One evaluation that raises is that monitor's own failure (retried at its next beat): the
    batch's other monitors are evaluated, and again at every beat."""

    async def prefetch(view, strategy, now):
        return {"read at": now}

    async def body(sched, rec):
        for i in range(4):
            sched.seen("desk", f"m{i}", _batch_view(f"m{i}"), 0.2, listed=False)
        await _until(lambda: all(len(rec.of(f"m{i}")) >= 3 for i in range(4)))

    _run(body, may_act=lambda: True, recorder=Recorder(fail={"m1"}), workers=2, prefetch=prefetch, in_flight=16)


def test_a_read_that_waits_in_a_batch_sends_the_others_at_once():
    """A batch's reads are made one after another only while they find a shared answer at once:
    a read that waits on its source (not shared, a baseline) sends the batch's remaining reads
    together, so a batch of ten waits about two reads, not ten in a row."""
    reading = {"now": 0, "most": 0}

    async def prefetch(view, strategy, now):
        reading["now"] += 1
        reading["most"] = max(reading["most"], reading["now"])
        try:
            await asyncio.sleep(0.05)  # a read of its own
        finally:
            reading["now"] -= 1
        return {"read at": now}

    async def body(sched, rec):
        for i in range(10):
            sched.seen("desk", f"m{i}", _batch_view(f"m{i}"), 60, listed=False)
        await _until(lambda: len(rec.calls) >= 10)
        assert reading["most"] == 8  # the first two one after the other, then the other eight at once

    _run(body, may_act=lambda: True, workers=2, prefetch=prefetch, in_flight=16)
