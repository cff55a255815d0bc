"""Warm handover from the version that trades to a new one, as a pure state machine.

A version change on a trading strategy runs the new version's pods beside the old ones, on
STANDBY (connected, model loaded, Ready, sending nothing), and then hands trading authority
over in one ordered step: the old version HALTED, its acknowledgement with open orders
cancelled and its position reported; the new one given the old one's trading state and that
position; its acknowledgement confirming the same position; the old version scaled to 0.

At no moment may both versions send orders. The machine keeps that by construction: each step
changes what at most one version may do, and a version is handed trading only once every pod of
the other has acknowledged that it stopped. Everything that goes wrong falls to the safe side:

- the new version never Ready, or failing the rollout's checks, by the deadline: it is scaled
  to 0 and blocked, and the old one never stops trading (Aborted);
- the old version not acknowledging HALTED in time: it is scaled to 0 as a kill-switch would
  be, and the new one stays on STANDBY until a person decides (Held);
- the new version not acknowledging, or confirming another position: both HALTED (Failed), a
  P0 for a position mismatch;
- a handover overtaken before the new version is handed trading (a kill-switch, another version
  named): the old version keeps (or gets back) its own trading state, the new one goes, nothing
  is blocked (Cancelled).

The position handed over is the version's book: signed quantity by instrument, summed over its
pods (a strategy with several replicas splits its book between them as it chooses; the handover
compares the sums).

`advance` is the only transition function: the step it returns depends on nothing but the
recorded handover and what is observed, so an operator that restarts anywhere computes the same
step again and finishes (or falls back) once. `plan` says what each step wants of the cluster
(each version's trading state and replica count), again as a function of the step alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from stratops.models.strategy import TradingState


class Step(str, Enum):
    STANDBY = "Standby"  # new pods starting beside the old ones, on STANDBY; the old version trades
    HALTING_OLD = "HaltingOld"  # the old version told HALTED; waiting for every old pod's acknowledgement
    ACTIVATING_NEW = "ActivatingNew"  # the new version handed trading and the position; waiting for its acknowledgement
    DONE = "Done"  # the new version trades; the old one is scaled to 0
    ABORTED = "Aborted"  # the new version failed before the handover: scaled to 0 and blocked; the old one trades on
    HELD = (
        "Held"  # the old version did not acknowledge HALTED: scaled to 0; the new one on STANDBY until a person decides
    )
    FAILED = "Failed"  # the new version did not take over as told: both HALTED, an incident open
    CANCELLED = "Cancelled"  # overtaken before the new version was handed trading; the old one trades on


TERMINAL = frozenset({Step.DONE, Step.ABORTED, Step.HELD, Step.FAILED, Step.CANCELLED})
#: The steps during which both versions' pods run (the Deployment keeps the old ones up).
BOTH_RUN = frozenset({Step.STANDBY, Step.HALTING_OLD, Step.ACTIVATING_NEW})
Book = Mapping[str, float]
Checks = Literal["pass", "fail", "pending"]


@dataclass(frozen=True)
class PodView:
    """One pod as observed: Ready, and its last acknowledgement (None: none yet)."""

    name: str
    ready: bool = False
    ack_generation: int | None = None
    ack_state: TradingState | None = None
    book: Book | None = None
    open_orders: int | None = None


@dataclass(frozen=True)
class VersionView:
    """One version as observed: the control document in force for it (its generation and
    state; 0 and None before one is written), its desired replicas and its pods."""

    version: str
    replicas: int
    generation: int = 0
    state: TradingState | None = None
    pods: tuple[PodView, ...] = ()

    def acknowledged(self, state: TradingState) -> bool:
        """Whether the document in force says STATE and every expected pod has acknowledged it."""
        return (
            self.state == state
            and self.replicas > 0
            and len(self.pods) == self.replicas
            and all(
                p.ack_generation is not None and p.ack_generation >= self.generation and p.ack_state == state
                for p in self.pods
            )
        )

    def ready(self) -> bool:
        return self.replicas > 0 and len(self.pods) == self.replicas and all(p.ready for p in self.pods)

    def book(self) -> dict[str, float] | None:
        """The version's book, as its pods report it (summed by instrument); None while one has not."""
        if any(p.book is None for p in self.pods):
            return None
        instruments = sorted({i for p in self.pods for i in p.book or {}})
        return {i: math.fsum((p.book or {}).get(i, 0.0) for p in self.pods) for i in instruments}


