"""`stratops runbook list|show|run|verify|history`.

`run` walks a runbook against one strategy: operator steps are carried out through stratops
(after confirmation; never in a dry run), manual steps are asked for, every answer is recorded,
wait steps poll their check, and the verify check is run against the cluster at the end. The
run is recorded in the strategy's audit trail, whoever ran it and whatever the outcome: given
as a command (`stratops.io/runbook`, attributed to the requesting user at admission), which the
operator appends to the hash-chained trail and removes.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from stratops.cli import lifecycle as lc
from stratops.cli.lifecycle import CliError, Namespace, Output, _api, _namespace, console, emit, listing, whoami
from stratops.polling import poll
from stratops.recovery.runbooks import CATEGORIES, CHECKS, Runbook, RunbookStep, by_category, runbook

runbook_app = typer.Typer(help="Runbooks: list, show, run (with dry run), verify, history.", no_args_is_help=True)


def _runbook(id_: str) -> Runbook:
    try:
        return runbook(id_)
    except ValueError as e:
        raise CliError(str(e)) from None


def runbook_list(
    category: Annotated[
        str | None, typer.Option("--category", "-c", help=f"Only this category: {', '.join(CATEGORIES)}.")
    ] = None,
    output: Output = "table",
) -> None:
    """The ten runbooks: id, category, trigger."""
    try:
        books = by_category(category)
    except ValueError as e:
        raise CliError(str(e)) from None
    if emit([_as_dict(r) for r in books], output):
        return
    table = listing("runbook", "category", "title", "trigger", fixed=("runbook", "category"))
    for r in books:
        table.add_row(r.id, r.category, r.title, r.trigger)
    console.print(table)


def _as_dict(r: Runbook) -> dict[str, Any]:
    return {
        "id": r.id,
        "title": r.title,
        "category": r.category,
        "trigger": r.trigger,
        "steps": [
            {"id": s.id, "kind": s.kind, "text": s.text, **({"action": s.action} if s.action else {})} for s in r.steps
        ],
        "verify": {"check": r.verify, "description": r.check.description},
    }


def runbook_show(
    id_: Annotated[str, typer.Argument(metavar="RUNBOOK", help="Runbook id (see `stratops runbook list`).")],
    output: Output = "table",
) -> None:
    """One runbook: trigger, the steps in order (who does each), and the verify check."""
    r = _runbook(id_)
    if emit([_as_dict(r)], output):
        return
    console.print(f"[bold]{r.id}[/]: {r.title}  ({r.category})")
    console.print(f"  trigger: {r.trigger}")
    for i, s in enumerate(r.steps, 1):
        console.print(f"  {i}. [{_style(s)}]{s.kind:8}[/] {s.id}: {s.text}", highlight=False)
    console.print(f"  verify: {r.check.description} (check {r.verify})")


def _style(s: RunbookStep) -> str:
    return {"operator": "bold cyan", "record": "magenta", "manual": "yellow", "wait": "dim"}[s.kind]


def _answers(raw: list[str] | None) -> dict[str, str]:
    out = {}
    for a in raw or []:
        key, sep, value = a.partition("=")
        if not sep or not value.strip():
            raise CliError(
                f"--answer {a!r}: write STEP=TEXT, e.g. --answer broker='prime-a confirmed no working orders'"
            )
        out[key.strip()] = value.strip()
    return out


def _parse_reconciliation(text: str, step: str) -> tuple[str, str]:
    result, sep, evidence = text.partition(":")
    result = result.strip().capitalize()
    if result not in ("Matched", "Mismatched", "Failed") or not sep or not evidence.strip():
        raise CliError(f"step {step}: answer 'Matched: evidence' (or Mismatched/Failed), not {text!r}")
    return result, evidence.strip()


def runbook_run(
    id_: Annotated[str, typer.Argument(metavar="RUNBOOK", help="Runbook id.")],
    strategy: Annotated[str, typer.Argument(help="The strategy to run it on.")],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why; recorded with every command and in the run record.")
    ],
    namespace: Namespace = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be done and the verify check now; change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before operator steps (for scripts).")] = False,
    answer: Annotated[
        list[str] | None,
        typer.Option(
            "--answer",
            "-a",
            help="STEP=TEXT: the answer to a manual or record step (repeatable); "
            "record steps take 'Matched: evidence'.",
        ),
    ] = None,
    timeout_scale: Annotated[float, typer.Option(help="Multiply every wait step's timeout.")] = 1.0,
) -> None:
    """Run a runbook on STRATEGY: confirm and carry out operator steps, ask for and record manual
    ones, wait for each check, then run the verify check. Exit 1 if a step fails or the verify
    check fails; the run is recorded either way (not in a dry run)."""
    from stratops.cli.describe import fetch

    r = _runbook(id_)
    given = _answers(answer)
    unknown = sorted(set(given) - {s.id for s in r.steps})
    if unknown:
        raise CliError(
            f"--answer for unknown step(s) {', '.join(unknown)}: the steps of {r.id} are "
            f"{', '.join(s.id for s in r.steps)}"
        )
    interactive = sys.stdin.isatty()
    if not dry_run and not interactive:  # refuse before anything is done, not halfway through
        missing = [s.id for s in r.steps if s.kind in ("manual", "record") and s.id not in given]
        if missing:
            raise CliError(f"no terminal to ask: give --answer for {', '.join(f'{m}=...' for m in missing)}")
        if not yes and any(s.kind == "operator" for s in r.steps):
            raise CliError("no terminal to confirm operator steps: rerun with --yes (or --dry-run to see them)")
    for s in r.steps:
        if s.kind == "record" and s.id in given:
            _parse_reconciliation(given[s.id], s.id)
    api, ns = _api(), _namespace(namespace)
    fetch(api, ns, strategy)  # fails early on an unknown strategy
    by = whoami(api)
    started = datetime.now(UTC)
    record: dict[str, Any] = {
        "runbook": r.id,
        "strategy": strategy,
        "namespace": ns,
        "by": by,
        "reason": reason,
        "startedAt": started.isoformat(),
        "dryRun": dry_run,
        "steps": [],
    }
    console.print(f"[bold]{r.id}[/] on {ns}/{strategy} by {by}{' (dry run: nothing is changed)' if dry_run else ''}")
    console.print(f"  trigger: {r.trigger}")
    outcome = "completed"
    try:
        for i, s in enumerate(r.steps, 1):
            console.print(f"[bold]{i}/{len(r.steps)}[/] [{_style(s)}]{s.kind}[/] {s.id}: {s.text}", highlight=False)
            entry: dict[str, Any] = {"id": s.id, "kind": s.kind, "at": datetime.now(UTC).isoformat()}
            record["steps"].append(entry)
            if dry_run:
                entry["result"] = "dry-run"
                if s.kind == "wait":
                    ok, detail = CHECKS[s.action](fetch(api, ns, strategy)[0])  # type: ignore[index]
                    console.print(f"    now: {'pass' if ok else 'not yet'}: {detail}", highlight=False)
                elif s.kind == "operator":
                    console.print(f"    would run: {_command_line(s, strategy, ns)}", highlight=False)
                continue
            if s.kind == "manual":
                note = given.get(s.id) or _ask("    done? say what you did (empty: stop here)")
                if not note:
                    entry["result"] = "not done"
                    raise CliError(f"stopped at manual step {s.id}: not done")
                entry.update(result="done", note=note)
            elif s.kind == "record":
                text = given.get(s.id) or _ask("    reconciliation, as 'Matched: evidence' (or Mismatched/Failed)")
                result, evidence = _parse_reconciliation(text, s.id)
                lc.reconcile(strategy, result=result, evidence=evidence, namespace=ns)
                _wait_removed(api, ns, strategy, "stratops.io/reconciliation")
                entry.update(result=result, evidence=evidence)
            elif s.kind == "operator":
                if not yes and not _confirm(f"    run `{_command_line(s, strategy, ns)}`?"):
                    entry["result"] = "declined"
                    raise CliError(f"stopped at step {s.id}: declined")
                _operate(s, strategy, ns, f"runbook {r.id} ({s.id}): {reason}")
                entry["result"] = "done"
            else:
                entry["result"] = _wait_check(api, ns, strategy, s, s.timeout * timeout_scale)
        ok, detail = r.check(fetch(api, ns, strategy)[0])
    except CliError as e:
        outcome = f"stopped: {e}"
        ok, detail = r.check(fetch(api, ns, strategy)[0])
        record["verify"] = {"check": r.verify, "passed": ok, "detail": detail}
        record["outcome"] = outcome
        if not dry_run:
            _record(api, ns, strategy, record)
        raise
    record["verify"] = {"check": r.verify, "passed": ok, "detail": detail}
    record["outcome"] = outcome
    verdict = "[green]PASS[/]" if ok else "[red]FAIL[/]"
    console.print(f"verify ({r.check.description}): {verdict}: {detail}", highlight=False)
    if not dry_run:
        _record(api, ns, strategy, record)
    if not ok and not dry_run:
        raise typer.Exit(1)


def runbook_verify(
    id_: Annotated[str, typer.Argument(metavar="RUNBOOK", help="Runbook id.")],
    strategy: Annotated[str, typer.Argument(help="The strategy.")],
    namespace: Namespace = None,
) -> None:
    """Run only the runbook's verify check against the cluster: PASS (exit 0) or FAIL (exit 1)."""
    from stratops.cli.describe import fetch

    r = _runbook(id_)
    ok, detail = r.check(fetch(_api(), _namespace(namespace), strategy)[0])
    console.print(
        f"{r.id} verify ({r.check.description}): {'[green]PASS[/]' if ok else '[red]FAIL[/]'}: {detail}",
        highlight=False,
    )
    if not ok:
        raise typer.Exit(1)


