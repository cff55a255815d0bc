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


def test_a_watched_body_its_own_writes_superseded_is_answered_with_the_last_one_until_the_echo():
    """Issue 21: under load an owned object's event pokes a pass before the Strategy's own event
    for this process's last status write arrives; the watched body is then one that write (or an
    earlier one of this process) superseded. The pass decides on the object the write returned,
    as fresh as a read, instead of reading it. Nothing is held for any other version, after the
    echo, after a refused or lost write, or after the kill path's own write."""
    ex = Executor(client.ApiClient())
    fake = FakeStrategies()
    ex._custom = fake  # type: ignore[assignment]
    assert ex.written_since("desk", "s", "5") is None  # nothing written yet: read
    ex.write_status("desk", "s", StrategyStatus(), "5")
    ex.write_status("desk", "s", StrategyStatus(), "6")
    for lagging in ("5", "6"):  # the watch shows either of the superseded versions
        held = ex.written_since("desk", "s", lagging)
        assert held is not None and held["metadata"]["resourceVersion"] == "7"
    assert ex.written_since("desk", "s", "4") is None, "a version it never wrote over: read"
    assert ex.written_since("desk", "other", "5") is None
    ex.clear_annotations("desk", "s", ["stratops.io/kill"])  # the newest is the patch's answer
    assert ex.written_since("desk", "s", "6")["metadata"]["resourceVersion"] == "8"  # type: ignore[index]
    assert ex.written_since("desk", "s", "8") is None  # the echo: is_last_written from here
    assert ex.is_last_written("desk", "s", "8") and ex.written_since("desk", "s", "6") is None

    ex.write_status("desk", "s", StrategyStatus(), "8")
    fake.rv = 12  # someone wrote meanwhile: refused, nothing held
    try:
        ex.write_status("desk", "s", StrategyStatus(), "9")
    except ApiException:
        pass
    assert ex.written_since("desk", "s", "8") is None

    class Lost(FakeStrategies):
        def replace_namespaced_custom_object_status(self, *args, **kw):  # type: ignore[no-untyped-def]
            super().replace_namespaced_custom_object_status(*args, **kw)
            raise ConnectionError("the answer was lost; the write landed")

    ex.write_status("desk", "s", StrategyStatus(), "12")
    ex._custom = Lost()  # type: ignore[assignment]
    ex._custom.rv = 13  # type: ignore[attr-defined]
    try:
        ex.write_status("desk", "s", StrategyStatus(), "13")
    except ConnectionError:
        pass
    assert ex.written_since("desk", "s", "12") is None, "a lost answer: read before the next write"

    ex._custom = fake  # type: ignore[assignment]
    fake.rv = 20
    ex.write_status("desk", "s", StrategyStatus(), "20")
    ex.write_halt_status("desk", "s", "21", {})
    assert ex.written_since("desk", "s", "20") is None, "the kill path's write: read before the next"


def test_a_read_over_a_lagging_body_answers_the_next_pass_on_that_body():
    """Issue 21: at 500 new strategies every owned object's event poked a pass while the
    Strategy's own events lagged, and each read the Strategy again (3.4 reads per strategy). A
    read over a watched body at an older version answers the next pass on that body."""

    class Stored(FakeStrategies):
        def get_namespaced_custom_object(self, group, version, ns, plural, name):
            return {"metadata": {"name": name, "resourceVersion": str(self.rv)}}

    ex = Executor(client.ApiClient())
    fake = Stored()
    ex._custom = fake  # type: ignore[assignment]
    assert ex.read_over("desk", "s", "5")["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    assert ex.written_since("desk", "s", "5") is None, "the body was current: nothing held"
    fake.rv = 7
    assert ex.read_over("desk", "s", "3")["metadata"]["resourceVersion"] == "7"  # type: ignore[index]
    assert ex.written_since("desk", "s", "3")["metadata"]["resourceVersion"] == "7"  # type: ignore[index]
    assert ex.written_since("desk", "s", "4") is None, "a version not known superseded: read"
    assert ex.written_since("desk", "s", "7") is None  # the watch caught up
    assert ex.written_since("desk", "s", "3") is None
