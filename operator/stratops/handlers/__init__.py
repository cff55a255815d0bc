"""kopf wiring: thin. One daemon per Strategy reconciles it; everything else only indexes or pokes.

The daemon is the single writer of its Strategy (no overlapping handlers). It sleeps until
something relevant changes (the Strategy, its Deployment, pods, control/ack ConfigMaps,
incidents, gates: each pokes it) or until the time the last decision asked to be woken (a
deadline), with a slow safety-net period. Observations come from in-memory indexes, so a
reconcile that changes nothing costs no API call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from stratops import GROUP, VERSION
from stratops import metrics as M
from stratops.admission.policies import ANNOTATION_MODE_AUTHOR, ANNOTATION_TRADING_AUTHOR, VERB_SIGN_FOR_OTHERS
from stratops.admission.webhooks import WEBHOOK_PATHS
from stratops.handlers import kopf_fixes
from stratops.k8s.client import api_client, bounded
from stratops.k8s.executor import Executor, namespace_terminating
from stratops.k8s.monitoring import MonitorRunner
from stratops.lifecycle import manifests
from stratops.lifecycle.commands import commands_from_annotations
from stratops.lifecycle.control import ControlDocument, read_acks, read_control
from stratops.lifecycle.decide import decide
from stratops.lifecycle.observe import (
    configmap_view,
    deployment_view,
    incident_view,
    owned_documents,
    pod_view,
    read_gates,
)
from stratops.lifecycle.types import Observations, Plan, ReportMonitor
from stratops.models.common import parse_duration
from stratops.models.gate import GateSpec, GateStatus
from stratops.models.strategy import StrategySpec, StrategyStatus, TradingState

if TYPE_CHECKING:
    from stratops.admission import review

# Before kopf starts: a namespace deleted at the wrong moment held every handler, or stayed Terminating.
kopf_fixes.apply()

SAFETY_NET_SECONDS = float(os.environ.get("STRATOPS_RESYNC_SECONDS", "60"))
LABEL = manifests.LABEL_STRATEGY
log = logging.getLogger("stratops.operator")


def plain(obj: Any) -> Any:
    """kopf hands out mapping views; decisions and pydantic want plain dicts and lists."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def _key(namespace: str | None, strategy: str) -> tuple[str, str]:
    return (namespace or "", strategy)


class Runtime:
    """Per-operator state: API access, pokes, what this process wrote last, and worker pools.

    Strategy reconciles (kill-switch, throttle, rollback) have a pool of their own, so a slow
    metrics source or an alert receiver that times out can never delay a kill-switch.
    """

    def __init__(self) -> None:
        self.executor = Executor(bounded(api_client()))
        self.lifecycle_pool = ThreadPoolExecutor(
            int(os.environ.get("STRATOPS_LIFECYCLE_WORKERS", "16")), "stratops-lifecycle"
        )
        self.monitor_pool = ThreadPoolExecutor(int(os.environ.get("STRATOPS_MONITOR_WORKERS", "8")), "stratops-monitor")
        self.gate_pool = ThreadPoolExecutor(2, "stratops-gate")
        self.pokes: dict[tuple[str, str], asyncio.Event] = {}
        # What this process last wrote into each control ConfigMap (the executor records it as
        # each write succeeds, whatever fails after it).
        self.written_control: dict[tuple[str, str], ControlDocument] = self.executor.written_control
        self.audit_synced: set[tuple[str, str]] = set()  # subjects whose last status lines were written again
        self.trail_tails: dict[str, Any] = {}  # uid -> (head, last latch entry) of a new Strategy's name

    def poke(self, key: tuple[str, str]) -> None:
        ev = self.pokes.get(key)
        if ev is not None:
            ev.set()


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.enabled = False  # the operator posts its own, meaningful Events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    _configure_peering(settings)
    # kopf follows namespaces and CRDs cluster-wide to start watches as they appear. An operator
    # given only namespaced rights (the chart's default) says so, and serves its named namespaces
    # and the CRDs present at start, instead of retrying forbidden cluster-wide lists for a minute.
    settings.scanning.disabled = os.environ.get("STRATOPS_CLUSTER_SCANNING", "true").lower() == "false"
    _configure_admission(settings)
    memo.runtime = Runtime()
    memo.monitors = MonitorRunner(memo.runtime.executor.api)
    M.serve(int(os.environ.get("STRATOPS_METRICS_PORT", "0")))


HELD_LIMIT_SECONDS = float(os.environ.get("STRATOPS_HANDLERS_HELD_LIMIT_SECONDS", "60"))


@kopf.on.startup()
async def watch_held_handlers(**_: Any) -> None:
    """Every handler waits while kopf fills its indexes; held for long, no kill-switch would be
    carried out. Said in the log (with what it waits for) and as a gauge; the liveness probe
    (held_handlers) fails past STRATOPS_HANDLERS_HELD_LIMIT_SECONDS, so the kubelet restarts it."""

    async def watch() -> None:
        said = 0.0
        while True:
            held, waiting = kopf_fixes.held_for(time.monotonic())
            M.HANDLERS_HELD_SECONDS.set(held)
            if held >= 30 and held - said >= 30:
                log.error("every handler held for %.0fs waiting for kopf's indexes: %s", held, ", ".join(waiting[:20]))
                said = held
            elif held == 0:
                said = 0.0
            await asyncio.sleep(1)

    asyncio.get_running_loop().create_task(watch(), name="stratops: held-handlers watch")


