"""Gate evaluation: which items are validly signed, which are missing, when the gate lapses.

Expiry by cadence:
- preLaunch: no time limit, but a signature is valid only for the subject it names (the
  strategy's version and the SHA-256 of its whole trading-relevant spec: image, version, risk
  limits, brokers, pod template, replicas, kill-switch and throttle settings): any change to
  those needs new signatures.
- daily: until the next session open (spec.session: time zone and HH:MM) after the signature.
- weekly, monthly, quarterly: 7, 31 and 92 days after the signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from stratops.models.gate import Cadence, GateSpec, Session, Signature, min_signers
from stratops.models.strategy import StrategySpec, trading_hash

PERIOD = {Cadence.weekly: timedelta(days=7), Cadence.monthly: timedelta(days=31), Cadence.quarterly: timedelta(days=92)}


def subject(strategy: str, version: str, spec_hash: str) -> str:
    """What a pre-launch signature names for one strategy."""
    return f"{strategy}:{version}:{spec_hash}"


def subject_for(strategy: str, spec: StrategySpec) -> str:
    """The pre-launch subject of STRATEGY as SPEC describes it."""
    return subject(strategy, spec.version, trading_hash(spec))


def next_session_open(after: datetime, session: Session | None) -> datetime:
    s = session or Session()
    tz = ZoneInfo(s.timezone)
    local = after.astimezone(tz)
    hh, mm = (int(x) for x in s.opens_at.split(":"))
    candidate = datetime.combine(local.date(), time(hh, mm), tz)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), time(hh, mm), tz)
    return candidate


def expiry(spec: GateSpec, sig: Signature) -> datetime | None:
    if spec.cadence == Cadence.pre_launch:
        return None
    if spec.cadence == Cadence.daily:
        return next_session_open(sig.signed_at, spec.session)
    return sig.signed_at + PERIOD[spec.cadence]


@dataclass(frozen=True)
class GateEvaluation:
    state: str  # Complete, Incomplete, Expired
    signed: list[str]
    missing: list[str]
    expired: list[str] = field(default_factory=list)
    expires_at: datetime | None = None
    cadence: str = ""
    signers: tuple[str, ...] = ()  # distinct signers of the valid signatures of required items
    min_signers: int = 1

    @property
    def complete(self) -> bool:
        return self.state == "Complete"

    @property
    def summary(self) -> str:
        return f"{len(self.signed)}/{len(self.signed) + len(self.missing)}"

    @property
    def short_of_signers(self) -> str:
        """Why the signatures, all present, are not enough ('' when they are)."""
        if len(self.signers) >= self.min_signers:
            return ""
        return (
            f"needs {self.min_signers} distinct signers, has {len(self.signers)} ({', '.join(self.signers) or 'none'})"
        )

    def why_not(self) -> str:
        """What keeps the gate from being complete, in words ('' when it is)."""
        parts = []
        if self.missing:
            parts.append(f"missing {', '.join(self.missing)}")
        if self.short_of_signers:
            parts.append(self.short_of_signers)
        return "; ".join(parts)


def evaluate(spec: GateSpec, now: datetime, subjects: tuple[str, ...] = ()) -> GateEvaluation:
    """Evaluate SPEC at NOW. For a pre-launch gate, SUBJECTS are the current subjects of the
    strategies being judged: a signature counts only if it names all of them."""
    sigs = {s.item: s for s in spec.signatures or []}
    signed, missing, expired = [], [], []
    who: set[str] = set()
    expires: list[datetime] = []
    for item in spec.items:
        if not item.required:
            continue
        sig = sigs.get(item.id)
        if sig is None:
            missing.append(item.id)
            continue
        if spec.cadence == Cadence.pre_launch and subjects:
            named = set((sig.subject or "").split())
            if not set(subjects) <= named:
                missing.append(item.id)
                continue
        until = expiry(spec, sig)
        if until is not None and until <= now:
            expired.append(item.id)
            missing.append(item.id)
            continue
        signed.append(item.id)
        who.add(sig.signer)
        if until is not None:
            expires.append(until)
    need = min_signers(spec)
    if not missing and len(who) >= need:
        state = "Complete"
    elif expired and len(expired) == len(missing):
        state = "Expired"
    else:
        state = "Incomplete"
    return GateEvaluation(
        state, signed, missing, expired, min(expires) if expires else None, spec.cadence.value, tuple(sorted(who)), need
    )


def approval_problem(gate: str | None, ev: GateEvaluation | None, author: str | None) -> str:
    """Why the pre-launch gate GATE, evaluated as EV for a strategy's current spec (None: not
    found, or not listing the strategy), does not approve that spec for live trading ('' when it
    does): of cadence preLaunch, every required item signed for this spec by at least minSigners
    people, none of them AUTHOR, who last changed the trading-relevant spec (four eyes)."""
    if not gate:
        return "no pre-launch gate named in spec.gates.preLaunch"
    if ev is None:
        return f"pre-launch gate {gate} not found or does not list this strategy in spec.strategies"
    if ev.cadence != Cadence.pre_launch.value:
        return f"gate {gate} has cadence {ev.cadence}, not preLaunch: name a pre-launch gate in spec.gates.preLaunch"
    if not ev.complete:
        return f"pre-launch gate {gate} is {ev.state}: {ev.why_not()}"
    if author is None:
        return (
            "nobody is recorded as the author of the trading-relevant spec (metadata.annotations"
            "[stratops.io/trading-author], set by the chart's admission policies): install them"
        )
    if author in ev.signers:
        return (
            f"pre-launch gate {gate} is signed by {author}, who last changed the trading-relevant spec: "
            "four eyes need others"
        )
    return ""
