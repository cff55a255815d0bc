"""The six incident classes as data: what makes each P0 (stop) or P1 (slow), and its four-step
playbook (detection, immediate action, containment, postmortem). Pure.

The operator reads the default immediate action from here; the CLI shows the card next to the
incident so on-call reads the same playbook the operator follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratops.models.monitor import IncidentClass, Severity
from stratops.recovery.actions import BY_SEVERITY

STEPS = ("detection", "immediateAction", "containment", "postmortem")


@dataclass(frozen=True)
class IncidentClassCard:
    """One incident class: the P0/P1 line and the playbook."""

    class_: IncidentClass
    title: str
    p0: str  # what makes it P0: stop
    p1: str  # what makes it P1: slow
    detection: str
    immediate_action: str
    containment: str
    postmortem: str
    runbook: str

    def action(self, severity: Severity | str) -> str:
        """The immediate action for SEVERITY when the incident names none: P0 stops, P1 slows."""
        return BY_SEVERITY[Severity(severity)]

    def playbook(self) -> dict[str, str]:
        return {
            "detection": self.detection,
            "immediateAction": self.immediate_action,
            "containment": self.containment,
            "postmortem": self.postmortem,
        }


CARDS: tuple[IncidentClassCard, ...] = (
    IncidentClassCard(
        IncidentClass.broker_outage,
        "Broker outage",
        p0="an order's state cannot be confirmed: the route is down, acknowledgements are silent, or the "
        "session dropped with working orders",
        p1="degraded but confirmed: slow acknowledgements, partial rejects, the broker's status page amber",
        detection="monitors infra-healthcheck (fails 2x in 60s, P0) and infra-order-latency (p95 > 500 ms for 3 "
        "windows, P1); the broker's status page",
        immediate_action="P0: kill-switch (HALTED: cancel working orders, send nothing new; then scale to 0). "
        "P1: throttle (REDUCING, lower order rate and position limits)",
        containment="every open order reconciled at the broker, none in an unknown state; if the outage "
        "lasts, fail over to the backup broker (runbook broker-failover)",
        postmortem="timeline of acknowledgements against the broker's status; orders in an unknown state and "
        "how each was settled; whether failover was needed; the broker's ticket",
        runbook="broker-failover",
    ),
    IncidentClassCard(
        IncidentClass.feature_drift,
        "Feature drift",
        p0="a top feature is missing, constant or out of its physical range: the pipeline is broken, the "
        "model is trading on garbage",
        p1="PSI > 0.25 on a top-10 feature, KS > 0.15 against the baseline, or the top-5 importance set "
        "changed by two or more: the model sees a world it was not trained on",
        detection="monitors data-feature-psi (daily), model-ks (hourly) and model-top5-features (weekly)",
        immediate_action="P0: kill-switch. P1: throttle while the drift is assessed",
        containment="the drifting features identified and the pipeline checked; positions within the throttled limits",
        postmortem="which features drifted and why (regime or pipeline); retrain, recalibrate or retire, "
        "decided and ticketed",
        runbook="feature-drift",
    ),
    IncidentClassCard(
        IncidentClass.pnl_divergence,
        "PnL divergence",
        p0="outside the 95% band 3 days in a row (the model no longer explains its PnL), a loss beyond "
        "the daily loss limit, or positions that do not match the broker's",
        p1="realised minus expected above 2 bps for 5 days: execution costs the model did not price",
        detection="monitors pnl-band (P0) and pnl-slippage (P1), daily",
        immediate_action="P0: kill-switch. P1: throttle",
        containment="positions reconciled against the broker; the divergence attributed (cost, model, data "
        "or a change)",
        postmortem="attribution of the divergence; cost model or model change decided; if a change caused "
        "it, why the gates did not catch it",
        runbook="pnl-divergence",
    ),
    IncidentClassCard(
        IncidentClass.stale_data,
        "Stale data",
        p0="no fresh bars for more than 2x the bar interval on a traded symbol, or the strategy did not "
        "acknowledge HALTED (its control loop is stale)",
        p1="bar counts differ between the primary and backup feeds, or data is stale only on symbols without positions",
        detection="monitors data-bar-age (every 5s, P0), data-bar-count-mismatch (hourly), infra-queue-backlog "
        "and model-signal-latency (P1); the kill-switch acknowledgement deadline",
        immediate_action="P0: kill-switch. P1: throttle",
        containment="the stale feed identified; trading only on current data (backup feed or reduced universe)",
        postmortem="which feed, how long, what the strategy did on stale data; feed alerting or failover improved",
        runbook="kill-switch",
    ),
    IncidentClassCard(
        IncidentClass.config_drift,
        "Config drift",
        p0="what runs differs from Git in a risk limit, broker endpoint or image",
        p1="the Deployment was changed outside Git (the operator reverts it), or a new version did not "
        "become Ready (rolled back to the last known-good)",
        detection="the operator's fingerprint of the Deployment; the rollout deadline",
        immediate_action="P0: kill-switch. P1: revert to Git, or roll back to the last known-good version",
        containment="what runs matches Git again: the Deployment's fingerprint is the operator's, the "
        "running version is known-good",
        postmortem="who changed what and through which access path; the path closed; for a failed "
        "rollout, why it failed before capital moved",
        runbook="config-drift",
    ),
    IncidentClassCard(
        IncidentClass.risk_breach,
        "Risk breach",
        p0="a hard limit breached: position, order value, order volume, loss or message rate",
        p1="a limit approached (above 80%), or concentration above policy (more than 25% of daily PnL from one name)",
        detection="monitor pnl-concentration (P1, daily); the strategy's pre-trade checks; the broker's rejects",
        immediate_action="P0: kill-switch (risk-reducing orders only if the policy allows). P1: throttle",
        containment="exposure back within limits; the orders that breached identified",
        postmortem="how the limit was breached despite pre-trade checks; a limit is never raised to make "
        "an incident go away (a raise needs Git and the pre-launch gate)",
        runbook="kill-switch",
    ),
)

BY_CLASS: dict[str, IncidentClassCard] = {c.class_.value: c for c in CARDS}


def card(class_: IncidentClass | str) -> IncidentClassCard:
    """The card for CLASS; ValueError names the six classes."""
    key = class_.value if isinstance(class_, IncidentClass) else str(class_)
    if key not in BY_CLASS:
        raise ValueError(f"unknown incident class {key!r}: one of {', '.join(BY_CLASS)}")
    return BY_CLASS[key]
