"""Which objects this replica's shard serves (stratops.lifecycle.shard), as kopf `when` filters.

STRATOPS_SHARD (INDEX/COUNT; the CLI's --shard sets it) is read when the handlers register. Unset,
every filter is None: one operator serves every strategy, as before shards existed. Admission
webhooks take no filter: every replica of every shard validates every request.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from stratops.controller.runtime import LABEL
from stratops.lifecycle.shard import Shard, parse_shard


def current() -> Shard | None:
    return parse_shard(os.environ.get("STRATOPS_SHARD"))


def _filter(shard: Shard | None, strategy_of: Any) -> kopf.WhenFilterFn | None:
    if shard is None:
        return None

    def when(namespace: str | None, body: kopf.Body, **_: Any) -> bool:
        return shard.owns(namespace, strategy_of(body))

    return when


def strategies() -> kopf.WhenFilterFn | None:
    """A Strategy: by its name."""
    return _filter(current(), lambda body: body.get("metadata", {}).get("name"))


def owned() -> kopf.WhenFilterFn | None:
    """What a strategy owns (its Deployment, pods, ConfigMaps): by its strategy label."""
    return _filter(current(), lambda body: (body.get("metadata", {}).get("labels") or {}).get(LABEL))


def of_a_strategy() -> kopf.WhenFilterFn | None:
    """An Incident or a Monitor: by its spec.strategy."""
    return _filter(current(), lambda body: (body.get("spec") or {}).get("strategy"))


def gates() -> kopf.WhenFilterFn | None:
    """A Gate's own daemon (its status has one writer): by its name. Every shard still indexes
    every gate, as a gate may cover strategies of several shards."""
    shard = current()
    if shard is None:
        return None

    def when(namespace: str | None, name: str | None, **_: Any) -> bool:
        return shard.owns_gate(namespace, name or "")

    return when
