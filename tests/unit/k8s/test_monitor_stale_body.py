"""A monitor's next evaluation decides on the status its last one wrote, even while kopf's copy
of the Monitor lags (its watch reconnecting after the API server was away). The soak found two
incidents opened for one breach, one evaluation apart, right after the replicas' connections to
the API server were cut: the second evaluation read a status from before the first one's write
(no incident), and opened another."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from prometheus_client import REGISTRY

from stratops.k8s.monitoring import MonitorRunner
from stratops.monitors.prometheus import Series

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 12, 6, 8, 28, 5, tzinfo=UTC)


class Source:
    """A Prometheus whose queue depth is over the threshold."""

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        return [Series({}, [(at or T0, 5000.0)])]


class Desk:
    """The writes of the runner: monitor statuses (kept, as the API server would) and incidents."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.incidents: list[str] = []

    # CustomObjectsApi
    def patch_namespaced_custom_object_status(self, group, version, ns, plural, name, body):  # type: ignore[no-untyped-def]
        self.status = {k: v for k, v in {**self.status, **body["status"]}.items() if v is not None}

    # Executor
    def create_incident(self, namespace: str, strategy: str, uid: str, inc: Any, now: datetime, **_: Any) -> bool:
        self.incidents.append(inc.name)
        return True

    def event(self, *args: Any, **kw: Any) -> None:
        pass


class Notifier:
    def deliver(self, alert: Any) -> tuple[bool, str]:
        return True, "sent"


def _runner(desk: Desk) -> MonitorRunner:
    runner = MonitorRunner(client.ApiClient(), Notifier())  # type: ignore[arg-type]
    runner.custom = desk  # type: ignore[assignment]
    runner.executor = desk  # type: ignore[assignment]
    runner._source = lambda url, timeout, token: Source()  # type: ignore[method-assign,assignment,misc]
    return runner


def test_a_lagging_copy_of_the_monitor_does_not_open_a_second_incident_for_one_breach() -> None:
    monitor = yaml.safe_load((ROOT / "examples" / "monitors" / "06-infra-queue-backlog.yaml").read_text())
    monitor["metadata"].update(namespace="desk", uid="m-1", generation=1)
    monitor["spec"].update(frequency="1s", incident={"class": "RiskBreach", "severity": "P1"})
    monitor["spec"]["source"]["prometheus"]["url"] = "http://prometheus.example:9090"
    monitor["status"] = {}
    strategy = yaml.safe_load((ROOT / "examples" / "strategy.yaml").read_text())
    strategy["metadata"].update(uid="s-1", generation=1)
    desk = Desk()
    runner = _runner(desk)
    lagging = copy.deepcopy(monitor)  # kopf's copy: the watch has not brought the write back yet
    runner.run(lagging, strategy, T0)
    assert len(desk.incidents) == 1 and desk.status["incident"] == desk.incidents[0]
    runner.run(copy.deepcopy(lagging), strategy, T0 + timedelta(seconds=1))
    assert len(desk.incidents) == 1, "one breach, one incident"
    # Once the copy has caught up, it is what the runner decides on.
    caught_up = {**copy.deepcopy(monitor), "status": dict(desk.status)}
    runner.run(caught_up, strategy, T0 + timedelta(seconds=2))
    assert len(desk.incidents) == 1


def test_a_monitor_that_is_gone_is_forgotten() -> None:
    """What the runner keeps per monitor (its last written status) goes with the monitor."""
    monitor = yaml.safe_load((ROOT / "examples" / "monitors" / "06-infra-queue-backlog.yaml").read_text())
    monitor["metadata"].update(namespace="desk", uid="m-1", generation=1)
    monitor["spec"]["source"]["prometheus"]["url"] = "http://prometheus.example:9090"
    strategy = yaml.safe_load((ROOT / "examples" / "strategy.yaml").read_text())
    strategy["metadata"].update(uid="s-1", generation=1)
    runner = _runner(Desk())
    runner.run(monitor, strategy, T0)
    name = monitor["metadata"]["name"]
    assert ("desk", name) in runner._written
    labels = {"namespace": "desk", "monitor": name, "strategy": monitor["spec"]["strategy"], "layer": "infrastructure"}
    # Its series say it breaches (5000 queued), and end with it: a deleted monitor's last stale
    # or breaching 1 would otherwise fire the chart's alerts for as long as the process runs.
    assert REGISTRY.get_sample_value("stratops_monitor_breaching", labels) == 1.0
    assert REGISTRY.get_sample_value("stratops_monitor_value", labels) == 5000.0
    assert REGISTRY.get_sample_value("stratops_monitor_stale", labels) == 0.0
    runner.forget("desk", name)
    assert runner._written == {}
    assert REGISTRY.get_sample_value("stratops_monitor_breaching", labels) is None
    assert REGISTRY.get_sample_value("stratops_monitor_value", labels) is None