@dataclass(frozen=True)
class Deadlines:
    rollout: timedelta  # the new version Ready, on STANDBY and through its checks (spec.rollbackPolicy.rolloutDeadline)
    acknowledgement: timedelta  # each version's acknowledgement of its part (spec.killSwitch.ackDeadline)


@dataclass(frozen=True)
class Handover:
    """A handover as recorded in the strategy's status."""

    from_version: str
    to_version: str
    trading_state: TradingState  # the state the old version traded in, which the new one takes over
    started_at: datetime
    step: Step = Step.STANDBY
    step_at: datetime | None = None  # when the current step began (started_at for the first)
    book: Book | None = None  # what the old version reported in its HALTED acknowledgement
    reason: str = ""  # why the handover ended where it did (terminal steps)
    # The old version was scaled to 0 as a kill-switch would (HELD): it stays at 0 after a
    # person releases the handover, whatever follows. Scaled up again, it would start pods of a
    # version that was stopped for not acknowledging HALTED.
    old_stopped: bool = False

    def since(self) -> datetime:
        return self.step_at or self.started_at


def start(old: VersionView, to_version: str, trading_state: TradingState, now: datetime) -> Handover:
    """A handover from OLD (trading in TRADING_STATE) to TO_VERSION. Only a version that may
    trade is handed over warm; a halted one has nothing to hand over (a plain rollout does)."""
    if trading_state not in (TradingState.ACTIVE, TradingState.REDUCING):
        raise ValueError(f"no handover from a version in {trading_state.value}: only ACTIVE or REDUCING trade")
    return Handover(from_version=old.version, to_version=to_version, trading_state=trading_state, started_at=now)


def _to(h: Handover, step: Step, now: datetime, **kw: object) -> Handover:
    return replace(h, step=step, step_at=now, **kw)  # type: ignore[arg-type]


def same_book(a: Book, b: Book) -> bool:
    """Whether A and B hold the same quantity of every instrument (absent: flat)."""
    return all(math.isclose(a.get(i, 0.0), b.get(i, 0.0), rel_tol=1e-9, abs_tol=1e-9) for i in set(a) | set(b))


def describe_book(book: Book) -> str:
    return ", ".join(f"{i} {q:g}" for i, q in sorted(book.items()) if q) or "flat"


def advance(
    h: Handover, old: VersionView, new: VersionView, checks: Checks, now: datetime, deadlines: Deadlines
) -> Handover:
    """The handover's next step from what is observed now (H itself when nothing moved)."""
    if h.step in TERMINAL:
        return h
    waited = now - h.since()
    if checks == "fail" and h.step in (Step.STANDBY, Step.HALTING_OLD):
        # Not yet handed trading: the old version gets its own state back (it may have been told
        # HALTED already; it was never told to stop for good).
        return _to(h, Step.ABORTED, now, reason=f"version {h.to_version} failed its rollout checks on STANDBY")
    if h.step == Step.STANDBY:
        if new.ready() and new.acknowledged(TradingState.STANDBY) and checks == "pass":
            return _to(h, Step.HALTING_OLD, now)
        if now - h.started_at >= deadlines.rollout:
            why = (
                "not Ready"
                if not new.ready()
                else "STANDBY not acknowledged"
                if not new.acknowledged(TradingState.STANDBY)
                else "rollout checks not passed"
            )
            return _to(h, Step.ABORTED, now, reason=f"version {h.to_version} {why} within {_s(deadlines.rollout)}")
        return h
    if h.step == Step.HALTING_OLD:
        position = old.book()
        if old.acknowledged(TradingState.HALTED) and position is not None and all(p.open_orders == 0 for p in old.pods):
            return _to(h, Step.ACTIVATING_NEW, now, book=position)
        if waited >= deadlines.acknowledgement:
            missing = (
                "HALTED not acknowledged by every pod"
                if not old.acknowledged(TradingState.HALTED)
                else "position not reported"
                if position is None
                else "open orders not cancelled"
            )
            return _to(
                h,
                Step.HELD,
                now,
                old_stopped=True,
                reason=f"version {h.from_version}: {missing} within {_s(deadlines.acknowledgement)}; "
                f"scaled to 0, {h.to_version} stays on STANDBY until a person decides",
            )
        return h
    # ACTIVATING_NEW
    assert h.book is not None
    if new.acknowledged(h.trading_state):
        got = new.book()
        if got is not None and not same_book(got, h.book):
            return _to(
                h,
                Step.FAILED,
                now,
                reason=f"position mismatch: {h.from_version} handed over {describe_book(h.book)}, "
                f"{h.to_version} reports {describe_book(got)}",
            )
        if got is not None:
            return _to(h, Step.DONE, now)
    if waited >= deadlines.acknowledgement:
        return _to(
            h,
            Step.FAILED,
            now,
            reason=f"version {h.to_version} did not acknowledge {h.trading_state.value} "
            f"with the position within {_s(deadlines.acknowledgement)}",
        )
    return h


