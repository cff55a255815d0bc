"""What the CLI reads and writes, as the user who runs it (their kubeconfig: the API server
authorizes and attributes every request). The k8s layer is the only code that calls the API:
the CLI's commands go through here. Errors are the API server's (ApiException), unchanged, so
each command says what it was refused."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops import GROUP, VERSION


class DeskApi:
    """The desk's resources (stratops.io kinds by plural) and the few core objects the CLI shows."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)

    def list(self, plural: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Every PLURAL object in NAMESPACE (None: every namespace)."""
        kw = {"label_selector": label_selector} if label_selector else {}
        if namespace is None:
            out = self._custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)
        else:
            out = self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kw)
        items: list[dict[str, Any]] = out["items"]
        return items

    def get(self, plural: str, namespace: str, name: str, timeout: float | None = None) -> dict[str, Any]:
        """Object NAME; TIMEOUT (seconds) bounds the request where an answer is needed quickly."""
        kw = {"_request_timeout": timeout} if timeout is not None else {}
        obj: dict[str, Any] = self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, **kw)
        return obj

    def patch(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = self._custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name, patch
        )
        return obj

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = self._custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        return obj

    def delete(self, plural: str, namespace: str, name: str) -> None:
        self._custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Deployment NAME as plain data (None: there is none)."""
        try:
            return self._plain(self._apps.read_namespaced_deployment(name, namespace))
        except ApiException as e:
            if e.status != 404:
                raise
            return None

    def config_map_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """ConfigMap NAME's data (None: there is none)."""
        try:
            return dict(self._core.read_namespaced_config_map(name, namespace).data or {})
        except ApiException as e:
            if e.status != 404:
                raise
            return None

    def pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return [self._plain(p) for p in self._core.list_namespaced_pod(namespace, label_selector=label_selector).items]

    def events(self, namespace: str, involved: str) -> list[dict[str, Any]]:
        """Events about the object named INVOLVED, oldest first."""
        items = self._core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={involved}").items
        return [self._plain(e) for e in items]

    def whoami(self) -> str | None:
        """The user the API server authenticates this client as (SelfSubjectReview)."""
        review = client.AuthenticationV1Api(self._api).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        name = review.status.user_info.username
        return str(name) if name else None

    def post_to_pod(self, namespace: str, pod: str, port: int, path: str) -> None:
        """POST PATH to POD's PORT through the API server's pod proxy (the user's own rights)."""
        self._core.connect_post_namespaced_pod_proxy_with_path(f"{pod}:{port}", namespace, path.lstrip("/"))

    def _plain(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return out
