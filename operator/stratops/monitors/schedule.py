"""When each monitor is evaluated: one schedule for every monitor of the operator, in place of a
kopf daemon (an asyncio task, its stopper and a finalizer on the Monitor) per monitor.

A monitor is due at a fixed rate (due, due + period, ...), not "period after its last evaluation
ended", so a slow evaluation does not push every later one back. Under load the rate gives:
after a late start the next beat is a period after that start (no burst of beats to catch up,
and a monitor applied meanwhile waits as long as the others do, never behind a backlog that
cannot drain), and an evaluation longer than a period is followed by a period's rest. A monitor
is never evaluated twice at once. Where an evaluation starts later than LATE_SECONDS after its
due time, the schedule says why:
- `workers`: every worker was busy (more due at once than there are workers);
- `source`: its source already had as many evaluations in flight as one source may (below);
- `loop`: none of these; the process itself was late (CPU, the event loop, the GIL).

Lanes: with LANE (a monitor's source) and PER_LANE, at most PER_LANE evaluations of one lane
wait on it at once: a start takes a place in its lane (`Start.lane`) and the caller gives it back
(`lane_done`) once its reads are made, before it computes and writes. A source that accepts and
never answers then holds at most PER_LANE of the evaluations in flight until its timeout, not all
of them: the other sources' monitors, and the kills they lead to, go on. A due monitor whose lane
is full is parked, out of the way of the others, and is due again (at its own due time) as a
place in its lane is given back.
Beats an evaluation ran through are skipped, and counted (`skipped`).

Batches: with BATCH (a monitor's batch: the monitors that read one shared query), a monitor
taken brings along the monitors of its batch due within PULL_SECONDS (a quarter of their
period at most), so that one read and one task serve them. They start a little early, never
late, and keep their own beats; they hold no place in the lane (the one read is the taken
monitor's) and no worker's place.

Pure: the clock is passed in. The caller (stratops.controller.monitor) runs the evaluations.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

#: An evaluation that starts more than this after its due time is late.
LATE_SECONDS = 0.5
#: Monitors found together (the operator's first listing, a resume after a pause) are spread
#: over their period, at most this long, rather than all evaluated in the same instant.
SPREAD_SECONDS = 5.0
#: Monitors held back (their namespace relisting) looked at in one take, at most.
HELD_PER_TAKE = 1000
#: A batch's monitors due within this (and a quarter of their period) start with the one taken.
PULL_SECONDS = 0.5
#: Monitors of a batch brought along by one monitor taken, at most.
PULL_MOST = 1000

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Entry:
    key: Key
    view: dict[str, Any]
    period: float
    due: float
    running: bool = False
    fresh: bool = True  # its first evaluation since it was put (or the schedule resumed)
    started: float = 0.0  # when its last evaluation started
    again: bool = False  # asked for at once while it ran: due again when it ends
    stamp: int = 0  # which heap item is this entry's current one
    parked: bool = False  # held since it was due: its lane was full
    batch: Hashable | None = None  # the batch it is evaluated with (None: on its own)


@dataclass(frozen=True)
class Start:
    """An evaluation to start now: the monitor as last seen, and how late it starts."""

    key: Key
    view: dict[str, Any]
    due: float
    late: float  # seconds after its due time
    reason: str  # "" on time; else workers, source or loop
    first: bool  # its first since it was put: not counted on time or late
    lane: Hashable | None = None  # the lane whose place it holds, for `lane_done` (None: none)


@dataclass
class Tally:
    on_time: int = 0
    late: dict[str, int] = field(default_factory=dict)  # reason -> evaluations
    skipped: int = 0  # whole beats missed


def phase(key: Key, period: float) -> float:
    """KEY's stable offset within min(PERIOD, SPREAD_SECONDS): the same in every process."""
    digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * min(period, SPREAD_SECONDS)


