"""The one schedule for every monitor (stratops.monitors.schedule): fixed rate, never twice at
once, and every late start with its reason."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from stratops.monitors.schedule import SPREAD_SECONDS, Schedule, phase


def _view(name: str) -> dict:
    return {"metadata": {"name": name, "namespace": "desk"}, "spec": {}}


def _evaluated_once(n: int, period: float, done: float) -> Schedule:
    """N monitors of PERIOD put at 0, each evaluated once (ended at DONE)."""
    s = Schedule()
    for i in range(n):
        s.put(("desk", f"m{i}"), _view(f"m{i}"), period, now=0.0)
    for start in s.take(0.0, limit=n):
        s.finished(start.key, now=done)
    return s


def test_a_new_monitor_is_due_at_once_and_then_at_a_fixed_rate():
    s = Schedule()
    s.put(("desk", "m"), _view("m"), 10.0, now=100.0)
    assert s.next_due() == 100.0
    [start] = s.take(100.0, limit=8)
    assert start.first and start.reason == ""
    # A slow evaluation does not push the next beat back: due 10 s after the last was due.
    s.finished(("desk", "m"), now=104.0)
    assert s.next_due() == 110.0
    assert s.take(109.9, limit=8) == []
    [start] = s.take(110.2, limit=8)
    assert not start.first and start.reason == "" and s.tally.on_time == 1


def test_a_monitor_is_never_evaluated_twice_at_once():
    s = Schedule()
    s.put(("desk", "m"), _view("m"), 1.0, now=0.0)
    assert len(s.take(0.0, limit=8)) == 1
    # Its next beats pass while it runs: nothing to start until it has finished.
    assert s.take(1.0, limit=8) == [] and s.take(2.5, limit=8) == []
    assert s.next_due() is None
    s.put(("desk", "m"), _view("m"), 1.0, now=2.6)  # an event meanwhile does not start it either
    assert s.take(2.6, limit=8) == []


def test_an_evaluation_longer_than_its_period_skips_the_beats_it_ran_through_then_rests_a_period():
    s = Schedule()
    s.put(("desk", "m"), _view("m"), 1.0, now=0.0)
    s.take(0.0, limit=8)
    s.finished(("desk", "m"), now=3.6)  # the beats at 1, 2 and 3 passed while it ran
    assert s.tally.skipped == 3
    assert s.next_due() == 4.6  # a period's rest, not back to back
    [start] = s.take(4.6, limit=8)
    assert start.reason == "" and s.tally.on_time == 1


def test_after_a_late_start_the_beats_move_back_instead_of_piling_up():
    s = Schedule()
    s.put(("desk", "m"), _view("m"), 10.0, now=0.0)
    s.finished(s.take(0.0, limit=1)[0].key, now=0.1)
    [late] = s.take(13.0, limit=1)  # due at 10, started at 13
    assert late.reason == "loop"
    s.finished(late.key, now=13.1)
    assert s.next_due() == 23.0  # a period after the late start, not 20 then at once 30
    s.finished(s.take(23.0, limit=1)[0].key, now=23.1)
    assert s.next_due() == 33.0  # on time again: on the grid


def test_a_monitor_applied_while_the_operator_is_overloaded_waits_no_longer_than_the_others():
    """More due than workers, for ever: the waits stay bounded and the new monitor is served
    within about the same wait as everyone else (it never sits behind a backlog that grows)."""
    s = Schedule()
    for i in range(40):  # fast ones and slow ones, as a desk's monitors are
        s.put(("desk", f"m{i}"), _view(f"m{i}"), 1.0 if i % 2 else 30.0, now=0.0)
    now, served_new, waits = 0.0, None, []
    running: list[tuple[float, tuple[str, str]]] = []
    for step in range(4000):  # 2 workers, 0.1 s each: capacity 20 a second for 20.7 a second wanted
        now = step * 0.01
        if step == 2000:
            s.put(("desk", "new"), _view("new"), 1.0, now=now)
        for t, key in [r for r in running if r[0] <= now]:
            running.remove((t, key))
            s.finished(key, now)
        for start in s.take(now, limit=2 - len(running)):
            running.append((now + 0.1, start.key))
            waits.append(start.late)
            if start.key == ("desk", "new") and served_new is None:
                served_new = now - 20.0
    assert served_new is not None and served_new <= max(waits[-200:]) + 0.01
    assert max(waits[-200:]) < 5.0  # bounded: about a period and a half, not growing


def test_more_due_than_workers_makes_the_ones_left_waiting_late_for_workers():
    s = _evaluated_once(6, 10.0, done=0.1)
    # All six due at 10.0, two workers, each evaluation 0.4 s.
    now, started = 10.0, []
    while len(started) < 6:
        batch = s.take(now, limit=2)
        started += batch
        now += 0.4
        for b in batch:
            s.finished(b.key, now)
    assert [b.reason for b in started] == ["", "", "", "", "workers", "workers"]
    assert s.tally.on_time == 4 and s.tally.late == {"workers": 2}
    assert s.next_due() == 20.0  # the ones on time keep their beat


def test_a_late_start_with_free_workers_is_the_loop_s():
    s = Schedule()
    s.put(("desk", "m"), _view("m"), 5.0, now=0.0)
    s.finished(s.take(0.0, limit=1)[0].key, now=0.1)
    [start] = s.take(6.2, limit=8)  # the process was busy elsewhere for 1.2 s
    assert start.reason == "loop"


def test_a_removed_monitor_is_not_evaluated_again():
    s = Schedule()
    s.put(("desk", "a"), _view("a"), 1.0, now=0.0)
    s.put(("desk", "b"), _view("b"), 1.0, now=0.0)
    starts = s.take(0.0, limit=8)
    s.remove(("desk", "a"))
    for start in starts:
        s.finished(start.key, now=0.5)  # a's ends after it was removed: ignored
    assert [x.key for x in s.take(5.0, limit=8)] == [("desk", "b")]
    assert ("desk", "a") not in s and len(s) == 1


def test_a_shorter_period_brings_the_next_beat_forward_and_the_latest_view_is_evaluated():
    s = Schedule()
    s.put(("desk", "m"), _view("m"), 600.0, now=0.0)
    s.finished(s.take(0.0, limit=1)[0].key, now=0.1)
    newer = {**_view("m"), "spec": {"frequency": "5s"}}
    s.put(("desk", "m"), newer, 5.0, now=10.0)
    assert s.next_due() == 15.0
    [start] = s.take(15.0, limit=1)
    assert start.view is newer


def test_monitors_found_by_a_listing_are_spread_over_their_period():
    s = Schedule()
    for i in range(50):
        s.put(("desk", f"m{i}"), _view(f"m{i}"), 60.0, now=0.0, spread=True)
    dues = sorted(due for due, _, _ in s._heap)
    assert dues[0] >= 0.0 and dues[-1] < SPREAD_SECONDS and dues[-1] - dues[0] > SPREAD_SECONDS / 2
    assert phase(("desk", "m1"), 60.0) == phase(("desk", "m1"), 60.0)  # the same in every process


def test_after_a_pause_monitors_are_due_afresh_and_not_counted_late():
    s = _evaluated_once(3, 1.0, done=0.2)
    s.resume(now=500.0)  # another replica acted meanwhile
    starts = s.take(500.0 + SPREAD_SECONDS, limit=8)
    assert len(starts) == 3 and all(x.first for x in starts)
    assert s.tally.late == {} and s.tally.skipped == 0


def test_a_monitor_held_back_stays_due():
    s = Schedule()
    s.put(("other", "m"), _view("m"), 1.0, now=0.0)
    assert s.take(0.0, limit=8, ready=lambda key: False) == []
    assert s.next_due() == 0.0
    assert len(s.take(0.1, limit=8, ready=lambda key: True)) == 1


def _run_on_time(
    s: Schedule,
    keys: list[tuple[str, str]],
    durations: list[float],
    horizon: float,
    puts: list[tuple[float, tuple[str, str], dict, float]] | None = None,
) -> dict[tuple[str, str], list[float]]:
    """A discrete-event run of S up to HORIZON: the loop takes at every due time, every finish
    and every put (PUTS: when, key, view, period), with a worker per monitor, the evaluations
    lasting DURATIONS in turn. Every start is asserted on time and not twice at once; each
    monitor's start times."""
    puts = sorted(puts or [], key=lambda x: x[0])
    finishes: list[tuple[float, str]] = []  # (when, monitor)
    running: set[tuple[str, str]] = set()
    starts: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    now, n = 0.0, 0
    while True:
        nxt = min(
            [t for t, _ in finishes[:1]] + [d for d in [s.next_due()] if d is not None] + [at for at, *_ in puts[:1]]
        )
        if nxt > horizon:
            return starts
        now = max(now, nxt)
        while puts and puts[0][0] <= now:
            at, key, view, period = puts.pop(0)
            s.put(key, view, period, now=at)
        while finishes and finishes[0][0] <= now:
            t, name = heapq.heappop(finishes)
            running.discard(("desk", name))
            s.finished(("desk", name), t)
        for start in s.take(now, limit=len(keys) - len(running)):
            assert start.key not in running
            assert start.reason == "" and start.late <= 1e-9
            running.add(start.key)
            starts[start.key].append(now)
            heapq.heappush(finishes, (now + durations[n % len(durations)], start.key[1]))
            n += 1


