"""The Strategy resource: what a desk runs (spec, from Git) and what the operator sees (status)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from stratops.models.audit import AuditHead
from stratops.models.common import Condition, Duration, Model, Rule, SecretKeyRef, parse_duration

# An image repository without tag, optionally pinned by digest (`…@sha256:<64 hex>`): the pod then
# runs `<repository>:<version>@sha256:…`, and the digest decides what runs (a tag can be moved).
IMAGE_PATTERN = r"^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9._-]+(/[a-z0-9._-]+)*(@sha256:[a-f0-9]{64})?$"
DIGEST_SEPARATOR = "@sha256:"
# The longest a kill-switch may wait for the strategy's acknowledgement before scaling to 0:
# a pod that ignores HALTED is stopped within this bound whatever the spec says.
MAX_ACK_DEADLINE = "120s"
VERSION_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


class Mode(str, Enum):
    paper = "paper"
    live = "live"


class TradingState(str, Enum):
    """NautilusTrader's trading states, with a strict REDUCING (see stratops.sdk), and STANDBY:
    a new version warming up beside the one that trades (connected, model loaded, subscribed,
    state built, Ready) that may send nothing at all, not even a cancel, since it owns no order."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"
    STANDBY = "STANDBY"


class Phase(str, Enum):
    Pending = "Pending"
    Deploying = "Deploying"
    Running = "Running"
    RollingBack = "RollingBack"
    Throttled = "Throttled"
    Halted = "Halted"
    Failed = "Failed"


RESERVED_ENV_PREFIX = "STRATOPS_"  # the operator's own (strategy, pod, control file): it must win
LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{LABEL_NAME}$"
LABEL_VALUE = rf"^({LABEL_NAME})?$"
QUANTITY = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
RESOURCE_NAME = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"


class EnvVar(Model):
    """An environment variable for the strategy container: a literal value or a Secret key."""

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=256,
        description=(
            f"Variable name; {RESERVED_ENV_PREFIX}* are the operator's (the pod's strategy, name and control file)."
        ),
    )
    value: str | None = Field(default=None, description="Literal value.")
    secret_key_ref: SecretKeyRef | None = Field(
        default=None, description="Take the value from a Secret key instead of a literal."
    )
    __rules__ = (
        Rule(
            cel="!(has(self.value) && has(self.secretKeyRef))",
            message="env: set either value or secretKeyRef, not both",
            check=lambda e: not (e.value is not None and e.secret_key_ref is not None),
        ),
        Rule(
            cel=f"!self.name.startsWith('{RESERVED_ENV_PREFIX}')",
            message=f"env: {RESERVED_ENV_PREFIX}* variables are set by the operator (which strategy, pod and control "
            "document the SDK follows); choose another name",
            field_path=".name",
            check=lambda e: not e.name.startswith(RESERVED_ENV_PREFIX),
        ),
    )


