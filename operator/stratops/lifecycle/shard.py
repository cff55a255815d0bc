"""Shards: strategies split across operator deployments, each its own kopf peering (an HA pair)
serving only its part of the fleet. Kubernetes stays the engine: a shard is a Deployment with
its own peering; nothing here elects, moves or rebalances anything.

A strategy belongs to the shard its namespace and name hash to (SHA-256, so every replica and
every release agrees; Python's hash() is salted per process). Everything of a strategy follows
it: its Deployment, pods, control and acknowledgement ConfigMaps, incidents and monitors, so one
replica of one shard is their only writer. A Gate may cover strategies of several shards: its
own status has one writer, the shard its name hashes to, and every shard reads every gate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, namespace: str | None, strategy: str | None) -> bool:
        """Whether this shard serves the strategy NAMESPACE/STRATEGY (None: an object naming no
        strategy, served by shard 0 so that exactly one shard reports it)."""
        if strategy is None:
            return self.index == 0
        return shard_of(namespace or "", strategy, self.count) == self.index

    def owns_gate(self, namespace: str | None, gate: str) -> bool:
        return self.owns(namespace, f"gate/{gate}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(namespace: str, strategy: str, count: int) -> int:
    """The shard of NAMESPACE/STRATEGY among COUNT."""
    digest = hashlib.sha256(f"{namespace}/{strategy}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str | None) -> Shard | None:
    """STRATOPS_SHARD (or --shard): INDEX/COUNT, e.g. 0/2; empty or unset: no sharding (one
    deployment serves every strategy). Raises ValueError naming the setting and the fix."""
    if text is None or not text.strip():
        return None
    index, sep, count = text.strip().partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n, sep = -1, 0, ""
    if not sep or n < 1 or not 0 <= i < n:
        raise ValueError(
            f"STRATOPS_SHARD {text!r}: say INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/2 for the first of two shards "
            "(or leave it unset for one unsharded operator)"
        )
    return Shard(i, n)


# -- the layout guard: never two shard counts acting at once ---------------------------------
# The chart names each shard's peering <base>-shard-<i>-of-<count> (one shard: <base>). While
# the shard count changes, replicas of the old and the new count run together, and a strategy
# may hash to a shard of each: two actors. A replica that finds, when it starts, a live peer in a
# peering of its family with another count waits until there is none (the old layout keeps
# acting until it is gone; a rollout that never completes leaves the old one in charge).
_SHARDED = re.compile(r"^(?P<base>.+)-shard-(?P<index>\d+)-of-(?P<count>\d+)$")


def peering_name(base: str, shard: Shard | None) -> str:
    """The peering of SHARD in the family BASE."""
    return base if shard is None else f"{base}-shard-{shard.index}-of-{shard.count}"


def layout(peering: str) -> tuple[str, int]:
    """(family, shard count) of a peering name: <base>-shard-<i>-of-<n> is (base, n), any other
    name (base, 1)."""
    m = _SHARDED.match(peering)
    return (m["base"], int(m["count"])) if m else (peering, 1)


def other_layouts_live(mine: str, peerings: Iterable[tuple[str, Mapping[str, Any]]], now: datetime) -> list[str]:
    """The peerings of MINE's family with another shard count that hold a live peer (its
    lastseen plus lifetime still ahead of NOW), from (name, status) pairs as read."""
    base, count = layout(mine)
    found = []
    for name, status in peerings:
        b, n = layout(name)
        if b != base or n == count:
            continue
        for peer in (status or {}).values():
            if not isinstance(peer, Mapping) or "lastseen" not in peer:
                continue
            try:
                seen = datetime.fromisoformat(str(peer["lastseen"]).replace("Z", "+00:00"))
            except ValueError:
                continue
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=UTC)
            if seen + timedelta(seconds=float(peer.get("lifetime") or 60)) > now:
                found.append(name)
                break
    return sorted(set(found))
