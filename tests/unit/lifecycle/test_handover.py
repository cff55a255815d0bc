"""The warm handover's state machine (stratops.lifecycle.handover) against a simulated desk:
two versions' pods applying and acknowledging their control documents in any order, scaling
that lags, clocks that jump past deadlines, checks that pass or fail, and an operator that
crashes after any write of a reconcile. At no moment may both versions send orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratops.lifecycle import handover as H
from stratops.lifecycle.control import allows_orders
from stratops.models.strategy import TradingState

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DEADLINES = H.Deadlines(rollout=timedelta(seconds=60), acknowledgement=timedelta(seconds=20))
A, R, HALT, SB = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED, TradingState.STANDBY
PAIR = "EURUSD"  # the simulated pods trade one instrument: a book is {PAIR: position}


def same(a: float, b: float) -> bool:
    return H.same_book({PAIR: a}, {PAIR: b})


@dataclass
class Doc:
    generation: int
    state: TradingState
    starting_position: float | None = None

    def allows_orders(self) -> bool:
        return allows_orders(self.state)


@dataclass
class Pod:
    name: str
    ready: bool = False
    applied: Doc | None = None
    acked: Doc | None = None
    position: float = 0.0
    open_orders: int = 0


@dataclass
class Version:
    name: str
    replicas: int
    docs: list[Doc] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    created: int = 0

    def latest(self) -> Doc | None:
        return self.docs[-1] if self.docs else None

    def view(self) -> H.VersionView:
        d = self.latest()
        return H.VersionView(
            self.name,
            self.replicas,
            d.generation if d else 0,
            d.state if d else None,
            tuple(
                H.PodView(
                    p.name,
                    p.ready,
                    p.acked.generation if p.acked else None,
                    p.acked.state if p.acked else None,
                    {PAIR: p.position} if p.acked else None,
                    p.open_orders if p.acked else None,
                )
                for p in self.pods
            ),
        )

    def write(self, plan: H.VersionPlan, own: TradingState) -> None:
        """The version's document as PLAN says; a plan that leaves it (None) gets the strategy's
        OWN state, as the operator's decision outside the handover would write it."""
        state = own if plan.state is None else plan.state
        book = plan.starting_book
        starting = None if book is None else book.get(PAIR, 0.0)
        d = self.latest()
        if d is not None and (d.state, d.starting_position) == (state, starting):
            return  # compared by content, as the operator's control document is
        self.docs.append(Doc((d.generation if d else 0) + 1, state, starting))

    def scale(self, replicas: int | None, spec: int) -> None:
        self.replicas = spec if replicas is None else replicas


