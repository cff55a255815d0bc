"""The Strategy controller's pass (stratops.controller.strategy.reconcile) against a recording
Executor: it writes only at the resourceVersion of the Strategy as stored now, and a decision
that cannot be made still carries out a kill given on the object."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from prometheus_client import REGISTRY

from cases import example
from stratops.controller.strategy import reconcile
from stratops.k8s.executor import DEPLOYMENT_INDEX_LAG, Executor, KnownStrategy
from stratops.lifecycle import manifests
from stratops.lifecycle.control import CONTROL_KEY
from stratops.lifecycle.observe import deployment_view
from stratops.lifecycle.types import Plan

INDEXES = (
    "strategy_deployments",
    "strategy_pods",
    "strategy_configmaps",
    "strategy_incidents",
    "strategy_gates",
    "strategy_report_monitors",
)


class Audit:
    def __init__(self) -> None:
        self.appended: list[Any] = []

    def append(self, *args: Any) -> None:
        self.appended.append(args)

    def confirmed(self, *args: Any) -> int:
        return 0  # nothing known to be in the trail

    def catch_up(self, namespace: str, name: str, uid: str, head: Any) -> None:
        self.caught_up.append(head)  # the fake trail holds everything: nothing to write

    def tail(self, *args: Any) -> tuple[Any, None]:
        class Head:
            seq, hash = 0, ""

        return Head(), None


class Recorder:
    """Reads return STORED; every write is recorded."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self.audit = Audit()
        self.executed: list[tuple[str, Plan]] = []
        self.halts: list[tuple[str, Any]] = []
        self.events: list[tuple[Any, ...]] = []
        self.configmaps: dict[str, dict[str, Any]] = {}  # read past the index, by name
        self.reads: list[str] = []
        self.strategies_known: dict[tuple[str, str], KnownStrategy] = {}
        self.caught_up: list[Any] = []
        self.written_deployments: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def catch_up(self, namespace: str, name: str, uid: str, head: Any) -> None:
        self.caught_up.append(head)  # the fake trail holds everything: nothing to write

    @property
    def last_written(self) -> str | None:
        """The resourceVersion of this process's last write ("" tried, unknown; None never)."""
        known = self.strategies_known.get(("desk", "mean-revert"))
        return None if known is None else known.written

    @last_written.setter
    def last_written(self, rv: str | None) -> None:
        self.strategies_known.setdefault(("desk", "mean-revert"), KnownStrategy()).written = rv

    # The real choice of what to decide on, over the fake read.
    current_strategy = Executor.current_strategy
    watched_strategy = Executor.watched_strategy

    def read_strategy(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads.append("strategy")
        return copy.deepcopy(self.stored)

    def read_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(name)
        return copy.deepcopy(self.configmaps.get(name))

    # The real reader over the fake read: the view, the ownership data and the resourceVersion.
    read_control_view = Executor.read_control_view

    def execute(self, ns: str, name: str, uid: str, rv: str, plan: Plan, now: Any, stored: Any) -> set[str]:
        self.executed.append((rv, plan))
        if plan.deployment is not None:  # as the real one records it: the API server's answer
            live = copy.deepcopy(plan.deployment)
            live["metadata"]["generation"] = 1
            self.written_deployments[(ns, name)] = (time.monotonic(), live)
        return set()

    def execute_halt(self, ns: str, name: str, uid: str, rv: str, halt: Any, now: Any) -> None:
        self.halts.append((rv, halt))

    def event(self, *args: Any, **kw: Any) -> None:
        self.events.append(args)


class Runtime:
    def __init__(self, executor: Recorder) -> None:
        self.executor = executor
        self.written_control: dict[Any, Any] = {}
        self.written_deployments = executor.written_deployments
        self.trail_tails: dict[str, Any] = {}


def _strategy(rv: str) -> dict[str, Any]:
    doc = example("strategy.yaml")
    doc["metadata"].update(namespace="desk", uid="u-1", generation=1, resourceVersion=rv)
    return doc


def test_a_decision_is_written_at_the_resource_version_stored_now():
    watched, stored = _strategy("1"), _strategy("7")  # the watch lags a write of this process
    ex = Recorder(stored)
    ex.last_written = "7"
    reconcile(watched, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(rv, plan)] = ex.executed
    assert rv == "7" and plan.deployment is not None and plan.control is not None


def test_a_body_as_this_process_last_wrote_it_is_decided_on_without_a_read():
    """Issue 21: the watch's echo of the operator's own write is the Strategy as stored (as far
    as this process knows): no read of it before the next decision is written; any other body
    is read first. (A write by someone else since makes the status write a 409, and the
    Executor then forgets the version: tests/unit/k8s.)"""
    echo = _strategy("8")
    ex = Recorder(_strategy("9"))
    ex.last_written = "8"
    reconcile(echo, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(rv, _)] = ex.executed
    assert rv == "8" and "strategy" not in ex.reads
    ex = Recorder(_strategy("9"))
    ex.last_written = "7"  # the watch shows a version this process did not write
    reconcile(echo, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(rv, _)] = ex.executed
    assert rv == "9" and "strategy" in ex.reads


def test_the_stored_status_s_last_decision_is_caught_up_on_before_deciding_over_it():
    """A status write that landed while its response was lost: the watched body does not show
    it, the Strategy read before the write does; its lines and Events are done first
    (tests/unit/k8s/test_lost_response.py)."""
    watched, stored = _strategy("1"), _strategy("7")
    stored["status"] = {"audit": {"seq": 220, "hash": "a" * 64, "pending": ["line 220"]}}
    ex = Recorder(stored)
    ex.last_written = ""  # the write whose response was lost: tried, its version unknown
    reconcile(watched, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    assert {"seq": 220, "hash": "a" * 64, "pending": ["line 220"]} in ex.caught_up
    assert len(ex.executed) == 1


def test_a_strategy_being_deleted_is_not_acted_on():
    body = _strategy("3")
    body["metadata"]["deletionTimestamp"] = "2026-12-01T09:00:00Z"
    ex = Recorder(body)
    assert reconcile(body, Runtime(ex), {i: {} for i in INDEXES}) is None  # type: ignore[arg-type]
    assert ex.executed == [] and ex.halts == []


def test_a_kill_lands_when_the_spec_cannot_be_read():
    body = _strategy("4")
    body["spec"]["replicas"] = "many"  # schema-invalid: the decision cannot be made
    body["metadata"]["annotations"] = {"stratops.io/kill": json.dumps({"by": "tina", "reason": "broker rejects"})}
    ex = Recorder(body)
    counted = REGISTRY.get_sample_value(
        "stratops_actions_total", {"namespace": "desk", "strategy": "mean-revert", "action": "kill_switch"}
    )
    assert reconcile(body, Runtime(ex), {i: {} for i in INDEXES}) == 5.0  # type: ignore[arg-type]
    [(rv, halt)] = ex.halts
    assert rv == "4" and halt.control is not None and halt.control.trading_state.value == "HALTED"
    assert ex.executed == [] and any("CannotDecide" in e for e in ex.events)
    # On the record as any kill: taken up, its KillSwitch Event, its entry chained into the status
    # and appended to the trail, and counted as the action it is.
    assert halt.status["handledCommands"]["kill"]
    [kill_event] = [e for e in ex.events if "KillSwitch" in e]
    assert "kill-switch engaged by tina: broker rejects" in kill_event[-2]
    [line] = halt.status["audit"]["pending"]
    assert json.loads(line)["reason"] == "KillSwitch" and ex.audit.appended == [
        ("desk", "Strategy", "mean-revert", [line])
    ]
    assert (
        REGISTRY.get_sample_value(
            "stratops_actions_total", {"namespace": "desk", "strategy": "mean-revert", "action": "kill_switch"}
        )
        == (counted or 0) + 1
    )


def test_a_control_document_the_index_lacks_is_read_before_another_generation_is_written():
    # A standby that has just taken over: the status records generation 1, the ConfigMap index
    # has not caught up with the listing. Writing generation 2 of the same content would be a
    # second HALTED write (and, on a real kill, a second acknowledgement round).
    first = _strategy("5")
    ex = Recorder(first)
    reconcile(first, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(_, plan)] = ex.executed
    assert plan.control is not None and plan.control.generation == 1
    taken_over = _strategy("6")
    taken_over["status"] = plan.status.to_dict()
    assert taken_over["status"]["control"]["generation"] == 1
    ex = Recorder(taken_over)
    name = manifests.control_name("mean-revert")
    ex.configmaps = {
        name: manifests.configmap(name, "desk", "mean-revert", "u-1", "control", {CONTROL_KEY: plan.control.to_json()})
    }
    reconcile(taken_over, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    assert name in ex.reads
    [(_, again)] = ex.executed
    assert again.control is None, f"wrote generation {again.control and again.control.generation} again"


def test_a_control_configmap_read_past_the_index_is_trusted_only_if_the_strategy_owns_it():
    first = _strategy("5")
    ex = Recorder(first)
    reconcile(first, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(_, plan)] = ex.executed
    assert plan.control is not None
    later = _strategy("6")
    later["status"] = plan.status.to_dict()
    ex = Recorder(later)
    name = manifests.control_name("mean-revert")
    forged = manifests.configmap(name, "desk", "mean-revert", "someone-else", "control", {CONTROL_KEY: "{}"})
    ex.configmaps = {name: forged}
    reconcile(later, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(_, again)] = ex.executed
    assert again.control is not None and again.control.generation == 2


def test_a_pass_while_the_index_lags_this_process_s_deployment_write_does_not_write_it_again():
    """Issue 21: at 1,000 new strategies a quarter of them had a second pass before the
    Deployment index showed the first pass's create: it created the Deployment again (409, then
    a replace) and ensured the identity again with it (three more 409s). Within
    DEPLOYMENT_INDEX_LAG of the write the pass decides on the Deployment as written; past it,
    or once the index shows that generation, on the index (someone may have deleted it)."""
    first = _strategy("5")
    ex = Recorder(first)
    rt = Runtime(ex)
    reconcile(first, rt, {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(_, plan)] = ex.executed
    assert plan.deployment is not None and ("desk", "mean-revert") in ex.written_deployments
    second = _strategy("6")
    second["status"] = plan.status.to_dict()
    ex.stored = second
    reconcile(second, rt, {i: {} for i in INDEXES})  # type: ignore[arg-type]
    assert all(p.deployment is None for _, p in ex.executed[1:]), "wrote the Deployment again"

    # Past the window, the index is the truth: a Deployment it does not show is made again.
    at, live = ex.written_deployments[("desk", "mean-revert")]
    ex.written_deployments[("desk", "mean-revert")] = (at - DEPLOYMENT_INDEX_LAG - 1, live)
    ex.executed.clear()
    reconcile(second, rt, {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(_, again)] = ex.executed
    assert again.deployment is not None
    assert ("desk", "mean-revert") in ex.written_deployments  # that write, remembered in turn

    # The index showing the written generation ends the memory at once.
    indexes: dict[str, Any] = {i: {} for i in INDEXES}
    indexes["strategy_deployments"] = {("desk", "mean-revert"): [deployment_view(live)]}
    ex.executed.clear()
    reconcile(second, rt, indexes)  # type: ignore[arg-type]
    assert ("desk", "mean-revert") not in ex.written_deployments


def test_a_new_strategy_this_process_never_wrote_is_decided_on_without_a_read():
    """Issue 21: a Strategy never decided on, never written by this process, cannot lag a write
    of its own: the watched body is decided on as is (anyone's write since makes the status
    write a 409; the write tried, the next pass reads). kopf puts no finalizer on it (no patch
    follows its creation, stratops.handlers.strategy.register)."""
    new = _strategy("3")
    ex = Recorder(_strategy("4"))
    reconcile(new, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(rv, _)] = ex.executed
    assert rv == "3" and "strategy" not in ex.reads
    ex = Recorder(_strategy("4"))
    ex.last_written = ""  # a status write was tried, and refused (409)
    reconcile(new, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(rv, _)] = ex.executed
    assert rv == "4" and "strategy" in ex.reads


def test_a_body_that_lags_this_process_s_own_write_is_decided_on_as_that_write_returned_it():
    """Issue 21: poked by an owned object's event before the Strategy's own event for this
    process's last write: the pass decides on what that write returned, without a read."""
    lagging, held = _strategy("6"), _strategy("7")
    ex = Recorder(_strategy("9"))
    ex.last_written = "7"
    ex.strategies_known[("desk", "mean-revert")].hold(held, over="6")  # the write over 6 returned 7
    reconcile(lagging, Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(rv, _)] = ex.executed
    assert rv == "7" and "strategy" not in ex.reads


def test_what_this_process_wrote_is_let_go_once_the_watch_shows_it():
    """Issue 21: the Strategy a write returned was held until the next decided pass, for as long
    as the strategy rests: a whole object per strategy. Once the watch shows that version it is
    let go, and a body at it is still decided on without a read. Held, it has no managedFields."""
    ex = Recorder(_strategy("9"))
    ex.last_written = "5"  # and 7 held as read since (a write answers the same way)
    known = ex.strategies_known[("desk", "mean-revert")]
    written = _strategy("7")
    written["metadata"]["managedFields"] = [{"manager": "stratops", "fieldsV1": {"f:status": {}}}]
    known.hold(written, over="6")
    assert "managedFields" not in known.newest["metadata"] and "managedFields" in written["metadata"]
    ex.watched_strategy("desk", "mean-revert", "6")  # an older version shown: still held
    assert known.newest is not None
    ex.watched_strategy("desk", "mean-revert", "7")
    assert known.newest is None and known.newest_version() == "7"
    reconcile(_strategy("7"), Runtime(ex), {i: {} for i in INDEXES})  # type: ignore[arg-type]
    [(rv, _)] = ex.executed
    assert rv == "7" and "strategy" not in ex.reads
    known.hold(_strategy("8"), over="7")  # a newer one held again: its own version, not the shown
    assert known.newest_version() == "8" and "7" in known.superseded
