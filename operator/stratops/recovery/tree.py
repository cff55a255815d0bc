"""The recovery tree: six symptoms, questions, five actions. Pure data and a walker.

Pick a symptom, answer the questions, arrive at exactly one action: kill-switch, throttle,
rollback, investigate or resume. The tree is opinionated by design: resume is reachable only
through the reconciliation step answered Matched, and no answer ever raises a risk limit.

The trees are checked when this module is imported: every choice points to a node of its
symptom, no node is reached twice on a path (no cycles), and every node is reachable from the
root (no orphans). A broken tree is a bug in this file, not a runtime condition.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, NamedTuple, get_args

ActionKind = Literal["killSwitch", "throttle", "rollback", "investigate", "resume"]
ACTION_KINDS: tuple[str, ...] = get_args(ActionKind)

RUNBOOKS: tuple[str, ...] = (
    "deploy-new-version",
    "promote-to-live",
    "rollback-known-good",
    "kill-switch",
    "throttle",
    "resume-after-incident",
    "feature-drift",
    "config-drift",
    "pnl-divergence",
    "broker-failover",
)

YES, NO = "Yes", "No"
MATCHED, MISMATCHED = "Matched", "Mismatched"

# Placeholders in Action.command, filled by Action.command_for().
STRATEGY, REASON, EVIDENCE, DAILY_GATE = "STRATEGY", "REASON", "EVIDENCE", "DAILY_GATE"


class TreeError(ValueError):
    """A recovery tree that is not a tree: a dangling choice, a cycle, an orphan node."""


class Choice(NamedTuple):
    """One answer to a question and the node it leads to."""

    label: str
    next: str


@dataclass(frozen=True)
class Question:
    """A question with ordered answers: yes/no, or multiple choice."""

    id: str
    text: str
    help: str
    choices: tuple[Choice, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.choices)

    @property
    def yes_no(self) -> bool:
        return self.labels == (YES, NO)

    @property
    def is_reconciliation(self) -> bool:
        return False

    def answer(self, given: str) -> Choice:
        """The choice GIVEN names: its label, case-insensitive; y/n for yes/no questions.

        Raises ValueError naming the valid answers.
        """
        g = given.strip().casefold()
        if self.yes_no:
            g = {"y": YES.casefold(), "n": NO.casefold()}.get(g, g)
        for c in self.choices:
            if c.label.casefold() == g:
                return c
        valid = ", ".join(repr(label) for label in self.labels)
        extra = " (or y, n)" if self.yes_no else ""
        raise ValueError(f"{given!r} is not an answer to {self.text!r}; valid answers: {valid}{extra}")


RECONCILIATION_TEXT = (
    "Reconcile positions and open orders, broker against strategy (record it with `stratops reconcile`). Do they match?"
)
RECONCILIATION_HELP = (
    "Compare the broker's positions and open orders (statement or drop copy) with the strategy's "
    "book, name by name. Record the result: stratops reconcile STRATEGY --result Matched|Mismatched "
    "--evidence WHAT-YOU-COMPARED. Anything you cannot confirm is a mismatch."
)


@dataclass(frozen=True)
class Reconciliation(Question):
    """The reconciliation step: the only gate to resume. Answers Matched / Mismatched."""

    @property
    def is_reconciliation(self) -> bool:
        return True


@dataclass(frozen=True)
class Action:
    """Where a path ends: one of the five actions, why, and the next command to run."""

    id: str
    kind: ActionKind
    why: str
    command: str  # may contain STRATEGY, REASON, EVIDENCE, DAILY_GATE
    runbook: str | None = None

    def command_for(
        self,
        strategy: str | None = None,
        namespace: str | None = None,
        reason: str | None = None,
        evidence: str | None = None,
        daily_gate: str | None = None,
    ) -> str:
        """The command with the placeholders filled in where the values are known. An unknown
        daily gate becomes a shell substitution that reads it from the strategy's spec."""
        ns = f" -n {shlex.quote(namespace)}" if namespace else ""
        parts = []
        for part in self.command.split(" && "):
            words = part.split(" ")
            filled = []
            for w in words:
                if w == STRATEGY and strategy:
                    w = shlex.quote(strategy)
                elif w == REASON:
                    w = shlex.quote(reason) if reason else '"..."'
                elif w == EVIDENCE:
                    w = shlex.quote(evidence) if evidence else '"..."'
                elif w == DAILY_GATE:
                    w = (
                        shlex.quote(daily_gate)
                        if daily_gate
                        else (
                            f'"$(kubectl get strategy {shlex.quote(strategy) if strategy else STRATEGY}{ns}'
                            " -o jsonpath='{.spec.gates.daily}')\""
                        )
                    )
                filled.append(w)
            text = " ".join(filled)
            if ns and (STRATEGY in words or DAILY_GATE in words) and words[0] in ("stratops", "kubectl"):
                text += ns
            parts.append(text)
        return " && ".join(parts)