class Resources(Model):
    """Container resource requests and limits, as in a Pod (cpu, memory, ...)."""

    requests: dict[str, Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=20, description="Requested resources, e.g. cpu: 500m."
    )
    limits: dict[str, Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=20, description="Resource limits, e.g. memory: 1Gi."
    )

    @field_validator("requests", "limits")
    @classmethod
    def _quantities(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # The Deployment would be refused otherwise, after the strategy was accepted. Checked by
        # the operator's webhook and `stratops validate` (too costly as CEL over a free map).
        for k, v in (value or {}).items():
            if not re.fullmatch(RESOURCE_NAME, k) or not re.fullmatch(QUANTITY, v):
                raise ValueError(f"{k}: {v!r} is not a resource name and quantity, e.g. cpu: 500m, memory: 1Gi")
        return value


class Toleration(Model):
    """A taint the strategy's pods tolerate (as in a Pod): dedicated trading nodes, say."""

    key: str | None = Field(default=None, max_length=316, description="Taint key; empty with Exists: every taint.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(default=None, max_length=63, description="Taint value, for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Effect; empty: all."
    )


class PodTemplate(Model):
    """Overrides applied to the strategy's pod."""

    node_selector: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None, max_length=20, description="Node labels the pods must land on (dedicated trading nodes)."
    )
    tolerations: list[Toleration] | None = Field(default=None, max_length=20, description="Taints the pods tolerate.")

    env: list[EnvVar] | None = Field(default=None, max_length=100, description="Extra environment variables.")
    resources: Resources | None = Field(default=None, description="Container resources.")
    labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        default=None,
        max_length=30,
        description=("Extra pod labels (Kubernetes label keys and values; the stratops.io/ prefix is the operator's)."),
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # As the API server checks a pod's labels, before the Deployment is refused for them.
        for k, v in (value or {}).items():
            if not re.fullmatch(LABEL_KEY, k) or len(k) > 316:
                raise ValueError(
                    f"{k!r} is not a label key (an optional DNS prefix and '/', then a name of at most 63 "
                    "characters: letters, digits, '-', '_', '.')"
                )
            if k.startswith("stratops.io/"):
                raise ValueError(f"{k!r}: stratops.io/ labels are the operator's")
            if not re.fullmatch(LABEL_VALUE, v):
                raise ValueError(
                    f"{k}: {v!r} is not a label value (at most 63 characters: letters, digits, '-', '_', '.')"
                )
        return value


PositiveFloat = Annotated[float, Field(gt=0)]


class RiskLimits(Model):
    """Pre-trade risk limits (RTS 6 Art. 8 and 15). The operator may lower the effective limits
    (throttle) but never raises one: that takes a spec change in Git and a signed gate."""

    max_position: float = Field(gt=0, description="Largest absolute position, in units of the instrument.")
    max_order_rate: float = Field(gt=0, description="Most orders per second.")
    max_daily_loss: float = Field(
        gt=0, description="Loss in the account currency at which the strategy stops for the day."
    )
    max_order_value: float | None = Field(default=None, gt=0, description="Largest notional value of one order.")
    max_order_volume: float | None = Field(default=None, gt=0, description="Largest quantity of one order.")
    price_collar_bps: float | None = Field(
        default=None,
        gt=0,
        le=10000,
        description="Reject orders priced further than this from the reference price, in basis points.",
    )
    max_message_rate: float | None = Field(
        default=None, gt=0, description="Most order messages (new, modify, cancel) per second."
    )
    instruments: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, max_length=1000, description="Instruments the strategy may trade."
    )
    venues: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, max_length=100, description="Venues the strategy may trade on."
    )


class Broker(Model):
    """A broker connection."""

    name: str = Field(min_length=1, max_length=63, description="Broker name, e.g. ibkr-primary.")
    endpoint: str = Field(
        pattern=r"^[a-z][a-z0-9+.-]*://\S+$", description="Endpoint URL, e.g. fix://gw1.broker.example:9876."
    )
    secret_ref: SecretKeyRef | None = Field(
        default=None, description="Credentials; the value is never logged or copied."
    )


class Brokers(Model):
    """The primary broker and an optional backup for failover."""

    primary: Broker = Field(description="The broker used in normal operation.")
    backup: Broker | None = Field(default=None, description="The broker used after a failover.")
    __rules__ = (
        Rule(
            cel="!has(self.backup) || self.backup.endpoint != self.primary.endpoint",
            message="brokers.backup.endpoint must differ from brokers.primary.endpoint",
            field_path=".backup.endpoint",
            check=lambda b: b.backup is None or b.backup.endpoint != b.primary.endpoint,
        ),
    )


class RollbackPolicy(Model):
    """How rollouts are judged and undone."""

    automatic: bool = Field(default=True, description="Roll back automatically when a rollout misses its deadline.")
    revision_history_limit: int = Field(default=5, ge=1, le=50, description="Known-good revisions kept in status.")
    rollout_deadline: str = Duration("A rollout not Ready within this time has failed.", default="5m")
    healthy_for: str = Duration(
        "A rollout must stay Ready this long before its version becomes last known-good.", default="60s"
    )
    handover: bool | None = Field(
        default=None,
        description="Warm handover on a version change: the new version starts on STANDBY beside the one that "
        "trades and is handed trading (and its book) once Ready; a bad version never stops the good one. Unset: on "
        "for live strategies, off for paper (Recreate: the old version stops before the new one starts). Only a "
        "strategy that trades (ACTIVE or REDUCING) on one replica is handed over warm.",
    )


