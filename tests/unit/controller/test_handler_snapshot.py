"""What a worker thread gets of kopf's indexes: a copy taken on the event loop, not the live
stores that kopf changes there while the worker reads."""

from __future__ import annotations

from stratops.controller.strategy import snapshot


def test_a_snapshot_is_a_copy_of_the_keys_asked_for():
    pods = {("fx", "a"): ["p1", "p2"], ("fx", "b"): ["q1"]}
    incidents: dict = {}
    snap = snapshot({"strategy_pods": pods, "strategy_incidents": incidents}, [("fx", "a"), ("fx", "missing")])
    assert snap == {
        "strategy_pods": {("fx", "a"): ("p1", "p2"), ("fx", "missing"): ()},
        "strategy_incidents": {("fx", "a"): (), ("fx", "missing"): ()},
    }
    pods[("fx", "a")].append("p3")  # kopf changes the store after the snapshot
    del pods[("fx", "b")]
    assert snap["strategy_pods"][("fx", "a")] == ("p1", "p2")
    assert ("fx", "b") not in snap["strategy_pods"]  # only the keys asked for are copied
