"""On-call commands against the current kubeconfig context: status, kill, throttle, rollback,
resume, reconcile. Commands are annotations with a reason and the caller's identity (as the API
server authenticated it); the operator validates, executes, records and removes them."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stratops.polling import poll

console = Console()
err = Console(stderr=True)

Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace; default: the kubeconfig context's.")
]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why; recorded in status, Events and the Incident.")]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the operator has carried it out.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait.")]
Output = Annotated[
    str, typer.Option("--output", "-o", help="table, json or yaml (json and yaml: the objects, for scripts).")
]


def without_managed_fields(obj: Any) -> Any:
    """OBJ without any object's metadata.managedFields (server-side apply bookkeeping: kubectl
    hides it too; it is most of an object's bytes and none of what on-call reads)."""
    if isinstance(obj, dict):
        out = {k: without_managed_fields(v) for k, v in obj.items()}
        if isinstance(out.get("metadata"), dict) and "managedFields" in out["metadata"]:
            out["metadata"] = {k: v for k, v in out["metadata"].items() if k != "managedFields"}
        return out
    if isinstance(obj, list):
        return [without_managed_fields(v) for v in obj]
    return obj


def emit(items: list[dict[str, Any]], output: str) -> bool:
    """Print ITEMS as JSON or YAML when asked; False means: print the table."""
    if output == "table":
        return False
    items = without_managed_fields(items)
    if output == "json":
        import json as _json

        print(_json.dumps(items, indent=2, default=str))
        return True
    if output == "yaml":
        import yaml

        print(yaml.safe_dump(items, sort_keys=False), end="")
        return True
    raise CliError(f"--output must be table, json or yaml, not {output!r}")


