"""The warm handover as the operator decides it (stratops.lifecycle.decide), against a simulated
desk: a Deployment controller that keeps the old version's pods during a rolling handover and
removes them under Recreate, and pods that apply the one control document as it applies to
their version. At no moment may two versions' pods be allowed to send orders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cases import example
from stratops.gates.evaluate import GateEvaluation
from stratops.lifecycle import manifests
from stratops.lifecycle.commands import Command, parse_command
from stratops.lifecycle.control import Acknowledgement, ControlDocument
from stratops.lifecycle.decide import decide
from stratops.lifecycle.types import DeploymentView, IncidentView, Observations, Plan, PodView
from stratops.models.strategy import StrategySpec, StrategyStatus, TradingState

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
NAME = "mean-revert"
A, R, HALT, SB = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED, TradingState.STANDBY
GATES = {
    "fx-daily": GateEvaluation("Complete", ["a"], [], cadence="daily", signers=("rita",)),
    "mean-revert-pre-launch": GateEvaluation(
        "Complete", ["a"], [], cadence="preLaunch", signers=("rita", "tom"), min_signers=2
    ),
}


def spec(handover: bool | None = None, **over) -> StrategySpec:
    """The example strategy (paper): a 60 s rollout deadline, its 10 s acknowledgement deadline,
    and the warm handover as HANDOVER says (None: the default, off for paper)."""
    raw = example("strategy.yaml")["spec"]
    raw["rollbackPolicy"].update({"healthyFor": "10s", "rolloutDeadline": "60s"})
    if handover is not None:
        raw["rollbackPolicy"]["handover"] = handover
    raw.update(over)
    return StrategySpec.model_validate(raw)


def warm(**over) -> StrategySpec:
    return spec(handover=True, **over)


def obs(**kw) -> Observations:
    return Observations(name=NAME, namespace="desk", uid="u-1", generation=1, **kw)


def command(kind: str, **fields: object) -> tuple[Command, ...]:
    return (parse_command(kind, json.dumps({"reason": "test", "by": "alice", **fields})),)


@dataclass
class Pod:
    name: str
    version: str
    book: dict[str, float]
    ready: bool = True
    applied: ControlDocument | None = None  # as it applies to this pod's version
    ack: Acknowledgement | None = None
    orders: int = 0


@dataclass
class Desk:
    """One strategy's objects as the API server and the kubelet would keep them."""

    spec: StrategySpec
    status: StrategyStatus = field(default_factory=StrategyStatus)
    now: object = T0
    manifest: dict | None = None
    control: ControlDocument | None = None
    pods: list[Pod] = field(default_factory=list)
    incidents: dict[str, IncidentView] = field(default_factory=dict)
    created: int = 0
    # how the world behaves
    never_ready: set[str] = field(default_factory=set)
    hung: set[str] = field(default_factory=set)  # versions that never apply HALTED
    dishonest: set[str] = field(default_factory=set)  # versions that take over a wrong book
    old_sdk: set[str] = field(default_factory=set)  # versions whose SDK ignores the version field
    no_book: set[str] = field(default_factory=set)  # versions that report no book
    last: Plan | None = None
    written: str | None = None  # the operator process's memory of its own last control write
    seen_states: list[dict[str, str]] = field(default_factory=list)

    # -- the operator ------------------------------------------------------------------------
    def reconcile(self, crash_after: int | None = None, **kw) -> Plan:
        """One reconcile: decide, then write in the Executor's order (control document, Deployment,
        incidents, status); CRASH_AFTER writes, the operator dies."""
        o = obs(
            now=self.now,
            deployment=self.deployment_view(),
            pods=tuple(
                PodView(p.name, p.ready, False, owner=f"ReplicaSet/{NAME}-{p.version}", version=p.version)
                for p in self.pods
            ),
            control=self.control,
            control_written=self.written,
            acks={p.name: p.ack for p in self.pods if p.ack is not None},
            incidents=tuple(self.incidents.values()),
            gates=GATES,
            **kw,
        )
        plan = decide(self.spec, self.status, o)
        writes = []
        if plan.control is not None:
            writes.append(lambda: self.write_control(plan.control))
        if plan.deployment is not None:
            writes.append(lambda: setattr(self, "manifest", plan.deployment))
        writes.append(lambda: self.record_incidents(plan))
        writes.append(lambda: setattr(self, "status", plan.status))
        for i, write in enumerate(writes):
            if crash_after is not None and i >= crash_after:
                self.written = None  # a new process remembers nothing
                break
            write()
        self.last = plan
        return plan

    def write_control(self, doc: ControlDocument) -> None:
        self.control, self.written = doc, doc.content_hash()

    def record_incidents(self, plan: Plan) -> None:
        for inc in plan.incidents:
            self.incidents.setdefault(
                inc.name, IncidentView(inc.name, inc.class_.value, inc.severity.value, inc.action, "Open", acted=True)
            )

    # -- the world ---------------------------------------------------------------------------
    def template_version(self) -> str | None:
        return (
            self.manifest["spec"]["template"]["metadata"]["labels"][manifests.LABEL_VERSION] if self.manifest else None
        )

    def rolling(self) -> bool:
        return bool(self.manifest) and self.manifest["spec"]["strategy"]["type"] == "RollingUpdate"

    def settle(self) -> None:
        """The Deployment controller: the template's version at its replicas; the others kept
        during a rolling handover (new pods never available), removed under Recreate."""
        if self.manifest is None:
            return
        v, n = self.template_version(), self.manifest["spec"]["replicas"]
        if n == 0:
            self.pods = []
            return
        if not self.rolling():
            self.pods = [p for p in self.pods if p.version == v]
        mine = [p for p in self.pods if p.version == v]
        while len(mine) < n:
            p = Pod(f"{NAME}-{v}-{self.created}", v, {}, ready=False)  # a new process starts flat
            self.created += 1
            self.pods.append(p)
            mine.append(p)

    def run_pods(self) -> None:
        """Every pod applies the latest document as it applies to its version, and acknowledges."""
        doc = self.control
        if doc is None:
            return
        for p in self.pods:
            if p.version in self.old_sdk:
                mine = doc  # an SDK older than handovers: the document as if it were its own
            else:
                mine = doc.for_version(p.version)
            if mine.trading_state == HALT and p.version in self.hung:
                continue
            if p.applied is not None and p.applied.generation >= mine.generation:
                continue
            handed = (
                mine.starting_book is not None
                and p.applied is not None
                and p.applied.trading_state == SB
                and mine.trading_state != SB
            )
            if handed:
                p.book = dict(mine.starting_book)
                if p.version in self.dishonest:
                    p.book = {k: q + 1 for k, q in p.book.items()}
            if mine.trading_state == HALT:
                p.orders = 0
            p.applied = mine
            p.ready = p.version not in self.never_ready
            p.ack = Acknowledgement(
                pod=p.name,
                generation=mine.generation,
                trading_state=mine.trading_state,
                at=self.now,
                position=sum(abs(q) for q in p.book.values()),
                open_orders=p.orders,
                control_hash=doc.content_hash(),
                version=None if p.version in self.old_sdk else p.version,
                book=None if p.version in self.no_book else dict(p.book),
            )

    def deployment_view(self) -> DeploymentView | None:
        if self.manifest is None:
            return None
        v, n = self.template_version(), self.manifest["spec"]["replicas"]
        mine = [p for p in self.pods if p.version == v]
        ready = [p for p in mine if p.ready]
        available = [] if self.manifest["spec"].get("minReadySeconds") else ready
        fp = manifests.fingerprint(self.manifest)
        return DeploymentView(
            image=self.manifest["spec"]["template"]["spec"]["containers"][0]["image"],
            replicas=n,
            generation=1,
            observed_generation=1,
            status_replicas=len(self.pods),
            updated_replicas=len(mine),
            ready_replicas=len([p for p in self.pods if p.ready]),
            available_replicas=len(available) + len([p for p in self.pods if p.version != v and p.ready]),
            live_fingerprint=fp,
            desired_fingerprint=self.manifest["metadata"]["annotations"][manifests.ANNOTATION_DESIRED],
        )

    def tick(self, seconds: float = 1.0, crash_after: int | None = None, **kw) -> Plan:
        """A reconcile, the cluster catching up, the pods acknowledging, time passing."""
        plan = self.reconcile(crash_after, **kw)
        self.check()
        self.settle()
        self.check()
        self.run_pods()
        self.check()
        self.now += timedelta(seconds=seconds)
        return plan

    # -- what must hold at every moment ---------------------------------------------------------
    def check(self) -> None:
        trading = {p.version for p in self.pods if p.applied is not None and p.applied.allows_orders()}
        assert len(trading) <= 1, f"two versions may send orders: {self.describe()}"
        if self.control is not None:
            told = {p.version for p in self.pods if self.control.for_version(p.version).allows_orders()}
            assert len(told) <= 1, f"the document lets two versions trade: {self.describe()}"
        self.seen_states.append({p.name: p.applied.trading_state.value for p in self.pods if p.applied})

    def describe(self) -> str:
        h = self.status.handover
        pods = [(p.name, p.ready, p.applied and p.applied.trading_state.value) for p in self.pods]
        doc = self.control
        return (
            f"handover {h.step if h else None} ({h.reason if h else ''}); template {self.template_version()} "
            f"rolling={self.rolling()}; doc {doc and (doc.generation, doc.version, doc.trading_state.value)}; "
            f"pods {pods}"
        )

    def handover_step(self) -> str | None:
        return self.status.handover.step if self.status.handover else None

    def run_until(self, predicate, steps: int = 60, seconds: float = 1.0) -> None:
        for _ in range(steps):
            if predicate(self):
                return
            self.tick(seconds)
        assert predicate(self), self.describe()

    def versions(self) -> set[str]:
        return {p.version for p in self.pods}


