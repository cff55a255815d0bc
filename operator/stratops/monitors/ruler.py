"""What the ruler said of each monitor (the Prometheus-ruler mode, stratops.monitors.rules), from
Alertmanager's webhook notifications, and what that makes of the monitor's evaluation. Pure:
payloads in, evaluations out; the receiver (stratops.handlers.ruler) feeds it, the MonitorRunner
reads it from its worker threads.

The ruler holds a monitor only while a heartbeat of the rules the operator compiled for the spec
it holds (the digest) is recent: a rule group not loaded yet, a ruler or an Alertmanager down,
or a notification lost leaves the monitor to the operator's own evaluation. Nothing in this mode
fails open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stratops.monitors.evaluate import Evaluation
from stratops.monitors.rules import (
    BREACH,
    DIGEST_LABEL,
    FINDINGS,
    HEARTBEAT,
    MONITOR_LABEL,
    NAMESPACE_LABEL,
    STALE,
)

Key = tuple[str, str]  # (namespace, monitor)


@dataclass
class Heard:
    """What the ruler last said of one monitor's rules (one digest)."""

    digest: str
    heartbeat_at: float | None = None  # monotonic, when a notification last carried it firing
    breach: bool = False
    value: float | None = None
    stale: bool = False


class PayloadError(ValueError):
    """A notification that is not Alertmanager's webhook payload (version 4)."""


class RulerState:
    def __init__(self, heartbeat_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.heartbeat_seconds, self.clock = heartbeat_seconds, clock
        self._heard: dict[Key, Heard] = {}
        self._lock = threading.Lock()

    def receive(self, payload: Any) -> set[Key]:
        """Take one webhook notification; the monitors whose finding it changed (to evaluate at
        once). Alerts not of a stratops rule are ignored; a malformed payload raises PayloadError
        and changes nothing."""
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise PayloadError("not an Alertmanager webhook payload: no alerts list")
        updates: list[tuple[Key, str, str, bool, float | None]] = []
        for a in payload["alerts"]:
            labels = a.get("labels") if isinstance(a, dict) else None
            if not isinstance(labels, dict) or labels.get("alertname") not in FINDINGS:
                continue
            ns, name, digest = labels.get(NAMESPACE_LABEL), labels.get(MONITOR_LABEL), labels.get(DIGEST_LABEL)
            if not (isinstance(ns, str) and isinstance(name, str) and isinstance(digest, str)):
                continue
            firing = a.get("status") == "firing"
            value: float | None = None
            try:
                value = float((a.get("annotations") or {}).get("value", ""))
            except (TypeError, ValueError):
                pass
            updates.append(((ns, name), digest, labels["alertname"], firing, value))
        now, changed = self.clock(), set()
        with self._lock:
            for key, digest, alert, firing, value in updates:
                h = self._heard.get(key)
                if h is None or h.digest != digest:
                    h = self._heard[key] = Heard(digest)
                before = (h.breach, h.stale)
                if alert == HEARTBEAT:
                    if firing:
                        h.heartbeat_at = now
                elif alert == BREACH:
                    h.breach, h.value = firing, value if firing else h.value
                elif alert == STALE:
                    h.stale = firing
                if (h.breach, h.stale) != before:
                    changed.add(key)
        return changed

    def evaluation(self, namespace: str, name: str, digest: str) -> Evaluation | str:
        """The monitor's evaluation as the ruler gives it, or why the operator evaluates it."""
        with self._lock:
            h = self._heard.get((namespace, name))
            if h is None or h.digest != digest or h.heartbeat_at is None:
                return "the ruler has not confirmed its rules yet (no heartbeat of their digest)"
            age = self.clock() - h.heartbeat_at
            if age > self.heartbeat_seconds:
                return f"no heartbeat from the ruler for {age:.0f}s (limit {self.heartbeat_seconds:.0f}s)"
            breach, value, stale = h.breach, h.value, h.stale
        if stale:
            return Evaluation(
                None, False, True, 0, "stale: the ruler found no data (its query returned nothing)", no_data=True
            )
        if breach:
            shown = f" {value:g}" if value is not None else ""
            return Evaluation(value, True, False, 1, f"the ruler's rule fires: value{shown}")
        return Evaluation(None, False, False, 0, "the ruler's rule does not fire")

    def holds(self, namespace: str, name: str) -> bool:
        """Whether the ruler evaluates the monitor now (a heartbeat of some digest within the
        limit): its evaluation then reads no source. A guess ahead of `evaluation`, which checks
        the digest too; where they differ the evaluation reads the source itself."""
        with self._lock:
            h = self._heard.get((namespace, name))
            return (
                h is not None and h.heartbeat_at is not None and self.clock() - h.heartbeat_at <= self.heartbeat_seconds
            )

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._heard.pop((namespace, name), None)
