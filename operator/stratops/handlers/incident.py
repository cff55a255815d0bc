"""Incident commands: acknowledge, contain, resolve."""

from __future__ import annotations

from typing import Any

import kopf

from stratops import GROUP, VERSION
from stratops.controller import incident
from stratops.handlers import sharding


# -- incidents: acknowledge, contain, resolve (annotations from `stratops incident ...`) --------
def incident_command(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    incident.command(memo.runtime.executor, namespace, name)


def register(registry: kopf.OperatorRegistry) -> None:
    for annotation in ("ack", "resolve", "contain"):
        kopf.on.event(
            GROUP,
            VERSION,
            "incidents",
            annotations={f"{GROUP}/{annotation}": kopf.PRESENT},
            when=sharding.of_a_strategy(),
            registry=registry,
        )(incident_command)