Node = Question | Action


@dataclass(frozen=True)
class Symptom:
    id: str
    text: str
    root: str
    nodes: Mapping[str, Node] = field(repr=False)

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]


class Step(NamedTuple):
    question: Question
    answer: str  # the choice's label as written in the tree


@dataclass(frozen=True)
class Walk:
    """Where a list of answers leads: the steps taken and the action, or the next question."""

    symptom: Symptom
    steps: tuple[Step, ...]
    action: Action | None
    next_question: Question | None

    @property
    def done(self) -> bool:
        return self.action is not None

    @property
    def answers(self) -> tuple[str, ...]:
        return tuple(s.answer for s in self.steps)

    @property
    def reconciled(self) -> bool:
        """The path passed a reconciliation step answered Matched."""
        return any(s.question.is_reconciliation and s.answer == MATCHED for s in self.steps)

    def reason(self) -> str:
        """What a command records: 'triage SYMPTOM: answer > answer > …'."""
        return f"triage {self.symptom.id}: " + " > ".join(self.answers)


# -- building ------------------------------------------------------------------------------
def _q(id: str, text: str, help: str, *choices: tuple[str, str]) -> Question:
    return Question(id, text, help, tuple(Choice(label, nxt) for label, nxt in choices))


def _yn(id: str, text: str, help: str, yes: str, no: str) -> Question:
    return _q(id, text, help, (YES, yes), (NO, no))


def _rec(id: str, matched: str, mismatched: str) -> Reconciliation:
    return Reconciliation(
        id, RECONCILIATION_TEXT, RECONCILIATION_HELP, (Choice(MATCHED, matched), Choice(MISMATCHED, mismatched))
    )


KILL = f"stratops kill {STRATEGY} --reason {REASON}"
THROTTLE = f"stratops throttle {STRATEGY} --reason {REASON}"
ROLLBACK = f"stratops rollback {STRATEGY} --reason {REASON}"
RESUME = (
    f"stratops reconcile {STRATEGY} --result Matched --evidence {EVIDENCE}"
    f" && stratops resume {STRATEGY} --reason {REASON}"
)
LOGS = f"kubectl logs -l stratops.io/strategy={STRATEGY} --since=30m"


def _kill(id: str, why: str, runbook: str = "kill-switch") -> Action:
    return Action(id, "killSwitch", why, KILL, runbook)


def _throttle(id: str, why: str, runbook: str = "throttle") -> Action:
    return Action(id, "throttle", why, THROTTLE, runbook)


def _resume(id: str) -> Action:
    return Action(
        id,
        "resume",
        "Positions and open orders match: resume through REDUCING (needs incidents "
        "resolved and the daily gate signed; the operator refuses otherwise).",
        RESUME,
        "resume-after-incident",
    )


def _investigate(id: str, why: str, command: str, runbook: str | None = None) -> Action:
    return Action(id, "investigate", why, command, runbook)


def _symptom(id: str, text: str, *nodes: Node) -> Symptom:
    by_id: dict[str, Node] = {}
    for n in nodes:
        if n.id in by_id:
            raise TreeError(f"symptom {id}: node id {n.id!r} used twice")
        by_id[n.id] = n
    return Symptom(id, text, nodes[0].id, MappingProxyType(by_id))


