"""The throttle's depth depends only on what happened (issue 21): one level per cause (an
incident class, a throttle command), whatever order the incidents open in and however many
reconcile passes see them arrive. Before, each pass that saw a new incident throttled again: with
Prometheus stopped, one strategy's 11 StaleData incidents cut its limits by x0.125 in one run."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from cases import example
from stratops.gates.evaluate import GateEvaluation
from stratops.lifecycle import limits as L
from stratops.lifecycle.commands import parse_command
from stratops.lifecycle.decide import decide
from stratops.lifecycle.types import IncidentView, Observations
from stratops.models.strategy import StrategySpec, StrategyStatus

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
GATES = {"fx-daily": GateEvaluation("Complete", ["a"], [], cadence="daily", signers=("rita",))}
SPEC = StrategySpec.model_validate(example("strategy.yaml")["spec"])
FACTOR = SPEC.throttle.factor if SPEC.throttle else 0.5
CLASSES = ("StaleData", "FeatureDrift", "PnLDivergence")


def run(batches: list[list[tuple[str, str]]], commands_at: set[int] = frozenset()) -> StrategyStatus:
    """Decide over passes; pass i sees the incidents of BATCHES[:i+1] open (name, class), and a
    throttle command when i is in COMMANDS_AT. Returns the last status."""
    status = StrategyStatus()
    seen: dict[str, IncidentView] = {}
    now = T0
    for i, batch in enumerate([[], *batches, [], []]):
        for name, class_ in batch:
            seen.setdefault(name, IncidentView(name, class_, "P1", "throttle", "Open"))
        cmds = (
            (parse_command("throttle", json.dumps({"by": "alice", "reason": f"desk {i}", "id": f"c{i}"})),)
            if i - 1 in commands_at
            else ()
        )
        o = Observations(
            now=now,
            name="mean-revert",
            namespace="desk",
            uid="u-1",
            generation=1,
            incidents=tuple(seen.values()),
            gates=GATES,
            commands=cmds,
        )
        plan = decide(SPEC, status, o)
        for name, _ in plan.incident_actions:
            if name in seen:
                seen[name] = replace(seen[name], acted=True)
        status = plan.status
        now += timedelta(seconds=1)
    return status


def expected(levels: int) -> L.EffectiveLimits:
    return L.throttled_by(L.from_spec(SPEC.risk_limits), FACTOR, levels)


def test_eleven_stale_monitors_are_one_cause_one_level():
    one_by_one = run([[(f"stale-{i}", "StaleData")] for i in range(11)])
    all_at_once = run([[(f"stale-{i}", "StaleData") for i in range(11)]])
    assert one_by_one.effective_limits == all_at_once.effective_limits == expected(1)
    assert one_by_one.throttle.causes == ["StaleData"]


def test_a_second_class_is_a_second_level_and_a_command_a_third():
    s = run([[("stale-0", "StaleData")], [("drift-0", "FeatureDrift"), ("stale-1", "StaleData")]], commands_at={2})
    assert s.effective_limits == expected(3) and len(s.throttle.causes) == 3


@settings(max_examples=300, deadline=None)
@given(
    incidents=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(CLASSES)), min_size=1, max_size=14),
    cuts=st.lists(st.integers(0, 14), max_size=6),
    order=st.randoms(use_true_random=False),
)
def test_the_depth_is_one_level_per_class_whatever_the_order_and_the_passes(incidents, cuts, order):
    named = [(f"inc-{i}-{n}", c) for i, (n, c) in enumerate(incidents)]
    order.shuffle(named)
    edges = sorted({0, len(named), *(c % (len(named) + 1) for c in cuts)})
    batches = [named[a:b] for a, b in pairwise(edges)]
    s = run(batches)
    classes = {c for _, c in named}
    assert s.effective_limits == expected(len(classes)), (batches, s.throttle)
    assert sorted(s.throttle.causes) == sorted(classes)
