"""The Incident resource: one breach, moved by the operator through the four-step playbook."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from stratops.models.common import Model, Rule
from stratops.models.monitor import IncidentClass, Severity


class Postmortem(Model):
    """Required before the incident can be resolved."""

    root_cause: str = Field(min_length=1, max_length=4096, description="What caused it.")
    actions: list[str] = Field(min_length=1, max_length=50, description="Follow-up actions.")
    owner: str = Field(min_length=1, max_length=253, description="Who owns the follow-up.")


class IncidentSpec(Model):
    """What happened. Created by the operator; on-call adds the postmortem."""

    class_: IncidentClass = Field(
        alias="class",
        description="BrokerOutage, FeatureDrift, PnLDivergence, StaleData, ConfigDrift or RiskBreach; immutable.",
    )
    severity: Severity = Field(description="P0 (stop) or P1 (slow); immutable.")
    strategy: str = Field(min_length=1, max_length=253, description="The affected Strategy; immutable.")
    monitor: str | None = Field(default=None, max_length=253, description="The Monitor that detected it, if any.")
    summary: str = Field(min_length=1, max_length=2048, description="One line for on-call.")
    action: Literal["killSwitch", "throttle", "rollback", "none"] | None = Field(
        default=None, description="Immediate action; when absent, P0 kill-switch and P1 throttle."
    )
    postmortem: Postmortem | None = Field(default=None, description="Root cause, actions, owner.")
    require_rearm: bool | None = Field(
        default=None,
        description="Its kill-switch stays on until a designated user re-arms (spec.killSwitch.rearmBy of the "
        "strategy).",
    )

    __rules__ = (
        Rule(
            cel="self.class == oldSelf.class && self.severity == oldSelf.severity && self.strategy == oldSelf.strategy",
            message="spec.class, spec.severity and spec.strategy are immutable",
        ),
    )


class Step(Model):
    """One playbook step as it happened."""

    at: datetime = Field(description="When the step was completed.")
    by: str = Field(description="Who or what completed it (the operator, or a user).")
    detail: str = Field(default="", description="What was done.")


class Steps(Model):
    """The four playbook steps: detection, immediate action, containment, postmortem."""

    detection: Step | None = Field(default=None, description="The breach was detected.")
    immediate_action: Step | None = Field(
        default=None, description="Kill-switch, throttle or rollback was carried out."
    )
    containment: Step | None = Field(default=None, description="The cause was isolated.")
    postmortem: Step | None = Field(default=None, description="The postmortem was written.")


class IncidentStatus(Model):
    """Where the incident is. Written only by the operator."""

    phase: Literal["Open", "Acknowledged", "Contained", "Resolved"] | None = Field(
        default=None, description="Open, Acknowledged, Contained or Resolved."
    )
    steps: Steps | None = Field(default=None, description="Playbook steps with times.")
    acknowledged_by: str | None = Field(default=None, description="Who acknowledged it.")
    resolved_at: datetime | None = Field(default=None, description="When it was resolved.")
    resolved_by: str | None = Field(default=None, description="Who resolved it.")
    resolution: str | None = Field(default=None, description="How it ended.")
    message: str | None = Field(default=None, description="Last refusal or note, for humans.")
    monitors: list[str] | None = Field(
        default=None,
        max_length=500,
        description="The monitors whose findings it groups: one root cause, one incident (a source outage is one "
        "StaleData incident per strategy, however many of its monitors go stale).",
    )