class GateRequirements(Model):
    """The Gates this strategy answers to, by name in the same namespace."""

    pre_launch: str | None = Field(
        default=None, min_length=1, description="Pre-launch gate; required before mode: live."
    )
    daily: str | None = Field(
        default=None, min_length=1, description="Daily gate; must be signed for resume and new deployments."
    )
    others: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, max_length=20, description="Weekly, monthly and quarterly gates."
    )


class KillSwitchPolicy(Model):
    """How the kill-switch is carried out. Changed only by risk owners or GitOps identities
    (admission policy), and on a live strategy only with fresh pre-launch signatures."""

    ack_deadline: str = Duration(
        f"How long to wait for the strategy to acknowledge HALTED before scaling to 0; at most {MAX_ACK_DEADLINE}.",
        default="30s",
    )
    allow_risk_reducing: bool = Field(
        default=False,
        description="Whether HALTED still allows orders that reduce the position (cancels are always allowed).",
    )
    rearm_by: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        default=None,
        max_length=50,
        description="Users allowed to re-arm after a halt that requires it (exposure-linked or repeated execution); "
        "none: nobody can, the strategy stays off.",
    )
    __rules__ = (
        Rule(
            cel=f"!has(self.ackDeadline) || duration(self.ackDeadline) <= duration('{MAX_ACK_DEADLINE}')",
            message=f"killSwitch.ackDeadline must be at most {MAX_ACK_DEADLINE}: a pod that ignores HALTED is scaled "
            "to 0 at the deadline",
            field_path=".ackDeadline",
            check=lambda k: parse_duration(k.ack_deadline) <= parse_duration(MAX_ACK_DEADLINE),
        ),
    )


class ThrottlePolicy(Model):
    """How the throttle is carried out."""

    factor: float = Field(
        default=0.5, gt=0, lt=1, description="Effective order rate and position limits are multiplied by this."
    )


LIVE_REQUIRED_LIMITS = ("instruments", "venues", "maxOrderValue", "maxOrderVolume", "priceCollarBps", "maxMessageRate")


def _live_declares_limits(s: StrategySpec) -> bool:
    r = s.risk_limits
    return s.mode != Mode.live or bool(
        r.instruments
        and r.venues
        and r.max_order_value is not None
        and r.max_order_volume is not None
        and r.price_collar_bps is not None
        and r.max_message_rate is not None
    )


def _live_has_prelaunch(s: StrategySpec) -> bool:
    return s.mode != Mode.live or (s.gates is not None and s.gates.pre_launch is not None)


NOT_LIVE = "(!has(self.mode) || self.mode != 'live')"  # mode defaults to paper


