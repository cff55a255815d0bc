"""The validating webhooks (served when STRATOPS_WEBHOOK_PORT is set): promotion and live
changes, signatures, images, Secrets and Prometheus URLs (stratops.admission.review)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import kopf
from pydantic import ValidationError

from stratops import GROUP, VERSION
from stratops.admission.policies import ANNOTATION_TRADING_AUTHOR, VERB_SIGN_FOR_OTHERS
from stratops.admission.webhooks import WEBHOOK_PATHS
from stratops.controller.runtime import plain
from stratops.k8s.executor import Executor
from stratops.models.gate import GateSpec
from stratops.models.strategy import StrategySpec

if TYPE_CHECKING:
    from stratops.admission import review


def _allow_lists() -> review.AllowLists:
    from stratops.admission import review

    def listed(var: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in os.environ.get(var, "").split(",") if x.strip())

    return review.AllowLists(
        image_registries=listed("STRATOPS_ALLOWED_REGISTRIES"),
        prometheus_urls=listed("STRATOPS_ALLOWED_PROMETHEUS_URLS"),
        strategy_secret_labels=review.parse_selector(os.environ.get("STRATOPS_STRATEGY_SECRET_LABELS", "")),
        monitor_secret_labels=review.parse_selector(os.environ.get("STRATOPS_MONITOR_SECRET_LABELS", "")),
    )


def _refuse(problems: list[str]) -> None:
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=403)


def _parsed(model: Any, raw: Any, what: str) -> Any:
    """The spec as the operator reads it; anything it cannot read is refused (fail closed),
    naming the field as `stratops validate` does."""

    from stratops.models.validate import describe_errors

    try:
        return model.model_validate(plain(raw or {}))
    except ValidationError as e:
        problems = "; ".join(f"{f}: {m}" for f, m in describe_errors(e))
        raise kopf.AdmissionError(f"{what} cannot be read, so it cannot be checked: {problems}", code=400) from e


def validate_gate(body: kopf.Body, old: Any, userinfo: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    """Signature times and four eyes (stratops.admission.review.review_gate); who signs is the
    API server's own check (stratops.admission.policies)."""
    from stratops.admission import review

    ex: Executor = memo.runtime.executor
    ns, user = body["metadata"]["namespace"], (userinfo or {}).get("username", "")
    new_spec = _parsed(GateSpec, body.get("spec"), "spec")
    old_spec = _parsed(GateSpec, old.get("spec"), "the stored spec") if old else None
    strategies = {}
    for s in new_spec.strategies:
        raw = ex.read_strategy(ns, s)
        if raw is not None:
            sspec = _parsed(StrategySpec, raw.get("spec"), f"strategy {s}'s spec")
            strategies[s] = (
                sspec,
                ((raw.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TRADING_AUTHOR),
            )
    others = ex.may(
        ns, user, list((userinfo or {}).get("groups") or []), "gates", VERB_SIGN_FOR_OTHERS, body["metadata"]["name"]
    )
    _refuse(review.review_gate(old_spec, new_spec, datetime.now(UTC), others, strategies))


def validate_strategy(
    body: kopf.Body, old: Any, userinfo: dict[str, Any], memo: kopf.Memo, warnings: list[str], **_: Any
) -> None:
    """Promotion and live changes against the pre-launch gate, the gate's cadence, allowed
    images and Secrets (stratops.admission.review)."""
    from stratops.admission import review

    ex: Executor = memo.runtime.executor
    meta = body["metadata"]
    ns, name, user = meta["namespace"], meta["name"], (userinfo or {}).get("username", "")
    new_spec = _parsed(StrategySpec, body.get("spec"), "spec")
    old_spec = _parsed(StrategySpec, old.get("spec"), "the stored spec") if old else None
    was_live = bool(old) and (old.get("status") or {}).get("mode") == "live"
    named = [new_spec.gates.pre_launch] if new_spec.gates and new_spec.gates.pre_launch else []
    gates = {
        g: (_parsed(GateSpec, raw.get("spec"), f"gate {g}'s spec") if (raw := ex.read_gate(ns, g)) else None)
        for g in named
    }
    author = (meta.get("annotations") or {}).get(ANNOTATION_TRADING_AUTHOR)
    allow = _allow_lists()
    problems = review.review_strategy(name, old_spec, was_live, new_spec, user, author, gates, datetime.now(UTC))
    problems += review.review_image(new_spec, allow)
    more, warned = review.review_secrets(
        review.secret_references(new_spec), lambda s: ex.secret_labels(ns, s), allow.strategy_secret_labels
    )
    warnings.extend(warned)
    _refuse(problems + more)


def validate_monitor(body: kopf.Body, memo: kopf.Memo, warnings: list[str], **_: Any) -> None:
    """A monitor's Prometheus URL and token Secret against the allow-lists."""
    from stratops.admission import review
    from stratops.models.monitor import MonitorSpec

    ex: Executor = memo.runtime.executor
    ns = body["metadata"]["namespace"]
    spec = _parsed(MonitorSpec, body.get("spec"), "spec")
    problems, warned = review.review_monitor(spec, _allow_lists(), lambda s: ex.secret_labels(ns, s))
    warnings.extend(warned)
    _refuse(problems)


def register(registry: kopf.OperatorRegistry) -> None:
    """kopf refuses to start with admission handlers and no server: the webhook handlers are
    registered only when they are served (STRATOPS_WEBHOOK_PORT). Each fails closed, and its
    configuration (stratops.admission.webhooks, the chart) sends it only spec changes: a command
    annotation never depends on it."""
    if not os.environ.get("STRATOPS_WEBHOOK_PORT"):
        return
    for plural, fn in (("gates", validate_gate), ("strategies", validate_strategy), ("monitors", validate_monitor)):
        kopf.on.validate(
            GROUP, VERSION, plural, id=WEBHOOK_PATHS[plural], operations=["CREATE", "UPDATE"], registry=registry
        )(fn)
