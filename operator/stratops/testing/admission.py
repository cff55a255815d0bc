"""Admission on the local cluster as the chart sets it up: the policies (CEL, in the API server),
their bindings, and the operator's webhooks, served by an operator on this host.

The test session and `stratops dev up` install these; the policies bind to namespaces labelled
POLICY_LABEL (the tests' namespaces, and those where tests run their own operators), the
webhooks to the namespaces their operator serves.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops import API_VERSION, GROUP, VERSION
from stratops.admission import policies, webhooks
from stratops.k8s.apply import apply
from stratops.testing.wait import wait_for

POLICY_LABEL = {"stratops.io/admission": "enforced"}
NAME_PREFIX = "stratops-local"


def install(
    api: client.ApiClient,
    webhook_url: str | None,
    ca_file: Path | None,
    webhook_namespaces: dict[str, Any] | None,
    policy_namespaces: dict[str, Any] | None = None,
) -> None:
    """Apply the policies, bind them to POLICY_NAMESPACES (a namespace selector; default: the
    namespaces labelled POLICY_LABEL) and, with WEBHOOK_URL, the webhook configuration for the
    namespaces selected by WEBHOOK_NAMESPACES; then wait until the API server enforces them."""
    selector = policy_namespaces if policy_namespaces is not None else {"matchLabels": POLICY_LABEL}
    docs = [*policies.policies(), *policies.bindings(NAME_PREFIX, selector)]
    if webhook_url is not None:
        assert ca_file is not None
        ca = base64.b64encode(ca_file.read_bytes()).decode()
        docs.append(webhooks.configuration(f"{NAME_PREFIX}-admission", webhook_url, ca, webhook_namespaces))
    apply(api, docs)
    wait_enforced(api, webhook_url is not None)


def wait_enforced(api: client.ApiClient, webhooks_too: bool, timeout: float = 60) -> None:
    """Until the API server enforces the policies (it loads them asynchronously): in a probe
    namespace, a dry-run Strategy gets its author recorded, a command that names someone else
    is refused, and (WEBHOOKS_TOO) a promotion without signatures reaches the webhook."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"t-admission-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {**POLICY_LABEL, "stratops.io/test": "true"}}})
    probe = {
        "apiVersion": API_VERSION,
        "kind": "Strategy",
        "metadata": {"name": "probe"},
        "spec": {
            "image": "registry.example/probe",
            "version": "1",
            "riskLimits": {"maxPosition": 1, "maxOrderRate": 1, "maxDailyLoss": 1},
            "brokers": {"primary": {"name": "b", "endpoint": "fix://b:1"}},
        },
    }

    def refusal(doc: dict[str, Any]) -> str | None:
        try:
            out = custom.create_namespaced_custom_object(GROUP, VERSION, ns, "strategies", doc, dry_run="All")
        except ApiException as e:
            return str(json.loads(e.body or "{}").get("message") or e.reason)
        return (
            None if (out["metadata"].get("annotations") or {}).get(policies.ANNOTATION_TRADING_AUTHOR) else "no author"
        )

    state = {"last": "not checked yet"}

    def enforced() -> bool:
        if (why := refusal(probe)) is not None:
            state["last"] = f"a plain strategy: {why}"
            return False
        forged = {
            **probe,
            "metadata": {"name": "probe", "annotations": {f"{GROUP}/kill": '{"by": "nobody-at-all", "reason": "x"}'}},
        }
        # The admin may command for others (cluster-admin holds every verb): an unattributed value is the probe.
        unattributed = {**probe, "metadata": {"name": "probe", "annotations": {f"{GROUP}/kill": '{"reason": "x"}'}}}
        if (why := refusal(forged)) is not None:
            state["last"] = f"a command by another user, from the admin: {why}"
            return False
        if "a command must begin" not in (why := refusal(unattributed) or ""):
            state["last"] = f"an unattributed command: {why or 'accepted'}"
            return False
        if webhooks_too:
            live = {
                **probe,
                "spec": {
                    **probe["spec"],
                    "mode": "live",
                    "image": "registry.example/probe@sha256:" + "0" * 64,
                    "gates": {"preLaunch": "no-such-gate"},
                    "riskLimits": {
                        "maxPosition": 1,
                        "maxOrderRate": 1,
                        "maxDailyLoss": 1,
                        "maxOrderValue": 1,
                        "maxOrderVolume": 1,
                        "priceCollarBps": 1,
                        "maxMessageRate": 1,
                        "instruments": ["X"],
                        "venues": ["V"],
                    },
                },
            }
            if "strategy-spec.stratops.io" not in (why := refusal(live) or ""):
                state["last"] = f"an unsigned live strategy: {why or 'accepted'}"
                return False
        return True

    try:
        try:
            wait_for(enforced, timeout=timeout, interval=0.5, what="the admission policies and webhooks enforced")
        except TimeoutError as e:
            raise TimeoutError(f"{e}: {state['last']}") from None
    finally:
        core.delete_namespace(ns, propagation_policy="Background")
