"""The soak's checker on histories written by hand: each invariant is found broken where it is,
and a clean history has no violation."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratops.soak import checker, generator
from stratops.soak.history import Record, dump, load

LIMITS = {"maxPosition": 100.0, "maxOrderRate": 5.0, "maxDailyLoss": 10.0}


def observe(t: float, s: str = "s0", latched: bool = False, halted: bool = False, replicas: int = 1, pods: int = 1,
            **effective: float) -> Record:  # fmt: skip
    return Record(
        t,
        "observer",
        "info",
        "observe",
        s,
        {
            "latched": latched,
            "halted": halted,
            "replicas": replicas,
            "pods": pods,
            "effective": {**LIMITS, **effective},
            "spec": dict(LIMITS),
        },
    )


def command(t: float, f: str, s: str = "s0", type_: str = "ok") -> Record:
    return Record(t, "driver", type_, f, s, {"strategies": [s]})


def final(kills: dict[str, int], chains: dict | None = None) -> list[Record]:
    return [
        Record(1000, "final", "info", "events", None, {"KillSwitch": kills}),
        Record(1000, "final", "info", "audit", None, {"chains": chains if chains is not None else {}}),
    ]


def kill_and_land(t: float = 10.0, after: float = 1.0) -> list[Record]:
    return [
        observe(t - 1),
        command(t, "kill", type_="invoke"),
        command(t, "kill"),
        observe(t + after / 2, latched=True),
        observe(t + after, latched=True, halted=True, replicas=0, pods=0),
    ]


def names(report: checker.Report) -> list[str]:
    return [v.invariant for v in report.violations]


def test_a_clean_history_has_no_violation() -> None:
    h = [*kill_and_land(), *final({"s0": 1}, {"s0": {"findings": [], "kill_switches": 1}})]
    report = checker.check(h)
    assert report.violations == []
    assert report.checked["kill-lands"] == 1 and report.checked["one-action-each"] == 1


def test_a_kill_that_never_lands_or_lands_late() -> None:
    never = [observe(9), command(10, "kill"), observe(50, latched=True, halted=True, replicas=1, pods=1)]
    assert names(checker.check([*never, *final({"s0": 1})])) == ["kill-lands"]
    late = kill_and_land(after=45)
    report = checker.check([*late, *final({"s0": 1})])
    assert names(report) == ["kill-lands"] and "after 45.0 s" in report.violations[0].message


def test_the_bound_counts_from_the_end_of_the_fault_that_delayed_it() -> None:
    fault = [Record(9, "nemesis", "invoke", "sigkill-both", None, {"id": "f"}),
             Record(30, "nemesis", "ok", "sigkill-both", None, {"id": "f"})]  # fmt: skip
    h = [*fault, *kill_and_land(after=45), *final({"s0": 1})]
    assert checker.check(h).violations == []  # landed 25 s after the fault ended: within 30 s


def test_a_kill_still_pending_when_the_history_ends_soon_after_is_not_judged() -> None:
    h = [observe(9), command(10, "kill"), observe(20, latched=True), *final({"s0": 1})]
    h[-2:] = [Record(25, "final", "info", "events", None, {"KillSwitch": {"s0": 1}}),
              Record(25, "final", "info", "audit", None, {"chains": {}})]  # fmt: skip
    assert "kill-lands" not in names(checker.check(h))


def test_a_kill_given_to_a_strategy_already_halted_lands_at_once() -> None:
    """Seen in the soak: a kill to a strategy already halted, then a resume 0.35 s later, before
    the next sample: the kill was in effect from the start."""
    landed = {"latched": True, "halted": True, "replicas": 0, "pods": 0}
    h = [
        *kill_and_land(),
        observe(20, **landed),  # type: ignore[arg-type]
        command(20.1, "kill"),
        command(20.4, "resume"),
        observe(20.6, latched=False),
        *final({"s0": 1}, {"s0": {"findings": [], "kill_switches": 1}}),
    ]
    assert checker.check(h).violations == []


def test_a_limit_above_spec() -> None:
    h = [observe(1, maxPosition=150.0), *final({})]
    report = checker.check(h)
    assert (
        names(report) == ["limits-within-spec"] and "maxPosition 150.0 above spec 100.0" in report.violations[0].message
    )


def test_a_limit_rises_only_after_a_resume() -> None:
    throttled = [command(1, "throttle", type_="invoke"), observe(2, maxPosition=50.0), observe(3, maxPosition=100.0)]
    assert names(checker.check([*throttled, *final({})])) == ["limits-rise-only-on-resume"]
    resumed = [*throttled[:2], command(2.5, "resume", type_="invoke"), observe(3, maxPosition=75.0),
               observe(4, maxPosition=100.0)]  # fmt: skip
    assert checker.check([*resumed, *final({})]).violations == []
    # A kill given after the resume moves no limit: the resume's rise, seen after it, is no violation.
    killed = [*resumed[:3], command(2.7, "kill", type_="invoke"), *resumed[3:]]
    assert checker.check([*killed, *final({})]).violations == []
    # A throttle given after the resume: a rise seen after it is one.
    again = [*resumed[:3], command(2.7, "throttle", type_="invoke"), *resumed[3:]]
    assert names(checker.check([*again, *final({})])) == ["limits-rise-only-on-resume"] * 2


def test_a_kill_carried_out_twice_or_not_recorded() -> None:
    twice = [*kill_and_land(), *final({"s0": 2}, {"s0": {"findings": [], "kill_switches": 1}})]
    assert names(checker.check(twice)) == ["one-action-each"]
    unrecorded = [*kill_and_land(), *final({"s0": 1}, {"s0": {"findings": [], "kill_switches": 0}})]
    assert names(checker.check(unrecorded)) == ["audit-holds-every-decision"]


def test_a_resume_that_never_releases() -> None:
    h = [*kill_and_land(), command(20, "resume"), observe(60, latched=True, halted=True, replicas=0, pods=0)]
    assert names(checker.check([*h, *final({"s0": 1})])) == ["command-not-lost"]


def test_a_broken_audit_chain_or_none_read() -> None:
    h = [*kill_and_land(), *final({"s0": 1}, {"s0": {"findings": ["entry 3 follows no entry"], "kill_switches": 1}})]
    report = checker.check(h)
    assert names(report) == ["audit-verifies"] and "entry 3" in report.violations[0].message
    assert "audit-verifies" in names(checker.check(kill_and_land()))


def _write(t: float, user: str) -> Record:
    return Record(t, "apiserver", "info", "write", None, {"user": user, "resource": "configmaps", "name": "c"})


def test_two_replicas_writing_with_no_peering_transition_between() -> None:
    a, b = "stratops-replica-a", "stratops-replica-b"
    both = [_write(1, a), _write(10, b), _write(20, a), *final({})]
    assert names(checker.check(both)) == ["one-actor", "one-actor"]
    handed_over = [_write(1, a), Record(9.5, "replica", "info", "acting", None, {"replica": "replica-b-1"}),
                   _write(10, b), *final({})]  # fmt: skip
    assert checker.check(handed_over).violations == []


def test_the_excerpt_is_the_history_around_the_violation() -> None:
    h = [observe(9), command(10, "kill"), observe(11), observe(50), *final({"s0": 0})]
    report = checker.check(h)
    v = next(v for v in report.violations if v.invariant == "kill-lands")
    lines = report.excerpt(sorted(h, key=lambda r: r.t), v)
    assert any(" driver " in line and "kill s0" in line for line in lines) and not any("50.000" in x for x in lines)


def test_history_round_trips_through_its_file(tmp_path: Path) -> None:
    h = [*kill_and_land(), *final({"s0": 1})]
    dump(h, tmp_path / "h.jsonl")
    assert load(tmp_path / "h.jsonl") == h
    (tmp_path / "bad.jsonl").write_text('{"t": 1}\n')
    with pytest.raises(ValueError, match="history line 1"):
        load(tmp_path / "bad.jsonl")


@given(st.integers(min_value=0, max_value=2**31), st.floats(min_value=30, max_value=600))
def test_a_seed_gives_one_schedule_with_faults_apart(seed: int, seconds: float) -> None:
    steps = generator.schedule(seed, seconds)
    assert steps == generator.schedule(seed, seconds)
    assert [s.at for s in steps] == sorted(s.at for s in steps) and all(s.at < seconds for s in steps)
    faults = [s for s in steps if s.process == "nemesis"]
    assert all(a.at + a.duration <= b.at for a, b in pairwise(faults))
    assert {s.f for s in steps if s.process == "driver"} <= set(generator.OPERATIONS)


def _with(r: Record, **value: object) -> Record:
    return Record(r.t, r.process, r.type, r.f, r.strategy, {**r.value, **value})


def test_a_latch_released_without_a_reconciliation_after_the_stop() -> None:
    halted = dict(latched=True, halted=True, replicas=0, pods=0)
    stop = 11.0
    ok = [
        *kill_and_land(),
        _with(observe(15, **halted), stopped=stop, reconciled=None),
        command(16, "reconciliation"),
        command(17, "resume"),
        _with(observe(18), stopped=None, reconciled=16.2),
        *final({"s0": 1}),
    ]
    report = checker.check(ok)
    assert report.violations == [] and report.checked["resume-preconditions"] == 1
    stale = [*ok[:6], _with(observe(18), stopped=None, reconciled=5.0), *final({"s0": 1})]  # from before the kill
    assert names(checker.check(stale)) == ["resume-preconditions"]
    never = [*ok[:6], _with(observe(18), stopped=None, reconciled=None), *final({"s0": 1})]
    assert names(checker.check(never)) == ["resume-preconditions"]


def test_a_refused_corner_cutting_resume_is_no_lost_command() -> None:
    halted = dict(latched=True, halted=True, replicas=0, pods=0)
    h = [
        *kill_and_land(),
        command(20, "resume-unreconciled"),
        _with(observe(60, **halted), stopped=11.0, reconciled=None),
        *final({"s0": 1}),
    ]
    assert checker.check(h).violations == []


def sample(t: float, trading: list[str], handover: dict | None = None, s: str = "s0") -> Record:
    r = observe(t, s)
    return Record(
        r.t, r.process, r.type, r.f, r.strategy, {**r.value, "trading_versions": trading, "handover": handover}
    )


def test_two_versions_trading_at_once() -> None:
    history = [sample(1, ["1.4.2"]), sample(2, []), sample(3, ["1.5.1"]), sample(4, ["1.4.2", "1.5.1"]), *final({})]
    report = checker.check(history)
    assert names(report) == ["one-trading-version"] and "2 versions" in report.violations[0].message
    assert report.checked["one-trading-version"] == 4


def test_a_handover_that_never_ends_or_ends_late() -> None:
    def h(step: str, started: str = "t1") -> dict:
        return {"step": step, "startedAt": started, "fromVersion": "1.4.2", "toVersion": "1.5.1"}

    ended = [sample(10, ["1.4.2"], h("Standby")), sample(30, ["1.5.1"], h("Done")), *final({})]
    assert not checker.check(ended).violations and checker.check(ended).checked["handover-ends"] == 1
    late = [sample(10, ["1.4.2"], h("Standby")), sample(100, ["1.5.1"], h("Done")), *final({})]
    assert names(checker.check(late)) == ["handover-ends"]
    never = [sample(10, ["1.4.2"], h("HaltingOld")), sample(100, [], h("HaltingOld")), *final({})]
    assert names(checker.check(never)) == ["handover-ends"]
    # a fault in the way: counted from its end
    faulted = [
        sample(10, ["1.4.2"], h("Standby")),
        Record(11, "nemesis", "invoke", "etcd-restart", None, {"id": "f"}),
        Record(60, "nemesis", "ok", "etcd-restart", None, {"id": "f"}),
        sample(100, ["1.5.1"], h("Done")),
        *final({}),
    ]
    assert not checker.check(faulted).violations


def watched(t: float, incident: str | None = None, opened: dict | None = None, throttled: bool = False) -> Record:
    r = observe(t)
    return Record(
        r.t,
        r.process,
        r.type,
        r.f,
        r.strategy,
        {**r.value, "monitor_incident": incident, "breach_incidents": opened or {}, "throttled": throttled},
    )


def test_a_breach_acted_on_within_the_bound_or_not() -> None:
    acted = [watched(9), command(10, "breach"), watched(13, "b-1", {"b-1": 12.0}, throttled=True), *final({})]
    assert checker.check(acted).violations == [] and checker.check(acted).checked["breach-acted"] == 1
    silent = [watched(9), command(10, "breach"), watched(50, None), *final({})]
    assert names(checker.check(silent)) == ["breach-acted"]
    unslowed = [watched(9), command(10, "breach"), watched(50, "b-1", {"b-1": 12.0}), *final({})]
    assert names(checker.check(unslowed)) == ["breach-acted"], "an incident, but the strategy never slowed"


def test_one_incident_per_breach_unless_the_desk_resolved_it_meanwhile() -> None:
    one = [command(10, "breach"), watched(12, "b-1", {"b-1": 11.0}, True), watched(30, "b-1", {"b-1": 11.0}, True)]
    assert checker.check([*one, *final({})]).violations == []
    two = [*one, watched(31, "b-2", {"b-1": 11.0, "b-2": 31.0}, True)]
    report = checker.check([*two, *final({})])
    assert names(report) == ["one-incident-per-breach"] and "b-1, b-2" in report.violations[0].message
    resolved = [*one, command(30.5, "resolve"), watched(31, "b-2", {"b-1": 11.0, "b-2": 31.0}, True)]
    assert checker.check([*resolved, *final({})]).violations == []
    # The next breach's incident is its own, not the first one's second.
    next_breach = [*one, command(40, "recover"), command(50, "breach"), watched(52, "b-2", {"b-2": 51.0}, True)]
    assert checker.check([*next_breach, *final({})]).violations == []


def test_a_throttle_lost_is_found_unless_a_later_resume_released_it() -> None:
    slowed = [watched(9), command(10, "throttle"), watched(11, throttled=True), *final({})]
    assert checker.check(slowed).violations == []
    lost = [watched(9), command(10, "resume"), command(10.02, "throttle"), watched(11), watched(45), *final({})]
    assert "throttle-lands" in names(checker.check(lost))
    released = [watched(9), command(10, "throttle"), command(10.1, "resume"), watched(11), watched(45), *final({})]
    assert "throttle-lands" not in names(checker.check(released))


def _with_open(r: Record, **open_: float) -> Record:
    return Record(r.t, r.process, r.type, r.f, r.strategy, {**r.value, "open_incidents": open_})


def test_no_latch_or_throttle_released_while_an_incident_from_before_the_resume_is_open() -> None:
    latched = dict(latched=True, halted=True, replicas=0, pods=0)
    before = _with(_with_open(observe(30, **latched), i1=10.0), stopped=20.0)  # type: ignore[arg-type]
    released = _with(_with_open(observe(41), i1=10.0), reconciled=35.0)
    recorded = final({"s0": 1}, {"s0": {"findings": [], "kill_switches": 1}})
    h = [before, command(40, "resume"), released, *recorded]
    report = checker.check(h)
    assert names(report) == ["resume-preconditions"] and "released, open: i1" in report.violations[0].message
    # An incident opened just before the resume (the operator may not know it yet) or after it: none.
    fresh = _with(_with_open(observe(41), i2=38.0), reconciled=35.0)
    assert checker.check([before, command(40, "resume"), fresh, *recorded]).violations == []
    throttled = _with(_with_open(observe(30), i1=10.0), throttled=True)
    thr_released = _with_open(observe(41), i1=10.0)
    assert names(checker.check([throttled, command(40, "resume"), thr_released, *final({})])) == [
        "resume-preconditions"
    ]


def test_a_resume_then_a_throttle_is_the_resume_s_rise() -> None:
    """Seen in the long soak: two causes (x0.25), then a resume and, 0.2 s later, a throttle: the
    limits go to the spec's x0.5, a rise, and the last command is the throttle. The rise is the
    resume's; the throttle slows from the spec."""
    h = [
        command(1, "throttle", type_="invoke"),
        observe(2, maxPosition=25.0),
        command(10.0, "resume", type_="invoke"),
        command(10.2, "throttle", type_="invoke"),
        _with(observe(10.4, maxPosition=50.0), throttled=True),
    ]
    assert checker.check([*h, *final({})]).violations == []
    lost = [*h[:4], observe(10.4, maxPosition=100.0)]
    assert names(checker.check([*lost, *final({})])) == ["limits-rise-only-on-resume"], "the throttle lost: no"
    late = [
        *h[:2],
        command(3, "resume", type_="invoke"),
        command(3.2, "throttle", type_="invoke"),
        observe(20, maxPosition=25.0),
        _with(observe(20.5, maxPosition=50.0), throttled=True),
    ]
    assert names(checker.check([*late, *final({})])) == ["limits-rise-only-on-resume"], "a rise long after: no"