_ACKS_SILENT = _symptom(
    "acks-silent",
    "Order route looks healthy but acknowledgements are silent",
    _yn(
        "status-page",
        "Is the broker's status page green?",
        "Open the broker's status page (or ask the broker's desk). Any incident or degradation counts as No.",
        yes="other-sessions",
        no="kill-broker-outage",
    ),
    _kill(
        "kill-broker-outage",
        "Broker outage: halt order entry now, then fail over to the backup broker.",
        "broker-failover",
    ),
    _yn(
        "other-sessions",
        "Are other sessions on the same route receiving acknowledgements?",
        "Check another strategy or a test session on the same FIX route and broker.",
        yes="unconfirmed-orders",
        no="kill-route-outage",
    ),
    _kill("kill-route-outage", "Route outage the status page does not show: halt, then fail over.", "broker-failover"),
    _yn(
        "unconfirmed-orders",
        "Does the strategy have open orders whose state you cannot confirm?",
        "An order sent without an ack, fill or reject is an order whose state you do not know.",
        yes="kill-unknown-orders",
        no="acks-recent",
    ),
    _kill("kill-unknown-orders", "Unknown order state is unbounded risk: halt and cancel."),
    _yn(
        "acks-recent",
        "Have acknowledgements come back for this strategy in the last 5 minutes?",
        "Look at the strategy's execution log or the broker's drop copy for this session.",
        yes="reconcile",
        no="investigate-session",
    ),
    _investigate(
        "investigate-session",
        "Session-level fault: check sequence numbers, heartbeats and credentials; keep the kill-switch at hand.",
        LOGS,
    ),
    _rec("reconcile", matched="resume", mismatched="kill-mismatch"),
    _resume("resume"),
    _kill("kill-mismatch", "Positions or open orders do not match: halt before the gap grows."),
)

_NOT_TRADING = _symptom(
    "not-trading",
    "Strategy not trading",
    _yn(
        "stopped-by-stratops",
        "Is it halted or throttled by stratops, or its warm handover held?",
        "Run `stratops status`: trading state HALTED or REDUCING means Yes; so does a handover line ending Held "
        "in `stratops describe STRATEGY`.",
        yes="handover-held",
        no="pods-ready",
    ),
    _yn(
        "handover-held",
        "Is its warm handover held (the old version did not halt and was stopped)?",
        "Run `stratops describe STRATEGY`: a handover line ending Held means Yes. The new version stands by, "
        "sending nothing, until a person decides.",
        yes="reconcile-held",
        no="incidents-resolved",
    ),
    _rec("reconcile-held", matched="release", mismatched="kill-held"),
    _investigate(
        "release",
        "The book at the broker is known: hand trading to the new version from it (the operator waits for the new "
        "version to confirm that book; a mismatch halts both).",
        f"stratops handover release {STRATEGY} --book INSTRUMENT=QUANTITY --reason {REASON}",
        "deploy-new-version",
    ),
    _kill(
        "kill-held",
        "The broker's book does not match what the old version left: keep everything halted and find the gap.",
    ),
    _yn(
        "incidents-resolved",
        "Are all its incidents resolved, with postmortems?",
        "Run `stratops incident list --open`: any incident listed means No.",
        yes="reconcile",
        no="investigate-incidents",
    ),
    _investigate(
        "investigate-incidents",
        "Finish the playbook first: resolve each open incident; a resolve needs a postmortem.",
        "stratops incident list --open",
        "resume-after-incident",
    ),
    _rec("reconcile", matched="daily-gate", mismatched="kill-mismatch"),
    _kill("kill-mismatch", "Positions or open orders do not match: keep it halted and stop the gap growing."),
    _yn(
        "daily-gate",
        "Is today's daily gate signed?",
        "Run `stratops gate list`: the daily gate must be Complete.",
        yes="resume",
        no="investigate-daily-gate",
    ),
    _resume("resume"),
    _investigate(
        "investigate-daily-gate",
        "Resume needs today's daily gate: sign it first.",
        f"stratops gate sign {DAILY_GATE} --all --evidence {EVIDENCE}",
        "resume-after-incident",
    ),
    _yn(
        "pods-ready",
        "Are its pods Ready?",
        "Run `stratops status` (phase Running) or `kubectl get pods -l stratops.io/strategy=STRATEGY`.",
        yes="signals",
        no="recent-rollout",
    ),
    _yn(
        "recent-rollout",
        "Was a new version rolled out in the last hour?",
        "Compare the version and known-good columns of `stratops status`; see the Rollout events.",
        yes="rollback",
        no="investigate-pods",
    ),
    Action(
        "rollback",
        "rollback",
        "A fresh version does not come up: back to the last known-good version.",
        ROLLBACK,
        "rollback-known-good",
    ),
    _investigate(
        "investigate-pods",
        "Pods not Ready on a known version: read their events and logs.",
        f"kubectl describe pods -l stratops.io/strategy={STRATEGY}",
    ),
    _yn(
        "signals",
        "Is the model producing signals?",
        "Yes only if the feature and decision-latency monitors are fresh (`kubectl get monitors`).",
        yes="orders",
        no="investigate-stale",
    ),
    _investigate(
        "investigate-stale",
        "No signals: treat it as stale data; triage that symptom.",
        f"stratops triage stale-data --strategy {STRATEGY}",
    ),
    _q(
        "orders",
        "What happens to its orders?",
        "Look at the strategy's execution log: rejects from the broker, blocks by its own risk checks, "
        "or nothing sent.",
        ("the broker rejects them", "kill-rejects"),
        ("a risk limit blocks them", "investigate-limit"),
        ("no orders are sent", "investigate-no-orders"),
    ),
    _kill(
        "kill-rejects",
        "Broker rejects: account or permissions problem; halt. If the broker is at fault, fail over.",
        "broker-failover",
    ),
    _investigate(
        "investigate-limit",
        "The limit is doing its job. A limit changes only through Git and the pre-launch gate, never at 3am.",
        f"kubectl get strategy {STRATEGY} -o yaml",
    ),
    _investigate("investigate-no-orders", "Nothing is sent: compare with paper trading on the same data.", LOGS),
)