def trading_desk(s: StrategySpec | None = None, book: dict[str, float] | None = None) -> Desk:
    """A desk whose version 1.4.2 trades, known-good, with BOOK."""
    d = Desk(s or warm())
    d.tick()
    d.settle()
    for p in d.pods:
        p.book = dict(book if book is not None else {"EURUSD": 250_000.0, "GBPUSD": -40_000.0})
        p.orders = 2
    d.run_until(lambda d: d.status.last_known_good == "1.4.2")
    assert d.versions() == {"1.4.2"} and d.control.version is None
    return d


def new_version(d: Desk, version: str = "1.4.3") -> None:
    d.spec = d.spec.model_copy(update={"version": version})


# -- a good version ------------------------------------------------------------------------
def test_a_good_version_is_handed_trading_and_the_book_without_a_moment_of_two_traders():
    d = trading_desk()
    book = dict(d.pods[0].book)
    new_version(d)
    plan = d.tick()
    assert d.handover_step() == "Standby" and "HandoverStarted" in [e.reason for e in plan.events]
    # The document names the trading version before the Deployment runs the new one.
    assert d.control.version == "1.4.2" and d.control.others == SB and d.control.trading_state == A
    spec_ = d.manifest["spec"]
    assert spec_["strategy"]["type"] == "RollingUpdate" and spec_["minReadySeconds"] == manifests.HANDOVER_HOLD_SECONDS
    assert d.versions() == {"1.4.2", "1.4.3"}
    d.run_until(lambda d: d.handover_step() == "Done")
    h = d.status.handover
    assert h.book == book
    new = [p for p in d.pods if p.version == "1.4.3"]
    assert [p.book for p in new] == [book] and new[0].applied.trading_state == A
    reasons = [e.reason for e in d.last.events]
    assert "HandoverDone" in reasons
    # Done: Recreate again, which scales the old pods away, and one plain document once they are gone.
    assert d.manifest["spec"]["strategy"]["type"] == "Recreate" and "minReadySeconds" not in d.manifest["spec"]
    d.run_until(lambda d: d.versions() == {"1.4.3"} and d.control.version is None)
    d.run_until(lambda d: d.status.last_known_good == "1.4.3")
    assert not d.incidents
    # Every step on the way, in order: the old version traded until it was told HALTED, and the new
    # one traded only after every old pod had applied HALTED.
    old_states = [s for states in d.seen_states for n, s in states.items() if "-1.4.2-" in n]
    assert old_states.index("HALTED") > 0 and set(old_states[: old_states.index("HALTED")]) == {"ACTIVE"}


