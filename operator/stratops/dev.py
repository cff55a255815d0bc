"""`make demo` / `stratops dev up`: the local control plane with stratops installed on it."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from rich.console import Console

from stratops.k8s.apply import apply, install_crds, load_documents
from stratops.testing.controlplane import ControlPlane, repo_root


def run_demo(*, examples: bool, once: bool, nodes: int, console: Console) -> int:
    root = repo_root()
    if root is None:
        console.print("[red]run `stratops dev up` from a stratops checkout (it needs crds/ and examples/)")
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ControlPlane(nodes=nodes, log=lambda m: console.print(f"[dim]{m}")) as cp:
        api = cp.api_client()
        names = install_crds(api, root / "crds")
        console.print(f"installed CRDs: {', '.join(names)}")
        if examples:
            docs = load_documents([root / "examples"])
            docs = [d for d in docs if str(d.get("apiVersion", "")).startswith("stratops.io/")]
            apply(api, docs, namespace="default")
            console.print(f"applied {len(docs)} example objects to namespace default")
        console.print(
            "\n[bold]The local cluster is up.[/] In another shell:\n"
            f"  export KUBECONFIG={cp.kubeconfig}\n"
            "  kubectl get strategies,monitors,gates,incidents   # if you have kubectl\n"
            "  stratops validate examples/\n"
        )
        if once:
            return 0
        console.print("Press Ctrl-C to stop and clean up.")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    console.print("stopped; nothing left behind")
    return 0