_PNL_DIVERGING = _symptom(
    "pnl-diverging",
    "PnL diverging from expected",
    _yn(
        "outside-band",
        "Is realised PnL outside the 95% band?",
        "The pnl-band monitor: `kubectl get monitors`; breaching means Yes.",
        yes="recent-change",
        no="slippage",
    ),
    _yn(
        "slippage",
        "Is realised minus expected more than 2 bps?",
        "The slippage monitor: `kubectl get monitors`.",
        yes="throttle-cost",
        no="investigate-tolerance",
    ),
    _throttle("throttle-cost", "Execution cost above model: trade slower and recalibrate the cost model."),
    _investigate(
        "investigate-tolerance",
        "Within tolerance: record what you saw, no action.",
        "kubectl get monitors",
        "pnl-divergence",
    ),
    _yn(
        "recent-change",
        "Was a version or config change deployed since the divergence began?",
        "Compare the divergence start with the Rollout events and `stratops status` (version, known-good).",
        yes="rollback",
        no="reconcile",
    ),
    Action(
        "rollback",
        "rollback",
        "The divergence follows a change: back to the last known-good version.",
        ROLLBACK,
        "rollback-known-good",
    ),
    _rec("reconcile", matched="drift", mismatched="kill-mismatch"),
    _kill("kill-mismatch", "Book and broker disagree: the PnL is not what you think; halt."),
    _yn(
        "drift",
        "Do the drift monitors fire (PSI, KS)?",
        "The feature-PSI and KS monitors: `kubectl get monitors`.",
        yes="throttle-drift",
        no="concentration",
    ),
    _throttle("throttle-drift", "Regime change: trade slower and re-validate the model.", "feature-drift"),
    _yn(
        "concentration",
        "Is more than 25% of daily PnL from one name?",
        "The concentration monitor (share of |PnL| from one name).",
        yes="throttle-concentration",
        no="investigate-divergence",
    ),
    _throttle("throttle-concentration", "One name drives the PnL: cut the exposure while you look.", "pnl-divergence"),
    _investigate(
        "investigate-divergence",
        "No known cause: follow the PnL-divergence runbook.",
        "kubectl get monitors",
        "pnl-divergence",
    ),
)