def daily(t: float, f: str) -> Record:
    return Record(t, "driver", "ok", f, None, {"gate": "fx-daily"})


def test_no_resume_carried_out_while_the_daily_gate_was_not_signed() -> None:
    latched = dict(latched=True, halted=True, replicas=0, pods=0)
    before = _with(_with_open(observe(30, **latched)), stopped=20.0)  # type: ignore[arg-type]
    released = _with(_with_open(observe(61)), reconciled=35.0)
    recorded = final({"s0": 1}, {"s0": {"findings": [], "kill_switches": 1}})
    lapsed = [daily(1, "daily-sign"), daily(45, "daily-lapse"), before, command(60, "resume-lapsed"), released]
    report = checker.check([*lapsed, *recorded])
    assert names(report) == ["resume-preconditions"] and "daily gate was not signed" in report.violations[0].message
    # Signed again before the release: the operator may have taken it up then.
    resigned = [*lapsed[:4], daily(60.5, "daily-sign"), released]
    assert checker.check([*resigned, *recorded]).violations == []
    # A lapse written a moment before the resume may not be known to the operator yet.
    just = [daily(1, "daily-sign"), daily(58, "daily-lapse"), before, command(60, "resume"), released]
    assert checker.check([*just, *recorded]).violations == []
    # A history without daily records (an older soak) is not judged on it.
    assert checker.check([before, command(60, "resume"), released, *recorded]).violations == []


