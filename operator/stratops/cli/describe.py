"""`stratops describe STRATEGY`: everything on-call needs about one strategy on one screen."""

from __future__ import annotations

import json
from typing import Any

from stratops.cli.lifecycle import CliError, Namespace, Output, _api, _get, _namespace, console, emit, listing
from stratops.lifecycle import manifests
from stratops.lifecycle.control import CONTROL_KEY
from stratops.recovery.runbooks import ClusterView


def fetch(api: Any, ns: str, name: str, extras: bool = False) -> tuple[ClusterView, dict[str, Any]]:
    """The strategy and what it owns as the API server has them now; with EXTRAS also its
    monitors, gates and recent events."""
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi

    strategy = _get(api, ns, name)
    desk = DeskApi(api)
    deployment = desk.deployment(ns, name)
    data = desk.config_map_data(ns, manifests.control_name(name))
    control = json.loads((data or {}).get(CONTROL_KEY) or "null")
    pods = tuple(desk.pods(ns, f"{manifests.LABEL_STRATEGY}={name}"))
    incidents = tuple(i for i in desk.list("incidents", ns) if i["spec"].get("strategy") == name)
    gates: tuple[dict[str, Any], ...] | None
    try:
        gates = tuple(desk.list("gates", ns))
    except ApiException as e:
        if e.status != 403:
            raise
        gates = None  # a user who may not read Gates: the checks use the strategy's GatesSatisfied condition
    view = ClusterView(
        strategy=strategy, deployment=deployment, control=control, pods=pods, incidents=incidents, gates=gates
    )
    more: dict[str, Any] = {}
    if extras:
        more["monitors"] = [m for m in desk.list("monitors", ns) if m["spec"].get("strategy") == name]
        more["gates"] = [g for g in gates or () if name in g["spec"].get("strategies", [])]
        more["events"] = desk.events(ns, name)[-15:]
        more["acks"] = _acks(desk.config_map_data(ns, manifests.ack_name(name)))
    return view, more


def _acks(data: dict[str, str] | None) -> dict[str, dict[str, Any]]:
    """Each pod's acknowledgement as JSON (an unreadable one is left out: the operator says why)."""
    out = {}
    for pod, raw in (data or {}).items():
        try:
            out[pod] = json.loads(raw)
        except ValueError:
            continue
    return out


HANDOVER_STEPS = ("Standby", "HaltingOld", "ActivatingNew", "Done")
HANDOVER_ENDS = {
    "Aborted": "[yellow]Aborted[/]: the new version blocked, the old one trades on",
    "Held": "[red]Held[/]: the old version stopped; the new one stands by until a person decides "
    "(stratops handover release, or stratops kill)",
    "Failed": "[red]Failed[/]: both versions halted (P0)",
    "Cancelled": "Cancelled",
}


def handover_lines(h: dict[str, Any]) -> list[str]:
    """A warm handover's steps as on-call reads them: the steps passed, the one under way (bold),
    where it ended and why, and the book carried over."""
    step = h.get("step", "")
    head = f"  handover {h.get('fromVersion')} -> {h.get('toVersion')} ({h.get('tradingState')})"
    head += f", started {h.get('startedAt')}"
    if step in HANDOVER_STEPS:  # under way, or done: each step passed, and the one it is at
        at = HANDOVER_STEPS.index(step) if step != "Done" else len(HANDOVER_STEPS)
        path = " -> ".join(
            f"{s} ok" if i < at else f"[bold]{s}[/]" if i == at else s for i, s in enumerate(HANDOVER_STEPS)
        )
        head += f": {path}" + (f" since {h['stepAt']}" if h.get("stepAt") and step != "Done" else "")
    lines = [head]
    if step in HANDOVER_ENDS:
        lines.append(f"    {HANDOVER_ENDS[step]}" + (f": {h['reason']}" if h.get("reason") else ""))
    if h.get("book") is not None:
        book = ", ".join(f"{i} {q:g}" for i, q in sorted(h["book"].items()) if q) or "flat"
        lines.append(f"    book handed over: {book}")
    if h.get("incident"):
        lines.append(f"    incident {h['incident']}")
    return lines


