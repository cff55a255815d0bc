"""The lifecycle decision: (spec, status, observations) -> plan. Pure: no I/O, no clock.

Every reconcile recomputes the whole plan from what is observed, so an operator killed at any
point finishes the job on restart: the kill-switch latch, the HALTED generation and the rollout
are in status; the control document, Deployment and acknowledgements are observed; incident
names are deterministic, so a repeated creation is a no-op.

Order of the checks (strongest first): kill-switch (P0 stops), throttle (P1 slows), resume,
rollout and rollback, promotion, drift.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stratops.gates.evaluate import GateEvaluation, approval_problem, subject_for
from stratops.lifecycle import limits as L
from stratops.lifecycle import manifests
from stratops.lifecycle.control import Acknowledgement, BrokerInUse, ControlDocument, pre_trade_controls
from stratops.models.audit import AuditHead
from stratops.models.common import Condition, parse_duration
from stratops.models.monitor import IncidentClass, Severity
from stratops.models.strategy import (
    Approval,
    BlockedVersion,
    BrokerStatus,
    ControlStatus,
    EffectiveLimits,
    KillSwitchStatus,
    Mode,
    Phase,
    PodExit,
    Reconciliation,
    ReportBreach,
    ResumeStatus,
    Revision,
    RolloutStatus,
    StrategySpec,
    StrategyStatus,
    ThrottleStatus,
    TradingState,
    trading_changes,
    trading_hash,
    trading_spec,
    with_trading,
)
from stratops.recovery.actions import immediate_action

OPERATOR = "stratops-operator"
RECONCILIATION_MAX_AGE = timedelta(hours=1)
COMMANDS = ("kill", "throttle", "rollback", "resume", "reconciliation", "failover", "rearm", "runbook")
MAX_EVIDENCE = 4096  # a reconciliation's evidence: what was compared, or a link to it
ANNOTATION_PREFIX = "stratops.io/"


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
class Command:
    """A human command given as an annotation `stratops.io/<kind>` on the Strategy."""

    kind: str
    id: str
    reason: str
    by: str
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def annotation(self) -> str:
        return ANNOTATION_PREFIX + self.kind


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def command_value(by: str, /, **fields: Any) -> str:
    """An annotation value as the admission policy accepts it: `{"by": "<user>", …}`, `by` first."""
    return json.dumps({"by": by, **{k: v for k, v in fields.items() if k != "by"}}, ensure_ascii=False)


def parse_command(kind: str, raw: str) -> Command:
    """Parse an annotation value: JSON {"by", "reason", "id", ...}. Its `by` is the requesting
    user's (stratops.admission.policies checks the value begins {"by": "<user>"}); a value
    with duplicate keys could show the operator another `by` than the one checked, so it is
    refused, and a command without `by` is not attributable and is refused."""
    cid = hashlib.sha256(raw.encode()).hexdigest()[:12]
    try:
        value = json.loads(raw, object_pairs_hook=_unique_keys)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return Command(
            kind,
            cid,
            "",
            "",
            {},
            f"annotation {ANNOTATION_PREFIX}{kind} is not a JSON object with a unique "
            '"by" (who gives it) and a "reason"; use the stratops CLI',
        )
    reason = str(value.get("reason") or "").strip()
    by = str(value.get("by") or "").strip()
    cid = str(value.get("id") or cid)
    fields = {k: v for k, v in value.items() if k not in ("reason", "by", "id")}
    error = None
    if not by:
        error = (
            f'annotation {ANNOTATION_PREFIX}{kind}: not attributable: it must begin {{"by": "<you>", …}} '
            "(the stratops CLI writes it so)"
        )
    elif kind == "reconciliation":
        if value.get("result") not in ("Matched", "Mismatched", "Failed"):
            error = f"annotation {ANNOTATION_PREFIX}{kind}: result must be Matched, Mismatched or Failed"
        elif not str(value.get("evidence") or "").strip():
            error = f"annotation {ANNOTATION_PREFIX}{kind}: evidence is required (what was compared, or a link)"
        elif len(str(value.get("evidence"))) > MAX_EVIDENCE:
            error = (
                f"annotation {ANNOTATION_PREFIX}{kind}: evidence is {len(str(value.get('evidence')))} characters, at "
                f"most {MAX_EVIDENCE}: link to the full evidence"
            )
    elif kind == "runbook" and not isinstance(value.get("run"), dict):
        error = f"annotation {ANNOTATION_PREFIX}{kind}: run (the runbook run's record) is required"
    elif kind == "failover" and value.get("to") not in ("backup", "primary"):
        error = f"annotation {ANNOTATION_PREFIX}{kind}: to must be backup or primary"
    elif not reason and kind not in ("ack",):
        error = f'annotation {ANNOTATION_PREFIX}{kind}: a reason is required, e.g. {{"reason": "broker rejects"}}'
    return Command(kind, cid, reason, by, fields, error)


def commands_from_annotations(annotations: dict[str, str] | None) -> tuple[Command, ...]:
    ann = annotations or {}
    return tuple(parse_command(k, ann[ANNOTATION_PREFIX + k]) for k in COMMANDS if ANNOTATION_PREFIX + k in ann)


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

    def wake_in(self, seconds: float) -> None:
        seconds = max(seconds, 0.5)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def _incident_name(strategy: str, what: str, key: str) -> str:
    return f"{strategy}-{what}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"[:253]


def _set_condition(
    conds: list[Condition], now: datetime, generation: int, type_: str, ok: bool, reason: str, message: str
) -> None:
    status = "True" if ok else "False"
    for i, c in enumerate(conds):
        if c.type == type_:
            moved = c.status != status
            conds[i] = Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now if moved else c.last_transition_time,
                observed_generation=generation,
            )
            return
    conds.append(
        Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=now,
            observed_generation=generation,
        )
    )


def _condition(status: StrategyStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions or [] if c.type == type_), None)


# -- the decision ------------------------------------------------------------------------
def decide(spec: StrategySpec, status: StrategyStatus, obs: Observations) -> Plan:
    now = obs.now
    st = status.model_copy(deep=True)
    plan = Plan(status=st)
    conds = list(st.conditions or [])
    # A command id is remembered only while its annotation is still on the object (the crash
    # window between recording it and removing the annotation); once removed, the same text
    # given again is a new command.
    present = {c.kind for c in obs.commands}
    handled_cmds = {k: v for k, v in (st.handled_commands or {}).items() if k in present}
    handled_incidents = list(st.handled_incidents or [])
    current_subject = subject_for(obs.name, spec)
    prelaunch = obs.gates.get(spec.gates.pre_launch) if spec.gates and spec.gates.pre_launch else None
    # Live: act on the trading-relevant spec as signed; an unsigned change waits (held, reported).
    spec = _approved_spec(spec, st, obs, prelaunch, current_subject, plan, conds)
    kill_policy = spec.kill_switch
    ack_deadline = parse_duration(kill_policy.ack_deadline if kill_policy else "30s")
    factor = spec.throttle.factor if spec.throttle else 0.5
    policy = spec.rollback_policy
    rollout_deadline = parse_duration(policy.rollout_deadline if policy else "5m")
    healthy_for = parse_duration(policy.healthy_for if policy else "60s")
    automatic = policy.automatic if policy else True
    history_limit = policy.revision_history_limit if policy else 5
    base_limits = L.from_spec(spec.risk_limits)
    daily = obs.gates.get(spec.gates.daily) if spec.gates and spec.gates.daily else None
    ready_pods = [p for p in obs.pods if not p.terminating]

    def acked(generation: int) -> bool:
        return all((a := obs.acks.get(p.name)) is not None and a.generation >= generation for p in ready_pods)

    # -- re-created: the trail under this name goes on, and a latch in it still holds ----------
    if st.audit is None and obs.prior_head is not None and obs.prior_head[0]:
        st.audit = AuditHead(seq=obs.prior_head[0], hash=obs.prior_head[1])
    if st.kill_switch is None and obs.prior_latch and obs.prior_latch.get("reason") == "KillSwitch":
        was = (obs.prior_latch.get("record") or {}).get("killSwitch") or {}
        st.kill_switch = KillSwitchStatus(
            latched=True,
            by=OPERATOR,
            at=now,
            rearm_required=bool(was.get("rearmRequired")) or None,
            reason=f"re-created while latched (kill-switch by {was.get('by')} at {was.get('at')}: "
            f"{was.get('reason')}); "
            "resume as after any halt",
        )
        plan.actions.append("kill_switch")
        plan.events.append(Event("Warning", "KillSwitch", f"re-created under a latched name: {st.kill_switch.reason}"))

    # -- commands: validate first; an invalid one is reported and removed, nothing applied --
    commands: dict[str, Command] = {}
    for cmd in obs.commands:
        plan.clear_annotations.append(cmd.annotation)
        if cmd.error:
            plan.events.append(Event("Warning", "InvalidCommand", cmd.error))
            st.message = cmd.error
        elif handled_cmds.get(cmd.kind) == cmd.id:
            continue  # executed before a restart; only the annotation was left to remove
        else:
            commands[cmd.kind] = cmd
            handled_cmds[cmd.kind] = cmd.id

    # -- reconciliation record ------------------------------------------------------------
    if (cmd := commands.get("reconciliation")) is not None:
        st.last_reconciliation = Reconciliation(
            at=now, result=cmd.fields["result"], evidence=str(cmd.fields.get("evidence")), by=cmd.by
        )
        kind = "Normal" if cmd.fields["result"] == "Matched" else "Warning"
        plan.events.append(
            Event(kind, "ReconciliationRecorded", f"{cmd.fields['result']} by {cmd.by}: {cmd.fields.get('evidence')}")
        )

    # -- a runbook run, recorded in the audit trail as given by whoever ran it --------------------
    if (cmd := commands.get("runbook")) is not None:
        run = {**cmd.fields["run"], "by": cmd.by}
        passed = bool((run.get("verify") or {}).get("passed"))
        plan.events.append(
            Event(
                "Normal" if passed else "Warning",
                "RunbookRun",
                f"runbook {run.get('runbook')} by {cmd.by}: {run.get('outcome')}; verify "
                f"{'PASS' if passed else 'FAIL'}"[:1024],
                record={"runbookRun": run},
            )
        )

    # -- fleet verification (Knight, 2012): every pod trading under this name runs what was
    # intended and applied the control document written ---------------------------------------
    running_image = _image_for(spec, st, st.rollout.version) if st.rollout else None
    fleet = fleet_problems(obs.name, obs.pods, obs.deployment, running_image, spec.replicas, obs.acks, obs.control)
    fleet_incident = _incident_name(obs.name, "fleet", "|".join(fleet)) if fleet else None
    _set_condition(
        conds,
        now,
        obs.generation,
        "FleetVerified",
        not fleet,
        "Mismatch" if fleet else "Verified",
        "; ".join(fleet) if fleet else "every pod runs the intended image and applied the control document",
    )

    # -- incidents that ask for an action ---------------------------------------------------
    kill_trigger: tuple[str, str, str | None] | None = None  # (reason, by, incident)
    rearm_required = False
    throttle_trigger: tuple[str, str, str | None] | None = None
    rollback_trigger: tuple[str, str, str | None] | None = None
    for inc in obs.incidents:
        if (
            inc.open
            and inc.acted
            and inc.immediate_action == "killSwitch"
            and inc.name not in handled_incidents
            and not (st.kill_switch and st.kill_switch.latched)
            and st.observed_generation is None
        ):
            # Acted on before, still open, and this Strategy has never decided: it was deleted
            # and applied again. The halt its incident asked for holds.
            handled_incidents.append(inc.name)
            if kill_trigger is None:  # its immediate action is on record already: not repeated
                kill_trigger = (
                    f"re-created while incident {inc.name} ({inc.class_} {inc.severity}) is open",
                    OPERATOR,
                    None,
                )
            rearm_required = rearm_required or inc.require_rearm
            continue
        if not inc.open or inc.acted or inc.name in handled_incidents:
            continue
        handled_incidents.append(inc.name)
        act = inc.immediate_action
        why = f"incident {inc.name} ({inc.class_} {inc.severity})"
        if act == "killSwitch" and kill_trigger is None:
            kill_trigger = (why, OPERATOR, inc.name)
        if act == "killSwitch" and inc.require_rearm:
            rearm_required = True
        elif act == "throttle" and throttle_trigger is None:
            throttle_trigger = (why, OPERATOR, inc.name)
        elif act == "rollback" and rollback_trigger is None:
            rollback_trigger = (why, OPERATOR, inc.name)
        elif act == "none":
            plan.incident_actions.append((inc.name, "recorded; no automatic action (action: none)"))
    if fleet_incident is not None and fleet_incident not in {i.name for i in obs.incidents}:
        detail = "; ".join(fleet)
        plan.incidents.append(
            NewIncident(
                fleet_incident,
                IncidentClass.config_drift,
                Severity.P0,
                f"fleet verification failed: {detail}"[:2048],
                "killSwitch",
                "kill-switch: control HALTED, then scale to 0; foreign pods deleted",
            )
        )
        plan.events.append(Event("Warning", "FleetMismatch", detail))
        if kill_trigger is None:
            kill_trigger = (f"fleet verification failed: {detail}", OPERATOR, fleet_incident)
    # -- the control document: only the operator writes it. Unreadable: a P0 (the pods may have
    # read anything: stop). Readable but not what the operator last wrote: drift, reverted. -------
    if obs.control_problem:
        last = st.control.generation if st.control else 0
        inc = _incident_name(obs.name, "control", f"{last}:{obs.control_problem}")
        if inc not in {i.name for i in obs.incidents}:
            plan.incidents.append(
                NewIncident(
                    inc,
                    IncidentClass.config_drift,
                    Severity.P0,
                    f"control ConfigMap {manifests.control_name(obs.name)}: {obs.control_problem}"[:2048],
                    "killSwitch",
                    "kill-switch: control rewritten HALTED, then scale to 0",
                )
            )
            plan.events.append(Event("Warning", "ControlUnreadable", obs.control_problem))
            if kill_trigger is None:
                kill_trigger = (f"control document unreadable: {obs.control_problem}", OPERATOR, inc)
    integrity = [
        f"ConfigMap {n} carries this strategy's labels but is not its own: ignored" for n in obs.foreign_configmaps
    ]
    integrity += list(obs.ack_problems)
    prev_integrity = _condition(st, "ControlIntegrity")
    msg = "; ".join(integrity)[:1024]
    if integrity and (prev_integrity is None or prev_integrity.message != msg):
        plan.events.append(Event("Warning", "ForeignWrites", msg))
    _set_condition(
        conds,
        now,
        obs.generation,
        "ControlIntegrity",
        not integrity and not obs.control_problem,
        "Foreign" if integrity else "Unreadable" if obs.control_problem else "Owned",
        msg
        or obs.control_problem
        or "only the operator's control document and the pods' own acknowledgements are read",
    )

    # -- exposure-linked kill: the strategy's own reports against its monitors, on every report --
    # An episode's incident is named from the monitor and the episode's number, both in status:
    # a reconcile run again (after a crash before the status write, or while the view of the
    # Incidents lags the operator's own creates) names the same incident, and its create is a
    # no-op. Its name is matched exactly, never by prefix (gross vs gross-exposure).
    breaches = dict(st.report_breaches or {})
    incidents_by_name = {i.name: i for i in obs.incidents}
    for m in obs.report_monitors:
        values = [
            v for p in ready_pods if (a := obs.acks.get(p.name)) is not None and (v := getattr(a, m.report)) is not None
        ]
        episode = breaches.get(m.name)
        if not values or not m.breached(total := sum(values)):
            if episode is not None and episode.incident is not None and values:
                breaches[m.name] = episode.model_copy(update={"incident": None})  # back within its threshold
            continue
        known = incidents_by_name.get(episode.incident) if episode is not None and episode.incident else None
        if known is not None and known.open:
            continue  # this breach is open and was acted on
        if episode is None or episode.incident is None or known is not None:
            # a new episode (the last one ended, or its incident was resolved while still breaching)
            number = (episode.episodes if episode else 0) + 1
            episode = ReportBreach(
                episodes=number, incident=_incident_name(obs.name, m.name, f"{obs.uid}/{m.name}/{number}")
            )
            breaches[m.name] = episode
        # else: the episode's incident is not seen yet (not created, or the view lags): again, same name
        act = immediate_action(m.action, m.severity, on_position=True)
        inc = episode.incident
        assert inc is not None
        why = f"monitor {m.name}: reported {m.report} {total:g} {m.comparison} {m.threshold:g}"
        done = {"killSwitch": "kill-switch: control HALTED, then scale to 0", "throttle": "throttle: REDUCING"}.get(
            act, "recorded"
        )
        plan.incidents.append(
            NewIncident(
                inc, IncidentClass(m.class_), Severity(m.severity), why, act, done, require_rearm=m.require_rearm
            )
        )
        plan.events.append(Event("Warning", "ReportedLimitBreached", why))
        if act == "killSwitch" and kill_trigger is None:
            kill_trigger = (why, OPERATOR, inc)
            rearm_required = rearm_required or m.require_rearm
        elif act == "throttle" and throttle_trigger is None:
            throttle_trigger = (why, OPERATOR, inc)
    st.report_breaches = breaches or None
    if (cmd := commands.get("kill")) is not None:
        kill_trigger = (cmd.reason, cmd.by, None)
        rearm_required = rearm_required or bool(cmd.fields.get("requireRearm"))
    if (cmd := commands.get("throttle")) is not None and throttle_trigger is None:
        throttle_trigger = (cmd.reason, cmd.by, None)
    if (cmd := commands.get("rollback")) is not None:
        rollback_trigger = (cmd.reason, cmd.by, None)

    # -- kill-switch: P0 stops. Latched until a valid resume. --------------------------------
    ks = st.kill_switch
    if kill_trigger is not None:
        reason, by, incident = kill_trigger
        if ks is not None and ks.latched:
            if incident:
                plan.incident_actions.append((incident, f"kill-switch already latched since {ks.at}"))
            elif commands.get("kill") is not None:
                # Latched already: nothing more to do, but the second decision is on the record.
                plan.events.append(
                    Event(
                        "Warning",
                        "KillSwitchAgain",
                        f"kill-switch by {by} while latched since {ks.at} by {ks.by}: {reason}",
                    )
                )
            if rearm_required and not ks.rearm_required:  # a second, stricter halt tightens the latch
                ks = st.kill_switch = ks.model_copy(
                    update={"rearm_required": True, "rearmed_by": None, "rearmed_at": None}
                )
                plan.events.append(Event("Warning", "RearmRequired", f"re-arm now required ({reason})"))
        else:
            kc = commands.get("kill")
            ks = st.kill_switch = KillSwitchStatus(
                latched=True,
                reason=reason,
                by=by,
                at=now,
                incident=incident,
                decision=(str(kc.fields.get("decision") or kc.id) if kc is not None and incident is None else None),
                scope=(str(kc.fields.get("scope") or "strategy") if kc is not None and incident is None else None),
                rearm_required=rearm_required or None,
            )
            st.resume = None
            plan.actions.append("kill_switch")
            plan.events.append(Event("Warning", "KillSwitch", f"kill-switch engaged by {by}: {reason}"))
            if incident:
                plan.incident_actions.append((incident, "kill-switch: control HALTED, then scale to 0"))
    if throttle_trigger is not None:
        reason, by, incident = throttle_trigger
        if ks is not None and ks.latched:
            if incident:
                plan.incident_actions.append((incident, "kill-switch latched; throttle not needed"))
        else:
            prev = st.effective_limits or base_limits
            st.effective_limits = L.lowest(L.throttled(prev, factor), base_limits)
            st.throttle = ThrottleStatus(active=True, reason=reason, by=by, at=now, incident=incident)
            st.resume = None
            plan.actions.append("throttle")
            plan.events.append(
                Event(
                    "Warning",
                    "Throttle",
                    f"throttled by {by}: {reason}; limits x{factor} (position {st.effective_limits.max_position:g}, "
                    f"order rate {st.effective_limits.max_order_rate:g}/s)",
                )
            )
            if incident:
                plan.incident_actions.append((incident, f"throttle: REDUCING, limits x{factor}"))
    latched = ks is not None and ks.latched
    throttled = st.throttle is not None and st.throttle.active

    # -- re-arm: a designated user allows a halt that requires it to be resumed (resumes nothing) --
    if (cmd := commands.get("rearm")) is not None:
        allowed = list((kill_policy.rearm_by if kill_policy else None) or [])
        refusal = None
        if not latched or ks is None or not ks.rearm_required:
            refusal = "no halt that requires a re-arm is latched"
        elif cmd.by not in allowed:
            refusal = f"{cmd.by} is not a designated user (spec.killSwitch.rearmBy: {', '.join(allowed) or 'nobody'})"
        if refusal:
            msg = f"re-arm by {cmd.by} refused: {refusal}"
            plan.events.append(Event("Warning", "RearmRefused", msg))
            st.message = msg
        elif ks is not None and ks.rearmed_at is None:
            ks = st.kill_switch = ks.model_copy(update={"rearmed_by": cmd.by, "rearmed_at": now})
            msg = (
                f"re-armed by {cmd.by}: {cmd.reason}; a resume is now possible (reconciliation, incidents, daily gate)"
            )
            plan.events.append(Event("Normal", "Rearmed", msg))
            st.message = msg

    # -- broker failover: only with order entry halted, so no order is in flight across brokers --
    if (cmd := commands.get("failover")) is not None:
        to = cmd.fields["to"]
        on = st.broker.role if st.broker else "primary"
        chosen = spec.brokers.backup if to == "backup" else spec.brokers.primary
        refusals = []
        if chosen is None:
            refusals.append("spec.brokers.backup is not set: there is no backup broker to fail over to")
        elif to == on:
            refusals.append(f"already on the {on} broker ({chosen.name})")
        if not latched:
            refusals.append(
                "halt order entry first (stratops kill): the broker changes only while the kill-switch is latched"
            )
        if refusals:
            msg = f"failover by {cmd.by} refused: " + "; ".join(refusals)
            plan.events.append(Event("Warning", "FailoverRefused", msg))
            st.message = msg
        else:
            assert chosen is not None
            st.broker = BrokerStatus(role=to, name=chosen.name, at=now, by=cmd.by, reason=cmd.reason)
            plan.actions.append("failover")
            msg = (
                f"control document switched to the {to} broker {chosen.name} ({chosen.endpoint}) by {cmd.by}: "
                f"{cmd.reason}; "
                "reconcile positions against it before resuming"
            )
            plan.events.append(Event("Warning", "BrokerFailover", msg))
            st.message = msg
    if st.broker is not None and st.broker.role == "backup" and spec.brokers.backup is None:
        st.broker = None
        plan.events.append(
            Event(
                "Warning",
                "BrokerBackupRemoved",
                "spec.brokers.backup was removed while in use: the control document names the primary again",
            )
        )

    # -- resume: only resolved incidents, a fresh reconciliation and a signed daily gate ------
    if (cmd := commands.get("resume")) is not None:
        refusals = []
        if not latched and not throttled:
            refusals.append("nothing to resume: no kill-switch latched and no throttle in force")
        if latched and ks is not None and ks.rearm_required and ks.rearmed_at is None:
            allowed = (
                ", ".join((kill_policy.rearm_by if kill_policy else None) or [])
                or "nobody: set spec.killSwitch.rearmBy"
            )
            refusals.append(
                "re-arm required first (exposure-linked or repeated-execution halt): `stratops rearm` by one of "
                f"{allowed}"
            )
        # The reconciliation must postdate the stop and any broker switch: positions at the new
        # broker are what the strategy resumes against.
        stopped_at = max(
            [
                t
                for t in (
                    ks.at if ks else None,
                    st.throttle.at if st.throttle else None,
                    st.broker.at if st.broker else None,
                )
                if t
            ],
            default=None,
        )
        open_incidents = [i.name for i in obs.incidents if i.open]
        if open_incidents:
            refusals.append(f"incidents not resolved: {', '.join(sorted(open_incidents))}")
        rec = st.last_reconciliation
        if rec is None:
            refusals.append("no reconciliation recorded (positions and open orders, broker vs strategy)")
        elif rec.result != "Matched":
            refusals.append(f"last reconciliation is {rec.result}, not Matched")
        elif stopped_at is not None and rec.at <= stopped_at:
            refusals.append(
                f"last reconciliation ({rec.at.isoformat()}) is older than the stop ({stopped_at.isoformat()})"
            )
        elif now - rec.at > RECONCILIATION_MAX_AGE:
            refusals.append(f"last reconciliation is older than {RECONCILIATION_MAX_AGE}")
        if not spec.gates or not spec.gates.daily:
            refusals.append("no daily gate named in spec.gates.daily: resume needs a signed daily gate")
        elif daily is None:
            refusals.append(f"daily gate {spec.gates.daily} not found or does not apply to this strategy")
        elif not daily.complete:
            refusals.append(f"daily gate {spec.gates.daily} is {daily.state}: missing {', '.join(daily.missing)}")
        if refusals:
            msg = f"resume by {cmd.by} refused: " + "; ".join(refusals)
            plan.events.append(Event("Warning", "ResumeRefused", msg))
            st.message = msg
        else:
            if ks is not None:
                st.kill_switch = ks.model_copy(update={"latched": False})
            if st.throttle is not None:
                st.throttle = st.throttle.model_copy(update={"active": False})
            latched = throttled = False
            st.resume = ResumeStatus(by=cmd.by, at=now, reason=cmd.reason, stage="Reducing")
            if st.rollout is not None:  # the rollout clock restarts with the pods
                st.rollout = st.rollout.model_copy(update={"started_at": now, "ready_since": None})
            st.effective_limits = _allowed_limits(st, base_limits, plan)
            plan.actions.append("resume")
            if cmd.fields.get("throttled"):
                # Back to trading, but slow: a throttle in force until a later full resume (which
                # needs a reconciliation newer than this one).
                st.throttle = ThrottleStatus(active=True, reason=f"resumed throttled: {cmd.reason}", by=cmd.by, at=now)
                st.effective_limits = L.lowest(L.throttled(st.effective_limits, factor), base_limits)
                throttled = True
                msg = (
                    f"resume by {cmd.by} accepted, throttled: {cmd.reason}; "
                    f"REDUCING with limits x{factor} until a full resume"
                )
            else:
                msg = f"resume by {cmd.by} accepted: {cmd.reason}; REDUCING until acknowledged, then ACTIVE"
            plan.events.append(Event("Normal", "Resume", msg))
            st.message = msg

    # -- effective limits: follow spec down at once; up only through the rules above ----------
    if st.effective_limits is None:
        st.effective_limits = base_limits
    elif throttled:
        st.effective_limits = L.lowest(st.effective_limits, base_limits)
    else:
        st.effective_limits = _allowed_limits(st, base_limits, plan)

    # -- promotion paper -> live ---------------------------------------------------------
    mode = st.mode or Mode.paper
    if spec.mode == Mode.paper and mode == Mode.live:
        mode = Mode.paper
        plan.events.append(Event("Normal", "Demoted", "spec.mode is paper: trading on paper from now on"))
    if spec.mode == Mode.live and mode != Mode.live:
        missing = _prelaunch_missing(spec, prelaunch, obs.trading_author)
        if missing:
            msg = f"promotion to live blocked: {missing}"
            prev = _condition(st, "Promoted")
            if prev is None or prev.message != msg:
                plan.events.append(Event("Warning", "PromotionBlocked", msg))
            _set_condition(conds, now, obs.generation, "Promoted", False, "GatesIncomplete", msg)
        else:
            assert prelaunch is not None and spec.gates is not None and spec.gates.pre_launch is not None
            mode = Mode.live
            st.approved = Approval(
                subject=current_subject,
                hash=trading_hash(spec),
                gate=spec.gates.pre_launch,
                signers=list(prelaunch.signers),
                at=now,
                author=obs.trading_author,
                promoted_by=obs.mode_author,
                spec=trading_spec(spec),
            )
            plan.actions.append("promote")
            signers = ", ".join(prelaunch.signers)
            signed = f"pre-launch gate {spec.gates.pre_launch} signed for {current_subject} by {signers}"
            plan.events.append(Event("Normal", "Promoted", f"promoted to live by {obs.mode_author}: {signed}"))
            _set_condition(conds, now, obs.generation, "Promoted", True, "PreLaunchGateComplete", signed)
    elif mode == Mode.live:
        _set_condition(conds, now, obs.generation, "Promoted", True, "Live", "trading live")
    else:
        _set_condition(conds, now, obs.generation, "Promoted", False, "Paper", "spec.mode is paper")
    st.mode = mode

    # -- which version to run --------------------------------------------------------------
    blocked = {b.version for b in st.blocked_versions or []}
    rollout = st.rollout
    active = rollout.version if rollout else None
    wanted = spec.version
    hold_reason = None
    if wanted in blocked:
        hold_reason = f"version {wanted} is blocked (failed or rolled back); spec must name another version"
    elif active is not None and wanted != active and spec.gates and spec.gates.daily and not (daily and daily.complete):
        # A lapsed daily gate blocks new deployments (paper included): nobody checked the desk today.
        hold_reason = f"version {wanted} not rolled out: daily gate {spec.gates.daily} is " + (
            f"{daily.state} (missing {', '.join(daily.missing)})" if daily else "not found"
        )
    target = wanted if hold_reason is None else (active or st.last_known_good)
    if hold_reason:
        prev = st.message
        if prev != hold_reason:
            plan.events.append(Event("Warning", "VersionHeld", hold_reason))
        st.message = hold_reason

    # manual or incident rollback
    if rollback_trigger is not None:
        reason, by, incident = rollback_trigger
        good = [r.version for r in st.revision_history or [] if r.known_good_at]
        to = (
            st.last_known_good
            if st.last_known_good and st.last_known_good != active
            else next((v for v in reversed(good) if v != active), None)
        )
        if to is None or active is None:
            msg = f"rollback by {by} refused: no known-good version other than {active}"
            plan.events.append(Event("Warning", "RollbackRefused", msg))
            st.message = msg
            if incident:
                plan.incident_actions.append((incident, msg))
        else:
            st.blocked_versions = _block(st, active, f"rolled back by {by}: {reason}", now, incident)
            blocked.add(active)
            target = to
            rollout = st.rollout = RolloutStatus(version=to, started_at=now, rollback=True)
            plan.actions.append("rollback")
            plan.events.append(Event("Warning", "Rollback", f"rolled back {active} -> {to} by {by}: {reason}"))
            if incident:
                plan.incident_actions.append((incident, f"rollback {active} -> {to}"))
    if target is not None and target in blocked and target != (rollout.version if rollout else None):
        target = st.last_known_good

    # -- rollout tracking and automatic rollback -----------------------------------------------
    replicas_wanted = spec.replicas
    if target is not None and (rollout is None or rollout.version != target):
        rollout = st.rollout = RolloutStatus(version=target, started_at=now)
        if active is not None:
            plan.events.append(Event("Normal", "Rollout", f"rolling out {target} (was {active})"))
    dep = obs.deployment
    image = _image_for(spec, st, target) if target else None
    if rollout is not None and image is not None and not latched and replicas_wanted > 0:
        healthy = dep is not None and dep.healthy(image, replicas_wanted)
        if healthy:
            if rollout.ready_since is None:
                rollout = st.rollout = rollout.model_copy(update={"ready_since": now})
            assert rollout.ready_since is not None
            held = now - rollout.ready_since
            if st.last_known_good != rollout.version:
                if fleet:
                    pass  # never known-good while a pod runs something else (FleetVerified=False)
                elif held >= healthy_for:
                    st.last_known_good = rollout.version
                    history = [r for r in st.revision_history or [] if r.version != rollout.version]
                    history.append(
                        Revision(
                            version=rollout.version, image=image, deployed_at=rollout.started_at, known_good_at=now
                        )
                    )
                    st.revision_history = history[-history_limit:]
                    plan.events.append(
                        Event(
                            "Normal",
                            "KnownGood",
                            f"{rollout.version} healthy for {held.total_seconds():.0f}s: last known-good",
                        )
                    )
                else:
                    plan.wake_in((healthy_for - held).total_seconds())
        else:
            if rollout.ready_since is not None:
                rollout = st.rollout = rollout.model_copy(update={"ready_since": None})
            waited = now - rollout.started_at
            failing = rollout.version != st.last_known_good and waited > rollout_deadline
            if failing and not rollout.rollback:
                bad = rollout.version
                inc = _incident_name(obs.name, "rollout", f"{bad}@{rollout.started_at.isoformat()}")
                if automatic and st.last_known_good and st.last_known_good not in (bad,):
                    to = st.last_known_good
                    st.blocked_versions = _block(st, bad, f"not Ready within {rollout_deadline}", now, inc)
                    rollout = st.rollout = RolloutStatus(version=to, started_at=now, rollback=True)
                    target, image = to, _image_for(spec, st, to)
                    plan.actions.append("rollback")
                    plan.incidents.append(
                        NewIncident(
                            inc,
                            IncidentClass.config_drift,
                            Severity.P1,
                            f"rollout of {bad} not Ready within {rollout_deadline}; rolled back to {to}",
                            "rollback",
                            f"rolled back {bad} -> {to}; {bad} blocked",
                        )
                    )
                    plan.events.append(
                        Event(
                            "Warning",
                            "RollbackAutomatic",
                            f"{bad} not Ready within {rollout_deadline}: rolled back to {to}; {bad} blocked",
                        )
                    )
                elif not any(b.version == bad for b in st.blocked_versions or []):
                    why = "no known-good version to roll back to" if automatic else "automatic rollback is off"
                    st.blocked_versions = _block(st, bad, f"not Ready within {rollout_deadline}; {why}", now, inc)
                    plan.incidents.append(
                        NewIncident(
                            inc,
                            IncidentClass.config_drift,
                            Severity.P1,
                            f"rollout of {bad} not Ready within {rollout_deadline}; {why}",
                            "none",
                            f"{bad} blocked; {why}",
                        )
                    )
                    plan.events.append(
                        Event("Warning", "RolloutFailed", f"{bad} not Ready within {rollout_deadline}; {why}")
                    )
            elif not failing and rollout.version != st.last_known_good:
                plan.wake_in((rollout_deadline - waited).total_seconds() + 0.5)

    failed_without_target = (
        rollout is not None
        and rollout.version in {b.version for b in st.blocked_versions or []}
        and not rollout.rollback
    )

    # -- trading state and the control document ------------------------------------------------
    if latched:
        state = TradingState.HALTED
    elif throttled or (st.resume is not None and st.resume.stage == "Reducing"):
        state = TradingState.REDUCING
    else:
        state = TradingState.ACTIVE
    broker = (
        spec.brokers.backup
        if st.broker and st.broker.role == "backup" and spec.brokers.backup
        else spec.brokers.primary
    )
    reason = (
        ks.reason
        if latched and ks
        else st.throttle.reason
        if throttled and st.throttle
        else (st.resume.reason if st.resume and st.resume.stage == "Reducing" else "")
    )
    # Never go back in generation, whatever the ConfigMap shows (an unreadable or edited one).
    prev_gen = max(obs.control.generation if obs.control else 0, st.control.generation if st.control else 0)
    doc = ControlDocument(
        strategy=obs.name,
        generation=max(prev_gen, 1),
        trading_state=state,
        mode=mode,
        limits=st.effective_limits,
        broker=BrokerInUse(name=broker.name, endpoint=broker.endpoint),
        allow_risk_reducing=bool(kill_policy and kill_policy.allow_risk_reducing),
        reason=reason,
        issued_at=now,
        controls=pre_trade_controls(spec.risk_limits),
    )
    if doc.same_content(obs.control) and not obs.control_problem:
        assert obs.control is not None
        doc = obs.control
    else:
        written = st.control.hash if st.control else None
        if (
            obs.control is not None
            and written is not None
            and obs.control.content_hash() not in (written, doc.content_hash(), obs.control_written)
        ):
            # Neither what the operator last wrote (as its status records it, or as this process
            # remembers its own write) nor what it writes now: someone else's.
            observed = obs.control.content_hash()
            inc = _incident_name(obs.name, "control-drift", observed)
            if inc not in {i.name for i in obs.incidents}:
                plan.incidents.append(
                    NewIncident(
                        inc,
                        IncidentClass.config_drift,
                        Severity.P1,
                        f"control ConfigMap {manifests.control_name(obs.name)} changed outside the operator "
                        f"(generation {obs.control.generation}, {obs.control.trading_state.value}); reverted",
                        "none",
                        "reverted the control document to the operator's decision",
                    )
                )
                plan.events.append(
                    Event(
                        "Warning",
                        "ControlDrift",
                        f"control document changed by someone else (hash {observed[:12]}): reverted",
                    )
                )
                plan.actions.append("drift_revert")
        doc = doc.model_copy(update={"generation": prev_gen + 1})
        plan.control = doc
    ctl = st.control or ControlStatus()
    if ready_pods:  # the generation every running pod has applied
        pod_acks = [obs.acks.get(p.name) for p in ready_pods]
        acked_gen = min(a.generation if a else 0 for a in pod_acks)
        acked_at = max((a.at for a in pod_acks if a), default=ctl.acknowledged_at)
    else:
        acked_gen, acked_at = ctl.acknowledged_generation, ctl.acknowledged_at
    st.control = ControlStatus(
        generation=doc.generation, acknowledged_generation=acked_gen, acknowledged_at=acked_at, hash=doc.content_hash()
    )
    st.trading_state = state

    # -- kill-switch progress: ack (or deadline), then scale to 0 ---------------------------
    replicas = replicas_wanted
    if latched:
        # Nothing may trade under a halted strategy's name: pods its Deployment does not own go.
        plan.delete_pods = [p.name for p in obs.pods if not p.terminating and _foreign(obs.name, p)]
    if latched and ks is not None:
        if ks.halt_generation is None or ks.halt_generation < doc.generation:
            ks = st.kill_switch = ks.model_copy(update={"halt_generation": doc.generation})
        assert ks.at is not None and ks.halt_generation is not None
        halted_at, halt_generation = ks.at, ks.halt_generation  # typed once: ks is replaced below
        is_acked = acked(halt_generation) and plan.control is None
        deadline = halted_at + ack_deadline
        current = dep.replicas if dep is not None else 0
        if ks.completed_at is not None or is_acked or now >= deadline:
            replicas = 0
            if ks.acknowledged is None and ks.completed_at is None:
                running = sorted(p.name for p in obs.pods if not p.terminating and not _foreign(obs.name, p))
                ks = st.kill_switch = ks.model_copy(update={"acknowledged": is_acked, "pods": running})
                if not is_acked:
                    inc = _incident_name(obs.name, "unacked-halt", halted_at.isoformat())
                    pods = ", ".join(
                        sorted(
                            p.name
                            for p in ready_pods
                            if (a := obs.acks.get(p.name)) is None or a.generation < halt_generation
                        )
                    )
                    plan.incidents.append(
                        NewIncident(
                            inc,
                            IncidentClass.stale_data,
                            Severity.P0,
                            f"HALTED (generation {ks.halt_generation}) not acknowledged within {ack_deadline} by: "
                            f"{pods or 'unknown'}",
                            "killSwitch",
                            "scaled to 0 without acknowledgement",
                        )
                    )
                    plan.events.append(
                        Event(
                            "Warning",
                            "KillSwitchUnacknowledged",
                            f"HALTED not acknowledged within {ack_deadline} by {pods or 'unknown'}: "
                            "scaling to 0 anyway",
                        )
                    )
            if ks.completed_at is None and current == 0 and not obs.pods and dep is not None and dep.replicas == 0:
                st.kill_switch = ks.model_copy(update={"completed_at": now})
                plan.kill_switch_seconds = (now - halted_at).total_seconds()
                plan.events.append(
                    Event(
                        "Normal",
                        "KillSwitchCompleted",
                        f"halted and scaled to 0 in {plan.kill_switch_seconds:.2f}s (acknowledged: {ks.acknowledged})",
                    )
                )
            _record_exits(st, plan, obs, now)
        else:
            replicas = current
            plan.wake_in((deadline - now).total_seconds())
    elif failed_without_target:
        replicas = 0

    # -- resume progress: REDUCING acknowledged with every pod Ready -> ACTIVE -------------------
    if st.resume is not None and st.resume.stage == "Reducing" and not latched and not throttled:
        all_ready = (
            dep is not None and image is not None and dep.healthy(image, replicas) and len(ready_pods) == replicas
        )
        if plan.control is None and all_ready and acked(doc.generation):
            st.resume = st.resume.model_copy(update={"stage": "Active"})
            plan.events.append(Event("Normal", "ResumeActive", "REDUCING acknowledged by every pod: ACTIVE"))
            plan.wake_in(0.5)  # write the ACTIVE control document on the next pass

    # -- the Deployment: create, planned change, or drift ---------------------------------------
    if target is not None:
        desired = manifests.deployment(obs.name, obs.namespace, obs.uid, spec, target, replicas, image)
        desired_fp = desired["metadata"]["annotations"][manifests.ANNOTATION_DESIRED]
        if dep is None:
            plan.deployment = desired
        elif dep.desired_fingerprint is not None and dep.live_fingerprint != dep.desired_fingerprint:
            plan.deployment = desired
            plan.deployment_drifted = True
            inc = _incident_name(obs.name, "drift", f"{dep.generation}:{dep.live_fingerprint}")
            plan.incidents.append(
                NewIncident(
                    inc,
                    IncidentClass.config_drift,
                    Severity.P1,
                    f"Deployment {obs.name} was changed outside Git (generation {dep.generation}); reverted to spec",
                    "none",
                    "reverted the Deployment to the operator's decision",
                )
            )
            plan.events.append(
                Event("Warning", "ConfigDrift", f"Deployment {obs.name} changed by someone else: reverted")
            )
            plan.actions.append("drift_revert")
        elif dep.desired_fingerprint != desired_fp:
            plan.deployment = desired
    st.active_version = rollout.version if rollout else None

    # -- conditions, phase, incidents ------------------------------------------------------
    open_incidents = sorted({i.name for i in obs.incidents if i.open} | {i.name for i in plan.incidents})
    st.open_incidents = open_incidents or None
    ready = dep is not None and image is not None and replicas > 0 and dep.healthy(image, replicas)
    _set_condition(
        conds,
        now,
        obs.generation,
        "Ready",
        ready,
        "Halted" if latched else "RolloutReady" if ready else "RolloutInProgress",
        f"{dep.ready_replicas if dep else 0}/{replicas} pods Ready running {target}",
    )
    _set_condition(
        conds,
        now,
        obs.generation,
        "Healthy",
        not open_incidents,
        "NoOpenIncidents" if not open_incidents else "OpenIncidents",
        ", ".join(open_incidents),
    )
    gates_missing = []
    named = [
        g for g in ([spec.gates.pre_launch, spec.gates.daily, *(spec.gates.others or [])] if spec.gates else []) if g
    ]
    not_found = sorted({g for g in named if obs.gates.get(g) is None})
    if not_found:
        # Schema-valid but unable to work: the strategy names gates that do not exist (or do
        # not list it). Said once per change, in an Event and the GatesSatisfied condition.
        msg = f"gates not found or not listing {obs.name}: {', '.join(not_found)}"
        prev = _condition(st, "GatesSatisfied")
        if prev is None or msg not in (prev.message or ""):
            plan.events.append(Event("Warning", "GateNotFound", msg))
        gates_missing.append(msg)
    if spec.gates and spec.gates.pre_launch and (m := _prelaunch_missing(spec, prelaunch, obs.trading_author)):
        gates_missing.append(m)
    if spec.gates and spec.gates.daily and not (daily and daily.complete):
        gates_missing.append(
            f"daily gate {spec.gates.daily}: " + (f"missing {', '.join(daily.missing)}" if daily else "not found")
        )
    lapsed_reviews = sorted(
        n for n, g in obs.gates.items() if g is not None and g.cadence == "quarterly" and g.state == "Expired"
    )
    if lapsed_reviews:
        msg = f"quarterly review {', '.join(lapsed_reviews)} lapsed: review this model for retirement"
        gates_missing.append(msg)
        prev = _condition(st, "GatesSatisfied")
        if prev is None or msg not in prev.message:
            plan.events.append(Event("Warning", "RetirementReviewDue", msg))
    if obs.gate_problems:
        msg = "; ".join(obs.gate_problems)
        prev = _condition(st, "GatesSatisfied")
        if prev is None or msg not in (prev.message or ""):
            plan.events.append(Event("Warning", "GateUnreadable", msg))
        gates_missing.append(msg)
    _set_condition(
        conds,
        now,
        obs.generation,
        "GatesSatisfied",
        not gates_missing,
        "Signed" if not gates_missing else "Missing",
        "; ".join(gates_missing),
    )
    rec = st.last_reconciliation
    _set_condition(
        conds,
        now,
        obs.generation,
        "Reconciled",
        rec is not None and rec.result == "Matched",
        rec.result if rec else "NotRecorded",
        f"{rec.result} at {rec.at.isoformat()} by {rec.by}: {rec.evidence}" if rec else "no reconciliation recorded",
    )
    if (err := _condition(st, "ReconcileError")) is not None and err.status == "True":
        _set_condition(conds, now, obs.generation, "ReconcileError", False, "Decided", "the whole decision runs again")
    st.conditions = conds
    st.handled_commands = handled_cmds or None
    known = {i.name for i in obs.incidents}
    st.handled_incidents = [n for n in handled_incidents if n in known] or None
    st.observed_generation = obs.generation
    if latched:
        st.phase = Phase.Halted
    elif failed_without_target:
        st.phase = Phase.Failed
    elif rollout is not None and rollout.rollback and not ready:
        st.phase = Phase.RollingBack
    elif throttled:
        st.phase = Phase.Throttled
    elif ready:
        st.phase = Phase.Running
    elif dep is None and target is None:
        st.phase = Phase.Pending
    else:
        st.phase = Phase.Deploying

    # -- containment: an incident is contained when the strategy reached the safe state its
    # immediate action aims at (observed, not assumed) --------------------------------------------
    for inc in obs.incidents:
        if inc.open and inc.acted and not inc.contained:
            detail = _containment(inc, st, plan, dep, ready, acked(doc.generation) and plan.control is None, obs)
            if detail:
                plan.incident_containment.append((inc.name, detail))
    return plan


EXIT_GRACE = timedelta(seconds=10)  # for an exit acknowledgement still on its way when the pods are gone


def pod_exits(ks: KillSwitchStatus, acks: dict[str, Acknowledgement]) -> list[PodExit]:
    """How each pod of KS.pods ended, from its last acknowledgement (the SDK's, on SIGTERM)."""
    out = []
    for pod in ks.pods or []:
        a = acks.get(pod)
        if a is None:
            out.append(PodExit(pod=pod, clean=False, detail="no acknowledgement at all"))
        elif ks.halt_generation is not None and (
            a.generation < ks.halt_generation or a.trading_state != TradingState.HALTED
        ):
            out.append(
                PodExit(
                    pod=pod,
                    clean=False,
                    detail=(
                        f"never acknowledged HALTED (last: generation {a.generation}, {a.trading_state.value}): "
                        "stopped by SIGKILL "
                        "at the grace period, or crashed"
                    ),
                )
            )
        elif not a.exiting:
            out.append(
                PodExit(
                    pod=pod,
                    clean=False,
                    detail=("acknowledged HALTED but not its exit: stopped by SIGKILL at the grace period, or crashed"),
                )
            )
        elif a.open_orders:
            out.append(PodExit(pod=pod, clean=False, detail=f"exited with {a.open_orders} working orders"))
        else:
            out.append(
                PodExit(
                    pod=pod,
                    clean=True,
                    detail=f"acknowledged HALTED, cancelled its orders, exited at {a.at.isoformat()}",
                )
            )
    return out


def _record_exits(st: StrategyStatus, plan: Plan, obs: Observations, now: datetime) -> None:
    """Once the strategy is at 0: whether each pod that was trading exited cleanly after
    HALTED. Settled (and said in an Event) when all did, or EXIT_GRACE after completion."""
    ks = st.kill_switch
    if ks is None or ks.completed_at is None or ks.exits_final_at is not None or ks.pods is None:
        return
    exits = pod_exits(ks, obs.acks)
    unclean = [e for e in exits if not e.clean]
    final = not unclean or now >= ks.completed_at + EXIT_GRACE
    st.kill_switch = ks.model_copy(update={"exits": exits, "exits_final_at": now if final else None})
    if not final:
        plan.wake_in((ks.completed_at + EXIT_GRACE - now).total_seconds())
    elif unclean:
        plan.events.append(Event("Warning", "PodExitUnclean", "; ".join(f"{e.pod}: {e.detail}" for e in unclean)))
    elif exits:
        plan.events.append(
            Event(
                "Normal",
                "PodsExitedCleanly",
                f"{len(exits)}/{len(exits)} pods acknowledged HALTED, cancelled their orders and exited",
            )
        )


def _containment(
    inc: IncidentView,
    st: StrategyStatus,
    plan: Plan,
    dep: DeploymentView | None,
    ready: bool,
    control_acked: bool,
    obs: Observations,
) -> str | None:
    """The safe state INC's strategy is in, in words, or None while it is not there yet."""
    ks = st.kill_switch
    if ks is not None and ks.latched and ks.completed_at is not None:
        return (
            f"halted: HALTED (control generation {ks.halt_generation}, acknowledged by the strategy: "
            f"{ks.acknowledged}) and scaled to 0 at {ks.completed_at.isoformat()}"
        )
    act = inc.immediate_action
    if act == "throttle" and st.throttle is not None and st.throttle.active and control_acked:
        lim = st.effective_limits
        assert lim is not None and st.control is not None
        return (
            f"throttled: REDUCING (max position {lim.max_position:g}, order rate {lim.max_order_rate:g}/s) "
            f"acknowledged by every pod at control generation {st.control.generation}"
        )
    if act == "rollback" and st.rollout is not None and st.rollout.rollback and ready and dep is not None:
        return f"rolled back: {st.rollout.version} running, {dep.ready_replicas}/{dep.replicas} pods Ready"
    if (
        act == "none"
        and inc.class_ == IncidentClass.config_drift.value
        and dep is not None
        and not plan.deployment_drifted
        and dep.desired_fingerprint == dep.live_fingerprint
    ):
        return "the Deployment matches the operator's decision again"
    return None


def _foreign(name: str, pod: PodView) -> bool:
    return not (pod.owner or "").startswith(f"ReplicaSet/{name}-")


def fleet_problems(
    name: str,
    pods: tuple[PodView, ...],
    dep: DeploymentView | None,
    image: str | None,
    replicas: int,
    acks: dict[str, Acknowledgement],
    control: ControlDocument | None,
) -> list[str]:
    """What runs under NAME that the operator did not intend, in words (empty: verified)."""
    live = [p for p in pods if not p.terminating]
    problems = [
        f"pod {p.name} is not run by Deployment {name} (owner {p.owner or 'none'})" for p in live if _foreign(name, p)
    ]
    ours = [p for p in live if not _foreign(name, p)]
    if dep is not None and image is not None and dep.healthy(image, replicas):  # the intended template is rolled out
        problems += [f"pod {p.name} runs {p.image}, not {image}" for p in ours if p.image and p.image != image]
        digest = image.split("@", 1)[1] if "@" in image else None
        if digest:
            problems += [
                f"pod {p.name} runs digest {p.image_id}, not {digest}"
                for p in ours
                if p.image_id and not p.image_id.endswith(digest)
            ]
        builds = sorted({p.image_id for p in ours if p.image_id})
        if len(builds) > 1:
            problems.append(f"pods run {len(builds)} different builds of {image}: {', '.join(builds)}")
    if control is not None:
        want = control.content_hash()
        for p in live:
            a = acks.get(p.name)
            if a is not None and a.generation == control.generation and a.control_hash and a.control_hash != want:
                problems.append(
                    f"pod {p.name} acknowledged generation {a.generation} with a different document (hash "
                    f"{a.control_hash[:12]})"
                )
    return sorted(problems)


def _prelaunch_missing(spec: StrategySpec, prelaunch: GateEvaluation | None, author: str | None) -> str:
    return approval_problem(spec.gates.pre_launch if spec.gates else None, prelaunch, author)


def _approved_spec(
    spec: StrategySpec,
    st: StrategyStatus,
    obs: Observations,
    prelaunch: GateEvaluation | None,
    current_subject: str,
    plan: Plan,
    conds: list[Condition],
) -> StrategySpec:
    """The spec to act on. Paper: SPEC. Live: SPEC with its trading-relevant fields as the
    pre-launch signatures approved them (st.approved); a change to any of them is applied once
    the gate is signed for it, and until then it is held and said (defence in depth: admission
    refuses such a change, but a webhook can be bypassed or a policy removed)."""
    now = obs.now
    if (st.mode or Mode.paper) != Mode.live:
        _set_condition(conds, now, obs.generation, "SpecApproved", True, "Paper", "paper: spec changes apply at once")
        return spec
    h, ap = trading_hash(spec), st.approved
    if ap is not None and ap.hash == h:
        _set_condition(
            conds,
            now,
            obs.generation,
            "SpecApproved",
            True,
            "Signed",
            f"running {ap.subject}, signed by {', '.join(ap.signers) or 'nobody'}",
        )
        return spec
    why = _prelaunch_missing(spec, prelaunch, obs.trading_author)
    if ap is None and why:
        # Live before approvals were recorded (an upgrade of the operator): what runs is taken
        # as approved, with nobody's signature, and said.
        ap = st.approved = Approval(
            subject=current_subject,
            hash=h,
            gate=(spec.gates.pre_launch if spec.gates else None) or "",
            signers=[],
            at=now,
            author=obs.trading_author,
            spec=trading_spec(spec),
        )
        plan.events.append(
            Event(
                "Warning",
                "ApprovalAssumed",
                f"live without a recorded approval: {current_subject} taken as approved ({why})",
            )
        )
        _set_condition(conds, now, obs.generation, "SpecApproved", True, "Assumed", f"taken as approved: {why}")
        return spec
    changed = trading_changes(ap.spec, trading_spec(spec)) if ap is not None else ["the trading-relevant spec"]
    if not why:
        assert prelaunch is not None and spec.gates is not None and spec.gates.pre_launch is not None
        st.approved = Approval(
            subject=current_subject,
            hash=h,
            gate=spec.gates.pre_launch,
            signers=list(prelaunch.signers),
            at=now,
            author=obs.trading_author,
            promoted_by=ap.promoted_by if ap else obs.mode_author,
            spec=trading_spec(spec),
        )
        plan.events.append(
            Event(
                "Normal",
                "ChangeApproved",
                f"{', '.join(changed)} changed on a live strategy, signed for {current_subject} by "
                f"{', '.join(prelaunch.signers)}: applied",
            )
        )
        _set_condition(
            conds,
            now,
            obs.generation,
            "SpecApproved",
            True,
            "Signed",
            f"running {current_subject}, signed by {', '.join(prelaunch.signers)}",
        )
        return spec
    assert ap is not None
    msg = f"{', '.join(changed)} changed on a live strategy but not applied: {why}; still running {ap.subject}"
    prev = _condition(st, "SpecApproved")
    if prev is None or prev.message != msg:
        plan.events.append(Event("Warning", "ChangeHeld", msg))
    st.message = msg
    _set_condition(conds, now, obs.generation, "SpecApproved", False, "ChangeNotSigned", msg)
    return with_trading(spec, ap.spec)


def _image_for(spec: StrategySpec, st: StrategyStatus, version: str) -> str:
    """The image reference that runs VERSION: the spec's (pinned by its digest) for the spec's
    version; for an older version (a rollback), the one recorded when it ran, so a digest never
    follows a version it does not belong to."""
    if version == spec.version:
        return manifests.image_ref(spec, version)
    for r in reversed(st.revision_history or []):
        if r.version == version:
            return r.image
    return manifests.image_ref(spec, version, pinned=False)


def _allowed_limits(st: StrategyStatus, base: EffectiveLimits, plan: Plan) -> EffectiveLimits:
    """Spec limits (for a live strategy, the approved ones: stratops.lifecycle.decide._approved_spec),
    with what moved said in an Event."""
    prev = st.effective_limits
    if prev is None:
        return base
    up = L.raised(prev, base)
    if up:
        plan.events.append(Event("Normal", "LimitsRaised", f"effective limits raised to spec: {', '.join(up)}"))
    elif base != prev:
        plan.events.append(Event("Normal", "LimitsLowered", f"effective limits follow spec down: {L.FIELDS}"))
    return base


def _block(st: StrategyStatus, version: str, reason: str, now: datetime, incident: str | None) -> list[BlockedVersion]:
    kept = [b for b in st.blocked_versions or [] if b.version != version]
    return [*kept, BlockedVersion(version=version, reason=reason, at=now, incident=incident)]