def listing(*columns: str, title: str | None = None, fixed: tuple[str, ...] = ()) -> Table:
    """A table laid out as kubectl's: no borders, upper-case headers, one space between columns.
    Nothing is cut: a cell too long for its share of the terminal wraps (FIXED columns, short
    values such as a severity or a count, never wrap and keep their width)."""
    table = Table(
        box=None,
        pad_edge=False,
        padding=(0, 1),
        header_style="bold",
        title=title,
        title_justify="left",
        title_style="bold",
    )
    for name in columns:
        table.add_column(name.upper(), overflow="fold", no_wrap=name in fixed)
    return table


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 1."""


def _api():  # type: ignore[no-untyped-def]
    from stratops.k8s.client import api_client

    try:
        return api_client()
    except Exception as e:  # any kubeconfig problem is the user's to fix
        raise CliError(f"cannot load a kubeconfig ({e}); set KUBECONFIG or run inside the cluster") from e


def _namespace(namespace: str | None) -> str:
    if namespace:
        return namespace
    from kubernetes import config

    try:
        _, current = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
        return current.get("context", {}).get("namespace") or "default"
    except Exception:
        return "default"


def whoami(api: Any) -> str:
    """The user the API server authenticates this client as (SelfSubjectReview): what every
    command and signature is attributed to."""
    from stratops.k8s.desk import DeskApi

    try:
        name = DeskApi(api).whoami()
    except Exception as e:  # said as one line: without it nothing can be attributed
        raise CliError(
            f"cannot tell who you are (SelfSubjectReview failed: {getattr(e, 'reason', e)}): commands and "
            "signatures are attributed to the requesting user"
        ) from e
    if not name:
        raise CliError("the API server authenticates you as nobody (anonymous): commands and signatures need a user")
    return str(name)


def _get(api: Any, ns: str, name: str) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi

    try:
        return DeskApi(api).get("strategies", ns, name)
    except ApiException as e:
        if e.status == 404:
            raise CliError(f"strategy {name} not found in namespace {ns}") from e
        raise CliError(f"cannot read strategy {ns}/{name}: {e.reason}") from e


def give_command(
    kind: str, name: str, namespace: str | None, fields: dict[str, Any]
) -> tuple[Any, str, dict[str, Any]]:
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi

    api, ns = _api(), _namespace(namespace)
    _get(api, ns, name)
    from stratops.lifecycle.commands import command_value, new_command

    value = new_command(whoami(api), **fields)
    try:
        DeskApi(api).patch(
            "strategies",
            ns,
            name,
            {"metadata": {"annotations": {f"stratops.io/{kind}": command_value(value["by"], **value)}}},
        )
    except ApiException as e:
        raise CliError(f"cannot annotate strategy {ns}/{name}: {api_message(e)}") from e
    console.print(f"{kind} requested for {ns}/{name} by {value['by']}")
    return api, ns, value


def _wait(api: Any, ns: str, name: str, done: Any, what: str, timeout: float) -> dict[str, Any]:
    last = ""

    def check() -> dict[str, Any] | None:
        nonlocal last
        obj = _get(api, ns, name)
        status = obj.get("status") or {}
        progress = f"phase {status.get('phase')}, trading {status.get('tradingState')}"
        if progress != last:
            console.print(f"  {progress}")
            last = progress
        return status if done(obj, status) else None

    if (status := poll(check, timeout, 0.5)) is not None:
        return status
    raise CliError(
        f"timed out after {timeout:.0f}s waiting for {what}; see `stratops status` and the Strategy's Events"
    )


def kill(
    strategy: Annotated[str | None, typer.Argument(help="The strategy; or use --selector / --all.")] = None,
    reason: Reason = "",
    namespace: Namespace = None,
    wait: Wait = True,
    timeout: Timeout = 120,
    selector: Annotated[
        str | None,
        typer.Option("--selector", "-l", help="Every strategy matching this label selector, e.g. desk=fx,venue=XLON."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every strategy in the namespace (with -A: in the cluster).")
    ] = False,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="With --selector or --all: across namespaces.")
    ] = False,
    require_rearm: Annotated[
        bool,
        typer.Option("--require-rearm", help="Stay off until a designated user re-arms (spec.killSwitch.rearmBy)."),
    ] = False,
) -> None:
    """Kill-switch: HALTED (cancel, no new orders; risk-reducing orders only if the strategy's
    policy allows), wait for the ack, scale to 0. Latched until a valid resume. One strategy,
    every strategy matching --selector, or --all: one decision, progress per strategy, and a
    table of what is halted and acknowledged at the end."""
    if not reason.strip():
        raise CliError("--reason is required: it is recorded with the kill-switch, in Events and in the audit trail")
    if sum(bool(x) for x in (strategy, selector, all_)) != 1:
        raise CliError("name one STRATEGY, or give --selector LABELS, or --all")
    extra = {"requireRearm": True} if require_rearm else {}
    if strategy is None:
        kill_fleet(reason, namespace, selector, all_namespaces, wait, timeout, extra)
        return
    api, ns, value = give_command("kill", strategy, namespace, {"reason": reason, **extra})
    if not wait:
        return

    def landed(o: dict[str, Any], s: dict[str, Any]) -> bool:
        # Only this command's halt counts: a completion left from an earlier kill is not one.
        ks = s.get("killSwitch") or {}
        pending = "stratops.io/kill" in (o["metadata"].get("annotations") or {})
        return bool(ks.get("latched") and ks.get("completedAt") and (ks.get("decision") == value["id"] or not pending))

    status = _wait(
        api, ns, strategy, landed, "the kill-switch (HALTED, acknowledged or the deadline, scaled to 0)", timeout
    )
    ks = status["killSwitch"]
    if ks.get("decision") != value["id"]:
        console.print(
            f"[bold]already halted[/]: latched since {ks.get('at')} by {ks.get('by')} ({ks.get('reason')}); "
            f"your reason is recorded; scaled to 0 at {ks['completedAt']}"
        )
        return
    console.print(
        f"[bold]halted[/]: scaled to 0 at {ks['completedAt']}; acknowledged by the strategy: {ks.get('acknowledged')}"
    )


def throttle(
    strategy: str, reason: Reason, namespace: Namespace = None, wait: Wait = True, timeout: Timeout = 60
) -> None:
    """Throttle: REDUCING with lower order-rate and position limits. Never raises a limit."""
    api, ns, _value = give_command("throttle", strategy, namespace, {"reason": reason})
    if wait:
        status = _wait(
            api,
            ns,
            strategy,
            lambda o, s: "stratops.io/throttle" not in (o["metadata"].get("annotations") or {}),
            "the throttle",
            timeout,
        )
        if not (status.get("throttle") or {}).get("active"):
            raise CliError(status.get("message") or "throttle not applied (a kill-switch may be latched)")
        lim = status.get("effectiveLimits") or {}
        console.print(
            f"[bold]throttled[/]: max position {lim.get('maxPosition')}, order rate {lim.get('maxOrderRate')}/s"
        )


def rollback(
    strategy: str, reason: Reason, namespace: Namespace = None, wait: Wait = True, timeout: Timeout = 60
) -> None:
    """Roll back to the last known-good version; the running version is blocked."""
    api, ns, _value = give_command("rollback", strategy, namespace, {"reason": reason})
    if wait:
        status = _wait(
            api,
            ns,
            strategy,
            lambda o, s: "stratops.io/rollback" not in (o["metadata"].get("annotations") or {}),
            "the rollback",
            timeout,
        )
        console.print(
            f"running {status.get('activeVersion')}; blocked: "
            f"{', '.join(b['version'] for b in status.get('blockedVersions') or []) or 'none'}"
        )
        if status.get("message") and "refused" in status["message"]:
            raise CliError(status["message"])


def resume(
    strategy: str,
    reason: Reason,
    namespace: Namespace = None,
    wait: Wait = True,
    timeout: Timeout = 60,
    throttled: Annotated[
        bool, typer.Option("--throttled", help="Resume slow: REDUCING with throttled limits until a later full resume.")
    ] = False,
) -> None:
    """Resume after a kill-switch or throttle: refused unless incidents are resolved, a fresh
    reconciliation is recorded and the daily gate is signed; REDUCING first, then ACTIVE
    (with --throttled: REDUCING with lowered limits until a later full resume)."""
    api, ns, _value = give_command(
        "resume", strategy, namespace, {"reason": reason, **({"throttled": True} if throttled else {})}
    )
    if wait:

        def done(o: dict[str, Any], s: dict[str, Any]) -> Any:
            if "stratops.io/resume" in (o["metadata"].get("annotations") or {}):
                return None
            return s.get("message") or True

        status = _wait(api, ns, strategy, done, "the resume", timeout)
        msg = status.get("message") or ""
        if "refused" in msg:
            raise CliError(msg)
        console.print(f"[bold]resumed[/]: {msg}")


def reconcile(
    strategy: str,
    result: Annotated[str, typer.Option(help="Matched, Mismatched or Failed.")],
    evidence: Annotated[str, typer.Option(help="What was compared (broker statement vs fills), or a link.")],
    namespace: Namespace = None,
) -> None:
    """Record a reconciliation of positions and open orders, broker against strategy."""
    if result not in ("Matched", "Mismatched", "Failed"):
        raise CliError("--result must be Matched, Mismatched or Failed")
    give_command("reconciliation", strategy, namespace, {"result": result, "evidence": evidence})


def status(
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help=(
                "table, wide (also READY, BROKER, the open incidents and the unsigned gates by name), "
                "json or yaml (the objects, for scripts)."
            ),
        ),
    ] = "table",
) -> None:
    """All strategies, one line each: phase, mode, version, last known-good, trading state, open
    incidents (a count) and gates (complete over named, e.g. 3/5)."""

    from stratops.k8s.desk import DeskApi

    if output not in ("table", "wide", "json", "yaml"):
        raise CliError(f"--output must be table, wide, json or yaml, not {output!r}")
    api = _api()
    desk = DeskApi(api)
    if all_namespaces:
        items = desk.list("strategies", None)
    else:
        items = desk.list("strategies", _namespace(namespace))
    if output != "wide" and emit(items, output):
        return
    from kubernetes.client.exceptions import ApiException

    gates: list[dict[str, Any]] | None
    try:
        if all_namespaces:
            gates = desk.list("gates", None)
        else:
            gates = desk.list("gates", _namespace(namespace))
    except ApiException as e:
        if e.status != 403:
            raise
        gates = None  # a user who may not read Gates sees the GatesSatisfied condition: signed or missing
    console.print(status_table(items, namespaces=all_namespaces, gates=gates, wide=output == "wide"))


def named_gates(strategy: dict[str, Any]) -> list[str]:
    """The gates a strategy names (spec.gates): pre-launch, daily, then the others."""
    g = (strategy.get("spec") or {}).get("gates") or {}
    return [n for n in (g.get("preLaunch"), g.get("daily"), *(g.get("others") or [])) if n]


def gate_counts(strategy: dict[str, Any], gates: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(complete, named, the names not complete) of STRATEGY's gates, read from GATES (a gate
    that does not exist is not complete)."""
    ns = strategy["metadata"].get("namespace")
    state = {
        g["metadata"]["name"]: (g.get("status") or {}).get("state")
        for g in gates
        if g["metadata"].get("namespace", ns) == ns
    }
    named = named_gates(strategy)
    open_ = [n for n in named if state.get(n) != "Complete"]
    return len(named) - len(open_), len(named), open_