def test_a_resume_refused_because_the_daily_gate_lapsed_is_no_lost_command() -> None:
    halted = dict(latched=True, halted=True, replicas=0, pods=0)
    h = [
        daily(1, "daily-sign"),
        *kill_and_land(),
        command(20, "reconciliation"),
        command(21, "resume"),
        daily(22, "daily-lapse"),
        _with(observe(60, **halted), stopped=11.0, reconciled=20.5),
        *final({"s0": 1}),
    ]
    report = checker.check(h)
    assert report.violations == []
    kept = [r for r in h if r.f != "daily-lapse"]
    assert names(checker.check(kept)) == ["command-not-lost"]


def live(t: float, subject: str | None, pods: list[str], signers=("rita", "rob"), author="gitops", mode="live"):
    r = observe(t)
    approved = {"subject": subject, "signers": list(signers), "author": author} if subject else None
    return Record(
        r.t, r.process, r.type, r.f, r.strategy, {**r.value, "mode": mode, "approved": approved, "pod_versions": pods}
    )


def signed(t: float, version: str, subject: str | None = None) -> Record:
    subject = subject or f"s0@{version}"
    return Record(t, "driver", "ok", "sign", "s0", {"version": version, "subject": subject, "signers": ["rita", "rob"]})


def test_nothing_live_without_the_desk_s_signatures() -> None:
    ok = [
        live(1, None, ["1.4.2"], mode="paper"),
        signed(2, "1.4.2"),
        live(3, "s0@1.4.2", ["1.4.2"]),
        live(4, "s0@1.4.2", ["1.4.2"]),
        signed(5, "1.5.1"),
        live(6, "s0@1.5.1", ["1.4.2", "1.5.1"]),
        live(7, "s0@1.5.1", ["1.5.1"]),
        *final({}),
    ]
    report = checker.check(ok)
    assert report.violations == [] and report.checked["signed-live"] == 4
    # Live on a subject the desk never signed.
    never = [ok[0], live(3, "s0@1.4.2", ["1.4.2"]), *final({})]
    assert names(checker.check(never)) == ["signed-live"]
    # Signed by one person twice, or by the spec's author.
    one = [ok[0], ok[1], live(3, "s0@1.4.2", ["1.4.2"], signers=("rita",)), *final({})]
    assert names(checker.check(one)) == ["signed-live"]
    author = [ok[0], ok[1], live(3, "s0@1.4.2", ["1.4.2"], author="rob"), *final({})]
    assert names(checker.check(author)) == ["signed-live"]
    # A live strategy's pods of a version nobody signed, seen twice in a row (an unsigned
    # rollout carried out); seen once only, it may be the reads' skew.
    unsigned = [*ok[:4], live(5, "s0@1.4.2", ["1.4.2", "1.6.0"]), live(6, "s0@1.4.2", ["1.6.0"]), *final({})]
    report = checker.check(unsigned)
    assert names(report) == ["signed-live"] and "1.6.0" in report.violations[0].message
    once = [*ok[:4], live(5, "s0@1.4.2", ["1.6.0"]), live(6, "s0@1.4.2", ["1.4.2"]), *final({})]
    assert checker.check(once).violations == []
    # On paper, anything runs.
    paper = [live(1, None, ["1.6.0"], mode="paper"), live(2, None, ["1.6.0"], mode="paper"), *final({})]
    assert checker.check(paper).violations == []


