"""The kill watch's halt against a recording executor: what it writes, in which order, and that
a reconcile acting meanwhile (a conflict) stops it before anything else is written."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from stratops.k8s.executor import Executor
from stratops.k8s.killwatch import KillWatch, exact, serves
from stratops.lifecycle import manifests
from stratops.lifecycle.commands import command_value
from stratops.lifecycle.control import CONTROL_KEY, ControlDocument
from stratops.lifecycle.killwatch import KILL_ANNOTATION, Waiting

NS, NAME, UID = "desk", "mean-revert", "u-1"
KILL = command_value("tina", reason="runaway orders")


class Audit:
    def __init__(self) -> None:
        self.appended: list[Any] = []

    def append(self, *a: Any) -> None:
        self.appended.append(a)

    def confirmed(self, *a: Any) -> int:
        return 0  # nothing known to be in the trail


class Recorder:
    def __init__(self, strategy: dict, control: dict | None, replicas: int = 1, conflict: str | None = None) -> None:
        self.strategy, self.control, self.replicas, self.conflict = strategy, control, replicas, conflict
        self.writes: list[tuple[str, Any]] = []
        self.written_control: dict = {}
        self.audit = Audit()
        self.api = None

    def read_strategy(self, ns: str, name: str) -> dict:
        return copy.deepcopy(self.strategy)

    def read_configmap(self, ns: str, name: str) -> dict | None:
        return copy.deepcopy(self.control)

    # The real reader over the fake read: the view, the ownership data and the resourceVersion.
    read_control_view = Executor.read_control_view

    def deployment_replicas(self, ns: str, name: str) -> int:
        return self.replicas

    def live_pods(self, ns: str, name: str) -> int:
        return self.replicas

    def _write(self, what: str, detail: Any) -> None:
        if self.conflict == what:
            raise ApiException(status=409, reason="Conflict")
        self.writes.append((what, detail))

    def write_control(self, ns: str, name: str, uid: str, doc: Any, resource_version: str | None = None) -> None:
        self._write("control", (doc, resource_version))
        self.written_control[(ns, name)] = doc

    def scale_to_zero(self, ns: str, name: str) -> None:
        self._write("scale", name)

    def write_halt_status(self, ns: str, name: str, rv: str, status: dict) -> None:
        self._write("status", (rv, status))

    def event(self, *a: Any, **k: Any) -> None:
        self.writes.append(("event", a))


def strategy(latched: bool = False) -> dict:
    return {
        "metadata": {"name": NAME, "namespace": NS, "uid": UID, "resourceVersion": "41", "generation": 3,
                     "annotations": {KILL_ANNOTATION: KILL}},
        "status": {"killSwitch": {"latched": True}} if latched else {"control": {"generation": 4}},
    }  # fmt: skip


def control_cm(uid: str = UID, generation: int = 4) -> dict:
    doc = ControlDocument.model_validate(
        {"strategy": NAME, "generation": generation, "tradingState": "ACTIVE", "mode": "paper",
         "limits": {"maxPosition": 10, "maxOrderRate": 1, "maxDailyLoss": 5},
         "broker": {"name": "prime-a", "endpoint": "fix://a"}, "issuedAt": "2026-12-02T06:00:00Z"}
    )  # fmt: skip
    cm = manifests.configmap(manifests.control_name(NAME), NS, NAME, uid, "control", {CONTROL_KEY: doc.to_json()})
    cm["metadata"]["resourceVersion"] = "7"
    return cm


def watch(ex: Recorder) -> KillWatch:
    w = KillWatch(ex, [NS], serves([NS]), lambda: True, 10.0)  # type: ignore[arg-type]
    w.waiting[(NS, NAME)] = Waiting("id", 0.0)
    return w


@pytest.fixture(autouse=True)
def _no_client(  # the recorder is the executor: no API client is made
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("stratops.k8s.killwatch.client.CustomObjectsApi", lambda api: None)


def test_halted_first_then_scaled_then_latched_each_over_what_was_read():
    ex = Recorder(strategy(), control_cm())
    w = watch(ex)
    assert w.halt((NS, NAME)) is True
    assert [what for what, _ in ex.writes] == ["control", "scale", "status", "event"]
    doc, rv = ex.writes[0][1]
    assert rv == "7" and doc.trading_state.value == "HALTED" and doc.generation == 5
    status_rv, status = ex.writes[2][1]
    assert status_rv == "41"
    ks = status["killSwitch"]
    assert ks["latched"] and ks["by"] == "tina" and ks["haltGeneration"] == 5
    assert status["handledCommands"]["kill"] and status["audit"]["seq"] == 1 and len(status["audit"]["pending"]) == 1
    assert ex.audit.appended and w.waiting == {} and w.halted == [(NS, NAME)] and (NS, NAME) in w.finishing


def test_a_reconcile_writing_meanwhile_stops_the_halt_before_anything_else():
    ex = Recorder(strategy(), control_cm(), conflict="control")
    w = watch(ex)
    with pytest.raises(ApiException):
        w.halt((NS, NAME))
    assert ex.writes == [] and (NS, NAME) in w.waiting and w.halted == []


def test_a_kill_taken_up_by_the_time_it_is_read_is_forgotten():
    ex = Recorder(strategy(latched=True), control_cm())
    w = watch(ex)
    assert w.halt((NS, NAME)) is False
    assert ex.writes == [] and w.waiting == {}


def test_a_control_configmap_the_strategy_does_not_own_is_not_believed():
    ex = Recorder(strategy(), control_cm(uid="someone-else", generation=99))
    w = watch(ex)
    w.halt((NS, NAME))
    doc, rv = ex.writes[0][1]
    assert doc.generation == 5 and rv == "7"  # from the status's generation 4, not the forged 99


def test_no_control_configmap_is_created_only_if_still_none():
    ex = Recorder(strategy(), None)
    watch(ex).halt((NS, NAME))
    assert ex.writes[0][1][1] == ""


def test_the_namespaces_served_as_kopf_reads_them():
    assert exact(["a", "b", "a"]) == ["a", "b"] and exact(["t-*"]) is None and exact(["a", "!b"]) is None
    inside = serves(["t-*", "!t-skip*"])
    assert inside("t-1") and not inside("t-skip-1") and not inside("o-1")
