"""The audit trail's merge rules and the evidence pack over crafted records."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from stratops.audit import audit_name, evidence, markdown, merge, months, signature_entries

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def entry(reason: str, message: str, at: datetime, name: str = "s") -> dict:
    return {"at": at.isoformat().replace("+00:00", "Z"), "kind": "Strategy", "name": name, "type": "Normal",
            "reason": reason, "message": message}


def test_merge_adds_new_drops_crash_retries_keeps_later_repeats():
    text, n = merge("", [entry("KillSwitch", "kill by a", T0)])
    assert n == 1
    text, n = merge(text, [entry("KillSwitch", "kill by a", T0 + timedelta(seconds=3))])  # the retried decision
    assert n == 0
    text, n = merge(text, [entry("KillSwitch", "kill by a", T0 + timedelta(hours=2))])  # a second kill later
    assert n == 1
    text, n = merge(text, [entry("KillSwitch", "kill by a", T0 + timedelta(seconds=3), name="other")])
    assert n == 1 and len(text.splitlines()) == 3 and all(json.loads(ln) for ln in text.splitlines())


def test_signatures_are_recorded_once_and_each_re_signature_kept():
    sig = {"item": "a", "signer": "u", "signedAt": "2026-11-24T08:00:00Z", "evidence": "e"}
    text, n = merge("", signature_entries("g", "daily", [sig], T0))
    assert n == 1
    assert merge(text, signature_entries("g", "daily", [sig], T0 + timedelta(days=1)))[1] == 0
    again = {**sig, "signedAt": "2026-11-25T08:00:00Z"}
    assert merge(text, signature_entries("g", "daily", [again], T0 + timedelta(days=1)))[1] == 1


def test_names_and_months():
    assert audit_name("Strategy", "mean-revert", T0) == "audit-strategy-mean-revert-202611"
    long = audit_name("Strategy", "x" * 253, T0)
    assert len(long) <= 253 and long.endswith("-202611")
    assert months(datetime(2026, 11, 30, tzinfo=timezone.utc), datetime(2027, 2, 1, tzinfo=timezone.utc)) == ["202611", "202612", "202701", "202702"]


def test_evidence_keeps_only_the_period_and_times_incidents():
    inc = {"metadata": {"name": "i1", "namespace": "d", "creationTimestamp": "2026-11-24T09:00:00Z"},
           "spec": {"class": "RiskBreach", "severity": "P0", "strategy": "s", "summary": "x", "monitor": "m"},
           "status": {"phase": "Resolved", "resolvedAt": "2026-11-24T10:00:00Z", "steps": {
               "detection": {"at": "2026-11-24T09:00:00Z", "by": "monitor/m"},
               "immediateAction": {"at": "2026-11-24T09:00:01Z", "by": "op"},
               "containment": {"at": "2026-11-24T09:00:05Z", "by": "op"}}}}
    old = {**inc, "metadata": {**inc["metadata"], "name": "old", "creationTimestamp": "2026-10-01T00:00:00Z"}}
    pack = evidence([], [], [inc, old], [entry("Throttle", "t", T0), entry("Throttle", "before", T0 - timedelta(days=60))], [],
                    T0 - timedelta(hours=1), T0 + timedelta(hours=2), T0, "namespace d")
    [row] = pack["incidents"]
    assert (row["secondsToAction"], row["secondsToContainment"], row["secondsToResolution"]) == (1.0, 5.0, 3600.0)
    assert [e["message"] for e in pack["throttles"]] == ["t"] and pack["monitorBreaches"] == [row]
    md = markdown(pack)
    assert "## Incidents (1)" in md and "## Deployments (0)" in md and "None in this period." in md