_STALE_DATA = _symptom(
    "stale-data",
    "Stale or missing data",
    _yn(
        "current-again",
        "Has the data been current again for at least two bar intervals?",
        "The bar-age monitor: `kubectl get monitors`; two clean bars in a row mean Yes.",
        yes="reconcile",
        no="which-symbols",
    ),
    _rec("reconcile", matched="resume", mismatched="kill-mismatch"),
    _resume("resume"),
    _kill("kill-mismatch", "Positions or open orders do not match after the gap: halt."),
    _q(
        "which-symbols",
        "Which symbols are stale?",
        "The bar-age monitor names them.",
        ("all", "backup-feed"),
        ("some", "exposed"),
    ),
    _yn(
        "backup-feed",
        "Is the backup feed current?",
        "The primary-vs-backup bar-count monitor, or the feed itself.",
        yes="throttle-backup",
        no="kill-no-data",
    ),
    _throttle("throttle-backup", "Switch to the backup feed and trade slowly until the primary is back."),
    _kill("kill-no-data", "No data, no trading."),
    _yn(
        "exposed",
        "Does the strategy hold positions or open orders in them?",
        "Check the strategy's book for the stale symbols.",
        yes="throttle-reduce-only",
        no="investigate-feed",
    ),
    _throttle("throttle-reduce-only", "Exposure on blind symbols: reduce-only until the data is back."),
    _investigate(
        "investigate-feed", "No exposure on the stale symbols: fix the feed; keep watching.", "kubectl get monitors"
    ),
)

_LATENCY_SPIKE = _symptom(
    "latency-spike",
    "Latency spike",
    _q(
        "where",
        "Where is the latency?",
        "The latency monitors say which layer: `kubectl get monitors`.",
        ("order route", "route-p95"),
        ("model decision", "decision-p99"),
        ("data ingest", "backlog"),
        ("back to normal for 15 minutes", "reconcile"),
    ),
    _yn(
        "route-p95",
        "Is order-route p95 above 500 ms for 3 windows?",
        "The order-latency monitor.",
        yes="throttle-route",
        no="investigate-route",
    ),
    _throttle("throttle-route", "Sustained slow route: fewer, smaller orders until it recovers."),
    _investigate("investigate-route", "Not sustained: watch the route; no action yet.", "kubectl get monitors"),
    _yn(
        "decision-p99",
        "Is decision p99 above 50% of the signal's decay horizon?",
        "The decision-latency monitor against spec.decayHorizon.",
        yes="throttle-decision",
        no="investigate-decision",
    ),
    _throttle("throttle-decision", "Decisions arrive after the signal has decayed: trade slower."),
    _investigate("investigate-decision", "Within the decay budget: profile the model; no action yet.", LOGS),
    _yn(
        "backlog",
        "Are more than 1000 messages unprocessed?",
        "The ingest-backlog monitor.",
        yes="kill-backlog",
        no="throttle-ingest",
    ),
    _kill("kill-backlog", "Decisions on a backlog are decisions on stale data: halt."),
    _throttle("throttle-ingest", "Ingest is slow but keeping up: trade slower until it clears."),
    _rec("reconcile", matched="resume", mismatched="kill-mismatch"),
    _resume("resume"),
    _kill("kill-mismatch", "Positions or open orders do not match after the spike: halt."),
)

_POSITION_MISMATCH = _symptom(
    "position-mismatch",
    "Position mismatch after restart",
    _yn(
        "halted",
        "Is the strategy halted?",
        "Run `stratops status`: trading state HALTED means Yes.",
        yes="which-side",
        no="kill-halt-first",
    ),
    _kill("kill-halt-first", "Halt first: trading on a wrong position compounds it."),
    _q(
        "which-side",
        "Which side is right?",
        "The broker's statement or drop copy is the record; the strategy's book is right only if it matches it.",
        ("the broker", "restored"),
        ("unknown", "investigate-drop-copy"),
    ),
    _yn(
        "restored",
        "Has the strategy's position been restored from the broker's fills?",
        "The strategy's book rebuilt from the broker's fills since the last good snapshot.",
        yes="reconcile",
        no="investigate-restore",
    ),
    _investigate("investigate-restore", "Restore the position from the broker's fills first; stay halted.", LOGS),
    _rec("reconcile", matched="resume", mismatched="investigate-still-wrong"),
    _resume("resume"),
    _investigate(
        "investigate-still-wrong", "Still wrong after the restore: stay halted and find the missing fills.", LOGS
    ),
    _investigate("investigate-drop-copy", "Pull the broker's drop copy; do not resume.", LOGS),
)

SYMPTOMS: tuple[Symptom, ...] = (
    _ACKS_SILENT,
    _NOT_TRADING,
    _PNL_DIVERGING,
    _STALE_DATA,
    _LATENCY_SPIKE,
    _POSITION_MISMATCH,
)


