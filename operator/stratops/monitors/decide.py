"""What a monitor's evaluation means: its status, the messages it sends and the incident it
opens. Pure: the caller (stratops.k8s.monitoring) delivers the messages, records whether they
were delivered, and writes the status and the incident.

A finding has a kind: none, stale, or breach. A change of kind is a message (firing, or
resolved); a new finding is also an incident; the same kind again is the same episode
(deduplicated). Stale while the strategy's kill-switch is latched is no finding (its pods are
stopped and export nothing): it counts as none, so staying stale after the resume is a new
finding, with its incident; and it does not end a breach's episode either (no data says
nothing about the breach). Nor is no data from a strategy starting up (spec.startupGrace): a
monitor that has never read data waits for its first while the strategy is not Ready, and for
the grace once it is (Prometheus has yet to scrape the new pods).

Hysteresis (spec.clearFor): an episode ends only once its finding has stayed clear for the
window. Until then the finding is kept (no resolved message), and a finding that comes back is
the same episode: no second alert, and no second incident while the first is still open. If a
person resolved that incident meanwhile, the finding opens a new one, which acts: a flap is never
a way around a kill-switch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from stratops.alerts import Alert
from stratops.lifecycle.types import NewIncident
from stratops.models.common import parse_duration
from stratops.models.monitor import IncidentClass, MonitorSpec, MonitorStatus, Severity
from stratops.monitors.evaluate import HALTED_NOTE, STARTING_NOTE, Evaluation, stale_expected
from stratops.recovery.actions import immediate_action, rolling_out

Kind = Literal["stale", "breach"] | None


@dataclass(frozen=True)
class MonitorDecision:
    status: MonitorStatus  # as it stands before delivery: last_alert and incident are the caller's to record
    resend: Alert | None  # the message of an earlier change, undelivered then: it goes first
    alert: Alert | None  # the message of this change of kind
    incident: NewIncident | None  # the new finding's incident: record its name, then create it
    # The finding's group (one root cause, one incident): "stale" for a stale finding, which joins
    # the strategy's open StaleData incident of its group instead of opening one of its own; None:
    # an incident of its own (a breach is the monitor's own finding).
    group: str | None = None
    # A finding back within spec.clearFor: it joins this incident (the episode's) if still open;
    # if it is not, `incident` opens instead.
    rejoin: str | None = None


#: The default hysteresis: three evaluation periods, at most this.
MAX_DEFAULT_CLEAR_FOR = timedelta(minutes=5)


def clear_for(spec: MonitorSpec) -> timedelta:
    """How long a finding must stay clear before its episode ends (spec.clearFor)."""
    if spec.clear_for is not None:
        return parse_duration(spec.clear_for)
    return min(3 * parse_duration(spec.frequency), MAX_DEFAULT_CLEAR_FOR)


def status_read_by_monitors(strategy_status: Mapping[str, Any] | None) -> dict[str, Any]:
    """Of a strategy's status, what its monitors' decisions read (stale_expected, rolling_out):
    the operator keeps this per strategy for the monitors, not the whole status (issue 21)."""
    st = strategy_status or {}
    out: dict[str, Any] = {}
    if isinstance(ks := st.get("killSwitch"), Mapping) and "latched" in ks:
        out["killSwitch"] = {"latched": ks["latched"]}
    if isinstance(ro := st.get("rollout"), Mapping) and "version" in ro:
        out["rollout"] = {"version": ro["version"]}
    if "lastKnownGood" in st:
        out["lastKnownGood"] = st["lastKnownGood"]
    if (since := ready_since(st)) is not None:
        out["readySince"] = since
    return out


def ready_since(strategy_status: Mapping[str, Any] | None) -> str | None:
    """Since when the strategy's pods have been Ready (its Ready condition's last transition to
    True), from a whole status or from what status_read_by_monitors kept; None: not Ready."""
    st = strategy_status or {}
    if "readySince" in st:
        return st["readySince"]  # type: ignore[no-any-return]
    conditions = st.get("conditions")
    if not isinstance(conditions, list):
        return None
    ready = next((c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        return None
    return str(ready.get("lastTransitionTime") or "unknown")  # Ready since an unknown time: no grace


def starting_up(
    spec: MonitorSpec, prev: MonitorStatus, ev: Evaluation, strategy_status: Mapping[str, Any] | None, now: datetime
) -> bool:
    """Whether EV's lack of data is what a strategy starting up gives (spec.startupGrace): the
    monitor has never read data, the query answered with nothing (not: an unreachable source, a
    bad baseline), and the strategy is not Ready, or Ready for less than the grace."""
    if not (ev.stale and ev.no_data) or prev.first_data is not None:  # no_data: never unreachable
        return False
    grace = parse_duration(spec.startup_grace)
    if grace <= timedelta(0):
        return False
    since = ready_since(strategy_status)
    if since is None:
        return True  # its pods are not Ready: nothing to scrape (the rollout's deadline speaks for them)
    try:
        ready_at = datetime.fromisoformat(str(since).replace("Z", "+00:00"))
    except ValueError:
        return False  # unreadable: no grace, the finding stands
    if ready_at.tzinfo is None:
        ready_at = ready_at.replace(tzinfo=UTC)  # the API server writes UTC
    return now - ready_at < grace


def incident_action(spec: MonitorSpec, strategy_status: dict[str, Any] | None) -> str:
    """A breach's action, by the one policy (stratops.recovery.actions)."""
    return immediate_action(spec.incident.action, spec.incident.severity, rolling_out=rolling_out(strategy_status))