def test_a_throttle_during_the_handover_hands_over_reducing():
    d = trading_desk()
    new_version(d)
    d.tick()
    d.tick(commands=command("throttle"))
    d.run_until(lambda d: d.handover_step() == "Done")
    assert [p.applied.trading_state for p in d.pods if p.version == "1.4.3"] == [R]


def test_a_rollback_of_a_version_that_trades_is_a_warm_handover_back_to_the_known_good_one():
    d = trading_desk()
    new_version(d)
    d.run_until(lambda d: d.status.last_known_good == "1.4.3")
    d.tick(commands=command("rollback"))
    assert d.handover_step() == "Standby" and d.status.handover.to_version == "1.4.2"
    assert "1.4.3" in [b.version for b in d.status.blocked_versions] and d.status.rollout.rollback
    d.run_until(lambda d: d.handover_step() == "Done" and d.versions() == {"1.4.2"})
    assert [p.applied.trading_state for p in d.pods] == [A]
    for _ in range(5):  # spec still names the blocked version: it stays rolled back
        d.tick(5)
        assert d.versions() == {"1.4.2"} and d.handover_step() == "Done"


# -- a bad version --------------------------------------------------------------------------
def test_a_version_that_never_gets_ready_never_stops_the_good_one():
    d = trading_desk()
    d.never_ready.add("fail-1.5")
    new_version(d, "fail-1.5")
    d.run_until(lambda d: d.handover_step() == "Aborted", steps=80, seconds=2)
    assert "not Ready within 60s" in d.status.handover.reason
    assert [b.version for b in d.status.blocked_versions] == ["fail-1.5"]
    [inc] = d.incidents.values()
    assert inc.severity == "P1" and inc.action == "rollback"
    assert d.template_version() == "1.4.2" and d.manifest["spec"]["strategy"]["type"] == "Recreate"
    d.run_until(lambda d: d.versions() == {"1.4.2"} and d.control.version is None)
    old_states = {s for states in d.seen_states for n, s in states.items() if "-1.4.2-" in n}
    assert old_states == {"ACTIVE"}  # never told anything else
    for _ in range(10):  # and spec still names the bad version: it is never started again
        d.tick(5)
        assert d.versions() == {"1.4.2"}