@settings(max_examples=150, deadline=None)
@given(
    periods=st.lists(st.sampled_from([0.5, 1.0, 2.0, 5.0, 10.0, 60.0]), min_size=1, max_size=12),
    durations=st.lists(st.floats(0.0, 0.45), min_size=1, max_size=50),
    horizon=st.floats(5.0, 120.0),
)
def test_with_enough_workers_every_beat_is_evaluated_on_time_once_and_never_twice_at_once(periods, durations, horizon):
    """A discrete-event run: the loop takes at every due time and every finish. With a worker per
    monitor and evaluations shorter than any period, every beat of every monitor starts on time,
    exactly once, and no monitor runs twice at once."""
    s = Schedule()
    keys = [("desk", f"m{i}") for i in range(len(periods))]
    for key, p in zip(keys, periods, strict=True):
        s.put(key, _view(key[1]), p, now=0.0)
    starts = _run_on_time(s, keys, durations, horizon)
    for key, p in zip(keys, periods, strict=True):
        beats = [i * p for i in range(int(horizon // p) + 1) if i * p <= horizon]
        assert [round(t, 6) for t in starts[key]] == [round(b, 6) for b in beats]
    assert s.tally.late == {} and s.tally.skipped == 0


def _on(source: str | None) -> dict:
    return {"metadata": {}, "spec": {"source": {"prometheus": {"url": source}} if source else {}}}


def _lane(view: dict) -> str | None:
    return ((view["spec"].get("source") or {}).get("prometheus") or {}).get("url")


def test_a_source_that_never_answers_holds_at_most_its_places_and_the_others_go_on():
    """Issue 21: slots bounded per source. Six monitors of a source that hangs are due before
    two of a healthy one, with four places: the hung source takes three, its others park, and
    the healthy source's two start at once. Without lanes the hung source took all four."""
    s = Schedule(lane=_lane, per_lane=3)
    for i in range(6):
        s.put(("desk", f"hung{i}"), _on("http://hung"), 1.0, now=0.0)
    for i in range(2):
        s.put(("desk", f"ok{i}"), _on("http://ok"), 1.0, now=0.0)
    first = s.take(0.0, limit=4)
    started = [start.key[1] for start in first]
    assert started == ["hung0", "hung1", "hung2", "ok0"]
    assert [start.key[1] for start in s.take(0.0, limit=1)] == ["ok1"]
    assert s.parked() == 3 and s.next_due() is None  # parked: not due, so the loop does not spin
    # One of the hung source's reads times out: its place is given back, and its earliest parked
    # monitor is due again, as it was, and starts late for its source.
    hung0 = next(x for x in first if x.key[1] == "hung0")
    assert hung0.lane == "http://hung"
    s.lane_done(hung0.lane)
    s.finished(("desk", "hung0"), now=10.0)
    assert s.next_due() == 0.0
    [start] = s.take(10.0, limit=8)
    assert (start.key[1], start.reason, start.late) == ("hung3", "source", 10.0)
    assert s.parked() == 2 and s.take(10.0, limit=8) == []  # the lane is full again


def test_a_parked_monitor_whose_source_is_edited_is_looked_at_again():
    s = Schedule(lane=_lane, per_lane=1)
    s.put(("desk", "a"), _on("http://hung"), 1.0, now=0.0)
    s.put(("desk", "b"), _on("http://hung"), 1.0, now=0.0)
    assert [x.key[1] for x in s.take(0.0, limit=8)] == ["a"]
    s.put(("desk", "b"), _on("http://other"), 1.0, now=0.5)
    assert [x.key[1] for x in s.take(0.5, limit=8)] == ["b"]


def test_a_place_is_given_back_once_even_after_its_monitor_was_removed():
    s = Schedule(lane=_lane, per_lane=1)
    s.put(("desk", "a"), _on("http://src"), 1.0, now=0.0)
    s.put(("desk", "b"), _on("http://src"), 1.0, now=0.0)
    [a] = s.take(0.0, limit=8)
    assert a.key[1] == "a"
    s.remove(("desk", "a"))
    s.lane_done(a.lane)  # a's reads are made: b may read while a computes
    [b] = s.take(0.2, limit=8)
    assert b.key[1] == "b"
    s.finished(("desk", "a"), now=0.3)  # ending gives no second place back
    s.put(("desk", "c"), _on("http://src"), 1.0, now=0.3)
    assert s.take(0.3, limit=8) == []


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["take", "finish", "remove", "put", "now", "edit"]), st.integers(0, 9)),
        max_size=80,
    ),
    per_lane=st.integers(1, 3),
)
def test_no_source_ever_runs_more_than_its_places_and_no_monitor_is_lost(ops, per_lane):
    """Any order of puts, takes, ends, removals, out-of-beat asks and source edits, half of the
    monitors in batches: a lane never
    runs more than PER_LANE at once, no monitor runs twice at once, and once every evaluation
    has ended each monitor on the schedule is due again (none lost in a parking lot)."""
    s = Schedule(lane=_lane, per_lane=per_lane, batch=_batch)
    sources = ["http://a", "http://b", None]
    lanes: dict[tuple[str, str], str | None] = {}
    running: dict[tuple[str, str], str | None] = {}  # key -> lane it runs in
    t = 0.0
    for op, i in ops:
        key = ("desk", f"m{i}")
        t += 0.1
        if op in ("put", "edit") or (op == "now" and key not in lanes):
            lanes[key] = sources[(i + (op == "edit")) % 3] if op != "edit" else sources[(i + int(t * 10)) % 3]
            view = _on(lanes[key])
            view["spec"]["batch"] = (None, lanes[key])[i % 2]  # half of them in their source's batch
            s.put(key, view, 1.0, now=t)
        elif op == "now":
            s.due_now(key, t)
        elif op == "remove":
            lanes.pop(key, None)
            s.remove(key)
        elif op == "finish" and running:
            k = sorted(running)[i % len(running)]
            s.lane_done(running.pop(k))
            s.finished(k, t)
        elif op == "take":
            for start in s.take(t, limit=4):
                # A monitor brought along by its batch holds no place.
                assert start.key not in running and start.lane in (_lane(start.view), None)
                assert start.lane is not None or not _lane(start.view) or _batch(start.view)
                running[start.key] = start.lane
        for lane in ("http://a", "http://b"):
            assert sum(1 for v in running.values() if v == lane) <= per_lane
    for k in list(running):
        s.lane_done(running.pop(k))
        s.finished(k, t)
    t += 100.0
    due: set[tuple[str, str]] = set()
    for _ in range(len(lanes) + 1):  # each end lets the next of its lane in
        for start in s.take(t, limit=100):
            due.add(start.key)
            s.lane_done(start.lane)
            s.finished(start.key, t)
    assert due == set(lanes)