def release(h: Handover, old: VersionView, book: Book, now: datetime) -> Handover:
    """A person's decision on a HELD handover: hand trading to the new version after all, from
    BOOK (a reconciliation's: the old version never reported one). Only once no pod of the old
    version is left (scaled to 0 as by a kill-switch): until then it may still be trading."""
    if h.step != Step.HELD:
        raise ValueError(f"only a held handover is released, not one in {h.step.value}")
    if old.pods:
        raise ValueError(f"version {h.from_version} still has {len(old.pods)} pod(s): they may still trade")
    bad = sorted(i for i, q in book.items() if not math.isfinite(q))
    if bad:
        raise ValueError(f"the book's quantities must be finite numbers: {', '.join(bad)}")
    return _to(h, Step.ACTIVATING_NEW, now, book=dict(book), reason="")


def cancel(h: Handover, reason: str, now: datetime, kill: bool = False) -> Handover:
    """The handover overtaken (another version named) while the new version has not been handed
    trading: the old version trades on (or gets its own state back), nothing is blocked. From
    ACTIVATING_NEW on, the new version may hold the position: only a KILL (which halts both and
    scales both to 0) ends it there, or a held one."""
    allowed = {Step.STANDBY, Step.HALTING_OLD} | ({Step.ACTIVATING_NEW, Step.HELD} if kill else set())
    if h.step not in allowed:
        raise ValueError(f"a handover in {h.step.value} is not cancelled: the new version may hold the position")
    return _to(h, Step.CANCELLED, now, reason=reason)


@dataclass(frozen=True)
class VersionPlan:
    """What a step wants of one version: its control document's trading state (None: the
    strategy's own, as the operator decides it outside a handover: ACTIVE, or a throttle's
    REDUCING, or a kill's HALTED; never "whatever the document says now", since an operator that
    wrote a step's documents and died before recording the step may have left a HALTED the
    recorded step never asked for), the position to hand over, and its replicas (None: the
    spec's). No document of a handover allows risk-reducing orders: HALTED means only cancels."""

    state: TradingState | None
    replicas: int | None = None
    starting_book: Book | None = None


@dataclass(frozen=True)
class Plan:
    old: VersionPlan
    new: VersionPlan
    block_new: bool = False  # the new version is blocked (as a failed rollout's is)
    incident: str | None = None  # why an incident opens (the step's reason)


def plan(h: Handover) -> Plan:
    """What step H wants of the cluster. The old version's document is the strategy's own
    (trading) until HALTED is asked of it, and again after an abort; the new one's says STANDBY
    until trading is handed over."""
    standby = VersionPlan(TradingState.STANDBY)
    halted = VersionPlan(TradingState.HALTED, replicas=0 if h.old_stopped else None)
    if h.step == Step.STANDBY:
        return Plan(old=VersionPlan(None), new=standby)
    if h.step == Step.HALTING_OLD:
        return Plan(old=halted, new=standby)
    if h.step == Step.ACTIVATING_NEW:
        return Plan(old=halted, new=VersionPlan(h.trading_state, starting_book=h.book))
    if h.step == Step.DONE:
        return Plan(
            old=VersionPlan(TradingState.HALTED, replicas=0),
            new=VersionPlan(h.trading_state, starting_book=h.book),
        )
    if h.step == Step.CANCELLED:
        return Plan(old=VersionPlan(None), new=VersionPlan(TradingState.STANDBY, replicas=0))
    if h.step == Step.ABORTED:
        # STANDBY, not HALTED, while it goes: HALTED lets cancels through, and it owns no order.
        return Plan(
            old=VersionPlan(None), new=VersionPlan(TradingState.STANDBY, replicas=0), block_new=True, incident=h.reason
        )
    if h.step == Step.HELD:
        return Plan(old=VersionPlan(TradingState.HALTED, replicas=0), new=standby, incident=h.reason)
    return Plan(old=halted, new=halted, incident=h.reason)  # FAILED: the new one may have orders to cancel


def _s(d: timedelta) -> str:
    return f"{d.total_seconds():g}s"
