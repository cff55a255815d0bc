"""The soak's schedule: what the desk does and which faults strike, when. Seeded, so a run can
be replayed: the same seed gives the same schedule (the cluster's timing still varies)."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: What a desk does. "kill-all" is a kill by selector (every strategy); "resume" resumes a
#: latched strategy (after its reconciliation, as a desk must); "resume-unreconciled" tries to
#: without a new one (the operator must refuse it); "rollout" names a new version (handed over
#: warm while the strategy trades), "rollout-bad" one whose processes never start; "release"
#: hands a held handover to its new version after a reconciliation; "breach" pushes a strategy's
#: metric over its monitor's threshold, "recover" brings one back. Signatures: "promote" signs a
#: paper strategy's pre-launch gate for its spec and promotes it, "promote-unsigned" promotes one
#: with a new version nobody signed, "rollout-unsigned" gives a live strategy a new version nobody
#: signed (the operator must refuse both), "demote" puts a live strategy back on paper;
#: "daily-lapse" withdraws a signature of today's daily gate, "daily-sign" signs it again.
OPERATIONS = (
    "kill",
    "kill",
    "kill-all",
    "throttle",
    "throttle",
    "resume",
    "resume",
    "resume",
    "resume",
    "resume-unreconciled",
    "rollout",
    "rollout",
    "rollout-bad",
    "release",
    "breach",
    "breach",
    "recover",
    "recover",
    "promote",
    "promote-unsigned",
    "rollout-unsigned",
    "demote",
    "daily-lapse",
    "daily-sign",
    "daily-sign",
)
#: What the nemesis does. "hang" stops a strategy's processes acknowledging for a while,
#: "process-kill" kills them (the kubelet starts them again in their pods);
#: "etcd-restart" takes etcd away for the fault's length (its data kept); "prometheus-stop" and
#: "alertmanager-stop" stop the desk's metrics source and its pager for the fault's length;
#: "api-slow" and "api-refused" slow or cut the replicas' connections to the API server;
#: "clock-step" steps one replica's wall clock (as its peering reads it) ahead or behind.
FAULTS = (
    "sigkill-leader",
    "sigkill-both",
    "apiserver-restart",
    "etcd-restart",
    "hang",
    "prometheus-stop",
    "alertmanager-stop",
    "api-slow",
    "api-refused",
    "clock-step",
    "process-kill",
)


@dataclass(frozen=True)
class Step:
    at: float  # seconds from the start
    process: str  # driver or nemesis
    f: str
    pick: int  # which strategy, replica, ... (taken modulo what there is)
    duration: float = 0.0  # a fault's length


def schedule(
    seed: int,
    seconds: float,
    operation_every: tuple[float, float] = (2.0, 6.0),
    fault_every: tuple[float, float] = (12.0, 30.0),
    fault_length: tuple[float, float] = (2.0, 8.0),
    faults: tuple[str, ...] = FAULTS,
) -> list[Step]:
    """Operations and faults over SECONDS, in time order; faults never overlap each other (a
    fault's effect is then attributable), operations go on through them."""
    rng = random.Random(seed)
    steps = []
    t = rng.uniform(*operation_every)
    while round(t, 3) < seconds:  # the step is at the rounded time, within the schedule
        steps.append(Step(round(t, 3), "driver", rng.choice(OPERATIONS), rng.randrange(1 << 30)))
        t += rng.uniform(*operation_every)
    t = rng.uniform(*fault_every)
    while round(t, 3) < seconds and faults:
        length = rng.uniform(*fault_length)
        steps.append(Step(round(t, 3), "nemesis", rng.choice(faults), rng.randrange(1 << 30), round(length, 3)))
        t += length + rng.uniform(*fault_every)
    return sorted(steps, key=lambda s: s.at)