class Schedule:
    def __init__(
        self,
        late_seconds: float = LATE_SECONDS,
        lane: Callable[[dict[str, Any]], Hashable | None] | None = None,
        per_lane: int | None = None,
        batch: Callable[[dict[str, Any]], Hashable | None] | None = None,
    ) -> None:
        self.late_seconds = late_seconds
        #: BATCH(view): the batch a monitor is taken with (None: on its own).
        self.batch = batch
        self._batches: dict[Hashable, list[tuple[float, int, Key]]] = {}  # batch -> heap
        #: LANE(view): the lane a monitor's evaluation runs in (None: unbounded).
        self.lane, self.per_lane = lane, per_lane
        self._in_lane: dict[Hashable, int] = {}  # lane -> places held
        #: Keys with an evaluation under way, their monitor removed meanwhile or not.
        self._busy: set[Key] = set()
        self._parked: dict[Hashable, list[tuple[float, int, Key]]] = {}  # lane -> heap
        self.tally = Tally()
        self._entries: dict[Key, Entry] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._stamps = 0
        self._full_since: float | None = None  # since when more were due than workers were free

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def _push(self, e: Entry) -> None:
        self._stamps += 1
        e.stamp = self._stamps
        heapq.heappush(self._heap, (e.due, e.stamp, e.key))
        if e.batch is not None:
            heapq.heappush(self._batches.setdefault(e.batch, []), (e.due, e.stamp, e.key))

    def put(self, key: Key, view: dict[str, Any], period: float, now: float, spread: bool = False) -> None:
        """KEY as last seen. A new monitor is due now (SPREAD: at its phase, for monitors found
        together); a known one keeps its beat, unless a shorter period brings it forward."""
        period = max(period, 0.001)
        batch = self.batch(view) if self.batch is not None else None
        e = self._entries.get(key)
        if e is None:
            due = now + (phase(key, period) if spread else 0.0)
            e = self._entries[key] = Entry(key, view, period, due, batch=batch)
            if key in self._busy:  # removed and put again while its evaluation runs: due as it ends
                e.running = e.again = True
                return
            self._push(e)
            return
        e.view = view
        if batch != e.batch:
            e.batch = batch
            if not e.running:
                self._push(e)  # found in its new batch (its items in the old one are dropped)
        if e.parked and not e.running:
            self._push(e)  # its lane may have changed (an edited source): looked at again
        if period != e.period:
            e.period = period
            if not e.running and e.due > now + period:
                e.due = now + period
                self._push(e)

    def due_now(self, key: Key, now: float) -> None:
        """Evaluate KEY at once, out of its beat (the ruler said its finding changed): not counted
        on time or late. One running now is due again as it ends."""
        e = self._entries.get(key)
        if e is None:
            return
        if e.running:
            e.again = True
            return
        e.due, e.fresh = now, True
        self._push(e)

    def remove(self, key: Key) -> None:
        self._entries.pop(key, None)  # its heap item is dropped when it comes up

    def next_due(self) -> float | None:
        """When the earliest monitor not running is due (None: none)."""
        while self._heap:
            due, stamp, key = self._heap[0]
            e = self._entries.get(key)
            if e is None or e.stamp != stamp or e.running:
                heapq.heappop(self._heap)
                continue
            return due
        return None

    def take(self, now: float, limit: int, ready: Any = None) -> list[Start]:
        """The monitors due by NOW, earliest first, at most LIMIT (the free workers), each
        marked running, each with its batch's monitors due soon after (`_pull`). READY(key)
        false holds a due monitor back (its namespace is being listed again after a pause): it
        stays due. Late starts taken while more were due than there were workers are late for
        `workers`."""
        out: list[Start] = []
        held: list[Entry] = []
        saturated = self._full_since is not None
        taken = 0  # the monitors brought along by their batch take no worker's place
        while self._heap and self._heap[0][0] <= now and taken < limit and len(held) < HELD_PER_TAKE:
            due, stamp, key = heapq.heappop(self._heap)
            e = self._entries.get(key)
            if e is None or e.stamp != stamp or e.running:
                continue
            if ready is not None and not ready(key):
                held.append(e)
                continue
            lane = self.lane(e.view) if self.lane is not None and self.per_lane else None
            if lane is not None and self._in_lane.get(lane, 0) >= (self.per_lane or 0):
                e.parked = True
                heapq.heappush(self._parked.setdefault(lane, []), (due, stamp, key))
                continue
            out.append(self._start(e, now, lane, reason="source" if e.parked else "workers" if saturated else "loop"))
            taken += 1
            if lane is not None:
                self._in_lane[lane] = self._in_lane.get(lane, 0) + 1
            if e.batch is not None:
                self._pull(e.batch, now, ready, out)
        for e in held:
            self._push(e)
        more = self.next_due()
        if taken >= limit and more is not None and more <= now:
            self._full_since = self._full_since if saturated else now
        else:
            self._full_since = None
        return out

    def _start(self, e: Entry, now: float, lane: Hashable | None, reason: str) -> Start:
        """E started NOW, holding a place in LANE; REASON: why, if it starts late."""
        late = now - e.due
        reason = reason if late > self.late_seconds else ""
        if not e.fresh:
            if reason:
                self.tally.late[reason] = self.tally.late.get(reason, 0) + 1
            else:
                self.tally.on_time += 1
        start = Start(e.key, e.view, e.due, late, reason, e.fresh, lane)
        e.running, e.fresh, e.started, e.parked = True, False, now, False
        self._busy.add(e.key)
        return start

    def _pull(self, batch: Hashable, now: float, ready: Any, out: list[Start]) -> None:
        """The monitors of BATCH due within PULL_SECONDS (a quarter of their period at most),
        started with the one taken: early, with no place in their lane."""
        heap = self._batches.get(batch)
        if heap is None:
            return
        pulled = 0
        later: list[tuple[float, int, Key]] = []  # within PULL_SECONDS, not within their own window
        while heap and pulled < PULL_MOST:
            due, stamp, key = heap[0]
            e = self._entries.get(key)
            if e is None or e.stamp != stamp or e.running or e.batch != batch:
                heapq.heappop(heap)
                continue
            if due > now + PULL_SECONDS:
                break
            item = heapq.heappop(heap)
            if due > now + e.period / 4:
                later.append(item)  # a short period: a mate further on, with a longer one, may still come
                continue
            if ready is not None and not ready(key):
                continue  # still due on the schedule: taken there once its namespace is listed
            out.append(self._start(e, now, None, reason="loop"))
            pulled += 1
        for item in later:
            heapq.heappush(heap, item)
        if not heap:
            self._batches.pop(batch, None)

    def finished(self, key: Key, now: float, period: float | None = None) -> float | None:
        """KEY's evaluation ended at NOW. Its next beat is a PERIOD (default its own) after the
        beat it started for if it started on time; a period after it started if it started late
        (under load the beats move back rather than pile up, so a busy operator evaluates each
        monitor a little less often instead of starving some); and a period after NOW if it ran
        longer than a period (the beats it ran through are skipped). Its next due time (None:
        it is not on the schedule)."""
        self._busy.discard(key)
        e = self._entries.get(key)
        if e is None or not e.running:
            return None
        e.running = False
        if e.again:
            e.again, e.due, e.fresh = False, now, True
            self._push(e)
            return e.due
        step = e.period if period is None else min(period, e.period)
        beat = e.due + step if e.started - e.due <= self.late_seconds else e.started + step
        if beat < now:
            self.tally.skipped += int((now - beat) // step) + 1
            beat = now + step
        e.due = beat
        self._push(e)
        return e.due

    def lane_done(self, lane: Hashable | None) -> bool:
        """A start's place in LANE (its `Start.lane`) is given back, once per start: its reads
        are made, or it ended (even if its monitor was removed meanwhile). The earliest monitor
        parked there is due again. Whether one was."""
        if lane is None or lane not in self._in_lane:
            return False
        self._in_lane[lane] -= 1
        if not self._in_lane[lane]:
            del self._in_lane[lane]
        parked = self._parked.get(lane)
        while parked:
            _, stamp, k = heapq.heappop(parked)
            e = self._entries.get(k)
            if e is not None and e.stamp == stamp and not e.running:
                self._push(e)  # due as it was: a new stamp, the same due time
                if not parked:
                    self._parked.pop(lane, None)
                return True
        self._parked.pop(lane, None)
        return False

    def parked(self) -> int:
        """Monitors parked because their lane was full (some may be stale items)."""
        return sum(len(p) for p in self._parked.values())

    def resume(self, now: float) -> None:
        """After a pause (another replica acted): every monitor is due afresh at its phase, not
        all at once and not counted late for the time this replica was not acting."""
        self._heap, self._parked, self._batches = [], {}, {}
        for e in self._entries.values():
            e.due = now + phase(e.key, e.period)
            e.fresh, e.parked = True, False
            if not e.running:
                self._push(e)
