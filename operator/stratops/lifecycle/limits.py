"""Effective risk limits: the spec's, lowered by a throttle, never raised by the operator."""

from __future__ import annotations

from stratops.models.strategy import EffectiveLimits, RiskLimits

FIELDS = ("max_position", "max_order_rate", "max_daily_loss")


def from_spec(limits: RiskLimits) -> EffectiveLimits:
    return EffectiveLimits(**{f: getattr(limits, f) for f in FIELDS})


def throttled(current: EffectiveLimits, factor: float) -> EffectiveLimits:
    """CURRENT lowered by FACTOR (0 < factor < 1): each limit goes down, none goes up."""
    if not 0 < factor < 1:
        raise ValueError(f"throttle factor must be in (0, 1), got {factor}")
    return EffectiveLimits(**{f: getattr(current, f) * factor for f in FIELDS})


def lowest(a: EffectiveLimits, b: EffectiveLimits) -> EffectiveLimits:
    return EffectiveLimits(**{f: min(getattr(a, f), getattr(b, f)) for f in FIELDS})


def raised(old: EffectiveLimits, new: EffectiveLimits) -> list[str]:
    """Names of the limits that NEW raises above OLD."""
    return [f for f in FIELDS if getattr(new, f) > getattr(old, f)]


def throttled_by(base: EffectiveLimits, factor: float, levels: int) -> EffectiveLimits:
    """BASE lowered LEVELS times by FACTOR: a throttle's depth depends only on its causes."""
    out = base
    for _ in range(levels):
        out = throttled(out, factor)
    return out
