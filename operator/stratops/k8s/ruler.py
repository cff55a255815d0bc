"""The Prometheus-ruler mode's receiver address: the acting replica publishes itself as the one
endpoint of its receiver Service (a Service without a selector, and an EndpointSlice this module
writes), so Alertmanager's notifications reach the replica that acts on them. What a replica
hears lives in its memory; a standby's receiver would take notifications the acting replica
never sees. The pattern is Kubernetes's own for a Service with one active backend."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

MANAGED_BY = "stratops.io"


def slice_name(service: str) -> str:
    return f"{service}-acting"


def receiver_slice(service: str, address: str, port: int) -> dict[str, Any]:
    """The EndpointSlice naming ADDRESS:PORT as SERVICE's one endpoint (port name `receiver`,
    as the chart's Service names it)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(service),
            "labels": {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": MANAGED_BY},
        },
        "addressType": "IPv6" if ":" in address else "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "receiver", "port": port, "protocol": "TCP"}],
    }


def publish_receiver(api: client.ApiClient, namespace: str, service: str, address: str, port: int) -> bool:
    """Make ADDRESS:PORT the receiver Service's endpoint; True when it was not already."""
    disc = client.DiscoveryV1Api(api)
    want = receiver_slice(service, address, port)
    try:
        have = disc.read_namespaced_endpoint_slice(slice_name(service), namespace)
    except ApiException as e:
        if e.status != 404:
            raise
        disc.create_namespaced_endpoint_slice(namespace, want)
        return True
    endpoints = [(list(e.addresses), bool(e.conditions and e.conditions.ready)) for e in have.endpoints or []]
    ports = [(p.name, p.port) for p in have.ports or []]
    if endpoints == [([address], True)] and ports == [("receiver", port)]:
        return False
    want["metadata"]["resourceVersion"] = have.metadata.resource_version
    disc.replace_namespaced_endpoint_slice(slice_name(service), namespace, want)
    return True


def receiver_endpoint(api: client.ApiClient, namespace: str, service: str) -> tuple[str, int] | None:
    """The receiver Service's published endpoint (address, port), if any."""
    try:
        s = client.DiscoveryV1Api(api).read_namespaced_endpoint_slice(slice_name(service), namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    if not s.endpoints or not s.ports:
        return None
    return s.endpoints[0].addresses[0], int(s.ports[0].port)