# -- validation ----------------------------------------------------------------------------
def validate(s: Symptom) -> None:
    """Raise TreeError unless S is a tree of valid nodes rooted at s.root."""
    if s.root not in s.nodes:
        raise TreeError(f"symptom {s.id}: root {s.root!r} is not a node")
    for n in s.nodes.values():
        if isinstance(n, Question):
            if len(n.choices) < 2:
                raise TreeError(f"symptom {s.id}: question {n.id} needs at least two answers")
            if len({c.label.casefold() for c in n.choices}) != len(n.choices):
                raise TreeError(f"symptom {s.id}: question {n.id} has two answers with the same label")
            for c in n.choices:
                if c.next not in s.nodes:
                    raise TreeError(f"symptom {s.id}: answer {c.label!r} of {n.id} points to no node {c.next!r}")
            if n.is_reconciliation and set(n.labels) != {MATCHED, MISMATCHED}:
                raise TreeError(f"symptom {s.id}: reconciliation {n.id} must answer Matched or Mismatched")
        elif isinstance(n, Action):
            if n.kind not in ACTION_KINDS:
                raise TreeError(f"symptom {s.id}: action {n.id} has kind {n.kind!r}, not one of {ACTION_KINDS}")
            if n.runbook is not None and n.runbook not in RUNBOOKS:
                raise TreeError(f"symptom {s.id}: action {n.id} names unknown runbook {n.runbook!r}")
        else:
            raise TreeError(f"symptom {s.id}: node {n!r} is neither a question nor an action")
    seen: set[str] = set()

    def visit(node_id: str, on_path: tuple[str, ...]) -> None:
        if node_id in on_path:
            raise TreeError(f"symptom {s.id}: cycle {' -> '.join((*on_path, node_id))}")
        seen.add(node_id)
        n = s.nodes[node_id]
        if isinstance(n, Question):
            for c in n.choices:
                visit(c.next, (*on_path, node_id))

    visit(s.root, ())
    orphans = sorted(set(s.nodes) - seen)
    if orphans:
        raise TreeError(f"symptom {s.id}: nodes not reachable from {s.root}: {', '.join(orphans)}")


def _validate_all() -> None:
    ids = [s.id for s in SYMPTOMS]
    if len(set(ids)) != len(ids):
        raise TreeError(f"symptom ids repeat: {ids}")
    for s in SYMPTOMS:
        validate(s)


_validate_all()
_BY_ID: Mapping[str, Symptom] = MappingProxyType({s.id: s for s in SYMPTOMS})


# -- public API ----------------------------------------------------------------------------
def symptom(symptom_id: str) -> Symptom:
    """The symptom with this id; ValueError naming the valid ids otherwise."""
    try:
        return _BY_ID[symptom_id]
    except KeyError:
        raise ValueError(f"no symptom {symptom_id!r}; symptoms: {', '.join(_BY_ID)}") from None


def walk(symptom_id: str, answers: list[str]) -> Walk:
    """Follow ANSWERS from the symptom's first question.

    Returns the steps taken and the action reached, or the next unanswered question. A wrong
    answer, or an answer after the action is reached, raises ValueError naming what is valid.
    """
    s = symptom(symptom_id)
    node: Node = s.nodes[s.root]
    steps: list[Step] = []
    for given in answers:
        if isinstance(node, Action):
            raise ValueError(
                f"too many answers: {' > '.join(st.answer for st in steps)} already reaches "
                f"{node.kind}; {given!r} answers nothing"
            )
        choice = node.answer(given)
        steps.append(Step(node, choice.label))
        node = s.nodes[choice.next]
    if isinstance(node, Action):
        return Walk(s, tuple(steps), node, None)
    return Walk(s, tuple(steps), None, node)


def paths(symptom_id: str) -> list[Walk]:
    """Every root-to-leaf path of the symptom's tree, in answer order."""
    s = symptom(symptom_id)

    def expand(node_id: str, steps: tuple[Step, ...]) -> Iterator[Walk]:
        n = s.nodes[node_id]
        if isinstance(n, Action):
            yield Walk(s, steps, n, None)
            return
        for c in n.choices:
            yield from expand(c.next, (*steps, Step(n, c.label)))

    return list(expand(s.root, ()))