def status_table(
    items: list[dict[str, Any]], namespaces: bool = False, gates: list[dict[str, Any]] | None = None, wide: bool = False
) -> Table:
    """The `status` table, laid out as kubectl's: no borders, across namespaces each strategy as
    namespace/name, open incidents and gates as counts (`stratops incident list` and `stratops
    gate list` name them; so does -o wide), so a row fits 80 columns; a name too long for its
    column wraps, never loses characters. GOOD is the last known-good version. Without GATES
    (the Gate objects) the gates column says signed or missing, from the GatesSatisfied condition."""
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    columns = ["STRATEGY", "PHASE", "MODE", "VERSION", "GOOD", "TRADING", "INCIDENTS", "GATES"]
    if wide:
        columns += ["READY", "BROKER", "OPEN INCIDENTS", "UNSIGNED GATES"]
    for name in columns:
        folds = name in ("STRATEGY", "OPEN INCIDENTS", "UNSIGNED GATES")
        table.add_column(name, overflow="fold", no_wrap=not folds, min_width=8 if name == "STRATEGY" else None)
    for s in items:
        st = s.get("status") or {}
        conds = {c["type"]: c for c in st.get("conditions") or []}
        trading = st.get("tradingState") or "-"
        style = {"HALTED": "red", "REDUCING": "yellow", "ACTIVE": "green"}.get(trading, "")
        incidents = st.get("openIncidents") or []
        meta = s["metadata"]
        if gates is not None:
            done, named, unsigned = gate_counts(s, gates)
            gate_cell = f"{done}/{named}" if named else "-"
            gate_cell = f"[yellow]{gate_cell}[/]" if unsigned else gate_cell
        else:
            sat, unsigned = conds.get("GatesSatisfied"), []
            gate_cell = "signed" if sat and sat["status"] == "True" else ("missing" if sat else "-")
        row = [
            f"{meta['namespace']}/{meta['name']}" if namespaces else meta["name"],
            st.get("phase") or "-",
            st.get("mode") or "-",
            st.get("activeVersion") or "-",
            st.get("lastKnownGood") or "-",
            f"[{style}]{trading}[/]" if style else trading,
            f"[red]{len(incidents)}[/]" if incidents else "-",
            gate_cell,
        ]
        if wide:
            ready = (conds.get("Ready") or {}).get("message") or ""
            row += [
                ready.split(" pods")[0] if " pods" in ready else "-",
                (st.get("broker") or {}).get("role") or "primary",
                ", ".join(incidents) or "-",
                ", ".join(unsigned) or "-",
            ]
        table.add_row(*row)
    return table