def finding_kind(stale: bool | None, breaching: bool | None, expected: bool) -> Kind:
    return None if expected else "stale" if stale else "breach" if breaching else None


def decide(
    namespace: str,
    name: str,
    generation: int,
    spec: MonitorSpec,
    prev: MonitorStatus,
    ev: Evaluation,
    strategy_status: dict[str, Any] | None,
    now: datetime,
    source: str | None = None,
) -> MonitorDecision:
    """SOURCE: the monitor's source as an alert label (stratops.monitors.desk.source_label), so
    that a desk-level StratopsSourceDown alert can inhibit the per-strategy stale ones."""
    halted = bool(ev.stale and stale_expected(strategy_status))
    starting = not halted and starting_up(spec, prev, ev, strategy_status, now)
    expected = halted or starting
    # The episode's finding; a status written before clearFor existed tells it by its flags.
    was = prev.finding or finding_kind(prev.stale, prev.breaching, bool(prev.stale and prev.stale_expected))
    seen = finding_kind(ev.stale, ev.breaching, expected)
    kind, clearing_since = seen, None
    if expected and was == "breach":
        # A halted strategy exports nothing, and no data says nothing about a breach: its
        # episode holds as it was (its incident, its clearing clock). Ended by the silence, the
        # breach seen again when data came back opened a second incident (the long soak: a
        # strategy killed while breaching, its source down and back).
        kind, clearing_since = was, prev.clearing_since
    elif seen is None and was is not None:
        since = prev.clearing_since or now
        if now - since < clear_for(spec):
            kind, clearing_since = was, since  # still clearing: the episode goes on
    back = seen is not None and seen == was and prev.clearing_since is not None
    # One shallow copy with every change (pydantic's per-field setattr and a deep copy were most
    # of an evaluation's CPU). Nothing here or in the runner changes a status's nested LastAlert
    # in place: each is replaced whole.
    st = prev.model_copy(
        update={
            "problem": None,
            "last_value": f"{ev.value:.6g}" if ev.value is not None else "n/a",
            "last_evaluation": now,
            "consecutive_breaches": ev.consecutive,
            "breaching": ev.breaching,
            "stale": ev.stale,
            "detail": HALTED_NOTE + (ev.detail or "")
            if halted
            else STARTING_NOTE + (ev.detail or "")
            if starting
            else ev.detail,
            "first_data": prev.first_data or (None if ev.stale else now),
            "observed_generation": generation,
            "stale_expected": True if expected else None,
            "clearing_since": clearing_since,
            "finding": kind,
        }
    )

    key = f"{namespace}/{name}"

    def labels(finding: Kind) -> dict[str, str]:
        """An alert's labels, from the finding it is about (the one that starts, or the one that
        ends): a resolved alert must carry the labels of the firing one, or Alertmanager takes it
        for another alert. A stale finding opens a StaleData incident, whatever the monitor's
        class: so labelled, a route grouping by namespace, strategy and incident_class pages
        once per outage, as the incident is one."""
        return {
            "namespace": namespace,
            "monitor": name,
            "strategy": spec.strategy,
            "layer": spec.layer.value,
            "incident_class": IncidentClass.stale_data.value if finding == "stale" else spec.incident.class_.value,
            **({"source": source} if source else {}),
        }

    summary = f"{spec.strategy}: {spec.description or name} " + ("(stale data)" if ev.stale else f"= {st.last_value}")
    resend = None
    if prev.last_alert is not None and not prev.last_alert.delivered:
        resend = Alert(
            key,
            prev.last_alert.state,
            prev.last_alert.channel.value,
            spec.incident.severity.value,
            summary,
            prev.detail or "",
            labels(was),
            spec.alert.route,
            prev.last_alert.at,
        )
    alert = None
    if kind != was:
        alert = Alert(
            key,
            "firing" if kind is not None else "resolved",
            spec.alert.channel.value,
            spec.incident.severity.value,
            summary,
            ev.detail,
            labels(kind if kind is not None else was),
            spec.alert.route,
            now,
        )

    incident, rejoin = None, None
    if back and st.incident is not None:
        rejoin = st.incident
    if (kind is not None and kind != was) or rejoin is not None:
        stale = kind == "stale"
        what = "source unavailable or no data" if stale else f"breach: {ev.detail}"
        incident = NewIncident(
            f"{name}-{hashlib.sha256(now.isoformat().encode()).hexdigest()[:8]}"[:253],
            IncidentClass.stale_data if stale else spec.incident.class_,
            Severity.P1 if stale else spec.incident.severity,
            f"monitor {name} on {spec.strategy}: {what}"[:2048],
            "throttle" if stale else incident_action(spec, strategy_status),
            "",
            require_rearm=spec.incident.require_rearm and not stale,
        )
    elif kind is None and st.incident is not None:
        st.incident = None  # the episode is over; the Incident stays open until a human resolves it
    return MonitorDecision(
        st, resend, alert, incident, STALE_GROUP if incident is not None and kind == "stale" else None, rejoin
    )


#: The group of stale findings: a source down (or a feed gone) shows in every monitor that reads
#: it, at moments a few seconds apart; it is one root cause.
STALE_GROUP = "stale"
