"""The rules of the operator's validating webhooks: what needs the operator's view of other
objects (gates, the strategies' recorded authors, Secrets' labels) or a clock. Pure: the
handlers look the objects up and pass them in.

The rules the API server can check by itself (who signs, who gives a command, who may re-arm
or change kill-switch settings, frozen checklists) are admission policies
(stratops.admission.policies): they hold while the operator is down. These webhooks fail
closed, and only spec changes reach them, so a kill-switch annotation never waits on them.

- Gate: a new or changed signature is dated at admission (within SIGNED_AT_TOLERANCE of this
  clock), unless written by a GitOps identity from Git; a pre-launch signature for a strategy's
  current spec is never by the user who last changed that spec (four eyes).
- Strategy: `spec.gates.preLaunch` names a gate of cadence preLaunch; going live, or changing
  the trading-relevant spec of a live strategy, needs the pre-launch gate complete for the new
  spec (every required item, at least minSigners distinct signers, none of them its author);
  images come from allowed registries; referenced Secrets carry the allow-list's labels.
- Monitor: its Prometheus URL is allowed and its token Secret carries the allow-list's labels.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from stratops.gates.evaluate import approval_problem, evaluate, subject_for
from stratops.models.gate import Cadence, GateSpec, Signature
from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import Mode, StrategySpec, trading_changes, trading_hash, trading_spec

SIGNED_AT_TOLERANCE = timedelta(seconds=10)


@dataclass(frozen=True)
class AllowLists:
    """What strategies and monitors may name (chart values `allowLists`); empty: anything."""

    image_registries: tuple[str, ...] = ()
    prometheus_urls: tuple[str, ...] = ()
    strategy_secret_labels: Mapping[str, str] = field(default_factory=dict)
    monitor_secret_labels: Mapping[str, str] = field(default_factory=dict)


def parse_selector(text: str) -> dict[str, str]:
    """`k=v,k2=v2` (equality only) as a dict; ValueError names what is wrong."""
    out = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _prefix_match(value: str, allowed: Collection[str]) -> bool:
    """VALUE is one of ALLOWED or under one of them (`registry.example` allows
    `registry.example/desk/x`, never `registry.example.evil.com/x`)."""
    return not allowed or any(value == a.rstrip("/") or value.startswith(a.rstrip("/") + "/") for a in allowed)


def url_allowed(url: str, allowed: Collection[str]) -> bool:
    """URL's scheme and host are an entry's, its port too when the entry names one, and its path
    is under the entry's. A URL with user information is never allowed (`http://ok@evil/` goes to evil)."""
    from urllib.parse import urlsplit

    if not allowed:
        return True
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return False
    if u.username is not None or u.password is not None:
        return False
    for entry in allowed:
        a = urlsplit(entry)
        if (
            (u.scheme, u.hostname) == (a.scheme, a.hostname)
            and (a.port is None or a.port == port)
            and ((u.path or "/").startswith(a.path.rstrip("/") + "/") or (u.path or "/") == (a.path or "/"))
        ):
            return True
    return False


def _changed(old: GateSpec | None, new: GateSpec) -> list[Signature]:
    before = {(s.item, s.signer, s.signed_at, s.evidence, s.subject) for s in (old.signatures or [])} if old else set()
    return [s for s in new.signatures or [] if (s.item, s.signer, s.signed_at, s.evidence, s.subject) not in before]


def review_gate(
    old: GateSpec | None,
    new: GateSpec,
    now: datetime,
    signs_for_others: bool,
    strategies: Mapping[str, tuple[StrategySpec, str | None]],
) -> list[str]:
    """Reasons to refuse the change from OLD to NEW (empty: allowed). STRATEGIES: the gate's
    strategies as stored, with the user who last changed their trading-relevant spec."""
    problems = []
    for sig in _changed(old, new):
        if not signs_for_others and abs(sig.signed_at - now) > SIGNED_AT_TOLERANCE:
            problems.append(
                f"spec.signatures[{sig.item}].signedAt {sig.signed_at.isoformat()} is not the time of signing "
                f"(the server's clock says {now.isoformat(timespec='seconds')}; at most {SIGNED_AT_TOLERANCE.seconds}s "
                "apart): sign with `stratops gate sign`, which dates it now"
            )
        if new.cadence != Cadence.pre_launch:
            continue
        named = set((sig.subject or "").split())
        for name, (spec, author) in sorted(strategies.items()):
            if author is not None and author == sig.signer and subject_for(name, spec) in named:
                problems.append(
                    f"spec.signatures[{sig.item}]: {sig.signer} last changed the trading-relevant spec of {name}, so "
                    "may not sign its pre-launch items (four eyes): another person must"
                )
    return problems


