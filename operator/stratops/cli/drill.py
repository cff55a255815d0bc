"""`stratops drill SCENARIO`: a real breach on a running desk, and each step as it happens.

The drill breaks the running example strategy the way the scenario says (a fault switched on in
the strategy process through the API server's pod proxy, or a bad version rolled out), then
waits for what the operator does about it, printing each step with its time: the monitor's
finding, the incident, the action (kill-switch, throttle, rollback). It ends with the triage
card's answer for the incident's class, the fault mended where the process still runs, and what
is still needed before the strategy trades again (resolving the incident, a reconciliation, a
signature, the resume), or "healthy" when nothing is.

Two scenarios use a drill copy of a desk monitor: the desk's PnL band looks for three days in a
row outside the band and is evaluated daily, and its top-5 feature check weekly, so neither
would breach within a drill's minutes. The copy has the same query, check and incident, a 10 s
frequency (and one day outside the band), is checked green before the fault goes on, and is
deleted when the drill ends.

A drill needs the rights of the desk's administrator: it creates a Monitor, edits the spec (a
bad rollout) and posts to the strategy pod's port through the pod proxy. Paper trading only:
the drill refuses a live strategy."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from stratops import GROUP, VERSION
from stratops.cli.lifecycle import CliError, Namespace, _api, _get, _namespace, console
from stratops.lifecycle.manifests import LABEL_STRATEGY, PROBE_PORT
from stratops.polling import poll


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    monitor: str | None  # the desk monitor (its name without the strategy's prefix) that finds it
    fault: str | None = None  # the example strategy's fault (examples/strategy-app, class Faults)
    drill_copy: dict[str, Any] | None = None  # spec fields of the drill copy of MONITOR
    version: str | None = None  # a bad rollout's version
    timeout: float = 240.0


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("stale-data", "the market-data feed stops: no bars, no trading", "data-bar-age", fault="stale"),
        Scenario(
            "broker-outage",
            "the order route fails its healthcheck; orders are not filled",
            "infra-healthcheck",
            fault="broker",
        ),
        Scenario(
            "pnl-band",
            "the day's PnL falls 250,000 below the strategy's band",
            "pnl-band",
            fault="pnl",
            drill_copy={"frequency": "10s", "check.band.consecutiveDays": 1},
        ),
        # The top-5 importance check, not PSI or KS: those compare a window of samples with the
        # baseline, and a window short enough for a drill holds too few independent samples to look
        # like the distribution even at rest (a 10 min KS window read 0.17 on a healthy desk).
        Scenario(
            "feature-drift",
            "two new features enter the model's top five, and the signal moves by 6 standard deviations",
            "model-top5-features",
            fault="drift",
            drill_copy={"frequency": "10s"},
        ),
        Scenario(
            "bad-rollout",
            "a version whose container crash-loops is rolled out",
            None,
            version="crash-1.4.4",
            timeout=480.0,
        ),
    )
}


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, what: str) -> None:
        console.print(f"[dim][{time.monotonic() - self.start:6.1f}s][/] {what}")


def wait(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    got = poll(check, timeout, interval)
    if not got:
        raise CliError(f"drill: no {what} within {timeout:.0f}s")
    return got


def _pods(api: Any, ns: str, strategy: str) -> list[str]:
    """The names of STRATEGY's Running pods."""
    from stratops.k8s.desk import DeskApi

    pods = DeskApi(api).pods(ns, f"{LABEL_STRATEGY}={strategy}")
    return [
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def post_fault(api: Any, ns: str, strategy: str, path: str) -> list[str]:
    """POST PATH to every Running pod of STRATEGY (through the API server's pod proxy), or to
    STRATOPS_DRILL_URL where the strategy runs as a process on the host (the demo's fallback)."""
    if url := os.environ.get("STRATOPS_DRILL_URL"):
        import httpx

        r = httpx.post(f"{url.rstrip('/')}{path}", timeout=10, trust_env=False)
        if r.status_code != 200:
            raise CliError(f"drill: {url}{path} answered {r.status_code}: {r.text.strip()}")
        return [url]
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi

    pods = _pods(api, ns, strategy)
    if not pods:
        raise CliError(f"drill: no Running pod of {ns}/{strategy} to inject the fault into")
    for pod in pods:
        try:
            DeskApi(api).post_to_pod(ns, pod, PROBE_PORT, path)
        except ApiException as e:
            raise CliError(
                f"drill: pod {pod} refused {path}: {e.status} {e.reason} "
                f"({(e.body or '')[:200]}); its image must serve the example strategy's drill faults"
            ) from e
    return pods


def _monitor(api: Any, ns: str, name: str) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi

    try:
        return dict(DeskApi(api).get("monitors", ns, name))
    except ApiException as e:
        if e.status == 404:
            raise CliError(
                f"drill: monitor {ns}/{name} not found: the drill runs on the example desk (make demo applies it)"
            ) from e
        raise


def _incidents(api: Any, ns: str, strategy: str) -> list[dict[str, Any]]:
    from stratops.k8s.desk import DeskApi

    items = DeskApi(api).list("incidents", ns)
    return [i for i in items if i["spec"].get("strategy") == strategy]


def still_needed(strategy: dict[str, Any], incidents: list[dict[str, Any]]) -> list[str]:
    """What stands between STRATEGY and trading ACTIVE again, as the commands that do it ([]: none)."""
    name = strategy["metadata"]["name"]
    st = strategy.get("status") or {}
    conds = {c["type"]: c for c in st.get("conditions") or []}
    out = [
        f"resolve incident {i['metadata']['name']} ({i['spec']['class']} {i['spec']['severity']}): "
        f"stratops incident ack|contain|resolve {i['metadata']['name']}"
        for i in incidents
        if (i.get("status") or {}).get("phase") != "Resolved"
    ]
    halted = ((st.get("killSwitch") or {}).get("latched")) or st.get("tradingState") in ("HALTED", "REDUCING")
    if halted:
        rec = conds.get("Reconciled")
        if not rec or rec.get("status") != "True":
            out.append(
                f"record a reconciliation, broker against strategy: stratops reconcile {name} --result Matched "
                "--evidence '<statement vs fills>'"
            )
        gates = conds.get("GatesSatisfied")
        if gates and gates.get("status") != "True":
            out.append(f"the desk's signatures: {gates.get('message')} (stratops gate list; stratops gate sign)")
        out.append(f"then: stratops resume {name} --reason '<why it is safe>'")
    return out


def run(scenario: Scenario, ns: str, strategy_name: str, api: Any) -> int:
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi
    from stratops.recovery.classes import card

    strategy = _get(api, ns, strategy_name)
    if (strategy.get("spec") or {}).get("mode") == "live":
        raise CliError(f"drill: {ns}/{strategy_name} is live: drills break a paper-trading desk only")
    clock = Clock()
    console.print(f"[bold]drill {scenario.name}[/] on {ns}/{strategy_name}: {scenario.what}")
    before = {i["metadata"]["name"] for i in _incidents(api, ns, strategy_name)}
    monitor_name, drill_monitor = None, None
    if scenario.monitor:
        monitor_name = f"{strategy_name}-{scenario.monitor}"
        desk_monitor = _monitor(api, ns, monitor_name)
        if scenario.drill_copy:
            drill_monitor = f"{strategy_name}-drill-{scenario.name}"
            spec = copy.deepcopy(desk_monitor["spec"])
            for dotted, value in scenario.drill_copy.items():
                *path, last = dotted.split(".")
                node = spec
                for key in path:
                    node = node.setdefault(key, {})
                node[last] = value
            spec["description"] = f"drill copy of {monitor_name}: {spec.get('description', '')}"[:256]
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Monitor",
                "metadata": {"name": drill_monitor, "labels": {"stratops.io/drill": scenario.name}},
                "spec": spec,
            }
            try:
                DeskApi(api).create("monitors", ns, body)
            except ApiException as e:
                if e.status != 409:
                    raise
            clock.say(
                f"drill monitor {drill_monitor}: {monitor_name}'s check with a drill-sized window "
                f"({', '.join(f'{k}={v}' for k, v in scenario.drill_copy.items())})"
            )
            monitor_name = drill_monitor

            def at_rest() -> dict[str, Any] | None:
                st = _monitor(api, ns, drill_monitor).get("status") or {}
                return st if st.get("lastEvaluation") else None

            # Green before the fault: the breach that follows is the fault's, not the window's.
            st = wait(at_rest, 60, f"first evaluation of {drill_monitor}")
            if st.get("breaching") or st.get("stale"):
                raise CliError(
                    f"drill: {drill_monitor} finds something before any fault ({st.get('detail')}): "
                    "the desk is not at rest; see stratops incident list"
                )
            clock.say(f"drill monitor at rest: {st.get('detail')}")
    try:
        if scenario.fault:
            where = post_fault(api, ns, strategy_name, f"/drill/{scenario.fault}")
            clock.say(f"fault {scenario.fault} on in {', '.join(where)}")
        if scenario.version:
            daily = ((strategy.get("spec") or {}).get("gates") or {}).get("daily")
            if daily:
                try:
                    gate = DeskApi(api).get("gates", ns, daily)
                except ApiException as e:
                    raise CliError(f"drill: daily gate {daily} unreadable ({e.status} {e.reason})") from e
                gs = gate.get("status") or {}
                if gs.get("state") != "Complete":
                    # Checked before anything changes: the operator holds every new version
                    # while the daily gate is not signed, so no rollout (and no rollback) would follow.
                    raise CliError(
                        f"drill bad-rollout: a new version is held while the daily gate {daily} is "
                        f"{gs.get('state') or 'not evaluated'} (missing "
                        f"{', '.join(gs.get('missingItems') or []) or '?'}); "
                        f"sign it first: stratops gate sign {daily} --all --evidence '<what was checked>' "
                        "(nothing was changed)"
                    )
            good = (strategy.get("status") or {}).get("lastKnownGood")
            DeskApi(api).patch("strategies", ns, strategy_name, {"spec": {"version": scenario.version}})
            deadline = ((strategy.get("spec") or {}).get("rollbackPolicy") or {}).get("rolloutDeadline", "5m")
            clock.say(
                f"spec.version {scenario.version} (last known-good {good}); a rollback waits for the rollout "
                f"deadline, {deadline}"
            )
        if monitor_name:

            def finding() -> dict[str, Any] | None:
                st = _monitor(api, ns, monitor_name).get("status") or {}
                return st if (st.get("breaching") or st.get("stale")) else None

            st = wait(finding, scenario.timeout, f"finding on monitor {monitor_name}")
            clock.say(
                f"finding: monitor {monitor_name} {'stale' if st.get('stale') else 'breaching'}: {st.get('detail')}"
            )

        def fresh() -> list[dict[str, Any]]:
            new = [i for i in _incidents(api, ns, strategy_name) if i["metadata"]["name"] not in before]
            return sorted(new, key=lambda i: i["metadata"]["creationTimestamp"])

        def scenario_incident() -> dict[str, Any] | None:
            # The scenario's monitor's incident (a broker outage also slows orders, a stopped feed
            # also empties the latency histograms: their incidents come too, and are listed).
            mine = [
                i
                for i in fresh()
                if (i["spec"].get("monitor") == monitor_name if monitor_name else i["spec"].get("action") == "rollback")
            ]
            return mine[0] if mine else None

        incident = wait(
            scenario_incident,
            scenario.timeout,
            "incident" + (f" from {monitor_name}" if monitor_name else " of the rollback"),
        )
        spec = incident["spec"]
        clock.say(f"incident: {incident['metadata']['name']} {spec['class']} {spec['severity']}: {spec['summary']}")
        action = spec.get("action") or ("rollback" if scenario.version else "none")

        def acted() -> str | None:
            s = _get(api, ns, strategy_name).get("status") or {}
            ks = s.get("killSwitch") or {}
            if action == "killSwitch" and ks.get("latched") and ks.get("completedAt"):
                return (
                    f"kill-switch: HALTED, acknowledged by the strategy: {ks.get('acknowledged')}; "
                    f"scaled to 0 at {ks['completedAt']}"
                )
            if action == "throttle" and s.get("tradingState") in ("REDUCING", "HALTED"):
                return f"throttle: trading {s.get('tradingState')} with lowered limits"
            rollout = s.get("rollout") or {}
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions") or [])
            if (
                action == "rollback"
                and rollout.get("rollback")
                and ready
                and s.get("activeVersion") == rollout.get("version")
            ):
                return f"rollback: running {rollout.get('version')} again (the last known-good)"
            if action == "none":
                return "none (the incident's action is none: on-call decides)"
            return None

        clock.say("action: " + wait(acted, scenario.timeout, f"{action} by the operator"))
        for other in fresh():
            if other["metadata"]["name"] != incident["metadata"]["name"]:
                o = other["spec"]
                clock.say(f"also opened: {other['metadata']['name']} {o['class']} {o['severity']}: {o['summary']}")
        c = card(spec["class"])
        console.print(
            f"[bold]triage[/] ({c.title}): {c.immediate_action}. Contained when {c.containment}. "
            f"Runbook: stratops runbook show {c.runbook}; walk it: stratops triage"
        )
        if scenario.fault and _pods(api, ns, strategy_name):
            post_fault(api, ns, strategy_name, "/drill/clear")
            clock.say("fault cleared in the running strategy")
        if scenario.version:
            DeskApi(api).patch(
                "strategies", ns, strategy_name, {"spec": {"version": (strategy.get("spec") or {}).get("version")}}
            )
            clock.say(
                f"spec.version back to {(strategy.get('spec') or {}).get('version')} (with GitOps: revert the commit)"
            )
    finally:
        if drill_monitor:
            try:
                DeskApi(api).delete("monitors", ns, drill_monitor)
            except ApiException:
                pass
            clock.say(f"drill monitor {drill_monitor} deleted (its incident stays, as the record)")
    needed = still_needed(_get(api, ns, strategy_name), _incidents(api, ns, strategy_name))
    if needed:
        console.print("[bold]still needed[/] before the strategy trades again:\n  " + "\n  ".join(needed))
    else:
        console.print("[green]healthy again[/]: nothing is needed")
    return 0


def drill(
    scenario: Annotated[str, typer.Argument(help=f"One of: {', '.join(SCENARIOS)}.")],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="The strategy to break (paper mode only).")
    ] = "mean-revert",
    namespace: Namespace = None,
) -> None:
    """A real breach on the running desk (make demo), each step shown as it happens: the finding,
    the incident, the action, the triage answer, then what the resume still needs. Needs the
    desk administrator's rights (it creates a drill Monitor and posts to the strategy's pod)."""
    if scenario not in SCENARIOS:
        raise CliError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
    run(SCENARIOS[scenario], _namespace(namespace), strategy, _api())