def describe(strategy: str, namespace: Namespace = None, output: Output = "table") -> None:
    """One strategy: spec and status, limits in force, control document and acknowledgement,
    kill-switch, throttle, broker, pods, incidents, monitors, gates and recent events."""
    api, ns = _api(), _namespace(namespace)
    v, more = fetch(api, ns, strategy, extras=True)
    if emit(
        [
            {
                "strategy": v.strategy,
                "deployment": v.deployment,
                "control": v.control,
                "pods": list(v.pods),
                "incidents": list(v.incidents),
                **more,
            }
        ],
        output,
    ):
        return
    spec, st = v.spec, v.status
    trading = st.get("tradingState") or "-"
    color = {"HALTED": "red", "REDUCING": "yellow", "ACTIVE": "green"}.get(trading, "white")
    console.print(
        f"[bold]{ns}/{strategy}[/]  phase [bold]{st.get('phase') or '-'}[/]  mode {st.get('mode') or '-'} "
        f"(spec {spec.get('mode')})  trading [{color}]{trading}[/]"
    )
    console.print(
        f"  version {st.get('activeVersion') or '-'} (spec {spec.get('version')}), last known-good "
        f"{st.get('lastKnownGood') or '-'}, blocked: "
        f"{', '.join(b['version'] for b in st.get('blockedVersions') or []) or 'none'}"
    )
    if (ap := st.get("approved")) and st.get("mode") == "live":
        held = next(
            (c for c in st.get("conditions") or [] if c.get("type") == "SpecApproved" and c.get("status") == "False"),
            None,
        )
        console.print(
            f"  approved {ap.get('subject', '-')[:60]}… signed by {', '.join(ap.get('signers') or []) or 'nobody'}, "
            f"promoted by {ap.get('promotedBy') or '-'}" + (f"; [yellow]held:[/] {held['message']}" if held else "")
        )
    broker = st.get("broker") or {}
    in_use = (v.control or {}).get("broker") or {}
    console.print(
        f"  broker {broker.get('role', 'primary')}: {in_use.get('name', '-')} ({in_use.get('endpoint', '-')})"
        + (f", switched by {broker.get('by')} at {broker.get('at')}" if broker.get("at") else "")
    )
    ctl = st.get("control") or {}
    console.print(
        f"  control generation {ctl.get('generation', '-')}, acknowledged {ctl.get('acknowledgedGeneration', '-')}"
        f" at {ctl.get('acknowledgedAt') or '-'}"
    )
    if (ks := st.get("killSwitch")) and ks.get("latched"):
        console.print(
            f"  [red]kill-switch latched[/] by {ks.get('by')} at {ks.get('at')}: {ks.get('reason')}; "
            f"completed {ks.get('completedAt') or 'not yet'}, acknowledged {ks.get('acknowledged')}"
        )
    if (th := st.get("throttle")) and th.get("active"):
        console.print(f"  [yellow]throttled[/] by {th.get('by')} at {th.get('at')}: {th.get('reason')}")
    if h := st.get("handover"):
        for line in handover_lines(h):
            console.print(line, highlight=False)
    if st.get("message"):
        console.print(f"  [yellow]{st['message']}[/]")
    limits = listing("limit", "in force", "spec", title="risk limits")
    eff, rl = st.get("effectiveLimits") or {}, spec.get("riskLimits") or {}
    for key in ("maxPosition", "maxOrderRate", "maxDailyLoss"):  # what a throttle lowers
        limits.add_row(key, str(eff.get(key, "-")), str(rl.get(key, "-")))
    for key in ("maxOrderValue", "maxOrderVolume", "priceCollarBps", "maxMessageRate"):
        if key in rl:
            limits.add_row(key, "as spec", str(rl[key]))
    console.print(limits)
    conds = listing("condition", "status", "reason", "message", title="conditions")
    for c in st.get("conditions") or []:
        conds.add_row(c["type"], c["status"], c.get("reason", ""), (c.get("message") or "")[:100])
    console.print(conds)
    pods = listing("pod", "version", "ready", "applied", "node", title="pods")
    for p in v.pods:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
        name = p["metadata"]["name"]
        ack = more["acks"].get(name) or {}
        pods.add_row(
            name,
            (p["metadata"].get("labels") or {}).get(manifests.LABEL_VERSION, "-"),
            "yes" if ready else "no",
            f"{ack['tradingState']} @{ack.get('generation')}" if ack.get("tradingState") else "-",
            (p.get("spec") or {}).get("nodeName") or "-",
        )
    console.print(pods if v.pods else "  pods: none")
    if v.incidents:
        inc = listing("incident", "class", "sev", "phase", "summary", title="incidents")
        for i in sorted(v.incidents, key=lambda i: i["metadata"]["creationTimestamp"], reverse=True)[:10]:
            inc.add_row(
                i["metadata"]["name"],
                i["spec"]["class"],
                i["spec"]["severity"],
                (i.get("status") or {}).get("phase") or "Open",
                i["spec"]["summary"][:70],
            )
        console.print(inc)
    if more["monitors"]:
        # "by": ruler or operator in the Prometheus-ruler mode (who evaluates it now), "-" without it.
        mon = listing("monitor", "layer", "value", "breaching", "stale", "evaluated", "by", title="monitors")
        for m in more["monitors"]:
            ms = m.get("status") or {}
            mon.add_row(
                m["metadata"]["name"],
                m["spec"].get("layer", "-"),
                str(ms.get("lastValue", "-")),
                str(ms.get("breaching", "-")),
                str(ms.get("stale", "-")),
                ms.get("lastEvaluation") or "-",
                ms.get("evaluatedBy") or "-",
            )
        console.print(mon)
    if more["gates"]:
        gt = listing("gate", "cadence", "state", "missing", "expires", title="gates")
        for g in more["gates"]:
            gs = g.get("status") or {}
            gt.add_row(
                g["metadata"]["name"],
                g["spec"]["cadence"],
                gs.get("state") or "-",
                ", ".join(gs.get("missingItems") or []) or "-",
                gs.get("expiresAt") or "-",
            )
        console.print(gt)
    if more["events"]:
        console.print("[bold]recent events[/]")
        for e in more["events"]:
            console.print(
                f"  {e.get('lastTimestamp') or e.get('eventTime') or '-'} {e.get('type')} {e.get('reason')}: "
                f"{(e.get('message') or '')[:140]}",
                highlight=False,
            )


__all__ = ["CliError", "describe", "fetch"]
