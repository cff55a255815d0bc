"""`stratops gate list|sign|audit`: checklists at five cadences, signed by the requesting user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from stratops.cli.lifecycle import CliError, Namespace, _api, _namespace, console, emit, listing, whoami
from stratops.models.gate import Cadence

gate_app = typer.Typer(help="Gates: list, sign, audit.", no_args_is_help=True)
CADENCES = [c.value for c in Cadence]


def _gates(api: Any, namespace: str | None, all_namespaces: bool) -> list[dict[str, Any]]:

    from stratops.k8s.desk import DeskApi

    desk = DeskApi(api)
    if all_namespaces:
        return desk.list("gates", None)
    return desk.list("gates", _namespace(namespace))


def gate_list(
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help=("table, wide (also the missing items by name), json or yaml (the objects, for scripts)."),
        ),
    ] = "table",
) -> None:
    """Every gate, one line each: cadence, strategies, state, signed (signed over required items),
    expiry; -o wide names the missing items."""
    gates = _gates(_api(), namespace, all_namespaces)
    if output != "wide" and emit(gates, output):
        return
    columns = ["gate", "cadence", "strategies", "state", "signed", "expires"] + (
        ["missing"] if output == "wide" else []
    )
    table = listing(*columns, fixed=("cadence", "state", "signed"))
    for g in sorted(gates, key=lambda g: CADENCES.index(g["spec"]["cadence"])):
        st = g.get("status") or {}
        meta = g["metadata"]
        row = [
            f"{meta['namespace']}/{meta['name']}" if all_namespaces else meta["name"],
            g["spec"]["cadence"],
            ", ".join(g["spec"]["strategies"]) or "-",
            st.get("state") or "-",
            st.get("signed") or "-",
            (st.get("expiresAt") or "-").replace("T", " ")[:16],
        ]
        if output == "wide":
            row.append(", ".join(st.get("missingItems") or []) or "-")
        table.add_row(*row)
    console.print(table)


def gate_sign(
    gate: Annotated[str, typer.Argument(help="Gate name.")],
    items: Annotated[list[str] | None, typer.Argument(help="Item ids to sign (all required items with --all).")] = None,
    evidence: Annotated[str, typer.Option("--evidence", "-e", help="Evidence: text or a URL.")] = "",
    all_items: Annotated[bool, typer.Option("--all", help="Sign every required item.")] = False,
    for_file: Annotated[
        str | None,
        typer.Option(
            "--for",
            help="Pre-launch: sign for the Strategy manifest(s) in this file (a change not applied yet) instead "
            "of the strategies as they are in the cluster.",
        ),
    ] = None,
    namespace: Namespace = None,
) -> None:
    """Sign items of a gate as yourself (the API server's authenticated user), dated now.
    Pre-launch signatures name each strategy's version and the SHA-256 of its trading-relevant
    spec; to approve a change to a live strategy, sign for the changed manifest with --for,
    then apply it (its author may not be among the signers)."""
    from kubernetes.client.exceptions import ApiException

    from stratops.gates.evaluate import subject_for
    from stratops.k8s.desk import DeskApi
    from stratops.models.strategy import StrategySpec

    if not evidence.strip():
        raise CliError("--evidence is required: what you checked, or a link to it")
    api, ns = _api(), _namespace(namespace)
    desk = DeskApi(api)
    try:
        g = desk.get("gates", ns, gate)
    except ApiException as e:
        raise CliError(
            f"gate {gate} not found in namespace {ns}"
            if e.status == 404
            else f"cannot read gate {ns}/{gate}: {e.reason}"
        ) from e
    ids = [i["id"] for i in g["spec"]["items"]]
    wanted = [i["id"] for i in g["spec"]["items"] if i.get("required", True)] if all_items else list(items or [])
    if not wanted:
        raise CliError("name the items to sign, or --all")
    unknown = [i for i in wanted if i not in ids]
    if unknown:
        raise CliError(f"gate {gate} has no item {', '.join(unknown)}; its items: {', '.join(ids)}")
    proposed = _strategies_in(for_file) if for_file else {}
    subj = None
    if g["spec"]["cadence"] == Cadence.pre_launch.value:
        extra = sorted(set(proposed) - set(g["spec"]["strategies"]))
        if extra:
            raise CliError(
                f"--for {for_file}: {', '.join(extra)} not listed by gate {gate} (spec.strategies: "
                f"{', '.join(g['spec']['strategies'])})"
            )
        parts = []
        for s in g["spec"]["strategies"]:
            if s in proposed:
                parts.append(subject_for(s, proposed[s]))
                continue
            try:
                sspec = StrategySpec.model_validate(desk.get("strategies", ns, s)["spec"])
            except ApiException as e:
                raise CliError(f"pre-launch gate {gate} names strategy {s}, which cannot be read: {e.reason}") from e
            parts.append(subject_for(s, sspec))
        subj = " ".join(parts)
    elif for_file:
        raise CliError(f"--for applies to pre-launch gates only; {gate} has cadence {g['spec']['cadence']}")
    user = whoami(api)
    now = datetime.now(UTC).isoformat()
    sigs = {s["item"]: s for s in g["spec"].get("signatures") or []}
    for item in wanted:
        sigs[item] = {
            "item": item,
            "signer": user,
            "signedAt": now,
            "evidence": evidence,
            **({"subject": subj} if subj else {}),
        }
    patch = {
        "metadata": {"resourceVersion": g["metadata"]["resourceVersion"]},
        "spec": {"signatures": list(sigs.values())},
    }
    patch_signatures(desk, ns, gate, g, patch)
    console.print(f"signed {', '.join(wanted)} of {ns}/{gate} as {user}" + (f" for {subj}" if subj else ""))


SIGN_ATTEMPTS = 5


def patch_signatures(desk: Any, ns: str, gate: str, read: dict[str, Any], patch: dict[str, Any]) -> None:
    """PATCH the signatures at the resourceVersion they were computed from, so that another
    signer's signature written meanwhile is never overwritten. A conflict whose only cause is a
    status write (the operator records the gate's state after every change) leaves the spec as
    read: the same signatures are patched again at the new version."""
    from kubernetes.client.exceptions import ApiException

    from stratops.cli.lifecycle import api_message

    for attempt in range(1, SIGN_ATTEMPTS + 1):
        try:
            desk.patch("gates", ns, gate, patch)
            return
        except ApiException as e:
            if e.status in (400, 403, 422):
                raise CliError(f"signature refused: {api_message(e)}") from e
            if e.status != 409:
                raise CliError(api_message(e)) from e
            try:
                fresh = desk.get("gates", ns, gate)
            except ApiException as again:
                raise CliError(f"gate {gate} changed meanwhile and cannot be read again: {api_message(again)}") from e
            if fresh.get("spec") != read.get("spec"):
                raise CliError(
                    f"gate {ns}/{gate} was changed by someone else while signing (its spec, perhaps another "
                    "signature); nothing was signed: run the command again to sign the current gate"
                ) from e
            if attempt == SIGN_ATTEMPTS:
                raise CliError(
                    f"gate {ns}/{gate}: its status kept changing during {SIGN_ATTEMPTS} attempts; nothing was "
                    "signed: run the command again"
                ) from e
            patch["metadata"]["resourceVersion"] = fresh["metadata"]["resourceVersion"]


def _strategies_in(path: str) -> dict[str, Any]:
    """The Strategy specs in the manifest file PATH, by name (validated as the API server would)."""
    from pathlib import Path

    import yaml

    from stratops import API_VERSION
    from stratops.models.strategy import StrategySpec
    from stratops.models.validate import validate_document

    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    except (OSError, yaml.YAMLError) as e:
        raise CliError(f"--for {path}: cannot be read as YAML: {e}") from e
    out = {}
    for i, d in enumerate(docs, 1):
        if not isinstance(d, dict) or d.get("apiVersion") != API_VERSION or d.get("kind") != "Strategy":
            continue
        problems = validate_document(d, path, i)
        if problems:
            raise CliError(f"--for {path}: {problems[0]}")
        out[str(d["metadata"]["name"])] = StrategySpec.model_validate(d["spec"])
    if not out:
        raise CliError(f"--for {path}: no Strategy manifest in it")
    return out


def gate_audit(
    cadence: Annotated[str | None, typer.Option(help=f"Only this cadence: {', '.join(CADENCES)}.")] = None,
    namespace: Namespace = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
) -> None:
    """Audit cadence by cadence (not item by item): per cadence, which gates are complete,
    which lapsed, what is missing, who signed last and when."""
    if cadence is not None and cadence not in CADENCES:
        raise CliError(f"--cadence must be one of {', '.join(CADENCES)}")
    gates = _gates(_api(), namespace, all_namespaces)
    exit_code = 0
    for cad in [cadence] if cadence else CADENCES:
        group = [g for g in gates if g["spec"]["cadence"] == cad]
        states = [(g.get("status") or {}).get("state") or "Unknown" for g in group]
        verdict = "no gates" if not group else "all complete" if all(s == "Complete" for s in states) else "ATTENTION"
        if verdict == "ATTENTION":
            exit_code = 1
        console.print(f"[bold]{cad}[/]: {len(group)} gate(s), {verdict}")
        for g, state in zip(group, states, strict=True):
            st = g.get("status") or {}
            sigs = g["spec"].get("signatures") or []
            last = max(sigs, key=lambda s: s["signedAt"]) if sigs else None
            console.print(
                f"  {g['metadata']['namespace']}/{g['metadata']['name']}: {state} {st.get('signed') or ''}"
                + (f", expires {st['expiresAt']}" if st.get("expiresAt") else "")
                + (f", missing {', '.join(st['missingItems'])}" if st.get("missingItems") else "")
                + (f"; last signed by {last['signer']} at {last['signedAt']}" if last else "; never signed")
            )
    raise typer.Exit(exit_code)
