"""The Gate controller: a gate's status (signed, missing, expiry, state) and its signatures'
audit lines, re-evaluated on change and at expiry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stratops import metrics as M
from stratops.controller.runtime import SAFETY_NET_SECONDS, Runtime, strategy_key
from stratops.gates.evaluate import subject_for
from stratops.gates.status import decide_gate, wake_in
from stratops.models.gate import Cadence, GateSpec, GateStatus
from stratops.models.strategy import StrategySpec

#: How soon a gate whose status write met a newer object is decided again (its event pokes
#: the daemon sooner).
STALE_RETRY_SECONDS = 0.5


def gate_status(raw: dict[str, Any], strategies: dict[Any, tuple[Any, ...]], rt: Runtime) -> float:
    """Write the gate's status if it changed; seconds until it should be looked at again."""
    meta = raw["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec = GateSpec.model_validate(raw.get("spec") or {})
    now = datetime.now(UTC)
    subjects: tuple[str, ...] = ()
    if spec.cadence == Cadence.pre_launch:
        found = []
        for s in spec.strategies:
            entry = next(iter(strategies.get(strategy_key(ns, s), [])), None)
            if entry is not None:
                found.append(subject_for(s, StrategySpec.model_validate(entry["spec"])))
        subjects = tuple(found)
    current = GateStatus.model_validate(raw.get("status") or {})
    # The last decision's lines first (after a takeover or a failed append): then what the trail
    # holds is known, and this decision keeps pending only what it does not.
    rt.executor.audit.catch_up(ns, "Gate", name, (raw.get("status") or {}).get("audit"))
    confirmed = rt.executor.audit.confirmed(ns, "Gate", name)
    generation = int(meta.get("generation") or 0)
    d = decide_gate(name, generation, spec, raw.get("spec") or {}, current, subjects, now, confirmed)
    ev = d.evaluation
    M.GATE_COMPLETE.labels(ns, name, spec.cadence.value).set(1 if ev.state == "Complete" else 0)
    if ev.expires_at is not None:
        M.GATE_EXPIRY.labels(ns, name, spec.cadence.value).set(ev.expires_at.timestamp())
    if d.status.to_dict() != current.to_dict() and not rt.executor.write_gate_status(
        ns, name, d.status, meta.get("resourceVersion")
    ):
        # Changed since it was read (a signature, or this operator's own last write not seen
        # yet): decided again on the object as it is now, and nothing of this decision is kept.
        return STALE_RETRY_SECONDS
    if d.lines:
        rt.executor.audit.append(ns, "Gate", name, (d.status.audit.pending if d.status.audit else None) or d.lines)
    return wake_in(ev, now, SAFETY_NET_SECONDS)
