"""The Incident controller: acknowledge, contain, resolve (annotations from `stratops incident
...`), decided on the Incident as the API server has it now and written at its resourceVersion."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from stratops.controller.runtime import log
from stratops.k8s.executor import Executor


def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from OLD to NEW: top-level fields gone in NEW are deleted (null); nested
    maps merge, so a step the strategy daemon wrote meanwhile is never erased."""
    return {**{k: None for k in old if k not in new}, **new}


# -- incidents: acknowledge, contain, resolve (annotations from `stratops incident ...`) --------
#: An incident command whose write fails for a passing reason (the API server busy or away) is
#: tried again here, since kopf never retries an event handler; a later event of the Incident
#: (the annotation stays until it is carried out) runs it again after these.
ATTEMPTS = 5
PASSING = (429, 500, 502, 503, 504)


def command(ex: Executor, namespace: str, name: str, pause: float = 0.5) -> None:
    """Carry out the incident commands on Incident NAME (stratops.recovery.decide_incident)."""
    for attempt in range(ATTEMPTS):
        try:
            _command_once(ex, namespace, name)
            return
        except (ApiException, urllib3.exceptions.HTTPError) as e:
            if (isinstance(e, ApiException) and e.status not in PASSING) or attempt == ATTEMPTS - 1:
                raise
            log.warning("[%s/%s] incident command not written (%s): again in %.1fs", namespace, name, e, pause)
            time.sleep(pause)
            pause *= 2


def _command_once(ex: Executor, namespace: str, name: str) -> None:
    from stratops.lifecycle.commands import parse_command
    from stratops.models.incident import IncidentSpec, IncidentStatus
    from stratops.recovery import decide_incident

    # Decided on the Incident as the API server has it now, written at its resourceVersion (the
    # strategy's daemon writes the same status).
    now = datetime.now(UTC)
    decided: dict[str, Any] = {}

    def change(raw: dict[str, Any]) -> dict[str, Any] | None:
        spec = IncidentSpec.model_validate(raw.get("spec") or {})
        status = IncidentStatus.model_validate(raw.get("status") or {})
        new, clear, events = decide_incident(spec, status, raw["metadata"].get("annotations") or {}, now, parse_command)
        decided.update(clear=clear, events=events, uid=raw["metadata"]["uid"])
        return status_patch(status.to_dict(), new.to_dict()) if new.to_dict() != status.to_dict() else None

    if ex.update_incident_status(namespace, name, change) is None:
        return  # deleted meanwhile
    for type_, reason, message in decided["events"]:
        ex.event(namespace, name, decided["uid"], type_, reason, message, now, kind="Incident")
    if decided["clear"]:
        ex.clear_incident_annotations(namespace, name, decided["clear"])
