"""Indexes (observations without API calls) and pokes (wake a daemon when something it
watches changes)."""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from stratops import GROUP, VERSION
from stratops.controller.runtime import LABEL, log, plain, strategy_key
from stratops.controller.strategy import brief
from stratops.handlers import sharding
from stratops.lifecycle import manifests
from stratops.lifecycle.observe import (
    configmap_view,
    deployment_view,
    incident_view,
    pod_view,
)
from stratops.lifecycle.types import ReportMonitor
from stratops.monitors.decide import status_read_by_monitors


# -- indexes: observations without API calls -------------------------------------------------
def strategy_deployments(namespace: str, labels: dict[str, str], body: kopf.Body, **_: Any) -> dict:
    return {strategy_key(namespace, labels[LABEL]): deployment_view(plain(body))}


def strategy_pods(namespace: str, labels: dict[str, str], body: kopf.Body, **_: Any) -> dict:
    return {strategy_key(namespace, labels[LABEL]): pod_view(plain(body))}


def strategy_configmaps(namespace: str, labels: dict[str, str], body: kopf.Body, **_: Any) -> dict:
    # Every ConfigMap with the labels, with its name and owners: the reconcile reads only its own.
    return {strategy_key(namespace, labels[LABEL]): configmap_view(plain(body), labels[manifests.LABEL_COMPONENT])}


def strategy_incidents(namespace: str, spec: kopf.Spec, body: kopf.Body, **_: Any) -> dict:
    return {strategy_key(namespace, spec.get("strategy", "")): incident_view(plain(body))}


def strategy_report_monitors(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict | None:
    """Monitors of values the strategy reports (exposure, loss): the strategy's daemon evaluates
    them on every report, so they are as fast as the reports."""
    raw = plain(spec)
    if not (raw.get("source") or {}).get("strategy"):
        return None
    try:
        from stratops.models.monitor import MonitorSpec

        m = MonitorSpec.model_validate(raw)  # as the API server admitted it: no defaults made up here
    except ValidationError as e:
        log.warning("[%s/%s] report monitor not read, so not evaluated: %s", namespace, name, brief(e))
        return None
    if m.source.strategy is None or m.check.threshold is None:
        return None
    th, inc = m.check.threshold, m.incident
    return {
        strategy_key(namespace, m.strategy): ReportMonitor(
            name=name,
            report=m.source.strategy.report,
            comparison=th.operator,
            threshold=th.value,
            class_=inc.class_.value,
            severity=inc.severity.value,
            action=inc.action,
            require_rearm=inc.require_rearm,
        )
    }


def monitor_changed(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    if (spec.get("source") or {}).get("strategy"):
        memo.runtime.poke(strategy_key(namespace, spec.get("strategy", "")))


def strategy_gates(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict:
    raw = plain(spec)
    return {strategy_key(namespace, s): (name, raw) for s in spec.get("strategies") or []}


# -- strategies by name: what a monitor evaluation reads of its strategy -------------------------
def strategies_by_name(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {
        strategy_key(namespace, name): {
            "spec": plain(body.get("spec") or {}),
            # Of its status, what the monitors read: a status (history, conditions) is large.
            "status": status_read_by_monitors(body.get("status")),
            "uid": body.get("metadata", {}).get("uid"),
            "generation": body.get("metadata", {}).get("generation"),
        }
    }


# -- pokes: wake the strategy's daemon when something it watches changes -----------------------
def _poke_owner(memo: kopf.Memo, namespace: str | None, labels: dict[str, str]) -> None:
    if LABEL in labels:
        memo.runtime.poke(strategy_key(namespace, labels[LABEL]))


def deployment_changed(namespace: str, labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    _poke_owner(memo, namespace, labels)


def pod_changed(namespace: str, labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    _poke_owner(memo, namespace, labels)


def configmap_changed(namespace: str, labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    # Acks, and any write to the control document or a ConfigMap posing as one: decided at once.
    _poke_owner(memo, namespace, labels)


def incident_changed(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.poke(strategy_key(namespace, spec.get("strategy", "")))


def gate_changed(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    for s in spec.get("strategies") or []:
        memo.runtime.poke(strategy_key(namespace, s))


def strategy_changed(
    type: str | None,
    namespace: str,
    name: str,
    uid: str,
    meta: kopf.Meta,
    memo: kopf.Memo,
    strategy_gates: kopf.Index,
    **_: Any,
) -> None:
    key = strategy_key(namespace, name)
    if type == "DELETED":
        memo.runtime.deleted_strategy(uid)  # its daemon ends: no finalizer held it for kopf to stop it
    else:
        memo.runtime.executor.watched_strategy(namespace, name, meta.get("resourceVersion"))
    memo.runtime.poke(key)
    for gate, _spec in strategy_gates.get(key, []):
        memo.runtime.poke(("gate", namespace, gate))  # pre-launch signatures name the version


def gate_spec_changed(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.poke(("gate", namespace, name))


def register(registry: kopf.OperatorRegistry) -> None:
    owned = {LABEL: kopf.PRESENT}
    documents = {LABEL: kopf.PRESENT, manifests.LABEL_COMPONENT: kopf.PRESENT}
    # This shard's part of the fleet only (all of it without shards); gates are read by every shard.
    mine, theirs, strategy_s = sharding.owned(), sharding.of_a_strategy(), sharding.strategies()
    kopf.index("apps", "v1", "deployments", labels=owned, when=mine, registry=registry)(strategy_deployments)
    kopf.index("", "v1", "pods", labels=owned, when=mine, registry=registry)(strategy_pods)
    kopf.index("", "v1", "configmaps", labels=documents, when=mine, registry=registry)(strategy_configmaps)
    kopf.index(GROUP, VERSION, "incidents", when=theirs, registry=registry)(strategy_incidents)
    kopf.index(GROUP, VERSION, "monitors", when=theirs, registry=registry)(strategy_report_monitors)
    kopf.index(GROUP, VERSION, "gates", registry=registry)(strategy_gates)
    kopf.index(GROUP, VERSION, "strategies", when=strategy_s, registry=registry)(strategies_by_name)
    kopf.on.event(GROUP, VERSION, "monitors", when=theirs, registry=registry)(monitor_changed)
    kopf.on.event("apps", "v1", "deployments", labels=owned, when=mine, registry=registry)(deployment_changed)
    kopf.on.event("", "v1", "pods", labels=owned, when=mine, registry=registry)(pod_changed)
    kopf.on.event("", "v1", "configmaps", labels=documents, when=mine, registry=registry)(configmap_changed)
    kopf.on.event(GROUP, VERSION, "incidents", when=theirs, registry=registry)(incident_changed)
    kopf.on.event(GROUP, VERSION, "gates", registry=registry)(gate_changed)
    kopf.on.event(GROUP, VERSION, "gates", when=sharding.gates(), registry=registry)(gate_spec_changed)
    kopf.on.event(GROUP, VERSION, "strategies", when=strategy_s, registry=registry)(strategy_changed)
