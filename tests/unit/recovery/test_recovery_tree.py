"""The recovery tree: properties over every path of every symptom, and the walker.

The risk-limit property is proved against the real lifecycle decision: each action is turned
into the command it gives and fed to stratops.lifecycle.decide.decide from a running live
strategy, a throttled one and a halted one.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from cases import example, pinned
from stratops.gates.evaluate import GateEvaluation
from stratops.lifecycle import limits as L
from stratops.lifecycle import manifests
from stratops.lifecycle.commands import Command, parse_command
from stratops.lifecycle.control import Acknowledgement
from stratops.lifecycle.decide import decide
from stratops.lifecycle.types import DeploymentView, Observations, PodView
from stratops.models.strategy import EffectiveLimits, StrategySpec, StrategyStatus, TradingState
from stratops.recovery import tree
from stratops.recovery.tree import (
    ACTION_KINDS,
    RUNBOOKS,
    Action,
    Choice,
    Question,
    Reconciliation,
    Symptom,
    TreeError,
    paths,
    walk,
)

ALL_PATHS = [(s.id, p) for s in tree.SYMPTOMS for p in paths(s.id)]
PATH_IDS = [f"{sid}:{'>'.join(p.answers)}" for sid, p in ALL_PATHS]


# -- shape of every path -----------------------------------------------------------------
def test_six_symptoms_in_order():
    assert [s.id for s in tree.SYMPTOMS] == [
        "acks-silent",
        "not-trading",
        "pnl-diverging",
        "stale-data",
        "latency-spike",
        "position-mismatch",
    ]
    assert tree.symptom("stale-data").text == "Stale or missing data"
    with pytest.raises(ValueError, match="symptoms: acks-silent, not-trading"):
        tree.symptom("nope")


@pytest.mark.parametrize(("sid", "path"), ALL_PATHS, ids=PATH_IDS)
def test_every_path_ends_in_one_action_and_visits_no_node_twice(sid, path):
    assert isinstance(path.action, Action) and path.next_question is None
    assert all(isinstance(step.question, Question) for step in path.steps)
    ids = [step.question.id for step in path.steps] + [path.action.id]
    assert len(ids) == len(set(ids))
    assert path.steps[0].question.id == tree.symptom(sid).root
    # walking the same answers arrives at the same action
    assert walk(sid, list(path.answers)).action == path.action


@pytest.mark.parametrize(("sid", "path"), ALL_PATHS, ids=PATH_IDS)
def test_resume_only_through_reconciliation_answered_matched(sid, path):
    recs = [st for st in path.steps if st.question.is_reconciliation]
    for st in recs:
        assert isinstance(st.question, Reconciliation) and st.question.labels == ("Matched", "Mismatched")
    if path.action.kind == "resume":
        assert path.reconciled and [st.answer for st in recs] == ["Matched"]
    if any(st.answer == "Mismatched" for st in recs):
        assert path.action.kind in ("killSwitch", "investigate")


def test_action_kinds_are_the_five_and_all_five_occur():
    kinds = {p.action.kind for _, p in ALL_PATHS}
    assert set(ACTION_KINDS) == {"killSwitch", "throttle", "rollback", "investigate", "resume"}
    assert kinds == set(ACTION_KINDS)
    for _, p in ALL_PATHS:
        assert p.action.why and "\n" not in p.action.why
        assert p.action.command
        assert p.action.runbook is None or p.action.runbook in RUNBOOKS


def test_runbook_ids_are_the_catalogue_s():
    from stratops.recovery import runbooks

    assert set(RUNBOOKS) == set(runbooks.BY_ID)


def test_every_node_is_reachable_and_every_symptom_has_a_reconciliation_step():
    for s in tree.SYMPTOMS:
        reached = {st.question.id for p in paths(s.id) for st in p.steps} | {p.action.id for p in paths(s.id)}
        assert reached == set(s.nodes)
        assert any(isinstance(n, Reconciliation) for n in s.nodes.values())


# -- the risk-limit property against the real lifecycle ------------------------------------
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
NAME = "mean-revert"
COMPLETE = GateEvaluation("Complete", ["a"], [], cadence="daily", signers=("rita",))
PRELAUNCH = GateEvaluation("Complete", ["a"], [], cadence="preLaunch", signers=("rita", "tom"), min_signers=2)


def _cmd(kind: str, **fields: str) -> tuple[Command, ...]:
    return (parse_command(kind, json.dumps({"by": "oncall", **fields})),)


class Desk:
    """decide() driven like the operator: apply the plan, observe what the cluster would show, again."""

    def __init__(self) -> None:
        raw = example("strategy.yaml")["spec"]
        raw["mode"] = "live"
        raw["image"] = pinned(raw["image"])
        raw["rollbackPolicy"].update(healthyFor="1s", rolloutDeadline="60s")
        self.spec = StrategySpec.model_validate(raw)
        self.status = StrategyStatus()
        self.manifest: dict | None = None
        self.control = None
        self.acks: dict[str, Acknowledgement] = {}
        self.now = T0

    def step(self, commands: tuple[Command, ...] = ()) -> None:
        self.now += timedelta(seconds=1)
        dep, pods = None, ()
        if self.manifest is not None:
            m, n = self.manifest, self.manifest["spec"]["replicas"]
            dep = DeploymentView(
                image=m["spec"]["template"]["spec"]["containers"][0]["image"],
                replicas=n,
                generation=1,
                observed_generation=1,
                status_replicas=n,
                updated_replicas=n,
                ready_replicas=n,
                available_replicas=n,
                live_fingerprint=manifests.fingerprint(m),
                desired_fingerprint=m["metadata"]["annotations"][manifests.ANNOTATION_DESIRED],
            )
            pods = tuple(PodView(f"{NAME}-{i}", True, False, owner=f"ReplicaSet/{NAME}-5d8f9") for i in range(n))
        obs = Observations(
            now=self.now,
            name=NAME,
            namespace="desk",
            uid="u",
            generation=1,
            deployment=dep,
            pods=pods,
            control=self.control,
            acks=self.acks,
            gates={"fx-daily": COMPLETE, "mean-revert-pre-launch": PRELAUNCH},
            commands=commands,
            trading_author="tina",
            mode_author="tina",
        )
        plan = decide(self.spec, self.status, obs)
        self.status = plan.status
        self.control = plan.control or self.control
        self.manifest = plan.deployment or self.manifest
        if self.control is not None and self.manifest is not None:  # the strategy's pods acknowledge
            self.acks = {
                p.name: Acknowledgement(
                    pod=p.name,
                    generation=self.control.generation,
                    trading_state=self.control.trading_state,
                    at=self.now,
                )
                for p in pods
            }

    def until(self, predicate, steps: int = 40) -> None:
        for _ in range(steps):
            self.step()
            if predicate(self.status):
                return
        raise AssertionError(f"not reached: {self.status.model_dump(exclude_none=True)}")

    @property
    def limits(self) -> EffectiveLimits:
        assert self.status.effective_limits is not None
        return self.status.effective_limits


def _running_live() -> Desk:
    d = Desk()
    d.until(lambda s: s.last_known_good == "1.4.2" and s.mode and s.mode.value == "live")
    d.spec = d.spec.model_copy(update={"version": "1.5.0"})  # a known-good to roll back to
    d.until(lambda s: s.last_known_good == "1.5.0" and s.phase.value == "Running")
    return d


_BASE = _running_live()


def _throttled() -> Desk:
    d = copy.deepcopy(_BASE)
    d.step(_cmd("throttle", reason="slippage"))
    d.until(lambda s: s.trading_state == TradingState.REDUCING)
    return d


def _halted() -> Desk:
    d = copy.deepcopy(_BASE)
    d.step(_cmd("kill", reason="drill"))
    d.until(lambda s: s.kill_switch is not None and s.kill_switch.completed_at is not None)
    return d


STARTS = {"running": lambda: copy.deepcopy(_BASE), "throttled": _throttled, "halted": _halted}


def lifecycle_commands(action: Action, reason: str) -> list[tuple[Command, ...]]:
    """What carrying out ACTION gives the operator, in order."""
    return {
        "killSwitch": [_cmd("kill", reason=reason)],
        "throttle": [_cmd("throttle", reason=reason)],
        "rollback": [_cmd("rollback", reason=reason)],
        "resume": [
            _cmd("reconciliation", result="Matched", evidence="broker statement vs book"),
            _cmd("resume", reason=reason),
        ],
        "investigate": [],
    }[action.kind]


def _at_most(a: EffectiveLimits, b: EffectiveLimits) -> bool:
    return L.raised(b, a) == []


@pytest.mark.parametrize("start", list(STARTS))
def test_no_path_relaxes_a_risk_limit(start):
    seen = set()
    for sid, path in ALL_PATHS:
        d = STARTS[start]()
        ceiling = L.from_spec(d.spec.risk_limits)
        before = d.limits
        assert _at_most(before, ceiling)
        for commands in lifecycle_commands(path.action, path.reason()):
            d.step(commands)
            assert _at_most(d.limits, ceiling), (sid, path.answers)
        for _ in range(5):  # let the action play out (acks, scale, REDUCING -> ACTIVE)
            d.step()
            assert _at_most(d.limits, ceiling), (sid, path.answers)
            if path.action.kind != "resume":
                assert _at_most(d.limits, before), (sid, path.answers, before, d.limits)
        seen.add((path.action.kind, d.status.trading_state))
        if path.action.kind == "rollback" and start == "running":
            assert d.status.active_version == "1.4.2" and d.status.blocked_versions[0].version == "1.5.0"
    # the commands took effect: a kill halts, a throttle reduces (unless already halted)
    assert ("killSwitch", TradingState.HALTED) in seen
    if start != "halted":
        assert ("throttle", TradingState.REDUCING) in seen
    if start == "halted":  # reconciliation Matched then resume: accepted, back through REDUCING
        assert any(k == "resume" and s != TradingState.HALTED for k, s in seen)


# -- walk --------------------------------------------------------------------------------
def test_walk_answers_by_label_case_insensitive_and_y_n():
    w = walk("acks-silent", ["yes", "Y", "NO", "y", "matched"])
    assert w.done and w.action.kind == "resume"
    assert w.answers == ("Yes", "Yes", "No", "Yes", "Matched")
    assert w.reason() == "triage acks-silent: Yes > Yes > No > Yes > Matched"
    w = walk("not-trading", ["n", "y", "y", "THE BROKER REJECTS THEM"])
    assert w.action.kind == "killSwitch" and w.action.runbook == "broker-failover"


def test_walk_stops_at_the_next_question():
    w = walk("latency-spike", [])
    assert not w.done and w.next_question.text == "Where is the latency?" and w.steps == ()
    w = walk("latency-spike", ["data ingest"])
    assert w.next_question.yes_no and w.action is None
    w = walk("stale-data", ["yes"])
    assert w.next_question.is_reconciliation and "stratops reconcile" in w.next_question.text


def test_walk_bad_answer_names_the_valid_answers():
    with pytest.raises(ValueError) as e:
        walk("latency-spike", ["network"])
    msg = str(e.value)
    assert "'network' is not an answer to 'Where is the latency?'" in msg
    assert "'order route', 'model decision', 'data ingest', 'back to normal for 15 minutes'" in msg
    with pytest.raises(ValueError, match=r"valid answers: 'Yes', 'No' \(or y, n\)"):
        walk("acks-silent", ["maybe"])
    with pytest.raises(ValueError, match=r"'y' is not an answer.*'all', 'some'"):
        walk("stale-data", ["no", "y"])  # y/n only for yes/no questions
    with pytest.raises(ValueError, match="too many answers: No already reaches killSwitch"):
        walk("acks-silent", ["no", "yes"])
    with pytest.raises(ValueError, match="no symptom"):
        walk("bad", [])


def test_command_for_fills_strategy_namespace_and_reason():
    w = walk("position-mismatch", ["no"])
    assert w.action.command_for() == 'stratops kill STRATEGY --reason "..."'
    assert w.action.command_for("mean-revert", "fx", w.reason()) == (
        "stratops kill mean-revert --reason 'triage position-mismatch: No' -n fx"
    )
    w = walk("position-mismatch", ["yes", "the broker", "yes", "matched"])
    assert w.action.command_for("mr", None, "r", "stmt 24-11") == (
        "stratops reconcile mr --result Matched --evidence 'stmt 24-11' && stratops resume mr --reason r"
    )


def test_daily_gate_is_named_or_read_from_the_strategy():
    w = walk("not-trading", ["yes", "no", "yes", "matched", "no"])
    assert w.action.id == "investigate-daily-gate"
    assert w.action.command_for("mr", "fx", daily_gate="fx-daily") == (
        'stratops gate sign fx-daily --all --evidence "..." -n fx'
    )
    # Unknown (no cluster at hand): a shell substitution that reads it from the strategy's spec.
    assert w.action.command_for("mr", "fx") == (
        "stratops gate sign \"$(kubectl get strategy mr -n fx -o jsonpath='{.spec.gates.daily}')\" --all "
        '--evidence "..." -n fx'
    )


# -- validation --------------------------------------------------------------------------
def _sym(*nodes):
    return Symptom("x", "x", nodes[0].id, MappingProxyType({n.id: n for n in nodes}))


def _stop(id: str) -> Action:
    return Action(id, "killSwitch", "why", "stratops kill STRATEGY --reason REASON")


def test_validation_rejects_dangling_choice_cycle_orphan_and_bad_kinds():
    q = Question("q", "?", "", (Choice("Yes", "a"), Choice("No", "missing")))
    with pytest.raises(TreeError, match="points to no node 'missing'"):
        tree.validate(_sym(q, _stop("a")))
    q1 = Question("q1", "?", "", (Choice("Yes", "q2"), Choice("No", "a")))
    q2 = Question("q2", "?", "", (Choice("Yes", "q1"), Choice("No", "a")))
    with pytest.raises(TreeError, match="cycle q1 -> q2 -> q1"):
        tree.validate(_sym(q1, q2, _stop("a")))
    q = Question("q", "?", "", (Choice("Yes", "a"), Choice("No", "a")))
    with pytest.raises(TreeError, match="not reachable from q: b"):
        tree.validate(_sym(q, _stop("a"), _stop("b")))
    with pytest.raises(TreeError, match="kind 'relax'"):
        tree.validate(_sym(q, Action("a", "relax", "w", "c")))  # type: ignore[arg-type]
    with pytest.raises(TreeError, match="unknown runbook"):
        tree.validate(_sym(q, Action("a", "throttle", "w", "c", "improvise")))
    r = Reconciliation("r", "?", "", (Choice("Yes", "a"), Choice("No", "a")))
    with pytest.raises(TreeError, match="Matched or Mismatched"):
        tree.validate(_sym(r, _stop("a")))
    for s in tree.SYMPTOMS:
        tree.validate(s)


def test_a_held_handover_is_released_only_through_a_reconciliation():
    w = walk("not-trading", ["yes", "yes", "matched"])
    assert w.action.id == "release" and w.reconciled
    assert w.action.command_for("mr", "fx", "old version hung") == (
        "stratops handover release mr --book INSTRUMENT=QUANTITY --reason 'old version hung' -n fx"
    )
    assert walk("not-trading", ["yes", "yes", "mismatched"]).action.kind == "killSwitch"
