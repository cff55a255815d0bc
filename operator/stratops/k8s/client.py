"""The Kubernetes API client the operator and the CLI use (kubeconfig or in-cluster)."""

from __future__ import annotations

import os

from kubernetes import client, config


def drop_managed_fields(obj: object) -> None:
    """OBJ (an object as the API server answered it) without metadata.managedFields, in place:
    server-side apply's bookkeeping, read by no decision, often half an object (issue 21)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(meta, dict):
        meta.pop("managedFields", None)


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In a pod: the service account; elsewhere: KUBECONFIG or ~/.kube/config."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
        return client.ApiClient()
    # Read KUBECONFIG now: the kubernetes package reads it once, at import time.
    return config.new_client_from_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"), context=context)


def bounded(api: client.ApiClient, connect: float = 10.0, read: float | None = None) -> client.ApiClient:
    """API: every request without a timeout of its own gets (CONNECT, READ) seconds. The
    kubernetes client waits forever by default, so one half-open connection to an API server
    (a failover, a dropped NAT entry) could hold a kill-switch's thread for good; bounded, the
    request fails and the reconcile is retried. READ defaults to STRATOPS_API_TIMEOUT_SECONDS
    (30). For the operator's requests, never for watches (kopf runs its own)."""
    read = float(os.environ.get("STRATOPS_API_TIMEOUT_SECONDS", "30")) if read is None else read
    rest = api.rest_client
    request = rest.request

    def with_timeout(*args: object, **kwargs: object) -> object:
        if not kwargs.get("_request_timeout"):
            kwargs["_request_timeout"] = (connect, read)
        return request(*args, **kwargs)

    rest.request = with_timeout  # the verb methods (GET, PATCH, ...) call self.request
    return api
