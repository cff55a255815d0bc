"""`stratops triage`: walk the recovery tree from a symptom to one action.

Interactive on a terminal (numbered choices); for scripts, give every answer with --answer and
nothing is ever read from stdin. --apply carries the action out through the on-call commands
(kill, throttle, rollback; reconcile then resume), with the answer path as the reason.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm, Prompt

from stratops.cli import lifecycle as lc
from stratops.cli.lifecycle import CliError, Namespace
from stratops.recovery import tree
from stratops.recovery.tree import Question, Walk

console = Console()
err = Console(stderr=True)

TITLES = {
    "killSwitch": "KILL-SWITCH",
    "throttle": "THROTTLE",
    "rollback": "ROLLBACK",
    "investigate": "INVESTIGATE",
    "resume": "RESUME",
}
STYLES = {
    "killSwitch": "bold red",
    "throttle": "bold yellow",
    "rollback": "bold magenta",
    "investigate": "bold cyan",
    "resume": "bold green",
}


def _complete_symptom(incomplete: str) -> list[tuple[str, str]]:
    return [(s.id, s.text) for s in tree.SYMPTOMS if s.id.startswith(incomplete)]


def _interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _ask(out: Console, title: str, help_text: str, labels: tuple[str, ...], answer: Any) -> Any:
    """Ask until ANSWER(text) accepts the reply; a number picks the numbered choice."""
    out.print(f"\n[bold]{escape(title)}[/]")
    if help_text:
        out.print(f"  [dim]{escape(help_text)}[/]")
    for i, label in enumerate(labels, 1):
        out.print(f"  {i}) {escape(label)}")
    while True:
        try:
            reply = Prompt.ask(f"answer [1-{len(labels)}]", console=out).strip()
        except EOFError:
            raise CliError("no answer (end of input)") from None
        if reply.isdigit() and 1 <= int(reply) <= len(labels):
            reply = labels[int(reply) - 1]
        try:
            return answer(reply)
        except ValueError as e:
            out.print(f"[red]{escape(str(e))}[/]")


def _pick_symptom(out: Console) -> str:
    ids = tuple(s.id for s in tree.SYMPTOMS)
    labels = tuple(f"{s.id}: {s.text}" for s in tree.SYMPTOMS)

    def pick(reply: str) -> str:
        for sid, label in zip(ids, labels, strict=True):
            if reply.casefold() in (sid, label.casefold()):
                return sid
        return tree.symptom(reply).id  # ValueError naming the symptoms

    return str(_ask(out, "Which symptom?", "", labels, pick))


def _as_dict(w: Walk, command: str | None) -> dict[str, Any]:
    return {
        "symptom": {"id": w.symptom.id, "text": w.symptom.text},
        "path": [{"id": s.question.id, "question": s.question.text, "answer": s.answer} for s in w.steps],
        "action": None
        if w.action is None
        else {"kind": w.action.kind, "why": w.action.why, "command": command, "runbook": w.action.runbook},
        "reason": w.reason(),
        "next": None
        if w.next_question is None
        else {"id": w.next_question.id, "question": w.next_question.text, "answers": list(w.next_question.labels)},
    }


def _print(out: Console, w: Walk, command: str | None) -> None:
    out.print(f"[bold]symptom[/]  {w.symptom.id}: {escape(w.symptom.text)}")
    for i, s in enumerate(w.steps, 1):
        out.print(f"  {i}. {escape(s.question.text)} → [bold]{escape(s.answer)}[/]")
    if w.action is None:
        assert w.next_question is not None
        q = w.next_question
        out.print(f"[bold]next question[/]  {escape(q.text)}")
        out.print(f"[bold]answers[/]  {', '.join(escape(repr(label)) for label in q.labels)}")
        out.print(
            f"[dim]add --answer ANSWER for each question; e.g. stratops triage {w.symptom.id} "
            + " ".join(f"--answer {json.dumps(a)}" for a in (*w.answers, q.labels[0]))
            + "[/]",
            soft_wrap=True,
        )
        return
    a = w.action
    out.print(f"[bold]action[/]   [{STYLES[a.kind]}]{TITLES[a.kind]}[/] ({a.kind})")
    out.print(f"[bold]why[/]      {escape(a.why)}")
    out.print(f"[bold]next[/]     {escape(command or '')}", soft_wrap=True)
    out.print(
        f"[bold]runbook[/]  {a.runbook} (stratops runbook show {a.runbook})" if a.runbook else "[bold]runbook[/]  -"
    )


@contextlib.contextmanager
def _lifecycle_output_to(out: Console) -> Iterator[None]:
    """The on-call commands print progress on their console: send it to OUT (stderr under -o json)."""
    saved = lc.console
    lc.console = out
    try:
        yield
    finally:
        lc.console = saved


def _reconciled(strategy: str, namespace: str | None, timeout: float) -> None:
    """Wait until the operator has taken the reconciliation annotation off the strategy."""
    api, ns = lc._api(), lc._namespace(namespace)
    lc._wait(
        api,
        ns,
        strategy,
        lambda o, s: "stratops.io/reconciliation" not in (o["metadata"].get("annotations") or {}),
        "the reconciliation to be recorded",
        timeout,
    )


def _apply(w: Walk, strategy: str, namespace: str | None, evidence: str | None, timeout: float) -> None:
    assert w.action is not None
    reason = w.reason()
    kind = w.action.kind
    if kind == "killSwitch":
        lc.kill(strategy, reason, namespace=namespace, timeout=timeout)
    elif kind == "throttle":
        lc.throttle(strategy, reason, namespace=namespace, timeout=timeout)
    elif kind == "rollback":
        lc.rollback(strategy, reason, namespace=namespace, timeout=timeout)
    elif kind == "resume":
        if not evidence:
            raise CliError("resume records the reconciliation first: give --evidence (what you compared, or a link)")
        lc.reconcile(strategy, result=tree.MATCHED, evidence=evidence, namespace=namespace)
        _reconciled(strategy, namespace, timeout)
        lc.resume(strategy, reason, namespace=namespace, timeout=timeout)
    if kind != "resume" and (mismatch := _mismatch(w)) and evidence:
        # The mismatch that led here is part of the record, and it refuses a resume until a
        # newer Matched reconciliation is recorded.
        lc.reconcile(strategy, result=mismatch, evidence=evidence, namespace=namespace)


def _daily_gate(strategy: str, namespace: str | None) -> str | None:
    """The strategy's daily gate from the cluster, or None when it cannot be read (the command
    then reads it itself): triage must work without a cluster."""

    from stratops.k8s.desk import DeskApi

    try:
        api = lc._api()
        body = DeskApi(api).get("strategies", lc._namespace(namespace), strategy, timeout=5)
    except Exception:  # no kubeconfig, no cluster, no such strategy: all fall back
        return None
    return ((body.get("spec") or {}).get("gates") or {}).get("daily")


def _mismatch(w: Walk) -> str | None:
    rec = next((s for s in w.steps if s.question.is_reconciliation), None)
    return rec.answer if rec is not None and rec.answer != tree.MATCHED else None


def triage(
    symptom_id: Annotated[
        str | None,
        typer.Argument(
            metavar="SYMPTOM",
            help="acks-silent, not-trading, pnl-diverging, stale-data, latency-spike or "
            "position-mismatch; asked when omitted.",
            autocompletion=_complete_symptom,
            show_default=False,
        ),
    ] = None,
    answer: Annotated[
        list[str],
        typer.Option(
            "--answer",
            "-a",
            help="Answer to the next question, in order; repeatable. Labels, case-insensitive; y/n "
            "for yes/no. With answers nothing is asked: exit 2 when they do not reach an action.",
        ),
    ] = [],  # noqa: B006
    strategy: Annotated[str | None, typer.Option("--strategy", "-s", help="Strategy: filled into the command.")] = None,
    namespace: Namespace = None,
    apply: Annotated[bool, typer.Option("--apply", help="Carry the action out (needs --strategy).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --apply: do not ask for confirmation.")] = False,
    evidence: Annotated[
        str | None,
        typer.Option(
            help="What you compared at the reconciliation step (recorded with --apply); asked when interactive."
        ),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text, json or yaml.")] = "text",
    timeout: Annotated[float, typer.Option(help="With --apply: seconds to wait for the operator.")] = 120,
) -> None:
    """Triage through the recovery tree: answer the questions, get one action and the command to run.

    Actions: kill-switch, throttle, rollback, investigate, resume; resume only through a reconciliation answered Matched. With --apply --strategy NAME the action is carried out, the answer path recorded as the reason.
    """  # noqa: E501 - one paragraph: the help reflows it
    if output not in ("text", "json", "yaml"):
        raise CliError(f"--output must be text, json or yaml, not {output!r}")
    if apply and not strategy:
        raise CliError("--apply needs --strategy NAME")
    interactive = not answer and _interactive()
    out = console if output == "text" else err  # prompts and progress never mix with json/yaml on stdout
    if symptom_id is None:
        if not interactive:  # for scripts: what to say, exit 2 as for a missing answer
            err.print("say which symptom: stratops triage SYMPTOM", highlight=False)
            for s in tree.SYMPTOMS:
                console.print(f"{s.id:18} {escape(s.text)}", highlight=False)
            raise typer.Exit(2)
        symptom_id = _pick_symptom(out)
    try:
        w = tree.walk(symptom_id, list(answer))
    except ValueError as e:
        raise CliError(str(e)) from None

    if interactive:
        out.print(f"[bold]{escape(w.symptom.text)}[/]")
        while w.next_question is not None:
            q: Question = w.next_question
            title = ("Reconciliation: " if q.is_reconciliation else "") + q.text
            got = _ask(out, title, q.help, q.labels, q.answer)
            if q.is_reconciliation and apply and not evidence:
                evidence = Prompt.ask("evidence (what you compared: statement, drop copy, a link)", console=out).strip()
                while not evidence:
                    evidence = Prompt.ask("evidence is required", console=out).strip()
            w = tree.walk(w.symptom.id, [*w.answers, got.label])
        out.print()

    daily = _daily_gate(strategy, namespace) if w.action and strategy and tree.DAILY_GATE in w.action.command else None
    command = w.action.command_for(strategy, namespace, w.reason(), evidence, daily) if w.action else None
    if output == "text":
        _print(console, w, command)
    else:
        data = _as_dict(w, command)
        if output == "json":
            print(json.dumps(data, indent=2))
        else:
            import yaml

            print(yaml.safe_dump(data, sort_keys=False), end="")
    if w.action is None:
        raise typer.Exit(2)
    if not apply:
        return
    assert strategy is not None
    if w.action.kind == "investigate" and not (_mismatch(w) and evidence):
        out.print("investigate: nothing to apply")
        return
    if w.action.kind == "resume" and not evidence:
        raise CliError("resume records the reconciliation first: give --evidence (what you compared, or a link)")
    if not yes:
        if not _interactive():
            raise CliError("--apply asks for confirmation on a terminal; add --yes to apply without one")
        ns = f" in {namespace}" if namespace else ""
        what = (
            TITLES[w.action.kind] if w.action.kind != "investigate" else f"Record the {_mismatch(w)} reconciliation of"
        )
        if not Confirm.ask(f"{what} {strategy}{ns} now?", default=False, console=out):
            out.print("not applied")
            raise typer.Exit(1)
    with _lifecycle_output_to(out):
        _apply(w, strategy, namespace, evidence, timeout)
