"""A source down for a whole desk is one desk-level finding (stratops.monitors.desk)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as hs

from stratops.monitors.desk import HORIZON, DeskFindings, source_label

T0 = datetime(2026, 12, 6, 9, tzinfo=UTC)
SRC = "http://prometheus:9090"


def test_a_source_label_never_carries_credentials_or_a_query():
    assert source_label("https://user:secret@prom.example:9443/prom/?x=1") == "https://prom.example:9443/prom"
    assert source_label("http://prometheus:9090/") == "http://prometheus:9090"


def test_down_once_every_monitor_of_two_strategies_finds_it_unreachable_and_up_when_one_reaches_it():
    desk = DeskFindings()
    assert desk.record("fx", SRC, "a-lat", "a", False, T0) is None
    assert desk.record("fx", SRC, "b-lat", "b", False, T0) is None
    assert desk.record("fx", SRC, "a-lat", "a", True, T0) is None, "one monitor still reaches it"
    change = desk.record("fx", SRC, "b-lat", "b", True, T0)
    assert change is not None and change.state == "down" and change.strategies == ("a", "b")
    assert desk.record("fx", SRC, "a-lat", "a", True, T0) is None, "one finding, not one per evaluation"
    assert desk.down() == [("fx", SRC)]
    up = desk.record("fx", SRC, "b-lat", "b", False, T0)
    assert up is not None and up.state == "up" and desk.down() == []


def test_a_monitor_edited_to_another_strategy_counts_for_that_one_only():
    desk = DeskFindings()
    assert desk.record("fx", SRC, "m1", "a", True, T0) is None
    assert desk.record("fx", SRC, "m2", "b", False, T0) is None
    # m2 now names strategy a: every monitor of the source is one strategy's, not a desk's.
    assert desk.record("fx", SRC, "m2", "a", True, T0 + timedelta(seconds=1)) is None
    assert desk.down() == []


def test_one_strategy_is_not_a_desk_and_no_data_is_not_unreachable():
    desk = DeskFindings()
    assert desk.record("fx", SRC, "a-lat", "a", True, T0) is None
    assert desk.record("fx", SRC, "a-pnl", "a", True, T0) is None, "one strategy: its own incident says it"
    other = DeskFindings()
    other.record("fx", SRC, "a", "a", True, T0)
    assert other.record("fx", SRC, "b", "b", False, T0) is None  # b's query had no data: reachable


def test_desks_and_sources_are_apart_and_a_monitor_gone_stops_counting():
    desk = DeskFindings()
    desk.record("fx", SRC, "a", "a", True, T0)
    assert desk.record("rates", SRC, "b", "b", True, T0) is None, "another desk"
    assert desk.record("fx", "http://other:9090", "c", "c", True, T0) is None, "another source"
    desk.record("fx", SRC, "d", "d", False, T0)  # d reaches it, then is deleted
    later = T0 + HORIZON + timedelta(seconds=1)
    desk.record("fx", SRC, "a", "a", True, later)
    change = desk.record("fx", SRC, "e", "e", True, later)
    assert change is not None and change.state == "down" and change.strategies == ("a", "e")


def test_a_monitor_moved_to_another_source_leaves_the_first():
    desk = DeskFindings()
    desk.record("fx", SRC, "a", "a", True, T0)
    desk.record("fx", SRC, "b", "b", False, T0)
    desk.record("fx", "http://new:9090", "b", "b", False, T0)
    change = desk.record("fx", SRC, "c", "c", True, T0)
    assert change is not None and change.strategies == ("a", "c")


evaluations = hs.lists(hs.tuples(hs.sampled_from(["m1", "m2", "m3", "m4"]), hs.booleans()), min_size=1, max_size=60)


@given(evaluations)
def test_changes_alternate_and_down_means_every_monitor_unreachable(history):
    desk = DeskFindings()
    strategy = {"m1": "a", "m2": "a", "m3": "b", "m4": "c"}
    last: dict[str, bool] = {}
    states = []
    for monitor, unreachable in history:
        last[monitor] = unreachable
        change = desk.record("fx", SRC, monitor, strategy[monitor], unreachable, T0)
        if change is not None:
            states.append(change.state)
        if desk.down():
            assert all(last.values()) and len({strategy[m] for m in last}) >= 2
        elif all(last.values()) and len({strategy[m] for m in last}) >= 2:
            raise AssertionError(f"every monitor of two strategies unreachable, and no finding: {last}")
    assert all(a != b for a, b in pairwise(states)) and states[:1] in ([], ["down"])


class _Scan:
    """The rule as first written: every evaluation looks over every monitor of the source."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], dict[str, tuple[str, bool, datetime]]] = {}
        self.source_of: dict[tuple[str, str], str] = {}
        self.down: set[tuple[str, str]] = set()

    def record(self, ns: str, source: str, monitor: str, strategy: str, unreachable: bool, now: datetime):
        moved = self.source_of.get((ns, monitor))
        if moved is not None and moved != source:
            self.seen.get((ns, moved), {}).pop(monitor, None)
        self.source_of[(ns, monitor)] = source
        seen = self.seen.setdefault((ns, source), {})
        seen[monitor] = (strategy, unreachable, now)
        for m in [m for m, (_, _, at) in seen.items() if now - at > HORIZON]:
            del seen[m]
        strategies = tuple(sorted({s for s, _, _ in seen.values()}))
        down = len(strategies) >= 2 and all(u for _, u, _ in seen.values())
        if down and (ns, source) not in self.down:
            self.down.add((ns, source))
            return ("down", strategies)
        if not down and (ns, source) in self.down and not unreachable:
            self.down.discard((ns, source))
            return ("up", (strategy,))
        return None


@given(
    hs.lists(
        hs.tuples(
            hs.sampled_from(["fx", "rates"]),
            hs.sampled_from([SRC, "http://other:9090"]),
            hs.sampled_from(["m1", "m2", "m3", "m4", "m5"]),
            hs.booleans(),
            hs.sampled_from([0, 1, 60, 400, 700]),  # seconds since the evaluation before
            hs.sampled_from([None, None, None, "a", "c"]),  # now and then its spec names another strategy
        ),
        max_size=60,
    )
)
def test_the_running_counts_decide_as_a_look_over_every_monitor_does(history):
    """Counted as evaluations come (one evaluation costs the same with 12 monitors or 12,000),
    the desk decides exactly as the whole-desk look it replaced, forgetting past the horizon."""
    fast, scan, now = DeskFindings(), _Scan(), T0
    for ns, source, monitor, unreachable, later, edited in history:
        now += timedelta(seconds=later)
        strategy = edited or ("a" if monitor in ("m1", "m2") else "b" if monitor in ("m3", "m4") else "c")
        change = fast.record(ns, source, monitor, strategy, unreachable, now)
        expected = scan.record(ns, source, monitor, strategy, unreachable, now)
        assert (None if change is None else (change.state, change.strategies)) == expected
    assert fast.down() == sorted(scan.down)
