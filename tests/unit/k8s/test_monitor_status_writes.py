"""A monitor's status is written when something that matters changes, and refreshed at most
once a period otherwise: thousands of monitors evaluated every few seconds are not as many
API writes (stratops.k8s.monitoring.needs_write)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stratops.k8s.monitoring import needs_write
from stratops.models.monitor import LastAlert, MonitorStatus

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _st(**kw) -> MonitorStatus:  # type: ignore[no-untyped-def]
    base = {
        "last_value": "10",
        "last_evaluation": T0,
        "consecutive_breaches": 0,
        "breaching": False,
        "stale": False,
        "detail": "value 10",
        "observed_generation": 1,
    }
    return MonitorStatus.model_validate({**base, **kw})


def test_first_evaluation_is_written():
    assert needs_write(MonitorStatus(), _st(), T0, 60)


def test_value_detail_and_time_alone_wait_for_the_refresh_period():
    later = T0 + timedelta(seconds=5)
    assert not needs_write(_st(), _st(last_value="11", detail="value 11", last_evaluation=later), later, 60)
    at_refresh = T0 + timedelta(seconds=60)
    assert needs_write(_st(), _st(last_value="11", last_evaluation=at_refresh), at_refresh, 60)


def test_verdict_breach_count_alert_incident_problem_and_generation_are_written_at_once():
    later = T0 + timedelta(seconds=1)
    alert = LastAlert(at=later, channel="page", state="firing", delivered=False)
    for change in (
        {"breaching": True},
        {"stale": True},
        {"consecutive_breaches": 1},
        {"incident": "m-1"},
        {"problem": "strategy x not found"},
        {"observed_generation": 2},
        {"last_alert": alert},
    ):
        assert needs_write(_st(), _st(last_evaluation=later, **change), later, 60), change
    assert needs_write(_st(last_alert=alert), _st(last_alert=alert.model_copy(update={"delivered": True})), later, 60)


def test_zero_period_writes_every_evaluation():
    assert needs_write(_st(), _st(), T0 + timedelta(seconds=1), 0)


# -- a monitor's referenced Secret and ConfigMaps: read once a period, not every evaluation ----
class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _reader(values: list):  # type: ignore[no-untyped-def]
    calls = []

    def read():  # type: ignore[no-untyped-def]
        calls.append(1)
        v = values[len(calls) - 1]
        if isinstance(v, Exception):
            raise v
        return v

    return read, calls


def test_recent_reads_are_kept_for_the_period_then_read_again():
    from stratops.k8s.monitoring import RecentReads

    clock = _Clock()
    recent = RecentReads(60, clock)
    read, calls = _reader(["token-1", "token-2"])
    assert recent.get(("secret", "ns", "s", "k"), read) == "token-1"
    clock.t = 59
    assert recent.get(("secret", "ns", "s", "k"), read) == "token-1" and len(calls) == 1
    clock.t = 60  # rotated: seen once the period is over
    assert recent.get(("secret", "ns", "s", "k"), read) == "token-2" and len(calls) == 2


def test_failed_reads_are_not_kept_and_fresh_reads_bypass():
    from stratops.k8s.monitoring import RecentReads

    recent = RecentReads(60, _Clock())
    read, calls = _reader([KeyError("missing"), {"a": "1"}, {"a": "1", "b": "2"}])
    try:
        recent.get(("configmap", "ns", "base"), read)
        raise AssertionError("the failed read should raise")
    except KeyError:
        pass
    assert recent.get(("configmap", "ns", "base"), read) == {"a": "1"}  # created since: read again
    assert recent.get(("configmap", "ns", "base"), read, fresh=True) == {"a": "1", "b": "2"}
    assert recent.get(("configmap", "ns", "base"), read) == {"a": "1", "b": "2"} and len(calls) == 3


def test_zero_seconds_reads_every_time_and_the_limit_bounds_memory():
    from stratops.k8s.monitoring import RecentReads

    read, _calls = _reader(["x", "y"])
    recent = RecentReads(0, _Clock())
    assert [recent.get(("k",), read), recent.get(("k",), read)] == ["x", "y"]
    bounded = RecentReads(60, _Clock(), limit=3)
    for i in range(10):
        bounded.get((str(i),), lambda: i)
    assert len(bounded._items) <= 3


def test_specs_are_parsed_once_per_uid_and_generation():
    import copy

    import yaml
    from kubernetes import client

    from stratops.k8s.monitoring import MonitorRunner
    from stratops.models.monitor import MonitorSpec
    from stratops.testing.controlplane import repo_root

    root = repo_root()
    assert root is not None
    spec = yaml.safe_load((root / "examples/monitors/06-infra-queue-backlog.yaml").read_text())["spec"]
    runner = MonitorRunner(client.ApiClient())
    key = ("monitor", "ns", "m")
    first = runner._parsed(key, ("uid-1", 1), MonitorSpec, spec)
    assert runner._parsed(key, ("uid-1", 1), MonitorSpec, spec) is first
    edited = copy.deepcopy(spec)
    edited["frequency"] = "7s"
    assert runner._parsed(key, ("uid-1", 2), MonitorSpec, edited).frequency == "7s"  # an edit: new generation
    assert runner._parsed(key, ("uid-2", 1), MonitorSpec, spec).frequency == spec["frequency"]  # re-created
    # nothing to tell versions apart: parsed every time
    assert runner._parsed(key, ("uid-2", None), MonitorSpec, spec) is not runner._parsed(
        key, ("uid-2", None), MonitorSpec, spec
    )


def test_stale_while_the_kill_switch_is_latched_opens_nothing_and_stale_after_the_resume_does(monkeypatch):
    """A halted strategy's pods are stopped, so its monitors find no data: no incident and no
    alert for that (each would throttle a halted strategy and bury the incident that halted it).
    The same stale finding after the resume is a new finding, with its incident and alert."""
    from types import SimpleNamespace

    from kubernetes import client

    from cases import example
    from stratops.k8s import monitoring as M
    from stratops.monitors.evaluate import HALTED_NOTE, Evaluation

    monkeypatch.setattr(M, "evaluate", lambda *a, **k: Evaluation(None, False, True, 0, "stale: no data for the query"))
    sent, incidents, writes = [], [], []
    runner = M.MonitorRunner(
        client.ApiClient(), notifier=SimpleNamespace(deliver=lambda a: (sent.append(a.state), (True, ""))[1])
    )
    runner._write_status = lambda ns, name, st, uid: writes.append(st)  # type: ignore[method-assign]
    runner.executor = SimpleNamespace(
        create_incident=lambda *a, **k: incidents.append(a),
        event=lambda *a, **k: None,
        open_group_incident=lambda *a, **k: None,
    )
    mon = example("monitors/01-data-bar-age.yaml")
    mon["spec"]["source"]["prometheus"]["url"] = "http://127.0.0.1:1"
    body = {
        "metadata": {"name": "bar-age", "namespace": "fx", "uid": "m1", "generation": 1},
        "spec": mon["spec"],
        "status": {},
    }
    strategy = example("strategy.yaml")

    def with_status(status: dict) -> dict:
        return {"spec": strategy["spec"], "status": status, "uid": "s1", "generation": 1}

    runner.run(body, with_status({"killSwitch": {"latched": True, "reason": "drill"}}))
    assert incidents == [] and sent == []
    assert writes[-1].stale is True and writes[-1].stale_expected is True, writes[-1]
    assert writes[-1].detail.startswith(HALTED_NOTE), writes[-1]
    body["status"] = writes[-1].model_dump(by_alias=True, mode="json", exclude_none=True)
    runner.run(body, with_status({"killSwitch": {"latched": True}}))
    assert incidents == [] and sent == []
    body["status"] = writes[-1].model_dump(by_alias=True, mode="json", exclude_none=True)
    runner.run(body, with_status({"killSwitch": {"latched": False}}))  # resumed, still no data
    assert len(incidents) == 1 and sent == ["firing"]
    assert not writes[-1].stale_expected and not writes[-1].detail.startswith(HALTED_NOTE)


class Incidents:
    """The Executor's incident writes, kept in memory: which incidents exist, open or resolved,
    and the monitors each groups."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    def create_incident(self, ns, strategy, uid, inc, now, monitor=None, detected_by="", group=None) -> bool:
        self.items.setdefault(inc.name, {"group": group, "strategy": strategy, "open": True, "monitors": [monitor]})
        return True

    def open_group_incident(self, ns, strategy, group, known):
        if known is not None and self.items.get(known, {}).get("open"):
            return known
        found = [n for n, i in self.items.items() if i["group"] == group and i["strategy"] == strategy and i["open"]]
        return found[-1] if found else None

    def join_incident(self, ns, name, monitor) -> bool:
        inc = self.items.get(name)
        if inc is None or not inc["open"]:
            return False
        if monitor not in inc["monitors"]:
            inc["monitors"].append(monitor)
        return True

    def event(self, *a, **k) -> None:
        pass


