"""A gate's status and its signatures' audit chain (stratops.controller.gate) under the race the
soak found: a signature written after the operator read the gate and before its status write
landed. The status carries the chain's head; written over the newer object, the next decision
(made on the object as it was before that write) chained a second version of the same entries,
and the stored chain broke ("entry 6 does not follow entry 5 as recorded"). Here against an
API server's rules for the gate (resourceVersion preconditions) and the real AuditLog."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from stratops.audit import verify
from stratops.controller import gate as controller
from stratops.k8s.audit import AuditLog, trails


class Segments:
    """The AuditSegment API as the API server keeps it (create, replace over a resourceVersion)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 0

    def get_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str) -> Any:
        if name not in self.objects:
            raise ApiException(status=404)
        return copy.deepcopy(self.objects[name])

    def create_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, body: Any) -> Any:
        name = body["metadata"]["name"]
        if name in self.objects:
            raise ApiException(status=409)
        self.rv += 1
        self.objects[name] = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}
        return self.objects[name]

    def replace_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, name: str, body: Any):
        if self.objects[name]["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        del self.objects[name]
        return self.create_namespaced_custom_object(group, version, ns, plural, body)

    def list_namespaced_custom_object(self, group: str, version: str, ns: str, plural: str, **_: Any) -> Any:
        return {"items": [copy.deepcopy(o) for o in self.objects.values()]}


class Desk:
    """One Gate as the API server keeps it, and the executor's writes of its status; with
    PRECONDITIONS False, a status write lands whatever the object became (as before the fix)."""

    def __init__(self, preconditions: bool = True) -> None:
        self.preconditions = preconditions
        self.rv = 1
        self.gate: dict[str, Any] = {
            "metadata": {"namespace": "desk", "name": "fx-daily", "generation": 1, "resourceVersion": "1"},
            "spec": {
                "cadence": "daily",
                "strategies": ["s0"],
                "items": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}],
                "signatures": [],
            },
            "status": {},
        }
        self.segments = Segments()
        self.audit = AuditLog(self.segments)  # type: ignore[arg-type]

    def read(self) -> dict[str, Any]:
        return copy.deepcopy(self.gate)

    def sign(self, item: str, signer: str) -> None:
        at = datetime.now(UTC).isoformat()
        self.gate["spec"]["signatures"].append({"item": item, "signer": signer, "signedAt": at, "evidence": "x"})
        self._bump()

    def _bump(self) -> None:
        self.rv += 1
        self.gate["metadata"]["resourceVersion"] = str(self.rv)

    def write_gate_status(self, namespace: str, name: str, status: Any, resource_version: str | None) -> bool:
        if self.preconditions and resource_version and resource_version != self.gate["metadata"]["resourceVersion"]:
            return False
        self.gate["status"] = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        self._bump()
        return True


class Runtime:
    def __init__(self, desk: Desk) -> None:
        self.executor = desk


def _race(desk: Desk) -> list[str]:
    """rita signs; the operator reads the gate; rob signs before its status write lands; the
    operator decides again on the object it read after rob's signature (its own write not seen
    yet); then on the object as it is. The chain as stored."""
    rt = Runtime(desk)
    desk.sign("a", "rita")
    seen_rita = desk.read()
    desk.sign("b", "rob")
    seen_rob = desk.read()  # its event, which arrives before the event of the write below
    controller.gate_status(seen_rita, {}, rt)  # type: ignore[arg-type]
    controller.gate_status(seen_rob, {}, rt)  # type: ignore[arg-type]
    controller.gate_status(desk.read(), {}, rt)  # type: ignore[arg-type]
    (lines,) = trails(desk.segments.objects.values()).values()
    return lines


def test_a_status_written_over_a_newer_gate_broke_the_chain() -> None:
    lines = _race(Desk(preconditions=False))
    _, findings = verify(lines)
    assert [f.kind for f in findings] == ["edited"]


def test_a_status_is_written_only_over_the_gate_as_read_and_the_chain_holds() -> None:
    desk = Desk()
    lines = _race(desk)
    entries, findings = verify(lines)
    assert findings == []
    assert [e["message"].split(" at ")[0] for e in entries] == ["a signed by rita", "b signed by rob"]
    assert desk.gate["status"]["audit"]["seq"] == 2 and desk.gate["status"]["state"] == "Complete"


def test_a_replica_taking_over_writes_the_dead_one_s_last_lines_once() -> None:
    """Seen in the long soak: a replica died between the status write that holds its decision's
    lines and the trail's; the standby that took over had synced that subject once before its
    pause, never wrote them, and the chain missed them. A process writes a status's lines again
    whenever it does not know them to be in the trail, and each line once."""
    desk = Desk()
    leader, standby = Runtime(desk), Runtime(Desk())
    standby.executor.gate, standby.executor.segments = desk.gate, desk.segments
    standby.executor.audit = AuditLog(desk.segments)  # type: ignore[arg-type]
    desk.sign("a", "rita")
    controller.gate_status(desk.read(), {}, leader)  # type: ignore[arg-type]
    controller.gate_status(desk.read(), {}, standby)  # type: ignore[arg-type]  # acting, before a pause
    desk.sign("b", "rob")
    # The leader's last decision: its status (head and lines) written, its trail not: it died.
    desk.audit.append = lambda *a, **k: True  # type: ignore[method-assign]
    controller.gate_status(desk.read(), {}, leader)  # type: ignore[arg-type]
    assert desk.gate["status"]["audit"]["seq"] == 2
    # The standby takes over, and decides twice.
    for _ in range(2):
        controller.gate_status(desk.read(), {}, standby)  # type: ignore[arg-type]
    (lines,) = trails(desk.segments.objects.values()).values()
    entries, findings = verify(lines)
    assert findings == [] and [e["seq"] for e in entries] == [1, 2]
