"""Incident commands (stratops.controller.incident): kopf never retries an event handler, so a
write that fails for a passing reason is tried again here; a refusal is not."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from stratops.controller import incident


class Flaky:
    """An Executor whose incident status write fails with STATUSES first, then works."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.calls = 0
        self.events: list[tuple[Any, ...]] = []
        self.cleared: list[list[str]] = []

    def update_incident_status(self, namespace: str, name: str, change: Any) -> dict[str, Any] | None:
        self.calls += 1
        if self.statuses:
            raise ApiException(status=self.statuses.pop(0))
        raw = {
            "metadata": {"uid": "u1", "annotations": {"stratops.io/ack": '{"by": "rita", "reason": "on it"}'}},
            "spec": {"strategy": "s", "class": "StaleData", "severity": "P1", "summary": "x"},
            "status": {},
        }
        change(raw)
        return raw

    def event(self, *args: Any, **kw: Any) -> None:
        self.events.append(args)

    def clear_incident_annotations(self, namespace: str, name: str, keys: list[str]) -> None:
        self.cleared.append(keys)


def test_a_busy_api_server_is_tried_again_until_the_command_is_written():
    ex = Flaky([503, 429])
    incident.command(ex, "desk", "inc-1", pause=0.001)  # type: ignore[arg-type]
    assert ex.calls == 3 and ex.cleared == [["stratops.io/ack"]]


def test_a_refusal_is_not_tried_again():
    ex = Flaky([403])
    with pytest.raises(ApiException) as e:
        incident.command(ex, "desk", "inc-1", pause=0.001)  # type: ignore[arg-type]
    assert e.value.status == 403 and ex.calls == 1 and not ex.cleared


def test_an_api_server_away_for_good_is_said_after_the_last_attempt():
    ex = Flaky([503] * incident.ATTEMPTS)
    with pytest.raises(ApiException):
        incident.command(ex, "desk", "inc-1", pause=0.001)  # type: ignore[arg-type]
    assert ex.calls == incident.ATTEMPTS