def failover(
    strategy: str,
    reason: Reason,
    to: Annotated[str, typer.Option("--to", help="backup (spec.brokers.backup) or primary (fail back).")] = "backup",
    namespace: Namespace = None,
    wait: Wait = True,
    timeout: Timeout = 60,
) -> None:
    """Switch the control document to the backup broker (or back to the primary). Refused
    unless the kill-switch is latched: halt order entry first. Resume needs a reconciliation
    against the new broker (runbook broker-failover)."""
    if to not in ("backup", "primary"):
        raise CliError("--to must be backup or primary")
    api, ns, _value = give_command("failover", strategy, namespace, {"reason": reason, "to": to})
    if wait:
        status = _wait(
            api,
            ns,
            strategy,
            lambda o, s: "stratops.io/failover" not in (o["metadata"].get("annotations") or {}),
            "the failover",
            timeout,
        )
        msg = status.get("message") or ""
        if "refused" in msg or (status.get("broker") or {}).get("role", "primary") != to:
            raise CliError(msg or f"failover to {to} not applied")
        console.print(f"[bold]broker[/]: {msg}")


def promote(
    strategy: str, reason: Reason, namespace: Namespace = None, wait: Wait = True, timeout: Timeout = 60
) -> None:
    """Promote paper -> live by setting spec.mode to live. Refused here, before anything is
    changed, unless the pre-launch gate is signed for this version and these limits (the
    operator checks again). With GitOps, change spec.mode in Git instead: Git wins."""
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi

    api, ns = _api(), _namespace(namespace)
    obj = _get(api, ns, strategy)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("mode") == "live" and status.get("mode") == "live":
        console.print(f"{ns}/{strategy} is already live")
        return
    missing = prelaunch_missing(api, ns, strategy, obj)
    if missing:
        raise CliError(f"promotion of {ns}/{strategy} refused: {missing}")
    by = whoami(api)
    note = json.dumps({"by": by, "reason": reason, "at": datetime.now(UTC).isoformat()})
    try:
        DeskApi(api).patch(
            "strategies",
            ns,
            strategy,
            {"metadata": {"annotations": {"stratops.io/promoted-by": note}}, "spec": {"mode": "live"}},
        )
    except ApiException as e:
        raise CliError(f"promotion of {ns}/{strategy} rejected by the API server: {api_message(e)}") from e
    console.print(f"promotion of {ns}/{strategy} requested by {by}")
    if wait:

        def done(o: dict[str, Any], s: dict[str, Any]) -> Any:
            cond = next((c for c in s.get("conditions") or [] if c["type"] == "Promoted"), {})
            if s.get("mode") == "live":
                return True
            if (
                cond.get("reason") == "GatesIncomplete"
                and (s.get("observedGeneration") or 0) >= o["metadata"]["generation"]
            ):
                raise CliError(cond.get("message") or "promotion blocked")
            return None

        _wait(api, ns, strategy, done, "the promotion", timeout)
        console.print(f"[bold]live[/]: {ns}/{strategy}")


