"""Gate evaluation: which items are validly signed, which are missing, when the gate lapses.

Expiry by cadence:
- preLaunch: no time limit, but a signature is valid only for the subject it names (the
  strategy's version and risk-limits hash): a new version or new limits need new signatures.
- daily: until the next session open (spec.session: time zone and HH:MM) after the signature.
- weekly, monthly, quarterly: 7, 31 and 92 days after the signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from stratops.models.gate import Cadence, GateSpec, Session, Signature

PERIOD = {Cadence.weekly: timedelta(days=7), Cadence.monthly: timedelta(days=31),
          Cadence.quarterly: timedelta(days=92)}


def subject(strategy: str, version: str, limits_hash: str) -> str:
    """What a pre-launch signature names for one strategy."""
    return f"{strategy}:{version}:{limits_hash}"


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

    @property
    def complete(self) -> bool:
        return self.state == "Complete"

    @property
    def summary(self) -> str:
        return f"{len(self.signed)}/{len(self.signed) + len(self.missing)}"


def evaluate(spec: GateSpec, now: datetime, subjects: tuple[str, ...] = ()) -> GateEvaluation:
    """Evaluate SPEC at NOW. For a pre-launch gate, SUBJECTS are the current subjects of the
    strategies being judged: a signature counts only if it names all of them."""
    sigs = {s.item: s for s in spec.signatures or []}
    signed, missing, expired = [], [], []
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
        if until is not None:
            expires.append(until)
    if not missing:
        state = "Complete"
    elif expired and len(expired) == len(missing):
        state = "Expired"
    else:
        state = "Incomplete"
    return GateEvaluation(state, signed, missing, expired, min(expires) if expires else None, spec.cadence.value)
