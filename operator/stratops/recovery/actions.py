"""The immediate action of a finding: one policy, used by the monitors, the strategy's own
reports and the incidents alike. Pure.

`auto` (the default of a Monitor's spec.incident.action): a breach while a new version rolls out
rolls back, since the new version is the likely cause; otherwise P0 stops (kill-switch) and P1
slows (throttle). One exception: a limit on the position itself (the strategy's reported
exposure or loss) is never answered with a rollback, which would hand the same position to the
old version and leave the limit breached: it stops or slows by its severity.
"""

from __future__ import annotations

from typing import Any

from stratops.models.monitor import Severity

#: The action a severity asks for when nothing else decides: P0 stops, P1 slows.
BY_SEVERITY = {Severity.P0: "killSwitch", Severity.P1: "throttle"}
ACTIONS = ("killSwitch", "throttle", "rollback", "none")


def rolling_out(strategy_status: dict[str, Any] | None) -> bool:
    """Whether STRATEGY_STATUS shows a new version rolling out (not yet the last known-good)."""
    st = strategy_status or {}
    version = (st.get("rollout") or {}).get("version")
    return bool(version and st.get("lastKnownGood") and version != st.get("lastKnownGood"))


def immediate_action(
    configured: str | None, severity: Severity | str, *, rolling_out: bool = False, on_position: bool = False
) -> str:
    """The action for a finding of SEVERITY whose source configures CONFIGURED (auto, None, or
    one of ACTIONS). ROLLING_OUT: a new version is rolling out; ON_POSITION: the finding is a
    limit on the position (exposure, loss) rather than on the version's behaviour. A severity
    that is neither P0 nor P1 slows: the cautious answer that still trades nothing bigger."""
    if configured not in (None, "auto"):
        return configured
    if rolling_out and not on_position:
        return "rollback"
    try:
        return BY_SEVERITY[Severity(severity)]
    except ValueError:
        return "throttle"
