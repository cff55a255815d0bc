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
from dataclasses import dataclass


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
