"""Desk-level findings: a metrics source down for a whole desk is one finding, not one per
strategy. Each strategy still gets its own StaleData incident and action (the card asks for a
throttle per strategy); the desk gets one alert, `StratopsSourceDown`, which an Alertmanager
inhibit rule uses to hold back the per-strategy stale pages of the same source (README).

A source is down for a desk (namespace) when every monitor reading it there, seen within the
horizon, found it unreachable at its last evaluation (not: a query with no data), and those
monitors belong to at least MIN_STRATEGIES strategies. It is up again as soon as one of them
reaches it. Pure: the MonitorRunner records evaluations and sends what changed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

#: Fewer strategies than this are not a desk: their own incidents and pages say it.
MIN_STRATEGIES = 2
#: A monitor not evaluated for this long (deleted, moved) no longer counts.
HORIZON = timedelta(minutes=10)


def source_label(url: str) -> str:
    """A source as an alert label: scheme, host, port and path, never its credentials or query."""
    u = urlsplit(url)
    host = u.hostname or ""
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}{u.path.rstrip('/')}"


@dataclass(frozen=True)
class SourceChange:
    namespace: str
    source: str
    state: Literal["down", "up"]
    strategies: tuple[str, ...]  # the strategies whose monitors found it unreachable (down), or did (up)
    detail: str


@dataclass
class _Seen:
    strategy: str
    unreachable: bool
    at: datetime


@dataclass
class DeskFindings:
    min_strategies: int = MIN_STRATEGIES
    horizon: timedelta = HORIZON
    _seen: dict[tuple[str, str], dict[str, _Seen]] = field(default_factory=dict)  # (ns, source) -> monitor -> seen
    _source_of: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, monitor) -> source
    _down: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self, namespace: str, source: str, monitor: str, strategy: str, unreachable: bool, now: datetime
    ) -> SourceChange | None:
        """One evaluation of MONITOR (of STRATEGY) against SOURCE; the desk-level change it makes."""
        with self._lock:
            moved_from = self._source_of.get((namespace, monitor))
            if moved_from is not None and moved_from != source:
                self._seen.get((namespace, moved_from), {}).pop(monitor, None)
            self._source_of[(namespace, monitor)] = source
            key = (namespace, source)
            seen = self._seen.setdefault(key, {})
            seen[monitor] = _Seen(strategy, unreachable, now)
            recent = {m: s for m, s in seen.items() if now - s.at <= self.horizon}
            for gone in set(seen) - set(recent):
                del seen[gone]
            strategies = tuple(sorted({s.strategy for s in recent.values()}))
            down = len(strategies) >= self.min_strategies and all(s.unreachable for s in recent.values())
            if down and key not in self._down:
                self._down.add(key)
                return SourceChange(
                    namespace,
                    source,
                    "down",
                    strategies,
                    f"{len(recent)} monitors of {len(strategies)} strategies find {source} unreachable",
                )
            if not down and key in self._down and not unreachable:
                self._down.discard(key)
                return SourceChange(namespace, source, "up", (strategy,), f"monitor {monitor} reaches {source} again")
            return None

    def down(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._down)
