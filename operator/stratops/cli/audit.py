"""`stratops audit export`: the evidence pack, from the cluster's records."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from stratops import GROUP, VERSION
from stratops.audit import DATA_KEY, RECORD_LABEL, evidence, markdown, months
from stratops.cli.lifecycle import CliError, Namespace, _api, _namespace, console

audit_app = typer.Typer(help="Compliance evidence: export the evidence pack.", no_args_is_help=True)


def parse_when(text: str, now: datetime, option: str) -> datetime:
    """An RFC 3339 time, a date (YYYY-MM-DD, midnight UTC), 'now', or an age such as 30d, 12h."""
    t = text.strip()
    if t == "now":
        return now
    if m := re.fullmatch(r"(\d+)([dhm])", t):
        n, unit = int(m.group(1)), m.group(2)
        unit_name = {"d": "days", "h": "hours", "m": "minutes"}[unit]
        return now - timedelta(**{unit_name: n})
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{option} {text!r}: give an RFC 3339 time (2026-11-24T09:00:00Z), a date (2026-11-01), "
                       "'now', or an age such as 30d or 12h") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def audit_export(
    since: Annotated[str, typer.Option("--since", help="Start: RFC 3339, a date, or an age such as 90d.")],
    until: Annotated[str, typer.Option("--until", help="End: RFC 3339, a date, or now.")] = "now",
    out: Annotated[Path | None, typer.Option("--out", help="Directory for evidence.md and evidence.json (default: ./evidence-<until date>).")] = None,
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
) -> None:
    """Write the evidence pack (Markdown and JSON) for a period: deployments with their
    pre-launch approvers, gate signatures, incidents with their four steps and timings,
    kill-switches, throttles, resumes and rollbacks with who and why, promotions, limit
    changes, broker failovers, reconciliations, monitor breaches and runbook runs. Read from
    the cluster's records (Strategies, Gates, Incidents, audit and runbook ConfigMaps) only."""
    from kubernetes import client

    now = datetime.now(timezone.utc)
    start, end = parse_when(since, now, "--since"), parse_when(until, now, "--until")
    if start >= end:
        raise CliError(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    api = _api()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    ns = None if all_namespaces else _namespace(namespace)

    def crs(plural: str) -> list[dict[str, Any]]:
        return (custom.list_cluster_custom_object(GROUP, VERSION, plural) if ns is None
                else custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural))["items"]

    def cms(selector: str) -> list[Any]:
        return (core.list_config_map_for_all_namespaces(label_selector=selector) if ns is None
                else core.list_namespaced_config_map(ns, label_selector=selector)).items

    console.print(f"reading {'every namespace' if ns is None else 'namespace ' + ns} for {start.isoformat()} .. {end.isoformat()}")
    strategies, gates, incidents = crs("strategies"), crs("gates"), crs("incidents")
    entries: list[dict[str, Any]] = []
    wanted = set(months(start, end))
    for cm in cms(f"{RECORD_LABEL}=audit"):
        if (cm.metadata.labels or {}).get("stratops.io/month") in wanted:
            entries += [json.loads(ln) for ln in ((cm.data or {}).get(DATA_KEY) or "").splitlines() if ln.strip()]
    runs = [json.loads((cm.data or {}).get("run.json") or "{}") for cm in cms(f"{RECORD_LABEL}=runbook-run")]
    runs = [r for r in runs if not r.get("dryRun")]
    pack = evidence(strategies, gates, incidents, entries, runs, start, end, now,
                    "all namespaces" if ns is None else f"namespace {ns}")
    out = out or Path(f"evidence-{end:%Y-%m-%d}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "evidence.json").write_text(json.dumps(pack, indent=2, sort_keys=False) + "\n")
    (out / "evidence.md").write_text(markdown(pack) + "\n")
    counts = ", ".join(f"{len(pack[k])} {k}" for k in ("deployments", "gateSignatures", "incidents", "killSwitches",
                                                         "resumes", "rollbacks", "limitChanges", "runbookRuns"))
    console.print(f"wrote {out / 'evidence.md'} and {out / 'evidence.json'}: {counts}")
