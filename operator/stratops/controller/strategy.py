"""The Strategy controller: one reconcile is a snapshot of the indexes (taken on the event loop
by the handler), observations, the pure decision (stratops.lifecycle.decide), the Executor's
ordered writes, and when to be woken next. A decision that cannot be made or carried out runs
the kill path without it (stratops.lifecycle.halt)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from stratops import GROUP
from stratops import metrics as M
from stratops.admission.policies import ANNOTATION_MODE_AUTHOR, ANNOTATION_TRADING_AUTHOR
from stratops.controller.runtime import Runtime, log, plain, strategy_key
from stratops.k8s.executor import DEPLOYMENT_INDEX_LAG
from stratops.lifecycle import manifests
from stratops.lifecycle.commands import commands_from_annotations
from stratops.lifecycle.control import read_acks, read_control
from stratops.lifecycle.decide import decide
from stratops.lifecycle.observe import (
    deployment_view,
    owned_documents,
    read_gates,
)
from stratops.lifecycle.types import DeploymentView, Observations, Plan, Stored
from stratops.models.strategy import StrategySpec, StrategyStatus, TradingState


# -- the reconcile ------------------------------------------------------------------------------
def snapshot(indexes: dict[str, Any], keys: list[Any]) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Plain copies of INDEXES' entries under KEYS. Taken on the event loop, where kopf changes
    its index stores; a worker thread iterating a live store races those changes (on the kill
    path: a reconcile that fails and is retried)."""
    return {name: {k: tuple(index.get(k, ())) for k in keys} for name, index in indexes.items()}


def observe(
    body: dict[str, Any], spec: StrategySpec, now: datetime, rt: Runtime, idx: dict[str, Any]
) -> tuple[Observations, Stored]:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    key = strategy_key(ns, name)
    deployment = owned_deployment(rt, key, idx)
    views = list(idx["strategy_configmaps"].get(key, []))
    control_name = manifests.control_name(name)
    if (
        (body.get("status") or {}).get("control")
        and key not in rt.written_control
        and not any(v.name == control_name for v in views)
    ):
        # The status records a control document the index lacks: the index may lag a listing (a
        # standby that has just taken over). Read it before deciding it is gone and writing
        # another generation; owned_documents still decides whether it is the operator's own.
        live, _ = rt.executor.read_control_view(ns, name)
        if live is not None:
            views.append(live)
    control_data, ack_data, foreign = owned_documents(name, meta["uid"], views)
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
        deployment=deployment,
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
    stored = Stored(
        ack_configmap=ack_data is not None,
        control_configmap=control_data is not None or any(v.name == control_name for v in views),
        deployment=deployment is not None,
    )
    return obs, stored


def owned_deployment(rt: Runtime, key: tuple[str, str], idx: dict[str, Any]) -> DeploymentView | None:
    """The strategy's Deployment as the index shows it, or as this process last wrote it while
    the index lags that write (shows none, or an older generation, for at most
    DEPLOYMENT_INDEX_LAG seconds): a pass in that window would otherwise create or replace it
    again. Past the window the index is the truth (someone may have deleted it since)."""
    deps = idx["strategy_deployments"].get(key, ())
    indexed = deps[0] if deps else None
    written = rt.written_deployments.get(key)
    if written is None:
        return indexed
    at, live = written
    mine = deployment_view(live)
    if time.monotonic() - at >= DEPLOYMENT_INDEX_LAG or (indexed is not None and indexed.generation >= mine.generation):
        rt.written_deployments.pop(key, None)
        return indexed
    return mine


def decide_once(
    body: dict[str, Any], now: datetime, rt: Runtime, idx: dict[str, Any]
) -> tuple[Plan, Observations, Stored, StrategyStatus]:
    spec = StrategySpec.model_validate(body.get("spec") or {})
    status = StrategyStatus.model_validate(body.get("status") or {})
    obs, stored = observe(body, spec, now, rt, idx)
    return decide(spec, status, obs), obs, stored, status


def being_deleted(body: dict[str, Any]) -> bool:
    # A Strategy being deleted takes its Deployment and pods with it (owner references); acting
    # on it would only write into a namespace that may be terminating (403, retried forever).
    return bool((body.get("metadata") or {}).get("deletionTimestamp"))


