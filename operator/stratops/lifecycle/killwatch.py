"""The kill watch: a kill lands even while kopf's handlers act on nothing. Pure.

Every other path to a kill goes through kopf: its watch streams, its per-object workers, the
strategy's daemon. A start that stalls (README: "the start stall") or a handler held for its
indexes would leave a kill waiting. The operator runs a watch of its own next to kopf
(stratops.k8s.killwatch): a kill command that the Strategy's status has not taken up within a
grace period is carried out by the halt of stratops.lifecycle.halt, without kopf. This module
decides which commands are waiting and when one is overdue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stratops.lifecycle.commands import ANNOTATION_PREFIX, Command, parse_command

KILL_ANNOTATION = ANNOTATION_PREFIX + "kill"
#: A reconcile takes a kill up in about a second; this is the margin before the watch acts.
DEFAULT_GRACE_SECONDS = 10.0
#: Why the halt was made without the decision: the Strategy's ReconcileError condition says so.
WHY = "the kill waited {grace:.0f}s for a reconcile that did not come: carried out by the kill watch"


@dataclass(frozen=True)
class Waiting:
    """A kill command seen on a Strategy whose status has not taken it up."""

    command: str  # its id (stratops.lifecycle.commands.Command.id)
    seen_at: float  # monotonic seconds, when the watch first saw it


def waiting_kill(strategy: Mapping[str, Any]) -> Command | None:
    """The kill command on STRATEGY that its status has not taken up, if any. None for a
    Strategy being deleted, an unreadable command (the reconcile reports it), a kill-switch
    already latched (its completion is the reconcile's, or the halt path's), or a command
    already carried out (status.handledCommands: only its annotation is left to remove)."""
    meta = strategy.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(KILL_ANNOTATION)
    if raw is None or meta.get("deletionTimestamp"):
        return None
    cmd = parse_command("kill", raw)
    if cmd.error:
        return None
    status = strategy.get("status") or {}
    if (status.get("killSwitch") or {}).get("latched") or (status.get("handledCommands") or {}).get("kill") == cmd.id:
        return None
    return cmd


def seen(waiting: dict[Any, Waiting], key: Any, strategy: Mapping[str, Any], now: float) -> None:
    """Track KEY's kill in WAITING from one observation of STRATEGY: a new command starts its
    clock, the same one keeps it, none (taken up, withdrawn, deleted) forgets it."""
    cmd = waiting_kill(strategy)
    if cmd is None:
        waiting.pop(key, None)
    elif (prev := waiting.get(key)) is None or prev.command != cmd.id:
        waiting[key] = Waiting(cmd.id, now)


def overdue(waiting: Mapping[Any, Waiting], now: float, grace: float) -> list[Any]:
    """The keys whose kill has waited GRACE seconds or more, longest first."""
    late = [(w.seen_at, k) for k, w in waiting.items() if now - w.seen_at >= grace]
    return [k for _, k in sorted(late, key=lambda p: p[0])]