class StrategySpec(Model):
    """What to run and under which limits. Written by the desk (Git); never by the operator."""

    image: str = Field(
        pattern=IMAGE_PATTERN,
        max_length=512,
        description=(
            "Container image without tag, e.g. registry.example/desk/mean-revert; pinned by digest (…@sha256:<64 hex>) "
            "in live mode."
        ),
    )
    version: str = Field(pattern=VERSION_PATTERN, description="Image tag to run; changing it rolls out a new version.")
    replicas: int = Field(default=1, ge=0, le=10, description="Pods to run.")
    mode: Mode = Field(default=Mode.paper, description="paper (simulated fills) or live (real capital).")
    pod_template: PodTemplate | None = Field(default=None, description="Overrides for the strategy pod.")
    risk_limits: RiskLimits = Field(description="Pre-trade risk limits.")
    brokers: Brokers = Field(description="Broker connections.")
    bar_interval: str = Duration(
        "Interval of the bars the strategy trades on; data older than 2x is stale.", default="1m"
    )
    decay_horizon: str = Duration("How long a signal keeps its value; latency above half of it pages.", default="1h")
    rollback_policy: RollbackPolicy | None = Field(default=None, description="Rollout judgement and rollback.")
    kill_switch: KillSwitchPolicy | None = Field(default=None, description="Kill-switch behaviour.")
    throttle: ThrottlePolicy | None = Field(default=None, description="Throttle behaviour.")
    gates: GateRequirements | None = Field(default=None, description="Gates this strategy answers to.")

    __rules__ = (
        Rule(
            cel=f"{NOT_LIVE} || (has(self.gates) && has(self.gates.preLaunch))",
            message="a live strategy must name its pre-launch gate in spec.gates.preLaunch",
            field_path=".gates",
            reason="FieldValueRequired",
            check=_live_has_prelaunch,
        ),
        Rule(
            # RTS 6 Art. 8 and 15: limits set before deployment, pre-trade controls in place.
            cel=f"{NOT_LIVE} || ("
            + " && ".join(
                f"has(self.riskLimits.{f})"
                + (f" && size(self.riskLimits.{f}) > 0" if f in ("instruments", "venues") else "")
                for f in LIVE_REQUIRED_LIMITS
            )
            + ")",
            message="a live strategy must declare spec.riskLimits "
            + ", ".join(LIVE_REQUIRED_LIMITS)
            + " (RTS 6 Art. 8 and 15)",
            field_path=".riskLimits",
            reason="FieldValueRequired",
            check=_live_declares_limits,
        ),
        Rule(
            cel=f"{NOT_LIVE} || self.image.contains('{DIGEST_SEPARATOR}')",
            message="a live strategy must pin spec.image by digest (<repository>@sha256:<64 hex>): a tag can be moved, "
            "a digest cannot",
            field_path=".image",
            check=lambda s: s.mode != Mode.live or DIGEST_SEPARATOR in s.image,
        ),
        Rule(
            # Absent fields are their defaults (the API server does not default them).
            cel="duration(has(self.decayHorizon) ? self.decayHorizon : '1h') > "
            "duration(has(self.barInterval) ? self.barInterval : '1m')",
            message="spec.decayHorizon must be longer than spec.barInterval",
            field_path=".decayHorizon",
            check=lambda s: parse_duration(s.decay_horizon) > parse_duration(s.bar_interval),
        ),
    )


# What decides what a live strategy runs and how it is stopped: a pre-launch signature names the
# SHA-256 of these fields (stratops.gates.evaluate.subject_for), so a change to any of them on a
# live strategy needs fresh signatures. spec.mode is not among them (promotion is what the
# signatures allow), nor gates, monitors' thresholds or rollout timing.
TRADING_FIELDS = ("image", "version", "replicas", "risk_limits", "brokers", "pod_template", "kill_switch", "throttle")


class TradingSpec(Model):
    """The trading-relevant part of a Strategy's spec: what a pre-launch signature approves."""

    image: str = Field(description="Container image (pinned by digest in live mode).")
    version: str = Field(description="Image tag.")
    replicas: int = Field(description="Pods to run.")
    risk_limits: RiskLimits = Field(description="Pre-trade risk limits.")
    brokers: Brokers = Field(description="Broker connections.")
    pod_template: PodTemplate | None = Field(default=None, description="Overrides for the strategy pod.")
    kill_switch: KillSwitchPolicy = Field(description="Kill-switch behaviour.")
    throttle: ThrottlePolicy = Field(description="Throttle behaviour.")


def trading_spec(spec: StrategySpec) -> TradingSpec:
    """SPEC's trading-relevant fields, with the kill-switch and throttle defaults made explicit
    (an absent block behaves as its defaults, so it hashes as them)."""
    return TradingSpec(
        image=spec.image,
        version=spec.version,
        replicas=spec.replicas,
        risk_limits=spec.risk_limits,
        brokers=spec.brokers,
        pod_template=spec.pod_template,
        kill_switch=spec.kill_switch or KillSwitchPolicy(),
        throttle=spec.throttle or ThrottlePolicy(),
    )


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def trading_hash(spec: StrategySpec | TradingSpec) -> str:
    """Full SHA-256 (hex) of the trading-relevant spec, canonical JSON."""
    ts = spec if isinstance(spec, TradingSpec) else trading_spec(spec)
    return hashlib.sha256(_canonical(ts.model_dump(by_alias=True, mode="json", exclude_none=True)).encode()).hexdigest()


