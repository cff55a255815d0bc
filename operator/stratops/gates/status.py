"""A gate's status from its spec, its status as stored and the subjects its pre-launch
signatures must name (pure): the evaluation (stratops.gates.evaluate), and every signature not
yet in the audit chain linked into it, once (its key), with the new head and the lines carried
in the status write (stratops.k8s.audit writes them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stratops.audit import Head, link, signature_entries, signature_key, still_pending
from stratops.gates.evaluate import GateEvaluation, evaluate
from stratops.models.audit import AuditHead
from stratops.models.gate import GateSpec, GateStatus


@dataclass(frozen=True)
class GateDecision:
    status: GateStatus  # what status must say now
    evaluation: GateEvaluation
    lines: list[str]  # audit lines for the signatures new since the last status


def decide_gate(
    name: str,
    generation: int,
    spec: GateSpec,
    raw_spec: dict[str, Any],
    current: GateStatus,
    subjects: tuple[str, ...],
    now: datetime,
    confirmed: int = 0,
) -> GateDecision:
    """The status of gate NAME at NOW. RAW_SPEC is the spec as stored: a signature's audit key
    is computed from it exactly as signed. CONFIRMED: the highest seq known to be in the gate's
    trail (earlier lines above it stay pending with the new ones)."""
    ev = evaluate(spec, now, subjects)
    # A re-signed item replaces its signature in the Gate: every one goes into the audit chain.
    sigs = raw_spec.get("signatures") or []
    keys = [signature_key(s) for s in sigs]
    audited = set(current.audited_signatures or [])
    new_sigs = [s for s, k in zip(sigs, keys, strict=True) if k not in audited]
    lines: list[str] = []
    head = current.audit or AuditHead()
    if new_sigs:
        lines, h = link(Head.of(head.model_dump()), signature_entries(name, spec.cadence.value, new_sigs, now))
        head = AuditHead(seq=h.seq, hash=h.hash, pending=still_pending(head.pending, confirmed, lines))
    status = GateStatus(
        audited_signatures=keys or None,
        audit=head if head.seq else None,
        state=ev.state,
        signed=ev.summary,
        signed_items=ev.signed or None,
        missing_items=ev.missing or None,
        signers=list(ev.signers) or None,
        expires_at=ev.expires_at,
        observed_generation=generation,
        message=(ev.why_not() or "every required item signed")
        + (f"; expired {', '.join(ev.expired)}" if ev.expired else ""),
    )
    return GateDecision(status=status, evaluation=ev, lines=lines)


def wake_in(ev: GateEvaluation, now: datetime, ceiling: float) -> float:
    """Seconds until the gate must be looked at again: just after its next expiry, at most CEILING."""
    if ev.expires_at is not None:
        return max(1.0, min((ev.expires_at - now).total_seconds() + 0.5, ceiling))
    return ceiling