def prelaunch_missing(api: Any, ns: str, strategy: str, obj: dict[str, Any]) -> str:
    """Why the pre-launch gate does not approve the strategy as it is now ('' if it does): the
    rule the webhook and the operator apply (stratops.admission.review.live_problems)."""
    from kubernetes.client.exceptions import ApiException

    from stratops.admission.policies import ANNOTATION_TRADING_AUTHOR
    from stratops.admission.review import live_problems
    from stratops.k8s.desk import DeskApi
    from stratops.models.gate import GateSpec
    from stratops.models.strategy import StrategySpec

    spec = StrategySpec.model_validate(obj.get("spec") or {})
    gate = spec.gates.pre_launch if spec.gates else None
    raw = None
    if gate:
        try:
            raw = DeskApi(api).get("gates", ns, gate)
        except ApiException as e:
            if e.status != 404:
                raise
    author = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TRADING_AUTHOR)
    why = live_problems(
        strategy, spec, author, gate, GateSpec.model_validate(raw["spec"]) if raw else None, datetime.now(UTC)
    )
    return f"{why}; sign with `stratops gate sign {gate} ITEM… --evidence …`" if why and gate else why


def api_message(e: Any) -> str:
    """The API server's own message (it names the field), not just the HTTP reason."""
    try:
        return json.loads(e.body).get("message") or f"{e.status} {e.reason}"
    except (TypeError, ValueError, AttributeError):
        return f"{e.status} {e.reason}"


