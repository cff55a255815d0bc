"""The demo desk's history, backfilled into its Prometheus, and the baselines its monitors use.

A desk that has traded for months has 60 days of daily PnL, a week of costs and a day of
signals in its Prometheus before anyone looks at it; a demo started a minute ago has none, and
its band, slippage, PSI and KS monitors could only say "no data" (a finding, never a pass).
So the demo writes that history as OpenMetrics, `promtool tsdb create-blocks-from openmetrics`
turns it into blocks, and the live scrape of the strategy carries on from where it ends.

Every value is drawn from the model the example strategy trades on (stratops.sdk.paper), with
fixed seeds: the history and the baselines agree, as they would for a healthy strategy. Pure:
no cluster, no Prometheus."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

from stratops.sdk.paper import signal_sample

DAY = 86_400.0
#: The baseline's features, most important first (the example app exports the same importances).
TOP_FEATURES = ["zscore", "spread", "momentum", "volume", "volatility"]


@dataclass(frozen=True)
class Labels:
    """The labels the live scrape gives each series (its job and instance as the demo's scrape
    config sets them): backfilled and live samples must be one series, or a query that takes
    one series (the band's) would see only one of the two."""

    strategy: str
    job: str = "strategies"
    instance: str = ""

    def render(self, **extra: str) -> str:
        labels = {"instance": self.instance or self.strategy, "job": self.job, "strategy": self.strategy, **extra}
        return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def daily_pnl_history(days: int, seed: int = 11, mean: float = 1_500.0, sd: float = 4_000.0) -> list[float]:
    """One closing PnL per past day, oldest first: a strategy that makes MEAN a day, give or take SD."""
    rng = random.Random(seed)
    return [round(rng.gauss(mean, sd), 2) for _ in range(days)]


def _days(name: str, labels: str, values: list[float], end: float, every: float) -> Iterator[str]:
    """VALUES[i] held through the day that ends (len(values) - i) days before END, a sample each EVERY s."""
    start = end - len(values) * DAY
    t = start
    while t < end:
        yield f"{name}{labels} {values[int((t - start) // DAY)]} {t:.3f}"
        t += every


def openmetrics(strategy: str, end: float, *, days: int = 63, every: float = 120.0, signal_every: float = 30.0) -> str:
    """The history of STRATEGY up to END (unix seconds) as OpenMetrics text for promtool:
    DAYS days of daily PnL, a week of realised and expected cost, and a day of the signal and its
    z-score feature (the example app's series, examples/monitors' queries)."""
    lab = Labels(strategy)
    out: list[str] = ["# TYPE stratops_strategy_daily_pnl gauge"]
    out += _days("stratops_strategy_daily_pnl", lab.render(), daily_pnl_history(days), end, every)
    for name, value in (("stratops_strategy_realised_cost_bps", 0.4), ("stratops_strategy_expected_cost_bps", 0.3)):
        out.append(f"# TYPE {name} gauge")
        out += _days(name, lab.render(), [value] * 7, end, every)
    samples = int(DAY // signal_every)
    signal = signal_sample(seed=21, samples=samples)
    start = end - samples * signal_every
    out.append("# TYPE stratops_strategy_signal gauge")
    out += [f"stratops_strategy_signal{lab.render()} {v} {start + i * signal_every:.3f}" for i, v in enumerate(signal)]
    out.append("# TYPE stratops_strategy_feature_value gauge")
    out += [
        f"stratops_strategy_feature_value{lab.render(feature='zscore')} {v} {start + i * signal_every:.3f}"
        for i, v in enumerate(signal)
    ]
    out.append("# EOF")
    return "\n".join(out) + "\n"


def baselines(samples: int = 2000) -> dict[str, str]:
    """The monitors' baseline ConfigMap data (examples/baseline.yaml holds them): the signal's and
    the z-score's distribution at launch, and the top features."""
    return {
        "features.json": json.dumps({"zscore": signal_sample(seed=31, samples=samples)}),
        "signal.json": json.dumps(signal_sample(seed=41, samples=samples)),
        "top-features.json": json.dumps(TOP_FEATURES),
    }


def baseline_manifest(strategy: str = "mean-revert") -> str:
    """examples/baseline.yaml: `python -m stratops.testing.history > examples/baseline.yaml`."""
    import yaml

    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{strategy}-baseline", "labels": {"desk": "fx"}},
        "data": baselines(),
    }
    head = (
        "# The baselines of the example drift monitors (02 PSI, 07 KS, 08 top-5 features): the\n"
        "# distribution of the signal and its z-score feature at launch, and the top features.\n"
        "# Generated from the model the example strategy trades on; regenerate with\n"
        "#   python -m stratops.testing.history > examples/baseline.yaml\n"
    )
    return head + yaml.safe_dump(doc, sort_keys=False, width=120)


if __name__ == "__main__":
    print(baseline_manifest(), end="")