def test_a_breach_while_the_new_version_stands_by_aborts_the_handover():
    d = trading_desk()
    d.never_ready.add("1.4.3")  # it stands by, not yet Ready, when the monitor breaches
    new_version(d)
    d.tick()
    d.tick()
    d.incidents["mean-revert-drift-1"] = IncidentView("mean-revert-drift-1", "FeatureDrift", "P1", "rollback", "Open")
    plan = d.tick()
    assert d.handover_step() == "Aborted"
    assert any(
        n == "mean-revert-drift-1" and t.startswith("handover to 1.4.3 aborted") for n, t in plan.incident_actions
    )
    assert d.template_version() == "1.4.2"


# -- a handover that goes wrong partway -----------------------------------------------------
def test_an_old_version_that_does_not_halt_is_stopped_and_the_new_one_waits_for_a_person():
    d = trading_desk()
    d.hung.add("1.4.2")
    new_version(d)
    d.run_until(lambda d: d.handover_step() == "Held", steps=80)
    assert "HALTED not acknowledged" in d.status.handover.reason and d.status.handover.old_stopped
    [inc] = d.incidents.values()
    assert inc.severity == "P0"
    d.run_until(lambda d: d.versions() == {"1.4.3"})
    assert [p.applied.trading_state for p in d.pods] == [SB] and d.status.trading_state == SB
    assert d.control.version == "1.4.2" and d.control.trading_state == HALT
    for _ in range(10):  # it waits for a person: never handed trading, never known-good
        d.tick(5)
        assert [p.applied.trading_state for p in d.pods] == [SB] and d.status.last_known_good == "1.4.2"


def test_a_held_handover_is_released_by_a_person_from_the_reconciled_book():
    d = trading_desk()
    d.hung.add("1.4.2")
    new_version(d)
    d.run_until(lambda d: d.handover_step() == "Held" and d.versions() == {"1.4.3"}, steps=80)
    reconciled = {"EURUSD": 240_000.0}
    d.tick(commands=command("release", book=reconciled))  # no reconciliation since the hold: refused
    assert d.handover_step() == "Held" and "reconciliation" in d.status.message
    assert any(e.reason == "ReleaseRefused" for e in d.last.events)
    d.tick(commands=command("reconciliation", result="Matched", evidence="broker statement 09:14"))
    plan = d.tick(commands=command("release", book=reconciled))
    assert any(e.reason == "HandoverReleased" for e in plan.events)
    assert d.handover_step() == "ActivatingNew" and d.control.starting_book == reconciled
    assert d.control.version == "1.4.3" and d.manifest["spec"]["strategy"]["type"] == "Recreate"
    d.run_until(lambda d: d.handover_step() == "Done")
    assert [p.book for p in d.pods] == [reconciled] and [p.applied.trading_state for p in d.pods] == [A]
    assert d.versions() == {"1.4.3"}  # the version stopped for not halting is never started again


@pytest.mark.parametrize(
    ("book", "why"), [({}, "book is required"), ({"EURUSD": "lots"}, "finite number"), (None, "book is required")]
)
def test_a_release_without_a_readable_book_is_refused_before_anything(book, why):
    [c] = command("release", **({"book": book} if book is not None else {}))
    assert c.error is not None and why in c.error


def test_a_release_with_nothing_held_is_refused():
    d = trading_desk()
    d.tick(commands=command("release", book={"EURUSD": 1.0}))
    assert "no held handover" in d.status.message and d.status.handover is None


