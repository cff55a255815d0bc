"""Alert channels: page (Alertmanager API v2 and/or PagerDuty Events v2), slack (incoming
webhook), dashboard (metrics only: never wakes anyone).

Alerts are deduplicated by key (namespace/monitor): one firing message when a breach starts,
one resolved message when it ends. A message that cannot be delivered is retried with backoff,
counted (stratops_alert_delivery_failures_total), kept, and retried again at the monitor's
next evaluation until it goes through: never dropped silently.

Receivers come from the operator's environment (secrets are never logged):
STRATOPS_ALERTMANAGER_URL, STRATOPS_PAGERDUTY_URL with STRATOPS_PAGERDUTY_ROUTING_KEY,
STRATOPS_SLACK_WEBHOOK_URL.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import Counter

SENT = Counter("stratops_alerts_sent_total", "Alert messages delivered.", ["channel", "receiver", "state"])
FAILED = Counter(
    "stratops_alert_delivery_failures_total", "Alert delivery attempts that failed.", ["channel", "receiver"]
)


@dataclass(frozen=True)
class Alert:
    key: str  # namespace/monitor: the dedup key
    state: str  # firing or resolved
    channel: str  # page, slack, dashboard
    severity: str  # P0, P1
    summary: str
    detail: str
    labels: dict[str, str] = field(default_factory=dict)
    route: str | None = None
    starts_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alertmanager_body(a: Alert, now: datetime) -> list[dict[str, Any]]:
    body: dict[str, Any] = {
        "labels": {"alertname": "StratopsMonitorBreach", "severity": a.severity, "dedup_key": a.key, **a.labels},
        "annotations": {"summary": a.summary, "description": a.detail},
        "startsAt": _iso(a.starts_at),
    }
    if a.state == "resolved":
        body["endsAt"] = _iso(now)
    return [body]


def pagerduty_body(a: Alert, routing_key: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "trigger" if a.state == "firing" else "resolve",
        "dedup_key": a.key,
        "payload": {
            "summary": a.summary[:1024],
            "source": "stratops",
            "severity": "critical" if a.severity == "P0" else "error",
            "component": a.labels.get("strategy", ""),
            "group": a.labels.get("namespace", ""),
            "class": a.labels.get("incident_class", ""),
            "custom_details": {"detail": a.detail, **a.labels},
        },
    }


def slack_body(a: Alert) -> dict[str, Any]:
    icon = ":rotating_light:" if a.state == "firing" else ":white_check_mark:"
    body: dict[str, Any] = {"text": f"{icon} [{a.state.upper()} {a.severity}] {a.summary} ({a.key})\n{a.detail}"}
    if a.route:
        body["channel"] = a.route
    return body


@dataclass
class Receiver:
    name: str
    url: str
    build: Any  # Alert -> JSON body

    def __repr__(self) -> str:  # URLs may carry tokens (Slack webhooks): never print them
        return f"Receiver({self.name})"


class Notifier:
    def __init__(
        self, receivers: dict[str, list[Receiver]], attempts: int = 3, backoff: float = 0.2, timeout: float = 5.0
    ) -> None:
        self.receivers = receivers
        self.attempts, self.backoff = attempts, backoff
        self.client = httpx.Client(timeout=timeout, trust_env=False)

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> Notifier:
        env = dict(os.environ if env is None else env)
        page: list[Receiver] = []
        if env.get("STRATOPS_ALERTMANAGER_URL"):
            url = env["STRATOPS_ALERTMANAGER_URL"].rstrip("/") + "/api/v2/alerts"
            page.append(Receiver("alertmanager", url, lambda a: alertmanager_body(a, datetime.now(UTC))))
        if env.get("STRATOPS_PAGERDUTY_ROUTING_KEY"):
            key = env["STRATOPS_PAGERDUTY_ROUTING_KEY"]
            url = env.get("STRATOPS_PAGERDUTY_URL", "https://events.pagerduty.com/v2/enqueue")
            page.append(Receiver("pagerduty", url, lambda a: pagerduty_body(a, key)))
        slack = (
            [Receiver("slack", env["STRATOPS_SLACK_WEBHOOK_URL"], slack_body)]
            if env.get("STRATOPS_SLACK_WEBHOOK_URL")
            else []
        )
        return cls({"page": page, "slack": slack, "dashboard": []})

    def deliver(self, alert: Alert) -> tuple[bool, str]:
        """Send ALERT to every receiver of its channel. (delivered, note). The dashboard channel
        has no receiver by design: it is delivered as metrics."""
        receivers = self.receivers.get(alert.channel, [])
        if alert.channel == "dashboard":
            return True, "dashboard: metrics only"
        if not receivers:
            FAILED.labels(alert.channel, "none").inc()
            return False, f"no receiver configured for channel {alert.channel}"
        failures = []
        for r in receivers:
            ok, why = self._send(r, alert)
            if not ok:
                failures.append(f"{r.name}: {why}")
        return not failures, "; ".join(failures) or "delivered"

    def _send(self, r: Receiver, alert: Alert) -> tuple[bool, str]:
        why = ""
        for attempt in range(self.attempts):
            try:
                resp = self.client.post(r.url, json=r.build(alert))
                if resp.status_code < 300:
                    SENT.labels(alert.channel, r.name, alert.state).inc()
                    return True, ""
                why = f"HTTP {resp.status_code}"
            except httpx.HTTPError as e:
                why = type(e).__name__
            FAILED.labels(alert.channel, r.name).inc()
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2**attempt)
        return False, why
