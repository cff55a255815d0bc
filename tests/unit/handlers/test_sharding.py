"""With STRATOPS_SHARD set, every handler of a strategy's objects serves only the shard's
strategies; only the gate index and the gate pokes read every gate, and admission is for all."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from stratops.handlers import register
from stratops.lifecycle.shard import Shard


def _handlers(monkeypatch: pytest.MonkeyPatch, shard: str | None) -> dict[str, Any]:
    if shard is None:
        monkeypatch.delenv("STRATOPS_SHARD", raising=False)
    else:
        monkeypatch.setenv("STRATOPS_SHARD", shard)
    registry = kopf.OperatorRegistry()
    register(registry)
    found: dict[str, Any] = {}
    for reg in (registry._indexing, registry._watching, registry._spawning):
        for h in reg.get_all_handlers():
            found.setdefault(h.id, h)
    return found


def test_without_a_shard_nothing_is_filtered(monkeypatch):
    assert all(h.when is None for h in _handlers(monkeypatch, None).values())


def test_with_a_shard_only_the_gate_reads_are_unfiltered(monkeypatch):
    handlers = _handlers(monkeypatch, "1/3")
    assert {i for i, h in handlers.items() if h.when is None} == {"strategy_gates", "gate_changed"}


def test_every_object_of_a_strategy_goes_to_its_shard(monkeypatch):
    handlers = _handlers(monkeypatch, "0/2")
    mine = next(f"s{i}" for i in range(50) if Shard(0, 2).owns("desk", f"s{i}"))
    theirs = next(f"s{i}" for i in range(50) if not Shard(0, 2).owns("desk", f"s{i}"))
    for strategy, expected in ((mine, True), (theirs, False)):
        bodies = {
            "strategy_daemon": {"metadata": {"name": strategy}},
            "monitor_seen": {"metadata": {"name": "m"}, "spec": {"strategy": strategy}},
            "incident_command": {"metadata": {"name": "i"}, "spec": {"strategy": strategy}},
            "strategy_pods": {"metadata": {"name": "p", "labels": {"stratops.io/strategy": strategy}}},
        }
        for hid, body in bodies.items():
            assert handlers[hid].when(namespace="desk", name=body["metadata"]["name"], body=body) is expected, hid
