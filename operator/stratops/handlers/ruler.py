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

import asyncio
import hmac
import os
import ssl
import time
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web

from stratops import metrics as M
from stratops.controller.runtime import log
from stratops.k8s.ruler import publish_receiver
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
    if service := os.environ.get("STRATOPS_RULER_SERVICE"):
        namespace = os.environ.get("STRATOPS_RULER_SERVICE_NAMESPACE") or os.environ.get("POD_NAMESPACE", "")
        advertise = os.environ.get("STRATOPS_RULER_ADVERTISE") or os.environ.get("POD_IP", "")
        if not (namespace and advertise):
            log.error(
                "STRATOPS_RULER_SERVICE is set but its namespace (STRATOPS_RULER_SERVICE_NAMESPACE or POD_NAMESPACE) "
                "or this replica's address (STRATOPS_RULER_ADVERTISE or POD_IP) is not: the receiver Service gets no "
                "endpoint, and the operator evaluates every monitor itself once the heartbeats are stale"
            )
            return
        memo.ruler_publisher = asyncio.get_running_loop().create_task(
            _publish_while_acting(memo, namespace, service, advertise, port), name="stratops: ruler receiver endpoint"
        )


#: The acting replica checks its endpoint this often (another replica may have written its own).
PUBLISH_CHECK_SECONDS = 30.0


async def _publish_while_acting(memo: kopf.Memo, namespace: str, service: str, address: str, port: int) -> None:
    """For ever: while this replica may act, it is the receiver Service's one endpoint. A
    standby writes nothing: the replica that takes over writes itself."""
    loop = asyncio.get_running_loop()
    may_act = memo.monitor_schedule.may_act
    checked: float | None = None
    said = ""  # the last failure said: the same one is not said every second
    while True:
        if not may_act():
            checked = None
        elif checked is None or time.monotonic() - checked >= PUBLISH_CHECK_SECONDS:
            try:
                changed = await loop.run_in_executor(
                    memo.runtime.monitor_pool, publish_receiver, memo.monitors.api, namespace, service, address, port
                )
                checked = time.monotonic()
                if changed:
                    log.info(
                        "acting: the ruler's notifications now come here (%s:%d, Service %s)", address, port, service
                    )
            except Exception as e:  # tried again each second; meanwhile the heartbeats go stale, safely
                if str(e) != said:
                    said = str(e)
                    log.warning("could not publish the ruler receiver's endpoint (Service %s): %s", service, e)
        await asyncio.sleep(1.0)


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
