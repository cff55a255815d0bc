"""The soak's checker: the desk's invariants, proved over a history (stratops.soak.history)
after the run. Each violation names the invariant, says what was seen, and carries the history
around the moment it happened.

What the records carry (bench/soak.py writes them):
- driver: kill / throttle / reconciliation / resume / resume-unreconciled (a desk cutting a
  corner: a resume without a new reconciliation, which the operator must refuse), `invoke`
  then `ok` (written) or `fail`; a kill by selector names its strategies in value["strategies"].
- nemesis: each fault `invoke` at its start and `ok` at its end, with the same value["id"].
- observer: `observe` samples of each strategy: latched (the kill-switch), halted (its control
  document says HALTED), replicas (the Deployment's), pods (running, not terminating),
  effective and spec (the limits, by name), stopped (the kill-switch's completion, or its latch)
  and reconciled (the last reconciliation), as epoch seconds or None; trading_versions (the
  versions whose live pods last acknowledged a state that trades) and handover (its step,
  startedAt, fromVersion and toVersion, or None).
- apiserver: `write` by a replica (value: user, verb, resource, name), from the audit log.
- replica: its peering transitions, `acting`, `paused`, `killed`, `started` (value: replica);
  `acting` and `paused` carry value["why"]: "peering" (kopf paused it for a peer, or resumed it)
  or "fence" (it fenced itself, or the fence lifted). It acts while neither holds it.
- driver: breach / recover (the strategy's metric pushed over its monitor's threshold, and back).
- observer, besides: monitor_incident (the strategy's breach monitor's status.incident) and
  breach_incidents (name -> creation time, epoch seconds, of every breach-class incident that
  monitor opened, open or resolved); open_incidents (name -> creation time of the strategy's
  incidents not resolved).
- final: `events` (value["KillSwitch"]: count per strategy) and `audit` (value["chains"]: per
  chain, findings and the number of KillSwitch entries, for strategies by name); `incidents`
  also carries value["each"]: per incident, its class, phase and the time (epoch seconds) of each
  playbook step it records (detection, immediateAction, containment, postmortem).
- driver: sign (a strategy's pre-launch gate signed for a spec by two people: value subject,
  version, signers), promote / promote-unsigned / demote / rollout-unsigned (spec.mode or
  version changed, with or without those signatures), daily-lapse / daily-sign (a signature of
  the daily gate withdrawn, the gate signed again), resume-lapsed (a resume given while the
  driver's daily gate is lapsed, which the operator must refuse).
- observer, besides: mode (status.mode), approved (status.approved: subject, signers, author)
  and pod_versions (the versions of the strategy's running pods).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from stratops.soak.history import Record, ordered

EPSILON = 1e-9
#: A switch of the writing replica is explained by a peering transition this close to it: the
#: audit log is written in batches of up to a second, and the logs are stamped to the ms.
SWITCH_TOLERANCE = 2.0
#: A resume given this long before a sample may not be carried out yet when it is taken.
RESUME_SLACK = 5.0
#: Every resume the driver gives, including the corner-cutting ones: whether the operator may
#: carry one out is resume-preconditions' to judge; once carried out, its rise is a resume's (the
#: long soak's corner-cutting resume was rightly accepted on an earlier reconciliation).
RESUMES = ("resume", "resume-unreconciled", "resume-lapsed")
#: Timestamps in status are written to the microsecond and read back as floats.
RECONCILED_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Bounds:
    kill: float = 30.0  # command (or the end of the fault that delayed it) to HALTED and 0 pods
    resume: float = 30.0  # resume written to the latch released
    # A warm handover started to a step it ends at: the soak's rollout deadline (20 s, standing
    # by) and two acknowledgement deadlines (10 s each: the old version halting, the new one
    # taking over), and the operator's passes between them.
    handover: float = 55.0
    # A breach to its incident and the strategy slowed (or already stopped): the monitor's period
    # and Prometheus's scrape (1 s each in the soak), the decision, and the reconcile.
    breach: float = 30.0


@dataclass(frozen=True)
class Violation:
    invariant: str
    t: float
    message: str
    strategy: str | None = None


@dataclass(frozen=True)
class Report:
    violations: list[Violation]
    checked: dict[str, int]  # invariant -> how many cases it was checked on

    def excerpt(self, history: list[Record], v: Violation, around: float = 3.0, limit: int = 20) -> list[str]:
        near = [
            r for r in history if abs(r.t - v.t) <= around and (v.strategy is None or r.strategy in (None, v.strategy))
        ]
        return [r.render() for r in near[:limit]]


def _faults(history: list[Record]) -> list[tuple[float, float]]:
    """Fault intervals (start, end); a fault never ended lasts to the end of the history."""
    starts: dict[str, float] = {}
    out = []
    end_of_history = history[-1].t if history else 0.0
    for r in history:
        if r.process != "nemesis":
            continue
        fid = str(r.value.get("id", r.f))
        if r.type == "invoke":
            starts[fid] = r.t
        elif fid in starts:
            out.append((starts.pop(fid), r.t))
    out.extend((s, end_of_history) for s in starts.values())
    return sorted(out)


def _counted_from(t0: float, until: float, faults: list[tuple[float, float]]) -> float:
    """T0, or the end of the last fault that overlapped [T0, UNTIL] if later: the clock of a
    bound starts when nothing stands in the way."""
    start = t0
    for s, e in faults:
        if s <= until and e >= start:
            start = max(start, e)
    return start


def _observations(history: list[Record]) -> dict[str, list[Record]]:
    obs: dict[str, list[Record]] = defaultdict(list)
    for r in history:
        if r.process == "observer" and r.f == "observe" and r.strategy:
            obs[r.strategy].append(r)
    return obs


def _targets(r: Record) -> list[str]:
    return list(r.value.get("strategies") or ([r.strategy] if r.strategy else []))


def _within_bound(
    name: str,
    history: list[Record],
    faults: list[tuple[float, float]],
    obs: dict[str, list[Record]],
    command: str,
    bound: float,
    reached: Callable[[Record], bool],
    what: str,
    excused: Callable[[Record], bool] = lambda r: False,
) -> tuple[list[Violation], int]:
    out, checked = [], 0
    end = history[-1].t if history else 0.0
    for r in history:
        if r.process != "driver" or r.f != command or r.type != "ok" or excused(r):
            continue
        for s in _targets(r):
            checked += 1
            samples = obs.get(s, [])
            # From the last sample before the command: a kill given to a strategy already
            # halted has landed at once, even if a resume follows before the next sample.
            first = max((i for i, o in enumerate(samples) if o.t <= r.t), default=0)
            hit = next((o for o in samples[first:] if reached(o)), None)
            start = _counted_from(r.t, hit.t if hit else end, faults)
            if hit is None:
                if end - start >= bound:
                    out.append(Violation(name, r.t, f"{command} given at {r.t:.3f}: never {what}", s))
            elif hit.t - start > bound:
                out.append(
                    Violation(
                        name,
                        r.t,
                        f"{command} given at {r.t:.3f}: {what} after {hit.t - start:.1f} s (bound {bound:.0f} s, "
                        f"counted from {start:.3f})",
                        s,
                    )
                )
    return out, checked


def kill_lands(history: list[Record], bounds: Bounds) -> tuple[list[Violation], int]:
    def landed(o: Record) -> bool:
        v = o.value
        return bool(v.get("latched") and v.get("halted") and v.get("replicas") == 0 and v.get("pods") == 0)

    return _within_bound(
        "kill-lands",
        history,
        _faults(history),
        _observations(history),
        "kill",
        bounds.kill,
        landed,
        "HALTED with 0 replicas and no pod",
    )


def resume_lands(history: list[Record], bounds: Bounds) -> tuple[list[Violation], int]:
    """Every resume releases the latch within the bound, unless the daily gate lapsed before the
    operator could take it up (a resume then needs the gate signed again: refused, rightly)."""
    lapses = [r.t for r in history if r.process == "driver" and r.f == "daily-lapse" and r.type == "ok"]
    return _within_bound(
        "command-not-lost",
        history,
        _faults(history),
        _observations(history),
        "resume",
        bounds.resume,
        lambda o: not o.value.get("latched"),
        "released",
        excused=lambda r: any(r.t - bounds.resume <= t <= r.t + bounds.resume for t in lapses),
    )


def throttle_lands(history: list[Record], bounds: Bounds) -> tuple[list[Violation], int]:
    """A throttle is never lost: once the bound has passed (counted from the command, or from
    the end of the fault that delayed it) the strategy is slowed or stopped, unless a resume given
    after the throttle released it. (The long soak found one given 23 ms after a resume, consumed
    by it: the strategy traded at full limits.) Judged on the sample at the bound, not the first
    one after the command, which may still show the state from before."""
    resumes: dict[str, list[float]] = defaultdict(list)
    for r in history:
        if r.process == "driver" and r.type == "ok" and r.f in RESUMES:
            for s in _targets(r):
                resumes[s].append(r.t)
    faults, obs = _faults(history), _observations(history)
    end = history[-1].t if history else 0.0
    out, checked = [], 0
    for r in history:
        if r.process != "driver" or r.type != "ok" or r.f != "throttle":
            continue
        for s in _targets(r):
            at = _counted_from(r.t, r.t + bounds.kill, faults) + bounds.kill
            if at > end:
                continue  # the history ends before the bound: not judged
            checked += 1
            if any(r.t < t <= at for t in resumes[s]):
                continue  # released by a later resume: accounted for
            sample = next((o for o in reversed(obs.get(s, [])) if o.t <= at), None)
            if sample is None or sample.t <= r.t:
                out.append(Violation("throttle-lands", r.t, f"throttle given at {r.t:.3f}: never observed after", s))
                continue
            if not (sample.value.get("throttled") or sample.value.get("latched")):
                out.append(
                    Violation(
                        "throttle-lands", r.t, f"throttle given at {r.t:.3f}: at {at:.3f} neither slowed nor stopped", s
                    )
                )
    return out, checked


def breach_acted(history: list[Record], bounds: Bounds) -> tuple[list[Violation], int]:
    """Every breach has its incident, and the strategy is slowed (or already stopped), within the
    bound counted from the breach or the end of the fault that delayed it."""
    return _within_bound(
        "breach-acted",
        history,
        _faults(history),
        _observations(history),
        "breach",
        bounds.breach,
        lambda o: bool(o.value.get("monitor_incident") and (o.value.get("throttled") or o.value.get("latched"))),
        "an incident and the strategy slowed or stopped",
    )


def one_incident_per_breach(history: list[Record]) -> tuple[list[Violation], int]:
    """A breach opens one incident, however long it lasts and however often the monitor is
    evaluated, replicas fail over or Prometheus comes and goes: the incidents its monitor opens
    between one breach and the next are at most one, plus one for each time the desk resolved
    them meanwhile (a breach that comes back after that opens a new one, on purpose)."""
    breaches: dict[str, list[float]] = defaultdict(list)
    resolves: dict[str, list[float]] = defaultdict(list)
    for r in history:
        if r.process == "driver" and r.type == "ok" and r.strategy:
            if r.f == "breach":
                breaches[r.strategy].append(r.t)
            elif r.f == "resolve":
                resolves[r.strategy].append(r.t)
    created: dict[str, dict[str, float]] = defaultdict(dict)
    for s, samples in _observations(history).items():
        for o in samples:
            created[s].update(o.value.get("breach_incidents") or {})
    out, checked = [], 0
    end = history[-1].t + 1 if history else 0.0
    for s, times in breaches.items():
        for start, until in zip(times, [*times[1:], end], strict=True):
            checked += 1
            # Creation times are whole seconds: a window runs from its breach's second on.
            lo, hi = float(int(start)), float(int(until))
            opened = sorted(n for n, c in created[s].items() if lo <= c < hi)
            allowed = 1 + sum(1 for t in resolves[s] if start <= t < until)
            if len(opened) > allowed:
                out.append(
                    Violation(
                        "one-incident-per-breach",
                        start,
                        f"breach at {start:.3f}: {len(opened)} incidents ({', '.join(opened)}), at most {allowed}",
                        s,
                    )
                )
    return out, checked


#: The playbook's steps, in the order they happen.
STEPS = ("detection", "immediateAction", "containment", "postmortem")
#: Steps written in one pass carry one time; a second apart is a later pass.
STEP_TOLERANCE = 1.0


def incident_steps(history: list[Record]) -> tuple[list[Violation], int]:
    """Every incident's four playbook steps are consistent: it has its detection, its steps
    happened in the playbook's order, and its phase says what its steps say (Resolved with its
    postmortem, Contained with its containment, none of them before)."""
    final = next((r for r in history if r.process == "final" and r.f == "incidents" and "each" in r.value), None)
    if final is None:
        return [], 0  # an older history: the incidents' steps were not read
    out, checked = [], 0
    for name, inc in sorted((final.value.get("each") or {}).items()):
        checked += 1
        steps = {k: float(v) for k, v in (inc.get("steps") or {}).items() if v is not None}
        phase = inc.get("phase") or "Open"
        problems = []
        if "detection" not in steps:
            problems.append("no detection step")
        present = [k for k in STEPS if k in steps]
        for a, b in pairwise(present):
            if steps[b] < steps[a] - STEP_TOLERANCE:
                problems.append(f"{b} before {a}")
        if phase == "Resolved" and "postmortem" not in steps:
            problems.append("resolved without its postmortem step")
        if phase == "Contained" and "containment" not in steps:
            problems.append("contained without its containment step")
        if phase in ("Open", "Acknowledged") and "postmortem" in steps:
            problems.append(f"{phase} with a postmortem step")
        if problems:
            out.append(
                Violation("incident-steps", final.t, f"incident {name}: {'; '.join(problems)}", inc.get("strategy"))
            )
    return out, checked


def limits_within_spec(history: list[Record]) -> tuple[list[Violation], int]:
    out, checked = [], 0
    for s, samples in _observations(history).items():
        for o in samples:
            eff, spec = o.value.get("effective") or {}, o.value.get("spec") or {}
            for k, v in eff.items():
                if v is None or spec.get(k) is None:
                    continue
                checked += 1
                if float(v) > float(spec[k]) + EPSILON:
                    out.append(Violation("limits-within-spec", o.t, f"effective {k} {v} above spec {spec[k]}", s))
    return out, checked


def limits_rise_only_on_resume(history: list[Record]) -> tuple[list[Violation], int]:
    """A limit may rise only while the last command that moves limits given to its strategy is a
    resume (the ramp after a resume takes several steps). A kill moves none: a resume given
    before a kill may be carried out, and its rise seen, after the kill was given (the soak found
    that under an API server restart; the rise is the resume's)."""
    commands: dict[str, list[Record]] = defaultdict(list)
    for r in history:
        if r.process == "driver" and r.type == "invoke" and r.f in ("throttle", *RESUMES):
            for s in _targets(r):
                commands[s].append(r)
    out, checked = [], 0
    for s, samples in _observations(history).items():
        for prev, cur in pairwise(samples):
            before, now = prev.value.get("effective") or {}, cur.value.get("effective") or {}
            for k, v in now.items():
                if v is None or before.get(k) is None:
                    continue
                checked += 1
                if float(v) <= float(before[k]) + EPSILON:
                    continue
                last = next((c for c in reversed(commands.get(s, [])) if c.t <= cur.t), None)
                # A resume given just before or since the previous sample, then a throttle that
                # stands (the strategy is throttled): the rise is the resume's, and the throttle
                # after it slows from the spec, not from the deeper throttle the resume released,
                # whichever pass carried each out. A rise to unthrottled limits is not excused.
                resumed = bool(cur.value.get("throttled")) and any(
                    c.f in RESUMES and prev.t - RESUME_SLACK < c.t <= cur.t for c in commands.get(s, [])
                )
                if (last is None or last.f not in RESUMES) and not resumed:
                    out.append(
                        Violation(
                            "limits-rise-only-on-resume",
                            cur.t,
                            f"{k} rose {before[k]} -> {v} with no resume since the last {last.f if last else 'start'}",
                            s,
                        )
                    )
    return out, checked


def one_action_each(history: list[Record]) -> tuple[list[Violation], int]:
    """Each latch seen is carried out once: one KillSwitch Event, one KillSwitch entry in the
    audit chain, per time the strategy was seen going from running to latched."""
    episodes: dict[str, int] = defaultdict(int)
    for s, samples in _observations(history).items():
        was = False
        for o in samples:
            now = bool(o.value.get("latched"))
            if now and not was:
                episodes[s] += 1
            was = now
    final = {r.f: r for r in history if r.process == "final"}
    out, checked = [], 0
    end = history[-1].t if history else 0.0
    events = (final["events"].value.get("KillSwitch") or {}) if "events" in final else None
    chains = (final["audit"].value.get("chains") or {}) if "audit" in final else None
    for s in sorted(set(episodes) | set(events or {})):
        checked += 1
        if events is not None and int(events.get(s, 0)) != episodes[s]:
            out.append(
                Violation(
                    "one-action-each",
                    end,
                    f"{events.get(s, 0)} KillSwitch Events for {episodes[s]} latches seen",
                    s,
                )
            )
        chain = (chains or {}).get(s)
        if chains is not None and chain is not None and int(chain.get("kill_switches", 0)) != episodes[s]:
            out.append(
                Violation(
                    "audit-holds-every-decision",
                    end,
                    f"{chain.get('kill_switches', 0)} KillSwitch entries in the audit chain for {episodes[s]} latches",
                    s,
                )
            )
    return out, checked


#: An incident this much older than a resume command was in the operator's index when it decided
#: (creation times are whole seconds, and a watch event takes a moment under faults).
KNOWN_BEFORE = 5.0


def resume_preconditions(history: list[Record]) -> tuple[list[Violation], int]:
    """A latch is released only after a reconciliation recorded later than the stop (the
    kill-switch's completion, or its latch): what the operator's resume requires, whatever the
    desk asked (the driver also tries resumes that skip it). From the observer's samples: the
    stop as the last latched sample shows it, the reconciliation as the first released one does.
    And no latch or throttle is released while an incident of the strategy that existed before
    the resume is still open (incidents never reopen: open after the release, open at it), or
    unless the daily gate was signed at some moment between the resume and the release (the
    driver's daily-lapse and daily-sign; a history without them is not checked for it)."""
    resumes: dict[str, list[float]] = defaultdict(list)
    for r in history:
        if r.process == "driver" and r.type == "ok" and r.f in RESUMES:
            for s in _targets(r):
                resumes[s].append(r.t)
    signed_daily = _daily_signed(history)
    out, checked = [], 0
    for s, samples in _observations(history).items():
        for prev, cur in pairwise(samples):
            unlatched = prev.value.get("latched") and not cur.value.get("latched")
            unthrottled = (
                prev.value.get("throttled") and not cur.value.get("throttled") and not cur.value.get("latched")
            )
            if (unlatched or unthrottled) and "open_incidents" in cur.value:
                asked = max((t for t in resumes[s] if t <= cur.t), default=None)
                stale = sorted(
                    n for n, c in (cur.value.get("open_incidents") or {}).items() if asked and c <= asked - KNOWN_BEFORE
                )
                checked += 1
                if stale:
                    out.append(
                        Violation(
                            "resume-preconditions",
                            cur.t,
                            f"{'latch' if unlatched else 'throttle'} released, open: {', '.join(stale)}",
                            s,
                        )
                    )
                if asked is not None and signed_daily is not None:
                    checked += 1
                    # A lapse is known to the operator a moment after it is written, as an incident is.
                    if not any(a <= cur.t and b + KNOWN_BEFORE >= asked for a, b in signed_daily):
                        out.append(
                            Violation(
                                "resume-preconditions",
                                cur.t,
                                f"{'latch' if unlatched else 'throttle'} released on a resume given at {asked:.3f} "
                                "while the daily gate was not signed",
                                s,
                            )
                        )
            if not unlatched:
                continue
            stopped, reconciled = prev.value.get("stopped"), cur.value.get("reconciled")
            if stopped is None and "stopped" not in prev.value:
                continue  # a history without these fields (an older soak): nothing to check
            checked += 1
            if stopped is None or reconciled is None or float(reconciled) <= float(stopped) - RECONCILED_TOLERANCE:
                out.append(
                    Violation(
                        "resume-preconditions",
                        cur.t,
                        f"latch released with the last reconciliation at {reconciled} and the stop at {stopped}",
                        s,
                    )
                )
    return out, checked


def _daily_signed(history: list[Record]) -> list[tuple[float, float]] | None:
    """When the daily gate was signed, as intervals (from a daily-sign to the next daily-lapse);
    None when the history has neither (an older soak)."""
    marks = [r for r in history if r.process == "driver" and r.type == "ok" and r.f in ("daily-sign", "daily-lapse")]
    if not marks:
        return None
    out, since = [], None
    for r in marks:
        if r.f == "daily-sign" and since is None:
            since = r.t
        elif r.f == "daily-lapse" and since is not None:
            out.append((since, r.t))
            since = None
    if since is not None:
        out.append((since, float("inf")))
    return out


def signed_live(history: list[Record]) -> tuple[list[Violation], int]:
    """Nothing goes live, and nothing on a live strategy changes, without the right signatures.
    While a strategy's status says live: its approval names a subject the desk signed before (the
    driver's sign records: every item of its pre-launch gate signed for that spec by two people),
    by two signers of whom none is the spec's author; and each of its running pods runs a version
    the desk signed for it before. Pods are judged on two samples in a row: the observer's reads
    of the status and of the pods are not one snapshot."""
    signed: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for r in history:
        if r.process == "driver" and r.f == "sign" and r.type == "ok" and r.strategy:
            signed[r.strategy].append((r.t, str(r.value.get("subject")), str(r.value.get("version"))))
    out, checked, said = [], 0, set()
    for s, samples in _observations(history).items():
        for prev, cur in pairwise(samples):
            if cur.value.get("mode") != "live":
                continue
            checked += 1
            before = [x for x in signed[s] if x[0] <= cur.t]
            approved = cur.value.get("approved") or {}
            signers = set(approved.get("signers") or [])
            versions = {x[2] for x in before}
            problem = None
            if approved.get("subject") not in {x[1] for x in before}:
                problem = f"live on {approved.get('subject')}, which the desk never signed"
            elif len(signers) < 2 or approved.get("author") in signers:
                problem = f"live on the signatures of {', '.join(sorted(signers))} (author {approved.get('author')})"
            elif prev.value.get("mode") == "live":
                unsigned = set(cur.value.get("pod_versions") or []) & set(prev.value.get("pod_versions") or [])
                if unsigned - versions:
                    problem = f"live with pods of version {', '.join(sorted(unsigned - versions))}, never signed"
            if problem and (s, problem) not in said:
                said.add((s, problem))
                out.append(Violation("signed-live", cur.t, problem, s))
    return out, checked


def audit_verifies(history: list[Record]) -> tuple[list[Violation], int]:
    final = next((r for r in history if r.process == "final" and r.f == "audit"), None)
    if final is None:
        return [Violation("audit-verifies", history[-1].t if history else 0.0, "the audit chains were not read")], 0
    chains = final.value.get("chains") or {}
    out = [
        Violation("audit-verifies", final.t, f"chain {key}: {c['findings'][0]}", key)
        for key, c in sorted(chains.items())
        if c.get("findings")
    ]
    return out, len(chains)


def one_actor(history: list[Record]) -> tuple[list[Violation], int]:
    """Writes change hands only at a peering transition: a replica writing after another has
    written, with no transition near, means two replicas acted at once. Every pair of
    consecutive writes is a case: a second actor would show as a change of hands in one of them
    (counting only the changes made the count hang on which replica a restart happened to favour)."""
    transitions = [r.t for r in history if r.process == "replica"] + [
        r.t for r in history if r.process == "nemesis" and r.type == "invoke"
    ]
    writes = [r for r in history if r.process == "apiserver" and r.f == "write"]
    out, checked = [], 0
    for prev, cur in pairwise(writes):
        a, b = prev.value.get("user"), cur.value.get("user")
        checked += 1
        if a == b:
            continue
        if not any(prev.t - SWITCH_TOLERANCE <= t <= cur.t + SWITCH_TOLERANCE for t in transitions):
            out.append(
                Violation(
                    "one-actor",
                    cur.t,
                    f"{b} wrote {cur.value.get('resource')}/{cur.value.get('name')} {cur.t - prev.t:.2f} s after {a} "
                    f"wrote {prev.value.get('resource')}/{prev.value.get('name')}, with no peering transition between",
                )
            )
    return out, checked


#: How long two replicas may both believe they act: the logs are stamped to the ms, but a
#: replica's last write before it pauses, and the line saying so, may come a moment apart.
ACTING_OVERLAP_TOLERANCE = 1.0


def acting_intervals(history: list[Record]) -> dict[str, list[tuple[float, float]]]:
    """When each replica believed it may act, from its own transitions: it starts paused (peering
    is mandatory: kopf pauses it until it has seen its peers), and acts while neither peering nor
    its fence holds it, until it is killed or the history ends."""
    end = history[-1].t if history else 0.0
    held: dict[str, dict[str, bool]] = {}
    since: dict[str, float] = {}
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in history:
        if r.process != "replica" or not (replica := r.value.get("replica")):
            continue
        replica = str(replica)
        state = held.setdefault(replica, {"peering": True, "fence": False})
        was = not any(state.values())
        if r.f == "killed":
            state["peering"] = True
        elif r.f in ("acting", "paused") and r.value.get("why") in state:
            state[str(r.value["why"])] = r.f == "paused"
        else:
            continue
        now = not any(state.values())
        if now and not was:
            since[replica] = r.t
        elif was and not now:
            out[replica].append((since.pop(replica), r.t))
    for replica, t in since.items():
        out[replica].append((t, end))
    return out


def one_acting_replica(history: list[Record]) -> tuple[list[Violation], int]:
    """Only one replica believes it may act at any moment (writes or none): two replicas' acting
    intervals never overlap by more than a moment. Where one_actor sees the writes, this sees the
    belief, so a second actor that happened not to write is found too."""
    intervals = acting_intervals(history)
    if not any(r.process == "replica" and "why" in r.value for r in history):
        return [], 0  # an older history: its transitions do not say which toggle moved
    spans = sorted((a, b, replica) for replica, spans in intervals.items() for a, b in spans)
    out, checked = [], len(spans)
    for i, (a1, b1, r1) in enumerate(spans):
        for a2, b2, r2 in spans[i + 1 :]:
            if a2 >= b1:
                break
            overlap = min(b1, b2) - a2
            if r1 != r2 and overlap > ACTING_OVERLAP_TOLERANCE:
                out.append(
                    Violation(
                        "one-acting-replica",
                        a2,
                        f"{r1} (acting from {a1:.3f}) and {r2} (acting from {a2:.3f}) both acting for {overlap:.1f} s",
                    )
                )
    return out, checked


def one_trading_version(history: list[Record]) -> tuple[list[Violation], int]:
    """At no moment do the live pods of two versions both acknowledge a state that trades (the
    warm handover's promise: the new version is handed trading only after the old one halted)."""
    out, checked = [], 0
    for s, samples in _observations(history).items():
        for o in samples:
            if "trading_versions" not in o.value:
                continue  # a history without the field (an older soak)
            checked += 1
            versions = o.value.get("trading_versions") or []
            if len(versions) > 1:
                out.append(
                    Violation(
                        "one-trading-version",
                        o.t,
                        f"pods of {len(versions)} versions trading at once: {', '.join(versions)}",
                        s,
                    )
                )
    return out, checked


TERMINAL_STEPS = ("Done", "Aborted", "Held", "Failed", "Cancelled")


def handover_ends(history: list[Record], bounds: Bounds) -> tuple[list[Violation], int]:
    """Every warm handover seen under way ends (done, or fallen back to a safe side) within the
    bound, counted from its start or from the end of the fault that delayed it."""
    faults = _faults(history)
    end = history[-1].t if history else 0.0
    out, checked = [], 0
    for s, samples in _observations(history).items():
        started: dict[str, Record] = {}
        ended: dict[str, Record] = {}
        for o in samples:
            h = o.value.get("handover") or {}
            key = str(h.get("startedAt") or "")
            if not key:
                continue
            if h.get("step") in TERMINAL_STEPS:
                ended.setdefault(key, o)
            else:
                started.setdefault(key, o)
        for key, first in started.items():
            checked += 1
            hit = ended.get(key)
            t0 = first.t
            start = _counted_from(t0, hit.t if hit else end, faults)
            if hit is None:
                if end - start >= bounds.handover:
                    out.append(Violation("handover-ends", t0, f"handover started {key} never ended", s))
            elif hit.t - start > bounds.handover:
                out.append(
                    Violation(
                        "handover-ends",
                        t0,
                        f"handover started {key} ended {hit.value['handover'].get('step')} after "
                        f"{hit.t - start:.1f} s (bound {bounds.handover:.0f} s, counted from {start:.3f})",
                        s,
                    )
                )
    return out, checked


def check(records: list[Record], bounds: Bounds | None = None) -> Report:
    history = ordered(records)
    bounds = bounds or Bounds()
    violations: list[Violation] = []
    checked: dict[str, int] = {}
    results: dict[str, tuple[list[Violation], int]] = {
        "kill-lands": kill_lands(history, bounds),
        "command-not-lost": resume_lands(history, bounds),
        "limits-within-spec": limits_within_spec(history),
        "limits-rise-only-on-resume": limits_rise_only_on_resume(history),
        "one-action-each": one_action_each(history),
        "resume-preconditions": resume_preconditions(history),
        "audit-verifies": audit_verifies(history),
        "one-actor": one_actor(history),
        "one-acting-replica": one_acting_replica(history),
        "one-trading-version": one_trading_version(history),
        "handover-ends": handover_ends(history, bounds),
        "throttle-lands": throttle_lands(history, bounds),
        "breach-acted": breach_acted(history, bounds),
        "one-incident-per-breach": one_incident_per_breach(history),
        "incident-steps": incident_steps(history),
        "signed-live": signed_live(history),
    }
    for name, (found, n) in results.items():
        violations.extend(found)
        checked[name] = n
    return Report(sorted(violations, key=lambda v: v.t), checked)
