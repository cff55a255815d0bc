"""The kill path when the whole decision cannot be made. Pure.

`decide()` reads everything about a strategy: its spec, gates, monitors, incidents, acks. If any
of that cannot be read or evaluated in a way nothing else caught (a defect, data nobody thought
of), the reconcile fails before it writes anything, and a kill given meanwhile would wait for a
fix. This module decides the halt from what the kill path needs and nothing more: the
Strategy's name and status, its command annotations and the operator's own control document.
HALTED (with zero limits), the latch in status, and a scale to 0 at once: it cannot wait for
acknowledgements it may not be able to read. Once the full decision works again, `decide()`
takes over from the latch as from any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stratops.audit import Head, link, still_pending, strategy_entries
from stratops.lifecycle.control import BrokerInUse, ControlDocument
from stratops.lifecycle.types import Event
from stratops.models.strategy import EffectiveLimits, KillSwitchStatus, Mode, TradingState

CONDITION = "ReconcileError"


@dataclass(frozen=True)
class Halt:
    """What to write when the decision cannot be made."""

    control: ControlDocument | None  # HALTED, when the document in force is not already
    scale_to_zero: bool
    status: dict[str, Any]  # the status to store (the one read, with the latch and the condition)
    message: str


def _condition(status: dict[str, Any], now: datetime, error: str, generation: int) -> list[dict[str, Any]]:
    conds = [c for c in status.get("conditions") or [] if c.get("type") != CONDITION]
    prev = next((c for c in status.get("conditions") or [] if c.get("type") == CONDITION), None)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == "True" else now.isoformat()
    return [
        *conds,
        {
            "type": CONDITION,
            "status": "True",
            "reason": "CannotDecide",
            "message": error[:1024],
            "lastTransitionTime": since,
            "observedGeneration": generation,
        },
    ]


def when_undecidable(
    name: str,
    generation: int,
    status: dict[str, Any],
    kill: Any | None,
    control: ControlDocument | None,
    now: datetime,
    error: str,
    stopped: bool = False,
) -> Halt:
    """The halt (or only the report) for a strategy whose decision failed with ERROR. KILL: the
    parsed kill command on the object, if any (stratops.lifecycle.commands.parse_command).
    STOPPED: its Deployment is at 0 replicas with no pod left (the halt is complete)."""
    out = {**status, "conditions": _condition(status, now, error, generation)}
    ks = dict(status.get("killSwitch") or {})
    latched = bool(ks.get("latched"))
    if kill is not None and not kill.error and not latched:
        ks = KillSwitchStatus(
            latched=True,
            reason=kill.reason,
            by=kill.by,
            at=now,
            decision=str(kill.fields.get("decision") or kill.id),
            scope=str(kill.fields.get("scope") or "strategy"),
        ).to_dict()
        latched = True
    if not latched:
        return Halt(None, False, out, f"cannot decide ({error}); nothing to halt")
    doc = None
    if control is None or control.trading_state != TradingState.HALTED:
        prev = max(control.generation if control else 0, int((status.get("control") or {}).get("generation") or 0))
        doc = ControlDocument(
            strategy=name,
            generation=prev + 1,
            trading_state=TradingState.HALTED,
            mode=control.mode if control else Mode.paper,
            limits=EffectiveLimits(max_position=0, max_order_rate=0, max_daily_loss=0),
            broker=control.broker if control else BrokerInUse(name="none", endpoint="none://halted"),
            reason=f"kill-switch: {ks.get('reason') or 'latched'}",
            issued_at=now,
        )
    halted_gen = doc.generation if doc else (control.generation if control else None)
    ks = {**ks, "haltGeneration": ks.get("haltGeneration") or halted_gen}
    if stopped and doc is None and not ks.get("completedAt"):
        # Acknowledgements were not read: whether the pods applied HALTED before they went is unknown.
        ks.update(completedAt=now.isoformat(), acknowledged=ks.get("acknowledged"))
    out.update(killSwitch=ks, tradingState=TradingState.HALTED.value)
    if doc is not None:
        out["control"] = {**(status.get("control") or {}), "generation": doc.generation, "hash": doc.content_hash()}
    return Halt(doc, True, out, f"cannot decide ({error}): halted without it (HALTED, scaled to 0 at once)")


def kill_taken_up(name: str, halt: Halt, kill: Any, why: str, now: datetime, confirmed: int) -> tuple[Event, list[str]]:
    """A kill carried out without the decision (HALT latched KILL), put on the record as a
    decision records one: taken up (`handledCommands`, so the decision that comes later does not
    take it again), and its KillSwitch Event's entry linked into the status's audit chain,
    pending (with earlier lines the trail is not known to hold, above CONFIRMED) until the trail
    holds it. Returns the Event and the lines pending, the Event's entry last."""
    halt.status["handledCommands"] = {**(halt.status.get("handledCommands") or {}), "kill": kill.id}
    event = Event("Warning", "KillSwitch", f"kill-switch engaged by {kill.by}: {kill.reason} ({why})")
    prior = halt.status.get("audit") or {}
    lines, head = link(Head.of(prior), strategy_entries(name, [event], halt.status, now))
    pending = still_pending(prior.get("pending"), confirmed, lines)
    halt.status["audit"] = {**head.to_dict(), "pending": pending}
    return event, pending
