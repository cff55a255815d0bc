"""The audit trail's appends (stratops.k8s.audit.AuditLog) read the API server only when they must
(issue 21: the trail's segment lists and reads were 3.8 of the 20 requests a new strategy cost):
a process appends over the segment it last wrote or listed, and a write by another process since
(a 409) makes it look the trail up again, so no line is lost, doubled or reordered."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from stratops.k8s.audit import LABEL_SUBJECT, AuditLog, trails


class Segments:
    """AuditSegments as the API server keeps them (create, replace over a resourceVersion,
    list by label), counting the requests."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 0
        self.calls: list[str] = []

    def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        self.calls.append("get")
        if name not in self.objects:
            raise ApiException(status=404)
        return copy.deepcopy(self.objects[name])

    def _store(self, body: Any) -> Any:
        self.rv += 1
        name = body["metadata"]["name"]
        self.objects[name] = {
            **copy.deepcopy(body),
            "metadata": {**body["metadata"], "namespace": "desk", "resourceVersion": str(self.rv)},
        }
        return copy.deepcopy(self.objects[name])

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: Any) -> Any:
        self.calls.append("create")
        if body["metadata"]["name"] in self.objects:
            raise ApiException(status=409)
        return self._store(body)

    def replace_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str, body: Any):
        self.calls.append("replace")
        if self.objects[name]["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self._store(body)

    def list_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, label_selector: str = ""):
        self.calls.append(f"list {label_selector}")
        want = dict(kv.split("=", 1) for kv in label_selector.split(",") if kv)
        return {
            "items": [
                copy.deepcopy(o)
                for o in self.objects.values()
                if all(o["metadata"]["labels"].get(k) == v for k, v in want.items())
            ]
        }


def lines(*seqs: int) -> list[str]:
    return [json.dumps({"seq": n, "reason": "Test"}) for n in seqs]


def seqs(api: Segments, name: str = "mean-revert") -> list[int]:
    return [json.loads(x)["seq"] for x in trails(api.objects.values())[("desk", "Strategy", name)]]


def test_a_new_strategy_s_trail_is_listed_once_then_only_written():
    api = Segments()
    log = AuditLog(api)  # type: ignore[arg-type]
    head, entry = log.tail("desk", "Strategy", "mean-revert", ("KillSwitch",))
    assert head.seq == 0 and entry is None
    for n in range(1, 5):
        assert log.append("desk", "Strategy", "mean-revert", lines(n))
    assert seqs(api) == [1, 2, 3, 4]
    # One list (the check for an earlier trail under the name), then a create and three replaces:
    # no read of a segment this process knows, no 404 for one it knows is not there yet.
    assert (
        api.calls
        == [f"list stratops.io/audit-kind=strategy,{LABEL_SUBJECT}=mean-revert"] + ["create"] + ["replace"] * 3
    )


def test_a_segment_past_the_remembered_size_is_not_held_and_is_read_at_the_next_append(monkeypatch):
    """Issue 21: a subject's latest segment grows towards SEGMENT_BYTES; holding each whole would
    grow the operator by up to 256 KiB a strategy. Past REMEMBERED_SEGMENT_BYTES it is read again
    at the next append, and nothing is lost or doubled."""
    monkeypatch.setattr("stratops.k8s.audit.REMEMBERED_SEGMENT_BYTES", 200)
    api = Segments()
    log = AuditLog(api)  # type: ignore[arg-type]
    log.tail("desk", "Strategy", "mean-revert", ("KillSwitch",))
    assert log.append("desk", "Strategy", "mean-revert", lines(1))
    assert log._segment[("desk", "Strategy", "mean-revert")][1] is not None  # small: held
    assert log.append("desk", "Strategy", "mean-revert", lines(2, 3, 4, 5, 6))
    assert ("desk", "Strategy", "mean-revert") not in log._segment  # past the size: not held
    api.calls.clear()
    assert log.append("desk", "Strategy", "mean-revert", lines(7))
    assert api.calls == ["get", "replace"]
    assert seqs(api) == [1, 2, 3, 4, 5, 6, 7]
    fresh = AuditLog(api)  # type: ignore[arg-type]
    fresh.tail("desk", "Strategy", "mean-revert", ("KillSwitch",))  # a listing: not held either
    assert ("desk", "Strategy", "mean-revert") not in fresh._segment
    assert fresh.append("desk", "Strategy", "mean-revert", lines(7, 8))
    assert seqs(api) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_the_tail_of_a_trail_without_a_latch_is_its_head_and_no_entry():
    """A Strategy deleted and applied again under its name, never killed: its chain goes on from
    the trail's head, and nothing latches it. (The tail's list once shadowed its segment limit:
    every such re-applied Strategy could not be decided, found by an e2e test of issue 21.)"""
    api = Segments()
    log = AuditLog(api)  # type: ignore[arg-type]
    for n in range(1, 4):
        assert log.append("desk", "Strategy", "mean-revert", lines(n))
    head, entry = AuditLog(api).tail("desk", "Strategy", "mean-revert", ("KillSwitch", "Resume"))  # type: ignore[arg-type]
    assert head.seq == 3 and entry is None
    head, entry = AuditLog(api).tail("desk", "Strategy", "mean-revert", ("KillSwitch",), segments=1)  # type: ignore[arg-type]
    assert head.seq == 3 and entry is None


def test_an_append_after_another_replica_s_looks_the_trail_up_again_and_loses_nothing():
    api = Segments()
    mine, theirs = AuditLog(api), AuditLog(api)  # type: ignore[arg-type]
    mine.append("desk", "Strategy", "mean-revert", lines(1, 2))
    theirs.append("desk", "Strategy", "mean-revert", lines(3))  # a takeover meanwhile
    assert mine.append("desk", "Strategy", "mean-revert", lines(3, 4))  # 3 again: its status still held it
    assert seqs(api) == [1, 2, 3, 4]
    # Its replace over the segment as it wrote it was refused (409), and it looked the trail up
    # again: a list each for the two first appends, and one after the conflict.
    assert sum(c.startswith("list") for c in api.calls) == 3


def test_the_list_is_one_subject_s_not_the_namespace_s():
    api = Segments()
    for n in range(5):
        AuditLog(api).append("desk", "Strategy", f"s{n}", lines(1))  # type: ignore[arg-type]
    api.calls.clear()
    log = AuditLog(api)  # type: ignore[arg-type]
    log.append("desk", "Strategy", "s3", lines(2))
    assert seqs(api, "s3") == [1, 2]
    listed = [c for c in api.calls if c.startswith("list")]
    assert listed == [f"list stratops.io/audit-kind=strategy,{LABEL_SUBJECT}=s3"]
