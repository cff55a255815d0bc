"""The Gate controller: a gate's status (signed, missing, expiry, state) and its signatures'
audit lines, re-evaluated on change and at expiry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stratops import metrics as M
from stratops.controller.runtime import SAFETY_NET_SECONDS, Runtime, strategy_key
from stratops.models.gate import GateSpec, GateStatus
from stratops.models.strategy import StrategySpec


def gate_status(raw: dict[str, Any], strategies: dict[Any, tuple[Any, ...]], rt: Runtime) -> float:
    """Write the gate's status if it changed; seconds until it should be looked at again."""
    from stratops.gates.evaluate import evaluate, subject_for
    from stratops.models.gate import Cadence

    meta = raw["metadata"]
    spec = GateSpec.model_validate(raw.get("spec") or {})
    now = datetime.now(UTC)
    subjects: tuple[str, ...] = ()
    if spec.cadence == Cadence.pre_launch:
        found = []
        for s in spec.strategies:
            entry = next(iter(strategies.get(strategy_key(meta["namespace"], s), [])), None)
            if entry is not None:
                sspec = StrategySpec.model_validate(entry["spec"])
                found.append(subject_for(s, sspec))
        subjects = tuple(found)
    ev = evaluate(spec, now, subjects)
    from stratops.audit import Head, link, signature_entries, signature_key
    from stratops.models.audit import AuditHead

    current = GateStatus.model_validate(raw.get("status") or {})
    # A re-signed item replaces its signature in the Gate: every one goes into the audit chain,
    # once (its key), with the new head and the lines in the status write (stratops.k8s.audit).
    sigs = (raw.get("spec") or {}).get("signatures") or []
    keys = [signature_key(s) for s in sigs]
    new_sigs = [s for s, k in zip(sigs, keys, strict=True) if k not in set(current.audited_signatures or [])]
    lines: list[str] = []
    head = current.audit or AuditHead()
    if new_sigs:
        lines, h = link(Head.of(head.model_dump()), signature_entries(meta["name"], spec.cadence.value, new_sigs, now))
        head = AuditHead(seq=h.seq, hash=h.hash, pending=lines)
    status = GateStatus(
        audited_signatures=keys or None,
        audit=head if head.seq else None,
        state=ev.state,
        signed=ev.summary,
        signed_items=ev.signed or None,
        missing_items=ev.missing or None,
        signers=list(ev.signers) or None,
        expires_at=ev.expires_at,
        observed_generation=int(meta.get("generation") or 0),
        message=(ev.why_not() or "every required item signed")
        + (f"; expired {', '.join(ev.expired)}" if ev.expired else ""),
    )
    M.GATE_COMPLETE.labels(meta["namespace"], meta["name"], spec.cadence.value).set(1 if ev.state == "Complete" else 0)
    if ev.expires_at is not None:
        M.GATE_EXPIRY.labels(meta["namespace"], meta["name"], spec.cadence.value).set(ev.expires_at.timestamp())
    if status.to_dict() != current.to_dict():
        rt.executor.write_gate_status(meta["namespace"], meta["name"], status)
    if lines or (current.audit and current.audit.pending and (meta["namespace"], meta["name"]) not in rt.audit_synced):
        # After a restart, the last lines again: a crash may have come between status and trail.
        rt.executor.audit.append(meta["namespace"], "Gate", meta["name"], lines or current.audit.pending or [])  # type: ignore[union-attr]
    rt.audit_synced.add((meta["namespace"], meta["name"]))
    if ev.expires_at is not None:
        return max(1.0, min((ev.expires_at - now).total_seconds() + 0.5, SAFETY_NET_SECONDS))
    return SAFETY_NET_SECONDS
