"""What every controller shares: the operator's Runtime (API access, pokes, worker pools,
what this process wrote last) and the small helpers the handlers hand their data through."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stratops.k8s.client import api_client, bounded
from stratops.k8s.executor import Executor
from stratops.lifecycle import manifests
from stratops.lifecycle.control import ControlDocument

SAFETY_NET_SECONDS = float(os.environ.get("STRATOPS_RESYNC_SECONDS", "60"))


LABEL = manifests.LABEL_STRATEGY


log = logging.getLogger("stratops.operator")


def plain(obj: Any) -> Any:
    """kopf hands out mapping views; decisions and pydantic want plain dicts and lists."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def strategy_key(namespace: str | None, strategy: str) -> tuple[str, str]:
    return (namespace or "", strategy)


class Runtime:
    """Per-operator state: API access, pokes, what this process wrote last, and worker pools.

    Strategy reconciles (kill-switch, throttle, rollback) have a pool of their own, so a slow
    metrics source or an alert receiver that times out can never delay a kill-switch.
    """

    def __init__(self) -> None:
        self.executor = Executor(bounded(api_client()))
        self.lifecycle_pool = ThreadPoolExecutor(
            int(os.environ.get("STRATOPS_LIFECYCLE_WORKERS", "16")), "stratops-lifecycle"
        )
        self.monitor_pool = ThreadPoolExecutor(int(os.environ.get("STRATOPS_MONITOR_WORKERS", "8")), "stratops-monitor")
        self.gate_pool = ThreadPoolExecutor(2, "stratops-gate")
        self.pokes: dict[tuple[str, str], asyncio.Event] = {}
        # Each Strategy daemon's poke by its Strategy's uid, and the uids reported DELETED whose
        # daemon has not ended yet (it ends on it: stratops.handlers.strategy).
        self.daemons: dict[str, asyncio.Event] = {}
        self.deleted: set[str] = set()
        # What this process last wrote into each control ConfigMap (the executor records it as
        # each write succeeds, whatever fails after it).
        self.written_control: dict[tuple[str, str], ControlDocument] = self.executor.written_control
        # And into each Deployment, with when (the executor's too: stratops.controller.strategy).
        self.written_deployments: dict[tuple[str, str], tuple[float, dict[str, Any]]] = (
            self.executor.written_deployments
        )
        self.trail_tails: dict[str, Any] = {}
        # Idle strategies' daemons, each with its check that nothing changed (the sweep's, in
        # stratops.handlers.strategy), and the sweep's task.
        self.resting: dict[tuple[str, str], Callable[[], bool]] = {}
        self.sweep: asyncio.Task[None] | None = None  # uid -> (head, last latch entry) of a new Strategy's name

    def deleted_strategy(self, uid: str) -> None:
        """The Strategy of UID is gone: its daemon, if it runs, ends."""
        if (ev := self.daemons.get(uid)) is not None:
            self.deleted.add(uid)
            ev.set()

    def poke(self, key: tuple[str, str]) -> None:
        ev = self.pokes.get(key)
        if ev is not None:
            ev.set()
