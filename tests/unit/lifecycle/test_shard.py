"""Shards (stratops.lifecycle.shard): every strategy has exactly one shard, everything of a
strategy follows it, and a bad setting says what to write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from stratops.lifecycle.shard import Shard, layout, other_layouts_live, parse_shard, peering_name, shard_of

names = hs.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


@given(names, names, hs.integers(1, 16))
def test_each_strategy_belongs_to_exactly_one_shard(namespace, strategy, count):
    owners = [i for i in range(count) if Shard(i, count).owns(namespace, strategy)]
    assert owners == [shard_of(namespace, strategy, count)]


def test_the_hash_is_stable_across_processes_and_releases():
    # SHA-256, never Python's hash() (salted per process): every replica and release agrees.
    import hashlib

    digest = int.from_bytes(hashlib.sha256(b"desk-fx/mean-revert").digest()[:8], "big")
    assert shard_of("desk-fx", "mean-revert", 7) == digest % 7


def test_a_fleet_spreads_over_the_shards():
    counts = [0, 0, 0]
    for i in range(3000):
        counts[shard_of("desk", f"s{i}", 3)] += 1
    assert all(800 < c < 1200 for c in counts), counts


def test_an_object_naming_no_strategy_is_shard_zeros_and_a_gate_goes_by_its_name():
    assert Shard(0, 2).owns("ns", None) and not Shard(1, 2).owns("ns", None)
    assert [Shard(i, 4).owns_gate("ns", "daily") for i in range(4)].count(True) == 1


@pytest.mark.parametrize("text", ["", "  ", None])
def test_unset_is_one_unsharded_operator(text):
    assert parse_shard(text) is None


@pytest.mark.parametrize("text", ["2/2", "-1/2", "a/2", "1", "1/0", "0/x", "1/2/3"])
def test_a_bad_shard_names_the_setting_and_the_fix(text):
    with pytest.raises(ValueError, match=r"STRATOPS_SHARD .*INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/2"):
        parse_shard(text)


def test_a_good_shard_parses():
    assert parse_shard(" 1/3 ") == Shard(1, 3) and str(Shard(1, 3)) == "1/3"


# -- the layout guard --------------------------------------------------------------------------
NOW = datetime(2026, 12, 6, 9, tzinfo=UTC)


def _peer(seconds_ago: float, lifetime: int = 30) -> dict:
    return {"priority": 1, "lifetime": lifetime, "lastseen": (NOW - timedelta(seconds=seconds_ago)).isoformat()}


def test_a_peering_name_carries_its_family_and_shard_count():
    assert layout("ops-stratops") == ("ops-stratops", 1)
    assert layout("ops-stratops-shard-2-of-3") == ("ops-stratops", 3)
    assert layout(peering_name("ops-stratops", Shard(1, 4))) == ("ops-stratops", 4)
    assert peering_name("ops-stratops", None) == "ops-stratops"


def test_only_live_replicas_of_another_count_in_the_family_hold_a_start():
    peerings = [
        ("ops-stratops", {"old-a": _peer(5), "old-b": _peer(100)}),  # one live replica, unsharded
        ("ops-stratops-shard-0-of-2", {"x": _peer(1)}),  # my own layout: siblings, no hold
        ("ops-stratops-shard-1-of-2", {"y": _peer(1)}),
        ("ops-stratops-shard-0-of-3", {"z": _peer(31)}),  # another count, but its record lapsed
        ("other-stratops-shard-0-of-5", {"w": _peer(1)}),  # another release
    ]
    assert other_layouts_live("ops-stratops-shard-0-of-2", peerings, NOW) == ["ops-stratops"]
    assert other_layouts_live("ops-stratops", peerings, NOW) == [
        "ops-stratops-shard-0-of-2",
        "ops-stratops-shard-1-of-2",
    ], "an unsharded replica starting while shards run holds too"
    gone = [(n, {k: _peer(300) for k in st}) for n, st in peerings]
    assert other_layouts_live("ops-stratops-shard-0-of-2", gone, NOW) == []


def test_a_peer_record_without_a_readable_time_is_not_taken_for_live():
    peerings = [("ops-stratops", {"a": {"priority": 1}, "b": {"lastseen": "yesterday"}, "c": "junk"})]
    assert other_layouts_live("ops-stratops-shard-0-of-2", peerings, NOW) == []