def live_problems(
    name: str, new: StrategySpec, author: str | None, gate_name: str | None, gate: GateSpec | None, now: datetime
) -> str:
    """Why NEW may not trade live yet ('' when the pre-launch gate GATE, as stored, approves it):
    the operator's own rule (stratops.gates.evaluate.approval_problem)."""
    ev = evaluate(gate, now, (subject_for(name, new),)) if gate is not None and name in gate.strategies else None
    return approval_problem(gate_name, ev, author)


def review_strategy(
    name: str,
    old: StrategySpec | None,
    was_live: bool,
    new: StrategySpec,
    requester: str,
    recorded_author: str | None,
    gates: Mapping[str, GateSpec | None],
    now: datetime,
) -> list[str]:
    """Reasons to refuse a Strategy's spec change (empty: allowed). GATES: the gates its spec
    names, as stored (None: not found). WAS_LIVE: the stored object trades live."""
    problems = []
    pl = new.gates.pre_launch if new.gates else None
    if pl and (g := gates.get(pl)) is not None and g.cadence != Cadence.pre_launch:
        problems.append(
            f"spec.gates.preLaunch: gate {pl} has cadence {g.cadence.value}; name a gate of cadence preLaunch"
        )
    if new.mode != Mode.live:
        return problems
    trading_changed = old is None or trading_hash(old) != trading_hash(new)
    if was_live and not trading_changed:
        return problems  # live, its trading spec untouched (gates named, monitors' timing, …)
    changed = trading_changes(trading_spec(old), trading_spec(new)) if was_live and old is not None else []
    author = requester if trading_changed else recorded_author
    why = live_problems(name, new, author, pl, gates.get(pl) if pl else None, now)
    if why:
        what = f"{', '.join(changed)} changed on a live strategy" if changed else "spec.mode: live"
        gate = f" {pl}" if pl else ""
        problems.append(
            f"{what} without the pre-launch signatures for the new spec: {why}. Have two people (not "
            f"the author) sign the items of gate{gate} for it first: stratops gate sign{gate} --all "
            "--for FILE --evidence …, or commit the signatures with the change in Git"
        )
    return problems


def secret_references(spec: StrategySpec) -> list[tuple[str, str]]:
    """(field, Secret name) of every Secret a Strategy's spec makes the operator reference."""
    refs = []
    for i, e in enumerate(spec.pod_template.env or [] if spec.pod_template else []):
        if e.secret_key_ref is not None:
            refs.append((f"spec.podTemplate.env[{i}].secretKeyRef.name", e.secret_key_ref.name))
    for role in ("primary", "backup"):
        broker = getattr(spec.brokers, role)
        if broker is not None and broker.secret_ref is not None:
            refs.append((f"spec.brokers.{role}.secretRef.name", broker.secret_ref.name))
    return refs


def review_secrets(
    refs: list[tuple[str, str]],
    labels_of: Callable[[str], Mapping[str, str] | Literal[False] | None],
    wanted: Mapping[str, str],
) -> tuple[list[str], list[str]]:
    """(problems, warnings): each referenced Secret must carry the WANTED labels. A Secret not
    found yet is a warning: the kubelet reads it, the operator never does."""
    problems: list[str] = []
    warnings: list[str] = []
    need = ",".join(f"{k}={v}" for k, v in sorted(wanted.items()))
    for path, secret in refs:
        labels = labels_of(secret)
        if labels is False:
            problems.append(
                f"{path}: Secret {secret} may not be referenced: the operator may not read it "
                "(chart value rbac.secretNames)"
            )
        elif labels is None:
            if wanted:
                warnings.append(
                    f"{path}: Secret {secret} not found; it must carry the labels {need} when it is created"
                )
        elif wanted and any(labels.get(k) != v for k, v in wanted.items()):
            problems.append(
                f"{path}: Secret {secret} may not be referenced: it does not carry the labels {need} "
                "(chart value allowLists; ask whoever owns the Secret to label it)"
            )
    return problems, warnings


def review_image(spec: StrategySpec, allow: AllowLists) -> list[str]:
    if _prefix_match(spec.image, allow.image_registries):
        return []
    return [
        f"spec.image: {spec.image} is not from an allowed registry ({', '.join(allow.image_registries)}; "
        "chart value allowLists.imageRegistries)"
    ]


def review_monitor(
    spec: MonitorSpec, allow: AllowLists, labels_of: Callable[[str], Mapping[str, str] | None]
) -> tuple[list[str], list[str]]:
    prom = spec.source.prometheus
    if prom is None:
        return [], []
    problems = []
    if prom.url and not url_allowed(prom.url, allow.prometheus_urls):
        problems.append(
            f"spec.source.prometheus.url: {prom.url} is not an allowed Prometheus "
            f"({', '.join(allow.prometheus_urls)}; chart value allowLists.prometheusUrls)"
        )
    refs = [("spec.source.prometheus.authSecretRef.name", prom.auth_secret_ref.name)] if prom.auth_secret_ref else []
    more, warnings = review_secrets(refs, labels_of, allow.monitor_secret_labels)
    return problems + more, warnings
