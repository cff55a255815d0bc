"""`stratops audit export` and `audit verify`: the evidence pack, and the audit chains checked,
from the cluster's records."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from stratops.audit import Finding, Head, evidence, markdown, verify
from stratops.cli.lifecycle import CliError, Namespace, _api, _namespace, console

audit_app = typer.Typer(
    help="Compliance evidence: export the evidence pack, verify the audit chains.", no_args_is_help=True
)
Trails = dict[tuple[str, str, str], tuple[list[dict[str, Any]], list[Finding]]]


def read_trails(api: Any, ns: str | None) -> Trails:
    """Every subject's audit chain in NS (None: every namespace), verified: (namespace, kind,
    name) -> (entries, findings). Only AuditSegments are read (the operator's alone to write);
    a subject that still exists is checked against the head in its status."""

    from stratops.k8s.audit import PLURAL, trails
    from stratops.k8s.desk import DeskApi

    desk = DeskApi(api)

    def crs(plural: str) -> list[dict[str, Any]]:
        return desk.list(plural, ns)

    heads = {
        (o["metadata"]["namespace"], kind, o["metadata"]["name"]): Head.of((o.get("status") or {}).get("audit"))
        for kind, plural in (("Strategy", "strategies"), ("Gate", "gates"))
        for o in crs(plural)
        if (o.get("status") or {}).get("audit")
    }
    lines = trails(crs(PLURAL))
    return {key: verify(lines.get(key, []), heads.get(key)) for key in sorted(set(lines) | set(heads))}


def parse_when(text: str, now: datetime, option: str) -> datetime:
    """An RFC 3339 time, a date (YYYY-MM-DD, midnight UTC), 'now', or an age such as 30d, 12h."""
    t = text.strip()
    if t == "now":
        return now
    if m := re.fullmatch(r"(\d+)([dhm])", t):
        n, unit = int(m.group(1)), m.group(2)
        unit_name = {"d": "days", "h": "hours", "m": "minutes"}[unit]
        try:
            return now - timedelta(**{unit_name: n})
        except OverflowError:
            raise CliError(f"{option} {text!r} reaches back before year 1: give a smaller age or a date") from None
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option} {text!r}: give an RFC 3339 time (2026-11-24T09:00:00Z), a date (2026-11-01), "
            "'now', or an age such as 30d or 12h"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def audit_export(
    since: Annotated[str, typer.Option("--since", help="Start: RFC 3339, a date, or an age such as 90d.")],
    until: Annotated[str, typer.Option("--until", help="End: RFC 3339, a date, or now.")] = "now",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for evidence.md and evidence.json (default: ./evidence-<until date>)."),
    ] = None,
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
) -> None:
    """Write the evidence pack (Markdown and JSON) for a period: deployments with their
    pre-launch approvers, gate signatures, incidents with their four steps and timings,
    kill-switches, throttles, resumes and rollbacks with who and why, promotions, limit
    changes, broker failovers, reconciliations, monitor breaches and runbook runs. Read from
    the cluster's records (Strategies, Gates, Incidents, audit and runbook ConfigMaps) only."""

    from stratops.k8s.desk import DeskApi

    now = datetime.now(UTC)
    start, end = parse_when(since, now, "--since"), parse_when(until, now, "--until")
    if start >= end:
        raise CliError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    out = out or Path(f"evidence-{end:%Y-%m-%d}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"--out {out}: cannot create the directory ({e.strerror})") from None
    api = _api()
    desk = DeskApi(api)
    ns = None if all_namespaces else _namespace(namespace)

    def crs(plural: str) -> list[dict[str, Any]]:
        return desk.list(plural, ns)

    console.print(
        f"reading {'every namespace' if ns is None else 'namespace ' + ns} for {start.isoformat()} .. {end.isoformat()}"
    )
    strategies, gates, incidents = crs("strategies"), crs("gates"), crs("incidents")
    checked = read_trails(api, ns)
    entries = [e for entries, _ in checked.values() for e in entries]
    runs = [
        {**e["record"]["runbookRun"], "strategy": e["name"]}
        for e in entries
        if e.get("reason") == "RunbookRun" and "runbookRun" in (e.get("record") or {})
    ]
    pack = evidence(
        strategies,
        gates,
        incidents,
        entries,
        [r for r in runs if not r.get("dryRun")],
        start,
        end,
        now,
        "all namespaces" if ns is None else f"namespace {ns}",
    )
    pack["auditTrail"] = {
        f"{k[0]}/{k[1]}/{k[2]}": [str(f) for f in findings] or "VERIFIED" for k, (_, findings) in checked.items()
    }
    (out / "evidence.json").write_text(json.dumps(pack, indent=2, sort_keys=False) + "\n")
    (out / "evidence.md").write_text(markdown(pack) + "\n")
    counts = ", ".join(
        f"{len(pack[k])} {k}"
        for k in (
            "deployments",
            "gateSignatures",
            "incidents",
            "killSwitches",
            "resumes",
            "rollbacks",
            "limitChanges",
            "runbookRuns",
        )
    )
    broken = [k for k, v in pack["auditTrail"].items() if v != "VERIFIED"]
    console.print(f"wrote {out / 'evidence.md'} and {out / 'evidence.json'}: {counts}")
    console.print(
        f"audit trail: {'VERIFIED' if not broken else 'BROKEN for ' + ', '.join(broken)} ({len(checked)} chains)"
    )


def audit_verify(
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
) -> None:
    """Check every audit chain: each entry must follow the one before it (hash and sequence),
    and end where the subject's status says. VERIFIED (exit 0), or the first broken, missing or
    inserted entry of each chain that is not (exit 1)."""
    checked = read_trails(_api(), None if all_namespaces else _namespace(namespace))
    bad = 0
    for (ns, kind, name), (entries, findings) in checked.items():
        if findings:
            bad += 1
            console.print(
                f"[red]BROKEN[/] {ns}/{kind}/{name}: {findings[0]}"
                + (f" (and {len(findings) - 1} more)" if len(findings) > 1 else "")
            )
        else:
            console.print(f"[green]VERIFIED[/] {ns}/{kind}/{name}: {len(entries)} entries")
    if not checked:
        console.print("no audit chain here yet")
    if bad:
        raise typer.Exit(1)