def runbook_history(
    strategy: Annotated[str | None, typer.Argument(help="Only runs on this strategy.")] = None,
    namespace: Namespace = None,
    output: Output = "table",
) -> None:
    """Recorded runbook runs, newest first: who, when, outcome, verify (from the audit trail)."""
    from stratops.cli.audit import read_trails

    api, ns = _api(), _namespace(namespace)
    runs = sorted(
        (
            {**e["record"]["runbookRun"], "strategy": e.get("name")}
            for (_, kind, name), (entries, _) in read_trails(api, ns).items()
            if kind == "Strategy" and (strategy is None or name == strategy)
            for e in entries
            if e.get("reason") == "RunbookRun" and "runbookRun" in (e.get("record") or {})
        ),
        key=lambda r: r.get("startedAt", ""),
        reverse=True,
    )
    if emit(runs, output):
        return
    table = listing("started", "runbook", "strategy", "by", "outcome", "verify")
    for run in runs:
        v = run.get("verify") or {}
        table.add_row(
            run.get("startedAt", "-"),
            run.get("runbook", "-"),
            run.get("strategy", "-"),
            run.get("by", "-"),
            run.get("outcome", "-"),
            ("PASS" if v.get("passed") else "FAIL") + f": {v.get('detail', '')}"[:60],
        )
    console.print(table)


