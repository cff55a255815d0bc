"""The Kubernetes API client the operator and the CLI use (kubeconfig or in-cluster)."""

from __future__ import annotations

import os

from kubernetes import client, config


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In a pod: the service account; elsewhere: KUBECONFIG or ~/.kube/config."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
        return client.ApiClient()
    # Read KUBECONFIG now: the kubernetes package reads it once, at import time.
    return config.new_client_from_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"), context=context)