@kopf.on.startup()
async def retry_audit_writes(memo: kopf.Memo, **_: Any) -> None:
    """Audit entries whose write failed are retried every few seconds, off the kill path."""

    async def retry() -> None:
        rt: Runtime = memo.runtime
        while True:
            await asyncio.sleep(5)
            if rt.executor.audit.pending():
                await asyncio.get_running_loop().run_in_executor(rt.gate_pool, rt.executor.audit.retry)

    asyncio.get_running_loop().create_task(retry(), name="stratops: audit retries")


@kopf.on.startup()
async def dump_on_sigusr1(**_: Any) -> None:
    """`kill -USR1 <operator>` logs what every asyncio task and thread is waiting on: for an
    operator that serves but does not act, this is where it is stuck."""
    import faulthandler
    import signal

    def awaiting(coro: Any) -> str:
        # A task's own stack is one frame for a suspended coroutine: follow what it awaits.
        out = []
        while coro is not None and len(out) < 40:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                out.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        return "\n".join(out)

    def dump() -> None:
        tasks = asyncio.all_tasks()
        log.warning("SIGUSR1: %d asyncio tasks and every thread follow", len(tasks))
        for task in sorted(tasks, key=lambda t: t.get_name()):
            log.warning("task %s awaits:\n%s", task.get_name(), awaiting(task.get_coro()))
        faulthandler.dump_traceback(all_threads=True)  # to stderr

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (in-process tests)
        log.debug("SIGUSR1 dump not installed: signals are handled by the main thread only")


@kopf.on.probe(id="held_handlers")
def held_handlers(**_: Any) -> float:
    held, waiting = kopf_fixes.held_for(time.monotonic())
    if held > HELD_LIMIT_SECONDS:
        raise kopf.PermanentError(f"every handler held for {held:.0f}s waiting for: {', '.join(waiting[:20])}")
    return held


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The same credentials as the operator's own client (KUBECONFIG read at call time)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        return kopf.login_via_client(**kwargs)
    cfg = api_client().configuration
    # kubernetes >= 30 keeps a kubeconfig's token under "BearerToken" (older: "authorization").
    keys = cfg.api_key or {}
    token = keys.get("BearerToken") or keys.get("authorization") or ""
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        scheme="Bearer" if token else None,
        token=token.removeprefix("Bearer ") or None,
    )


def peering_priority(value: str) -> int:
    """STRATOPS_PEERING_PRIORITY: a number, or `random` for replicas of one Deployment, which
    cannot be given distinct numbers (equal priorities would pause every replica)."""
    if value.strip().lower() == "random":
        return secrets.randbelow(2**31 - 1) + 1
    return int(value)


def _configure_peering(settings: kopf.OperatorSettings) -> None:
    """HA: with STRATOPS_PEERING (the KopfPeering/ClusterKopfPeering name) only the replica with
    the highest priority acts; the others pause until its record lapses or it leaves."""
    name = os.environ.get("STRATOPS_PEERING", "")
    settings.peering.standalone = name == ""
    if not name:
        return
    settings.peering.name = name
    settings.peering.priority = peering_priority(os.environ.get("STRATOPS_PEERING_PRIORITY", "0"))
    # Mandatory: a replica starts paused and acts only once it has seen its peers, so two
    # replicas starting together never both act; a missing peering object keeps it paused.
    settings.peering.mandatory = True
    # How long a replica that died without leaving (SIGKILL, node loss) blocks the standby.
    settings.peering.lifetime = int(os.environ.get("STRATOPS_PEERING_LIFETIME", "60"))
    log.info("peering %r with priority %d", name, settings.peering.priority)


def _configure_admission(settings: kopf.OperatorSettings) -> None:
    """Serve the validating webhooks when STRATOPS_WEBHOOK_PORT is set (TLS: _CERT, _KEY, _CA
    files; _HOST is what the API server dials). Their configuration is the chart's (or
    stratops.admission.webhooks'): the operator never writes admission configuration. Without
    them, promotion, live changes and signature times are checked by the operator only after
    the fact: said loudly, once."""
    port = os.environ.get("STRATOPS_WEBHOOK_PORT")
    if not port:
        log.warning(
            "STRATOPS_WEBHOOK_PORT is not set: promotions, live changes and gate signatures are NOT checked "
            "at admission (the operator still refuses to act on them)"
        )
        return
    settings.admission.server = kopf.WebhookServer(
        addr=os.environ.get("STRATOPS_WEBHOOK_ADDR", "0.0.0.0"),
        port=int(port),
        host=os.environ.get("STRATOPS_WEBHOOK_HOST"),
        certfile=os.environ.get("STRATOPS_WEBHOOK_CERT"),
        pkeyfile=os.environ.get("STRATOPS_WEBHOOK_KEY"),
        cafile=os.environ.get("STRATOPS_WEBHOOK_CA"),
    )
    settings.admission.managed = None