class Desk:
    """Two versions of one strategy and the operator's recorded handover."""

    def __init__(
        self, replicas: int, positions: list[float], orders: list[int], state: TradingState, persist_first: bool
    ) -> None:
        self.spec_replicas = replicas
        self.now = T0
        self.old = Version("1.0", replicas, docs=[Doc(1, state)])
        for i in range(replicas):
            self.old.pods.append(
                Pod(
                    f"old-{i}",
                    ready=True,
                    applied=self.old.docs[0],
                    acked=self.old.docs[0],
                    position=positions[i],
                    open_orders=orders[i],
                )
            )
        self.book = sum(positions[:replicas])
        self.new = Version("2.0", 0)
        self.handover = H.start(self.old.view(), "2.0", state, T0)
        self.checks: H.Checks = "pending"
        self.persist_first = persist_first
        self.state = state  # the strategy's own trading state, outside the handover
        self.crashed = False  # the last reconcile died before all its writes
        self.steps_seen = [self.handover.step]
        self.old_states_written = [d.state for d in self.old.docs]

    def versions(self) -> dict[str, Version]:
        return {"old": self.old, "new": self.new}

    # -- the operator ------------------------------------------------------------------------
    def reconcile(self, crash_after: int | None = None) -> None:
        """One reconcile: the next step, then its writes; CRASH_AFTER writes, the operator dies
        (the rest is not done; the next reconcile starts from what was recorded)."""
        h = H.advance(self.handover, self.old.view(), self.new.view(), self.checks, self.now, DEADLINES)
        p = H.plan(h)
        writes = [
            lambda: self.old.write(p.old, self.state),
            lambda: self.new.write(p.new, self.state),
            lambda: self.old.scale(p.old.replicas, self.spec_replicas),
            lambda: self.new.scale(p.new.replicas, self.spec_replicas),
        ]
        persist = [lambda: setattr(self, "handover", h)]
        actions = persist + writes if self.persist_first else writes + persist
        for i, act in enumerate(actions):
            if crash_after is not None and i >= crash_after:
                self.crashed = True
                if self.handover.step != self.steps_seen[-1]:  # recorded before the crash
                    self.steps_seen.append(self.handover.step)
                return
            act()
            self.old_states_written = [d.state for d in self.old.docs]
        self.crashed = False
        if self.handover.step != self.steps_seen[-1]:
            self.steps_seen.append(self.handover.step)

    # -- the world -----------------------------------------------------------------------------
    def settle(self, which: str) -> None:
        """The Deployment controller and kubelet catch up by one pod."""
        v = self.versions()[which]
        if len(v.pods) < v.replicas:
            v.pods.append(Pod(f"{which}-{v.created}-new"))
            v.created += 1
        elif len(v.pods) > v.replicas:
            v.pods.pop(0)  # gone: it sends nothing any more

    def become_ready(self, which: str, i: int) -> None:
        v = self.versions()[which]
        if v.pods:
            v.pods[i % len(v.pods)].ready = True

    def apply(self, which: str, i: int, cancel: bool, honest: bool) -> None:
        """A pod applies its version's latest document (or re-acknowledges it) and acknowledges,
        with its position and working orders; on HALTED it cancels them if CANCEL."""
        v = self.versions()[which]
        d = v.latest()
        if not v.pods or d is None:
            return
        pod = v.pods[i % len(v.pods)]
        if d.starting_position is not None and pod.applied is not d:
            # the version handed trading starts from the position it is given (each pod its share)
            share = d.starting_position / len(v.pods)
            pod.position = share if honest else share + 1.0
        if d.state == HALT and cancel:
            pod.open_orders = 0
        pod.applied = pod.acked = d

    # -- what must hold at every moment --------------------------------------------------------
    def check_invariants(self) -> None:
        sending = [
            name
            for name, v in self.versions().items()
            if any(p.applied is not None and p.applied.allows_orders() for p in v.pods)
        ]
        assert len(sending) <= 1, f"both versions may send orders: {self.describe()}"
        written = [name for name, v in self.versions().items() if (d := v.latest()) is not None and d.allows_orders()]
        assert len(written) <= 1, f"both versions' documents allow orders: {self.describe()}"
        # The causal rule behind it: the new version's document allows orders only once every
        # pod of the old one has applied a document that does not (or is gone).
        if (d := self.new.latest()) is not None and d.allows_orders():
            assert all(p.applied is not None and not p.applied.allows_orders() for p in self.old.pods), self.describe()
        h = self.handover
        if self.persist_first and h.step in (H.Step.STANDBY, H.Step.HALTING_OLD, H.Step.ABORTED, H.Step.HELD):
            # (writing first, a crash may leave the documents one step ahead of the recorded step)
            assert d is None or d.state == SB, self.describe()
        if h.step == H.Step.ABORTED and H.Step.HALTING_OLD not in self.steps_seen:
            # A bad version never stops the good one: recorded first, nothing halts the old
            # version before HALTING_OLD is on record; written first, a crash may have told it
            # HALTED a step early, and the abort's first whole reconcile gives it trading back.
            if self.persist_first:
                assert HALT not in self.old_states_written, self.describe()
            elif not self.crashed:
                last = self.old.latest()
                assert last is not None and last.state == self.state, self.describe()
        if h.step == H.Step.CANCELLED and not self.crashed and (self.new.replicas or self.new.pods):
            # Cancelled: the old version has its own state back at the first whole reconcile.
            last = self.old.latest()
            assert last is None or last.state in (self.state, HALT), self.describe()
        if h.step in (H.Step.ACTIVATING_NEW, H.Step.DONE) and H.Step.HELD not in self.steps_seen:
            assert h.book is not None and H.same_book(h.book, {PAIR: self.book}), self.describe()
        if h.step == H.Step.DONE:
            assert same(sum(p.position for p in self.new.pods), self.book), self.describe()

    def describe(self) -> str:
        def v(x: Version) -> str:
            docs = [(d.generation, d.state.value, d.starting_position) for d in x.docs]
            pods = [
                (p.name, p.ready, p.applied and p.applied.state.value, p.acked and p.acked.generation) for p in x.pods
            ]
            return f"{x.name} x{x.replicas} docs={docs} pods={pods}"

        return f"step {self.handover.step.value} ({self.handover.reason}); {v(self.old)}; {v(self.new)}"


