"""The Gate daemon: its status re-evaluated on change and at expiry."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from stratops import GROUP, VERSION
from stratops import metrics as M
from stratops.controller.gate import gate_status
from stratops.controller.runtime import SAFETY_NET_SECONDS, Runtime, plain, strategy_key
from stratops.controller.strategy import snapshot
from stratops.handlers import sharding
from stratops.handlers.strategy import sleep_until_poked


# -- gates: status (signed, missing, expiry, state), re-evaluated on change and at expiry ----------
async def gate_daemon(
    name: str,
    namespace: str,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger,
    strategies_by_name: kopf.Index,
    **_: Any,
) -> None:
    rt: Runtime = memo.runtime
    key = ("gate", namespace, name)
    poke = rt.pokes.setdefault(key, asyncio.Event())  # type: ignore[arg-type]
    try:
        while not stopped:
            poke.clear()
            raw = plain(body)
            wake = SAFETY_NET_SECONDS
            try:
                named = [
                    strategy_key(namespace, s)
                    for s in (raw.get("spec") or {}).get("strategies") or []
                    if isinstance(s, str)
                ]
                strategies = snapshot({"strategies": strategies_by_name}, named)["strategies"]  # on the loop, as above
                wake = await asyncio.get_running_loop().run_in_executor(rt.gate_pool, gate_status, raw, strategies, rt)
            except Exception as e:  # retried at the next wake-up
                logger.warning(f"gate status not written: {e}")
            await sleep_until_poked(poke, stopped, wake)
    finally:
        rt.pokes.pop(key, None)  # type: ignore[arg-type]
        # Deleted, or this replica paused for a peer: its series would be stale from here on.
        cadence = str((body.get("spec") or {}).get("cadence", ""))
        for gauge in (M.GATE_COMPLETE, M.GATE_EXPIRY):
            try:
                gauge.remove(namespace, name, cadence)
            except KeyError:
                pass


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.daemon(GROUP, VERSION, "gates", cancellation_timeout=10, when=sharding.gates(), registry=registry)(gate_daemon)
