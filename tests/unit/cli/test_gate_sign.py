"""`stratops gate sign` against a gate that changes between its read and its patch: a status
write by the operator is signed through, a spec change (another signer) is never overwritten."""

from __future__ import annotations

import copy

import pytest
from kubernetes.client.exceptions import ApiException

from stratops.cli import gates
from stratops.cli.lifecycle import CliError

GATE = {
    "metadata": {"name": "prelaunch", "resourceVersion": "10"},
    "spec": {"cadence": "pre-launch", "items": [{"id": "backtest"}], "signatures": []},
    "status": {"state": "Incomplete"},
}


class MovingGate:
    """A gate served as the API server would: a PATCH at a stale resourceVersion is a 409.
    CHANGES are applied, one per read, between the CLI's reads and its patches."""

    def __init__(self, changes: list) -> None:
        self.gate, self.changes, self.patches = copy.deepcopy(GATE), list(changes), []

    def _bump(self) -> None:
        self.gate["metadata"]["resourceVersion"] = str(int(self.gate["metadata"]["resourceVersion"]) + 1)

    def get(self, kind: str, ns: str, name: str) -> dict:
        return copy.deepcopy(self.gate)

    def patch(self, kind: str, ns: str, name: str, body: dict) -> None:
        if self.changes:
            self.changes.pop(0)(self.gate)
            self._bump()
        if body["metadata"]["resourceVersion"] != self.gate["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.gate["spec"].update(body["spec"])
        self._bump()
        self.patches.append(body)


def status_write(g: dict) -> None:
    g["status"] = {"state": "Incomplete", "observedAt": "now"}


def another_signature(g: dict) -> None:
    g["spec"]["signatures"] = [{"item": "backtest", "signer": "risk-owner"}]


def _sign(desk: MovingGate) -> None:
    read = desk.get("gates", "fx", "prelaunch")
    patch = {
        "metadata": {"resourceVersion": read["metadata"]["resourceVersion"]},
        "spec": {"signatures": [{"item": "backtest", "signer": "trader"}]},
    }
    gates.patch_signatures(desk, "fx", "prelaunch", read, patch)


def test_a_status_write_meanwhile_is_signed_through() -> None:
    desk = MovingGate([status_write, status_write])
    _sign(desk)
    assert desk.gate["spec"]["signatures"] == [{"item": "backtest", "signer": "trader"}]
    assert len(desk.patches) == 1


def test_another_signature_meanwhile_is_never_overwritten() -> None:
    desk = MovingGate([another_signature])
    with pytest.raises(CliError, match=r"changed by someone else.*nothing was signed"):
        _sign(desk)
    assert desk.gate["spec"]["signatures"] == [{"item": "backtest", "signer": "risk-owner"}]


def test_a_status_that_never_settles_gives_up_with_nothing_signed() -> None:
    desk = MovingGate([status_write] * gates.SIGN_ATTEMPTS)
    with pytest.raises(CliError, match=r"kept changing.*nothing was signed"):
        _sign(desk)
    assert desk.gate["spec"]["signatures"] == [] and desk.patches == []


@pytest.mark.parametrize("status", [400, 403, 422])
def test_a_refusal_is_said_and_not_retried(status: int) -> None:
    class Refusing(MovingGate):
        def patch(self, *a: object) -> None:
            self.patches.append(a)
            raise ApiException(status=status, reason="Forbidden")

    desk = Refusing([])
    with pytest.raises(CliError, match="signature refused"):
        _sign(desk)
    assert len(desk.patches) == 1
