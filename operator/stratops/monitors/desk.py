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
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

#: Fewer strategies than this are not a desk: their own incidents and pages say it.
MIN_STRATEGIES = 2
#: A monitor not evaluated for this long (deleted, moved) no longer counts.
HORIZON = timedelta(minutes=10)


@lru_cache(maxsize=256)  # at every evaluation; a desk has a few sources
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
class _Desk:
    """The monitors of one source in one namespace, kept in the order they were last seen (the
    oldest first, to forget past the horizon), with running counts: one evaluation costs the
    same with 12 monitors or 12,000 (a count over every monitor per evaluation was half the
    operator's CPU at 1,000 strategies)."""

    seen: OrderedDict[str, _Seen] = field(default_factory=OrderedDict)
    reachable: int = 0  # monitors whose last evaluation reached the source
    strategies: Counter[str] = field(default_factory=Counter)  # strategy -> its monitors seen

    def forget(self, monitor: str) -> None:
        old = self.seen.pop(monitor, None)
        if old is None:
            return
        self.reachable -= 0 if old.unreachable else 1
        self.strategies[old.strategy] -= 1
        if self.strategies[old.strategy] <= 0:
            del self.strategies[old.strategy]

    def add(self, monitor: str, seen: _Seen) -> None:
        old = self.seen.get(monitor)
        if old is not None and old.strategy == seen.strategy:  # the common case, without recounting
            self.seen[monitor] = seen
            self.seen.move_to_end(monitor)
            self.reachable += (0 if seen.unreachable else 1) - (0 if old.unreachable else 1)
            return
        self.forget(monitor)
        self.seen[monitor] = seen
        self.reachable += 0 if seen.unreachable else 1
        self.strategies[seen.strategy] += 1

    def forget_before(self, oldest: datetime) -> None:
        while self.seen:
            monitor, first = next(iter(self.seen.items()))
            if first.at >= oldest:
                return
            self.forget(monitor)


@dataclass
class DeskFindings:
    min_strategies: int = MIN_STRATEGIES
    horizon: timedelta = HORIZON
    _desks: dict[tuple[str, str], _Desk] = field(default_factory=dict)  # (ns, source) -> its monitors
    _source_of: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, monitor) -> source
    _down: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self, namespace: str, source: str, monitor: str, strategy: str, unreachable: bool, now: datetime
    ) -> SourceChange | None:
        """One evaluation of MONITOR (of STRATEGY) against SOURCE; the desk-level change it makes."""
        with self._lock:
            moved_from = self._source_of.get((namespace, monitor))
            if moved_from is not None and moved_from != source and (namespace, moved_from) in self._desks:
                self._desks[(namespace, moved_from)].forget(monitor)
            self._source_of[(namespace, monitor)] = source
            key = (namespace, source)
            desk = self._desks.setdefault(key, _Desk())
            desk.add(monitor, _Seen(strategy, unreachable, now))
            desk.forget_before(now - self.horizon)
            down = len(desk.strategies) >= self.min_strategies and desk.reachable == 0
            if down and key not in self._down:
                self._down.add(key)
                strategies = tuple(sorted(desk.strategies))
                return SourceChange(
                    namespace,
                    source,
                    "down",
                    strategies,
                    f"{len(desk.seen)} monitors of {len(strategies)} strategies find {source} unreachable",
                )
            if not down and key in self._down and not unreachable:
                self._down.discard(key)
                return SourceChange(namespace, source, "up", (strategy,), f"monitor {monitor} reaches {source} again")
            return None

    def down(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._down)
