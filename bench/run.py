"""stratops benchmarks: prints a table of figures, each with a ratio to a floor measured in the
same run, so that the machine's noise cancels out. Run with `make bench` (or
`python bench/run.py [--quick]`); progress goes to stderr.

Figures:
- local control plane start (etcd, apiserver, controllers, KWOK node Ready)
- one sweep of the 12 example monitors x 1,000 strategies, PSI and KS on 10^6 samples (bench/monitors.py)
- the operator as a process at 1, 100 and 1,000 strategies with the 12 example monitors each
  (bench/fleet.py): create -> Running, command-, decision- and breach-to-halt, CPU, RSS and
  API requests per strategy per minute at steady state
- real strategy pods on the real node (bench/real_pods.py, where this machine can run one): the
  control document's propagation by API watch and by mounted file, command-to-halt with a real
  container against a KWOK pod, and the real process's acknowledgement
- the warm handover against Recreate (bench/handover.py, on the real node too): time with no
  trading version during a good and a failed rollout, and the handover's duration

--quick: 100 strategies in the sweep, fleet sizes 1 and 20, 5 samples, 30 s windows (a few
minutes). The full run (330 s windows: longer than the monitors' 5-minute status refresh) takes
about 40 minutes on 2 cores.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from stratops.testing import ControlPlane


def main() -> int:
    quick = "--quick" in sys.argv
    rows: list[tuple[str, str, str]] = []
    starts = []
    for _ in range(2):
        t = time.perf_counter()
        with ControlPlane(log=lambda m: None):
            starts.append(time.perf_counter() - t)
    rows.append(("control plane start (s, median of 2)", f"{statistics.median(starts):.2f}", "-"))

    import fleet
    import monitors

    fleet.progress("monitor sweep (synthetic source)")
    monitors.main(rows, strategies=100 if quick else 1000)
    try:
        fleet.main(
            rows,
            sizes=(1, 20) if quick else (1, 100, 1000),
            samples=5 if quick else 15,
            window=30.0 if quick else 330.0,
        )
    finally:
        fleet.write_out(Path(__file__).resolve().parent / "out")  # fleet.json and the plots

    import real_pods

    if (why := real_pods.unavailable()) is None:
        real_pods.run(rows, samples=5 if quick else 15)
        import handover

        handover.run(rows, samples=2 if quick else 10)
    else:
        rows.append(("real pods (bench/real_pods.py)", "not run", why))
        rows.append(("warm handover (bench/handover.py)", "not run", why))

    real_pods.print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