EVENTS = st.one_of(
    st.tuples(st.just("reconcile"), st.none() | st.integers(0, 4)),
    st.tuples(st.just("settle"), st.sampled_from(["old", "new"])),
    st.tuples(st.just("ready"), st.integers(0, 3)),
    st.tuples(st.just("apply"), st.sampled_from(["old", "new"]), st.integers(0, 3), st.booleans(), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 3.0, 15.0, 61.0])),
    st.tuples(st.just("checks"), st.sampled_from(["pass", "fail", "pending"])),
    st.tuples(st.just("release"), st.floats(-100, 100)),
    st.tuples(st.just("cancel")),
)


def play(desk: Desk, events: list[tuple]) -> None:
    desk.check_invariants()
    for e in events:
        kind = e[0]
        if kind == "reconcile":
            desk.reconcile(e[1])
        elif kind == "settle":
            desk.settle(e[1])
        elif kind == "ready":
            desk.become_ready("new", e[1])
        elif kind == "apply":
            desk.apply(e[1], e[2], cancel=e[3], honest=e[4] or e[1] == "old")
        elif kind == "tick":
            desk.now += timedelta(seconds=e[1])
        elif kind == "checks":
            desk.checks = e[1]
        elif kind == "release" and desk.handover.step == H.Step.HELD and not desk.old.pods:
            desk.handover = H.release(desk.handover, desk.old.view(), {PAIR: e[1]}, desk.now)
            desk.book = e[1]  # the reconciliation's position is the book now
            desk.steps_seen.append(desk.handover.step)
        elif kind == "cancel" and desk.handover.step in (H.Step.STANDBY, H.Step.HALTING_OLD):
            desk.handover = H.cancel(desk.handover, "a kill-switch latched", desk.now)
            desk.steps_seen.append(desk.handover.step)
        desk.check_invariants()


#: A round of the desk: a reconcile (the operator maybe crashing after some of its writes), the
#: Deployments settling, and then whichever of the actors this round acts (the new pods getting
#: Ready, the new pods applying their document, the old pods applying theirs, the checks
#: passing), then time passing. Sequences of rounds reach the handover's late steps quickly,
#: with every lag between the two versions' pods.
ROUNDS = st.tuples(
    st.just("round"),
    st.none() | st.integers(0, 4),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from([0.5, 1.0, 5.0, 25.0, 61.0]),
)


def play_round(
    desk: Desk,
    crash: int | None,
    new_ready: bool,
    new_applies: bool,
    old_applies: bool,
    honest: bool,
    cancel: bool,
    dt: float,
) -> None:
    desk.reconcile(crash)
    desk.check_invariants()
    for which in ("old", "new"):
        for _ in range(3):
            desk.settle(which)
            desk.check_invariants()
    for i in range(3):
        if new_ready:
            desk.become_ready("new", i)
        if new_applies:
            desk.apply("new", i, cancel=True, honest=honest)
            desk.check_invariants()
        if old_applies:
            desk.apply("old", i, cancel=cancel, honest=True)
            desk.check_invariants()
    desk.checks = "pass"
    desk.now += timedelta(seconds=dt)


@settings(max_examples=1500, deadline=None)
@given(
    replicas=st.integers(1, 3),
    positions=st.lists(st.floats(-50, 50), min_size=3, max_size=3),
    orders=st.lists(st.integers(0, 2), min_size=3, max_size=3),
    state=st.sampled_from([A, R]),
    persist_first=st.booleans(),
    events=st.lists(st.one_of(ROUNDS, EVENTS), max_size=40),
)
def test_never_two_versions_allowed_to_send_orders(replicas, positions, orders, state, persist_first, events):
    desk = Desk(replicas, positions, orders, state, persist_first)
    desk.check_invariants()
    for e in events:
        if e[0] == "round":
            play_round(desk, *e[1:])
        else:
            play(desk, [e])
    desk.check_invariants()


