"""The Strategy daemon: the single writer of its Strategy. It sleeps until poked or until the
time the last decision asked to be woken, then hands a snapshot to the controller."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from stratops import GROUP, VERSION
from stratops import metrics as M
from stratops.controller.runtime import SAFETY_NET_SECONDS, Runtime, plain, strategy_key
from stratops.controller.strategy import brief, reconcile, snapshot
from stratops.handlers import kopf_fixes, sharding
from stratops.k8s.executor import namespace_terminating

#: A safety-net pass over the same inputs as a pass that decided nothing and asked for no wake
#: is skipped (a decision changes with the clock only where it asks to be woken: the property
#: test tests/unit/lifecycle/test_time_independence.py); one is made at least this often anyway.
FULL_PASS_SECONDS = float(os.environ.get("STRATOPS_RESYNC_FULL_SECONDS", "600"))


async def sleep_until_poked(poke: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float) -> None:
    """Until poked, stopped, or TIMEOUT seconds: a daemon's wait between passes."""
    waiters = [asyncio.ensure_future(poke.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _until(work: Coroutine[Any, Any, None], stopped: kopf.DaemonStopped) -> None:
    """WORK, or until the daemon is stopped, whichever comes first."""
    waiters = [asyncio.ensure_future(work), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def unchanged(body: kopf.Body, indexes: dict[str, Any], key: tuple[str, str], inputs: Any) -> Callable[[], bool]:
    """Whether the Strategy and everything it owns are still as in INPUTS, (resourceVersion,
    snapshot): called on the event loop, where kopf changes its indexes."""
    return lambda: (body.get("metadata", {}).get("resourceVersion"), snapshot(indexes, [key])) == inputs


async def rest(
    rt: Runtime,
    key: tuple[str, str],
    poke: asyncio.Event,
    stopped: kopf.DaemonStopped,
    until: float,
    unchanged: Callable[[], bool],
) -> None:
    """An idle strategy's wait: until poked, stopped, or UNTIL (monotonic), and looked at by the
    sweep meanwhile. One sweep for the fleet, not a wake per strategy: at 1,000 idle strategies the
    daemons' own safety-net wakes were most of the operator's idle CPU."""
    rt.resting[key] = unchanged
    if rt.sweep is None or rt.sweep.done():
        rt.sweep = asyncio.get_running_loop().create_task(sweep(rt), name="stratops: idle strategies' sweep")
    try:
        await sleep_until_poked(poke, stopped, max(0.0, until - time.monotonic()))
    finally:
        if rt.resting.get(key) is unchanged:  # not a Strategy of the same name made since
            rt.resting.pop(key, None)


async def sweep(rt: Runtime) -> None:
    """For ever, every SAFETY_NET_SECONDS: poke each resting strategy whose inputs changed
    without a poke (a lost one); the others' looks are counted as skipped passes. Yields to the
    event loop between strategies in batches, so a kill's poke never waits behind the sweep."""
    while True:
        await asyncio.sleep(SAFETY_NET_SECONDS)
        for i, (key, still) in enumerate(list(rt.resting.items())):
            if i and i % 100 == 0:
                await asyncio.sleep(0)
            if rt.resting.get(key) is not still:
                continue  # woke meanwhile
            if still():
                M.RECONCILES_SKIPPED.inc()
            else:
                rt.poke(key)


async def strategy_daemon(
    name: str,
    namespace: str,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger,
    strategy_deployments: kopf.Index,
    strategy_pods: kopf.Index,
    strategy_configmaps: kopf.Index,
    strategy_incidents: kopf.Index,
    strategy_gates: kopf.Index,
    strategy_report_monitors: kopf.Index,
    **_: Any,
) -> None:
    rt: Runtime = memo.runtime
    key = strategy_key(namespace, name)
    uid = body.get("metadata", {}).get("uid")
    # Its own: the daemon of a Strategy of the same name, deleted just before, may not have
    # ended yet (no finalizer waits for it), and must not take this one's pokes with it.
    poke = rt.pokes[key] = asyncio.Event()
    if uid:
        rt.daemons[uid] = poke
    indexes = {
        "strategy_deployments": strategy_deployments,
        "strategy_pods": strategy_pods,
        "strategy_configmaps": strategy_configmaps,
        "strategy_incidents": strategy_incidents,
        "strategy_gates": strategy_gates,
        "strategy_report_monitors": strategy_report_monitors,
    }
    backoff, conflicts, missing = 1.0, 0, False
    resting: Any = None  # (resourceVersion, snapshot) a pass decided nothing on, with no wake
    decided_at = 0.0
    try:
        if waiting := kopf_fixes.relisting(namespace):
            # Resumed after a pause (another replica was acting): the indexes are as they were
            # then until the listings end. Deciding on them would act on a past desk.
            logger.info(f"not deciding until the indexes are listed again after the pause: {', '.join(waiting)}")
            await _until(kopf_fixes.relisted(namespace), stopped)
        # No finalizer holds a Strategy for this daemon (see register): its DELETED event ends it.
        while not stopped and uid not in rt.deleted:
            poked = poke.is_set()
            poke.clear()
            # kopf changes its indexes on the event loop: the worker thread gets a copy of this
            # strategy's entries, taken here, never the live stores.
            idx = snapshot(indexes, [key])
            inputs = (body.get("metadata", {}).get("resourceVersion"), idx)
            if not poked and inputs == resting and time.monotonic() - decided_at < FULL_PASS_SECONDS:
                # Idle: nothing changed since a pass that had nothing to do (a wake before the
                # sweep or the full pass found a reason). Rest again.
                await rest(
                    rt, key, poke, stopped, decided_at + FULL_PASS_SECONDS, unchanged(body, indexes, key, inputs)
                )
                continue
            resting = None
            try:
                wake = await asyncio.get_running_loop().run_in_executor(
                    rt.lifecycle_pool, reconcile, plain(body), rt, idx
                )
                decided_at = time.monotonic()
                resting = inputs if wake is None else None
                backoff, conflicts, missing = 1.0, 0, False
            except Exception as e:  # logged, counted, retried with backoff
                if namespace_terminating(e):
                    # Its namespace is going, and the Strategy with it: nothing to act on.
                    logger.info("not acting: the namespace is being deleted")
                    await sleep_until_poked(poke, stopped, SAFETY_NET_SECONDS)
                    continue
                if isinstance(e, ApiException) and e.status == 404 and not missing:
                    # The Strategy may be gone, its DELETED event on its way (no finalizer holds
                    # it): that event ends the daemon. Looked at again once before it is a failure.
                    missing = True
                    await sleep_until_poked(poke, stopped, 1.0)
                    continue
                if isinstance(e, ApiException) and e.status == 409 and conflicts < 5:
                    # The Strategy changed between reading and writing its status (kopf's own
                    # annotations, a user's edit): decide again on the new one, soon. Whatever
                    # was written before the status is idempotent (stratops.k8s.executor).
                    conflicts += 1
                    logger.debug(f"status changed meanwhile (conflict {conflicts}): deciding again")
                    await sleep_until_poked(poke, stopped, 0.1 * 2**conflicts)
                    continue
                M.RECONCILE_ERRORS.labels(namespace, name).inc()
                logger.warning(f"reconcile failed, retrying in {backoff:.0f}s: {brief(e)}")
                wake, backoff = backoff, min(backoff * 2, 60.0)
            if resting is not None:
                # Nothing to do and no wake asked: the decision holds until something changes
                # (tests/unit/lifecycle/test_time_independence.py). A poke says what changed; the
                # sweep finds a change whose poke was lost; the full pass is the last resort.
                await rest(
                    rt, key, poke, stopped, decided_at + FULL_PASS_SECONDS, unchanged(body, indexes, key, resting)
                )
            else:
                await sleep_until_poked(
                    poke, stopped, SAFETY_NET_SECONDS if wake is None else min(wake, SAFETY_NET_SECONDS)
                )
    finally:
        rt.daemons.pop(uid, None)
        rt.deleted.discard(uid)
        if rt.pokes.get(key) is poke:  # not a Strategy of the same name made since
            rt.pokes.pop(key, None)
        rt.written_control.pop(key, None)
        rt.written_deployments.pop(key, None)
        rt.executor.forget_strategy(namespace, name)


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.daemon(GROUP, VERSION, "strategies", cancellation_timeout=10, when=sharding.strategies(), registry=registry)(
        strategy_daemon
    )
    # kopf puts a finalizer on every object with a daemon, to stop the daemon before the object
    # goes: a patch per new Strategy (issue 21: one of its API requests), and a first pass that
    # waited for it. Nothing of a Strategy needs the operator at its end (its Deployment, pods and
    # identity go with it by their owner references; its audit trail stays), and its DELETED
    # event ends the daemon (stratops.handlers.indexes.strategy_changed). kopf takes the
    # finalizer an earlier release put on each Strategy off at its next event.
    kopf_fixes.without_finalizer(registry, strategy_daemon)
