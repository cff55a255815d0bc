"""What the lifecycle decision reads and what it returns (pure): the views of the objects it
observes, its Observations, and its Plan (what to write, in the Executor's order) with its
events and new incidents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stratops.gates.evaluate import GateEvaluation
from stratops.lifecycle.commands import Command
from stratops.lifecycle.control import Acknowledgement, ControlDocument
from stratops.models.monitor import IncidentClass, Severity
from stratops.models.strategy import StrategyStatus
from stratops.recovery.actions import immediate_action


# -- observations ------------------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentView:
    """What matters of the owned Deployment."""

    image: str
    replicas: int
    generation: int
    observed_generation: int
    status_replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    live_fingerprint: str
    desired_fingerprint: str | None

    def healthy(self, image: str, replicas: int) -> bool:
        return (
            self.image == image
            and self.replicas == replicas
            and self.observed_generation >= self.generation
            and self.status_replicas == replicas
            and self.updated_replicas == replicas
            and self.ready_replicas == replicas
            and self.available_replicas == replicas
        )


@dataclass(frozen=True)
class PodView:
    name: str
    ready: bool
    terminating: bool
    image: str = ""  # the container image the pod was created with
    image_id: str = ""  # what the node resolved it to (digest), once running
    owner: str | None = None  # controller owner, e.g. ReplicaSet/<deployment>-<hash>
    version: str | None = None  # its stratops.io/version label (the version its template runs)


@dataclass(frozen=True)
class IncidentView:
    name: str
    class_: str
    severity: str
    action: str | None
    phase: str
    acted: bool = False  # its immediate-action step is recorded
    contained: bool = False  # its containment step is recorded
    require_rearm: bool = False  # its kill-switch needs a designated user's re-arm

    @property
    def open(self) -> bool:
        return self.phase != "Resolved"

    @property
    def immediate_action(self) -> str:
        return immediate_action(self.action, self.severity)


@dataclass(frozen=True)
class ReportMonitor:
    """A Monitor of a value the strategy reports (exposure, loss): evaluated on every report."""

    name: str
    report: str  # exposure | loss
    comparison: str  # > >= < <=
    threshold: float
    class_: str
    severity: str
    action: str  # auto | killSwitch | throttle | none
    require_rearm: bool = False

    def breached(self, value: float) -> bool:
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
        }[self.comparison]


@dataclass(frozen=True)
class Stored:
    """Which of a strategy's own objects the indexes show stored: a write of one that is not
    creates it first, and one that is replaces it first (the other request only when the index
    lagged). Saves a failed request on every strategy's first Deployment and control document."""

    ack_configmap: bool = True
    control_configmap: bool = True
    deployment: bool = True


@dataclass(frozen=True)
class Observations:
    now: datetime
    name: str
    namespace: str
    uid: str
    generation: int
    deployment: DeploymentView | None = None
    pods: tuple[PodView, ...] = ()
    control: ControlDocument | None = None
    acks: dict[str, Acknowledgement] = field(default_factory=dict)
    incidents: tuple[IncidentView, ...] = ()
    gates: dict[str, GateEvaluation | None] = field(default_factory=dict)
    commands: tuple[Command, ...] = ()
    report_monitors: tuple[ReportMonitor, ...] = ()
    trading_author: str | None = None  # who last changed the trading-relevant spec (recorded at admission)
    mode_author: str | None = None  # who last changed spec.mode (recorded at admission)
    control_problem: str | None = None  # the owned control ConfigMap holds something unreadable
    # The content hash of the control document this operator process last wrote itself (its own
    # write, even when the status recording it was not written): never taken for drift.
    control_written: str | None = None
    foreign_configmaps: tuple[str, ...] = ()  # carry the strategy's labels, not its ownership: ignored
    ack_problems: tuple[str, ...] = ()  # acknowledgements ignored, and why
    gate_problems: tuple[str, ...] = ()  # gates that cannot be evaluated, and why
    # A new Strategy under a name that has a trail: its last kill-switch or resume entry, and
    # where its chain ends (a Strategy deleted and applied again continues its history).
    prior_latch: dict[str, Any] | None = None
    prior_head: tuple[int, str] | None = None


# -- plan --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str
    record: dict[str, Any] | None = None  # for the audit trail, when not a section of status


@dataclass(frozen=True)
class NewIncident:
    name: str
    class_: IncidentClass
    severity: Severity
    summary: str
    action: str  # what was already done: the operator records it as the immediate action
    detail: str
    require_rearm: bool = False


@dataclass
class Plan:
    status: StrategyStatus
    deployment: dict[str, Any] | None = None  # create or replace with this manifest
    deployment_drifted: bool = False
    control: ControlDocument | None = None  # write this control document
    incidents: list[NewIncident] = field(default_factory=list)
    incident_actions: list[tuple[str, str]] = field(default_factory=list)  # (incident, what was done)
    incident_containment: list[tuple[str, str]] = field(default_factory=list)  # (incident, safe state reached)
    events: list[Event] = field(default_factory=list)
    clear_annotations: list[str] = field(default_factory=list)
    requeue_after: float | None = None
    kill_switch_seconds: float | None = None  # decision -> completed, when completed now
    delete_pods: list[str] = field(default_factory=list)  # foreign pods under the strategy's name, while halted
    actions: list[str] = field(default_factory=list)  # for metrics: kill_switch, throttle, rollback, ...

    def is_noop(self, status: StrategyStatus) -> bool:
        """Whether carrying out this plan writes nothing: STATUS (the one decided on) unchanged,
        and no object, event, incident or annotation to write."""
        return not (
            self.deployment
            or self.control
            or self.incidents
            or self.incident_actions
            or self.incident_containment
            or self.delete_pods
            or self.events
            or self.clear_annotations
            or self.status.to_dict() != status.to_dict()
        )

    def wake_in(self, seconds: float) -> None:
        seconds = max(seconds, 0.5)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)