def kill_fleet(
    reason: str,
    namespace: str | None,
    selector: str | None,
    all_namespaces: bool,
    wait: bool,
    timeout: float,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One decision (one id, one reason, one user) sent to every matching strategy at once;
    then progress per strategy until each is halted, and a final table."""
    from kubernetes.client.exceptions import ApiException
    from rich.live import Live

    from stratops.k8s.desk import DeskApi
    from stratops.lifecycle.commands import command_value

    api = _api()
    desk = DeskApi(api)
    sel = selector or ""
    items = desk.list("strategies", None if all_namespaces else _namespace(namespace), label_selector=sel)
    if not items:
        raise CliError(
            f"no strategy matches {'--selector ' + sel if sel else '--all'}"
            f" in {'the cluster' if all_namespaces else 'namespace ' + _namespace(namespace)}: nothing halted"
        )
    decision = uuid.uuid4().hex[:12]
    value = {
        **(extra or {}),
        "reason": reason,
        "by": whoami(api),
        "id": decision,
        "scope": sel or "all",
        "at": datetime.now(UTC).isoformat(),
    }
    sent, failed = [], []
    for s in items:  # annotate every one first: the halt starts everywhere before anyone waits
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        try:
            desk.patch(
                "strategies",
                ns,
                name,
                {
                    "metadata": {
                        "annotations": {
                            "stratops.io/kill": command_value(
                                value["by"], **{**value, "decision": decision, "id": f"{decision}-{name}"[:60]}
                            )
                        }
                    }
                },
            )
            sent.append((ns, name))
        except ApiException as e:
            failed.append((ns, name, f"{e.status} {e.reason}"))
    console.print(
        f"kill-switch {decision} by {value['by']} sent to {len(sent)} strategies ({value['scope']}): {reason}"
    )
    rows: dict[tuple[str, str], dict[str, Any]] = {k: {} for k in sent}

    def table() -> Table:
        t = Table(
            "namespace", "strategy", "trading", "acknowledged", "scaled to 0", "pods", title=f"kill-switch {decision}"
        )
        for (ns, name), st in sorted(rows.items()):
            ks = st.get("killSwitch") or {}
            done = bool(st.get("_done"))
            t.add_row(
                ns,
                name,
                st.get("tradingState") or "-",
                str(ks.get("acknowledged")) if done else "…",
                "[green]yes[/]" if done else "…",
                str(st.get("_pods", "-")),
            )
        for ns, name, why in failed:
            t.add_row(ns, name, "[red]NOT SENT[/]", why, "-", "-")
        return t

    if wait:
        with Live(table(), console=console, refresh_per_second=4, transient=False) as live:

            def all_halted() -> bool:
                for ns, name in sent:
                    if rows[(ns, name)].get("_done"):
                        continue
                    try:
                        obj = desk.get("strategies", ns, name)
                    except ApiException:
                        continue
                    st = obj.get("status") or {}
                    ks = st.get("killSwitch") or {}
                    # This decision's halt, or one latched before it (the command consumed): never a
                    # completion left from an earlier kill that was resumed since.
                    pending = "stratops.io/kill" in (obj["metadata"].get("annotations") or {})
                    st["_done"] = bool(
                        ks.get("latched") and ks.get("completedAt") and (ks.get("decision") == decision or not pending)
                    )
                    rows[(ns, name)] = st
                live.update(table())
                return all(r.get("_done") for r in rows.values())

            poll(all_halted, timeout, 0.3)
    halted = [k for k, r in rows.items() if r.get("_done")]
    console.print(
        f"halted {len(halted)}/{len(items)}; acknowledged by the strategy: "
        f"{sum(1 for k in halted if rows[k]['killSwitch'].get('acknowledged'))}"
    )
    if failed or (wait and len(halted) < len(sent)):
        raise CliError(
            f"{len(sent) - len(halted) if wait else 0} not halted within {timeout:.0f}s, {len(failed)} not sent: "
            "see the table; `stratops status` shows them"
        )
    return [{"namespace": ns, "strategy": name, **rows[(ns, name)].get("killSwitch", {})} for ns, name in sent]


def rearm(strategy: str, reason: Reason, namespace: Namespace = None, wait: Wait = True, timeout: Timeout = 30) -> None:
    """Re-arm a strategy halted by an exposure-linked or repeated-execution kill: only a user
    named in spec.killSwitch.rearmBy may (checked at admission and by the operator). It
    resumes nothing: `stratops resume` still needs a reconciliation, resolved incidents and the
    daily gate."""
    api, ns, value = give_command("rearm", strategy, namespace, {"reason": reason})
    if wait:
        status = _wait(
            api,
            ns,
            strategy,
            lambda o, s: "stratops.io/rearm" not in (o["metadata"].get("annotations") or {}),
            "the re-arm",
            timeout,
        )
        ks = status.get("killSwitch") or {}
        if ks.get("rearmedBy") != value["by"]:
            raise CliError(status.get("message") or "re-arm not recorded")
        console.print(f"[bold]re-armed[/] by {ks['rearmedBy']} at {ks['rearmedAt']}; resume when ready")


handover_app = typer.Typer(help="Warm handovers: release a held one.", no_args_is_help=True)
Book = Annotated[
    list[str],
    typer.Option(
        "--book",
        "-b",
        help="INSTRUMENT=QUANTITY (signed: short is negative), once per instrument held: the position reconciled "
        "at the broker, which the new version takes over.",
    ),
]


def parse_book(entries: list[str]) -> dict[str, float]:
    """--book EURUSD=250000 --book GBPUSD=-40000 as a book; CliError naming the entry otherwise."""
    import math

    book: dict[str, float] = {}
    for entry in entries:
        instrument, sep, qty = entry.partition("=")
        try:
            value = float(qty)
        except ValueError:
            value = math.nan
        if not sep or not instrument.strip() or not math.isfinite(value):
            raise CliError(f"--book {entry!r}: expected INSTRUMENT=QUANTITY with a finite number, e.g. EURUSD=250000")
        if instrument.strip() in book:
            raise CliError(f"--book: {instrument.strip()} given twice")
        book[instrument.strip()] = value
    if not book:
        raise CliError("--book is required: the reconciled position by instrument (INSTRUMENT=QUANTITY, repeated)")
    return book


def handover_release(
    strategy: str,
    reason: Reason,
    book: Book,
    namespace: Namespace = None,
    wait: Wait = True,
    timeout: Timeout = 30,
) -> None:
    """Release a held warm handover: the old version did not halt and was stopped; hand trading to
    the new version (on STANDBY) from the book reconciled at the broker. Needs a Matched
    reconciliation recorded since the hold (stratops reconcile). The operator then waits for the
    new version to confirm that book, as in any handover."""
    fields = {"reason": reason, "book": parse_book(book)}
    api, ns, value = give_command("release", strategy, namespace, fields)
    if wait:
        status = _wait(
            api,
            ns,
            strategy,
            lambda o, s: "stratops.io/release" not in (o["metadata"].get("annotations") or {}),
            "the release",
            timeout,
        )
        h = status.get("handover") or {}
        if f"released by {value['by']}:" not in (status.get("message") or ""):
            raise CliError(status.get("message") or "release not carried out")
        console.print(
            f"[bold]released[/]: {h.get('toVersion')} handed {h.get('tradingState')}; `stratops describe {strategy}` "
            "shows it take over"
        )
