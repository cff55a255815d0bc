"""`make demo` / `stratops dev up`: the local control plane with stratops running on it."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from kubernetes import client
from rich.console import Console

from stratops import GROUP, VERSION
from stratops.k8s.apply import apply, install_crds, load_documents
from stratops.polling import poll
from stratops.testing.controlplane import (
    ControlPlane,
    free_port,
    kubectl_binary,
    operator_process,
    repo_root,
    stop_process,
    wait_serving_metrics,
)

DEMO_ENV = ".stratops-demo.env"  # in the checkout, while the demo runs: what `make shell` sources
STRATEGY = "mean-revert"  # the example desk's strategy (examples/strategy.yaml)


def demo_env(kubeconfig: Path, bin_dirs: list[Path], drill_url: str | None = None) -> str:
    """The exports a second shell needs to drive the running demo (`make shell` sources them):
    BIN_DIRS hold the stratops CLI and kubectl; DRILL_URL: where `stratops drill` reaches a
    strategy that runs as a host process."""
    import shlex

    path = ":".join(shlex.quote(str(d)) for d in dict.fromkeys(bin_dirs))
    return f'export KUBECONFIG={shlex.quote(str(kubeconfig))}\nexport PATH={path}:"$PATH"\n' + (
        f"export STRATOPS_DRILL_URL={shlex.quote(drill_url)}\n" if drill_url else ""
    )


def real_node_unavailable() -> str | None:
    """Why the demo cannot run the example strategy as a real container here (None: it can)."""
    from stratops.testing import images, realnode

    return realnode.unavailable() or images.docker_unavailable()


def on_real_node(doc: dict[str, Any], image: str) -> dict[str, Any]:
    """The example Strategy as the image built here, on the real node (its selector and toleration)."""
    if doc.get("kind") != "Strategy":
        return doc
    from stratops.testing.realnode import pod_template

    doc = copy.deepcopy(doc)
    spec = doc["spec"]
    spec["image"] = image
    spec.setdefault("podTemplate", {}).update(pod_template())
    return doc


def run_demo(*, examples: bool, once: bool, nodes: int, console: Console, real_node: bool | None = None) -> int:
    root = repo_root()
    if root is None:
        console.print("[red]run `stratops dev up` from a stratops checkout (it needs crds/ and examples/)")
        return 2
    why = real_node_unavailable() if real_node is not False else "turned off (--no-real-node)"
    if real_node and why:
        console.print(f"[red]error:[/] --real-node asked for, but no real node can run here: {why}")
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ControlPlane(nodes=nodes, real_node=why is None, log=lambda m: console.print(f"[dim]{m}")) as cp:
        assert cp.workdir is not None
        api = cp.api_client()
        names = install_crds(api, root / "crds")
        console.print(f"installed CRDs: {', '.join(names)}")
        image = None
        if why is None:
            from stratops.testing import images

            assert cp.node is not None
            console.print(
                "building the example strategy's image and importing it into the real node "
                "(the first build takes a few minutes; later ones are cached)"
            )
            try:
                images.load(
                    cp.node,
                    images.strategy_image(),
                    [f"{images.STRATEGY_REPOSITORY}:1.4.2", f"{images.STRATEGY_REPOSITORY}:crash-1.4.4"],
                )  # the bad-rollout drill
                image = images.STRATEGY_REPOSITORY
            except images.ImageUnavailable as e:
                why = str(e)
                if real_node:
                    console.print(
                        f"[red]error:[/] --real-node asked for, but the strategy's image cannot be built here: {why}"
                    )
                    return 2
        if image is not None:
            assert cp.node is not None
            console.print(f"strategy pods: real containers on node {cp.node.name} (kubelet, containerd, runc)")
        else:
            console.print(
                f"strategy pods: KWOK fakes, the strategy a process on this host playing the pod "
                f"(a real node cannot run here: {why})"
            )
        from stratops.testing.scrape import DeskPrometheus

        prometheus = DeskPrometheus(cp.workdir / "prometheus", "default", STRATEGY)
        console.print(
            "starting Prometheus with the desk's history (60 days of daily PnL, a week of costs, a day of "
            "signals, backfilled with promtool)"
        )
        prometheus.start()
        console.print(f"Prometheus on {prometheus.url} (scrapes the strategy every 5s)")
        metrics, webhook = free_port(), free_port()
        log = cp.workdir / "operator.log"
        assert cp.kubeconfig is not None
        cert, key, ca = cp.serving_certificate("stratops-webhook")
        operator = operator_process(
            cp.kubeconfig,
            ["default"],
            log,
            metrics,
            env={
                "STRATOPS_PROMETHEUS_URL": prometheus.url,
                "STRATOPS_WEBHOOK_PORT": str(webhook),
                "STRATOPS_WEBHOOK_ADDR": "127.0.0.1",
                "STRATOPS_WEBHOOK_HOST": "127.0.0.1",
                "STRATOPS_WEBHOOK_CERT": str(cert),
                "STRATOPS_WEBHOOK_KEY": str(key),
                "STRATOPS_WEBHOOK_CA": str(ca),
            },
        )
        host_strategy: subprocess.Popen[bytes] | None = None
        healthy = True
        try:
            console.print(
                f"operator started (pid {operator.pid}, metrics on http://127.0.0.1:{metrics}/metrics, log {log})"
            )
            # Admission as the chart installs it: the policies in the API server, the webhooks
            # served by this operator.
            from stratops.testing import admission

            client.CoreV1Api(api).patch_namespace("default", {"metadata": {"labels": admission.POLICY_LABEL}})
            enforced = {"matchLabels": admission.POLICY_LABEL}
            wait_serving_metrics(operator, metrics, log)
            admission.install(api, f"https://127.0.0.1:{webhook}", ca, enforced, enforced)
            console.print("admission policies and webhooks enforced (commands and signatures attributable, four eyes)")
            if examples:
                docs = example_documents(root)
                if image is not None:
                    docs = [on_real_node(d, image) for d in docs]
                # The monitors last: evaluated before Prometheus has the strategy's series, each
                # would find "no data" (a finding, never a pass) and open an incident.
                desk = [d for d in docs if d.get("kind") != "Monitor"]
                monitors = [d for d in docs if d.get("kind") == "Monitor"]
                apply(api, desk, namespace="default")
                if not _wait_running(api, operator, console):
                    console.print(f"[red]the example strategy did not reach Running; operator log:[/]\n{_tail(log)}")
                    return 1
                if image is None:
                    host_strategy = _host_strategy(api, cp.kubeconfig, cp.workdir, prometheus, console)
                if not _wait_scraped(api, prometheus, monitors, console):
                    return 1
                apply(api, monitors, namespace="default")
                console.print(
                    f"applied {len(docs)} example objects to namespace default "
                    f"({len(monitors)} monitors once Prometheus had their data)"
                )
                healthy = _report_at_rest(api, operator, monitors, console)
                if not healthy:
                    console.print(f"[yellow]the desk is not at rest; operator log:[/]\n{_tail(log)}")
            env_file = root / DEMO_ENV
            drill_url = f"http://{prometheus.host_target}" if prometheus.host_target else None
            kubectl = kubectl_binary()
            bin_dirs = [Path(sys.executable).parent, *([kubectl.parent] if kubectl else [])]
            env_file.write_text(demo_env(cp.kubeconfig, bin_dirs, drill_url))
            console.print(
                "\n[bold]stratops is running on the local cluster.[/] In another shell, `make shell` (or):\n"
                f"  export KUBECONFIG={cp.kubeconfig}\n"
                f"  export PATH={':'.join(map(str, dict.fromkeys(bin_dirs)))}:$PATH\n"
                "      # the stratops CLI (make setup's virtualenv)"
                + (" and kubectl (hack/build-kubectl.sh)\n" if kubectl else "\n")
                + "  stratops status\n"
                + (
                    f"  export STRATOPS_DRILL_URL={drill_url}   # the strategy process, for drills\n"
                    if drill_url
                    else ""
                )
                + "  stratops drill broker-outage                         # a real breach, step by step (stratops "
                "drill --help)\n"
                "  stratops kill mean-revert --reason 'drill'          # HALTED, then scale to 0\n"
                "  kubectl get strategies,monitors,gates,incidents\n"
                + (
                    "  kubectl logs -f deploy/mean-revert                   # the real process: HALTED, its ack, its "
                    "exit\n"
                    if image is not None
                    else ""
                )
            )
            if not once:  # --once: set up, show the desk at rest, and stop
                console.print("Press Ctrl-C to stop and clean up.")
                try:
                    while not stop.wait(1.0):
                        if operator.poll() is not None:
                            console.print(f"[red]the operator exited ({operator.returncode}); log:[/]\n{_tail(log)}")
                            return 1
                        try:
                            prometheus.refresh(api)  # a rollout or a resume makes new pods
                        except Exception as e:  # the API server is busy: next second
                            console.print(f"[dim]scrape targets not refreshed: {e}")
                except KeyboardInterrupt:
                    pass
        finally:
            stop_process(host_strategy, 15)
            stop_process(operator, 15)
            prometheus.stop()
            (root / DEMO_ENV).unlink(missing_ok=True)  # its cluster is gone: `make shell` says so
    console.print("stopped; nothing left behind")
    return 0 if healthy or not once else 1  # --once: a check, failed when the desk was not at rest


def example_documents(root: Path) -> list[dict[str, Any]]:
    """The example desk: every stratops object in examples/, and the ConfigMaps (the monitors'
    baselines); not the CI workflow beside them."""
    return [
        d
        for d in load_documents([root / "examples"])
        if str(d.get("apiVersion", "")).startswith(f"{GROUP}/")
        or (d.get("apiVersion"), d.get("kind")) == ("v1", "ConfigMap")
    ]


def _host_strategy(
    api: client.ApiClient, kubeconfig: Path, workdir: Path, prometheus: Any, console: Console
) -> subprocess.Popen[bytes]:
    """The example strategy as a process on this host, playing the (KWOK) pod: it follows the
    control document, acknowledges as that pod, and serves the same metrics on a loopback port."""
    from stratops.lifecycle.manifests import LABEL_STRATEGY

    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector=f"{LABEL_STRATEGY}={STRATEGY}").items
    pod = sorted(p.metadata.name for p in pods if p.status.phase == "Running")[0]
    port = free_port()
    app = Path(__file__).resolve().parents[2] / "examples" / "strategy-app" / "paper_mean_revert.py"
    with open(workdir / "strategy.log", "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(app),
                "--namespace",
                "default",
                "--strategy",
                STRATEGY,
                "--pod",
                pod,
                "--metrics-port",
                str(port),
            ],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prometheus.host_target = f"127.0.0.1:{port}"
    prometheus.write_targets([prometheus.host_target])
    console.print(
        f"strategy process: examples/strategy-app on this host as pod {pod} (pid {proc.pid}, "
        f"metrics on http://127.0.0.1:{port}/metrics, log {workdir / 'strategy.log'})"
    )
    return proc


def _wait_scraped(
    api: client.ApiClient, prometheus: Any, monitors: list[dict[str, Any]], console: Console, timeout: float = 180
) -> bool:
    """Until Prometheus has data for every query of MONITORS (a rate needs two scrapes)."""
    from stratops.testing.scrape import monitor_queries

    queries = monitor_queries(monitors)
    said, targets, missing = None, [], list(queries)

    def scraped() -> bool:
        nonlocal said, targets, missing
        targets = prometheus.refresh(api)
        missing = prometheus.missing(queries)
        note = (
            f"  Prometheus: waiting for the strategy's series: {len(missing)} of {len(queries)} "
            "monitor queries have no data yet"
        )
        if missing and note != said:
            console.print(note)
            said = note
        return not missing

    if poll(scraped, timeout):
        console.print(f"  Prometheus: data for all {len(queries)} monitor queries (scraping {', '.join(targets)})")
        return True
    console.print(
        f"[red]Prometheus has no data after {timeout:.0f}s for:[/] "
        + "; ".join(missing)
        + f"\n(targets: {targets or 'none'}; its log: {prometheus.server.workdir}/prometheus.log)"
    )
    return False


def desk_at_rest(monitors: list[dict[str, Any]], incidents: list[dict[str, Any]]) -> list[str]:
    """What keeps the desk from being at rest: monitors not yet evaluated, breaching or stale,
    and open incidents ([] is healthy)."""
    problems = []
    for m in monitors:
        name, st = m["metadata"]["name"], m.get("status") or {}
        if st.get("problem"):
            problems.append(f"{name}: {st['problem']}")
        elif not st.get("lastEvaluation"):
            problems.append(f"{name}: not evaluated yet")
        elif st.get("breaching") or st.get("stale"):
            problems.append(f"{name}: {'stale' if st.get('stale') else 'breaching'}: {st.get('detail')}")
    problems += [
        f"incident {i['metadata']['name']} open: {(i.get('spec') or {}).get('summary')}"
        for i in incidents
        if (i.get("status") or {}).get("phase") != "Resolved"
    ]
    return problems


def _report_at_rest(
    api: client.ApiClient,
    operator: subprocess.Popen[bytes],
    applied: list[dict[str, Any]],
    console: Console,
    timeout: float = 120,
) -> bool:
    """Wait for every monitor's first evaluation, then show each one's verdict and the desk's state."""
    from rich.table import Table

    custom = client.CustomObjectsApi(api)
    names = {m["metadata"]["name"] for m in applied}
    monitors: list[dict[str, Any]] = []

    def all_evaluated() -> bool:
        nonlocal monitors
        monitors = [
            m
            for m in custom.list_namespaced_custom_object(GROUP, VERSION, "default", "monitors")["items"]
            if m["metadata"]["name"] in names
        ]
        return sum(1 for m in monitors if (m.get("status") or {}).get("lastEvaluation")) == len(names)

    poll(all_evaluated, timeout, stop=lambda: operator.poll() is not None)
    incidents = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "incidents")["items"]
    strategy = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "strategies", STRATEGY)
    table = Table(title="the example desk's monitors, first evaluation", title_justify="left")
    for col in ("MONITOR", "LAYER", "VALUE", "VERDICT"):
        table.add_column(col, no_wrap=col != "VALUE")
    for m in sorted(monitors, key=lambda m: m["metadata"]["name"]):
        st = m.get("status") or {}
        verdict = (
            "[red]stale"
            if st.get("stale")
            else "[red]breaching"
            if st.get("breaching")
            else "[green]ok"
            if st.get("lastEvaluation")
            else "[yellow]not evaluated"
        )
        table.add_row(
            m["metadata"]["name"].removeprefix(f"{STRATEGY}-"), m["spec"]["layer"], st.get("lastValue") or "", verdict
        )
    console.print(table)
    problems = desk_at_rest(monitors, incidents)
    sst = strategy.get("status") or {}
    state = f"{STRATEGY}: {sst.get('phase')}, trading {sst.get('tradingState')} ({strategy['spec'].get('mode')} mode)"
    if problems:
        console.print(f"[yellow]desk not at rest:[/] {state}\n  " + "\n  ".join(problems))
        return False
    console.print(
        f"[green]desk at rest:[/] {len(monitors)}/{len(names)} monitors evaluated, none breaching or stale; "
        f"no incident open; {state}"
    )
    return True


def _wait_running(
    api: client.ApiClient, operator: subprocess.Popen[bytes], console: Console, timeout: float = 120
) -> bool:
    custom = client.CustomObjectsApi(api)
    last = None

    def ready() -> bool:
        nonlocal last
        st = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "strategies", STRATEGY).get("status") or {}
        phase = st.get("phase")
        if phase != last:
            console.print(f"  strategy {STRATEGY}: {phase or 'waiting for the operator'}")
            last = phase
        if any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []):
            console.print(f"  strategy {STRATEGY}: deployed and Ready ({phase}, trading {st.get('tradingState')})")
            return True
        return False

    return bool(poll(ready, timeout, 0.5, stop=lambda: operator.poll() is not None))


def _tail(path: Path, lines: int = 30) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