def transition(t: float, replica: str, f: str, why: str = "peering") -> Record:
    return Record(t, "replica", "info", f, None, {"replica": replica, "why": why})


def test_two_replicas_believing_they_act_at_once() -> None:
    """Seen with a replica's clock stepped 40 s behind: its peer judged its record dead and
    resumed while it went on acting; neither happened to write meanwhile."""
    a, b = "replica-a-1", "replica-b-1"
    handover = [
        transition(1, b, "acting"),
        transition(2, a, "paused"),
        Record(30, "replica", "info", "killed", None, {"replica": b}),
        transition(40, a, "acting"),
        *final({}),
    ]
    report = checker.check(handover)
    assert report.violations == [] and report.checked["one-acting-replica"] == 2
    stepped = [transition(1, b, "acting"), transition(10, a, "acting"), transition(18, a, "paused"), *final({})]
    report = checker.check(stepped)
    assert names(report) == ["one-acting-replica"] and "8.0 s" in report.violations[0].message
    # A fenced replica does not act, whatever peering says; it acts again once the fence lifts.
    fenced = [
        transition(1, b, "acting"),
        transition(5, b, "paused", "fence"),
        transition(15, a, "acting"),
        transition(16, a, "paused"),
        transition(20, b, "acting", "fence"),
        *final({}),
    ]
    assert checker.check(fenced).violations == []
    lifted_early = [*fenced[:3], transition(16, b, "acting", "fence"), transition(20, a, "paused"), *final({})]
    assert names(checker.check(lifted_early)) == ["one-acting-replica"]


