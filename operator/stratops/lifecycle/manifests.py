"""The objects the operator owns per Strategy, built from spec and decisions (pure).

- Deployment `<strategy>`: the strategy's pods, image `<image>:<version>`, control ConfigMap
  mounted read-only at /etc/stratops/control.
- ConfigMap `<strategy>-control`: the control document (written by the operator only).
- ConfigMap `<strategy>-ack`: acknowledgements, one key per pod (written by the SDK only).
- ServiceAccount `<strategy>-strategy`, the pods' identity, with a Role and RoleBinding of the
  same name that allow exactly: get, list and watch of the control ConfigMap and patch of the
  ack ConfigMap, by name. Another strategy's documents, and every control document's writing,
  are out of its reach; which key of the ack it may write is admission's (the pod's own).

The fingerprint covers every field of the Deployment the operator sets (and extra containers,
volumes or env), so a change made by anyone else (config drift) is seen and reverted.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from stratops import API_VERSION
from stratops.lifecycle.control import MOUNT_PATH
from stratops.models.strategy import DIGEST_SEPARATOR, RESERVED_ENV_PREFIX, StrategySpec

LABEL_STRATEGY = "stratops.io/strategy"
LABEL_VERSION = "stratops.io/version"
LABEL_COMPONENT = "stratops.io/component"
# The fingerprint of the manifest the operator wrote. A live Deployment whose own fingerprint
# differs from it was changed by someone else (config drift); a decision whose fingerprint
# differs from it is a planned change. The projection ignores API-server defaults, so the
# live object of an unchanged manifest has the same fingerprint.
ANNOTATION_DESIRED = "stratops.io/desired-fingerprint"
MANAGED_BY = {"app.kubernetes.io/managed-by": "stratops"}
CONTAINER = "strategy"
# The SDK's `serve` answers the probes here (STRATOPS_PROBE_PORT tells the process).
PROBE_PORT = 8080
READY_PATH, LIVE_PATH = "/ready", "/live"
# During a warm handover both versions' pods run: a rolling update that starts every new pod at
# once (maxSurge 100%) and takes none away (maxUnavailable 0), whose new pods never count as
# available (minReadySeconds), so the Deployment controller never scales the trading version
# down by itself. The operator ends it by going back to Recreate, which scales the old pods
# away (after the handover) or the new ones (after an abort, with the old template back). A week:
# an operator away longer than that lets the controller replace the old pods with the new ones
# on STANDBY, which stops trading but never lets two versions trade.
HANDOVER_HOLD_SECONDS = 7 * 24 * 3600


def control_name(strategy: str) -> str:
    return f"{strategy}-control"


def ack_name(strategy: str) -> str:
    return f"{strategy}-ack"


def identity_name(strategy: str) -> str:
    """The strategy pods' ServiceAccount (and its Role and RoleBinding)."""
    return f"{strategy}-strategy"


def owner_reference(strategy: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Strategy",
        "name": strategy,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def image_ref(spec: StrategySpec, version: str, pinned: bool = True) -> str:
    """`<repository>:<version>`, with the spec's digest (`@sha256:…`) when it pins one and
    PINNED: the digest decides what the node runs; the tag says which version it is."""
    repository, sep, digest = spec.image.partition(DIGEST_SEPARATOR)
    return f"{repository}:{version}" + (f"{sep}{digest}" if sep and pinned else "")


def deployment(
    name: str,
    namespace: str,
    uid: str,
    spec: StrategySpec,
    version: str,
    replicas: int,
    image: str | None = None,
    handover: bool = False,
) -> dict[str, Any]:
    """The Deployment for VERSION at REPLICAS (the decision), running IMAGE (default: the spec's
    reference for VERSION), with its fingerprint annotation. HANDOVER: the old version's pods
    stay beside VERSION's (a warm handover under way); otherwise one version at a time."""
    labels = {LABEL_STRATEGY: name, **MANAGED_BY}
    pod_labels = {
        **(spec.pod_template.labels if spec.pod_template and spec.pod_template.labels else {}),
        **labels,
        LABEL_VERSION: version,
    }
    env: list[dict[str, Any]] = [
        {"name": "STRATOPS_STRATEGY", "value": name},
        {"name": "STRATOPS_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "STRATOPS_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "STRATOPS_CONTROL_FILE", "value": f"{MOUNT_PATH}/control.json"},
        {"name": "STRATOPS_VERSION", "value": version},
        {"name": "STRATOPS_PROBE_PORT", "value": str(PROBE_PORT)},
    ]
    for e in spec.pod_template.env if spec.pod_template and spec.pod_template.env else []:
        if e.name.startswith(RESERVED_ENV_PREFIX):
            continue  # refused at admission; never let one shadow the operator's (the last duplicate wins)
        if e.secret_key_ref is not None:
            env.append(
                {
                    "name": e.name,
                    "valueFrom": {"secretKeyRef": {"name": e.secret_key_ref.name, "key": e.secret_key_ref.key}},
                }
            )
        else:
            env.append({"name": e.name, "value": e.value or ""})
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image or image_ref(spec, version),
        "env": env,
        "volumeMounts": [{"name": "control", "mountPath": MOUNT_PATH, "readOnly": True}],
        "ports": [{"name": "probes", "containerPort": PROBE_PORT}],
        # Ready once the process applied and acknowledged a control document (the SDK's serve):
        # a pod that cannot hear the operator never counts toward a rollout.
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": PROBE_PORT},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        # Restarted only when it stops answering for a minute: a restart of a trading process
        # is itself an event, not a remedy for a slow second.
        "livenessProbe": {
            "httpGet": {"path": LIVE_PATH, "port": PROBE_PORT},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
    }
    tpl = spec.pod_template
    res = spec.pod_template.resources if spec.pod_template else None
    if res is not None and (res.requests or res.limits):
        container["resources"] = {k: v for k, v in (("requests", res.requests), ("limits", res.limits)) if v}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels, LABEL_COMPONENT: "strategy"},
            "ownerReferences": [owner_reference(name, uid)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {LABEL_STRATEGY: name}},
            # One version at a time, except during a warm handover, where the control document
            # lets only one of them trade (stratops.lifecycle.handover).
            **(
                {
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}},
                    "minReadySeconds": HANDOVER_HOLD_SECONDS,
                    "progressDeadlineSeconds": HANDOVER_HOLD_SECONDS + 1,
                }
                if handover
                else {"strategy": {"type": "Recreate"}}
            ),
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": identity_name(name),
                    "containers": [container],
                    "volumes": [{"name": "control", "configMap": {"name": control_name(name)}}],
                    # SIGTERM first: the SDK cancels working orders, acknowledges its exit, and
                    # the process ends well inside this.
                    "terminationGracePeriodSeconds": 30,
                    **({"nodeSelector": dict(tpl.node_selector)} if tpl and tpl.node_selector else {}),
                    **(
                        {"tolerations": [t.model_dump(exclude_none=True) for t in tpl.tolerations]}
                        if tpl and tpl.tolerations
                        else {}
                    ),
                },
            },
        },
    }
    body["metadata"]["annotations"] = {ANNOTATION_DESIRED: fingerprint(body)}
    return body


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def canonical_quantity(q: Any) -> str:
    """A resource quantity as a plain number, so '0.5' and '500m', '1Gi' and '1073741824' match."""
    text = str(q).strip()
    try:
        for suffix, mult in _BINARY.items():
            if text.endswith(suffix):
                return str((Decimal(text[: -len(suffix)]) * mult).normalize())
        if text and text[-1] in _DECIMAL and not text[-1].isdigit():
            return str((Decimal(text[:-1]) * _DECIMAL[text[-1]]).normalize())
        return str(Decimal(text).normalize())
    except InvalidOperation:
        return text


