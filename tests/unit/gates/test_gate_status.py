"""A gate's status (stratops.gates.status, pure): the evaluation, and each signature linked
into the audit chain once, a re-signed item again."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import yaml

from cases import EXAMPLES
from stratops.gates.status import decide_gate, wake_in
from stratops.models.gate import GateSpec, GateStatus

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _daily(signed: int, by: str = "rita", at: datetime = NOW - timedelta(minutes=5)) -> dict:
    raw = yaml.safe_load((EXAMPLES / "gates" / "daily.yaml").read_text())["spec"]
    raw["signatures"] = [
        {"item": i["id"], "signer": by, "signedAt": at.isoformat(), "evidence": "checked"}
        for i in raw["items"][:signed]
    ]
    return raw


def _decide(raw: dict, current: GateStatus):
    return decide_gate("fx-daily", 3, GateSpec.model_validate(raw), raw, current, (), NOW)


def test_a_complete_gate_and_its_signatures_in_the_chain_once():
    raw = _daily(signed=5)
    d = _decide(raw, GateStatus())
    assert d.status.state == "Complete" and d.status.observed_generation == 3
    assert len(d.lines) == 5 and d.status.audit is not None and d.status.audit.seq == 5
    again = _decide(raw, d.status)  # the status as written: nothing new to link, nothing changed
    assert again.lines == [] and again.status.to_dict() == d.status.to_dict()


def test_a_missing_item_is_named_and_a_resigned_one_is_linked_again():
    raw = _daily(signed=4)
    d = _decide(raw, GateStatus())
    assert d.status.state != "Complete" and d.status.missing_items == ["overnight-alerts-reviewed"]
    resigned = copy.deepcopy(raw)
    resigned["signatures"][0]["signedAt"] = (NOW - timedelta(minutes=1)).isoformat()
    d2 = _decide(resigned, d.status)
    assert len(d2.lines) == 1 and d2.status.audit.seq == d.status.audit.seq + 1


def test_wake_just_after_the_next_expiry_within_the_ceiling():
    d = _decide(_daily(signed=5), GateStatus())
    assert d.evaluation.expires_at is not None
    wait = wake_in(d.evaluation, NOW, ceiling=10**9)
    assert abs(wait - ((d.evaluation.expires_at - NOW).total_seconds() + 0.5)) < 1e-6
    assert wake_in(d.evaluation, NOW, ceiling=60) == 60