def test_a_monitor_removed_and_put_again_while_it_runs_is_not_evaluated_twice_at_once():
    """Found by the property test above: a Monitor deleted and applied again under the same name
    while its evaluation ran was started again beside it. It is now due as that evaluation ends."""
    s = Schedule()
    s.put(("desk", "m"), _view("m"), 1.0, now=0.0)
    assert len(s.take(0.0, limit=8)) == 1
    s.remove(("desk", "m"))
    s.put(("desk", "m"), _view("m"), 1.0, now=0.2)
    assert s.take(0.3, limit=8) == [] and s.next_due() is None
    assert s.finished(("desk", "m"), now=0.4) == 0.4
    [again] = s.take(0.4, limit=8)
    assert again.key == ("desk", "m") and again.first


def _in(batch: str | None, source: str = "http://src") -> dict:
    return {"metadata": {}, "spec": {"batch": batch, "source": {"prometheus": {"url": source}}}}


def _batch(view: dict) -> str | None:
    return view["spec"].get("batch")


def test_a_batch_s_monitors_due_soon_start_with_the_one_taken_early_and_keep_their_own_beats():
    """Issue 21, evaluate in batches: a monitor taken brings along its batch's monitors due
    within a quarter of their period (0.5 s at most), so one read serves them. They start early,
    on time, with no place in the source's lane nor a worker's, and keep their own beats. One due
    later, one of another batch and one of none are not brought along."""
    s = Schedule(lane=_lane, per_lane=1, batch=_batch)
    for name, at, batch in [("a", 0.0, "q"), ("b", 0.2, "q"), ("c", 0.4, "q"), ("x", 0.1, "other"), ("y", 0.1, None)]:
        s.put(("desk", name), _in(batch), 1.0, now=at)
    first = s.take(0.0, limit=1)
    assert [(x.key[1], x.lane) for x in first] == [("a", "http://src"), ("b", None)]
    b = first[1]
    assert (b.due, b.late, b.reason, b.first) == (0.2, -0.2, "", True)
    assert s.tally.on_time == 0  # both first evaluations: not counted
    assert s.finished(("desk", "b"), now=0.05) == 1.2  # its own beat, not the one it started with
    s.lane_done(first[0].lane)
    assert s.finished(("desk", "a"), now=0.05) == 1.0
    # c, x and y are taken at their own times, each with its place.
    assert [(x.key[1], x.lane) for x in s.take(0.1, limit=8)] == [("x", "http://src")]
    s.lane_done("http://src")
    assert [(x.key[1], x.lane) for x in s.take(0.1, limit=8)] == [("y", "http://src")]
    # a's next beat brings b along again, counted on time, early.
    s.lane_done("http://src")
    for key in [("desk", "x"), ("desk", "y")]:
        s.finished(key, now=0.15)
    [c] = s.take(0.4, limit=8)
    s.lane_done(c.lane)
    s.finished(c.key, now=0.45)
    again = s.take(1.0, limit=1)
    assert [(x.key[1], round(x.late, 6)) for x in again] == [("a", 0.0), ("b", -0.2)] and s.tally.on_time == 2