def incidents(**each: dict) -> Record:
    return Record(1000, "final", "info", "incidents", None, {"opened": {}, "each": each})


def test_every_incident_s_playbook_steps_are_consistent() -> None:
    fine = {
        "i-open": {"class": "RiskBreach", "phase": "Open", "steps": {"detection": 10.0, "immediateAction": 10.4}},
        "i-done": {
            "class": "RiskBreach",
            "phase": "Resolved",
            "steps": {"detection": 10.0, "immediateAction": 10.0, "containment": 20.0, "postmortem": 30.0},
        },
        "i-person": {"class": "StaleData", "phase": "Contained", "steps": {"detection": 5.0, "containment": 6.0}},
    }
    report = checker.check([*final({}), incidents(**fine)])
    assert report.violations == [] and report.checked["incident-steps"] == 3
    broken = {
        "no-detection": {"phase": "Open", "steps": {"immediateAction": 10.0}},
        "backwards": {"phase": "Open", "steps": {"detection": 10.0, "immediateAction": 5.0}},
        "resolved-bare": {"phase": "Resolved", "steps": {"detection": 10.0}},
        "contained-bare": {"phase": "Contained", "steps": {"detection": 10.0}},
        "open-done": {"phase": "Open", "steps": {"detection": 10.0, "postmortem": 20.0}},
    }
    report = checker.check([*final({}), incidents(**broken)])
    assert names(report) == ["incident-steps"] * 5
    assert {v.message.split(":")[0] for v in report.violations} == {f"incident {n}" for n in broken}


def test_a_rise_after_a_corner_cutting_resume_the_operator_accepted_is_a_resume_s() -> None:
    """The long soak: a resume given without a new reconciliation, accepted on an earlier one
    newer than the stop (resume-preconditions judges that), then the limits rose."""
    h = [
        command(1, "throttle", type_="invoke"),
        observe(2, maxPosition=50.0),
        command(10, "resume-unreconciled", type_="invoke"),
        observe(11, maxPosition=100.0),
        *final({}),
    ]
    assert checker.check(h).violations == []
    assert names(checker.check([*h[:2], h[3], *final({})])) == ["limits-rise-only-on-resume"]
