"""The four stratops resources (group stratops.io, version v1alpha1) and their CRDs."""

from __future__ import annotations

from stratops.models.audit import AuditSegmentSpec, AuditSegmentStatus
from stratops.models.crd import PrinterColumn, ResourceKind
from stratops.models.gate import GateSpec, GateStatus
from stratops.models.incident import IncidentSpec, IncidentStatus
from stratops.models.monitor import MonitorSpec, MonitorStatus
from stratops.models.strategy import StrategySpec, StrategyStatus

C = PrinterColumn

STRATEGY = ResourceKind(
    kind="Strategy",
    plural="strategies",
    short_names=("strat",),
    spec=StrategySpec,
    status=StrategyStatus,
    description="A trading strategy run by stratops: image and version, mode, risk limits, brokers, gates.",
    columns=(
        C("Phase", ".status.phase"),
        C("Mode", ".status.mode", description="Mode in force"),
        C("Version", ".status.activeVersion"),
        C("Trading", ".status.tradingState", description="ACTIVE, REDUCING, HALTED, or STANDBY (a held handover)"),
        C("Known-Good", ".status.lastKnownGood", priority=1),
        C("Wanted", ".spec.version", priority=1),
    ),
    max_name=63,  # stratops.io/strategy=<name> labels its Deployment, pods and ConfigMaps
)
MONITOR = ResourceKind(
    kind="Monitor",
    plural="monitors",
    short_names=("stmon",),
    spec=MonitorSpec,
    status=MonitorStatus,
    description="One check on one layer of a strategy, evaluated at its own frequency.",
    columns=(
        C("Strategy", ".spec.strategy"),
        C("Layer", ".spec.layer"),
        C("Check", ".spec.check.kind"),
        C("Last", ".status.lastValue", description="Last value"),
        C("Breaching", ".status.breaching", "boolean"),
        C("Stale", ".status.stale", "boolean", priority=1),
        C("Channel", ".spec.alert.channel", priority=1),
        C("Every", ".spec.frequency", priority=1),
    ),
)
GATE = ResourceKind(
    kind="Gate",
    plural="gates",
    short_names=("stgate",),
    spec=GateSpec,
    status=GateStatus,
    description="A checklist at one cadence for one or more strategies, signed item by item.",
    columns=(
        C("Cadence", ".spec.cadence"),
        C("State", ".status.state"),
        C("Signed", ".status.signed"),
        C("Expires", ".status.expiresAt", "date"),
    ),
)
INCIDENT = ResourceKind(
    kind="Incident",
    plural="incidents",
    short_names=("stinc",),
    spec=IncidentSpec,
    status=IncidentStatus,
    description="One breach: class, severity, strategy, the four playbook steps and the resolution.",
    columns=(
        C("Strategy", ".spec.strategy"),
        C("Class", ".spec.class"),
        C("Severity", ".spec.severity"),
        C("Phase", ".status.phase"),
    ),
)

AUDIT_SEGMENT = ResourceKind(
    kind="AuditSegment",
    plural="auditsegments",
    short_names=("staudit",),
    spec=AuditSegmentSpec,
    status=AuditSegmentStatus,
    description="A segment of one Strategy's or Gate's hash-chained audit trail; written only by the operator.",
    columns=(
        C("Kind", ".spec.subject.kind"),
        C("Subject", ".spec.subject.name"),
        C("Index", ".spec.index", "integer"),
    ),
)

KINDS: tuple[ResourceKind, ...] = (STRATEGY, MONITOR, GATE, INCIDENT, AUDIT_SEGMENT)
BY_KIND = {k.kind: k for k in KINDS}

__all__ = ["AUDIT_SEGMENT", "BY_KIND", "GATE", "INCIDENT", "KINDS", "MONITOR", "STRATEGY", "ResourceKind"]
