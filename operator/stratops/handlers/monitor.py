"""The Monitor daemon: one per Monitor, evaluating at the monitor's own frequency."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from stratops import GROUP, VERSION
from stratops.controller.monitor import monitor_view
from stratops.controller.runtime import SAFETY_NET_SECONDS, strategy_key
from stratops.handlers import sharding
from stratops.k8s.monitoring import MonitorRunner
from stratops.models.common import parse_duration


async def monitor_daemon(
    name: str,
    namespace: str,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger,
    strategies_by_name: kopf.Index,
    **_: Any,
) -> None:
    runner: MonitorRunner = memo.monitors
    while not stopped:
        raw = monitor_view(body)
        if (raw["spec"].get("source") or {}).get("strategy"):
            # Evaluated by the strategy's daemon on every report (strategy_report_monitors).
            note = "evaluated by the operator on every report from the strategy (event-driven), not polled"
            if (raw.get("status") or {}).get("detail") != note:
                # Off the event loop: a slow API server must not stall every other handler.
                await asyncio.get_running_loop().run_in_executor(
                    memo.runtime.monitor_pool,
                    memo.runtime.executor.write_monitor_detail,
                    namespace,
                    name,
                    note,
                )
            await stopped.wait(SAFETY_NET_SECONDS)
            continue
        strategy = next(
            iter(strategies_by_name.get(strategy_key(namespace, raw["spec"].get("strategy", "")), [])), None
        )
        try:
            ev = await asyncio.get_running_loop().run_in_executor(memo.runtime.monitor_pool, runner.run, raw, strategy)
            if ev.finding:
                logger.warning(f"monitor finding: {ev.detail}")
        except Exception as e:  # an evaluation that cannot finish is retried next period
            logger.error(f"monitor evaluation failed: {e}")
        period = parse_duration(raw["spec"].get("frequency", "60s")).total_seconds()
        if strategy is None:  # look again soon: the strategy may be applied after its monitors
            period = min(period, 2.0)
        await stopped.wait(period)


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.daemon(GROUP, VERSION, "monitors", cancellation_timeout=10, when=sharding.of_a_strategy(), registry=registry)(
        monitor_daemon
    )