@settings(max_examples=1000, deadline=None)
@given(
    replicas=st.integers(1, 3),
    positions=st.lists(st.floats(-50, 50), min_size=3, max_size=3),
    state=st.sampled_from([A, R]),
    persist_first=st.booleans(),
    rounds=st.lists(ROUNDS, min_size=3, max_size=25),
)
def test_never_two_versions_allowed_to_send_orders_round_by_round(replicas, positions, state, persist_first, rounds):
    """Rounds only: the late steps of the handover, with the old version's pods lagging."""
    desk = Desk(replicas, positions, [0, 0, 0], state, persist_first)
    desk.check_invariants()
    for r in rounds:
        play_round(desk, *r[1:])
    desk.check_invariants()


def good_day(desk: Desk, new_ready: bool = True, old_acks: bool = True, honest: bool = True) -> None:
    """Everyone does their part at once, a second apart, with a reconcile after each move."""
    for _ in range(40):
        if desk.handover.step in H.TERMINAL:
            break
        desk.reconcile()
        for which in ("old", "new"):
            desk.settle(which)
            for i in range(3):
                if which == "new" and new_ready:
                    desk.become_ready("new", i)
                if which == "new" or old_acks:
                    desk.apply(which, i, cancel=True, honest=honest)
        desk.checks = "pass"
        desk.now += timedelta(seconds=1)
        desk.check_invariants()
    desk.reconcile()
    desk.settle("old")
    desk.check_invariants()


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_a_good_version_takes_over_with_the_position(replicas):
    desk = Desk(replicas, [10.0, -4.0, 1.5], [1, 0, 2], R, persist_first=False)
    good_day(desk)
    assert desk.handover.step == H.Step.DONE, desk.describe()
    assert desk.steps_seen == [H.Step.STANDBY, H.Step.HALTING_OLD, H.Step.ACTIVATING_NEW, H.Step.DONE]
    assert desk.new.latest().state == R and same(desk.new.latest().starting_position, desk.book)
    assert same(sum(p.position for p in desk.new.pods), sum([10.0, -4.0, 1.5][:replicas]))
    assert desk.old.replicas == 0 and [d.state for d in desk.old.docs] == [R, HALT]


def test_a_version_that_never_gets_ready_never_stops_the_good_one():
    desk = Desk(2, [5.0, 5.0, 0], [0, 0, 0], A, persist_first=True)
    good_day(desk, new_ready=False)
    desk.now += DEADLINES.rollout
    desk.reconcile()
    assert desk.handover.step == H.Step.ABORTED and "not Ready within 60s" in desk.handover.reason
    assert [d.state for d in desk.old.docs] == [A] and desk.old.replicas == 2
    assert desk.new.replicas == 0 and H.plan(desk.handover).block_new and H.plan(desk.handover).incident


def test_an_abort_after_a_crash_that_halted_the_old_version_gives_it_trading_back():
    """Found by the property test: written first, the operator told the old version HALTED for
    HALTING_OLD and died before recording the step; the checks then failed. The abort must not
    leave the good version halted."""
    desk = Desk(1, [5.0, 0, 0], [0, 0, 0], A, persist_first=False)
    desk.reconcile()
    desk.settle("new")
    desk.become_ready("new", 0)
    desk.apply("new", 0, cancel=True, honest=True)
    desk.checks = "pass"
    desk.reconcile(crash_after=1)  # the old version told HALTED; the step not recorded
    assert desk.old.latest().state == HALT and desk.handover.step == H.Step.STANDBY
    desk.apply("old", 0, cancel=True, honest=True)
    desk.checks = "fail"
    desk.reconcile()
    assert desk.handover.step == H.Step.ABORTED
    assert desk.old.latest().state == A and desk.old.replicas == 1


def test_failed_checks_abort_before_anything_stops():
    desk = Desk(1, [5.0, 0, 0], [0, 0, 0], A, persist_first=False)
    desk.reconcile()
    desk.checks = "fail"
    desk.reconcile()
    assert desk.handover.step == H.Step.ABORTED and "failed its rollout checks" in desk.handover.reason
    assert [d.state for d in desk.old.docs] == [A]