def test_a_new_version_that_confirms_another_book_halts_both():
    d = trading_desk()
    d.dishonest.add("1.4.3")
    new_version(d)
    d.run_until(lambda d: d.handover_step() == "Failed")
    assert d.status.handover.reason.startswith("position mismatch")
    assert d.status.kill_switch is not None and d.status.kill_switch.latched
    [inc] = d.incidents.values()
    assert (inc.class_, inc.severity) == ("RiskBreach", "P0")
    assert "1.4.3" in [b.version for b in d.status.blocked_versions]
    d.run_until(lambda d: not d.pods)  # scaled to 0 once HALTED is acknowledged
    assert d.control.trading_state == HALT


def test_a_kill_during_the_handover_halts_both_and_cancels_it():
    d = trading_desk()
    new_version(d)
    d.tick()
    d.tick(commands=command("kill"))
    assert d.handover_step() == "Cancelled" and "kill-switch" in d.status.handover.reason
    assert d.control.version is None and d.control.trading_state == HALT
    d.run_until(lambda d: not d.pods)
    assert not d.status.blocked_versions


def test_another_version_named_while_one_stands_by_goes_from_the_old_one_warm():
    d = trading_desk()
    d.never_ready.add("1.4.3")
    new_version(d)
    d.tick()
    d.tick()
    new_version(d, "1.4.4")
    d.tick()
    assert d.handover_step() == "Cancelled" and "1.4.4 named" in d.status.handover.reason
    assert d.template_version() == "1.4.2" and not d.status.blocked_versions
    d.run_until(lambda d: d.status.handover.to_version == "1.4.4" and d.handover_step() == "Standby")
    assert "1.4.3" not in d.versions()
    d.run_until(lambda d: d.handover_step() == "Done")


# -- when the handover is not warm ------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "why"),
    [
        ({"replicas": 2}, "2 replicas"),
        ({"no_book": True}, "reports no book"),
    ],
)
def test_a_strategy_that_cannot_be_handed_over_warm_rolls_out_with_recreate_and_says_why(shape, why):
    s = warm(replicas=shape.get("replicas", 1))
    d = Desk(s)
    if shape.get("no_book"):
        d.no_book.add("1.4.2")
    d.tick()
    d.run_until(lambda d: d.status.last_known_good == "1.4.2")
    new_version(d)
    plan = d.tick()
    assert d.status.handover is None and d.manifest["spec"]["strategy"]["type"] == "Recreate"
    assert any(e.reason == "HandoverSkipped" and why in e.message for e in plan.events)


def test_paper_rolls_out_with_recreate_unless_the_handover_is_asked_for():
    d = trading_desk(spec())
    new_version(d)
    d.tick()
    assert d.status.handover is None and d.manifest["spec"]["strategy"]["type"] == "Recreate"


def test_a_halted_strategy_has_nothing_to_hand_over():
    d = trading_desk()
    d.tick(commands=command("kill"))
    d.run_until(lambda d: not d.pods)
    new_version(d)
    d.tick()
    assert d.status.handover is None


def test_a_new_version_whose_sdk_ignores_the_version_field_is_a_p0():
    d = trading_desk()
    d.old_sdk.add("1.4.3")
    new_version(d)
    with pytest.raises(AssertionError, match="two versions may send orders"):
        d.run_until(lambda d: False, steps=5)  # the simulated desk sees what an old SDK does
    plan = d.reconcile()
    assert any(i.severity.value == "P0" and "does not know warm handovers" in i.summary for i in plan.incidents)
    assert plan.status.kill_switch.latched and plan.control.trading_state == HALT and plan.control.version is None


# -- an operator that dies anywhere -------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(crashes=st.lists(st.none() | st.integers(0, 3), min_size=40, max_size=40))
def test_an_operator_killed_between_any_two_writes_finishes_the_handover_once(crashes):
    d = trading_desk()
    book = dict(d.pods[0].book)
    new_version(d)
    for crash in crashes:
        d.tick(1.0, crash_after=crash)
    d.run_until(lambda d: d.status.last_known_good == "1.4.3", steps=80)
    assert d.status.handover.step == "Done" and d.status.handover.book == book
    assert [p.book for p in d.pods] == [book]
    assert not d.status.blocked_versions
    # Only the known false drift of an operator restarted between its control write and its
    # status write (the README's threat model): its own document taken for someone else's.
    assert all("control-drift" in name for name in d.incidents), d.incidents
