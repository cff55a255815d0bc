"""The GitOps pull-request check: what a change does, compared with what is merged. Pure.

`stratops validate HEAD… --base BASE` runs the schema checks on HEAD and then these policies
over the change from BASE to HEAD, so a pull request that would be held or refused in the
cluster is red before it is merged:

- a Strategy promoted to live without its pre-launch gate signed (in HEAD) for its spec;
- a live Strategy whose trading-relevant spec changes (image, version, risk limits, brokers,
  pod template, replicas, kill-switch or throttle settings) without that gate signed for the
  new spec;
- a Strategy whose spec.gates.preLaunch names a gate (in HEAD) of another cadence;
- a Monitor removed while its Strategy is live (demote to paper first, in its own change).

"Signed" is the operator's rule (stratops.gates.evaluate.approval_problem): every required
item, by at least minSigners distinct people. The author of the change is the pull request's
(the review is the four eyes), so the author rule is the cluster's, not this check's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stratops import API_VERSION
from stratops.gates.evaluate import evaluate, subject_for
from stratops.models.gate import Cadence, GateSpec
from stratops.models.strategy import Mode, RiskLimits, StrategySpec, trading_changes, trading_hash, trading_spec
from stratops.models.validate import Problem

NUMERIC_LIMITS = (
    "max_position",
    "max_order_rate",
    "max_daily_loss",
    "max_order_value",
    "max_order_volume",
    "price_collar_bps",
    "max_message_rate",
)
Key = tuple[str, str, str]  # kind, namespace, name


class Doc:
    """One stratops document and where it came from."""

    def __init__(self, source: str, index: int, body: dict[str, Any]) -> None:
        self.source, self.index, self.body = source, index, body
        meta = body.get("metadata") or {}
        self.kind, self.name = str(body.get("kind", "")), str(meta.get("name", ""))
        self.namespace = str(meta.get("namespace") or "")

    @property
    def key(self) -> Key:
        return (self.kind, self.namespace, self.name)

    def problem(self, field: str, message: str) -> Problem:
        return Problem(self.source, self.index, self.kind, self.name, field, message)


def load(paths: Iterable[Path]) -> dict[Key, Doc]:
    """The stratops documents under PATHS (files or directories), by kind, namespace, name.
    Unreadable files are left to the schema check, which reports them."""
    out: dict[Key, Doc] = {}
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")) if path.is_dir() else [path]
        for f in files:
            try:
                docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
            except (OSError, yaml.YAMLError):
                continue
            for i, body in enumerate(docs, 1):
                if isinstance(body, dict) and body.get("apiVersion") == API_VERSION:
                    d = Doc(str(f), i, body)
                    out[d.key] = d
    return out


def _strategy(doc: Doc | None) -> StrategySpec | None:
    if doc is None:
        return None
    try:
        return StrategySpec.model_validate(doc.body.get("spec") or {})
    except ValidationError:
        return None  # the schema check reports it


def raised_limits(old: RiskLimits, new: RiskLimits) -> list[str]:
    """What NEW allows that OLD did not, in spec field names."""
    out = []
    for f in NUMERIC_LIMITS:
        a, b = getattr(old, f), getattr(new, f)
        alias = RiskLimits.model_fields[f].alias or f
        if a is not None and (b is None or b > a):
            out.append(f"spec.riskLimits.{alias} {a:g} -> {'removed' if b is None else f'{b:g}'}")
    for f in ("instruments", "venues"):
        a, b = getattr(old, f), getattr(new, f)
        if a is not None:
            added = sorted(set(b or []) - set(a)) if b is not None else ["(the list removed: any)"]
            if added:
                out.append(f"spec.riskLimits.{f} adds {', '.join(added)}")
    return out


def _gate(head: dict[Key, Doc], namespace: str, name: str) -> GateSpec | None:
    doc = head.get(("Gate", namespace, name))
    if doc is None:
        return None
    try:
        return GateSpec.model_validate(doc.body.get("spec") or {})
    except ValidationError:
        return None  # the schema check reports it


def _prelaunch(name: str, spec: StrategySpec, head: dict[Key, Doc], namespace: str, now: datetime) -> str:
    """Why the pre-launch gate does not cover SPEC ('' when it does)."""
    gate = spec.gates.pre_launch if spec.gates else None
    if not gate:
        return "spec.gates.preLaunch names no gate"
    if ("Gate", namespace, gate) not in head:
        return (
            f"pre-launch gate {gate} is not in the change set: commit it signed (stratops gate sign --for, then "
            "export) or sign through a GitOps signer"
        )
    gs = _gate(head, namespace, gate)
    if gs is None:
        return f"pre-launch gate {gate} is invalid (see above)"
    if gs.cadence != Cadence.pre_launch:
        return f"gate {gate} has cadence {gs.cadence.value}, not pre-launch"
    subj = subject_for(name, spec)
    ev = evaluate(gs, now, (subj,))
    if ev.complete:
        return ""
    return f"pre-launch gate {gate} is {ev.state} for {subj}: {ev.why_not()}"


def cadence_problems(head: dict[Key, Doc]) -> list[Problem]:
    """Strategies whose spec.gates.preLaunch names a gate, in the same files, of another cadence."""
    out = []
    for doc in head.values():
        if doc.kind != "Strategy" or (spec := _strategy(doc)) is None or not spec.gates or not spec.gates.pre_launch:
            continue
        gs = _gate(head, doc.namespace, spec.gates.pre_launch)
        if gs is not None and gs.cadence != Cadence.pre_launch:
            out.append(
                doc.problem(
                    "spec.gates.preLaunch",
                    f"Invalid value: gate {spec.gates.pre_launch} has cadence "
                    f"{gs.cadence.value}; name a gate of cadence preLaunch",
                )
            )
    return out


def policy_problems(base: dict[Key, Doc], head: dict[Key, Doc], now: datetime) -> list[Problem]:
    """What the change from BASE to HEAD does that the desk's policy forbids."""
    problems: list[Problem] = []
    live: set[tuple[str, str]] = set()  # (namespace, strategy) live in base or head
    for key, doc in head.items():
        if doc.kind != "Strategy" or (new := _strategy(doc)) is None:
            continue
        old = _strategy(base.get(key))
        if new.mode == Mode.live or (old is not None and old.mode == Mode.live):
            live.add((doc.namespace, doc.name))
        if new.mode != Mode.live:
            continue
        why = []
        if old is None or old.mode != Mode.live:
            why.append(("spec.mode", "promoted to live"))
        elif trading_hash(old) != trading_hash(new):
            changed = trading_changes(trading_spec(old), trading_spec(new))
            up = raised_limits(old.risk_limits, new.risk_limits)
            detail = f" (risk limits raised: {'; '.join(up)})" if up else ""
            why.append((changed[0], f"{', '.join(changed)} changed on a live strategy{detail}"))
        if why:
            missing = _prelaunch(doc.name, new, head, doc.namespace, now)
            for field, what in why:
                if missing:
                    problems.append(
                        doc.problem(field, f"Forbidden: {what} without a signed pre-launch gate: {missing}")
                    )
    for key, doc in base.items():
        if doc.kind == "Monitor" and key not in head:
            strategy = str((doc.body.get("spec") or {}).get("strategy", ""))
            if (doc.namespace, strategy) in live:
                problems.append(
                    doc.problem(
                        "metadata.name",
                        f"Forbidden: monitor removed from live strategy {strategy}: demote it to paper "
                        "(spec.mode: paper) in a change of its own first",
                    )
                )
    return problems