def test_a_source_outage_is_one_incident_per_strategy_which_each_stale_monitor_joins(monkeypatch):
    """One root cause, one incident (issue 21): every monitor of a strategy that goes stale joins
    the strategy's open StaleData incident; one resolved meanwhile starts a new one; an operator
    restarted finds the open one; a breach is its monitor's own incident."""
    from types import SimpleNamespace

    from kubernetes import client

    from cases import example
    from stratops.k8s import monitoring as M
    from stratops.monitors.evaluate import Evaluation

    verdict = {"stale": True}
    monkeypatch.setattr(
        M,
        "evaluate",
        lambda *a, **k: (
            Evaluation(None, False, True, 0, "stale: source unreachable")
            if verdict["stale"]
            else Evaluation(5000.0, True, False, 3, "breach: 5000 > 1000")
        ),
    )
    incidents = Incidents()

    def runner() -> M.MonitorRunner:
        r = M.MonitorRunner(client.ApiClient(), notifier=SimpleNamespace(deliver=lambda a: (True, "")))
        r._write_status = lambda ns, name, st, uid: None  # type: ignore[method-assign]
        r.executor = incidents  # type: ignore[assignment]
        return r

    strategy = example("strategy.yaml")
    desk = {"spec": strategy["spec"], "status": {}, "uid": "s1", "generation": 1}

    def monitor(name: str, file: str = "monitors/01-data-bar-age.yaml") -> dict:
        spec = example(file)["spec"]
        spec["source"]["prometheus"]["url"] = "http://127.0.0.1:1"
        return {"metadata": {"name": name, "namespace": "fx", "uid": name, "generation": 1}, "spec": spec, "status": {}}

    first = runner()
    for name in ("bar-age", "queue", "latency"):
        first.run(monitor(name), desk)
    [(group_name, inc)] = incidents.items.items()
    assert inc["monitors"] == ["bar-age", "queue", "latency"] and inc["group"] == "stale"
    # The operator restarted: the open incident is found by its label, not opened again.
    runner().run(monitor("fills"), desk)
    assert list(incidents.items) == [group_name] and incidents.items[group_name]["monitors"][-1] == "fills"
    # Resolved by a person: the next stale finding is a new root cause's incident.
    incidents.items[group_name]["open"] = False
    runner().run(monitor("pnl"), desk)
    assert len(incidents.items) == 2
    # A breach is the monitor's own finding, with an incident of its own.
    verdict["stale"] = False
    runner().run(monitor("drift"), desk)
    assert len(incidents.items) == 3 and list(incidents.items.values())[-1]["group"] is None
