"""Turn Kubernetes objects (plain dicts, as watched) into the views decisions read. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stratops.gates.evaluate import GateEvaluation, evaluate, subject_for
from stratops.lifecycle import manifests
from stratops.lifecycle.types import DeploymentView, IncidentView, PodView
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
    owner = next(
        (f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or [] if o.get("controller")), None
    )
    return PodView(
        name=meta.get("name", ""),
        ready=ready,
        terminating=meta.get("deletionTimestamp") is not None,
        image=containers[0].get("image", ""),
        image_id=statuses[0].get("imageID", "") if statuses else "",
        owner=owner,
        version=(meta.get("labels") or {}).get(manifests.LABEL_VERSION),
    )


def incident_view(body: Mapping[str, Any]) -> IncidentView:
    spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body.get("metadata") or {}
    steps = status.get("steps") or {}
    return IncidentView(
        name=meta.get("name", ""),
        class_=spec.get("class", ""),
        severity=spec.get("severity", ""),
        action=spec.get("action"),
        phase=status.get("phase") or "Open",
        acted="immediateAction" in steps,
        contained="containment" in steps,
        require_rearm=bool(spec.get("requireRearm")),
    )


def gate_evaluations(
    strategy: str, spec: StrategySpec, gates: Iterable[tuple[str, Mapping[str, Any]]], now: datetime
) -> dict[str, GateEvaluation | None]:
    """Evaluate the gates that name STRATEGY; pre-launch gates against its current subject.
    A gate whose spec cannot be read evaluates to None (reported as not found)."""
    return read_gates(strategy, spec, gates, now)[0]


def read_gates(
    strategy: str, spec: StrategySpec, gates: Iterable[tuple[str, Mapping[str, Any]]], now: datetime
) -> tuple[dict[str, GateEvaluation | None], list[str]]:
    """(evaluations, problems): a gate that cannot be read or evaluated (an unknown time zone,
    say) is None and said; it never stops the reconcile, and so never stops a kill."""
    out: dict[str, GateEvaluation | None] = {}
    problems = []
    current = subject_for(strategy, spec)
    for name, raw in gates:
        try:
            gs = GateSpec.model_validate(raw)
            out[name] = evaluate(gs, now, (current,) if gs.cadence == Cadence.pre_launch else ())
        except Exception as e:  # any failure is the gate's, reported on it: never the kill's
            out[name] = None
            problems.append(f"gate {name}: cannot be evaluated: {str(e).splitlines()[0][:200]}")
    return out, problems


@dataclass(frozen=True)
class ConfigMapView:
    """A ConfigMap carrying a strategy's labels: who owns it decides whether it is read."""

    name: str
    component: str
    owners: tuple[str, ...]  # uids of the Strategies in its ownerReferences
    data: Mapping[str, str] = field(default_factory=dict)


def configmap_view(body: Mapping[str, Any], component: str) -> ConfigMapView:
    meta = body.get("metadata") or {}
    owners = tuple(str(o.get("uid")) for o in meta.get("ownerReferences") or [] if o.get("kind") == "Strategy")
    return ConfigMapView(
        name=str(meta.get("name", "")), component=component, owners=owners, data=dict(body.get("data") or {})
    )


def owned_documents(
    strategy: str, uid: str, views: Iterable[ConfigMapView]
) -> tuple[Mapping[str, str] | None, Mapping[str, str] | None, list[str]]:
    """(control data, ack data, foreign names): only the ConfigMaps named as the operator names
    them *and* owned by this Strategy's uid are read; anything else carrying its labels (made by
    someone who may create ConfigMaps) is ignored and reported."""
    control = ack = None
    foreign = []
    for v in views:
        owned = uid in v.owners
        if v.component == "control" and v.name == manifests.control_name(strategy) and owned:
            control = v.data
        elif v.component == "ack" and v.name == manifests.ack_name(strategy) and owned:
            ack = v.data
        else:
            foreign.append(v.name)
    return control, ack, sorted(foreign)
