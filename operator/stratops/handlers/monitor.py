"""Monitors: kopf's events put each Monitor on the one schedule (stratops.controller.monitor),
whose loop evaluates every monitor at its own frequency. No daemon per monitor."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import kopf

from stratops import GROUP, VERSION
from stratops.controller.monitor import MonitorScheduler, monitor_view
from stratops.handlers import kopf_fixes, ruler, sharding
from stratops.models.common import parse_duration

#: Report monitors are evaluated by the strategy's daemon on every report (strategy_report_monitors).
REPORT_NOTE = "evaluated by the operator on every report from the strategy (event-driven), not polled"


async def start_monitor_schedule(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    standalone = bool(settings.peering.standalone)
    rt = memo.runtime
    workers = int(os.environ.get("STRATOPS_MONITOR_WORKERS", "8"))
    in_flight = int(os.environ.get("STRATOPS_MONITOR_IN_FLIGHT", str(32 * workers)))
    # One source never holds every evaluation in flight: a quarter stays for the others.
    per_source = int(os.environ.get("STRATOPS_SOURCE_IN_FLIGHT", str(max(1, 3 * in_flight // 4))))
    memo.monitor_schedule = scheduler = MonitorScheduler(
        memo.monitors.run,
        workers,
        lambda: kopf_fixes.may_act(time.monotonic(), standalone),
        lambda ns: bool(kopf_fixes.relisting(ns)),
        forget=memo.monitors.forget,
        prefetch=lambda view, strategy, now: memo.monitors.prefetch(view, strategy, now, rt.monitor_pool),
        in_flight=in_flight,
        per_source=per_source,
    )
    memo.monitor_schedule_task = asyncio.get_running_loop().create_task(scheduler.run(), name="stratops: monitors")
    await ruler.serve(memo)


async def monitor_seen(
    type: str | None,
    name: str,
    namespace: str,
    body: kopf.Body,
    memo: kopf.Memo,
    logger: logging.Logger,
    strategies_by_name: kopf.Index,
    **_: Any,
) -> None:
    scheduler: MonitorScheduler = memo.monitor_schedule
    scheduler.strategies = strategies_by_name
    # No finalizer: the daemon per monitor of earlier releases put kopf's on every Monitor, and
    # kopf takes it off now that no handler of Monitors needs it (tests/e2e/test_monitors.py).
    if type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
        scheduler.gone(namespace, name)
        return
    view = monitor_view(body)
    if (view["spec"].get("source") or {}).get("strategy"):
        scheduler.gone(namespace, name)
        if (view.get("status") or {}).get("detail") != REPORT_NOTE:
            # Off the event loop: a slow API server must not stall every other handler.
            await asyncio.get_running_loop().run_in_executor(
                memo.runtime.monitor_pool, memo.runtime.executor.write_monitor_detail, namespace, name, REPORT_NOTE
            )
        return
    try:
        period = parse_duration(view["spec"].get("frequency", "60s")).total_seconds()
    except ValueError:
        period = 60.0  # the schema admits only durations: a default rather than no evaluation
    scheduler.seen(namespace, name, view, period, listed=type is None)


async def close_monitor_sources(memo: kopf.Memo, **_: Any) -> None:
    """The sources' connections on the event loop, closed as the operator stops."""
    await memo.monitors.aclose()


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(registry=registry)(start_monitor_schedule)
    kopf.on.cleanup(registry=registry)(close_monitor_sources)
    kopf.on.event(GROUP, VERSION, "monitors", when=sharding.of_a_strategy(), registry=registry)(monitor_seen)
