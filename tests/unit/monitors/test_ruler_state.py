"""What Alertmanager's notifications make of a monitor in the Prometheus-ruler mode
(stratops.monitors.ruler): the ruler holds a monitor only while a heartbeat of the rules the
operator compiled for its current spec is recent; anything else leaves it to the operator."""

from __future__ import annotations

from typing import Any

import pytest

from stratops.monitors.evaluate import Evaluation
from stratops.monitors.ruler import PayloadError, RulerState
from stratops.monitors.rules import BREACH, HEARTBEAT, STALE
from stratops.monitors.schedule import Schedule


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _alert(name: str, status: str = "firing", digest: str = "d1", value: str | None = None) -> dict[str, Any]:
    labels = {
        "alertname": name,
        "stratops_ruler": "true",
        "stratops_namespace": "desk",
        "stratops_monitor": "watch",
        "stratops_digest": digest,
    }
    return {"status": status, "labels": labels, "annotations": {"value": value} if value else {}}


def _payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "alerts": list(alerts)}


def test_a_breach_heard_with_a_fresh_heartbeat_is_the_ruler_s_evaluation() -> None:
    clock = Clock()
    s = RulerState(60, clock)
    assert isinstance(s.evaluation("desk", "watch", "d1"), str)  # nothing heard: the operator's
    assert s.receive(_payload(_alert(HEARTBEAT))) == set()
    ev = s.evaluation("desk", "watch", "d1")
    assert isinstance(ev, Evaluation) and not ev.breaching and not ev.stale
    assert s.receive(_payload(_alert(HEARTBEAT), _alert(BREACH, value="1234.5"))) == {("desk", "watch")}
    ev = s.evaluation("desk", "watch", "d1")
    assert isinstance(ev, Evaluation) and ev.breaching and ev.value == 1234.5
    # resolved: clear again, and the change is reported
    assert s.receive(_payload(_alert(HEARTBEAT), _alert(BREACH, "resolved"))) == {("desk", "watch")}
    ev = s.evaluation("desk", "watch", "d1")
    assert isinstance(ev, Evaluation) and not ev.breaching


def test_no_data_at_the_ruler_is_a_stale_finding() -> None:
    s = RulerState(60, Clock())
    s.receive(_payload(_alert(HEARTBEAT), _alert(STALE)))
    ev = s.evaluation("desk", "watch", "d1")
    assert isinstance(ev, Evaluation) and ev.stale and not ev.breaching


def test_without_a_recent_heartbeat_of_the_current_rules_the_operator_evaluates() -> None:
    clock = Clock()
    s = RulerState(60, clock)
    s.receive(_payload(_alert(HEARTBEAT), _alert(BREACH)))
    # The spec changed: rules of another digest are not the monitor's.
    assert "not confirmed" in str(s.evaluation("desk", "watch", "d2"))
    clock.t += 61
    assert "no heartbeat" in str(s.evaluation("desk", "watch", "d1"))
    # A resolved heartbeat (the rule gone) does not renew it.
    s.receive(_payload(_alert(HEARTBEAT, "resolved")))
    assert isinstance(s.evaluation("desk", "watch", "d1"), str)
    # The new rules' heartbeat starts afresh: their breach is not the old rules' one.
    s.receive(_payload(_alert(HEARTBEAT, digest="d2")))
    ev = s.evaluation("desk", "watch", "d2")
    assert isinstance(ev, Evaluation) and not ev.breaching


@pytest.mark.parametrize(
    "heard, after, holds",
    [
        ([], 0, False),  # nothing heard
        ([HEARTBEAT], 0, True),
        ([HEARTBEAT], 60, True),  # at the limit
        ([HEARTBEAT], 61, False),  # past it
        ([STALE], 0, False),  # a finding with no heartbeat
    ],
)
def test_the_ruler_holds_a_monitor_while_its_heartbeat_is_recent(heard: list[str], after: float, holds: bool) -> None:
    """`holds` tells the reads made ahead (stratops.k8s.monitoring: prefetch) whether the
    monitor's evaluation will read a source: never while the ruler holds it, as `evaluation`
    gives the ruler's verdict then."""
    clock = Clock()
    s = RulerState(60, clock)
    if heard:
        s.receive(_payload(*(_alert(a) for a in heard)))
    clock.t += after
    assert s.holds("desk", "watch") is holds
    assert isinstance(s.evaluation("desk", "watch", "d1"), Evaluation) is holds
    assert not s.holds("desk", "other")


def test_other_alerts_and_malformed_payloads_change_nothing() -> None:
    s = RulerState(60, Clock())
    other = _alert(BREACH)
    other["labels"]["alertname"] = "SomethingElse"
    unlabelled = _alert(BREACH)
    del unlabelled["labels"]["stratops_digest"]
    assert s.receive(_payload(other, unlabelled)) == set()
    assert isinstance(s.evaluation("desk", "watch", "d1"), str)
    for bad in (None, [], {"alerts": "x"}):
        with pytest.raises(PayloadError):
            s.receive(bad)


def test_a_monitor_asked_for_at_once_runs_now_or_again_as_it_ends() -> None:
    sched = Schedule()
    sched.put(("desk", "watch"), {}, 60.0, 0.0)
    assert [s.key for s in sched.take(0.0, 8)] == [("desk", "watch")]
    sched.due_now(("desk", "watch"), 1.0)  # while it runs
    sched.finished(("desk", "watch"), 2.0)
    assert sched.next_due() == 2.0  # again as it ended, not in 60 s
    started = sched.take(2.0, 8)
    assert [s.first for s in started] == [True]  # out of its beat: not counted on time or late
    sched.finished(("desk", "watch"), 2.5)
    assert sched.next_due() == 62.0
    sched.due_now(("desk", "watch"), 10.0)
    assert sched.next_due() == 10.0
    sched.due_now(("desk", "gone"), 10.0)  # unknown: nothing
    assert len(sched) == 1
