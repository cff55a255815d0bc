"""The audit trail and the evidence pack. Pure: the cluster side is in stratops.k8s.audit and the
CLI's `stratops audit export` and `audit verify`.

Events expire (an hour by default), so what must last is persisted by the operator as audit
entries: one per operator decision (kill-switch, throttle, resume, rollback, rollout,
known-good, promotion, limits, failover, reconciliation, drift, runbook run) and per gate
signature seen. Each subject (a Strategy, a Gate) has one append-only chain of entries: each
entry carries its sequence number and the SHA-256 of the entry before it, so an entry edited,
deleted or inserted breaks the chain where it happened. The chain is kept in AuditSegment
objects, which only the operator may write (RBAC), rolled over before they grow large; its head
(the last sequence number and hash) is in the subject's status, also the operator's alone.
Nothing else is read as a record: a ConfigMap anyone can create is never evidence.

The evidence pack is built from the cluster's records only: Strategies, Gates, Incidents and
the verified chains; nothing comes from an operator's memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64  # what the first entry of a chain follows
SEGMENT_BYTES = 256 * 1024  # an AuditSegment rolls over before this (objects are limited to ~1.5 MiB)
MAX_ENTRY_BYTES = 32 * 1024  # one entry; a bigger record is cut, and says so
# For each event reason, the part of the Strategy's status that says who, why and what.
STATUS_OF = {
    "KillSwitch": "killSwitch",
    "KillSwitchCompleted": "killSwitch",
    "KillSwitchAgain": "killSwitch",
    "KillSwitchUnacknowledged": "killSwitch",
    "Throttle": "throttle",
    "Resume": "resume",
    "ResumeActive": "resume",
    "ResumeRefused": "message",
    "Rollback": "rollout",
    "RollbackAutomatic": "rollout",
    "RollbackRefused": "message",
    "RolloutFailed": "blockedVersions",
    "Rollout": "rollout",
    "KnownGood": "revisionHistory",
    "Promoted": "mode",
    "Demoted": "mode",
    "PromotionBlocked": "message",
    "PromotionWaits": "message",
    "BrokerFailover": "broker",
    "FailoverRefused": "message",
    "LimitsRaised": "effectiveLimits",
    "LimitsLowered": "effectiveLimits",
    "LimitsHeld": "effectiveLimits",
    "ReconciliationRecorded": "lastReconciliation",
    "ConfigDrift": "activeVersion",
    "Rearmed": "killSwitch",
    "FleetMismatch": "message",
}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def strategy_entries(name: str, events: Iterable[Any], status: dict[str, Any], at: datetime) -> list[dict[str, Any]]:
    """Audit entries for the events of one decision, each with the status section that holds
    its who and why (STATUS: the status just decided, as the API server will store it)."""
    out = []
    for ev in events:
        entry: dict[str, Any] = {
            "at": _iso(at),
            "kind": "Strategy",
            "name": name,
            "type": ev.type,
            "reason": ev.reason,
            "message": ev.message,
        }
        key = STATUS_OF.get(ev.reason)
        if getattr(ev, "record", None) is not None:
            entry["record"] = ev.record  # what the event carries itself (a runbook run)
        elif key and key in status:
            entry["record"] = {key: status[key]}
        out.append(entry)
    return out


def signature_key(s: dict[str, Any]) -> str:
    return f"{s['item']}|{s['signer']}|{s['signedAt']}|{s.get('subject') or ''}"


def signature_entries(
    gate: str, cadence: str, signatures: Iterable[dict[str, Any]], at: datetime
) -> list[dict[str, Any]]:
    """One entry per signature (a re-signed daily item replaces the signature in the Gate: its
    history lives only here)."""
    return [
        {
            "at": _iso(at),
            "kind": "Gate",
            "name": gate,
            "type": "Normal",
            "reason": "GateSigned",
            "message": f"{s['item']} signed by {s['signer']} at {s['signedAt']}",
            "cadence": cadence,
            "key": signature_key(s),
            "record": {"signature": s},
        }
        for s in signatures
    ]


def _parse(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def canonical(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


@dataclass(frozen=True)
class Head:
    """Where a chain ends: the last entry's sequence number and hash (seq 0: empty)."""

    seq: int = 0
    hash: str = GENESIS

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> Head:
        return cls(int((raw or {}).get("seq") or 0), str((raw or {}).get("hash") or GENESIS))


