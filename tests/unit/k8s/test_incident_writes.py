"""The operator's writes of an Incident's status: read, changed, and written at the
resourceVersion read, so a person's resolve and the operator's own steps never overwrite each
other from a stale copy."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops.k8s.executor import Executor

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class FakeIncidents:
    """An Incident on an API server: a merge patch with a stale resourceVersion is a 409."""

    def __init__(self, status: dict) -> None:
        self.obj = {
            "metadata": {"name": "i", "resourceVersion": "1", "creationTimestamp": "2026-12-01T08:00:00Z"},
            "spec": {"summary": "s"},
            "status": status,
        }
        self.before_patch = None  # a write by someone else, between our read and our patch
        self.patches: list[dict] = []

    def get_namespaced_custom_object(self, *a):
        return copy.deepcopy(self.obj)

    def patch_namespaced_custom_object_status(self, group, version, ns, plural, name, body):
        if self.before_patch is not None:
            self.before_patch(self.obj)
            self.before_patch = None
            self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
        if body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.patches.append(body["status"])
        status = self.obj.setdefault("status", {})
        for k, v in body["status"].items():
            status[k] = {**status.get(k, {}), **v} if isinstance(v, dict) else v
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)


def executor(fake: FakeIncidents) -> Executor:
    ex = Executor(client.ApiClient())
    ex._custom = fake  # type: ignore[assignment]
    return ex


def test_containment_never_puts_a_resolved_incident_back():
    fake = FakeIncidents({"phase": "Resolved", "steps": {"postmortem": {"by": "rita"}}})
    executor(fake).record_containment("ns", "i", "scaled to 0", NOW)
    assert fake.obj["status"]["phase"] == "Resolved" and "containment" in fake.obj["status"]["steps"]


def test_a_resolve_between_the_read_and_the_write_is_not_overwritten():
    fake = FakeIncidents({"phase": "Open", "steps": {}})
    fake.before_patch = lambda obj: obj["status"].update(phase="Resolved")  # a person resolves meanwhile
    executor(fake).record_incident_action("ns", "i", "kill-switch", NOW)
    assert fake.obj["status"]["phase"] == "Resolved"  # written again from the fresh read, after the conflict
    assert fake.obj["status"]["steps"]["immediateAction"]["detail"] == "kill-switch"
    assert [p["phase"] for p in fake.patches] == ["Resolved"]


def test_a_deleted_incident_is_nothing_to_write():
    class Gone(FakeIncidents):
        def get_namespaced_custom_object(self, *a):
            raise ApiException(status=404, reason="Not Found")

    assert executor(Gone({})).update_incident_status("ns", "i", lambda inc: {"phase": "Open"}) is None


class Existing:
    """An Incident that already exists: create is a 409; every status patch is recorded."""

    def __init__(self, status: dict) -> None:
        self.obj = {"metadata": {"name": "i", "resourceVersion": "3"}, "spec": {"summary": "s"}, "status": status}
        self.patches: list[dict] = []

    def create_namespaced_custom_object(self, *a):
        raise ApiException(status=409, reason="AlreadyExists")

    def get_namespaced_custom_object(self, *a):
        return copy.deepcopy(self.obj)

    def patch_namespaced_custom_object_status(self, group, version, ns, plural, name, body):
        self.patches.append(body["status"])


def _new_incident():
    from stratops.lifecycle.types import NewIncident
    from stratops.models.monitor import IncidentClass, Severity

    return NewIncident("i", IncidentClass.config_drift, Severity.P1, "control drift", "none", "reverted")


def test_an_incident_opened_before_is_never_reopened_or_restamped():
    # Seen again by a replica whose index lagged (a takeover): a person had resolved it.
    fake = Existing({"phase": "Resolved", "steps": {"detection": {"at": "2026-12-01T08:00:00Z", "by": "operator"}}})
    assert executor(fake).create_incident("ns", "s", "u", _new_incident(), NOW) is False  # type: ignore[arg-type]
    assert fake.patches == []


def test_an_incident_created_but_never_stamped_gets_its_detection():
    # The create landed and the process died before the status: the next pass finishes it.
    fake = Existing({})
    assert executor(fake).create_incident("ns", "s", "u", _new_incident(), NOW) is False  # type: ignore[arg-type]
    [patch] = fake.patches
    assert patch["phase"] == "Open" and patch["steps"]["detection"]["detail"] == "control drift"
