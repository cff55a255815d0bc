"""`make demo` (stratops dev up) sets up a cluster with the CRDs and the example desk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stratops.testing.fixtures import use_existing_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(use_existing_cluster(), reason="starts its own control plane")]


def test_dev_up_once_installs_crds_examples_and_runs_the_operator():
    proc = subprocess.run(
        [sys.executable, "-m", "stratops.cli.main", "dev", "up", "--once"],
        capture_output=True, text=True, timeout=900,  # the first run here builds the strategy's image
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())  # rich wraps long lines
    assert "installed CRDs: auditsegments.stratops.io, gates.stratops.io, incidents.stratops.io, monitors.stratops.io, strategies.stratops.io" in out
    assert "applied 18 example objects" in out
    assert "strategy mean-revert: deployed and Ready" in out  # the operator deployed the example strategy
    assert "export KUBECONFIG=" in out and "nothing left behind" not in out
    assert f"export PATH={Path(sys.executable).parent}:$PATH" in out  # the CLI in a second shell
    if os.environ.get("STRATOPS_REQUIRE_REAL_NODE") == "1":  # CI: the demo's strategy is a real container
        assert "strategy pods: real containers on node" in out, out
    else:
        assert "strategy pods: real containers on node" in out or "strategy pods: KWOK fakes" in out, out
