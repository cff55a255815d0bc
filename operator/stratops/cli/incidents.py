"""`stratops incident list|show|ack|resolve`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from stratops.cli.lifecycle import CliError, Namespace, Output, _api, _namespace, console, emit, listing, whoami
from stratops.polling import poll

incident_app = typer.Typer(help="Incidents: list, show, acknowledge, resolve.", no_args_is_help=True)


def _get(api: Any, ns: str, name: str) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi

    try:
        return DeskApi(api).get("incidents", ns, name)
    except ApiException as e:
        raise CliError(
            f"incident {name} not found in namespace {ns}"
            if e.status == 404
            else f"cannot read incident {ns}/{name}: {e.reason}"
        ) from e


def age(timestamp: str, now: datetime | None = None) -> str:
    """How long ago TIMESTAMP (RFC 3339) was, as kubectl prints it: 45s, 12m, 3h, 2d."""
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def incident_list(
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    open_only: Annotated[bool, typer.Option("--open", help="Only incidents not resolved.")] = False,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help=("table, wide (also the strategy and the summary), json or yaml (the objects, for scripts)."),
        ),
    ] = "table",
) -> None:
    """Incidents, newest first, one line each: class, severity, phase, age (a monitor's incident
    is named after the monitor, so after its strategy); -o wide adds the strategy and the
    summary (`stratops incident show NAME` has all of it)."""

    from stratops.k8s.desk import DeskApi

    desk = DeskApi(_api())
    items = desk.list("incidents", None if all_namespaces else _namespace(namespace))
    items = sorted(items, key=lambda i: i["metadata"]["creationTimestamp"], reverse=True)
    if open_only:
        items = [i for i in items if ((i.get("status") or {}).get("phase") or "Open") != "Resolved"]
    if output != "wide" and emit(items, output):
        return
    columns = ["incident", "class", "sev", "phase", "age"] + (["strategy", "summary"] if output == "wide" else [])
    table = listing(*columns, fixed=("sev", "phase", "age"))
    for i in items:
        phase = (i.get("status") or {}).get("phase") or "Open"
        meta = i["metadata"]
        row = [
            f"{meta['namespace']}/{meta['name']}" if all_namespaces else meta["name"],
            i["spec"]["class"],
            i["spec"]["severity"],
            phase,
            age(meta["creationTimestamp"]),
        ]
        if output == "wide":
            row += [i["spec"]["strategy"], i["spec"]["summary"]]
        table.add_row(*row)
    console.print(table)


def incident_show(name: str, namespace: Namespace = None, output: Output = "table") -> None:
    """One incident: its class's P0/P1 line, and the four playbook steps, done (when, by whom,
    what) or still to do (what the playbook says)."""
    from stratops.recovery.classes import STEPS, card

    i = _get(_api(), _namespace(namespace), name)
    if emit([i], output):
        return
    st = i.get("status") or {}
    c = card(i["spec"]["class"])
    sev = i["spec"]["severity"]
    console.print(
        f"[bold]{name}[/] {c.title} {sev} on {i['spec']['strategy']}: {st.get('phase') or 'Open'}"
        + (f" (acknowledged by {st['acknowledgedBy']})" if st.get("acknowledgedBy") else "")
    )
    console.print(f"  {i['spec']['summary']}")
    console.print(f"  {sev} means: {c.p0 if sev == 'P0' else c.p1}", highlight=False)
    playbook = c.playbook()
    for step in STEPS:
        s = (st.get("steps") or {}).get(step)
        if s:
            console.print(f"  [green]✓[/] {step:16} {s['at']} by {s['by']}: {s.get('detail', '')}", highlight=False)
        else:
            console.print(f"  [yellow]·[/] {step:16} to do: {playbook[step]}", highlight=False)
    console.print(f"  runbook: stratops runbook show {c.runbook}")
    if i["spec"].get("postmortem"):
        pm = i["spec"]["postmortem"]
        console.print(f"  postmortem: {pm['rootCause']} (owner {pm['owner']}); actions: {'; '.join(pm['actions'])}")
    if st.get("message"):
        console.print(f"  [yellow]{st['message']}[/]")


def _annotate(
    api: Any, ns: str, name: str, key: str, value: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi
    from stratops.lifecycle.commands import command_value

    patch: dict[str, Any] = {"metadata": {"annotations": {key: command_value(value["by"], **value)}}, **(extra or {})}
    try:
        DeskApi(api).patch("incidents", ns, name, patch)
    except ApiException as e:
        raise CliError(f"cannot update incident {ns}/{name}: {e.reason} ({e.status})") from e


def incident_ack(name: str, namespace: Namespace = None) -> None:
    """Acknowledge: you own it now."""
    api, ns = _api(), _namespace(namespace)
    _get(api, ns, name)
    _annotate(api, ns, name, "stratops.io/ack", {"by": whoami(api), "id": uuid.uuid4().hex[:12]})
    console.print(f"acknowledged {ns}/{name}")


def incident_contain(
    name: str,
    detail: Annotated[
        str, typer.Option("--detail", "-d", help="The safe state reached, e.g. 'orders reconciled at prime-a'.")
    ],
    namespace: Namespace = None,
) -> None:
    """Record containment by hand (the operator records it itself when the strategy reaches
    the safe state of the immediate action)."""
    if not detail.strip():
        raise CliError("--detail is required: what is contained, and how you know")
    api, ns = _api(), _namespace(namespace)
    _get(api, ns, name)
    _annotate(api, ns, name, "stratops.io/contain", {"by": whoami(api), "reason": detail, "id": uuid.uuid4().hex[:12]})
    console.print(f"containment of {ns}/{name} recorded")


def incident_resolve(
    name: str,
    reason: Annotated[str, typer.Option("--reason", "-r", help="How it ended.")],
    root_cause: Annotated[str | None, typer.Option(help="Postmortem: the root cause.")] = None,
    action: Annotated[
        list[str] | None, typer.Option("--action", help="Postmortem: a follow-up action (repeatable).")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Postmortem: who owns the follow-up.")] = None,
    namespace: Namespace = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 30,
) -> None:
    """Resolve: needs the postmortem (root cause, actions, owner), given here or already in spec."""
    api, ns = _api(), _namespace(namespace)
    inc = _get(api, ns, name)
    extra: dict[str, Any] = {}
    given = [root_cause, action, owner]
    if any(given):
        if not all(given):
            raise CliError("a postmortem needs --root-cause, at least one --action and --owner")
        extra = {"spec": {"postmortem": {"rootCause": root_cause, "actions": action, "owner": owner}}}
    elif not inc["spec"].get("postmortem"):
        raise CliError("this incident has no postmortem yet: give --root-cause, --action (repeatable) and --owner")
    _annotate(
        api,
        ns,
        name,
        "stratops.io/resolve",
        {"by": whoami(api), "reason": reason, "id": uuid.uuid4().hex[:12], "at": datetime.now(UTC).isoformat()},
        extra,
    )

    def settled() -> dict[str, Any] | None:
        i = _get(api, ns, name)
        st = i.get("status") or {}
        taken = "stratops.io/resolve" not in (i["metadata"].get("annotations") or {})
        return st if st.get("phase") == "Resolved" or (taken and st.get("message")) else None

    if (st := poll(settled, timeout, 0.5)) is not None:
        if st.get("phase") != "Resolved":
            raise CliError(st["message"])
        console.print(f"resolved {ns}/{name} by {st.get('resolvedBy')}")
        return
    raise CliError(f"timed out after {timeout:.0f}s; is the operator running? see `stratops incident show {name}`")
