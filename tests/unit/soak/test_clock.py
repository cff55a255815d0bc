"""The soak's simulated clock step (stratops.testing.clock) in a real child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stratops.testing import clock


def test_the_stepped_clock_replaces_kopf_s_peering_clock(tmp_path: Path) -> None:
    """The soak's clock-step fault: a replica started with the sitecustomize sees its peering
    clock stepped by what the nemesis writes, and nothing else of it."""
    step = tmp_path / "clock"
    clock.step(step, -40)
    probe = (
        "import datetime, time\n"
        "from kopf._core.engines import peering\n"
        "d = (peering.datetime.datetime.now(datetime.UTC) - datetime.datetime.now(datetime.UTC)).total_seconds()\n"
        "print(round(d), round(time.time() - datetime.datetime.now(datetime.UTC).timestamp()))\n"
    )
    env = {**os.environ, clock.ENV: str(step), "PYTHONPATH": str(clock.site_dir(tmp_path / "site"))}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["-40", "0"]
