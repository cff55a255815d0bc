"""Waiting on a condition with a deadline: the only synchronisation tests may use."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from stratops.polling import poll

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Call PROBE until it returns a truthy value and return it; fail after TIMEOUT seconds.

    The failure message says what was awaited and what the probe last returned or raised.
    """
    last: object = None

    def attempt() -> T | None:
        nonlocal last
        try:
            last = probe()
            return last
        except Exception as e:  # reported if the deadline passes
            last = e
            return None

    value = poll(attempt, timeout, interval)
    if not value:
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
    return value
