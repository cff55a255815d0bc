"""The Prometheus-ruler mode's receiver: Alertmanager's webhook notifications of the monitors'
compiled rules (stratops.monitors.rules), taken by stratops.monitors.ruler; a monitor whose
finding changed is evaluated at once, on what the ruler said.

On when STRATOPS_RULER_PORT is set. Every notification must carry the bearer token read from
STRATOPS_RULER_TOKEN_FILE (Alertmanager's `http_config.authorization.credentials_file`): a forged
heartbeat would keep a monitor with the ruler while nothing evaluates it, so without a token the
mode stays off (said in the log) and the operator evaluates every monitor itself. TLS when
STRATOPS_RULER_CERT and STRATOPS_RULER_KEY name files. Served with aiohttp, the HTTP library kopf
runs on (no new dependency), on the operator's event loop: a notification costs a dict update.
"""

from __future__ import annotations

import hmac
import os
import ssl
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web

from stratops import metrics as M
from stratops.controller.runtime import log
from stratops.monitors.ruler import PayloadError, RulerState

PATH = "/alertmanager"
#: A monitor is the ruler's while a heartbeat of its current rules is this recent. Alertmanager
#: sends each group again every repeat_interval (the chart's route: 1m): two of them, and slack.
HEARTBEAT_SECONDS = float(os.environ.get("STRATOPS_RULER_HEARTBEAT_SECONDS", "150"))


def ruler_state() -> RulerState | None:
    """The mode's state when it is on and has its token; None (said why) otherwise."""
    if not os.environ.get("STRATOPS_RULER_PORT"):
        return None
    if not _token():
        log.error(
            "STRATOPS_RULER_PORT is set but STRATOPS_RULER_TOKEN_FILE names no readable, non-empty file: the "
            "Prometheus-ruler mode is OFF (an unauthenticated receiver could hold monitors while nothing evaluates "
            "them); the operator evaluates every monitor itself"
        )
        return None
    return RulerState(HEARTBEAT_SECONDS)


def _token() -> str:
    path = os.environ.get("STRATOPS_RULER_TOKEN_FILE", "")
    try:
        return Path(path).read_text().strip() if path else ""
    except OSError:
        return ""


def receiver(state: RulerState, evaluate_now: Any) -> web.Application:
    """The receiver's application: POST PATH with Alertmanager's webhook payload (version 4)."""

    async def notified(request: web.Request) -> web.Response:
        # Read at each request: a rotated Secret (its mounted file) is used without a restart.
        token = _token()
        given = request.headers.get("Authorization", "")
        if not token or not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            M.RULER_NOTIFICATIONS.labels("unauthorized").inc()
            return web.json_response({"error": "a bearer token is required (STRATOPS_RULER_TOKEN_FILE)"}, status=401)
        try:
            changed = state.receive(await request.json())
        except (ValueError, PayloadError) as e:
            M.RULER_NOTIFICATIONS.labels("malformed").inc()
            return web.json_response({"error": f"not an Alertmanager webhook payload: {e}"}, status=400)
        M.RULER_NOTIFICATIONS.labels("taken").inc()
        for ns, name in changed:
            evaluate_now(ns, name)
        return web.json_response({"changed": len(changed)})

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post(PATH, notified)
    return app


async def serve(memo: kopf.Memo) -> None:
    """Start the receiver when the mode is on (memo.monitors.ruler); it serves for the process's
    life on kopf's event loop."""
    state = memo.monitors.ruler
    if state is None:
        return
    ctx = None
    cert, key = os.environ.get("STRATOPS_RULER_CERT"), os.environ.get("STRATOPS_RULER_KEY")
    if cert and key:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(receiver(state, memo.monitor_schedule.evaluate_now), access_log=None)
    await runner.setup()
    addr, port = os.environ.get("STRATOPS_RULER_ADDR", "0.0.0.0"), int(os.environ["STRATOPS_RULER_PORT"])
    await web.TCPSite(runner, addr, port, ssl_context=ctx).start()
    memo.ruler_runner = runner
    log.info("Prometheus-ruler mode: Alertmanager's notifications taken at %s:%d%s", addr, port, PATH)


async def rule_seen(type: str | None, namespace: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A monitor's PrometheusRule changed or went: if it is not what the operator wrote, the
    monitor is evaluated at once, which writes its rules again (an edit must not weaken a check
    while its heartbeat still comes)."""
    monitor = (body.get("metadata", {}).get("labels") or {}).get("stratops.io/monitor")
    if not monitor or getattr(memo, "monitor_schedule", None) is None:
        return
    gone = type == "DELETED" or bool(body.get("metadata", {}).get("deletionTimestamp"))
    spec = None if gone else dict(body.get("spec") or {})
    if memo.monitors.rule_seen(namespace, monitor, spec):
        memo.monitor_schedule.evaluate_now(namespace, monitor)


def register(registry: kopf.OperatorRegistry) -> None:
    """The PrometheusRules' watch, only in the mode (without it the CRD need not exist)."""
    if os.environ.get("STRATOPS_RULER_PORT"):
        kopf.on.event(
            "monitoring.coreos.com",
            "v1",
            "prometheusrules",
            labels={"app.kubernetes.io/managed-by": "stratops"},
            registry=registry,
        )(rule_seen)
