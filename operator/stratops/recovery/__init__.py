"""Incidents, the recovery tree and the runbooks: the operational core as data the operator
and the CLI share. Pure: nothing here talks to a cluster.

This module holds how a human moves an Incident: acknowledge, contain, resolve. A resolve
needs the postmortem (root cause, actions, owner) in spec.postmortem and is refused without it.
Resolved incidents are kept: the operator never deletes history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stratops.models.incident import IncidentSpec, IncidentStatus, Step, Steps

ACK, CONTAIN, RESOLVE = "stratops.io/ack", "stratops.io/contain", "stratops.io/resolve"


def decide_incident(
    spec: IncidentSpec, status: IncidentStatus, annotations: dict[str, str], now: datetime, parse: Any
) -> tuple[IncidentStatus, list[str], list[tuple[str, str, str]]]:
    """(new status, annotations to remove, events (type, reason, message))."""
    st = status.model_copy(deep=True)
    st.phase = st.phase or "Open"
    clear: list[str] = []
    events: list[tuple[str, str, str]] = []
    steps = st.steps.model_copy() if st.steps else Steps()

    def attributable(key: str, cmd: Any) -> bool:
        # A command nobody can be held to is refused, never recorded as by "unknown".
        if cmd.by:
            return True
        events.append(("Warning", "InvalidCommand", cmd.error or f"{key}: not attributable"))
        return False

    if ACK in annotations:
        clear.append(ACK)
        cmd = parse("ack", annotations[ACK])
        if not attributable(ACK, cmd):
            pass
        elif st.acknowledged_by is None and st.phase != "Resolved":
            st.acknowledged_by = cmd.by
            if st.phase == "Open":
                st.phase = "Acknowledged"
            events.append(("Normal", "Acknowledged", f"acknowledged by {cmd.by}"))
    if CONTAIN in annotations:
        clear.append(CONTAIN)
        cmd = parse("contain", annotations[CONTAIN])
        if not attributable(CONTAIN, cmd):
            pass
        elif st.phase != "Resolved" and steps.containment is None:
            steps.containment = Step(at=now, by=cmd.by, detail=cmd.reason or "contained (confirmed by hand)")
            st.steps = steps
            st.phase = "Contained"
            events.append(("Normal", "Contained", f"containment confirmed by {cmd.by}: {steps.containment.detail}"))
    if RESOLVE in annotations:
        clear.append(RESOLVE)
        cmd = parse("resolve", annotations[RESOLVE])
        if not attributable(RESOLVE, cmd) or st.phase == "Resolved":
            pass
        elif spec.postmortem is None:
            st.message = (
                f"resolve by {cmd.by} refused: spec.postmortem (rootCause, actions, owner) is required "
                "before an incident can be resolved"
            )
            events.append(("Warning", "ResolveRefused", st.message))
        else:
            if steps.containment is None:
                # The resolver attests it: nobody resolves an incident that is still spreading.
                steps.containment = Step(at=now, by=cmd.by, detail=f"contained (confirmed by {cmd.by} at resolution)")
            steps.postmortem = Step(
                at=now, by=cmd.by, detail=f"root cause: {spec.postmortem.root_cause}; owner {spec.postmortem.owner}"
            )
            st.steps = steps
            st.phase = "Resolved"
            st.resolved_at, st.resolved_by = now, cmd.by
            st.resolution = cmd.reason or "resolved"
            st.message = None
            events.append(("Normal", "Resolved", f"resolved by {cmd.by}: {st.resolution}"))
    return st, clear, events