# -- steps -------------------------------------------------------------------------------------
def _command_line(s: RunbookStep, strategy: str, ns: str) -> str:
    base = {
        "kill": "kill",
        "throttle": "throttle",
        "rollback": "rollback",
        "failover-backup": "failover --to backup",
        "promote": "promote",
        "resume": "resume",
        "resume-throttled": "resume --throttled",
        "resolve-incidents": "incident resolve (each open incident)",
    }[s.action or ""]
    return f"stratops {base} {strategy} -n {ns}"


def _operate(s: RunbookStep, strategy: str, ns: str, reason: str) -> None:
    a = s.action
    if a == "kill":
        lc.kill(strategy, reason, ns, wait=False)
    elif a == "throttle":
        lc.throttle(strategy, reason, ns)
    elif a == "rollback":
        lc.rollback(strategy, reason, ns)
    elif a == "failover-backup":
        lc.failover(strategy, reason, "backup", ns)
    elif a == "promote":
        lc.promote(strategy, reason, ns, wait=False)
    elif a in ("resume", "resume-throttled"):
        lc.resume(strategy, reason, ns, throttled=a == "resume-throttled")
    elif a == "resolve-incidents":
        _resolve_incidents(strategy, ns, reason)
    else:  # pragma: no cover - RunbookStep validates actions
        raise CliError(f"unknown operator action {a}")


