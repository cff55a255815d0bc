"""Turn Kubernetes objects (plain dicts, as watched) into the views decisions read. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from stratops.gates.evaluate import GateEvaluation, evaluate, subject_for
from stratops.lifecycle import manifests
from stratops.lifecycle.decide import DeploymentView, IncidentView, PodView
from stratops.models.gate import Cadence, GateSpec
from stratops.models.strategy import StrategySpec


def deployment_view(body: Mapping[str, Any]) -> DeploymentView:
    spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body.get("metadata") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return DeploymentView(
        image=containers[0].get("image", ""),
        replicas=int(spec.get("replicas") or 0),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        status_replicas=int(status.get("replicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
        live_fingerprint=manifests.fingerprint(dict(body)),
        desired_fingerprint=(meta.get("annotations") or {}).get(manifests.ANNOTATION_DESIRED),
    )


def pod_view(body: Mapping[str, Any]) -> PodView:
    meta, status, spec = body.get("metadata") or {}, body.get("status") or {}, body.get("spec") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    containers = spec.get("containers") or [{}]
    statuses = status.get("containerStatuses") or []
    owner = next((f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    return PodView(name=meta.get("name", ""), ready=ready, terminating=meta.get("deletionTimestamp") is not None,
                   image=containers[0].get("image", ""), image_id=statuses[0].get("imageID", "") if statuses else "",
                   owner=owner)


def incident_view(body: Mapping[str, Any]) -> IncidentView:
    spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body.get("metadata") or {}
    steps = status.get("steps") or {}
    return IncidentView(
        name=meta.get("name", ""), class_=spec.get("class", ""), severity=spec.get("severity", ""),
        action=spec.get("action"), phase=status.get("phase") or "Open",
        acted="immediateAction" in steps,
        contained="containment" in steps,
        require_rearm=bool(spec.get("requireRearm")),
    )


def gate_evaluations(
    strategy: str, spec: StrategySpec, gates: Iterable[tuple[str, Mapping[str, Any]]], now: datetime
) -> dict[str, GateEvaluation | None]:
    """Evaluate the gates that name STRATEGY; pre-launch gates against its current subject.
    A gate whose spec cannot be read evaluates to None (reported as not found)."""
    out: dict[str, GateEvaluation | None] = {}
    current = subject_for(strategy, spec)
    for name, raw in gates:
        try:
            gs = GateSpec.model_validate(raw)
        except ValueError:
            out[name] = None
            continue
        subjects = (current,) if gs.cadence == Cadence.pre_launch else ()
        out[name] = evaluate(gs, now, subjects)
    return out