def _allow_lists() -> review.AllowLists:
    from stratops.admission import review

    def listed(var: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in os.environ.get(var, "").split(",") if x.strip())

    return review.AllowLists(
        image_registries=listed("STRATOPS_ALLOWED_REGISTRIES"),
        prometheus_urls=listed("STRATOPS_ALLOWED_PROMETHEUS_URLS"),
        strategy_secret_labels=review.parse_selector(os.environ.get("STRATOPS_STRATEGY_SECRET_LABELS", "")),
        monitor_secret_labels=review.parse_selector(os.environ.get("STRATOPS_MONITOR_SECRET_LABELS", "")),
    )


def _refuse(problems: list[str]) -> None:
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=403)


def _parsed(model: Any, raw: Any, what: str) -> Any:
    """The spec as the operator reads it; anything it cannot read is refused (fail closed),
    naming the field as `stratops validate` does."""
    from pydantic import ValidationError

    from stratops.models.validate import describe_errors

    try:
        return model.model_validate(plain(raw or {}))
    except ValidationError as e:
        problems = "; ".join(f"{f}: {m}" for f, m in describe_errors(e))
        raise kopf.AdmissionError(f"{what} cannot be read, so it cannot be checked: {problems}", code=400) from e


def validate_gate(body: kopf.Body, old: Any, userinfo: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    """Signature times and four eyes (stratops.admission.review.review_gate); who signs is the
    API server's own check (stratops.admission.policies)."""
    from stratops.admission import review

    ex: Executor = memo.runtime.executor
    ns, user = body["metadata"]["namespace"], (userinfo or {}).get("username", "")
    new_spec = _parsed(GateSpec, body.get("spec"), "spec")
    old_spec = _parsed(GateSpec, old.get("spec"), "the stored spec") if old else None
    strategies = {}
    for s in new_spec.strategies:
        raw = ex.read_strategy(ns, s)
        if raw is not None:
            sspec = _parsed(StrategySpec, raw.get("spec"), f"strategy {s}'s spec")
            strategies[s] = (
                sspec,
                ((raw.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TRADING_AUTHOR),
            )
    others = ex.may(
        ns, user, list((userinfo or {}).get("groups") or []), "gates", VERB_SIGN_FOR_OTHERS, body["metadata"]["name"]
    )
    _refuse(review.review_gate(old_spec, new_spec, datetime.now(UTC), others, strategies))


def validate_strategy(
    body: kopf.Body, old: Any, userinfo: dict[str, Any], memo: kopf.Memo, warnings: list[str], **_: Any
) -> None:
    """Promotion and live changes against the pre-launch gate, the gate's cadence, allowed
    images and Secrets (stratops.admission.review)."""
    from stratops.admission import review

    ex: Executor = memo.runtime.executor
    meta = body["metadata"]
    ns, name, user = meta["namespace"], meta["name"], (userinfo or {}).get("username", "")
    new_spec = _parsed(StrategySpec, body.get("spec"), "spec")
    old_spec = _parsed(StrategySpec, old.get("spec"), "the stored spec") if old else None
    was_live = bool(old) and (old.get("status") or {}).get("mode") == "live"
    named = [new_spec.gates.pre_launch] if new_spec.gates and new_spec.gates.pre_launch else []
    gates = {
        g: (_parsed(GateSpec, raw.get("spec"), f"gate {g}'s spec") if (raw := ex.read_gate(ns, g)) else None)
        for g in named
    }
    author = (meta.get("annotations") or {}).get(ANNOTATION_TRADING_AUTHOR)
    allow = _allow_lists()
    problems = review.review_strategy(name, old_spec, was_live, new_spec, user, author, gates, datetime.now(UTC))
    problems += review.review_image(new_spec, allow)
    more, warned = review.review_secrets(
        review.secret_references(new_spec), lambda s: ex.secret_labels(ns, s), allow.strategy_secret_labels
    )
    warnings.extend(warned)
    _refuse(problems + more)


def validate_monitor(body: kopf.Body, memo: kopf.Memo, warnings: list[str], **_: Any) -> None:
    """A monitor's Prometheus URL and token Secret against the allow-lists."""
    from stratops.admission import review
    from stratops.models.monitor import MonitorSpec

    ex: Executor = memo.runtime.executor
    ns = body["metadata"]["namespace"]
    spec = _parsed(MonitorSpec, body.get("spec"), "spec")
    problems, warned = review.review_monitor(spec, _allow_lists(), lambda s: ex.secret_labels(ns, s))
    warnings.extend(warned)
    _refuse(problems)


# kopf refuses to start with admission handlers and no server: register the webhook handlers
# only when they are served (STRATOPS_WEBHOOK_PORT in the operator's environment at import).
# Each fails closed, and its configuration (stratops.admission.webhooks, the chart) sends it only
# spec changes: a command annotation never depends on it.
if os.environ.get("STRATOPS_WEBHOOK_PORT"):
    for _plural, _fn in (("gates", validate_gate), ("strategies", validate_strategy), ("monitors", validate_monitor)):
        kopf.on.validate(GROUP, VERSION, _plural, id=WEBHOOK_PATHS[_plural], operations=["CREATE", "UPDATE"])(_fn)


# -- indexes: observations without API calls -------------------------------------------------
@kopf.index("apps", "v1", "deployments", labels={LABEL: kopf.PRESENT})
def strategy_deployments(namespace: str, labels: dict[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_key(namespace, labels[LABEL]): deployment_view(plain(body))}


@kopf.index("", "v1", "pods", labels={LABEL: kopf.PRESENT})
def strategy_pods(namespace: str, labels: dict[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_key(namespace, labels[LABEL]): pod_view(plain(body))}


@kopf.index("", "v1", "configmaps", labels={LABEL: kopf.PRESENT, manifests.LABEL_COMPONENT: kopf.PRESENT})
def strategy_configmaps(namespace: str, labels: dict[str, str], body: kopf.Body, **_: Any) -> dict:
    # Every ConfigMap with the labels, with its name and owners: the reconcile reads only its own.
    return {_key(namespace, labels[LABEL]): configmap_view(plain(body), labels[manifests.LABEL_COMPONENT])}


@kopf.index(GROUP, VERSION, "incidents")
def strategy_incidents(namespace: str, spec: kopf.Spec, body: kopf.Body, **_: Any) -> dict:
    return {_key(namespace, spec.get("strategy", "")): incident_view(plain(body))}


@kopf.index(GROUP, VERSION, "monitors")
def strategy_report_monitors(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict | None:
    """Monitors of values the strategy reports (exposure, loss): the strategy's daemon evaluates
    them on every report, so they are as fast as the reports."""
    raw = plain(spec)
    if not (raw.get("source") or {}).get("strategy"):
        return None
    try:
        from stratops.models.monitor import MonitorSpec

        m = MonitorSpec.model_validate(raw)  # as the API server admitted it: no defaults made up here
    except ValidationError as e:
        log.warning("[%s/%s] report monitor not read, so not evaluated: %s", namespace, name, _brief(e))
        return None
    if m.source.strategy is None or m.check.threshold is None:
        return None
    th, inc = m.check.threshold, m.incident
    return {
        _key(namespace, m.strategy): ReportMonitor(
            name=name,
            report=m.source.strategy.report,
            comparison=th.operator,
            threshold=th.value,
            class_=inc.class_.value,
            severity=inc.severity.value,
            action=inc.action,
            require_rearm=inc.require_rearm,
        )
    }


@kopf.on.event(GROUP, VERSION, "monitors")
def monitor_changed(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    if (spec.get("source") or {}).get("strategy"):
        memo.runtime.poke(_key(namespace, spec.get("strategy", "")))


@kopf.index(GROUP, VERSION, "gates")
def strategy_gates(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict:
    raw = plain(spec)
    return {_key(namespace, s): (name, raw) for s in spec.get("strategies") or []}


# -- pokes: wake the strategy's daemon when something it watches changes -----------------------
def _poke_owner(memo: kopf.Memo, namespace: str | None, labels: dict[str, str]) -> None:
    if LABEL in labels:
        memo.runtime.poke(_key(namespace, labels[LABEL]))


@kopf.on.event("apps", "v1", "deployments", labels={LABEL: kopf.PRESENT})
def deployment_changed(namespace: str, labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    _poke_owner(memo, namespace, labels)


@kopf.on.event("", "v1", "pods", labels={LABEL: kopf.PRESENT})
def pod_changed(namespace: str, labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    _poke_owner(memo, namespace, labels)


@kopf.on.event("", "v1", "configmaps", labels={LABEL: kopf.PRESENT, manifests.LABEL_COMPONENT: kopf.PRESENT})
def configmap_changed(namespace: str, labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    # Acks, and any write to the control document or a ConfigMap posing as one: decided at once.
    _poke_owner(memo, namespace, labels)


@kopf.on.event(GROUP, VERSION, "incidents")
def incident_changed(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.poke(_key(namespace, spec.get("strategy", "")))


@kopf.on.event(GROUP, VERSION, "gates")
def gate_changed(namespace: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    for s in spec.get("strategies") or []:
        memo.runtime.poke(_key(namespace, s))


@kopf.on.event(GROUP, VERSION, "strategies")
def strategy_changed(namespace: str, name: str, memo: kopf.Memo, strategy_gates: kopf.Index, **_: Any) -> None:
    memo.runtime.poke(_key(namespace, name))
    for gate, _spec in strategy_gates.get(_key(namespace, name), []):
        memo.runtime.poke(("gate", namespace, gate))  # pre-launch signatures name the version


# -- the reconcile ------------------------------------------------------------------------------
def snapshot(indexes: dict[str, Any], keys: list[Any]) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Plain copies of INDEXES' entries under KEYS. Taken on the event loop, where kopf changes
    its index stores; a worker thread iterating a live store races those changes (on the kill
    path: a reconcile that fails and is retried)."""
    return {name: {k: tuple(index.get(k, ())) for k in keys} for name, index in indexes.items()}


def _observe(
    body: dict[str, Any], spec: StrategySpec, now: datetime, rt: Runtime, idx: dict[str, Any]
) -> tuple[Observations, bool]:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    key = _key(ns, name)
    deps = list(idx["strategy_deployments"].get(key, []))
    control_data, ack_data, foreign = owned_documents(name, meta["uid"], list(idx["strategy_configmaps"].get(key, [])))
    control, control_problem = read_control(control_data)
    acks, ack_problems = read_acks(ack_data)
    # The index lags this process's own writes: never go back to an older control document.
    mine = rt.written_control.get(key)
    if mine is not None and not control_problem and (control is None or control.generation < mine.generation):
        control = mine
    gates, gate_problems = read_gates(name, spec, idx["strategy_gates"].get(key, []), now)
    prior_head = prior_latch = None
    if (body.get("status") or {}).get("observedGeneration") is None:
        # A Strategy that has never been decided: if its name has a trail (deleted and applied
        # again), its chain goes on, and a latch in it holds. Read once per object.
        if meta["uid"] not in rt.trail_tails:
            head, entry = rt.executor.audit.tail(ns, "Strategy", name, ("KillSwitch", "Resume"))
            rt.trail_tails[meta["uid"]] = ((head.seq, head.hash), entry)
        prior_head, prior_latch = rt.trail_tails[meta["uid"]]
    obs = Observations(
        now=now,
        name=name,
        namespace=ns,
        uid=meta["uid"],
        generation=int(meta.get("generation") or 0),
        deployment=deps[0] if deps else None,
        pods=tuple(idx["strategy_pods"].get(key, [])),
        control=control,
        acks=acks,
        incidents=tuple(idx["strategy_incidents"].get(key, [])),
        gates=gates,
        commands=commands_from_annotations(meta.get("annotations")),
        report_monitors=tuple(idx["strategy_report_monitors"].get(key, [])),
        trading_author=(meta.get("annotations") or {}).get(ANNOTATION_TRADING_AUTHOR),
        mode_author=(meta.get("annotations") or {}).get(ANNOTATION_MODE_AUTHOR),
        control_problem=control_problem,
        foreign_configmaps=tuple(foreign),
        ack_problems=tuple(ack_problems),
        gate_problems=tuple(gate_problems),
        prior_head=prior_head,
        prior_latch=prior_latch,
        control_written=mine.content_hash() if mine is not None else None,
    )
    return obs, ack_data is not None


def _has_effect(plan: Plan, status: StrategyStatus) -> bool:
    return bool(
        plan.deployment
        or plan.control
        or plan.incidents
        or plan.incident_actions
        or plan.incident_containment
        or plan.delete_pods
        or plan.events
        or plan.clear_annotations
        or plan.status.to_dict() != status.to_dict()
    )


def _decide(
    body: dict[str, Any], now: datetime, rt: Runtime, idx: dict[str, Any]
) -> tuple[Plan, Observations, bool, StrategyStatus]:
    spec = StrategySpec.model_validate(body.get("spec") or {})
    status = StrategyStatus.model_validate(body.get("status") or {})
    obs, has_ack = _observe(body, spec, now, rt, idx)
    return decide(spec, status, obs), obs, has_ack, status


def _being_deleted(body: dict[str, Any]) -> bool:
    # A Strategy being deleted takes its Deployment and pods with it (owner references); acting
    # on it would only write into a namespace that may be terminating (403, retried forever).
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def reconcile(body: dict[str, Any], rt: Runtime, idx: dict[str, Any]) -> float | None:
    """One pass; returns when to be woken next (seconds) if a deadline is pending."""
    if _being_deleted(body):
        return None
    now = datetime.now(UTC)
    meta = body["metadata"]
    if (meta["namespace"], meta["name"]) not in rt.audit_synced:
        # After a restart, the last decision's lines again (idempotent): a crash may have come
        # between the status write that holds them and the trail's.
        pending = ((body.get("status") or {}).get("audit") or {}).get("pending")
        if pending:
            rt.executor.audit.append(meta["namespace"], "Strategy", meta["name"], pending)
        rt.audit_synced.add((meta["namespace"], meta["name"]))
    try:
        plan, obs, _, status = _decide(body, now, rt, idx)
    except Exception as e:
        return _halt_without_decision(body, now, rt, idx, e)
    if not _has_effect(plan, status):
        return plan.requeue_after
    started = datetime.now(UTC)
    # Something to write: decide again on the Strategy as stored now (the watched body may
    # lag this process's last status write), and write at that resourceVersion.
    fresh = rt.executor.read_strategy(obs.namespace, obs.name)
    if fresh is None or _being_deleted(fresh):
        return None
    try:
        plan, obs, has_ack, status = _decide(fresh, now, rt, idx)
    except Exception as e:
        return _halt_without_decision(fresh, now, rt, idx, e)
    if not _has_effect(plan, status):
        return plan.requeue_after
    try:
        created = rt.executor.execute(
            obs.namespace, obs.name, obs.uid, fresh["metadata"]["resourceVersion"], plan, now, has_ack
        )
    except ApiException as e:
        if e.status not in (400, 422):
            raise  # conflicts, a terminating namespace, an API server away: the daemon retries
        # The API server refuses what the decision built (an object it cannot store): the
        # decision cannot be carried out; the kill path still can, on the objects as they are.
        return _halt_without_decision(fresh, now, rt, idx, e)
    for action in plan.actions:
        M.ACTIONS.labels(obs.namespace, obs.name, action).inc()
    for inc in plan.incidents:
        if inc.name in created:
            M.INCIDENTS_OPENED.labels(obs.namespace, obs.name, inc.class_.value, inc.severity.value).inc()
    if plan.kill_switch_seconds is not None:
        M.KILL_SWITCH_SECONDS.observe(plan.kill_switch_seconds)
    for state in TradingState:
        M.TRADING_STATE.labels(obs.namespace, obs.name, state.value).set(1 if plan.status.trading_state == state else 0)
    M.RECONCILE_SECONDS.observe((datetime.now(UTC) - started).total_seconds())
    return plan.requeue_after if plan.requeue_after is not None else 0.5 if plan.clear_annotations else None


def _halt_without_decision(
    body: dict[str, Any], now: datetime, rt: Runtime, idx: dict[str, Any], error: Exception
) -> float | None:
    """The decision for BODY failed with ERROR: say so on the Strategy (condition, Event, log,
    metric), and carry out a kill given or latched without it (stratops.lifecycle.halt)."""
    from stratops.lifecycle.commands import parse_command
    from stratops.lifecycle.halt import CONDITION, when_undecidable

    meta = body["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    key = _key(ns, name)
    why = f"{type(error).__name__}: {_brief(error)}"
    if isinstance(error, ValidationError):  # the spec as the operator reads it: say which field, as admission would
        from stratops.models.validate import describe_errors

        why = "the spec cannot be read: " + "; ".join(f"{f}: {m}" for f, m in describe_errors(error))
    M.RECONCILE_ERRORS.labels(ns, name).inc()
    log.error(
        "[%s/%s] cannot decide or carry out the decision (%s): the kill path runs without it",
        ns,
        name,
        why,
        exc_info=not isinstance(error, ApiException),
    )
    fresh = rt.executor.read_strategy(ns, name)
    if fresh is None or _being_deleted(fresh):
        return None
    ann = fresh["metadata"].get("annotations") or {}
    kill = parse_command("kill", ann[f"{GROUP}/kill"]) if f"{GROUP}/kill" in ann else None
    control_data, _, _ = owned_documents(name, uid, list(idx["strategy_configmaps"].get(key, [])))
    control, _ = read_control(control_data)
    mine = rt.written_control.get(key)
    if mine is not None and (control is None or control.generation < mine.generation):
        control = mine
    deps = list(idx["strategy_deployments"].get(key, []))
    live_pods = [p for p in idx["strategy_pods"].get(key, []) if not p.terminating]
    stopped = (not deps or deps[0].replicas == 0) and not live_pods
    current = plain(fresh.get("status") or {})
    halt = when_undecidable(
        name, int(fresh["metadata"].get("generation") or 0), current, kill, control, now, why, stopped
    )
    running = bool(deps) and deps[0].replicas > 0
    if halt.status == current and halt.control is None and not (halt.scale_to_zero and running):
        return 5.0
    rt.executor.execute_halt(
        ns, name, uid, fresh["metadata"]["resourceVersion"], halt, now
    )  # remembers its control write
    prev = next((c for c in current.get("conditions") or [] if c.get("type") == CONDITION), {})
    if prev.get("status") != "True" or prev.get("message") != why[:1024]:
        rt.executor.event(ns, name, uid, "Warning", "CannotDecide", halt.message, now)
    return 5.0  # soon again: the decision may work after a fix, and the halt completes


def _brief(e: BaseException) -> str:
    """An API error as one line (status, reason, the server's message), not its HTTP headers."""
    if isinstance(e, ApiException):
        try:
            message = json.loads(e.body or "{}").get("message")
        except (ValueError, AttributeError):
            message = None
        return f"{e.status} {e.reason}" + (f": {message}" if message else "")
    return str(e)


async def _sleep(poke: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float) -> None:
    """Until poked, stopped, or TIMEOUT seconds: a daemon's wait between passes."""
    waiters = [asyncio.ensure_future(poke.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


@kopf.daemon(GROUP, VERSION, "strategies", cancellation_timeout=10)
async def strategy_daemon(
    name: str,
    namespace: str,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger,
    strategy_deployments: kopf.Index,
    strategy_pods: kopf.Index,
    strategy_configmaps: kopf.Index,
    strategy_incidents: kopf.Index,
    strategy_gates: kopf.Index,
    strategy_report_monitors: kopf.Index,
    **_: Any,
) -> None:
    rt: Runtime = memo.runtime
    key = _key(namespace, name)
    poke = rt.pokes.setdefault(key, asyncio.Event())
    indexes = {
        "strategy_deployments": strategy_deployments,
        "strategy_pods": strategy_pods,
        "strategy_configmaps": strategy_configmaps,
        "strategy_incidents": strategy_incidents,
        "strategy_gates": strategy_gates,
        "strategy_report_monitors": strategy_report_monitors,
    }
    backoff, conflicts = 1.0, 0
    try:
        while not stopped:
            poke.clear()
            try:
                # kopf changes its indexes on the event loop: the worker thread gets a copy of
                # this strategy's entries, taken here, never the live stores.
                idx = snapshot(indexes, [key])
                wake = await asyncio.get_running_loop().run_in_executor(
                    rt.lifecycle_pool, reconcile, plain(body), rt, idx
                )
                backoff, conflicts = 1.0, 0
            except Exception as e:
                if namespace_terminating(e):
                    # Its namespace is going, and the Strategy with it: nothing to act on.
                    logger.info("not acting: the namespace is being deleted")
                    await _sleep(poke, stopped, SAFETY_NET_SECONDS)
                    continue
                if isinstance(e, ApiException) and e.status == 409 and conflicts < 5:
                    # The Strategy changed between reading and writing its status (kopf's own
                    # annotations, a user's edit): decide again on the new one, soon. Whatever
                    # was written before the status is idempotent (stratops.k8s.executor).
                    conflicts += 1
                    logger.debug(f"status changed meanwhile (conflict {conflicts}): deciding again")
                    await _sleep(poke, stopped, 0.1 * 2**conflicts)
                    continue
                M.RECONCILE_ERRORS.labels(namespace, name).inc()
                logger.warning(f"reconcile failed, retrying in {backoff:.0f}s: {_brief(e)}")
                wake, backoff = backoff, min(backoff * 2, 60.0)
            await _sleep(poke, stopped, SAFETY_NET_SECONDS if wake is None else min(wake, SAFETY_NET_SECONDS))
    finally:
        rt.pokes.pop(key, None)
        rt.written_control.pop(key, None)


# -- monitors: one daemon each, evaluating at the monitor's own frequency ------------------------
@kopf.index(GROUP, VERSION, "strategies")
def strategies_by_name(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {
        _key(namespace, name): {
            "spec": plain(body.get("spec") or {}),
            "status": plain(body.get("status") or {}),
            "uid": body.get("metadata", {}).get("uid"),
            "generation": body.get("metadata", {}).get("generation"),
        }
    }


def _monitor_view(body: kopf.Body) -> dict[str, Any]:
    """What an evaluation reads of its Monitor, not the whole body: its managedFields are often
    larger than its spec, and were copied at every evaluation of thousands of monitors."""
    meta = body.get("metadata", {})
    return {
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation")},
        "spec": plain(body.get("spec") or {}),
        "status": plain(body.get("status") or {}),
    }


@kopf.daemon(GROUP, VERSION, "monitors", cancellation_timeout=10)
async def monitor_daemon(
    name: str,
    namespace: str,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger,
    strategies_by_name: kopf.Index,
    **_: Any,
) -> None:
    runner: MonitorRunner = memo.monitors
    while not stopped:
        raw = _monitor_view(body)
        if (raw["spec"].get("source") or {}).get("strategy"):
            # Evaluated by the strategy's daemon on every report (strategy_report_monitors).
            note = "evaluated by the operator on every report from the strategy (event-driven), not polled"
            if (raw.get("status") or {}).get("detail") != note:
                # Off the event loop: a slow API server must not stall every other handler.
                await asyncio.get_running_loop().run_in_executor(
                    memo.runtime.monitor_pool,
                    memo.runtime.executor.custom.patch_namespaced_custom_object_status,
                    GROUP,
                    VERSION,
                    namespace,
                    "monitors",
                    name,
                    {"status": {"detail": note}},
                )
            await stopped.wait(SAFETY_NET_SECONDS)
            continue
        strategy = next(iter(strategies_by_name.get(_key(namespace, raw["spec"].get("strategy", "")), [])), None)
        try:
            ev = await asyncio.get_running_loop().run_in_executor(memo.runtime.monitor_pool, runner.run, raw, strategy)
            if ev.finding:
                logger.warning(f"monitor finding: {ev.detail}")
        except Exception as e:
            logger.error(f"monitor evaluation failed: {e}")
        period = parse_duration(raw["spec"].get("frequency", "60s")).total_seconds()
        if strategy is None:  # look again soon: the strategy may be applied after its monitors
            period = min(period, 2.0)
        await stopped.wait(period)


# -- gates: status (signed, missing, expiry, state), re-evaluated on change and at expiry ----------
@kopf.daemon(GROUP, VERSION, "gates", cancellation_timeout=10)
async def gate_daemon(
    name: str,
    namespace: str,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: logging.Logger,
    strategies_by_name: kopf.Index,
    **_: Any,
) -> None:
    rt: Runtime = memo.runtime
    key = ("gate", namespace, name)
    poke = rt.pokes.setdefault(key, asyncio.Event())  # type: ignore[arg-type]
    try:
        while not stopped:
            poke.clear()
            raw = plain(body)
            wake = SAFETY_NET_SECONDS
            try:
                named = [
                    _key(namespace, s) for s in (raw.get("spec") or {}).get("strategies") or [] if isinstance(s, str)
                ]
                strategies = snapshot({"strategies": strategies_by_name}, named)["strategies"]  # on the loop, as above
                wake = await asyncio.get_running_loop().run_in_executor(rt.gate_pool, _gate_status, raw, strategies, rt)
            except Exception as e:
                logger.warning(f"gate status not written: {e}")
            await _sleep(poke, stopped, wake)
    finally:
        rt.pokes.pop(key, None)  # type: ignore[arg-type]
        # Deleted, or this replica paused for a peer: its series would be stale from here on.
        cadence = str((body.get("spec") or {}).get("cadence", ""))
        for gauge in (M.GATE_COMPLETE, M.GATE_EXPIRY):
            try:
                gauge.remove(namespace, name, cadence)
            except KeyError:
                pass


@kopf.on.event(GROUP, VERSION, "gates")
def gate_spec_changed(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.poke(("gate", namespace, name))


def _gate_status(raw: dict[str, Any], strategies: dict[Any, tuple[Any, ...]], rt: Runtime) -> float:
    """Write the gate's status if it changed; seconds until it should be looked at again."""
    from stratops.gates.evaluate import evaluate, subject_for
    from stratops.models.gate import Cadence

    meta = raw["metadata"]
    spec = GateSpec.model_validate(raw.get("spec") or {})
    now = datetime.now(UTC)
    subjects: tuple[str, ...] = ()
    if spec.cadence == Cadence.pre_launch:
        found = []
        for s in spec.strategies:
            entry = next(iter(strategies.get(_key(meta["namespace"], s), [])), None)
            if entry is not None:
                sspec = StrategySpec.model_validate(entry["spec"])
                found.append(subject_for(s, sspec))
        subjects = tuple(found)
    ev = evaluate(spec, now, subjects)
    from stratops.audit import Head, link, signature_entries, signature_key
    from stratops.models.audit import AuditHead

    current = GateStatus.model_validate(raw.get("status") or {})
    # A re-signed item replaces its signature in the Gate: every one goes into the audit chain,
    # once (its key), with the new head and the lines in the status write (stratops.k8s.audit).
    sigs = (raw.get("spec") or {}).get("signatures") or []
    keys = [signature_key(s) for s in sigs]
    new_sigs = [s for s, k in zip(sigs, keys, strict=True) if k not in set(current.audited_signatures or [])]
    lines: list[str] = []
    head = current.audit or AuditHead()
    if new_sigs:
        lines, h = link(Head.of(head.model_dump()), signature_entries(meta["name"], spec.cadence.value, new_sigs, now))
        head = AuditHead(seq=h.seq, hash=h.hash, pending=lines)
    status = GateStatus(
        audited_signatures=keys or None,
        audit=head if head.seq else None,
        state=ev.state,
        signed=ev.summary,
        signed_items=ev.signed or None,
        missing_items=ev.missing or None,
        signers=list(ev.signers) or None,
        expires_at=ev.expires_at,
        observed_generation=int(meta.get("generation") or 0),
        message=(ev.why_not() or "every required item signed")
        + (f"; expired {', '.join(ev.expired)}" if ev.expired else ""),
    )
    M.GATE_COMPLETE.labels(meta["namespace"], meta["name"], spec.cadence.value).set(1 if ev.state == "Complete" else 0)
    if ev.expires_at is not None:
        M.GATE_EXPIRY.labels(meta["namespace"], meta["name"], spec.cadence.value).set(ev.expires_at.timestamp())
    if status.to_dict() != current.to_dict():
        rt.executor.write_gate_status(meta["namespace"], meta["name"], status)
    if lines or (current.audit and current.audit.pending and (meta["namespace"], meta["name"]) not in rt.audit_synced):
        # After a restart, the last lines again: a crash may have come between status and trail.
        rt.executor.audit.append(meta["namespace"], "Gate", meta["name"], lines or current.audit.pending or [])  # type: ignore[union-attr]
    rt.audit_synced.add((meta["namespace"], meta["name"]))
    if ev.expires_at is not None:
        return max(1.0, min((ev.expires_at - now).total_seconds() + 0.5, SAFETY_NET_SECONDS))
    return SAFETY_NET_SECONDS


def _status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from OLD to NEW: top-level fields gone in NEW are deleted (null); nested
    maps merge, so a step the strategy daemon wrote meanwhile is never erased."""
    return {**{k: None for k in old if k not in new}, **new}


# -- incidents: acknowledge, contain, resolve (annotations from `stratops incident ...`) --------
@kopf.on.event(GROUP, VERSION, "incidents", annotations={"stratops.io/ack": kopf.PRESENT})
@kopf.on.event(GROUP, VERSION, "incidents", annotations={"stratops.io/resolve": kopf.PRESENT})
@kopf.on.event(GROUP, VERSION, "incidents", annotations={"stratops.io/contain": kopf.PRESENT})
def incident_command(namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    from stratops.lifecycle.commands import parse_command
    from stratops.models.incident import IncidentSpec, IncidentStatus
    from stratops.recovery import decide_incident

    # Decided on the Incident as the API server has it now, written at its resourceVersion (kopf
    # never retries an event handler, and the strategy's daemon writes the same status).
    now = datetime.now(UTC)
    decided: dict[str, Any] = {}

    def change(raw: dict[str, Any]) -> dict[str, Any] | None:
        spec = IncidentSpec.model_validate(raw.get("spec") or {})
        status = IncidentStatus.model_validate(raw.get("status") or {})
        new, clear, events = decide_incident(spec, status, raw["metadata"].get("annotations") or {}, now, parse_command)
        decided.update(clear=clear, events=events, uid=raw["metadata"]["uid"])
        return _status_patch(status.to_dict(), new.to_dict()) if new.to_dict() != status.to_dict() else None

    ex: Executor = memo.runtime.executor
    if ex.update_incident_status(namespace, name, change) is None:
        return  # deleted meanwhile
    for type_, reason, message in decided["events"]:
        ex.event(namespace, name, decided["uid"], type_, reason, message, now, kind="Incident")
    if decided["clear"]:
        ex.clear_incident_annotations(namespace, name, decided["clear"])


def run(namespaces: list[str], clusterwide: bool, liveness: str | None, verbose: bool) -> None:
    """Run the operator (blocks until it stops): the CLI's `run`, the only way kopf is started."""
    kopf.configure(verbose=verbose, log_prefix=True)  # every object's log line says which object: [ns/name]
    kopf.run(clusterwide=clusterwide, namespaces=namespaces, liveness_endpoint=liveness)
