"""What the Executor knows of a Strategy beyond its watched body (issue 21): the version its own
last write left, and the newest object it wrote or read. The controller decides on the watched
body, or on that object, without reading the Strategy again, wherever either is known current;
otherwise it reads. Forgotten when a write is refused or lost, so the next pass reads."""

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


class Stored(FakeStrategies):
    """Reads answer the Strategy as stored, and are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_namespaced_custom_object(self, group, version, ns, plural, name):
        self.reads += 1
        return {"metadata": {"name": name, "resourceVersion": str(self.rv)}, "status": {"phase": "Paper"}}


def _executor() -> tuple[Executor, Stored]:
    ex = Executor(client.ApiClient())
    fake = Stored()
    ex._custom = fake  # type: ignore[assignment]
    return ex, fake


def _body(rv: str, **extra: object) -> dict:
    return {"metadata": {"name": "s", "resourceVersion": rv, **extra}, "status": {"phase": "Paper"}}


def _decided_on(ex: Executor, fake: Stored, rv: str) -> tuple[str, bool]:
    """The version a pass on a watched body at RV decides on, and whether it read."""
    before = fake.reads
    body = _body(rv)
    got = ex.current_strategy("desk", "s", body)
    assert got is not None
    return got["metadata"]["resourceVersion"], fake.reads > before


def test_the_echo_of_its_own_last_write_is_decided_on_without_a_read_until_a_conflict():
    ex, fake = _executor()
    assert _decided_on(ex, fake, "5") == ("5", True)  # nothing written yet: read first
    ex.write_status("desk", "s", StrategyStatus(), "5")
    assert _decided_on(ex, fake, "6") == ("6", False)
    ex.clear_annotations("desk", "s", ["stratops.io/kill"])
    assert _decided_on(ex, fake, "7") == ("7", False)
    fake.rv = 9  # someone wrote meanwhile
    try:
        ex.write_status("desk", "s", StrategyStatus(), "7")
    except ApiException as e:
        assert e.status == 409
    else:
        raise AssertionError("a write over a stale version must be refused")
    assert _decided_on(ex, fake, "7") == ("9", True), "after a conflict, the next pass reads the Strategy"
    assert ex.current_strategy("desk", "other", _body("7")) is not None and fake.reads == 3


def test_a_watched_body_its_own_writes_superseded_is_answered_with_the_last_one_until_the_echo():
    """Under load an owned object's event pokes a pass before the Strategy's own event for this
    process's last status write arrives; the watched body is then one that write (or an earlier
    one of this process) superseded. The pass decides on the object the write returned, as fresh
    as a read, instead of reading it. Nothing is held for any other version, after the echo,
    after a refused or lost write, or after the kill path's own write."""
    ex, fake = _executor()
    ex.write_status("desk", "s", StrategyStatus(), "5")
    ex.write_status("desk", "s", StrategyStatus(), "6")
    for lagging in ("5", "6"):  # the watch shows either of the superseded versions
        assert _decided_on(ex, fake, lagging) == ("7", False)
    fake.rv = 7
    ex.clear_annotations("desk", "s", ["stratops.io/kill"])  # the newest is the patch's answer
    assert _decided_on(ex, fake, "7") == ("8", False)  # the status write's echo: superseded too
    assert _decided_on(ex, fake, "6") == ("8", False)
    assert _decided_on(ex, fake, "8") == ("8", False)  # the echo: nothing held from here
    assert _decided_on(ex, fake, "6") == ("8", True)

    ex.write_status("desk", "s", StrategyStatus(), "8")
    fake.rv = 12  # someone wrote meanwhile: refused, nothing held
    try:
        ex.write_status("desk", "s", StrategyStatus(), "9")
    except ApiException:
        pass
    assert _decided_on(ex, fake, "8") == ("12", True)

    class Lost(Stored):
        def replace_namespaced_custom_object_status(self, *args, **kw):  # type: ignore[no-untyped-def]
            super().replace_namespaced_custom_object_status(*args, **kw)
            raise ConnectionError("the answer was lost; the write landed")

    ex.write_status("desk", "s", StrategyStatus(), "12")
    lost = Lost()
    ex._custom = lost  # type: ignore[assignment]
    lost.rv = 13
    try:
        ex.write_status("desk", "s", StrategyStatus(), "13")
    except ConnectionError:
        pass
    assert _decided_on(ex, lost, "12") == ("14", True), "a lost answer: read before the next write"
    assert _decided_on(ex, lost, "13") == ("14", True), "nor the version the lost write went over"

    ex._custom = fake  # type: ignore[assignment]
    fake.rv = 20
    ex.write_status("desk", "s", StrategyStatus(), "20")
    ex.write_halt_status("desk", "s", "21", {})
    assert _decided_on(ex, fake, "20") == ("22", True), "the kill path's write: read before the next"


def test_a_read_over_a_lagging_body_answers_the_next_pass_on_that_body():
    """At 500 new strategies every owned object's event poked a pass while the Strategy's own
    events lagged, and each read the Strategy again (3.4 reads per strategy). A read over a
    watched body at an older version answers the next pass on that body."""
    ex, fake = _executor()
    assert _decided_on(ex, fake, "5") == ("5", True)
    assert _decided_on(ex, fake, "5") == ("5", True), "the body was current: nothing held"
    fake.rv = 7
    assert _decided_on(ex, fake, "3") == ("7", True)
    assert _decided_on(ex, fake, "3") == ("7", False)
    assert _decided_on(ex, fake, "4") == ("7", True), "a version not known superseded: read"
    assert _decided_on(ex, fake, "7") == ("7", False)  # the watch caught up: the body
    assert _decided_on(ex, fake, "3") == ("7", True)


def test_a_new_strategy_is_decided_on_as_watched_until_a_write_is_tried():
    """Never decided on (no status), never written by this process: the watched body is as fresh
    as a read (no finalizer patch of kopf's follows a new Strategy). Once a write was tried, or
    with a status this process never wrote, a read."""
    ex, fake = _executor()
    new = {"metadata": {"name": "s", "resourceVersion": "4"}}
    assert ex.current_strategy("desk", "s", new) is new and fake.reads == 0
    decided = {"metadata": {"name": "s", "resourceVersion": "3"}, "status": {"phase": "Running"}}
    assert ex.current_strategy("desk", "s", decided) is not decided and fake.reads == 1
    fake.rv = 4
    try:
        ex.write_status("desk", "s", StrategyStatus(), "3")
    except ApiException:
        pass
    assert ex.current_strategy("desk", "s", new) is not new and fake.reads == 2