def trading_changes(old: TradingSpec, new: TradingSpec) -> list[str]:
    """The spec fields (API names, e.g. spec.riskLimits) in which NEW differs from OLD."""
    a, b = old.model_dump(mode="json", exclude_none=True), new.model_dump(mode="json", exclude_none=True)
    return [f"spec.{TradingSpec.model_fields[f].alias or f}" for f in TRADING_FIELDS if a.get(f) != b.get(f)]


def with_trading(spec: StrategySpec, approved: TradingSpec) -> StrategySpec:
    """SPEC with its trading-relevant fields taken from APPROVED (what a live strategy keeps
    running while a change is not signed)."""
    return spec.model_copy(update={f: getattr(approved, f) for f in TRADING_FIELDS})


class Approval(Model):
    """The trading-relevant spec a live strategy runs, and the signatures that approved it."""

    subject: str = Field(
        description="The pre-launch subject signed: <strategy>:<version>:<sha256 of the trading spec>."
    )
    hash: str = Field(description="SHA-256 of the trading-relevant spec.")
    gate: str = Field(description="The pre-launch gate whose signatures approved it.")
    signers: list[str] = Field(description="Distinct signers of the gate's required items for this subject.")
    at: datetime = Field(
        description="When the operator approved it (promotion, or a signed change on a live strategy)."
    )
    author: str | None = Field(
        default=None, description="Who last changed the trading-relevant spec (recorded at admission)."
    )
    promoted_by: str | None = Field(default=None, description="Who set spec.mode to live (recorded at admission).")
    spec: TradingSpec = Field(
        description="The approved trading-relevant spec: what runs while a later change is not signed."
    )


class Revision(Model):
    """A version that ran, and how it ended."""

    version: str = Field(description="Image tag.")
    image: str = Field(description="Full image reference.")
    deployed_at: datetime = Field(description="When the rollout started.")
    known_good_at: datetime | None = Field(default=None, description="When it became last known-good.")


class BlockedVersion(Model):
    """A version that failed and is not redeployed while spec still names it."""

    version: str = Field(description="Image tag.")
    reason: str = Field(description="Why it was blocked.")
    at: datetime = Field(description="When it was blocked.")
    incident: str | None = Field(default=None, description="The Incident opened for it.")


class EffectiveLimits(Model):
    """Limits in force now: spec limits, lowered by a throttle, never raised."""

    max_position: float = Field(ge=0, description="Largest absolute position in force.")
    max_order_rate: float = Field(ge=0, description="Most orders per second in force.")
    max_daily_loss: float = Field(ge=0, description="Daily loss limit in force.")


class Reconciliation(Model):
    """The last comparison of positions and open orders, broker against strategy."""

    at: datetime = Field(description="When it was made.")
    result: Literal["Matched", "Mismatched", "Failed"] = Field(description="Outcome.")
    evidence: str = Field(default="", description="What was compared, or a link to it.")
    by: str | None = Field(default=None, description="Who or what recorded it.")


class ControlStatus(Model):
    """The control document the operator wrote and the strategy's acknowledgement of it."""

    generation: int = Field(default=0, ge=0, description="Generation of the control document last written.")
    acknowledged_generation: int = Field(default=0, ge=0, description="Generation the strategy last acknowledged.")
    acknowledged_at: datetime | None = Field(default=None, description="When it acknowledged.")
    hash: str | None = Field(default=None, description="SHA-256 of the control document last written.")


class PodExit(Model):
    """How one pod that was trading when the kill-switch latched ended."""

    pod: str = Field(description="The pod.")
    clean: bool = Field(
        description=(
            "True when it acknowledged HALTED and then, on SIGTERM, acknowledged its exit with "
            "no working order left (the SDK's last acknowledgement)."
        )
    )
    detail: str = Field(default="", description="What its last acknowledgement said.")