def _bounded(entry: dict[str, Any]) -> dict[str, Any]:
    if len(canonical(entry).encode()) <= MAX_ENTRY_BYTES:
        return entry
    # Cut the record, never the who, when and what: the rest is in the object's own status.
    cut = {k: v for k, v in entry.items() if k != "record"}
    cut["message"] = str(cut.get("message", ""))[:4096]
    cut["truncated"] = True
    return cut


#: The most entries a status keeps pending (the CRDs' maxItems for status.audit.pending).
PENDING_MAX = 100


def entry_seq(line: str) -> int:
    """A chain line's seq (0 when it is not one)."""
    try:
        return int(json.loads(line)["seq"])
    except (ValueError, KeyError, TypeError):
        return 0


def still_pending(prior: Iterable[str] | None, confirmed: int, new: list[str]) -> list[str]:
    """What a subject's status keeps pending with a decision's NEW lines: the earlier decisions'
    lines the trail is not known to hold (seq above CONFIRMED, the highest this process knows to
    be in it), then NEW; the newest PENDING_MAX. A replica that takes over after a failed append
    then writes them all, and the chain has no gap; with the trail down for longer than that,
    the oldest are dropped (counted by stratops_audit_write_failures_total all along)."""
    fresh = {entry_seq(x) for x in new}
    kept = [x for x in prior or [] if entry_seq(x) > confirmed and entry_seq(x) not in fresh]
    return (sorted(kept, key=entry_seq) + new)[-PENDING_MAX:]


def link(head: Head, entries: Iterable[dict[str, Any]]) -> tuple[list[str], Head]:
    """ENTRIES as chain lines after HEAD, and the new head."""
    lines = []
    for e in entries:
        line = canonical({**_bounded(e), "seq": head.seq + 1, "prev": head.hash})
        lines.append(line)
        head = Head(head.seq + 1, digest(line))
    return lines, head


@dataclass(frozen=True)
class Finding:
    """Where a chain is broken: which entry, and how."""

    seq: int
    kind: str  # edited, missing, inserted, unreadable, truncated
    detail: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.kind}: {self.detail}"


def verify(lines: Iterable[str], head: Head | None = None) -> tuple[list[dict[str, Any]], list[Finding]]:
    """(entries, findings) of a chain read in segment order: each line must follow the one
    before (its `prev` is that line's hash, its `seq` one more), the first the genesis; with
    HEAD (from the subject's status), the last must be it. Empty findings: VERIFIED."""
    entries: list[dict[str, Any]] = []
    findings: list[Finding] = []
    prev, seq = GENESIS, 0
    for line in lines:
        try:
            e = json.loads(line)
            e_seq, e_prev = int(e["seq"]), str(e["prev"])
        except (ValueError, KeyError, TypeError):
            findings.append(Finding(seq + 1, "unreadable", f"not an entry: {line[:80]!r}"))
            prev, seq = digest(line), seq + 1
            continue
        if e_seq <= seq:
            findings.append(Finding(e_seq, "inserted", f"entry {e_seq} appears again after entry {seq}"))
        elif e_seq > seq + 1:
            findings.append(Finding(seq + 1, "missing", f"entries {seq + 1}..{e_seq - 1} are not in the chain"))
        elif e_prev != prev:
            findings.append(
                Finding(
                    seq,
                    "edited",
                    f"entry {e_seq} does not follow entry {seq} as recorded "
                    f"(entry {seq} was changed, or entry {e_seq} was put in its place)",
                )
            )
        entries.append(e)
        prev, seq = digest(line), max(seq, e_seq)
    if head is not None:
        if head.seq > seq:
            findings.append(
                Finding(seq + 1, "missing", f"entries {seq + 1}..{head.seq} recorded in status are not in the chain")
            )
        elif head.seq == seq and head.hash != prev and seq:
            findings.append(Finding(seq, "edited", f"entry {seq} is not the one the status recorded"))
        elif head.seq < seq:
            findings.append(
                Finding(head.seq + 1, "inserted", f"entries after {head.seq} were not written by the operator")
            )
    return entries, findings


