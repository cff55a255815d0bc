"""Persist audit entries in ConfigMaps (see stratops.audit): read, merge, replace at the
resourceVersion read, retry on a conflict. Not owned by the Strategy: history outlives it."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops.audit import DATA_KEY, RECORD_LABEL, audit_name, merge
from stratops.lifecycle import manifests

log = logging.getLogger("stratops.audit")


class AuditLog:
    def __init__(self, core: client.CoreV1Api) -> None:
        self.core = core

    def append(self, namespace: str, kind: str, name: str, entries: list[dict[str, Any]], now: datetime) -> int:
        """Add ENTRIES to KIND/NAME's audit ConfigMap for NOW's month; returns how many were new."""
        if not entries:
            return 0
        cm = audit_name(kind, name, now)
        for _ in range(8):
            try:
                current = self.core.read_namespaced_config_map(cm, namespace)
            except ApiException as e:
                if e.status != 404:
                    raise
                text, added = merge("", entries)
                body = {"metadata": {"name": cm, "namespace": namespace, "labels": {
                    RECORD_LABEL: "audit", "stratops.io/kind": kind.lower(), manifests.LABEL_STRATEGY if kind == "Strategy" else "stratops.io/gate": name[:63],
                    "stratops.io/month": f"{now:%Y%m}"}}, "data": {DATA_KEY: text}}
                try:
                    self.core.create_namespaced_config_map(namespace, body)
                    return added
                except ApiException as e2:
                    if e2.status == 409:
                        continue  # created meanwhile: merge into it
                    raise
            text, added = merge((current.data or {}).get(DATA_KEY, ""), entries)
            if not added:
                return 0
            current.data = {**(current.data or {}), DATA_KEY: text}
            try:
                self.core.replace_namespaced_config_map(cm, namespace, current)
                return added
            except ApiException as e:
                if e.status != 409:
                    raise
        log.error("audit entries for %s/%s not written after repeated conflicts", namespace, name)
        raise RuntimeError(f"audit ConfigMap {namespace}/{cm}: too many conflicts")
