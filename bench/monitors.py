"""Monitor evaluation cost: one sweep of the 12 example monitors x N strategies (CPU time and
peak memory), and PSI / KS on 10^6-sample windows. Floors: the same data through one plain
numpy pass (np.sort), so the ratio is the statistic's own cost."""

from __future__ import annotations

import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import yaml

from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import StrategySpec
from stratops.monitors import statistics as S
from stratops.monitors.evaluate import evaluate
from stratops.monitors.prometheus import Series

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, tzinfo=UTC)


class SyntheticSource:
    """Answers every query with plausible series of realistic size (no network)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def query(self, expr, at=None):  # type: ignore[no-untyped-def]
        if "symbol" in expr or "feature_importance" in expr:
            return [
                Series({"symbol": f"S{i}", "feature": f"f{i}"}, [(NOW, float(self.rng.random()))]) for i in range(10)
            ]
        return [Series({}, [(NOW, float(self.rng.random()))])]

    def query_range(self, expr, start, end, step_s):  # type: ignore[no-untyped-def]
        n = max(2, min(int((end - start).total_seconds() / step_s), 2000))
        if "feature_value" in expr:
            return [Series({"feature": f"f{i}"}, [(NOW, v) for v in self.rng.normal(size=n)]) for i in range(10)]
        return [Series({}, [(NOW - timedelta(seconds=i), v) for i, v in enumerate(self.rng.normal(size=n))])]


def main(rows: list[tuple[str, str, str]], strategies: int = 1000) -> None:
    import json

    monitors = [
        MonitorSpec.model_validate(yaml.safe_load(p.read_text())["spec"])
        for p in sorted((ROOT / "examples" / "monitors").glob("*.yaml"))
    ]
    strategy = StrategySpec.model_validate(yaml.safe_load((ROOT / "examples" / "strategy.yaml").read_text())["spec"])
    rng = np.random.default_rng(0)
    src = SyntheticSource(rng)
    baselines = {
        "features.json": json.dumps({f"f{i}": list(rng.normal(size=2000)) for i in range(10)}),
        "signal.json": json.dumps(list(rng.normal(size=2000))),
        "top-features.json": json.dumps([f"S{i}" for i in range(5)]),
    }
    load = lambda name, key: baselines[key]  # noqa: E731
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    stale = 0
    for _ in range(strategies):
        for m in monitors:
            stale += evaluate(m, strategy, src, load, NOW, 0).stale
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = strategies * len(monitors)
    rows.append(
        (
            f"sweep: {len(monitors)} monitors x {strategies} strategies (CPU s)",
            f"{cpu:.1f}",
            f"{cpu / n * 1e3:.2f} ms/evaluation, wall {wall:.1f}s, peak RSS {rss:.0f} MiB, stale {stale}",
        )
    )
    big_a, big_b = rng.normal(size=1_000_000), rng.normal(0.05, 1, size=1_000_000)
    t = time.perf_counter()
    np.sort(big_b)
    floor = time.perf_counter() - t
    for label, fn in (("PSI", lambda: S.psi(big_a, big_b)), ("KS", lambda: S.ks(big_a, big_b, 0.15))):
        t = time.perf_counter()
        r = fn()
        took = time.perf_counter() - t
        rows.append(
            (
                f"{label} on 10^6 vs 10^6 samples (s)",
                f"{took:.3f}",
                f"{took / floor:.1f}x one np.sort ({floor:.3f}s); value {r.value:.4f}",
            )
        )


if __name__ == "__main__":
    out: list[tuple[str, str, str]] = []
    main(out)
    for row in out:
        print(*row, sep="  ")