# -- the evidence pack ---------------------------------------------------------------------------
def _in(t: str | None, since: datetime, until: datetime) -> bool:
    return t is not None and since <= _parse(t) <= until


def _secs(a: str | None, b: str | None) -> float | None:
    return round((_parse(b) - _parse(a)).total_seconds(), 3) if a and b else None


def evidence(
    strategies: list[dict[str, Any]],
    gates: list[dict[str, Any]],
    incidents: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    runbook_runs: list[dict[str, Any]],
    since: datetime,
    until: datetime,
    generated_at: datetime,
    scope: str,
) -> dict[str, Any]:
    """The evidence pack as one JSON-able document, from the cluster's records only."""
    entries = sorted((e for e in entries if _in(e.get("at"), since, until)), key=lambda e: e["at"])
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_reason.setdefault(e["reason"], []).append(e)
    signatures = [e for e in entries if e["reason"] == "GateSigned"]
    # Current signatures count too (signed before the operator ran, or within the range).
    seen = {e["key"] for e in signatures}
    for g in gates:
        for s in (g.get("spec") or {}).get("signatures") or []:
            key = signature_key(s)
            if key not in seen and _in(s["signedAt"], since, until):
                signatures.append(
                    {
                        "at": s["signedAt"],
                        "kind": "Gate",
                        "name": g["metadata"]["name"],
                        "reason": "GateSigned",
                        "cadence": g["spec"]["cadence"],
                        "key": key,
                        "record": {"signature": s},
                    }
                )

    def approvers(strategy: str, version: str) -> list[dict[str, Any]]:
        out = []
        for e in signatures:
            s = e["record"]["signature"]
            if (s.get("subject") or "").startswith(f"{strategy}:{version}:"):
                out.append(
                    {
                        "gate": e["name"],
                        "item": s["item"],
                        "signer": s["signer"],
                        "signedAt": s["signedAt"],
                        "evidence": s["evidence"],
                    }
                )
        return out

    deployments = []
    for s in strategies:
        name, ns = s["metadata"]["name"], s["metadata"]["namespace"]
        for r in (s.get("status") or {}).get("revisionHistory") or []:
            if _in(r.get("deployedAt"), since, until) or _in(r.get("knownGoodAt"), since, until):
                deployments.append(
                    {
                        "namespace": ns,
                        "strategy": name,
                        "version": r["version"],
                        "image": r.get("image"),
                        "deployedAt": r.get("deployedAt"),
                        "knownGoodAt": r.get("knownGoodAt"),
                        "approvers": approvers(name, r["version"]),
                    }
                )
        for e in entries:
            if e["name"] == name and e["reason"] in ("Rollout", "RollbackAutomatic", "Rollback") and e.get("record"):
                ro = e["record"].get("rollout") or {}
                if not any(d["strategy"] == name and d["version"] == ro.get("version") for d in deployments):
                    deployments.append(
                        {
                            "namespace": ns,
                            "strategy": name,
                            "version": ro.get("version"),
                            "image": None,
                            "deployedAt": ro.get("startedAt"),
                            "knownGoodAt": None,
                            "approvers": approvers(name, str(ro.get("version"))),
                        }
                    )
    incident_rows = []
    for i in incidents:
        created = i["metadata"]["creationTimestamp"]
        if not _in(created, since, until):
            continue
        steps = (i.get("status") or {}).get("steps") or {}
        det = (steps.get("detection") or {}).get("at") or created
        incident_rows.append(
            {
                "namespace": i["metadata"]["namespace"],
                "name": i["metadata"]["name"],
                "strategy": i["spec"]["strategy"],
                "class": i["spec"]["class"],
                "severity": i["spec"]["severity"],
                "summary": i["spec"]["summary"],
                "monitor": i["spec"].get("monitor"),
                "phase": (i.get("status") or {}).get("phase") or "Open",
                "steps": steps,
                "postmortem": i["spec"].get("postmortem"),
                "secondsToAction": _secs(det, (steps.get("immediateAction") or {}).get("at")),
                "secondsToContainment": _secs(det, (steps.get("containment") or {}).get("at")),
                "secondsToResolution": _secs(det, (i.get("status") or {}).get("resolvedAt")),
            }
        )

    def rows(*reasons: str) -> list[dict[str, Any]]:
        return [e for r in reasons for e in by_reason.get(r, [])]

    return {
        "generatedAt": _iso(generated_at),
        "since": _iso(since),
        "until": _iso(until),
        "scope": scope,
        "sources": "Strategies, Gates, Incidents and the operator's hash-chained audit trail (AuditSegments) in the "
        "cluster",
        "strategies": [
            {
                "namespace": s["metadata"]["namespace"],
                "name": s["metadata"]["name"],
                "mode": (s.get("status") or {}).get("mode"),
                "version": (s.get("status") or {}).get("activeVersion"),
                "riskLimits": (s.get("spec") or {}).get("riskLimits"),
            }
            for s in strategies
        ],
        "deployments": sorted(deployments, key=lambda d: (d["strategy"], d.get("deployedAt") or "")),
        "gateSignatures": sorted(
            ({"gate": e["name"], "cadence": e.get("cadence"), **e["record"]["signature"]} for e in signatures),
            key=lambda s: s["signedAt"],
        ),
        "incidents": sorted(incident_rows, key=lambda r: r["steps"].get("detection", {}).get("at") or ""),
        "killSwitches": rows("KillSwitch", "KillSwitchCompleted", "KillSwitchUnacknowledged", "Rearmed"),
        "throttles": rows("Throttle"),
        "resumes": rows("Resume", "ResumeActive", "ResumeRefused"),
        "rollbacks": rows("Rollback", "RollbackAutomatic", "RollbackRefused", "RolloutFailed"),
        "promotions": rows("Promoted", "Demoted", "PromotionBlocked", "PromotionWaits"),
        "limitChanges": rows("LimitsRaised", "LimitsLowered", "LimitsHeld"),
        "brokerFailovers": rows("BrokerFailover", "FailoverRefused"),
        "reconciliations": rows("ReconciliationRecorded"),
        "configDrift": rows("ConfigDrift", "FleetMismatch"),
        "monitorBreaches": [r for r in incident_rows if r["monitor"]],
        "runbookRuns": sorted(
            (r for r in runbook_runs if _in(r.get("startedAt"), since, until)), key=lambda r: r["startedAt"]
        ),
    }


