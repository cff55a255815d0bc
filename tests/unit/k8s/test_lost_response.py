"""A decision whose status write landed while its response was lost (a connection cut: the
soak's api-refused fault, the long soak with the real node, seed 1037129310) left its aftermath
undone: its audit lines and its Events. The next decision, made on the status as stored, chained
on after lines the trail never got (audit-verifies: "entries 220..220 are not in the chain"), and
the latch had no KillSwitch Event (one-action-each). Executor.catch_up does that aftermath first,
once: the lines are appended, each Event is named by its entry, so making it again never doubles
it (a takeover after the dead replica made it)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops.audit import verify
from stratops.k8s.audit import AuditLog, trails
from stratops.k8s.executor import Executor
from stratops.lifecycle.types import Event, Plan, Stored
from stratops.models.strategy import StrategyStatus

T0 = datetime(2026, 12, 6, 12, 53, tzinfo=UTC)


class Cluster:
    """The Strategy's status, its AuditSegments and its Events, as an API server keeps them;
    CUT: the next status write lands and its response is lost."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.segments: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.rv = 1
        self.cut = False

    # the Strategy
    def replace_namespaced_custom_object_status(self, group, version, ns, plural, name, body):
        assert body["metadata"]["resourceVersion"] == str(self.rv), "written over the Strategy as stored"
        self.status, self.rv = copy.deepcopy(body["status"]), self.rv + 1
        if self.cut:
            self.cut = False
            raise ConnectionError("connection cut after the request was sent")
        return {"metadata": {"name": name, "resourceVersion": str(self.rv)}}

    # its trail
    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        if name not in self.segments:
            raise ApiException(status=404)
        return copy.deepcopy(self.segments[name])

    def create_namespaced_custom_object(self, group, version, ns, plural, body):
        if body["metadata"]["name"] in self.segments:
            raise ApiException(status=409)
        return self._store(body)

    def replace_namespaced_custom_object(self, group, version, ns, plural, name, body):
        if self.segments[name]["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self._store(body)

    def _store(self, body):
        self.rv += 1
        stored = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": f"s{self.rv}"}}
        self.segments[body["metadata"]["name"]] = stored
        return copy.deepcopy(stored)

    def list_namespaced_custom_object(self, group, version, ns, plural, label_selector=""):
        return {"items": [copy.deepcopy(o) for o in self.segments.values()]}

    # its Events
    def create_namespaced_event(self, ns, body):
        name = body["metadata"].get("name") or f"{body['metadata']['generateName']}{len(self.events)}"
        if name in self.events:
            raise ApiException(status=409)
        self.events[name] = body


def executor(c: Cluster) -> Executor:
    ex = Executor(client.ApiClient())
    ex._custom = ex.audit.custom = c  # type: ignore[assignment]
    ex._core = c  # type: ignore[assignment]
    return ex


def decision(reason: str, status: dict[str, Any]) -> Plan:
    return Plan(status=StrategyStatus.model_validate(status), events=[Event("Warning", reason, f"{reason} (test)")])


def test_a_decision_whose_response_was_lost_is_recorded_once_and_the_chain_holds():
    c = Cluster()
    ex = executor(c)
    ex.execute("desk", "s2", "u-2", "1", decision("Throttle", {}), T0, Stored())
    c.cut = True
    try:
        ex.execute("desk", "s2", "u-2", str(c.rv), decision("KillSwitch", c.status), T0, Stored())
    except ConnectionError:
        pass  # the pass fails; the write landed
    assert c.status["audit"]["seq"] == 2 and [e["reason"] for e in c.events.values()] == ["Throttle"]
    # The next pass, on the Strategy as stored: the aftermath first (twice: a second replica's
    # pass, or the next reconcile, finds it done), then its own decision.
    for _ in range(2):
        ex.catch_up("desk", "s2", "u-2", c.status["audit"])
    ex.execute("desk", "s2", "u-2", str(c.rv), decision("Resume", c.status), T0, Stored())
    lines = trails(c.segments.values())[("desk", "Strategy", "s2")]
    assert verify(lines)[1] == [], "the chain holds every decision, in order"
    assert [e["reason"] for e in c.events.values()] == ["Throttle", "KillSwitch", "Resume"]
    assert sorted(c.events) == ["s2.strategy-1", "s2.strategy-2", "s2.strategy-3"]


def test_the_next_decision_keeps_the_lines_the_trail_lacks_pending_with_its_own():
    """Without the catch-up too: the lost decision's line is still pending in the status as
    stored, above what this process knows the trail holds, so the next decision keeps it pending
    with its own and appends both; once the trail holds them, a decision keeps only its own."""
    c = Cluster()
    ex = executor(c)
    c.cut = True
    try:
        ex.execute("desk", "s2", "u-2", "1", decision("KillSwitch", {}), T0, Stored())
    except ConnectionError:
        pass
    ex.execute("desk", "s2", "u-2", str(c.rv), decision("Resume", c.status), T0, Stored())
    assert [json.loads(x)["seq"] for x in c.status["audit"]["pending"]] == [1, 2]
    lines = trails(c.segments.values())[("desk", "Strategy", "s2")]
    assert verify(lines)[1] == [] and len(lines) == 2
    ex.execute("desk", "s2", "u-2", str(c.rv), decision("Throttle", c.status), T0, Stored())
    assert [json.loads(x)["seq"] for x in c.status["audit"]["pending"]] == [3]


def test_lines_a_failed_append_left_are_written_by_the_replica_that_takes_over():
    """A trail append fails (the audit API away), the replica decides again and then dies with
    the first decision's lines only in its retry queue: the status it wrote holds both decisions'
    lines, so the replica that takes over writes them all, and the chain has no gap."""

    class TrailAway(Cluster):
        away = True

        def create_namespaced_custom_object(self, *a, **k):  # type: ignore[no-untyped-def]
            if self.away:
                raise ApiException(status=503, reason="Service Unavailable")
            return super().create_namespaced_custom_object(*a, **k)

    c = TrailAway()
    ex = executor(c)
    ex.execute("desk", "s2", "u-2", "1", decision("KillSwitch", {}), T0, Stored())
    ex.execute("desk", "s2", "u-2", str(c.rv), decision("KillSwitchAgain", c.status), T0, Stored())
    assert c.segments == {} and len(c.status["audit"]["pending"]) == 2
    c.away = False  # the trail is back; the replica is gone, its retry queue with it
    other = executor(c)
    other.catch_up("desk", "s2", "u-2", c.status["audit"])
    lines = trails(c.segments.values())[("desk", "Strategy", "s2")]
    assert verify(lines)[1] == [] and [json.loads(x)["reason"] for x in lines] == ["KillSwitch", "KillSwitchAgain"]


def test_an_event_made_before_a_takeover_is_not_made_again():
    c = Cluster()
    ex = executor(c)
    ex.execute("desk", "s2", "u-2", "1", decision("KillSwitch", {}), T0, Stored())
    # The replica died before its trail append: the next one catches up from the status.
    c.segments.clear()
    other = executor(c)
    other.audit = AuditLog(c)  # type: ignore[arg-type]
    other.catch_up("desk", "s2", "u-2", c.status["audit"])
    assert [e["reason"] for e in c.events.values()] == ["KillSwitch"]
    assert verify(trails(c.segments.values())[("desk", "Strategy", "s2")])[1] == []
