"""A decision with nothing to do and no time asked to be woken at stays so as time passes: every
decision that depends on the clock (known-good after healthyFor, rollout and acknowledgement
deadlines, a handover's steps, the exit grace) asks for its wake (Plan.wake_in). The Strategy
daemon relies on it to skip its safety-net pass over inputs that have not changed
(stratops.handlers.strategy): were a decision to change with the clock alone, that pass would
be what finds it, up to STRATOPS_RESYNC_FULL_SECONDS late.

A random walk of the operator's world (test_lifecycle.World: deploy, rollouts good and failing,
kill, throttle, resume, rollback, incidents opened and resolved, pods that stop acknowledging,
time passing), checked at every state where the decision was a no-op without a wake."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratops.lifecycle.commands import parse_command
from stratops.lifecycle.decide import decide
from stratops.lifecycle.types import IncidentView


def _lifecycle_tests():  # type: ignore[no-untyped-def]
    """test_lifecycle's World (pytest imports test modules by path, not as importable names)."""
    name = "stratops_test_lifecycle"
    if name not in sys.modules:
        found = importlib.util.spec_from_file_location(name, Path(__file__).with_name("test_lifecycle.py"))
        assert found is not None and found.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
    return sys.modules[name]


World, cmd, spec = _lifecycle_tests().World, _lifecycle_tests().cmd, _lifecycle_tests().spec

LATER = (timedelta(seconds=31), timedelta(minutes=11), timedelta(hours=2), timedelta(hours=25))

ACTIONS = st.one_of(
    st.tuples(st.just("wait"), st.sampled_from([1, 3, 11, 61, 700])),
    st.tuples(st.just("command"), st.sampled_from(["kill", "throttle", "resume", "rollback", "reconciliation"])),
    st.tuples(st.just("incident"), st.sampled_from(["P0", "P1"])),
    st.tuples(st.just("resolve"), st.just(None)),
    st.tuples(st.just("version"), st.sampled_from(["1.5.0", "1.5.1", "fail-1.6.0"])),
    st.tuples(st.just("acks"), st.booleans()),
)


def _act(w: World, action: tuple[str, object], i: int) -> None:
    kind, arg = action
    if kind == "wait":
        w.step(float(arg))  # type: ignore[arg-type]
    elif kind == "command" and arg == "reconciliation":
        evidence = {"result": "Matched", "evidence": "positions match", "by": "ops"}
        w.step(commands=(parse_command("reconciliation", json.dumps(evidence)),))
    elif kind == "command":
        w.step(commands=cmd(str(arg), f"walk {i}", id=f"c{i}"))
    elif kind == "incident":
        w.incidents[f"i{i}"] = IncidentView(f"i{i}", "RiskBreach", str(arg), None, "Open")
        w.step()
    elif kind == "resolve":
        for name, inc in list(w.incidents.items()):
            w.incidents[name] = replace(inc, phase="Resolved")
        w.step()
    elif kind == "version":
        image = w.spec.image
        if str(arg).startswith("fail-"):
            image = image.rsplit(":", 1)[0] + ":fail-1.6.0"
        w.spec = w.spec.model_copy(update={"version": str(arg).removeprefix("fail-"), "image": image})
        w.step()
    elif kind == "acks":
        w.strategy_acks = bool(arg)
        w.step()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(ACTIONS, min_size=1, max_size=25))
def test_a_decision_with_nothing_to_do_and_no_wake_stays_so_as_time_passes(actions):
    w = World(spec())
    w.run_until(lambda w: w.status.phase and w.status.phase.value == "Running")
    checked = 0
    for i, action in enumerate(actions):
        _act(w, action, i)
        # The state the operator would rest in: decide again on what the last pass left.
        before = w.status
        plan = w.step(0.5)
        if not plan.is_noop(before) or plan.requeue_after is not None:
            continue
        for later in LATER:
            obs = replace(w.last_obs, now=w.last_obs.now + later)
            again = decide(w.spec, w.status, obs)
            assert again.is_noop(w.status), (
                f"{later} later the decision changes with no input changed and no wake asked: "
                f"status {again.status.model_dump(exclude_none=True, mode='json')} "
                f"events {again.events} deployment {again.deployment is not None} control {again.control}"
            )
        checked += 1
