"""The audit chain (append-only, hash-linked) and the evidence pack over crafted records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from stratops.audit import GENESIS, MAX_ENTRY_BYTES, Head, evidence, link, markdown, signature_entries, verify

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def entry(reason: str, message: str, at: datetime, name: str = "s") -> dict:
    return {
        "at": at.isoformat().replace("+00:00", "Z"),
        "kind": "Strategy",
        "name": name,
        "type": "Normal",
        "reason": reason,
        "message": message,
    }


def chain(n: int = 5) -> tuple[list[str], Head]:
    lines, head = link(Head(), [entry("KillSwitch", f"decision {i}", T0 + timedelta(minutes=i)) for i in range(n)])
    return lines, head


def test_a_chain_links_each_entry_to_the_one_before_and_verifies():
    lines, head = chain()
    assert head.seq == 5 and [json.loads(x)["seq"] for x in lines] == [1, 2, 3, 4, 5]
    assert json.loads(lines[0])["prev"] == GENESIS
    entries, findings = verify(lines, head)
    assert findings == [] and [e["message"] for e in entries] == [f"decision {i}" for i in range(5)]
    more, head2 = link(head, [entry("Resume", "later", T0)])  # appended after a restart: from the head in status
    assert verify(lines + more, head2)[1] == []


def test_an_edited_entry_is_named():
    lines, head = chain()
    forged = json.loads(lines[2])
    forged["message"] = "resume by risk-owner"
    lines[2] = json.dumps(forged, sort_keys=True, separators=(",", ":"))
    [f] = verify(lines, head)[1]
    assert (f.seq, f.kind) == (3, "edited") and "entry 4 does not follow entry 3" in str(f)


def test_the_last_entry_edited_is_caught_by_the_head_in_status():
    lines, head = chain()
    last = json.loads(lines[-1])
    lines[-1] = json.dumps({**last, "message": "nothing happened"}, sort_keys=True, separators=(",", ":"))
    assert [(f.seq, f.kind) for f in verify(lines, head)[1]] == [(5, "edited")]
    assert verify(lines)[1] == [], "without the head, the end of a chain can be rewritten: status keeps the head"


def test_a_deleted_entry_is_named():
    lines, head = chain()
    del lines[1]
    [f] = verify(lines, head)[1]
    assert (f.seq, f.kind) == (2, "missing") and "entries 2..2" in str(f)
    assert [(f.seq, f.kind) for f in verify(lines[:-1], head)[1]][-1] == (5, "missing"), "the tail cut: status knows"


def test_an_inserted_entry_is_named():
    lines, head = chain()
    fake = json.dumps(
        {**json.loads(lines[2]), "message": "resume by risk-owner"}, sort_keys=True, separators=(",", ":")
    )
    findings = verify(lines[:3] + [fake] + lines[3:], head)[1]
    assert findings[0].kind == "inserted" and findings[0].seq == 3
    extra, _ = link(head, [entry("Resume", "by nobody", T0)])
    assert [(f.seq, f.kind) for f in verify(lines + extra, head)[1]] == [(6, "inserted")]
    assert verify(["not json"], None)[1][0].kind == "unreadable"


def test_an_oversized_record_is_cut_never_the_who_when_and_what():
    big = {
        **entry("ReconciliationRecorded", "Matched by ops", T0),
        "record": {"lastReconciliation": {"evidence": "x" * 300_000}},
    }
    [line], _ = link(Head(), [big])
    assert len(line.encode()) < MAX_ENTRY_BYTES and json.loads(line)["truncated"] is True
    assert json.loads(line)["message"] == "Matched by ops" and json.loads(line)["reason"] == "ReconciliationRecorded"


@pytest.mark.parametrize("n", [0, 1, 3])
def test_signature_entries_one_per_signature(n):
    sigs = [{"item": f"i{k}", "signer": "u", "signedAt": "2026-11-24T08:00:00Z", "evidence": "e"} for k in range(n)]
    out = signature_entries("g", "daily", sigs, T0)
    assert [e["key"] for e in out] == [f"i{k}|u|2026-11-24T08:00:00Z|" for k in range(n)]


def test_evidence_keeps_only_the_period_and_times_incidents():
    inc = {
        "metadata": {"name": "i1", "namespace": "d", "creationTimestamp": "2026-11-24T09:00:00Z"},
        "spec": {"class": "RiskBreach", "severity": "P0", "strategy": "s", "summary": "x", "monitor": "m"},
        "status": {
            "phase": "Resolved",
            "resolvedAt": "2026-11-24T10:00:00Z",
            "steps": {
                "detection": {"at": "2026-11-24T09:00:00Z", "by": "monitor/m"},
                "immediateAction": {"at": "2026-11-24T09:00:01Z", "by": "op"},
                "containment": {"at": "2026-11-24T09:00:05Z", "by": "op"},
            },
        },
    }
    old = {**inc, "metadata": {**inc["metadata"], "name": "old", "creationTimestamp": "2026-10-01T00:00:00Z"}}
    pack = evidence(
        [],
        [],
        [inc, old],
        [entry("Throttle", "t", T0), entry("Throttle", "before", T0 - timedelta(days=60))],
        [],
        T0 - timedelta(hours=1),
        T0 + timedelta(hours=2),
        T0,
        "namespace d",
    )
    [row] = pack["incidents"]
    assert (row["secondsToAction"], row["secondsToContainment"], row["secondsToResolution"]) == (1.0, 5.0, 3600.0)
    assert [e["message"] for e in pack["throttles"]] == ["t"] and pack["monitorBreaches"] == [row]
    md = markdown(pack)
    assert "## Incidents (1)" in md and "## Deployments (0)" in md and "None in this period." in md
