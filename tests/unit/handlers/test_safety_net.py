"""The Strategy daemon's safety net (stratops.handlers.strategy): a pass over inputs that have not
changed since a pass with nothing to do is skipped, so an idle fleet costs no decision; a poke, a
change of the Strategy or of anything it owns, a pending wake, or the full-pass period decides."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from stratops.controller.runtime import Runtime
from stratops.handlers import strategy as handler


class Stopped:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self, timeout: float | None = None) -> None:
        await self.event.wait()


def _drive(monkeypatch, script, *, wakes=None, full_pass=600.0, safety_net=0.02):
    """Run the daemon on a fake world; SCRIPT(world) is an async body changing it. Returns the
    passes decided (the body's resourceVersion and pods each saw)."""
    monkeypatch.setattr(handler, "SAFETY_NET_SECONDS", safety_net)
    monkeypatch.setattr(handler, "FULL_PASS_SECONDS", full_pass)
    decided: list[tuple[str, tuple]] = []
    wakes = list(wakes or [])

    def reconcile(body, rt, idx):
        decided.append((body["metadata"]["resourceVersion"], idx["strategy_pods"][("desk", "s")]))
        return wakes.pop(0) if wakes else None

    monkeypatch.setattr(handler, "reconcile", reconcile)

    async def main():
        pool = ThreadPoolExecutor(1)
        rt = SimpleNamespace(
            pokes={},
            daemons={},
            deleted=set(),
            written_control={},
            written_deployments={},
            lifecycle_pool=pool,
            resting={},
            sweep=None,
        )
        rt.executor = SimpleNamespace(strategies_known={("desk", "s"): "held"})
        rt.executor.forget_strategy = lambda ns, name: rt.executor.strategies_known.pop((ns, name), None)
        rt.poke = lambda key: rt.pokes[key].set() if key in rt.pokes else None
        world = SimpleNamespace(
            body={"metadata": {"name": "s", "namespace": "desk", "uid": "u1", "resourceVersion": "1"}},
            pods={("desk", "s"): ["p1"]},
            rt=rt,
            decided=decided,
        )
        stopped = Stopped()
        empty: dict = {}
        task = asyncio.get_running_loop().create_task(
            handler.strategy_daemon(
                name="s",
                namespace="desk",
                body=world.body,
                memo=SimpleNamespace(runtime=rt),
                stopped=stopped,
                logger=logging.getLogger("test"),
                strategy_deployments=empty,
                strategy_pods=world.pods,
                strategy_configmaps=empty,
                strategy_incidents=empty,
                strategy_gates=empty,
                strategy_report_monitors=empty,
            )
        )
        world.task = task
        try:
            await script(world)
        finally:
            stopped.event.set()
            rt.pokes.get(("desk", "s"), asyncio.Event()).set()
            await asyncio.wait_for(task, 5)
            pool.shutdown()
        assert rt.executor.strategies_known == {}, "the daemon's end forgets what it held of its Strategy"

    asyncio.run(main())
    return decided


async def _until(cond, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.005)


def _skipped() -> float:
    return REGISTRY.get_sample_value("stratops_reconciles_skipped_total") or 0.0


async def _safety_nets(n: int) -> None:
    """Until the daemon has skipped N more safety-net passes: what is under test is that none of
    them decides."""
    start = _skipped()
    await _until(lambda: _skipped() >= start + n)


def test_an_idle_strategy_is_decided_once_and_its_safety_net_passes_are_skipped(monkeypatch):
    async def script(w):
        await _until(lambda: len(w.decided) == 1)
        await _safety_nets(20)

    assert len(_drive(monkeypatch, script)) == 1


def test_a_change_to_what_it_owns_is_decided_on_at_the_next_safety_net_even_unpoked(monkeypatch):
    async def script(w):
        await _until(lambda: len(w.decided) == 1)
        w.pods[("desk", "s")] = ["p1", "p2"]  # an index change whose poke was lost
        await _until(lambda: len(w.decided) == 2)
        w.body["metadata"]["resourceVersion"] = "2"  # the Strategy itself changed
        await _until(lambda: len(w.decided) == 3)
        await _safety_nets(10)

    decided = _drive(monkeypatch, script)
    assert [rv for rv, _ in decided] == ["1", "1", "2"] and decided[1][1] == ("p1", "p2")


def test_a_poke_decides_even_over_unchanged_inputs(monkeypatch):
    async def script(w):
        await _until(lambda: len(w.decided) == 1)
        w.rt.pokes[("desk", "s")].set()  # e.g. a gate's status changed: read again at this time
        await _until(lambda: len(w.decided) == 2)

    assert len(_drive(monkeypatch, script)) == 2


def test_a_pass_that_asked_for_a_wake_is_followed_by_one(monkeypatch):
    async def script(w):
        await _until(lambda: len(w.decided) == 3)  # wakes 0.01, 0.01, then nothing asked
        await _safety_nets(10)

    assert len(_drive(monkeypatch, script, wakes=[0.01, 0.01])) == 3


@pytest.mark.parametrize("full_pass", [0.0])
def test_a_full_pass_is_made_every_full_pass_period_anyway(monkeypatch, full_pass):
    async def script(w):
        await _until(lambda: len(w.decided) >= 5)

    assert len(_drive(monkeypatch, script, full_pass=full_pass)) >= 5


def test_an_idle_strategy_s_daemon_sleeps_through_the_sweeps_that_look_at_it(monkeypatch):
    """Issue 21: at 1,000 idle strategies the daemons' own safety-net wakes (one per strategy per
    minute, each a snapshot and two futures on the event loop) were most of the idle CPU. One
    sweep looks at every resting strategy instead; the daemon itself does not wake."""
    sleeps = []
    real = handler.sleep_until_poked

    async def counted(poke, stopped, timeout):
        sleeps.append(timeout)
        await real(poke, stopped, timeout)

    monkeypatch.setattr(handler, "sleep_until_poked", counted)

    async def script(w):
        await _until(lambda: len(w.decided) == 1)
        await _safety_nets(20)  # twenty looks by the sweep, none deciding

    assert len(_drive(monkeypatch, script)) == 1
    assert len(sleeps) <= 2, f"the daemon woke {len(sleeps)} times while idle"


def test_a_new_strategy_s_first_pass_decides_at_once(monkeypatch):
    """Issue 21: kopf puts no finalizer on a Strategy (stratops.handlers.strategy.register), so
    no patch of its follows a new one, and the first pass waits for none (it slept up to 2 s for
    a poke). Told by structure, not time: the daemon does not sleep before its first decision,
    and nothing pokes it."""
    decided_at_sleep: list[int] = []
    real = handler.sleep_until_poked
    world = {}

    async def counted(poke, stopped, timeout):
        decided_at_sleep.append(len(world["w"].decided))
        await real(poke, stopped, timeout)

    monkeypatch.setattr(handler, "sleep_until_poked", counted)

    async def script(w):
        world["w"] = w
        await _until(lambda: len(w.decided) == 1, seconds=60.0)
        await _until(lambda: decided_at_sleep)  # it rests after the pass

    [(rv, _)] = _drive(monkeypatch, script)
    assert rv == "1" and decided_at_sleep[0] == 1, "the daemon slept before its first pass"


def test_a_deleted_strategy_s_daemon_ends_and_leaves_a_new_one_of_its_name_alone(monkeypatch):
    """No finalizer holds a Strategy for kopf to stop its daemon: its DELETED event does. The
    daemon of a Strategy of the same name, made before the old one ended, keeps its poke."""

    async def script(w):
        await _until(lambda: len(w.decided) == 1)
        newer = asyncio.Event()
        w.rt.pokes[("desk", "s")] = newer  # a Strategy of the same name made since: its daemon's
        Runtime.deleted_strategy(w.rt, "u1")  # the old one's DELETED event
        Runtime.deleted_strategy(w.rt, "u2")  # one without a daemon here: nothing to end
        await asyncio.wait_for(w.task, 5)
        assert w.rt.pokes == {("desk", "s"): newer}
        assert w.rt.daemons == {} and w.rt.deleted == set()

    assert len(_drive(monkeypatch, script)) == 1