def test_a_batch_mate_with_a_narrow_window_does_not_stop_a_later_one_with_a_wider_window():
    """The pull looks at the batch's monitors due within PULL_SECONDS in order of due time. One
    whose own window (a quarter of a 0.4 s period: 0.1 s) does not reach is left for its beat,
    and one due after it with a 2 s period (window 0.5 s) is still brought along."""
    s = Schedule(batch=_batch)
    for name, at, period in [("a", 0.0, 2.0), ("short", 0.2, 0.4), ("long", 0.3, 2.0)]:
        s.put(("desk", name), _in("q"), period, now=at)
    assert [x.key[1] for x in s.take(0.0, limit=1)] == ["a", "long"]
    assert [x.key[1] for x in s.take(0.2, limit=1)] == ["short"]  # at its own beat


@settings(max_examples=150, deadline=None)
@given(
    members=st.lists(
        st.tuples(st.sampled_from(["q1", "q2", None]), st.sampled_from([0.5, 1.0, 2.0, 5.0]), st.floats(0.0, 3.0)),
        min_size=1,
        max_size=12,
    ),
    durations=st.lists(st.floats(0.0, 0.1), min_size=1, max_size=30),
    horizon=st.floats(5.0, 40.0),
)
def test_in_batches_every_beat_is_evaluated_once_never_late_and_at_most_its_pull_early(members, durations, horizon):
    """A discrete-event run with batches: monitors of two batches and of none, each put at its
    own time with its own period, a worker each, evaluations shorter than any period. Every
    beat of every monitor starts once, never late, and never earlier than a quarter of its
    period (0.5 s at most) before the beat; no monitor runs twice at once."""
    s = Schedule(batch=_batch)
    keys = [("desk", f"m{i}") for i in range(len(members))]
    puts = [(at, key, _in(batch), p) for key, (batch, p, at) in zip(keys, members, strict=True)]
    starts = _run_on_time(s, keys, durations, horizon, puts)
    for key, (_, p, at) in zip(keys, members, strict=True):
        early = min(0.5, p / 4)
        beats = [at + i * p for i in range(int(horizon // p) + 2)]
        got = starts[key]
        assert len(got) >= sum(1 for b in beats if b <= horizon)  # none missed
        for k, t in enumerate(got):
            assert beats[k] - early - 1e-9 <= t <= beats[k] + 1e-9, (key, k, t, beats[k])
    assert s.tally.late == {} and s.tally.skipped == 0