def _env(e: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": e.get("name")}
    vf = e.get("valueFrom")
    if vf:
        if "fieldRef" in vf:  # the API server defaults fieldRef.apiVersion to v1
            out["fieldRef"] = vf["fieldRef"].get("fieldPath")
        else:
            out["valueFrom"] = vf
    else:
        out["value"] = e.get("value") or ""
    return out


def _projection(dep: dict[str, Any]) -> dict[str, Any]:
    """The fields of a Deployment the operator sets, normalised (API defaults ignored)."""
    spec = dep.get("spec") or {}
    tpl = spec.get("template") or {}
    pod = tpl.get("spec") or {}
    containers = []
    for c in pod.get("containers") or []:
        containers.append(
            {
                "name": c.get("name"),
                "image": c.get("image"),
                "env": [_env(e) for e in c.get("env") or []],
                "resources": {
                    k: {r: canonical_quantity(q) for r, q in v.items()}
                    for k, v in (c.get("resources") or {}).items()
                    if v
                },
                "volumeMounts": [
                    {"name": m.get("name"), "mountPath": m.get("mountPath"), "readOnly": bool(m.get("readOnly"))}
                    for m in c.get("volumeMounts") or []
                ],
                "command": c.get("command"),
                "args": c.get("args"),
                "probes": [
                    ((c.get(k) or {}).get("httpGet") or {}).get("path") for k in ("readinessProbe", "livenessProbe")
                ],
            }
        )
    volumes = [
        {"name": v.get("name"), "configMap": (v.get("configMap") or {}).get("name")} for v in pod.get("volumes") or []
    ]
    rollout = spec.get("strategy") or {}
    return {
        # Only when not the default (Recreate, no minReadySeconds): Deployments written before
        # warm handovers keep their fingerprints, so an upgrade of the operator is no drift.
        **({"rollout": rollout} if rollout.get("type", "Recreate") != "Recreate" else {}),
        **({"minReadySeconds": spec["minReadySeconds"]} if spec.get("minReadySeconds") else {}),
        "replicas": spec.get("replicas"),
        "labels": (tpl.get("metadata") or {}).get("labels") or {},
        "containers": containers,
        "initContainers": len(pod.get("initContainers") or []),
        "volumes": volumes,
        "serviceAccountName": pod.get("serviceAccountName") or "default",
        "nodeSelector": pod.get("nodeSelector") or {},
        "tolerations": [
            {k: t.get(k) for k in ("key", "operator", "value", "effect")} for t in pod.get("tolerations") or []
        ],
    }


def fingerprint(dep: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_projection(dep), sort_keys=True).encode()).hexdigest()[:16]


def configmap(
    name: str, namespace: str, strategy: str, uid: str, component: str, data: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_STRATEGY: strategy, LABEL_COMPONENT: component, **MANAGED_BY},
            "ownerReferences": [owner_reference(strategy, uid)],
        },
        "data": data,
    }


def identity(strategy: str, namespace: str, uid: str) -> list[dict[str, Any]]:
    """The strategy pods' ServiceAccount, Role and RoleBinding (see the module's docstring)."""
    name = identity_name(strategy)

    def meta() -> dict[str, Any]:  # one per object: a caller may change one without the others
        return {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_STRATEGY: strategy, LABEL_COMPONENT: "identity", **MANAGED_BY},
            "ownerReferences": [owner_reference(strategy, uid)],
        }

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta()},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(),
            "rules": [
                # list and watch by name: the SDK's watch carries fieldSelector metadata.name.
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [control_name(strategy)],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [ack_name(strategy)],
                    "verbs": ["patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]