def reconcile(body: dict[str, Any], rt: Runtime, idx: dict[str, Any]) -> float | None:
    """One pass; returns when to be woken next (seconds) if a deadline is pending."""
    if being_deleted(body):
        return None
    now = datetime.now(UTC)
    meta = body["metadata"]
    rt.executor.catch_up(meta["namespace"], meta["name"], meta["uid"], (body.get("status") or {}).get("audit"))
    try:
        plan, obs, stored, status = decide_once(body, now, rt, idx)
    except Exception as e:  # reported on the Strategy; the kill runs without the decision
        return halt_without_decision(body, now, rt, idx, e)
    if plan.is_noop(status):
        return plan.requeue_after
    started = datetime.now(UTC)
    # Decided again on the Strategy as stored now, and written at its resourceVersion: the
    # watched body when it is known current, else what this process wrote or read since, else a
    # read (stratops.k8s.executor.Executor.current_strategy).
    fresh = rt.executor.current_strategy(obs.namespace, obs.name, body)
    if fresh is not body:
        if fresh is None or being_deleted(fresh):
            return None
        # The stored status may hold a decision the watched body does not show yet, whose lines
        # and Events are not done: done before this decision chains on after them.
        rt.executor.catch_up(obs.namespace, obs.name, obs.uid, (fresh.get("status") or {}).get("audit"))
        try:
            plan, obs, stored, status = decide_once(fresh, now, rt, idx)
        except Exception as e:  # as above
            return halt_without_decision(fresh, now, rt, idx, e)
        if plan.is_noop(status):
            return plan.requeue_after
    try:
        created = rt.executor.execute(
            obs.namespace, obs.name, obs.uid, fresh["metadata"]["resourceVersion"], plan, now, stored
        )
    except ApiException as e:
        if e.status not in (400, 422):
            raise  # conflicts, a terminating namespace, an API server away: the daemon retries
        # The API server refuses what the decision built (an object it cannot store): the
        # decision cannot be carried out; the kill path still can, on the objects as they are.
        return halt_without_decision(fresh, now, rt, idx, e)
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


def halt_without_decision(
    body: dict[str, Any], now: datetime, rt: Runtime, idx: dict[str, Any], error: Exception
) -> float | None:
    """The decision for BODY failed with ERROR: say so on the Strategy (condition, Event, log,
    metric), and carry out a kill given or latched without it (stratops.lifecycle.halt)."""
    from stratops.audit import entry_seq
    from stratops.lifecycle.commands import parse_command
    from stratops.lifecycle.halt import CONDITION, kill_taken_up, when_undecidable

    meta = body["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
    key = strategy_key(ns, name)
    why = f"{type(error).__name__}: {brief(error)}"
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
    if fresh is None or being_deleted(fresh):
        return None
    ann = fresh["metadata"].get("annotations") or {}
    kill = parse_command("kill", ann[f"{GROUP}/kill"]) if f"{GROUP}/kill" in ann else None
    control_data, _, _ = owned_documents(name, uid, list(idx["strategy_configmaps"].get(key, [])))
    control, _ = read_control(control_data)
    mine = rt.written_control.get(key)
    if mine is not None and (control is None or control.generation < mine.generation):
        control = mine
    own = owned_deployment(rt, key, idx)
    deps = [own] if own is not None else []
    live_pods = [p for p in idx["strategy_pods"].get(key, []) if not p.terminating]
    stopped = (not deps or deps[0].replicas == 0) and not live_pods
    current = plain(fresh.get("status") or {})
    halt = when_undecidable(
        name, int(fresh["metadata"].get("generation") or 0), current, kill, control, now, why, stopped
    )
    running = bool(deps) and deps[0].replicas > 0
    if halt.status == current and halt.control is None and not (halt.scale_to_zero and running):
        return 5.0
    latches = kill is not None and not kill.error and not (current.get("killSwitch") or {}).get("latched")
    # A kill this halt latches goes on the record as the kill watch's does (the KillSwitch Event
    # and its entry in the chain), and counts as the action it is.
    confirmed = rt.executor.audit.confirmed(ns, "Strategy", name)
    recorded = kill_taken_up(name, halt, kill, why, now, confirmed) if latches else None
    rt.executor.execute_halt(
        ns, name, uid, fresh["metadata"]["resourceVersion"], halt, now
    )  # remembers its control write
    if recorded is not None:
        event, lines = recorded
        M.ACTIONS.labels(ns, name, "kill_switch").inc()
        rt.executor.event(ns, name, uid, event.type, event.reason, event.message, now, entry=entry_seq(lines[-1]))
        rt.executor.audit.append(ns, "Strategy", name, lines)
    prev = next((c for c in current.get("conditions") or [] if c.get("type") == CONDITION), {})
    if prev.get("status") != "True" or prev.get("message") != why[:1024]:
        rt.executor.event(ns, name, uid, "Warning", "CannotDecide", halt.message, now)
    return 5.0  # soon again: the decision may work after a fix, and the halt completes


def brief(e: BaseException) -> str:
    """An API error as one line (status, reason, the server's message), not its HTTP headers."""
    if isinstance(e, ApiException):
        try:
            message = json.loads(e.body or "{}").get("message")
        except (ValueError, AttributeError):
            message = None
        return f"{e.status} {e.reason}" + (f": {message}" if message else "")
    return str(e)