class ReportBreach(Model):
    """One report monitor's breach episodes (a monitor of a value the strategy reports)."""

    episodes: int = Field(
        ge=0,
        description="Breach episodes so far; the incident of episode N is named from N, so a reconcile that runs again "
        "(after a crash, or with a lagging view of the Incidents) names the same one.",
    )
    incident: str | None = Field(
        default=None,
        max_length=253,
        description="The incident of the episode in progress; absent once the value is back within its threshold.",
    )


class KillSwitchStatus(Model):
    """The latched kill-switch."""

    latched: bool = Field(description="True until an explicit, valid resume clears it.")
    reason: str = Field(default="", description="Why it was triggered.")
    by: str | None = Field(default=None, description="Who or what triggered it.")
    at: datetime | None = Field(default=None, description="When it was triggered (the decision).")
    halt_generation: int | None = Field(default=None, description="Generation of the HALTED control document.")
    acknowledged: bool | None = Field(
        default=None, description="Whether every pod acknowledged HALTED before the scale to 0."
    )
    completed_at: datetime | None = Field(
        default=None, description="When the strategy was scaled to 0 with no pod left."
    )
    incident: str | None = Field(default=None, description="The Incident that triggered it, if any.")
    decision: str | None = Field(
        default=None, description="Id of the decision: shared by every strategy halted by one --selector or --all kill."
    )
    rearm_required: bool | None = Field(
        default=None,
        description="True when a designated user must re-arm before any resume (exposure-linked or repeated-execution "
        "halt).",
    )
    rearmed_by: str | None = Field(default=None, description="Who re-armed it.")
    rearmed_at: datetime | None = Field(default=None, description="When it was re-armed.")
    scope: str | None = Field(
        default=None, description="What the decision covered: this strategy, a label selector, or all."
    )
    pods: list[str] | None = Field(default=None, description="The pods running when the scale to 0 was decided.")
    exits: list[PodExit] | None = Field(default=None, description="How each of those pods ended (after completedAt).")
    exits_final_at: datetime | None = Field(
        default=None,
        description=(
            "When the exits were settled and reported (an Event): at once when every pod exited cleanly, else after a "
            "grace."
        ),
    )


class ThrottleStatus(Model):
    """An active throttle: REDUCING with lowered limits until a valid resume."""

    active: bool = Field(description="Whether the throttle is in force.")
    reason: str = Field(default="", description="Why it was triggered.")
    by: str | None = Field(default=None, description="Who or what triggered it.")
    at: datetime | None = Field(default=None, description="When it was triggered.")
    incident: str | None = Field(default=None, description="The Incident that triggered it, if any.")
    causes: list[str] | None = Field(
        default=None,
        description="What it is for, one throttle level each: an incident class (every incident of one class is "
        "one cause, however many and in whatever order they open), a throttle command, a throttled resume. The "
        "effective limits are spec x factor^len(causes), or lower.",
    )


class RolloutStatus(Model):
    """The rollout of the version the Deployment runs."""

    version: str = Field(description="Version being rolled out or running.")
    started_at: datetime = Field(description="When the Deployment was changed to it.")
    ready_since: datetime | None = Field(default=None, description="Since when every replica is updated and Ready.")
    rollback: bool | None = Field(default=None, description="Whether this rollout is a rollback.")


class HandoverStatus(Model):
    """A warm handover from the version that trades to a new one (stratops.lifecycle.handover)."""

    from_version: str = Field(description="The version that traded when it started.")
    to_version: str = Field(description="The version taking over.")
    trading_state: TradingState = Field(description="The state the new version takes over (ACTIVE or REDUCING).")
    started_at: datetime = Field(description="When it started (the new version's pods on STANDBY).")
    step: Literal["Standby", "HaltingOld", "ActivatingNew", "Done", "Aborted", "Held", "Failed", "Cancelled"] = Field(
        description="Standby, HaltingOld, ActivatingNew, then Done; or Aborted (the new version failed before it "
        "was handed trading: blocked, the old one trades on), Held (the old version did not halt: scaled to 0, the "
        "new one on STANDBY until a person releases it), Failed (the new version did not take over: both HALTED, a "
        "P0), Cancelled (overtaken before the new version was handed trading)."
    )
    step_at: datetime | None = Field(default=None, description="When the current step began.")
    book: dict[str, float] | None = Field(
        default=None, description="The book the old version reported when it halted (signed quantity by instrument)."
    )
    reason: str = Field(default="", description="Why it ended where it did.")
    old_stopped: bool | None = Field(
        default=None, description="The old version was scaled to 0 for not acknowledging HALTED (Held)."
    )
    incident: str | None = Field(default=None, description="The Incident opened for it, if any.")


