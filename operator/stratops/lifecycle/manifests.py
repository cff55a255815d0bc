"""The objects the operator owns per Strategy, built from spec and decisions (pure).

- Deployment `<strategy>`: the strategy's pods, image `<image>:<version>`, control ConfigMap
  mounted read-only at /etc/stratops/control.
- ConfigMap `<strategy>-control`: the control document (written by the operator only).
- ConfigMap `<strategy>-ack`: acknowledgements, one key per pod (written by the SDK only).

The fingerprint covers every field of the Deployment the operator sets (and extra containers,
volumes or env), so a change made by anyone else (config drift) is seen and reverted.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stratops import API_VERSION
from stratops.lifecycle.control import MOUNT_PATH
from stratops.models.strategy import StrategySpec

LABEL_STRATEGY = "stratops.io/strategy"
LABEL_VERSION = "stratops.io/version"
LABEL_COMPONENT = "stratops.io/component"
# Two fingerprints on the Deployment: of the manifest the operator decided (desired), and of
# the object the API server stored after the operator's write (observed, API defaults
# included). A live object whose fingerprint differs from `observed` was changed by someone
# else (config drift); a decision whose fingerprint differs from `desired` is a planned change.
ANNOTATION_DESIRED = "stratops.io/desired-fingerprint"
ANNOTATION_OBSERVED = "stratops.io/observed-fingerprint"
MANAGED_BY = {"app.kubernetes.io/managed-by": "stratops"}
CONTAINER = "strategy"


def control_name(strategy: str) -> str:
    return f"{strategy}-control"


def ack_name(strategy: str) -> str:
    return f"{strategy}-ack"


def owner_reference(strategy: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Strategy", "name": strategy, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def image_ref(spec: StrategySpec, version: str) -> str:
    return f"{spec.image}:{version}"


def deployment(name: str, namespace: str, uid: str, spec: StrategySpec, version: str, replicas: int) -> dict[str, Any]:
    """The Deployment for VERSION at REPLICAS (the decision), with its fingerprint annotation."""
    labels = {LABEL_STRATEGY: name, **MANAGED_BY}
    pod_labels = {**(spec.pod_template.labels if spec.pod_template and spec.pod_template.labels else {}),
                  **labels, LABEL_VERSION: version}
    env: list[dict[str, Any]] = [
        {"name": "STRATOPS_STRATEGY", "value": name},
        {"name": "STRATOPS_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "STRATOPS_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "STRATOPS_CONTROL_FILE", "value": f"{MOUNT_PATH}/control.json"},
        {"name": "STRATOPS_VERSION", "value": version},
    ]
    for e in (spec.pod_template.env if spec.pod_template and spec.pod_template.env else []):
        if e.secret_key_ref is not None:
            env.append({"name": e.name, "valueFrom": {"secretKeyRef": {"name": e.secret_key_ref.name, "key": e.secret_key_ref.key}}})
        else:
            env.append({"name": e.name, "value": e.value or ""})
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image_ref(spec, version),
        "env": env,
        "volumeMounts": [{"name": "control", "mountPath": MOUNT_PATH, "readOnly": True}],
    }
    res = spec.pod_template.resources if spec.pod_template else None
    if res is not None and (res.requests or res.limits):
        container["resources"] = {k: v for k, v in (("requests", res.requests), ("limits", res.limits)) if v}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {**labels, LABEL_COMPONENT: "strategy"},
                     "ownerReferences": [owner_reference(name, uid)]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {LABEL_STRATEGY: name}},
            # One trading process at a time: never two versions trading side by side.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "control", "configMap": {"name": control_name(name)}}],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }
    body["metadata"]["annotations"] = {ANNOTATION_DESIRED: fingerprint(body)}
    return body


def _projection(dep: dict[str, Any]) -> dict[str, Any]:
    """The fields of a Deployment the operator sets, normalised (API defaults ignored)."""
    spec = dep.get("spec") or {}
    tpl = spec.get("template") or {}
    pod = tpl.get("spec") or {}
    containers = []
    for c in pod.get("containers") or []:
        containers.append({
            "name": c.get("name"), "image": c.get("image"),
            "env": [{k: v for k, v in e.items() if k in ("name", "value", "valueFrom")} for e in c.get("env") or []],
            "resources": {k: v for k, v in (c.get("resources") or {}).items() if v},
            "volumeMounts": [{k: m.get(k) for k in ("name", "mountPath", "readOnly")} for m in c.get("volumeMounts") or []],
            "command": c.get("command"), "args": c.get("args"),
        })
    volumes = [{"name": v.get("name"), "configMap": (v.get("configMap") or {}).get("name")} for v in pod.get("volumes") or []]
    return {
        "replicas": spec.get("replicas"),
        "labels": (tpl.get("metadata") or {}).get("labels") or {},
        "containers": containers, "initContainers": len(pod.get("initContainers") or []),
        "volumes": volumes, "serviceAccountName": pod.get("serviceAccountName") or "default",
    }


def fingerprint(dep: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_projection(dep), sort_keys=True).encode()).hexdigest()[:16]


def configmap(name: str, namespace: str, strategy: str, uid: str, component: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {LABEL_STRATEGY: strategy, LABEL_COMPONENT: component, **MANAGED_BY},
                     "ownerReferences": [owner_reference(strategy, uid)]},
        "data": data,
    }
