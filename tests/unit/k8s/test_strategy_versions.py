"""The Executor remembers the resourceVersion its own writes of a Strategy left (issue 21: the
controller then decides on the watch's echo of them without reading the Strategy again), and
forgets it when a status write is refused, so the next pass reads the Strategy as stored."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops.k8s.executor import Executor
from stratops.models.strategy import StrategyStatus


class FakeStrategies:
    """A Strategy on an API server: a write at a stale resourceVersion is a 409."""

    def __init__(self) -> None:
        self.rv = 5

    def replace_namespaced_custom_object_status(self, group, version, ns, plural, name, body):
        if body["metadata"]["resourceVersion"] != str(self.rv):
            raise ApiException(status=409, reason="Conflict")
        self.rv += 1
        return {"metadata": {"name": name, "resourceVersion": str(self.rv)}}

    def patch_namespaced_custom_object(self, group, version, ns, plural, name, patch):
        self.rv += 1
        return {"metadata": {"name": name, "resourceVersion": str(self.rv)}}


def test_the_version_of_its_own_last_write_is_known_and_forgotten_on_a_conflict():
    ex = Executor(client.ApiClient())
    fake = FakeStrategies()
    ex._custom = fake  # type: ignore[assignment]
    assert not ex.is_last_written("desk", "s", "5")  # nothing written yet: read first
    ex.write_status("desk", "s", StrategyStatus(), "5")
    assert ex.is_last_written("desk", "s", "6") and not ex.is_last_written("desk", "s", "5")
    ex.clear_annotations("desk", "s", ["stratops.io/kill"])
    assert ex.is_last_written("desk", "s", "7") and not ex.is_last_written("desk", "s", "6")
    fake.rv = 9  # someone wrote meanwhile
    try:
        ex.write_status("desk", "s", StrategyStatus(), "7")
    except ApiException as e:
        assert e.status == 409
    else:
        raise AssertionError("a write over a stale version must be refused")
    assert not ex.is_last_written("desk", "s", "7"), "after a conflict, the next pass reads the Strategy"
    assert not ex.is_last_written("desk", "other", "7")