class ResumeStatus(Model):
    """A resume in progress or done: REDUCING first, then ACTIVE."""

    by: str | None = Field(default=None, description="Who resumed.")
    at: datetime = Field(description="When the resume was accepted.")
    reason: str = Field(default="", description="Why.")
    stage: Literal["Reducing", "Active"] = Field(
        description="Reducing until acknowledged with every pod Ready, then Active."
    )


class BrokerStatus(Model):
    """The broker in use, after a failover (absent: the primary)."""

    role: Literal["primary", "backup"] = Field(description="Which of spec.brokers is in use.")
    name: str = Field(description="Its name, as in spec.brokers.")
    at: datetime | None = Field(default=None, description="When the control document was switched to it.")
    by: str | None = Field(default=None, description="Who switched it.")
    reason: str = Field(default="", description="Why.")


class StrategyStatus(Model):
    """What the operator observed and did. Written only by the operator."""

    phase: Phase | None = Field(default=None, description="Where the strategy is in its lifecycle.")
    mode: Mode | None = Field(default=None, description="Mode in force (live only once promoted).")
    trading_state: TradingState | None = Field(
        default=None,
        description="ACTIVE, REDUCING, HALTED, or STANDBY (a version warming up beside the one that trades: it sends "
        "nothing).",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, Promoted, GatesSatisfied, Healthy, Reconciled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    active_version: str | None = Field(default=None, description="Version the Deployment runs.")
    last_known_good: str | None = Field(default=None, description="Last version that rolled out and stayed healthy.")
    revision_history: list[Revision] | None = Field(default=None, description="Known-good versions, newest last.")
    blocked_versions: list[BlockedVersion] | None = Field(default=None, description="Versions not to be redeployed.")
    open_incidents: list[str] | None = Field(default=None, description="Names of open Incidents.")
    effective_limits: EffectiveLimits | None = Field(default=None, description="Limits in force now.")
    last_reconciliation: Reconciliation | None = Field(
        default=None, description="Last positions and orders reconciliation."
    )
    control: ControlStatus | None = Field(default=None, description="Control document and acknowledgement.")
    kill_switch: KillSwitchStatus | None = Field(default=None, description="Kill-switch latch.")
    throttle: ThrottleStatus | None = Field(default=None, description="Throttle in force.")
    rollout: RolloutStatus | None = Field(default=None, description="Current rollout.")
    handover: HandoverStatus | None = Field(default=None, description="The last warm handover, or the one under way.")
    resume: ResumeStatus | None = Field(default=None, description="Last accepted resume.")
    broker: BrokerStatus | None = Field(
        default=None, description="Broker in use after a failover; absent means the primary."
    )
    handled_incidents: list[str] | None = Field(default=None, description="Incidents whose immediate action was taken.")
    handled_commands: dict[str, str] | None = Field(
        default=None, description="Id of the last command annotation executed, by kind (kill, throttle, ...)."
    )
    report_breaches: dict[str, ReportBreach] | None = Field(
        default=None, description="Report monitors' breach episodes, by monitor name."
    )
    approved: Approval | None = Field(default=None, description="Live only: the signed trading-relevant spec in force.")
    audit: AuditHead | None = Field(
        default=None, description="The head of this strategy's audit chain (AuditSegments)."
    )
    message: str | None = Field(default=None, description="Last refusal or notable event, for humans.")
    observed_generation: int | None = Field(default=None, description="The .metadata.generation last acted on.")
