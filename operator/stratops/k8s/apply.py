"""Server-side apply of manifests (CRDs, examples) and waiting for CRDs to be served."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, dynamic

from stratops.polling import poll

FIELD_MANAGER = "stratops"


def load_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every YAML document in PATHS (files, or directories read recursively in name order)."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.rglob("*.yaml")) + sorted(path.rglob("*.yml")) if path.is_dir() else [path]
        for f in files:
            docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
    return docs


def apply(
    api: client.ApiClient,
    docs: Iterable[dict[str, Any]],
    namespace: str | None = None,
    field_manager: str = FIELD_MANAGER,
) -> list[Any]:
    """Server-side apply each document; namespaced ones go to NAMESPACE when they name none."""
    dyn = dynamic.DynamicClient(api)
    applied = []
    for doc in docs:
        res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        kw: dict[str, Any] = {}
        if res.namespaced:
            kw["namespace"] = doc.get("metadata", {}).get("namespace") or namespace or "default"
        applied.append(res.server_side_apply(body=doc, field_manager=field_manager, force_conflicts=True, **kw))
    return applied


def install_crds(api: client.ApiClient, crd_dir: Path, timeout: float = 60.0) -> list[str]:
    """Apply every CRD in CRD_DIR and wait until the API server serves each one."""
    docs = [d for d in load_documents([crd_dir]) if d.get("kind") == "CustomResourceDefinition"]
    apply(api, docs)
    ext = client.ApiextensionsV1Api(api)
    names = [d["metadata"]["name"] for d in docs]
    pending = set(names)

    def established() -> bool:
        for name in list(pending):
            crd = ext.read_custom_resource_definition(name)
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") == "True" and conds.get("NamesAccepted") == "True":
                pending.discard(name)
        return not pending

    if not poll(established, timeout, 0.2):
        raise TimeoutError(f"CRDs not established after {timeout:.0f}s: {sorted(pending)}")
    return names
