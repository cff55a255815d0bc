"""kopf's peering objects as read, for the shard layout guard (stratops.lifecycle.shard)."""

from __future__ import annotations

from typing import Any

from kubernetes import client


def read_peerings(api: client.ApiClient, namespaces: list[str] | None) -> list[tuple[str, dict[str, Any]]]:
    """(name, status) of every KopfPeering in NAMESPACES, or of every ClusterKopfPeering (None)."""
    custom = client.CustomObjectsApi(api)
    if namespaces is None:
        items = custom.list_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings")["items"]
    else:
        items = [
            i
            for ns in namespaces
            for i in custom.list_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings")["items"]
        ]
    return [(i["metadata"]["name"], i.get("status") or {}) for i in items]
