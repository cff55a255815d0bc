"""Which kills the kill watch carries out, and when (stratops.lifecycle.killwatch)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stratops.lifecycle.commands import command_value
from stratops.lifecycle.killwatch import KILL_ANNOTATION, Waiting, overdue, seen, waiting_kill


def strategy(kill: str | None = None, latched: bool = False, deleting: bool = False) -> dict:
    meta: dict = {"name": "mean-revert", "namespace": "desk"}
    if kill is not None:
        meta["annotations"] = {KILL_ANNOTATION: kill}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T06:00:00Z"
    return {"metadata": meta, "status": {"killSwitch": {"latched": True}} if latched else {}}


KILL = command_value("tina", reason="runaway orders")


def test_a_kill_not_taken_up_waits():
    cmd = waiting_kill(strategy(KILL))
    assert cmd is not None and cmd.by == "tina" and cmd.reason == "runaway orders"


def test_nothing_waits_once_latched_being_deleted_unattributable_or_without_a_kill():
    assert waiting_kill(strategy(KILL, latched=True)) is None
    assert waiting_kill(strategy(KILL, deleting=True)) is None
    assert waiting_kill(strategy('{"reason": "no by"}')) is None  # refused by the reconcile, reported there
    assert waiting_kill(strategy('{"by": "tina", "by": "rita"}')) is None
    assert waiting_kill(strategy()) is None


def test_the_clock_starts_when_a_command_is_first_seen_and_goes_with_it():
    waiting: dict = {}
    seen(waiting, "k", strategy(KILL), 100.0)
    seen(waiting, "k", strategy(KILL), 105.0)  # the same command seen again: the clock runs on
    assert waiting["k"].seen_at == 100.0
    assert overdue(waiting, 109.9, 10) == [] and overdue(waiting, 110.0, 10) == ["k"]
    again = command_value("tina", reason="still runaway")  # another command: its own clock
    seen(waiting, "k", strategy(again), 111.0)
    assert overdue(waiting, 112.0, 10) == []
    seen(waiting, "k", strategy(again, latched=True), 113.0)  # taken up: forgotten
    assert waiting == {}


@given(st.dictionaries(st.text(min_size=1, max_size=4), st.floats(0, 1000), max_size=20), st.floats(0, 2000))
def test_overdue_is_exactly_the_kills_past_their_grace_longest_first(times, now):
    waiting = {k: Waiting("id", t) for k, t in times.items()}
    late = overdue(waiting, now, 10.0)
    assert set(late) == {k for k, t in times.items() if now - t >= 10.0}
    assert [times[k] for k in late] == sorted(times[k] for k in late)


def test_a_kill_carried_out_and_resumed_since_does_not_wait_again():
    from stratops.lifecycle.commands import parse_command

    s = strategy(KILL)
    s["status"] = {"killSwitch": {"latched": False}, "handledCommands": {"kill": parse_command("kill", KILL).id}}
    assert waiting_kill(s) is None
