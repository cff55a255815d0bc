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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from stratops.gates.evaluate import GateEvaluation, approval_problem, subject_for
from stratops.lifecycle import handover as H
from stratops.lifecycle import limits as L
from stratops.lifecycle import manifests
from stratops.lifecycle.commands import Command
from stratops.lifecycle.control import (
    Acknowledgement,
    BrokerInUse,
    ControlDocument,
    allows_orders,
    pre_trade_controls,
)
from stratops.lifecycle.types import (
    DeploymentView,
    Event,
    IncidentView,
    NewIncident,
    Observations,
    Plan,
    PodView,
)
from stratops.models.audit import AuditHead
from stratops.models.common import Condition, parse_duration
from stratops.models.monitor import IncidentClass, Severity
from stratops.models.strategy import (
    Approval,
    BlockedVersion,
    BrokerStatus,
    ControlStatus,
    EffectiveLimits,
    HandoverStatus,
    KillSwitchPolicy,
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


# -- the warm handover ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Address:
    """The handover's part of the control document: VERSION is the version the trading state is
    for; STATE, when set, replaces the strategy's own state for it (HALTED, STANDBY); every other
    version applies OTHERS; BOOK is what VERSION takes over."""

    version: str
    state: TradingState | None
    others: TradingState
    book: dict[str, float] | None = None


def _handover_of(s: HandoverStatus | None) -> H.Handover | None:
    if s is None:
        return None
    return H.Handover(
        from_version=s.from_version,
        to_version=s.to_version,
        trading_state=s.trading_state,
        started_at=s.started_at,
        step=H.Step(s.step),
        step_at=s.step_at,
        book=dict(s.book) if s.book is not None else None,
        reason=s.reason,
        old_stopped=bool(s.old_stopped),
    )


def _handover_status(h: H.Handover, incident: str | None) -> HandoverStatus:
    return HandoverStatus(
        from_version=h.from_version,
        to_version=h.to_version,
        trading_state=h.trading_state,
        started_at=h.started_at,
        step=h.step.value,
        step_at=h.step_at,
        book=dict(h.book) if h.book is not None else None,
        reason=h.reason,
        old_stopped=h.old_stopped or None,
        incident=incident,
    )


def _running_version(h: H.Handover) -> str:
    """The version whose template runs once H is over: the new one once it was handed trading (or
    the old one stopped), the old one otherwise."""
    if h.step in (H.Step.ACTIVATING_NEW, H.Step.DONE, H.Step.HELD) or h.old_stopped:
        return h.to_version
    if h.step == H.Step.CANCELLED and h.book is not None:
        return h.to_version
    return h.from_version


# -- the decision ------------------------------------------------------------------------
class _Decision:
    """What one decision carries from phase to phase. The first group is fixed before the first
    phase (the spec as approved, the observations, the status being written, the policy's
    figures); the second is decided by the phases, each set by the phase that owns it and read by
    the phases after it (a phase never reads what a later one sets)."""

    # fixed for the whole decision
    spec: StrategySpec  # as approved: a live strategy's unsigned change is not in it
    obs: Observations
    now: datetime
    st: StrategyStatus  # the status being decided (a copy)
    plan: Plan
    conds: list[Condition]
    commands: dict[str, Command]  # the valid commands not executed before, by kind
    handled_cmds: dict[str, str]
    handled_incidents: list[str]
    current_subject: str
    prelaunch: GateEvaluation | None
    daily: GateEvaluation | None
    kill_policy: KillSwitchPolicy | None
    ack_deadline: timedelta
    factor: float
    rollout_deadline: timedelta
    healthy_for: timedelta
    automatic: bool
    history_limit: int
    base_limits: EffectiveLimits
    ready_pods: list[PodView]  # the pods not terminating
    # decided by the phases
    fleet: list[str]  # _verify_fleet: what does not run as intended
    fleet_incident: str | None
    kill_trigger: tuple[str, str, str | None] | None  # the triggers: (reason, by, incident)
    # each (reason, by, incident, cause): every throttle asked for in this pass, so that the depth
    # depends on the causes, not on how many passes saw them arrive
    throttle_triggers: list[tuple[str, str, str | None, str]]
    rollback_trigger: tuple[str, str, str | None] | None
    handover: H.Handover | None  # _advance_handover, then _handover: the warm handover recorded
    address: _Address | None  # _handover: the handover's part of the control document (None: none)
    both_run: bool  # _handover: the Deployment keeps the old version's pods beside the new ones
    handover_holds: bool  # _handover: the rollout is the handover's to judge (not known-good, not failed)
    rearm_required: bool
    ks: KillSwitchStatus | None  # _latch_kill_switch_and_throttle, then _kill_switch_progress
    latched: bool
    throttled: bool
    mode: Mode  # _promotion
    active: str | None  # _choose_version: the version rolled out, and the one to run
    target: str | None
    rollout: RolloutStatus | None  # _choose_version, _track_rollout
    dep: DeploymentView | None
    image: str | None
    replicas_wanted: int
    failed_without_target: bool
    doc: ControlDocument  # _control_document
    replicas: int  # _kill_switch_progress: the Deployment's replicas
    ready: bool  # _conditions_and_phase

    def acked(self, generation: int) -> bool:
        """Whether every running pod has acknowledged GENERATION (or a later one)."""
        return all((a := self.obs.acks.get(p.name)) is not None and a.generation >= generation for p in self.ready_pods)


def _prepare(spec: StrategySpec, status: StrategyStatus, obs: Observations) -> _Decision:
    """The decision's fixed part: the status copied, the spec as approved, the policy's figures."""
    d = _Decision()
    d.obs = obs
    d.now = obs.now
    d.st = st = status.model_copy(deep=True)
    d.plan = plan = Plan(status=st)
    d.conds = conds = list(st.conditions or [])
    # A command id is remembered only while its annotation is still on the object (the crash
    # window between recording it and removing the annotation); once removed, the same text
    # given again is a new command.
    present = {c.kind for c in obs.commands}
    d.handled_cmds = {k: v for k, v in (st.handled_commands or {}).items() if k in present}
    d.handled_incidents = list(st.handled_incidents or [])
    d.commands = {}
    d.current_subject = subject_for(obs.name, spec)
    d.prelaunch = obs.gates.get(spec.gates.pre_launch) if spec.gates and spec.gates.pre_launch else None
    # Live: act on the trading-relevant spec as signed; an unsigned change waits (held, reported).
    d.spec = spec = _approved_spec(spec, st, obs, d.prelaunch, d.current_subject, plan, conds)
    d.kill_policy = spec.kill_switch
    d.ack_deadline = parse_duration(d.kill_policy.ack_deadline if d.kill_policy else "30s")
    d.factor = spec.throttle.factor if spec.throttle else 0.5
    policy = spec.rollback_policy
    d.rollout_deadline = parse_duration(policy.rollout_deadline if policy else "5m")
    d.healthy_for = parse_duration(policy.healthy_for if policy else "60s")
    d.automatic = policy.automatic if policy else True
    d.history_limit = policy.revision_history_limit if policy else 5
    d.base_limits = L.from_spec(spec.risk_limits)
    d.daily = obs.gates.get(spec.gates.daily) if spec.gates and spec.gates.daily else None
    d.ready_pods = [p for p in obs.pods if not p.terminating]
    return d


def _recreated_under_a_latched_name(d: _Decision) -> None:
    """Re-created: the trail under this name goes on, and a latch in it still holds."""
    obs, now, st, plan = d.obs, d.now, d.st, d.plan
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


def _validate_commands(d: _Decision) -> None:
    """Commands: validate first; an invalid one is reported and removed, nothing applied."""
    obs, st, plan, commands, handled_cmds = d.obs, d.st, d.plan, d.commands, d.handled_cmds
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


def _record_reconciliation(d: _Decision) -> None:
    """Reconciliation record."""
    now, st, plan, commands = d.now, d.st, d.plan, d.commands
    if (cmd := commands.get("reconciliation")) is not None:
        st.last_reconciliation = Reconciliation(
            at=now, result=cmd.fields["result"], evidence=str(cmd.fields.get("evidence")), by=cmd.by
        )
        kind = "Normal" if cmd.fields["result"] == "Matched" else "Warning"
        plan.events.append(
            Event(kind, "ReconciliationRecorded", f"{cmd.fields['result']} by {cmd.by}: {cmd.fields.get('evidence')}")
        )


def _record_runbook_run(d: _Decision) -> None:
    """A runbook run, recorded in the audit trail as given by whoever ran it."""
    plan, commands = d.plan, d.commands
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


def _verify_fleet(d: _Decision) -> None:
    """Fleet verification (Knight, 2012): every pod trading under this name runs what was intended and applied
    the control document written."""
    spec, obs, now, st, conds = d.spec, d.obs, d.now, d.st, d.conds
    running_image = _image_for(spec, st, st.rollout.version) if st.rollout else None
    d.fleet = fleet_problems(obs.name, obs.pods, obs.deployment, running_image, spec.replicas, obs.acks, obs.control)
    d.fleet_incident = _incident_name(obs.name, "fleet", "|".join(d.fleet)) if d.fleet else None
    _set_condition(
        conds,
        now,
        obs.generation,
        "FleetVerified",
        not d.fleet,
        "Mismatch" if d.fleet else "Verified",
        "; ".join(d.fleet) if d.fleet else "every pod runs the intended image and applied the control document",
    )


def _version_view(d: _Decision, version: str, replicas: int) -> H.VersionView:
    """VERSION's pods as the handover reads them: Ready, and what each acknowledged of the
    document in force for its version."""
    doc = d.obs.control
    mine = doc.for_version(version) if doc is not None else None
    pods = []
    for p in d.ready_pods:
        if p.version != version or _foreign(d.obs.name, p):
            continue
        a = d.obs.acks.get(p.name)
        pods.append(
            H.PodView(
                p.name,
                p.ready,
                a.generation if a else None,
                a.trading_state if a else None,
                a.book if a else None,
                a.open_orders if a else None,
            )
        )
    return H.VersionView(
        version,
        replicas,
        generation=doc.generation if doc else 0,
        state=mine.trading_state if mine else None,
        pods=tuple(pods),
    )


def _advance_handover(d: _Decision) -> None:
    """The warm handover's next step (stratops.lifecycle.handover), from what the pods acknowledged.
    Before the latch: a new version that does not take over as told halts both (P0)."""
    obs, now, st, plan = d.obs, d.now, d.st, d.plan
    d.handover = h = _handover_of(st.handover)
    if (cmd := d.commands.get("release")) is not None:
        h = d.handover = _release(d, h, cmd)
    if h is None or h.step in H.TERMINAL:
        return
    checks: H.Checks = "pass"
    if d.rollback_trigger is not None:
        incident = d.rollback_trigger[2]
        if h.step in (H.Step.STANDBY, H.Step.HALTING_OLD):
            # A breach while the new version stands by: it is the likely cause, and the old
            # version never stopped trading. The rollback is the abort.
            checks = "fail"
            d.rollback_trigger = None
            if incident:
                plan.incident_actions.append(
                    (
                        incident,
                        f"handover to {h.to_version} aborted: {h.to_version} blocked, {h.from_version} trades on",
                    )
                )
        elif incident:
            # Handed trading a moment ago: the rollback waits for the step to end (the incident
            # is taken up again by the next pass), so it is never lost nor run on a half step.
            d.handled_incidents.remove(incident)
            d.rollback_trigger = None
            plan.wake_in(0.5)
    replicas = d.spec.replicas
    old = _version_view(d, h.from_version, 0 if h.old_stopped else replicas)
    new = _version_view(d, h.to_version, replicas)
    deadlines = H.Deadlines(rollout=d.rollout_deadline, acknowledgement=d.ack_deadline)
    nxt = H.advance(h, old, new, checks, now, deadlines)
    inc = _incident_name(obs.name, "handover", f"{h.to_version}@{h.started_at.isoformat()}")
    incident = st.handover.incident if st.handover else None
    if nxt.step != h.step:
        pair = f"{h.from_version} -> {h.to_version}"
        if nxt.step == H.Step.HALTING_OLD:
            plan.events.append(
                Event(
                    "Normal",
                    "HandoverHaltingOld",
                    f"{pair}: {h.to_version} Ready on STANDBY; {h.from_version} told HALTED",
                )
            )
        elif nxt.step == H.Step.ACTIVATING_NEW:
            assert nxt.book is not None
            plan.events.append(
                Event(
                    "Normal",
                    "HandoverActivatingNew",
                    f"{pair}: {h.from_version} halted with its orders cancelled (book: {H.describe_book(nxt.book)}); "
                    f"{h.to_version} handed {nxt.trading_state.value}",
                )
            )
        elif nxt.step == H.Step.DONE:
            assert nxt.book is not None
            plan.events.append(
                Event(
                    "Normal",
                    "HandoverDone",
                    f"{pair}: {h.to_version} trades from book {H.describe_book(nxt.book)}; {h.from_version} scaled "
                    f"to 0 ({(now - h.started_at).total_seconds():.1f}s)",
                )
            )
        elif nxt.step == H.Step.ABORTED:
            incident = inc
            st.blocked_versions = _block(st, h.to_version, nxt.reason, now, inc)
            d.rollout = st.rollout = RolloutStatus(version=h.from_version, started_at=now, rollback=True)
            plan.actions.append("rollback")
            plan.incidents.append(
                NewIncident(
                    inc,
                    IncidentClass.config_drift,
                    Severity.P1,
                    f"handover {pair} aborted: {nxt.reason}; {h.from_version} trades on",
                    "rollback",
                    f"{h.to_version} scaled to 0 and blocked; {h.from_version} never stopped trading",
                )
            )
            plan.events.append(Event("Warning", "HandoverAborted", f"{pair}: {nxt.reason}; {h.from_version} trades on"))
        elif nxt.step == H.Step.HELD:
            incident = inc
            plan.actions.append("handover_held")
            plan.incidents.append(
                NewIncident(
                    inc,
                    IncidentClass.stale_data,
                    Severity.P0,
                    f"handover {pair} held: {nxt.reason}",
                    "none",
                    f"{h.from_version} scaled to 0 as a kill-switch would; {h.to_version} on STANDBY until a person "
                    "releases it (stratops handover release) or kills the strategy",
                )
            )
            plan.events.append(Event("Warning", "HandoverHeld", f"{pair}: {nxt.reason}"))
        elif nxt.step == H.Step.FAILED:
            incident = inc
            mismatch = nxt.reason.startswith("position mismatch")
            st.blocked_versions = _block(st, h.to_version, nxt.reason, now, inc)
            d.rollout = st.rollout = RolloutStatus(version=h.from_version, started_at=now, rollback=True)
            plan.incidents.append(
                NewIncident(
                    inc,
                    IncidentClass.risk_breach if mismatch else IncidentClass.stale_data,
                    Severity.P0,
                    f"handover {pair} failed: {nxt.reason}",
                    "killSwitch",
                    f"kill-switch: both versions HALTED, then scaled to 0; {h.to_version} blocked",
                )
            )
            plan.events.append(Event("Warning", "HandoverFailed", f"{pair}: {nxt.reason}; both versions halted"))
            if d.kill_trigger is None:
                d.kill_trigger = (f"handover {pair} failed: {nxt.reason}", OPERATOR, inc)
    d.handover = nxt
    st.handover = _handover_status(nxt, incident)
    if nxt.step not in H.TERMINAL:
        waited = now - nxt.since()
        limit = deadlines.rollout if nxt.step == H.Step.STANDBY else deadlines.acknowledgement
        since = nxt.started_at if nxt.step == H.Step.STANDBY else nxt.since()
        plan.wake_in((since + limit - now).total_seconds() + 0.1 if waited < limit else 0.5)


def _release(d: _Decision, h: H.Handover | None, cmd: Command) -> H.Handover | None:
    """A person's decision on a held handover: the new version handed trading after all, from the
    book they reconciled at the broker. Only after a Matched reconciliation recorded since the hold,
    and once no pod of the old version is left."""
    now, st, plan = d.now, d.st, d.plan
    rec = st.last_reconciliation
    refusal = None
    if h is None or h.step != H.Step.HELD:
        refusal = "no held handover to release" + (f" (the last one is {h.step.value})" if h else "")
    elif st.kill_switch is not None and st.kill_switch.latched:
        refusal = "the kill-switch is latched: resume the strategy instead"
    elif rec is None or rec.result != "Matched" or rec.at <= h.since():
        refusal = (
            "record a Matched reconciliation of positions and open orders since the hold first "
            "(stratops reconcile --result Matched --evidence …)"
        )
    if refusal is None:
        assert h is not None
        old = _version_view(d, h.from_version, 0)
        try:
            released = H.release(h, old, {str(k): float(v) for k, v in cmd.fields["book"].items()}, now)
        except ValueError as e:
            refusal = str(e)
    if refusal is not None:
        msg = f"release by {cmd.by} refused: {refusal}"
        plan.events.append(Event("Warning", "ReleaseRefused", msg))
        st.message = msg
        return h
    assert released.book is not None
    msg = (
        f"handover {released.from_version} -> {released.to_version} released by {cmd.by}: {cmd.reason}; "
        f"{released.to_version} handed {released.trading_state.value} from book {H.describe_book(released.book)}"
    )
    plan.events.append(Event("Warning", "HandoverReleased", msg))
    st.message = msg
    st.handover = _handover_status(released, st.handover.incident if st.handover else None)
    return released


def _own_state(d: _Decision) -> TradingState:
    """The strategy's own trading state, as its commands and incidents decide it: HALTED by a
    latched kill-switch, REDUCING by a throttle or the first stage of a resume, else ACTIVE."""
    st = d.st
    if d.latched:
        return TradingState.HALTED
    if d.throttled or (st.resume is not None and st.resume.stage == "Reducing"):
        return TradingState.REDUCING
    return TradingState.ACTIVE


def _handover_enabled(spec: StrategySpec, mode: Mode) -> bool:
    policy = spec.rollback_policy
    return policy.handover if policy is not None and policy.handover is not None else mode == Mode.live


def _handover(d: _Decision) -> None:
    """Start, overtake or carry on a warm handover, and what it asks of the control document and
    the Deployment. A version change on a strategy that trades on one replica, with the handover
    enabled, starts the new version on STANDBY beside the old one instead of Recreate."""
    obs, now, st, plan = d.obs, d.now, d.st, d.plan
    h = d.handover
    own = _own_state(d)
    running = {H.Step.STANDBY, H.Step.HALTING_OLD, H.Step.ACTIVATING_NEW, H.Step.HELD}
    if h is not None and h.step in running:
        pair = f"{h.from_version} -> {h.to_version}"
        why = None
        if d.latched:
            why = "kill-switch latched: both versions HALTED and scaled to 0"
        elif h.step in (H.Step.STANDBY, H.Step.HALTING_OLD) and d.target != h.to_version:
            why = (
                f"rolled back to {d.target}"
                if d.rollout is not None and d.rollout.rollback
                else f"version {d.target} named meanwhile"
            )
        if why is not None:
            h = H.cancel(h, why, now, kill=d.latched)
            plan.events.append(Event("Warning", "HandoverCancelled", f"{pair}: {why}"))
            running_version = _running_version(h)
            if running_version == h.from_version:
                # The new version goes with the old template back; a newer target is handed
                # over warm once only the old version's pods are left.
                d.target = h.from_version
                if d.rollout is None or d.rollout.version != h.from_version:
                    d.rollout = st.rollout = RolloutStatus(version=h.from_version, started_at=now)
        elif h.step == H.Step.ACTIVATING_NEW and d.target != h.to_version:
            # Handed trading a moment ago: the next version waits for this step to end.
            st.message = f"version {d.target} waits for the handover {pair} to finish"
            d.target = h.to_version
    elif (
        (h is None or h.step in H.TERMINAL)
        and d.active is not None
        and d.target is not None
        and d.target != d.active
        and not d.latched
    ):
        h = _maybe_start(d, own)
    trades = (TradingState.ACTIVE, TradingState.REDUCING)
    if h is not None and h.step in (H.Step.STANDBY, H.Step.HALTING_OLD, H.Step.ACTIVATING_NEW) and own in trades:
        h = replace(h, trading_state=own)  # a throttle meanwhile: the new version takes over REDUCING
    d.handover = h
    if h is not None:
        st.handover = _handover_status(h, st.handover.incident if st.handover else None)
    d.both_run = h is not None and h.step in H.BOTH_RUN and not h.old_stopped
    d.handover_holds = h is not None and h.step in running
    d.address = None
    if h is None or d.latched:
        return
    versions = {p.version for p in d.ready_pods if not _foreign(obs.name, p)}
    p = H.plan(h)
    if h.step in (H.Step.STANDBY, H.Step.HALTING_OLD, H.Step.HELD):
        d.address = _Address(h.from_version, p.old.state, TradingState.STANDBY)
    elif h.step in (H.Step.ACTIVATING_NEW, H.Step.DONE):
        d.address = _Address(h.to_version, None, TradingState.HALTED, dict(h.book) if h.book is not None else None)
        if h.step == H.Step.DONE and versions <= {h.to_version}:
            d.address = None  # the old version's pods are gone: one version, one plain document
    elif h.step in (H.Step.ABORTED, H.Step.CANCELLED) and versions - {_running_version(h)}:
        # The new version's pods are still going: they stand by until they are gone.
        d.address = _Address(_running_version(h), None, TradingState.STANDBY)


def _one_trading_version(d: _Decision) -> None:
    """Whatever was decided, pods of two versions are never told to trade by one document: when
    more than one version runs and no handover addresses the document, it names the version that
    ran (the others stand by until they are gone)."""
    if d.address is not None or d.latched:
        return
    versions = {p.version for p in d.ready_pods if not _foreign(d.obs.name, p)}
    if len(versions) > 1:
        trading = d.active if d.active in versions else d.target
        if trading is not None:
            d.address = _Address(trading, None, TradingState.STANDBY)


def _maybe_start(d: _Decision, own: TradingState) -> H.Handover | None:
    """A handover from the active version to the target, when one can be warm; None otherwise
    (said in an Event when only the strategy's shape prevents it)."""
    spec, obs, now, plan = d.spec, d.obs, d.now, d.plan
    assert d.active is not None and d.target is not None
    if not _handover_enabled(spec, d.mode) or own not in (TradingState.ACTIVE, TradingState.REDUCING):
        return None
    ours = [p for p in d.ready_pods if not _foreign(obs.name, p)]
    active = [p for p in ours if p.version == d.active]
    # The active version runs whole and Ready. The target's pods may be there already: an
    # operator that died after starting a handover and before recording it starts it again.
    trading = (
        obs.deployment is not None
        and len(active) == spec.replicas
        and all(p.ready for p in active)
        and {p.version for p in ours} <= {d.active, d.target}
    )
    if not trading:
        return None  # nothing trades that could hand over: a plain rollout
    why = None
    if spec.replicas != 1:
        why = f"{spec.replicas} replicas: a book split between pods is not handed over warm"
    elif any((a := obs.acks.get(p.name)) is None or a.book is None for p in active):
        why = f"version {d.active} reports no book in its acknowledgements (the SDK's book=)"
    if why is not None:
        # Said once per rollout (its Event), when the rollout starts: the next passes find the
        # target rolled out, or rolling out, and come no further.
        plan.events.append(
            Event("Warning", "HandoverSkipped", f"no warm handover {d.active} -> {d.target}: {why}; Recreate")
        )
        return None
    h = H.start(_version_view(d, d.active, spec.replicas), d.target, own, now)
    plan.actions.append("handover")
    plan.events.append(
        Event(
            "Normal",
            "HandoverStarted",
            f"{d.active} -> {d.target}: {d.target} starts on STANDBY beside {d.active}, which trades on",
        )
    )
    plan.wake_in(d.rollout_deadline.total_seconds())
    return h


def _incident_triggers(d: _Decision) -> None:
    """Incidents that ask for an action."""
    obs, st, plan, handled_incidents = d.obs, d.st, d.plan, d.handled_incidents
    d.kill_trigger = None  # (reason, by, incident)
    d.rearm_required = False
    d.throttle_triggers = []
    d.rollback_trigger = None
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
            if d.kill_trigger is None:  # its immediate action is on record already: not repeated
                d.kill_trigger = (
                    f"re-created while incident {inc.name} ({inc.class_} {inc.severity}) is open",
                    OPERATOR,
                    None,
                )
            d.rearm_required = d.rearm_required or inc.require_rearm
            continue
        if not inc.open or inc.acted or inc.name in handled_incidents:
            continue
        handled_incidents.append(inc.name)
        act = inc.immediate_action
        why = f"incident {inc.name} ({inc.class_} {inc.severity})"
        if act == "killSwitch" and d.kill_trigger is None:
            d.kill_trigger = (why, OPERATOR, inc.name)
        if act == "killSwitch" and inc.require_rearm:
            d.rearm_required = True
        elif act == "throttle":
            d.throttle_triggers.append((why, OPERATOR, inc.name, inc.class_))
        elif act == "rollback" and d.rollback_trigger is None:
            d.rollback_trigger = (why, OPERATOR, inc.name)
        elif act == "none":
            plan.incident_actions.append((inc.name, "recorded; no automatic action (action: none)"))
    if d.fleet_incident is not None and d.fleet_incident not in {i.name for i in obs.incidents}:
        detail = "; ".join(d.fleet)
        plan.incidents.append(
            NewIncident(
                d.fleet_incident,
                IncidentClass.config_drift,
                Severity.P0,
                f"fleet verification failed: {detail}"[:2048],
                "killSwitch",
                "kill-switch: control HALTED, then scale to 0; foreign pods deleted",
            )
        )
        plan.events.append(Event("Warning", "FleetMismatch", detail))
        if d.kill_trigger is None:
            d.kill_trigger = (f"fleet verification failed: {detail}", OPERATOR, d.fleet_incident)


def _control_integrity(d: _Decision) -> None:
    """The control document: only the operator writes it. Unreadable: a P0 (the pods may have read anything:
    stop). Readable but not what the operator last wrote: drift, reverted."""
    obs, now, st, plan, conds = d.obs, d.now, d.st, d.plan, d.conds
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
            if d.kill_trigger is None:
                d.kill_trigger = (f"control document unreadable: {obs.control_problem}", OPERATOR, inc)
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


def _reported_limits(d: _Decision) -> None:
    """Exposure-linked kill: the strategy's own reports against its monitors, on every report. An episode's
    incident is named from the monitor and the episode's number, both in status: a reconcile run again (after
    a crash before the status write, or while the view of the Incidents lags the operator's own creates) names
    the same incident, and its create is a no-op. Its name is matched exactly, never by prefix (gross vs
    gross-exposure)."""
    obs, st, plan, commands, ready_pods = d.obs, d.st, d.plan, d.commands, d.ready_pods
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
        if act == "killSwitch" and d.kill_trigger is None:
            d.kill_trigger = (why, OPERATOR, inc)
            d.rearm_required = d.rearm_required or m.require_rearm
        elif act == "throttle":
            d.throttle_triggers.append((why, OPERATOR, inc, m.class_))
    st.report_breaches = breaches or None
    if (cmd := commands.get("kill")) is not None:
        d.kill_trigger = (cmd.reason, cmd.by, None)
        d.rearm_required = d.rearm_required or bool(cmd.fields.get("requireRearm"))
    if (cmd := commands.get("throttle")) is not None:
        # each command given is a cause of its own (the same text again later is a new command)
        d.throttle_triggers.append((cmd.reason, cmd.by, None, f"throttle by {cmd.by} at {d.now.isoformat()}"))
    if (cmd := commands.get("rollback")) is not None:
        d.rollback_trigger = (cmd.reason, cmd.by, None)


def _latch_kill_switch_and_throttle(d: _Decision) -> None:
    """Kill-switch: P0 stops. Latched until a valid resume."""
    now, st, plan, commands = d.now, d.st, d.plan, d.commands
    d.ks = st.kill_switch
    if d.kill_trigger is not None:
        reason, by, incident = d.kill_trigger
        if d.ks is not None and d.ks.latched:
            if incident:
                plan.incident_actions.append((incident, f"kill-switch already latched since {d.ks.at}"))
            elif commands.get("kill") is not None:
                # Latched already: nothing more to do, but the second decision is on the record.
                plan.events.append(
                    Event(
                        "Warning",
                        "KillSwitchAgain",
                        f"kill-switch by {by} while latched since {d.ks.at} by {d.ks.by}: {reason}",
                    )
                )
            if d.rearm_required and not d.ks.rearm_required:  # a second, stricter halt tightens the latch
                d.ks = st.kill_switch = d.ks.model_copy(
                    update={"rearm_required": True, "rearmed_by": None, "rearmed_at": None}
                )
                plan.events.append(Event("Warning", "RearmRequired", f"re-arm now required ({reason})"))
        else:
            kc = commands.get("kill")
            d.ks = st.kill_switch = KillSwitchStatus(
                latched=True,
                reason=reason,
                by=by,
                at=now,
                incident=incident,
                decision=(str(kc.fields.get("decision") or kc.id) if kc is not None and incident is None else None),
                scope=(str(kc.fields.get("scope") or "strategy") if kc is not None and incident is None else None),
                rearm_required=d.rearm_required or None,
            )
            st.resume = None
            plan.actions.append("kill_switch")
            plan.events.append(Event("Warning", "KillSwitch", f"kill-switch engaged by {by}: {reason}"))
            if incident:
                plan.incident_actions.append((incident, "kill-switch: control HALTED, then scale to 0"))
    if d.throttle_triggers:
        _throttle(d)
    d.latched = d.ks is not None and d.ks.latched
    d.throttled = st.throttle is not None and st.throttle.active


def _throttle(d: _Decision) -> None:
    """Throttle: P1 slows. One level per cause (an incident class, a command): the limits are the
    spec's x factor^causes, whatever order the causes arrive in and however many reconcile passes
    see them; an incident of a class already in force throttles no deeper."""
    now, st, plan, factor, base_limits = d.now, d.st, d.plan, d.factor, d.base_limits
    if d.ks is not None and d.ks.latched:
        for _, _, incident, _ in d.throttle_triggers:
            if incident:
                plan.incident_actions.append((incident, "kill-switch latched; throttle not needed"))
        return
    active = st.throttle is not None and st.throttle.active
    causes = list((st.throttle.causes or []) if st.throttle is not None and active else [])
    if active and not causes and st.throttle is not None:
        causes = [st.throttle.reason or "throttle"]  # a throttle recorded before causes were
    new = [t for t in d.throttle_triggers if t[3] not in causes]
    for _, _, _, cause in new:
        if cause not in causes:
            causes.append(cause)
    depth = f"x{factor}" + (f"^{len(causes)}" if len(causes) > 1 else "")
    for _, _, incident, cause in d.throttle_triggers:
        if incident:
            done = (
                f"throttle: REDUCING, limits {depth}"
                if any(t[2] == incident for t in new)
                else f"throttle already in force for {cause}: no deeper"
            )
            plan.incident_actions.append((incident, done))
    if not new:
        return
    prev = st.effective_limits if active and st.effective_limits is not None else base_limits
    st.effective_limits = L.lowest(L.throttled_by(base_limits, factor, len(causes)), prev)
    reason, by, incident, _ = new[0]
    st.throttle = (
        st.throttle.model_copy(update={"causes": causes})
        if active and st.throttle is not None
        else ThrottleStatus(active=True, reason=reason, by=by, at=now, incident=incident, causes=causes)
    )
    st.resume = None
    plan.actions.append("throttle")
    whys = "; ".join(r for r, _, _, _ in new)
    plan.events.append(
        Event(
            "Warning",
            "Throttle",
            f"throttled by {by}: {whys}; limits {depth} for {len(causes)} cause(s) ({', '.join(causes)}): "
            f"position {st.effective_limits.max_position:g}, order rate {st.effective_limits.max_order_rate:g}/s",
        )
    )


def _rearm(d: _Decision) -> None:
    """Re-arm: a designated user allows a halt that requires it to be resumed (resumes nothing)."""
    now, st, plan, commands, kill_policy = d.now, d.st, d.plan, d.commands, d.kill_policy
    if (cmd := commands.get("rearm")) is not None:
        allowed = list((kill_policy.rearm_by if kill_policy else None) or [])
        refusal = None
        if not d.latched or d.ks is None or not d.ks.rearm_required:
            refusal = "no halt that requires a re-arm is latched"
        elif cmd.by not in allowed:
            refusal = f"{cmd.by} is not a designated user (spec.killSwitch.rearmBy: {', '.join(allowed) or 'nobody'})"
        if refusal:
            msg = f"re-arm by {cmd.by} refused: {refusal}"
            plan.events.append(Event("Warning", "RearmRefused", msg))
            st.message = msg
        elif d.ks is not None and d.ks.rearmed_at is None:
            d.ks = st.kill_switch = d.ks.model_copy(update={"rearmed_by": cmd.by, "rearmed_at": now})
            msg = (
                f"re-armed by {cmd.by}: {cmd.reason}; a resume is now possible (reconciliation, incidents, daily gate)"
            )
            plan.events.append(Event("Normal", "Rearmed", msg))
            st.message = msg


def _broker_failover(d: _Decision) -> None:
    """Broker failover: only with order entry halted, so no order is in flight across brokers."""
    spec, now, st, plan, commands = d.spec, d.now, d.st, d.plan, d.commands
    if (cmd := commands.get("failover")) is not None:
        to = cmd.fields["to"]
        on = st.broker.role if st.broker else "primary"
        chosen = spec.brokers.backup if to == "backup" else spec.brokers.primary
        refusals = []
        if chosen is None:
            refusals.append("spec.brokers.backup is not set: there is no backup broker to fail over to")
        elif to == on:
            refusals.append(f"already on the {on} broker ({chosen.name})")
        if not d.latched:
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


def _resume(d: _Decision) -> None:
    """Resume: only resolved incidents, a fresh reconciliation and a signed daily gate."""
    spec, obs, now, st, plan, commands, kill_policy, factor, base_limits, daily = (
        d.spec,
        d.obs,
        d.now,
        d.st,
        d.plan,
        d.commands,
        d.kill_policy,
        d.factor,
        d.base_limits,
        d.daily,
    )
    if (cmd := commands.get("resume")) is not None:
        refusals = []
        if not d.latched and not d.throttled:
            refusals.append("nothing to resume: no kill-switch latched and no throttle in force")
        if d.latched and d.ks is not None and d.ks.rearm_required and d.ks.rearmed_at is None:
            allowed = (
                ", ".join((kill_policy.rearm_by if kill_policy else None) or [])
                or "nobody: set spec.killSwitch.rearmBy"
            )
            refusals.append(
                "re-arm required first (exposure-linked or repeated-execution halt): `stratops rearm` by one of "
                f"{allowed}"
            )
        if d.latched and d.ks is not None and d.ks.completed_at is None:
            # Until every pod is gone the strategy may still be trading: positions reconciled
            # before that are not the positions it would resume from.
            refusals.append(
                "the kill-switch has not completed (HALTED acknowledged and scaled to 0): reconcile once it has"
            )
        # The reconciliation must postdate the stop (its completion: the last pod gone) and any
        # broker switch: positions at the new broker are what the strategy resumes against.
        stopped_at = max(
            [
                t
                for t in (
                    (d.ks.completed_at or d.ks.at) if d.ks else None,
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
            if d.ks is not None:
                st.kill_switch = d.ks.model_copy(update={"latched": False})
            if st.throttle is not None:
                st.throttle = st.throttle.model_copy(update={"active": False})
            d.latched = d.throttled = False
            st.resume = ResumeStatus(by=cmd.by, at=now, reason=cmd.reason, stage="Reducing")
            if st.rollout is not None:  # the rollout clock restarts with the pods
                st.rollout = st.rollout.model_copy(update={"started_at": now, "ready_since": None})
            st.effective_limits = _allowed_limits(st, base_limits, plan)
            plan.actions.append("resume")
            if cmd.fields.get("throttled"):
                # Back to trading, but slow: a throttle in force until a later full resume (which
                # needs a reconciliation newer than this one).
                st.throttle = ThrottleStatus(
                    active=True,
                    reason=f"resumed throttled: {cmd.reason}",
                    by=cmd.by,
                    at=now,
                    causes=[f"resumed throttled by {cmd.by}"],
                )
                st.effective_limits = L.lowest(L.throttled(st.effective_limits, factor), base_limits)
                d.throttled = True
                msg = (
                    f"resume by {cmd.by} accepted, throttled: {cmd.reason}; "
                    f"REDUCING with limits x{factor} until a full resume"
                )
            else:
                msg = f"resume by {cmd.by} accepted: {cmd.reason}; REDUCING until acknowledged, then ACTIVE"
            plan.events.append(Event("Normal", "Resume", msg))
            st.message = msg
            # A throttle command seen in the same pass stands after the resume: the annotations
            # do not say which came first, and a throttle is never lost (the soak found one given
            # 23 ms after a resume, consumed by it, the strategy trading at full limits).
            given = [t for t in d.throttle_triggers if t[2] is None]
            if given and not cmd.fields.get("throttled"):
                d.ks, d.throttle_triggers = st.kill_switch, given
                _throttle(d)
                d.throttled = True
                st.message = f"{msg}; a throttle given with it stands: {given[0][0]}"


def _effective_limits(d: _Decision) -> None:
    """Effective limits: follow spec down at once; up only through the rules above."""
    st, plan, base_limits = d.st, d.plan, d.base_limits
    if st.effective_limits is None:
        st.effective_limits = base_limits
    elif d.throttled:
        st.effective_limits = L.lowest(st.effective_limits, base_limits)
    else:
        st.effective_limits = _allowed_limits(st, base_limits, plan)


def _promotion(d: _Decision) -> None:
    """Promotion paper -> live."""
    spec, obs, now, st, plan, conds, current_subject, prelaunch = (
        d.spec,
        d.obs,
        d.now,
        d.st,
        d.plan,
        d.conds,
        d.current_subject,
        d.prelaunch,
    )
    d.mode = st.mode or Mode.paper
    if spec.mode == Mode.paper and d.mode == Mode.live:
        d.mode = Mode.paper
        plan.events.append(Event("Normal", "Demoted", "spec.mode is paper: trading on paper from now on"))
    if spec.mode == Mode.live and d.mode != Mode.live:
        missing, reason = _prelaunch_missing(spec, prelaunch, obs.trading_author), "GatesIncomplete"
        if not missing:
            missing, reason = _not_yet_running(spec, st), "VersionNotKnownGood"
        if missing:
            msg = f"promotion to live {'blocked' if reason == 'GatesIncomplete' else 'waits'}: {missing}"
            prev = _condition(st, "Promoted")
            if prev is None or prev.message != msg:
                if reason == "GatesIncomplete":
                    plan.events.append(Event("Warning", "PromotionBlocked", msg))
                else:
                    plan.events.append(Event("Normal", "PromotionWaits", msg))
            _set_condition(conds, now, obs.generation, "Promoted", False, reason, msg)
        else:
            assert prelaunch is not None and spec.gates is not None and spec.gates.pre_launch is not None
            d.mode = Mode.live
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
    elif d.mode == Mode.live:
        _set_condition(conds, now, obs.generation, "Promoted", True, "Live", "trading live")
    else:
        _set_condition(conds, now, obs.generation, "Promoted", False, "Paper", "spec.mode is paper")
    st.mode = d.mode


def _choose_version(d: _Decision) -> None:
    """Which version to run."""
    spec, now, st, plan, daily = d.spec, d.now, d.st, d.plan, d.daily
    blocked = {b.version for b in st.blocked_versions or []}
    d.rollout = st.rollout
    d.active = d.rollout.version if d.rollout else None
    wanted = spec.version
    hold_reason = None
    if wanted in blocked:
        hold_reason = f"version {wanted} is blocked (failed or rolled back); spec must name another version"
    elif (
        d.active is not None
        and wanted != d.active
        and spec.gates
        and spec.gates.daily
        and not (daily and daily.complete)
    ):
        # A lapsed daily gate blocks new deployments (paper included): nobody checked the desk today.
        hold_reason = f"version {wanted} not rolled out: daily gate {spec.gates.daily} is " + (
            f"{daily.state} (missing {', '.join(daily.missing)})" if daily else "not found"
        )
    d.target = wanted if hold_reason is None else (d.active or st.last_known_good)
    if hold_reason:
        prev = st.message
        if prev != hold_reason:
            plan.events.append(Event("Warning", "VersionHeld", hold_reason))
        st.message = hold_reason

    # manual or incident rollback
    if d.rollback_trigger is not None:
        reason, by, incident = d.rollback_trigger
        good = [r.version for r in st.revision_history or [] if r.known_good_at]
        to = (
            st.last_known_good
            if st.last_known_good and st.last_known_good != d.active
            else next((v for v in reversed(good) if v != d.active), None)
        )
        if to is None or d.active is None:
            msg = f"rollback by {by} refused: no known-good version other than {d.active}"
            plan.events.append(Event("Warning", "RollbackRefused", msg))
            st.message = msg
            if incident:
                plan.incident_actions.append((incident, msg))
        else:
            st.blocked_versions = _block(st, d.active, f"rolled back by {by}: {reason}", now, incident)
            blocked.add(d.active)
            d.target = to
            d.rollout = st.rollout = RolloutStatus(version=to, started_at=now, rollback=True)
            plan.actions.append("rollback")
            plan.events.append(Event("Warning", "Rollback", f"rolled back {d.active} -> {to} by {by}: {reason}"))
            if incident:
                plan.incident_actions.append((incident, f"rollback {d.active} -> {to}"))
    if d.target is not None and d.target in blocked and d.target != (d.rollout.version if d.rollout else None):
        d.target = st.last_known_good


def _track_rollout(d: _Decision) -> None:
    """Rollout tracking and automatic rollback."""
    spec, obs, now, st, plan, rollout_deadline, healthy_for, automatic, history_limit = (
        d.spec,
        d.obs,
        d.now,
        d.st,
        d.plan,
        d.rollout_deadline,
        d.healthy_for,
        d.automatic,
        d.history_limit,
    )
    d.replicas_wanted = spec.replicas
    if d.target is not None and (d.rollout is None or d.rollout.version != d.target):
        d.rollout = st.rollout = RolloutStatus(version=d.target, started_at=now)
        if d.active is not None:
            plan.events.append(Event("Normal", "Rollout", f"rolling out {d.target} (was {d.active})"))
    d.dep = obs.deployment
    d.image = _image_for(spec, st, d.target) if d.target else None
    if (
        d.rollout is not None
        and d.image is not None
        and not d.latched
        and d.replicas_wanted > 0
        and not d.handover_holds  # the handover judges its version, with its own deadlines
    ):
        healthy = d.dep is not None and d.dep.healthy(d.image, d.replicas_wanted)
        if healthy:
            if d.rollout.ready_since is None:
                d.rollout = st.rollout = d.rollout.model_copy(update={"ready_since": now})
            assert d.rollout.ready_since is not None
            held = now - d.rollout.ready_since
            if st.last_known_good != d.rollout.version:
                if d.fleet:
                    pass  # never known-good while a pod runs something else (FleetVerified=False)
                elif held >= healthy_for:
                    st.last_known_good = d.rollout.version
                    history = [r for r in st.revision_history or [] if r.version != d.rollout.version]
                    history.append(
                        Revision(
                            version=d.rollout.version,
                            image=d.image,
                            deployed_at=d.rollout.started_at,
                            known_good_at=now,
                        )
                    )
                    st.revision_history = history[-history_limit:]
                    plan.events.append(
                        Event(
                            "Normal",
                            "KnownGood",
                            f"{d.rollout.version} healthy for {held.total_seconds():.0f}s: last known-good",
                        )
                    )
                else:
                    plan.wake_in((healthy_for - held).total_seconds())
        else:
            if d.rollout.ready_since is not None:
                d.rollout = st.rollout = d.rollout.model_copy(update={"ready_since": None})
            waited = now - d.rollout.started_at
            failing = d.rollout.version != st.last_known_good and waited > rollout_deadline
            if failing and not d.rollout.rollback:
                bad = d.rollout.version
                inc = _incident_name(obs.name, "rollout", f"{bad}@{d.rollout.started_at.isoformat()}")
                if automatic and st.last_known_good and st.last_known_good not in (bad,):
                    to = st.last_known_good
                    st.blocked_versions = _block(st, bad, f"not Ready within {rollout_deadline}", now, inc)
                    d.rollout = st.rollout = RolloutStatus(version=to, started_at=now, rollback=True)
                    d.target, d.image = to, _image_for(spec, st, to)
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
            elif not failing and d.rollout.version != st.last_known_good:
                plan.wake_in((rollout_deadline - waited).total_seconds() + 0.5)

    d.failed_without_target = (
        d.rollout is not None
        and d.rollout.version in {b.version for b in st.blocked_versions or []}
        and not d.rollout.rollback
    )


def _control_document(d: _Decision) -> None:
    """Trading state and the control document."""
    spec, obs, now, st, plan, kill_policy, ready_pods = d.spec, d.obs, d.now, d.st, d.plan, d.kill_policy, d.ready_pods
    state = _own_state(d)
    addr = d.address
    broker = (
        spec.brokers.backup
        if st.broker and st.broker.role == "backup" and spec.brokers.backup
        else spec.brokers.primary
    )
    reason = (
        d.ks.reason
        if d.latched and d.ks
        else st.throttle.reason
        if d.throttled and st.throttle
        else (st.resume.reason if st.resume and st.resume.stage == "Reducing" else "")
    )
    # Never go back in generation, whatever the ConfigMap shows (an unreadable or edited one).
    prev_gen = max(obs.control.generation if obs.control else 0, st.control.generation if st.control else 0)
    d.doc = ControlDocument(
        strategy=obs.name,
        generation=max(prev_gen, 1),
        trading_state=addr.state if addr is not None and addr.state is not None else state,
        mode=d.mode,
        limits=st.effective_limits,
        broker=BrokerInUse(name=broker.name, endpoint=broker.endpoint),
        # A handover's HALTED lets cancels through, nothing else (stratops.lifecycle.handover).
        allow_risk_reducing=bool(kill_policy and kill_policy.allow_risk_reducing) and addr is None,
        reason=reason,
        issued_at=now,
        controls=pre_trade_controls(spec.risk_limits),
        version=addr.version if addr is not None else None,
        others=addr.others if addr is not None else None,
        starting_book=addr.book if addr is not None else None,
    )
    if d.doc.same_content(obs.control) and not obs.control_problem:
        assert obs.control is not None
        d.doc = obs.control
    else:
        written = st.control.hash if st.control else None
        if (
            obs.control is not None
            and written is not None
            and obs.control.content_hash() not in (written, d.doc.content_hash(), obs.control_written)
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
        d.doc = d.doc.model_copy(update={"generation": prev_gen + 1})
        plan.control = d.doc
    ctl = st.control or ControlStatus()
    if ready_pods:  # the generation every running pod has applied
        pod_acks = [obs.acks.get(p.name) for p in ready_pods]
        acked_gen = min(a.generation if a else 0 for a in pod_acks)
        acked_at = max((a.at for a in pod_acks if a), default=ctl.acknowledged_at)
    else:
        acked_gen, acked_at = ctl.acknowledged_generation, ctl.acknowledged_at
    st.control = ControlStatus(
        generation=d.doc.generation,
        acknowledged_generation=acked_gen,
        acknowledged_at=acked_at,
        hash=d.doc.content_hash(),
    )
    held = d.handover is not None and d.handover.step == H.Step.HELD and not d.latched
    st.trading_state = TradingState.STANDBY if held else state  # held: nothing trades until a person decides


def _kill_switch_progress(d: _Decision) -> None:
    """Kill-switch progress: ack (or deadline), then scale to 0."""
    obs, now, st, plan, ack_deadline, ready_pods = d.obs, d.now, d.st, d.plan, d.ack_deadline, d.ready_pods
    d.replicas = d.replicas_wanted
    if d.latched:
        # Nothing may trade under a halted strategy's name: pods its Deployment does not own go.
        plan.delete_pods = [p.name for p in obs.pods if not p.terminating and _foreign(obs.name, p)]
    if d.latched and d.ks is not None:
        if d.ks.halt_generation is None or d.ks.halt_generation < d.doc.generation:
            d.ks = st.kill_switch = d.ks.model_copy(update={"halt_generation": d.doc.generation})
        assert d.ks.at is not None and d.ks.halt_generation is not None
        halted_at, halt_generation = d.ks.at, d.ks.halt_generation  # typed once: ks is replaced below
        is_acked = d.acked(halt_generation) and plan.control is None
        deadline = halted_at + ack_deadline
        current = d.dep.replicas if d.dep is not None else 0
        if d.ks.completed_at is not None or is_acked or now >= deadline:
            d.replicas = 0
            if d.ks.acknowledged is None and d.ks.completed_at is None:
                running = sorted(p.name for p in obs.pods if not p.terminating and not _foreign(obs.name, p))
                d.ks = st.kill_switch = d.ks.model_copy(update={"acknowledged": is_acked, "pods": running})
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
                            f"HALTED (generation {d.ks.halt_generation}) not acknowledged within {ack_deadline} by: "
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
            if (
                d.ks.completed_at is None
                and current == 0
                and not obs.pods
                and d.dep is not None
                and d.dep.replicas == 0
            ):
                st.kill_switch = d.ks.model_copy(update={"completed_at": now})
                plan.kill_switch_seconds = (now - halted_at).total_seconds()
                plan.events.append(
                    Event(
                        "Normal",
                        "KillSwitchCompleted",
                        f"halted and scaled to 0 in {plan.kill_switch_seconds:.2f}s "
                        f"(acknowledged: {d.ks.acknowledged})",
                    )
                )
            _record_exits(st, plan, obs, now)
        else:
            d.replicas = current
            plan.wake_in((deadline - now).total_seconds())
    elif d.failed_without_target:
        d.replicas = 0


def _resume_progress(d: _Decision) -> None:
    """Resume progress: REDUCING acknowledged with every pod Ready -> ACTIVE."""
    st, plan, ready_pods = d.st, d.plan, d.ready_pods
    if st.resume is not None and st.resume.stage == "Reducing" and not d.latched and not d.throttled:
        all_ready = (
            d.dep is not None
            and d.image is not None
            and d.dep.healthy(d.image, d.replicas)
            and len(ready_pods) == d.replicas
        )
        if plan.control is None and all_ready and d.acked(d.doc.generation):
            st.resume = st.resume.model_copy(update={"stage": "Active"})
            plan.events.append(Event("Normal", "ResumeActive", "REDUCING acknowledged by every pod: ACTIVE"))
            plan.wake_in(0.5)  # write the ACTIVE control document on the next pass


def _deployment(d: _Decision) -> None:
    """The Deployment: create, planned change, or drift."""
    spec, obs, st, plan = d.spec, d.obs, d.st, d.plan
    if d.target is not None:
        both = d.both_run and d.replicas > 0
        desired = manifests.deployment(
            obs.name, obs.namespace, obs.uid, spec, d.target, d.replicas, d.image, handover=both
        )
        desired_fp = desired["metadata"]["annotations"][manifests.ANNOTATION_DESIRED]
        if d.dep is None:
            plan.deployment = desired
        elif d.dep.desired_fingerprint is not None and d.dep.live_fingerprint != d.dep.desired_fingerprint:
            plan.deployment = desired
            plan.deployment_drifted = True
            inc = _incident_name(obs.name, "drift", f"{d.dep.generation}:{d.dep.live_fingerprint}")
            plan.incidents.append(
                NewIncident(
                    inc,
                    IncidentClass.config_drift,
                    Severity.P1,
                    f"Deployment {obs.name} was changed outside Git (generation {d.dep.generation}); reverted to spec",
                    "none",
                    "reverted the Deployment to the operator's decision",
                )
            )
            plan.events.append(
                Event("Warning", "ConfigDrift", f"Deployment {obs.name} changed by someone else: reverted")
            )
            plan.actions.append("drift_revert")
        elif d.dep.desired_fingerprint != desired_fp:
            plan.deployment = desired
    st.active_version = d.rollout.version if d.rollout else None


def _conditions_and_phase(d: _Decision) -> None:
    """Conditions, phase, incidents."""
    spec, obs, now, st, plan, conds, handled_cmds, handled_incidents, prelaunch, daily = (
        d.spec,
        d.obs,
        d.now,
        d.st,
        d.plan,
        d.conds,
        d.handled_cmds,
        d.handled_incidents,
        d.prelaunch,
        d.daily,
    )
    open_incidents = sorted({i.name for i in obs.incidents if i.open} | {i.name for i in plan.incidents})
    st.open_incidents = open_incidents or None
    d.ready = d.dep is not None and d.image is not None and d.replicas > 0 and d.dep.healthy(d.image, d.replicas)
    _set_condition(
        conds,
        now,
        obs.generation,
        "Ready",
        d.ready,
        "Halted" if d.latched else "RolloutReady" if d.ready else "RolloutInProgress",
        f"{d.dep.ready_replicas if d.dep else 0}/{d.replicas} pods Ready running {d.target}",
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
    if d.latched:
        st.phase = Phase.Halted
    elif d.failed_without_target:
        st.phase = Phase.Failed
    elif d.rollout is not None and d.rollout.rollback and not d.ready:
        st.phase = Phase.RollingBack
    elif d.throttled:
        st.phase = Phase.Throttled
    elif d.ready:
        st.phase = Phase.Running
    elif d.dep is None and d.target is None:
        st.phase = Phase.Pending
    else:
        st.phase = Phase.Deploying


def _contained_incidents(d: _Decision) -> None:
    """Containment: an incident is contained when the strategy reached the safe state its immediate action
    aims at (observed, not assumed)."""
    obs, st, plan = d.obs, d.st, d.plan
    for inc in obs.incidents:
        if inc.open and inc.acted and not inc.contained:
            detail = _containment(
                inc, st, plan, d.dep, d.ready, d.acked(d.doc.generation) and plan.control is None, obs
            )
            if detail:
                plan.incident_containment.append((inc.name, detail))


#: The decision, phase by phase, strongest first. Each phase is one step of the desk's rules
#: and reads only what the phases before it decided.
PHASES = (
    # triggers: what asks for an action
    _recreated_under_a_latched_name,
    _validate_commands,
    _record_reconciliation,
    _record_runbook_run,
    _verify_fleet,
    _incident_triggers,
    _advance_handover,
    _control_integrity,
    _reported_limits,
    # halt and latch: the kill-switch (P0 stops), the throttle (P1 slows), and what a latch allows
    _latch_kill_switch_and_throttle,
    _rearm,
    _broker_failover,
    _resume,
    # limits and mode
    _effective_limits,
    _promotion,
    # rollout: which version runs, and whether it became healthy in time
    _choose_version,
    _handover,
    _one_trading_version,
    _track_rollout,
    # the control document and the pods: what they are told, and what is done once they acknowledge
    _control_document,
    _kill_switch_progress,
    _resume_progress,
    _deployment,
    # conditions: what status says
    _conditions_and_phase,
    _contained_incidents,
)


def decide(spec: StrategySpec, status: StrategyStatus, obs: Observations) -> Plan:
    """The plan for one reconcile: every phase of PHASES in turn, over one decision."""
    d = _prepare(spec, status, obs)
    for phase in PHASES:
        phase(d)
    return d.plan


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
            told = control.for_version(p.version)
            if (
                a is not None
                and a.generation == control.generation
                and allows_orders(a.trading_state)
                and not told.allows_orders()
            ):
                # A document addressed to another version applied as its own: an SDK older than
                # warm handovers, in a version that must send nothing. Two versions may trade.
                problems.append(
                    f"pod {p.name} (version {p.version or 'unknown'}) applied {a.trading_state.value} from a document "
                    f"for version {control.version}: its SDK does not know warm handovers"
                )
    return sorted(problems)


def _not_yet_running(spec: StrategySpec, st: StrategyStatus) -> str:
    """Why the signed version cannot go live yet ("" when it can): going live turns the version
    that runs into live trading, so that must be the signed one, rolled out and known-good on
    paper, with no handover under way. Promoted while another version still ran (a version
    changed with the promotion, or one that then failed), the unsigned version traded live (the
    soak found it: the signed version failed its rollout, and the paper version it was to
    replace went on trading live)."""
    running = st.rollout.version if st.rollout else None
    if running != spec.version or st.last_known_good != spec.version:
        return (
            f"version {spec.version} (signed) is not yet running and known-good on paper "
            f"(running: {running or 'nothing yet'}); it goes live once it is"
        )
    if st.handover is not None and st.handover.step not in ("Done", "Aborted", "Failed", "Cancelled"):
        return f"the handover to {st.handover.to_version} is under way; it goes live once it is done"
    return ""


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
