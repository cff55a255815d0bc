"""The ten runbooks: trigger, ordered steps, and a verify check run against the cluster. Pure.

A step is one of:
- operator: something stratops carries out (kill, throttle, rollback, failover, promote, resume,
  resolve): the CLI runs it, after confirmation, and never in a dry run;
- record: a human fact stratops records (a reconciliation: result and evidence);
- manual: something only a human can do (call the broker, open a revert pull request): asked
  for, and the answer recorded;
- wait: a check polled until it passes or times out.

Checks are predicates over a `ClusterView`, the objects as the API server returns them, so the
verdicts are unit-tested here and the CLI only fetches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from stratops.lifecycle import manifests

CATEGORIES = ("deploy", "rollback", "incident-response", "drift-response", "broker-failover")
StepKind = Literal["operator", "record", "manual", "wait"]
# What an operator step does; the CLI maps each to a command.
OPERATOR_ACTIONS = (
    "kill",
    "throttle",
    "rollback",
    "failover-backup",
    "promote",
    "resume",
    "resume-throttled",
    "resolve-incidents",
)


@dataclass(frozen=True)
class ClusterView:
    """What a check reads: the Strategy, its Deployment, control document, pods, incidents."""

    strategy: dict[str, Any]
    deployment: dict[str, Any] | None = None
    control: dict[str, Any] | None = None  # the parsed control document
    pods: tuple[dict[str, Any], ...] = ()
    incidents: tuple[dict[str, Any], ...] = ()
    gates: tuple[dict[str, Any], ...] | None = None  # the namespace's Gates; None: not readable

    @property
    def status(self) -> dict[str, Any]:
        return self.strategy.get("status") or {}

    @property
    def spec(self) -> dict[str, Any]:
        return self.strategy.get("spec") or {}

    def condition(self, type_: str) -> dict[str, Any]:
        return next((c for c in self.status.get("conditions") or [] if c.get("type") == type_), {})

    def open_incidents(self) -> list[dict[str, Any]]:
        return [i for i in self.incidents if ((i.get("status") or {}).get("phase") or "Open") != "Resolved"]

    def control_acknowledged(self) -> bool:
        c = self.status.get("control") or {}
        generation, acknowledged = int(c.get("generation") or 0), int(c.get("acknowledgedGeneration") or 0)
        return generation > 0 and acknowledged >= generation


Verdict = tuple[bool, str]


@dataclass(frozen=True)
class Check:
    id: str
    description: str
    fn: Callable[[ClusterView], Verdict] = field(repr=False)

    def __call__(self, view: ClusterView) -> Verdict:
        return self.fn(view)


def _all(*parts: Verdict) -> Verdict:
    failed = [d for ok, d in parts if not ok]
    return (not failed, "; ".join(failed) if failed else "; ".join(d for _, d in parts))


def _halted(v: ClusterView) -> Verdict:
    ks = v.status.get("killSwitch") or {}
    replicas = (v.deployment or {}).get("spec", {}).get("replicas", 0)
    return _all(
        (bool(ks.get("latched")), "kill-switch latched" if ks.get("latched") else "kill-switch not latched"),
        (v.status.get("tradingState") == "HALTED", f"trading state {v.status.get('tradingState')}"),
        (
            bool(ks.get("completedAt")),
            f"scaled to 0 at {ks.get('completedAt')}" if ks.get("completedAt") else "not yet scaled to 0",
        ),
        (replicas == 0 and not v.pods, f"{len(v.pods)} pod(s), {replicas} replica(s) wanted"),
    )


def _reducing(v: ClusterView) -> Verdict:
    th = v.status.get("throttle") or {}
    return _all(
        (bool(th.get("active")), "throttle in force" if th.get("active") else "no throttle in force"),
        (v.status.get("tradingState") == "REDUCING", f"trading state {v.status.get('tradingState')}"),
        (
            v.control_acknowledged(),
            "control document acknowledged by every pod"
            if v.control_acknowledged()
            else f"control generation {(v.status.get('control') or {}).get('generation')} not acknowledged yet",
        ),
    )


def _ready(v: ClusterView) -> Verdict:
    c = v.condition("Ready")
    return (c.get("status") == "True", f"Ready: {c.get('message') or c.get('status') or 'unknown'}")


def _running_known_good(v: ClusterView) -> Verdict:
    active, good = v.status.get("activeVersion"), v.status.get("lastKnownGood")
    return _all((active is not None and active == good, f"running {active}, last known-good {good}"), _ready(v))


def _rollout_complete(v: ClusterView) -> Verdict:
    active, wanted = v.status.get("activeVersion"), v.spec.get("version")
    return _all(
        (active == wanted, f"running {active}, spec.version {wanted}"),
        _ready(v),
        (v.status.get("phase") == "Running", f"phase {v.status.get('phase')}"),
    )


def _live(v: ClusterView) -> Verdict:
    c = v.condition("Promoted")
    return _all(
        (v.status.get("mode") == "live", f"mode {v.status.get('mode')}"),
        (c.get("status") == "True", f"Promoted: {c.get('message') or c.get('status')}"),
    )


def _gates_signed(v: ClusterView) -> Verdict:
    c = v.condition("GatesSatisfied")
    return (
        c.get("status") == "True",
        "gates signed" if c.get("status") == "True" else f"gates: {c.get('message') or 'unknown'}",
    )


def _daily_gate_signed(v: ClusterView) -> Verdict:
    """The strategy's daily gate, as a resume and a new version need it: Complete today. Other
    gates (monthly, quarterly) do not hold a resume, so they are not asked for here."""
    name = (v.spec.get("gates") or {}).get("daily")
    if not name:
        return False, "no daily gate named in spec.gates.daily"
    if v.gates is None:
        return _gates_signed(v)  # Gates not readable: the strategy's condition, which covers them all
    gate = next((g for g in v.gates if g["metadata"]["name"] == name), None)
    if gate is None or v.strategy["metadata"]["name"] not in (gate.get("spec") or {}).get("strategies", []):
        return False, f"daily gate {name} not found or not listing this strategy"
    st = gate.get("status") or {}
    if st.get("state") == "Complete":
        return True, f"daily gate {name} signed ({st.get('signed')})"
    return (
        False,
        f"daily gate {name} {st.get('state') or 'not evaluated'}: missing "
        f"{', '.join(st.get('missingItems') or []) or '?'}",
    )


def _no_open_incidents(v: ClusterView) -> Verdict:
    names = sorted(i["metadata"]["name"] for i in v.open_incidents())
    return (not names, "no open incidents" if not names else f"open incidents: {', '.join(names)}")


def _active(v: ClusterView) -> Verdict:
    resume = v.status.get("resume") or {}
    return _all(
        (v.status.get("tradingState") == "ACTIVE", f"trading state {v.status.get('tradingState')}"),
        (resume.get("stage", "Active") == "Active", f"resume stage {resume.get('stage')}"),
        (
            v.control_acknowledged(),
            "control document acknowledged" if v.control_acknowledged() else "control document not acknowledged",
        ),
        _ready(v),
        _no_open_incidents(v),
    )


def _reconciled(v: ClusterView) -> Verdict:
    rec = v.status.get("lastReconciliation") or {}
    return (rec.get("result") == "Matched", f"last reconciliation: {rec.get('result', 'none')} at {rec.get('at', '-')}")


def _on_backup(v: ClusterView) -> Verdict:
    backup = (v.spec.get("brokers") or {}).get("backup") or {}
    in_use = (v.control or {}).get("broker") or {}
    return _all(
        (
            (v.status.get("broker") or {}).get("role") == "backup",
            f"broker role {(v.status.get('broker') or {}).get('role', 'primary')}",
        ),
        (
            bool(backup) and in_use.get("endpoint") == backup.get("endpoint"),
            f"control document broker {in_use.get('name')} ({in_use.get('endpoint')})",
        ),
    )


def _deployment_matches(v: ClusterView) -> Verdict:
    if v.deployment is None:
        return (False, "no Deployment")
    desired = ((v.deployment.get("metadata") or {}).get("annotations") or {}).get(manifests.ANNOTATION_DESIRED)
    live = manifests.fingerprint(v.deployment)
    return (
        desired == live,
        "Deployment matches the operator's decision"
        if desired == live
        else "Deployment differs from the operator's decision (drift not reverted yet)",
    )


CHECKS: dict[str, Check] = {
    c.id: c
    for c in (
        Check("halted", "kill-switch latched, HALTED, scaled to 0 with no pod left", _halted),
        Check("reducing", "throttle in force, REDUCING acknowledged by every pod", _reducing),
        Check("running-known-good", "the last known-good version runs, every pod Ready", _running_known_good),
        Check("rollout-complete", "spec.version runs, every pod Ready, phase Running", _rollout_complete),
        Check("live", "mode live, Promoted", _live),
        Check("gates-signed", "pre-launch and daily gates signed", _gates_signed),
        Check("daily-gate-signed", "today's daily gate signed", _daily_gate_signed),
        Check("active", "ACTIVE acknowledged, every pod Ready, no open incident", _active),
        Check("reconciled", "last reconciliation Matched", _reconciled),
        Check("no-open-incidents", "every incident of the strategy resolved", _no_open_incidents),
        Check(
            "on-backup-reducing",
            "control document on the backup broker, REDUCING acknowledged, Ready",
            lambda v: _all(_on_backup(v), _reducing(v), _ready(v)),
        ),
        Check(
            "throttled-reconciled",
            "REDUCING acknowledged and the last reconciliation Matched",
            lambda v: _all(_reducing(v), _reconciled(v)),
        ),
        Check(
            "deployment-matches",
            "the Deployment matches the operator's decision, every pod Ready",
            lambda v: _all(_deployment_matches(v), _ready(v)),
        ),
    )
}


@dataclass(frozen=True)
class RunbookStep:
    id: str
    kind: StepKind
    text: str
    action: str | None = None  # operator: one of OPERATOR_ACTIONS; wait: a check id
    timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.kind == "operator" and self.action not in OPERATOR_ACTIONS:
            raise ValueError(f"step {self.id}: operator action {self.action!r} is not one of {OPERATOR_ACTIONS}")
        if self.kind == "wait" and self.action not in CHECKS:
            raise ValueError(f"step {self.id}: wait needs a check, not {self.action!r}")


@dataclass(frozen=True)
class Runbook:
    id: str
    title: str
    category: str
    trigger: str
    steps: tuple[RunbookStep, ...]
    verify: str  # a check id

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"runbook {self.id}: category {self.category!r} is not one of {CATEGORIES}")
        if self.verify not in CHECKS:
            raise ValueError(f"runbook {self.id}: verify check {self.verify!r} unknown")
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"runbook {self.id}: duplicate step ids")

    @property
    def check(self) -> Check:
        return CHECKS[self.verify]


S = RunbookStep
RUNBOOKS: tuple[Runbook, ...] = (
    Runbook(
        "deploy-new-version",
        "Deploy a new strategy version",
        "deploy",
        "A new version passed review and its pull request is approved.",
        (
            S(
                "validate",
                "manual",
                "Validate the change offline: `stratops validate` over the pull request's files (CI runs it too).",
            ),
            S(
                "daily-gate",
                "wait",
                "Today's daily gate is signed (a lapsed daily gate holds new versions).",
                "daily-gate-signed",
                30,
            ),
            S("merge", "manual", "Merge the pull request that changes spec.version; let GitOps apply it."),
            S(
                "rollout",
                "wait",
                "The new version rolls out and every pod is Ready. Handed over warm (live, or "
                "rollbackPolicy.handover): it stands by beside the old one, which is halted once the new one is "
                "Ready, and then takes over its book; `stratops describe` shows each step. A held handover waits "
                "for you: reconcile, then `stratops handover release`.",
                "rollout-complete",
                600,
            ),
            S("watch", "manual", "Watch the first minutes: fills, latency and PnL monitors quiet."),
        ),
        "rollout-complete",
    ),
    Runbook(
        "promote-to-live",
        "Promote a strategy from paper to live",
        "deploy",
        "The paper run met its acceptance criteria and the desk approves capital.",
        (
            S(
                "sign",
                "manual",
                "Every pre-launch item signed for this version and these limits (`stratops gate list`, `stratops gate "
                "sign`).",
            ),
            S("gates", "wait", "The pre-launch and daily gates are signed.", "gates-signed", 30),
            S("promote", "operator", "Promote: spec.mode live (with GitOps, merge the change instead).", "promote"),
            S("live", "wait", "The operator promoted it: mode live.", "live", 120),
        ),
        "live",
    ),
    Runbook(
        "rollback-known-good",
        "Roll back to the last known-good version",
        "rollback",
        "A new version misbehaves: errors, PnL divergence or latency since the change.",
        (
            S(
                "rollback",
                "operator",
                "Roll back: the running version is blocked, the last known-good one deployed (handed over warm "
                "when the strategy is: the known-good version stands by, then takes over the book).",
                "rollback",
            ),
            S("ready", "wait", "The known-good version runs and every pod is Ready.", "running-known-good", 600),
            S("revert", "manual", "Open a revert pull request so Git names the version that runs."),
        ),
        "running-known-good",
    ),
    Runbook(
        "kill-switch",
        "Kill-switch: stop a strategy now",
        "incident-response",
        "A P0 incident: an order's state unknown, a hard limit breached, data stale with positions open.",
        (
            S(
                "kill",
                "operator",
                "Kill-switch: HALTED (cancel working orders, send nothing new), then scale to 0.",
                "kill",
            ),
            S("halted", "wait", "HALTED acknowledged (or the deadline passed) and no pod left.", "halted", 120),
            S("broker", "manual", "Confirm with the broker that no order of this strategy is working."),
        ),
        "halted",
    ),
    Runbook(
        "throttle",
        "Throttle: slow a strategy down",
        "incident-response",
        "A P1 incident: drift, slippage, latency, concentration; trading may go on, slower.",
        (
            S("throttle", "operator", "Throttle: REDUCING with lower position and order-rate limits.", "throttle"),
            S("reducing", "wait", "REDUCING acknowledged by every pod.", "reducing", 120),
        ),
        "reducing",
    ),
    Runbook(
        "resume-after-incident",
        "Resume a strategy after an incident",
        "incident-response",
        "The incident is contained and its postmortem written.",
        (
            S("postmortem", "manual", "Write each open incident's postmortem: root cause, actions, owner."),
            S(
                "resolve",
                "operator",
                "Resolve the strategy's open incidents (each needs its postmortem).",
                "resolve-incidents",
            ),
            S(
                "reconcile",
                "record",
                "Reconcile positions and open orders, broker against strategy: result and evidence.",
            ),
            S("daily-gate", "wait", "Today's daily gate is signed.", "daily-gate-signed", 30),
            S("resume", "operator", "Resume: REDUCING until every pod acknowledges, then ACTIVE.", "resume"),
            S("active", "wait", "ACTIVE acknowledged by every pod.", "active", 300),
        ),
        "active",
    ),
    Runbook(
        "feature-drift",
        "Respond to feature drift",
        "drift-response",
        "PSI above 0.25 on a top-10 feature, KS above 0.15, or the top-5 importance set changed.",
        (
            S("throttle", "operator", "Throttle while the drift is assessed.", "throttle"),
            S("reducing", "wait", "REDUCING acknowledged by every pod.", "reducing", 120),
            S("assess", "manual", "Compare live feature distributions with training: pipeline fault or regime change?"),
            S(
                "decide",
                "manual",
                "Decide: fix the pipeline, retrain (as a new version through deploy-new-version), or retire.",
            ),
        ),
        "reducing",
    ),
    Runbook(
        "config-drift",
        "Respond to config drift",
        "drift-response",
        "A ConfigDrift incident: the Deployment was changed outside Git.",
        (
            S("reverted", "wait", "The operator reverted the Deployment to its decision.", "deployment-matches", 120),
            S("who", "manual", "Find who changed it and how (the API server's audit log, the incident's time)."),
            S("close", "manual", "Close that access path (RBAC, a forgotten script, a console)."),
        ),
        "deployment-matches",
    ),
    Runbook(
        "pnl-divergence",
        "Respond to PnL divergence",
        "incident-response",
        "Realised PnL outside the 95% band, or realised minus expected above 2 bps.",
        (
            S("throttle", "operator", "Throttle while the divergence is attributed.", "throttle"),
            S("reducing", "wait", "REDUCING acknowledged by every pod.", "reducing", 120),
            S("reconcile", "record", "Reconcile positions, broker against strategy: result and evidence."),
            S(
                "attribute",
                "manual",
                "Attribute the divergence: costs, model, data, or a recent change (then rollback-known-good).",
            ),
        ),
        "throttled-reconciled",
    ),
    Runbook(
        "broker-failover",
        "Fail over to the backup broker",
        "broker-failover",
        "The primary broker is down or its acknowledgements are silent, and the outage will last.",
        (
            S("halt", "operator", "Halt order entry: kill-switch (HALTED, then scale to 0).", "kill"),
            S("halted", "wait", "HALTED acknowledged (or the deadline passed) and no pod left.", "halted", 120),
            S(
                "open-orders",
                "manual",
                "Reconcile open orders at the primary broker: every working order cancelled or accounted for.",
            ),
            S("switch", "operator", "Switch the control document to the backup broker.", "failover-backup"),
            S(
                "positions",
                "record",
                "Reconcile positions at the backup broker against the strategy: result and evidence.",
            ),
            S(
                "resume",
                "operator",
                "Resume throttled: REDUCING with lowered limits on the backup broker.",
                "resume-throttled",
            ),
            S("reducing", "wait", "Pods Ready on the backup broker, REDUCING acknowledged.", "on-backup-reducing", 300),
        ),
        "on-backup-reducing",
    ),
)

BY_ID: dict[str, Runbook] = {r.id: r for r in RUNBOOKS}


def runbook(id_: str) -> Runbook:
    """The runbook ID; ValueError names the known ones."""
    if id_ not in BY_ID:
        raise ValueError(f"unknown runbook {id_!r}: one of {', '.join(BY_ID)}")
    return BY_ID[id_]


def by_category(category: str | None) -> list[Runbook]:
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}: one of {', '.join(CATEGORIES)}")
    return [r for r in RUNBOOKS if category is None or r.category == category]
