"""Incidents: how a human acknowledges and resolves one (pure decisions).

A resolve needs the postmortem (root cause, actions, owner) in spec.postmortem; it is refused
otherwise, with the reason. Resolved incidents are kept: the operator never deletes history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stratops.models.incident import IncidentSpec, IncidentStatus, Step

ACK, RESOLVE = "stratops.io/ack", "stratops.io/resolve"


def decide_incident(spec: IncidentSpec, status: IncidentStatus, annotations: dict[str, str], now: datetime,
                    parse: Any) -> tuple[IncidentStatus, list[str], list[tuple[str, str, str]]]:
    """(new status, annotations to remove, events (type, reason, message))."""
    st = status.model_copy(deep=True)
    st.phase = st.phase or "Open"
    clear: list[str] = []
    events: list[tuple[str, str, str]] = []
    steps = st.steps.model_copy() if st.steps else None
    if ACK in annotations:
        clear.append(ACK)
        cmd = parse("ack", annotations[ACK])
        if st.phase in (None, "Open"):
            st.phase = "Acknowledged"
            st.acknowledged_by = cmd.by
            events.append(("Normal", "Acknowledged", f"acknowledged by {cmd.by}"))
    if RESOLVE in annotations:
        clear.append(RESOLVE)
        cmd = parse("resolve", annotations[RESOLVE])
        if st.phase == "Resolved":
            pass
        elif spec.postmortem is None:
            st.message = (f"resolve by {cmd.by} refused: spec.postmortem (rootCause, actions, owner) is required "
                          "before an incident can be resolved")
            events.append(("Warning", "ResolveRefused", st.message))
        else:
            from stratops.models.incident import Steps

            steps = steps or Steps()
            if steps.containment is None:
                steps.containment = Step(at=now, by=cmd.by, detail="contained (recorded at resolution)")
            steps.postmortem = Step(at=now, by=cmd.by, detail=f"root cause: {spec.postmortem.root_cause}; owner {spec.postmortem.owner}")
            st.steps = steps
            st.phase = "Resolved"
            st.resolved_at, st.resolved_by = now, cmd.by
            st.resolution = cmd.reason or "resolved"
            st.message = None
            events.append(("Normal", "Resolved", f"resolved by {cmd.by}: {st.resolution}"))
    return st, clear, events
