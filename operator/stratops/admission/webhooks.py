"""The operator's validating webhooks: which requests reach them, and how they fail.

Each one fails closed (a write is refused while no replica answers) and receives only spec
changes (`matchConditions`): status writes go to the status subresource, and command
annotations change only metadata, so a kill-switch never waits on a webhook. The chart renders
the same configuration (templates/webhook.yaml; a unit test compares the two); the test harness
and `stratops dev up` install this one, pointed at the operator on the host.
"""

from __future__ import annotations

from typing import Any

from stratops import GROUP, VERSION

WEBHOOK_PATHS = {"gates": "gate-signatures", "strategies": "strategy-spec", "monitors": "monitor-spec"}
SPEC_CHANGED = "request.operation == 'CREATE' || object.spec != oldObject.spec"
TIMEOUT_SECONDS = 10


def webhooks(client_config: dict[str, Any], namespace_selector: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The webhook entries; CLIENT_CONFIG gets `path` (or its `url` a path) per webhook."""
    out = []
    for plural, hook in WEBHOOK_PATHS.items():
        cc = {**client_config}
        if "url" in cc:
            cc["url"] = cc["url"].rstrip("/") + f"/{hook}"
        else:
            cc["service"] = {**cc["service"], "path": f"/{hook}"}
        entry: dict[str, Any] = {
            "name": f"{hook}.{GROUP}",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "timeoutSeconds": TIMEOUT_SECONDS,
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": [VERSION],
                    "resources": [plural],
                    "operations": ["CREATE", "UPDATE"],
                    "scope": "Namespaced",
                }
            ],
            "matchConditions": [{"name": "spec-changed", "expression": SPEC_CHANGED}],
            "clientConfig": cc,
        }
        if namespace_selector is not None:
            entry["namespaceSelector"] = namespace_selector
        out.append(entry)
    return out


def configuration(
    name: str, url: str, ca_bundle: str, namespace_selector: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration for an operator reached at URL (out of cluster)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "stratops"}},
        "webhooks": webhooks({"url": url, "caBundle": ca_bundle}, namespace_selector),
    }