def test_an_old_version_that_does_not_halt_is_scaled_to_0_and_the_new_one_waits_for_a_person():
    desk = Desk(1, [7.0, 0, 0], [3, 0, 0], A, persist_first=False)
    good_day(desk, old_acks=False)  # the deadline passes inside
    assert desk.handover.step == H.Step.HELD and "HALTED not acknowledged" in desk.handover.reason
    assert desk.old.replicas == 0 and desk.new.latest().state == SB and desk.new.pods
    with pytest.raises(ValueError, match="still has 1 pod"):  # scaled to 0, but its pod not gone yet
        H.release(desk.handover, H.VersionView("1.0", 0, pods=(H.PodView("old-0", True),)), {PAIR: 7.0}, desk.now)
    assert not desk.old.pods
    desk.handover = H.release(desk.handover, desk.old.view(), {PAIR: 6.0}, desk.now)  # as reconciled at the broker
    desk.book = 6.0
    desk.reconcile()  # ACTIVATING_NEW: the stopped version is never started again
    desk.settle("old")
    assert desk.old.replicas == 0 and not desk.old.pods
    good_day(desk)
    assert desk.handover.step == H.Step.DONE and desk.new.latest().starting_position == 6.0
    assert desk.old.replicas == 0 and not desk.old.pods


def test_open_orders_must_be_cancelled_before_the_handover():
    desk = Desk(1, [7.0, 0, 0], [2, 0, 0], A, persist_first=False)
    desk.checks = "pass"
    desk.reconcile()
    desk.settle("new")
    desk.become_ready("new", 0)
    desk.apply("new", 0, cancel=True, honest=True)
    desk.reconcile()
    assert desk.handover.step == H.Step.HALTING_OLD
    desk.reconcile()  # the old version told HALTED
    desk.apply("old", 0, cancel=False, honest=True)  # acknowledged, but two orders still work
    desk.reconcile()
    assert desk.handover.step == H.Step.HALTING_OLD
    desk.apply("old", 0, cancel=True, honest=True)
    desk.reconcile()
    assert desk.handover.step == H.Step.ACTIVATING_NEW and desk.handover.book == {PAIR: 7.0}


def test_a_new_version_confirming_another_position_halts_both():
    desk = Desk(1, [7.0, 0, 0], [0, 0, 0], A, persist_first=False)
    good_day(desk, honest=False)
    assert (
        desk.handover.step == H.Step.FAILED
        and "position mismatch: 1.0 handed over EURUSD 7, 2.0 reports EURUSD 8" in desk.handover.reason
    )
    desk.reconcile()
    assert desk.old.latest().state == HALT and desk.new.latest().state == HALT


def test_no_handover_from_a_halted_version():
    with pytest.raises(ValueError, match="only ACTIVE or REDUCING trade"):
        H.start(H.VersionView("1.0", 1), "2.0", HALT, T0)


def test_a_cancelled_handover_gives_the_old_version_its_own_state_back_and_blocks_nothing():
    desk = Desk(1, [5.0, 0, 0], [0, 0, 0], A, persist_first=False)
    desk.checks = "pass"
    desk.reconcile()
    desk.settle("new")
    desk.become_ready("new", 0)
    desk.apply("new", 0, cancel=True, honest=True)
    desk.reconcile()
    desk.reconcile()  # HALTING_OLD: the old version told HALTED
    assert desk.handover.step == H.Step.HALTING_OLD and desk.old.latest().state == HALT
    desk.handover = H.cancel(desk.handover, "version 3.0 named meanwhile", desk.now)
    desk.reconcile()
    assert desk.old.latest().state == A and desk.old.replicas == 1
    assert desk.new.replicas == 0 and desk.new.latest().state == SB
    assert not H.plan(desk.handover).block_new and H.plan(desk.handover).incident is None


def test_a_handover_that_handed_trading_over_is_not_cancelled():
    h = H.Handover("1.0", "2.0", A, T0, step=H.Step.ACTIVATING_NEW, book={PAIR: 1.0})
    with pytest.raises(ValueError, match="may hold the position"):
        H.cancel(h, "kill", T0)