def markdown(pack: dict[str, Any]) -> str:
    """The evidence pack for people: one section per kind of record."""
    out = [
        f"# stratops evidence pack: {pack['since']} to {pack['until']}",
        "",
        f"Scope: {pack['scope']}. Generated {pack['generatedAt']} from {pack['sources']}.",
        "",
    ]

    def table(title: str, head: list[str], rows: list[list[Any]]) -> None:
        out.extend([f"## {title} ({len(rows)})", ""])
        if not rows:
            out.extend(["None in this period.", ""])
            return
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for r in rows:
            out.append(
                "| "
                + " | ".join(str(c if c is not None else "-").replace("|", "\\|").replace("\n", " ") for c in r)
                + " |"
            )
        out.append("")

    trail = pack.get("auditTrail") or {}
    broken = {k: v for k, v in trail.items() if v != "VERIFIED"}
    out.extend([f"## Audit trail: {'VERIFIED' if not broken else 'BROKEN'} ({len(trail)} chains)", ""])
    for chain, findings in sorted(broken.items()):
        out.append(f"- {chain}: " + "; ".join(findings))
    out.append("")
    table(
        "Strategies",
        ["namespace", "strategy", "mode", "version"],
        [[s["namespace"], s["name"], s["mode"], s["version"]] for s in pack["strategies"]],
    )
    table(
        "Deployments",
        ["strategy", "version", "deployed", "known-good", "approved by (pre-launch)"],
        [
            [
                d["strategy"],
                d["version"],
                d["deployedAt"],
                d["knownGoodAt"],
                ", ".join(sorted({f"{a['signer']} ({a['item']})" for a in d["approvers"]})) or "none recorded",
            ]
            for d in pack["deployments"]
        ],
    )
    table(
        "Gate signatures",
        ["signed", "gate", "cadence", "item", "signer", "evidence", "subject"],
        [
            [s["signedAt"], s["gate"], s.get("cadence"), s["item"], s["signer"], s["evidence"], s.get("subject")]
            for s in pack["gateSignatures"]
        ],
    )
    table(
        "Incidents",
        [
            "detected",
            "incident",
            "strategy",
            "class",
            "sev",
            "phase",
            "to action (s)",
            "to containment (s)",
            "to resolution (s)",
            "root cause",
            "owner",
        ],
        [
            [
                (i["steps"].get("detection") or {}).get("at"),
                i["name"],
                i["strategy"],
                i["class"],
                i["severity"],
                i["phase"],
                i["secondsToAction"],
                i["secondsToContainment"],
                i["secondsToResolution"],
                (i["postmortem"] or {}).get("rootCause"),
                (i["postmortem"] or {}).get("owner"),
            ]
            for i in pack["incidents"]
        ],
    )

    def who(e: dict[str, Any]) -> list[Any]:
        rec = next(iter((e.get("record") or {}).values()), None)
        by = rec.get("by") if isinstance(rec, dict) else None
        why = rec.get("reason") if isinstance(rec, dict) else None
        return [e["at"], e["name"], e["reason"], by, why or e["message"]]

    for title, key in (
        ("Kill-switches", "killSwitches"),
        ("Throttles", "throttles"),
        ("Resumes", "resumes"),
        ("Rollbacks", "rollbacks"),
        ("Promotions", "promotions"),
        ("Broker failovers", "brokerFailovers"),
        ("Reconciliations", "reconciliations"),
        ("Config drift", "configDrift"),
    ):
        table(title, ["at", "strategy", "what", "by", "why"], [who(e) for e in pack[key]])
    table(
        "Limit changes",
        ["at", "strategy", "what", "limits in force after"],
        [
            [e["at"], e["name"], e["message"], json.dumps((e.get("record") or {}).get("effectiveLimits"))]
            for e in pack["limitChanges"]
        ],
    )
    table(
        "Monitor breaches (incidents opened by monitors)",
        ["detected", "monitor", "strategy", "class", "sev", "summary"],
        [
            [
                (i["steps"].get("detection") or {}).get("at"),
                i["monitor"],
                i["strategy"],
                i["class"],
                i["severity"],
                i["summary"],
            ]
            for i in pack["monitorBreaches"]
        ],
    )
    table(
        "Runbook runs",
        ["started", "runbook", "strategy", "by", "outcome", "verify"],
        [
            [
                r["startedAt"],
                r["runbook"],
                r["strategy"],
                r["by"],
                r.get("outcome"),
                "PASS" if (r.get("verify") or {}).get("passed") else "FAIL",
            ]
            for r in pack["runbookRuns"]
        ],
    )
    return "\n".join(out)
