"""The one immediate-action policy (stratops.recovery.actions), and that every finding's source
uses it: a Prometheus monitor's breach, a reported limit, an incident that names no action."""

from __future__ import annotations

import itertools

import pytest

from stratops.models.monitor import Severity
from stratops.recovery.actions import ACTIONS, immediate_action, rolling_out

ROLLING = {"rollout": {"version": "1.5.0"}, "lastKnownGood": "1.4.2"}


@pytest.mark.parametrize(
    "severity,rolling,on_position,expected",
    [
        ("P0", False, False, "killSwitch"),
        ("P1", False, False, "throttle"),
        ("P0", True, False, "rollback"),
        ("P1", True, False, "rollback"),  # the new version is the likely cause
        ("P0", True, True, "killSwitch"),
        ("P1", True, True, "throttle"),  # a rollback would carry the position over
        ("P3", False, False, "throttle"),
    ],
)
def test_auto(severity, rolling, on_position, expected):
    for configured in ("auto", None):
        assert immediate_action(configured, severity, rolling_out=rolling, on_position=on_position) == expected


def test_a_configured_action_is_kept_whatever_else_holds():
    for action, severity, rolling, on_position in itertools.product(
        ACTIONS, ("P0", "P1"), (False, True), (False, True)
    ):
        assert immediate_action(action, severity, rolling_out=rolling, on_position=on_position) == action


def test_rolling_out_is_a_version_that_is_not_the_known_good_one():
    assert rolling_out(ROLLING)
    assert not rolling_out({"rollout": {"version": "1.4.2"}, "lastKnownGood": "1.4.2"})
    assert not rolling_out({"rollout": {"version": "1.5.0"}})  # the first version: nothing to roll back to
    assert not rolling_out(None) and not rolling_out({})


def test_every_source_of_a_finding_uses_it():
    from cases import example
    from stratops.lifecycle.types import IncidentView
    from stratops.models.monitor import MonitorSpec
    from stratops.monitors.decide import incident_action

    spec = MonitorSpec.model_validate(example("monitors/10-pnl-band.yaml")["spec"])
    for sev, status in itertools.product(Severity, (None, ROLLING)):
        s = spec.model_copy(update={"incident": spec.incident.model_copy(update={"severity": sev, "action": "auto"})})
        assert incident_action(s, status) == immediate_action("auto", sev, rolling_out=rolling_out(status))
    for sev in ("P0", "P1", "P2"):
        assert IncidentView("i", "RiskBreach", sev, None, "Open").immediate_action == immediate_action(None, sev)
        assert IncidentView("i", "RiskBreach", sev, "none", "Open").immediate_action == "none"
