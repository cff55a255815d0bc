"""Waiting on a condition with a deadline: the one poll loop the CLI, the demo and the tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    check: Callable[[], T | None], timeout: float, interval: float = 1.0, stop: Callable[[], bool] | None = None
) -> T | None:
    """Call CHECK every INTERVAL seconds and return its first truthy value; None once TIMEOUT
    seconds have passed, or as soon as STOP() is true (e.g. the process being waited on exited).
    CHECK runs at least once, and once more after the deadline, so a slow CHECK is not cut short."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline or (stop is not None and stop()):
            return None
        time.sleep(interval)
