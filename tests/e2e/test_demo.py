"""`make demo` (stratops dev up) sets up a cluster with the CRDs and the example desk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stratops.testing.fixtures import use_existing_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(use_existing_cluster(), reason="starts its own control plane")]


ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_sets_up_the_desk_and_make_shell_drives_it(tmp_path):
    """`stratops dev up` as `make demo` runs it (until SIGTERM), and `make shell`'s script from a
    second shell that has neither KUBECONFIG nor the CLI on its PATH."""
    from stratops.dev import DEMO_ENV
    from stratops.testing.wait import wait_for

    log = tmp_path / "demo.log"
    with log.open("w") as f:
        demo = subprocess.Popen(
            [sys.executable, "-m", "stratops.cli.main", "dev", "up"], stdout=f, stderr=subprocess.STDOUT
        )
    try:

        def out() -> str:
            return " ".join(log.read_text().split())  # rich wraps long lines

        # the first run here builds the strategy's image
        wait_for(
            lambda: "Press Ctrl-C" in out() or demo.poll() is not None, timeout=900, what="the demo up and waiting"
        )
        assert demo.poll() is None, out()
        text = out()
        assert (
            "installed CRDs: auditsegments.stratops.io, gates.stratops.io, incidents.stratops.io, "
            "monitors.stratops.io, strategies.stratops.io"
        ) in text
        assert "applied 19 example objects" in text
        assert "strategy mean-revert: deployed and Ready" in text  # the operator deployed the example strategy
        # A real Prometheus with the desk's history: every monitor evaluated on real data, all green.
        assert "Prometheus: data for all 14 monitor queries" in text, text
        assert (
            "desk at rest: 12/12 monitors evaluated, none breaching or stale; no incident open; "
            "mean-revert: Running, trading ACTIVE (paper mode)"
        ) in text, text
        assert "export KUBECONFIG=" in text and f"export PATH={Path(sys.executable).parent}:" in text
        if os.environ.get("STRATOPS_REQUIRE_REAL_NODE") == "1":  # CI: the demo's strategy is a real container
            assert "strategy pods: real containers on node" in text, text
        else:
            assert "strategy pods: real containers on node" in text or "strategy pods: KWOK fakes" in text, text

        bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "80"}
        shell = subprocess.run(
            ["bash", str(ROOT / "hack" / "demo-shell.sh"), "stratops", "status"],
            capture_output=True,
            text=True,
            env=bare,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stdout + shell.stderr
        assert shell.stdout.split()[:1] == ["STRATEGY"] and "mean-revert" in shell.stdout, shell.stdout
        [row] = [line.split() for line in shell.stdout.splitlines() if line.startswith("mean-revert")]
        assert row[5:7] == ["ACTIVE", "-"], shell.stdout  # trading, and no incident open
        incidents = subprocess.run(
            ["bash", str(ROOT / "hack" / "demo-shell.sh"), "stratops", "incident", "list", "-o", "json"],
            capture_output=True,
            text=True,
            env=bare,
            timeout=60,
        )
        assert incidents.returncode == 0 and json.loads(incidents.stdout) == [], incidents.stdout + incidents.stderr
        # the demo's hint, as printed: kubectl (the pinned build) is on the second shell's PATH too
        hint = "kubectl get strategies,monitors,gates,incidents"
        assert hint in text, text
        listed = subprocess.run(
            ["bash", str(ROOT / "hack" / "demo-shell.sh"), *hint.split()],
            capture_output=True,
            text=True,
            env=bare,
            timeout=60,
        )
        assert listed.returncode == 0 and "strategy.stratops.io/mean-revert" in listed.stdout, (
            listed.stdout + listed.stderr
        )
        assert "monitor.stratops.io/mean-revert-data-bar-age" in listed.stdout, listed.stdout
    finally:
        demo.terminate()  # what Ctrl-C does: every process stopped, the directory removed
        code = demo.wait(timeout=120)
    assert code == 0 and "stopped; nothing left behind" in log.read_text(), log.read_text()[-3000:]
    assert not (ROOT / DEMO_ENV).exists()
    gone = subprocess.run(
        ["bash", str(ROOT / "hack" / "demo-shell.sh"), "true"], capture_output=True, text=True, env=bare, timeout=30
    )
    assert gone.returncode == 1 and "no demo is running" in gone.stderr


def test_make_demo_without_a_real_node_runs_the_strategy_as_a_host_process(tmp_path):
    """Where no real node can run (not root, no containerd), the demo says so, runs the example
    strategy as a process on the host playing the KWOK pod, and the desk is just as healthy: the
    same metrics, scraped from its loopback port."""
    log = tmp_path / "demo.log"
    with log.open("w") as f:
        res = subprocess.run(
            [sys.executable, "-m", "stratops.cli.main", "dev", "up", "--once", "--no-real-node"],
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    text = " ".join(log.read_text().split())
    assert res.returncode == 0, text[-3000:]
    assert (
        "strategy pods: KWOK fakes, the strategy a process on this host playing the pod "
        "(a real node cannot run here: turned off (--no-real-node))"
    ) in text, text
    assert "strategy process: examples/strategy-app on this host as pod mean-revert-" in text, text
    assert "Prometheus: data for all 14 monitor queries (scraping 127.0.0.1:" in text, text
    assert (
        "desk at rest: 12/12 monitors evaluated, none breaching or stale; no incident open; "
        "mean-revert: Running, trading ACTIVE (paper mode)"
    ) in text, text
    assert "export STRATOPS_DRILL_URL=http://127.0.0.1:" in text and "stopped; nothing left behind" in text
