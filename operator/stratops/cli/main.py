"""stratops: on-call and desk commands.

Commands that need no cluster (crds, validate) are pure; the others use the current kubeconfig
context, like kubectl.
"""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from stratops import __version__

app = typer.Typer(
    name="stratops",
    help="Run the production lifecycle of trading strategies on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
dev = typer.Typer(help="The local control plane for trying stratops on a laptop.", no_args_is_help=True)
app.add_typer(dev, name="dev")
console = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"stratops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """stratops: deploy, promote, roll back, throttle, kill-switch and resume trading strategies."""


@app.command()
def crds(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the CRDs.")] = Path("crds"),
    policies: Annotated[Path, typer.Option("--policies", help="Where to write the chart's admission policies.")] = Path(
        "charts/stratops/files/admission-policies.yaml"
    ),
    check: Annotated[bool, typer.Option("--check", help="Only check that both are up to date; exit 1 if not.")] = False,
) -> None:
    """Generate the CustomResourceDefinitions from the models into DIR, and the admission
    policies (CEL) into the chart."""
    from stratops.admission.policies import render_policies
    from stratops.models import KINDS
    from stratops.models.crd import stale_crds, write_crds

    if check:
        stale = stale_crds(directory, KINDS)
        if not policies.exists() or policies.read_text() != render_policies():
            stale.append(str(policies))
        if stale:
            err.print(f"[red]stale generated files:[/] {', '.join(stale)}; run `make crds`")
            raise typer.Exit(1)
        console.print(f"CRDs in {directory} and {policies} are up to date")
        return
    for path in write_crds(directory, KINDS):
        console.print(f"wrote {path}")
    policies.parent.mkdir(parents=True, exist_ok=True)
    policies.write_text(render_policies())
    console.print(f"wrote {policies}")


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="YAML files or directories (read recursively).")],
    base: Annotated[
        list[Path] | None,
        typer.Option(
            "--base",
            help="The merged tree (files or directories) to compare with: "
            "enables the pull-request policies (promotion, live changes, removed monitors).",
        ),
    ] = None,
) -> None:
    """Validate stratops manifests offline, with the messages the API server would give.

    Across documents: a strategy's spec.gates.preLaunch must name a gate of cadence preLaunch.
    With --base, also check what the change does: a strategy promoted to live, or a change to
    a live strategy's trading-relevant spec (image, version, limits, brokers, pod template,
    replicas, kill-switch, throttle), without its pre-launch gate signed for it in the change
    set; a monitor removed from a live strategy. Exit status 1 on any problem.
    Documents of other API groups are skipped.
    """
    from datetime import datetime

    from stratops.gitops import cadence_problems, load, policy_problems
    from stratops.models.validate import validate_files

    missing = [p for p in [*paths, *(base or [])] if not p.exists()]
    if missing:
        err.print(f"[red]no such file or directory:[/] {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    checked, problems = validate_files(paths)
    problems += cadence_problems(load(paths))
    if base:
        problems += policy_problems(load(base), load(paths), datetime.now(UTC))
    for p in problems:
        err.print(f"[red]✗[/] {p}", highlight=False, soft_wrap=True)
    if problems:
        err.print(f"{len(problems)} problem(s) in {checked} stratops document(s)")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {checked} stratops document(s) valid")


@app.command()
def operator(
    namespace: Annotated[
        list[str], typer.Option("--namespace", "-n", help="Namespace (or glob) to serve; repeatable.")
    ] = [],  # noqa: B006
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Serve the whole cluster.")] = False,
    metrics_port: Annotated[int, typer.Option(help="Port of /metrics (0: off).")] = 8080,
    liveness: Annotated[str | None, typer.Option(help="Liveness endpoint, e.g. http://0.0.0.0:8081/healthz.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Serve one shard of the fleet, INDEX/COUNT (e.g. 0/2), with a peering of its own "
            "(STRATOPS_PEERING); default STRATOPS_SHARD, unset: every strategy.",
        ),
    ] = None,
) -> None:
    """Run the operator against the current kubeconfig context (or in-cluster)."""
    import os

    from stratops.lifecycle.shard import parse_shard

    if not namespace and not all_namespaces:
        err.print(
            "[red]say which namespaces to serve:[/] --namespace NS (repeatable, globs allowed) or --all-namespaces"
        )
        raise typer.Exit(2)
    if shard is not None:
        os.environ["STRATOPS_SHARD"] = shard
    try:
        parse_shard(os.environ.get("STRATOPS_SHARD"))
    except ValueError as e:
        err.print(f"[red]--shard / {e}[/]")
        raise typer.Exit(2) from None
    os.environ["STRATOPS_METRICS_PORT"] = str(metrics_port)
    from stratops import handlers  # importing registers the handlers

    handlers.run(namespaces=namespace, clusterwide=all_namespaces, liveness=liveness, verbose=verbose)


@dev.command("up")
def dev_up(
    examples: Annotated[bool, typer.Option(help="Apply the example desk from examples/.")] = True,
    once: Annotated[bool, typer.Option("--once", help="Set up, print how to use it, then stop (for CI).")] = False,
    nodes: Annotated[int, typer.Option(help="Fake KWOK nodes.")] = 1,
    real_node: Annotated[
        bool | None,
        typer.Option(
            "--real-node/--no-real-node",
            help="Run the example strategy as a real container on a real node (kubelet, containerd, runc; needs root "
            "and Docker). Default: when this machine can.",
        ),
    ] = None,
) -> None:
    """Start the local control plane, install the CRDs and the example desk, and wait.

    Press Ctrl-C to stop: every process is stopped and the temporary directory removed.
    """
    from stratops.dev import run_demo

    sys.exit(run_demo(examples=examples, once=once, nodes=nodes, console=console, real_node=real_node))


def _user_errors(fn):  # type: ignore[no-untyped-def]
    """Print CliError and API errors as one line, exit 1: no tracebacks for on-call at 3am."""
    import functools

    import urllib3
    from kubernetes.client.exceptions import ApiException

    from stratops.cli.lifecycle import CliError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        # urllib3 logs every retry as a warning: noise for on-call; the one-line error says it.
        import logging

        logging.getLogger("urllib3").setLevel(logging.ERROR)
        try:
            return fn(*args, **kwargs)
        except CliError as e:
            err.print(f"[red]error:[/] {e}", highlight=False)
            raise typer.Exit(1) from None
        except ApiException as e:
            from stratops.cli.lifecycle import api_message

            hint = " (ask for the RBAC role that allows it)" if e.status == 403 else ""
            err.print(f"[red]error:[/] the API server answered {e.status}: {api_message(e)}{hint}", highlight=False)
            raise typer.Exit(1) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            pool = getattr(e, "pool", None)
            host = f"{pool.scheme}://{pool.host}:{pool.port}" if pool is not None else "the kubeconfig's server"
            err.print(
                f"[red]error:[/] cannot reach the Kubernetes API server at {host} ({type(e).__name__}): "
                "is the cluster up, and is KUBECONFIG's current context the right one? "
                "(`kubectl config current-context`; for the local cluster: `stratops dev up`)",
                highlight=False,
            )
            raise typer.Exit(1) from None

    return wrapper


def _register() -> None:
    from stratops.cli import gates as gt
    from stratops.cli import lifecycle as lc
    from stratops.cli.describe import describe

    for fn in (
        lc.status,
        describe,
        lc.kill,
        lc.throttle,
        lc.rollback,
        lc.resume,
        lc.reconcile,
        lc.promote,
        lc.failover,
        lc.rearm,
    ):
        app.command(fn.__name__)(_user_errors(fn))
    lc.handover_app.command("release")(_user_errors(lc.handover_release))
    app.add_typer(lc.handover_app, name="handover")
    gt.gate_app.command("list")(_user_errors(gt.gate_list))
    gt.gate_app.command("sign")(_user_errors(gt.gate_sign))
    gt.gate_app.command("audit")(_user_errors(gt.gate_audit))
    app.add_typer(gt.gate_app, name="gate")
    from stratops.cli import incidents as inc

    for cmd, fn in (
        ("list", inc.incident_list),
        ("show", inc.incident_show),
        ("ack", inc.incident_ack),
        ("contain", inc.incident_contain),
        ("resolve", inc.incident_resolve),
    ):
        inc.incident_app.command(cmd)(_user_errors(fn))
    app.add_typer(inc.incident_app, name="incident")
    from stratops.cli import runbooks as rb

    for cmd, fn in (
        ("list", rb.runbook_list),
        ("show", rb.runbook_show),
        ("run", rb.runbook_run),
        ("verify", rb.runbook_verify),
        ("history", rb.runbook_history),
    ):
        rb.runbook_app.command(cmd)(_user_errors(fn))
    app.add_typer(rb.runbook_app, name="runbook")
    from stratops.cli import audit as au

    au.audit_app.command("export")(_user_errors(au.audit_export))
    au.audit_app.command("verify")(_user_errors(au.audit_verify))
    app.add_typer(au.audit_app, name="audit")
    from stratops.cli import triage as tr

    app.command("triage")(_user_errors(tr.triage))
    from stratops.cli.drill import drill

    app.command("drill")(_user_errors(drill))


_register()

if __name__ == "__main__":
    app()
