"""Invalid manifests shared by the offline validator's unit tests and the API server's e2e tests.

Each case starts from a valid example, breaks one thing, and names the field and a phrase that
both the API server's message and `stratops validate` must contain.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(rel: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / rel).read_text())


# A live strategy's image is pinned by digest; the examples run on paper, unpinned.
DIGEST = "sha256:" + "5e" * 32


def pinned(image: str, digest: str = DIGEST) -> str:
    """IMAGE pinned by DIGEST (what a live strategy needs)."""
    return image.split("@", 1)[0] + "@" + digest


def desk() -> list[dict[str, Any]]:
    docs = []
    for f in sorted(EXAMPLES.rglob("*.yaml")):
        docs.extend(
            d
            for d in yaml.safe_load_all(f.read_text())
            if d and str(d.get("apiVersion", "")).startswith("stratops.io/")
        )
    return docs


@dataclass(frozen=True)
class Bad:
    id: str
    base: str
    mutate: Callable[[dict[str, Any]], None]
    field: str
    phrase: str

    def document(self) -> dict[str, Any]:
        doc = copy.deepcopy(example(self.base))
        self.mutate(doc)
        return doc


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()


def _both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        for m in mutations:
            m(doc)

    return mutate


def _live_without_gates(doc: dict[str, Any]) -> None:
    doc["spec"]["mode"] = "live"
    del doc["spec"]["gates"]


def _live_without_price_collar(doc: dict[str, Any]) -> None:
    doc["spec"]["mode"] = "live"
    del doc["spec"]["riskLimits"]["priceCollarBps"]


def _live_without_venues(doc: dict[str, Any]) -> None:
    doc["spec"]["mode"] = "live"
    doc["spec"]["riskLimits"]["venues"] = []


def _signature_for_unknown_item(doc: dict[str, Any]) -> None:
    doc["spec"]["signatures"] = [
        {"item": "no-such-item", "signer": "alice", "signedAt": "2026-11-24T08:00:00Z", "evidence": "ok"}
    ]


STRATEGY, PSI, GATE = "strategy.yaml", "monitors/02-data-feature-psi.yaml", "gates/daily.yaml"
LATENCY = "monitors/09-model-signal-latency.yaml"

BAD: tuple[Bad, ...] = (
    Bad(
        "strategy-missing-risk-limits", STRATEGY, _set("spec.riskLimits", _DELETE), "spec.riskLimits", "Required value"
    ),
    Bad("strategy-missing-image", STRATEGY, _set("spec.image", _DELETE), "spec.image", "Required value"),
    Bad(
        "strategy-negative-position",
        STRATEGY,
        _set("spec.riskLimits.maxPosition", -1),
        "spec.riskLimits.maxPosition",
        "greater than 0",
    ),
    Bad(
        "strategy-zero-order-rate",
        STRATEGY,
        _set("spec.riskLimits.maxOrderRate", 0),
        "spec.riskLimits.maxOrderRate",
        "greater than 0",
    ),
    Bad("strategy-replicas-string", STRATEGY, _set("spec.replicas", "two"), "spec.replicas", "must be of type integer"),
    Bad("strategy-too-many-replicas", STRATEGY, _set("spec.replicas", 11), "spec.replicas", "less than or equal to 10"),
    Bad("strategy-bad-mode", STRATEGY, _set("spec.mode", "demo"), "spec.mode", "Unsupported value"),
    Bad(
        "strategy-live-without-gates",
        STRATEGY,
        _live_without_gates,
        "spec.gates",
        "a live strategy must name its pre-launch gate",
    ),
    Bad(
        "strategy-live-without-price-collar",
        STRATEGY,
        _live_without_price_collar,
        "spec.riskLimits",
        "a live strategy must declare spec.riskLimits",
    ),
    Bad(
        "strategy-live-without-venues",
        STRATEGY,
        _live_without_venues,
        "spec.riskLimits",
        "a live strategy must declare spec.riskLimits",
    ),
    Bad(
        "strategy-image-with-tag", STRATEGY, _set("spec.image", "registry.example/x:1.0"), "spec.image", "should match"
    ),
    Bad(
        "strategy-image-short-digest",
        STRATEGY,
        _set("spec.image", "registry.example/x@sha256:abc"),
        "spec.image",
        "should match",
    ),
    Bad(
        "strategy-live-unpinned",
        STRATEGY,
        _set("spec.mode", "live"),
        "spec.image",
        "a live strategy must pin spec.image by digest",
    ),
    Bad(
        "strategy-ack-deadline-unbounded",
        STRATEGY,
        _set("spec.killSwitch.ackDeadline", "9999h"),
        "spec.killSwitch.ackDeadline",
        "killSwitch.ackDeadline must be at most 120s",
    ),
    Bad("gate-zero-min-signers", GATE, _set("spec.minSigners", 0), "spec.minSigners", "greater than or equal to 1"),
    Bad(
        "strategy-reserved-env",
        STRATEGY,
        _set("spec.podTemplate.env.0.name", "STRATOPS_STRATEGY"),
        "spec.podTemplate.env[0].name",
        "STRATOPS_* variables are set by the operator",
    ),
    Bad("strategy-name-too-long", STRATEGY, _set("metadata.name", "a" * 64), "metadata.name", "at most 63 characters"),
    Bad(
        "strategy-number-as-string",
        STRATEGY,
        _set("spec.riskLimits.maxPosition", "2000000"),
        "spec.riskLimits.maxPosition",
        "must be of type number",
    ),
    Bad(
        "gate-duplicate-item-ids", GATE, _set("spec.items.1.id", "data-feeds-fresh"), "spec.items[1]", "Duplicate value"
    ),
    Bad(
        "gate-signature-without-offset",
        GATE,
        _set(
            "spec.signatures",
            [{"item": "data-feeds-fresh", "signer": "a", "signedAt": "2026-11-24T08:00:00", "evidence": "e"}],
        ),
        "spec.signatures[0].signedAt",
        "must be of type date-time",
    ),
    Bad("strategy-bad-duration", STRATEGY, _set("spec.barInterval", "1 minute"), "spec.barInterval", "should match"),
    Bad(
        "strategy-decay-shorter-than-bar",
        STRATEGY,
        _set("spec.decayHorizon", "30s"),
        "spec.decayHorizon",
        "spec.decayHorizon must be longer than spec.barInterval",
    ),
    Bad(
        "strategy-same-backup-endpoint",
        STRATEGY,
        _set("spec.brokers.backup.endpoint", "fix://fix.prime-a.example:9876"),
        "spec.brokers.backup.endpoint",
        "must differ",
    ),
    Bad("strategy-unknown-field", STRATEGY, _set("spec.leverage", 10), "spec.leverage", "unknown field"),
    Bad("monitor-unknown-check-kind", PSI, _set("spec.check.kind", "vibes"), "spec.check.kind", "Unsupported value"),
    Bad(
        "monitor-kind-without-member",
        PSI,
        _set("spec.check.kind", "ks"),
        "spec.check.ks",
        "check.ks is required when check.kind is ks",
    ),
    Bad(
        "monitor-frequency-too-long",
        PSI,
        _set("spec.frequency", "800h"),
        "spec.frequency",
        "spec.frequency must be between 1s and 744h",
    ),
    Bad(
        "monitor-negative-threshold",
        PSI,
        _set("spec.check.psi.threshold", -0.1),
        "spec.check.psi.threshold",
        "greater than 0",
    ),
    Bad("monitor-bad-layer", PSI, _set("spec.layer", "vibes"), "spec.layer", "Unsupported value"),
    Bad(
        "monitor-bad-severity", PSI, _set("spec.incident.severity", "P2"), "spec.incident.severity", "Unsupported value"
    ),
    Bad("monitor-missing-strategy", PSI, _set("spec.strategy", _DELETE), "spec.strategy", "Required value"),
    Bad(
        "monitor-two-sources",
        PSI,
        _set("spec.source.strategy", {"report": "exposure"}),
        "spec.source",
        "source: set exactly one of prometheus and strategy",
    ),
    Bad(
        "monitor-strategy-report-not-threshold",
        PSI,
        _both(_set("spec.source.prometheus", _DELETE), _set("spec.source.strategy", {"report": "loss"})),
        "spec.check.kind",
        "a monitor of a value the strategy reports (source.strategy) takes check.kind threshold",
    ),
    Bad(
        "monitor-percentile-both-bounds",
        LATENCY,
        _set("spec.check.percentile.valueSeconds", 0.5),
        "spec.check.percentile",
        "set exactly one of valueSeconds and fractionOfDecayHorizon",
    ),
    Bad("gate-bad-cadence", GATE, _set("spec.cadence", "hourly"), "spec.cadence", "Unsupported value"),
    Bad("gate-no-items", GATE, _set("spec.items", []), "spec.items", "at least 1"),
    Bad(
        "gate-signature-unknown-item",
        GATE,
        _signature_for_unknown_item,
        "spec.signatures",
        "every signature must name an item id",
    ),
)


def _both_baselines(doc: dict[str, Any]) -> None:
    doc["spec"]["check"]["psi"]["baseline"]["prometheusRange"] = {
        "query": "x",
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-02-01T00:00:00Z",
    }


def _range_backwards(doc: dict[str, Any]) -> None:
    doc["spec"]["check"]["psi"]["baseline"] = {
        "prometheusRange": {"query": "x", "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    }


def _two_members(doc: dict[str, Any]) -> None:
    doc["spec"]["check"]["threshold"] = {"value": 1}


def _env_value_and_secret(doc: dict[str, Any]) -> None:
    doc["spec"]["podTemplate"]["env"] = [{"name": "X", "value": "1", "secretKeyRef": {"name": "s", "key": "k"}}]


TOPK = "monitors/08-model-top5-features.yaml"
BAD += (
    Bad(
        "monitor-two-baselines",
        PSI,
        _both_baselines,
        "spec.check.psi.baseline",
        "set exactly one of configMapKeyRef and prometheusRange",
    ),
    Bad(
        "monitor-baseline-backwards",
        PSI,
        _range_backwards,
        "spec.check.psi.baseline.prometheusRange.end",
        "end must be after start",
    ),
    Bad("monitor-two-check-members", PSI, _two_members, "spec.check", "set exactly one member"),
    Bad(
        "monitor-topk-min-changed-above-k",
        TOPK,
        _set("spec.check.topKChange.minChanged", 6),
        "spec.check.topKChange.minChanged",
        "must not exceed",
    ),
    Bad(
        "strategy-env-value-and-secret",
        STRATEGY,
        _env_value_and_secret,
        "spec.podTemplate.env[0]",
        "either value or secretKeyRef",
    ),
)


def _kind_without_member(kind: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        doc["spec"]["check"]["kind"] = kind

    return mutate


# Every check kind requires its member: name each kind on a monitor that carries another one.
BAD += tuple(
    Bad(
        f"monitor-{kind}-without-member",
        LATENCY if kind != "percentile" else PSI,
        _kind_without_member(kind),
        f"spec.check.{kind}",
        f"check.{kind} is required when check.kind is {kind}",
    )
    for kind in (
        "threshold",
        "failures",
        "percentile",
        "psi",
        "band",
        "excessCost",
        "concentration",
        "topKChange",
        "barCountMismatch",
        "barAge",
    )
)


# Refused by the operator's webhook (and the offline validator), not by the CRD: checks that
# would cost the API server too much as CEL over free maps, or that need a time zone database.
BAD_AT_WEBHOOK: tuple[Bad, ...] = (
    Bad(
        "strategy-bad-label-key",
        STRATEGY,
        _set("spec.podTemplate.labels", {"not a key": "x"}),
        "spec.podTemplate.labels",
        "is not a label key",
    ),
    Bad(
        "strategy-operator-label",
        STRATEGY,
        _set("spec.podTemplate.labels", {"stratops.io/strategy": "other"}),
        "spec.podTemplate.labels",
        "stratops.io/ labels are the operator's",
    ),
    Bad(
        "strategy-bad-quantity",
        STRATEGY,
        _set("spec.podTemplate.resources.requests.cpu", "lots"),
        "spec.podTemplate.resources.requests",
        "is not a resource name and quantity",
    ),
    Bad(
        "gate-unknown-timezone",
        GATE,
        _set("spec.session.timezone", "Mars/Olympus_Mons"),
        "spec.session.timezone",
        "is not an IANA time zone",
    ),
)