def _resolve_incidents(strategy: str, ns: str, reason: str) -> None:
    from stratops.cli.describe import fetch
    from stratops.cli.incidents import incident_resolve

    view, _ = fetch(_api(), ns, strategy)
    open_ = view.open_incidents()
    without = sorted(i["metadata"]["name"] for i in open_ if not i["spec"].get("postmortem"))
    if without:
        raise CliError(
            f"incident(s) {', '.join(without)} have no postmortem: "
            f"`stratops incident resolve NAME --reason ... --root-cause ... --action ... --owner ...`"
        )
    for i in open_:
        incident_resolve(i["metadata"]["name"], reason=reason, namespace=ns)
    if not open_:
        console.print("    no open incidents")


def _wait_check(api: Any, ns: str, strategy: str, s: RunbookStep, timeout: float) -> str:
    from stratops.cli.describe import fetch

    check = CHECKS[s.action]  # type: ignore[index]
    last = ""

    def reached() -> bool:
        nonlocal last
        ok, detail = check(fetch(api, ns, strategy)[0])
        if detail != last:
            console.print(f"    {'[green]ok[/]' if ok else '…'} {detail}", highlight=False)
            last = detail
        return ok

    if poll(reached, timeout, 0.5):
        return "passed"
    raise CliError(f"step {s.id}: {check.description} not reached within {timeout:.0f}s ({last})")


def _wait_removed(api: Any, ns: str, strategy: str, annotation: str, timeout: float = 30) -> None:
    if not poll(
        lambda: annotation not in (lc._get(api, ns, strategy)["metadata"].get("annotations") or {}), timeout, 0.3
    ):
        raise CliError(f"the operator did not take {annotation} within {timeout:.0f}s: is it running?")


def _ask(prompt: str) -> str:
    from rich.prompt import Prompt

    return Prompt.ask(prompt, default="", show_default=False, console=console).strip()


def _confirm(prompt: str) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(prompt, default=False, console=console)


def _record(api: Any, ns: str, strategy: str, record: dict[str, Any], timeout: float = 30) -> None:
    """Keep the run in the strategy's audit trail: a command the operator appends to the chain
    (attributed at admission to whoever runs it), and removes once it is there."""
    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.desk import DeskApi
    from stratops.lifecycle.commands import command_value

    record["finishedAt"] = datetime.now(UTC).isoformat()
    by = record.get("by") or whoami(api)
    value = command_value(by, reason=f"runbook {record['runbook']}", run={k: v for k, v in record.items() if k != "by"})
    try:
        DeskApi(api).patch("strategies", ns, strategy, {"metadata": {"annotations": {"stratops.io/runbook": value}}})
    except ApiException as e:
        console.print(
            f"[red]could not record the run ({lc.api_message(e)}); record kept here:[/]\n{json.dumps(record)}"
        )
        return
    if not poll(
        lambda: "stratops.io/runbook" not in (lc._get(api, ns, strategy)["metadata"].get("annotations") or {}),
        timeout,
        0.3,
    ):
        console.print("[yellow]recorded on the strategy; the operator adds it to the audit trail when it runs[/]")
        return
    console.print("recorded in the strategy's audit trail")
