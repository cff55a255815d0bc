"""A simulated mid price for paper trading and drills: a mean-reverting walk and the z-score
signal a mean-reversion strategy trades on.

The example strategy (examples/strategy-app) trades on it, and the demo's desk history
(stratops.testing.history) is drawn from it, so the monitors' baselines and today's live data
come from one model: at rest the drift monitors (PSI, KS) see the same distribution."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class SimulatedMid:
    """p <- p + N(0, vol) + pull * (level - p); the signal is (EMA of p - p) / vol."""

    seed: int = 7
    level: float = 1.10
    vol: float = 0.0005
    pull: float = 0.05
    smoothing: float = 0.05
    price: float = field(init=False)
    mean: float = field(init=False)
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.price = self.mean = self.level
        self.rng = random.Random(self.seed)

    @property
    def signal(self) -> float:
        """Standard deviations (of one step) the price sits below its moving mean."""
        return (self.mean - self.price) / self.vol

    def step(self) -> float:
        """The next mid price."""
        self.price += self.rng.gauss(0, self.vol) + self.pull * (self.level - self.price)
        self.mean = (1 - self.smoothing) * self.mean + self.smoothing * self.price
        return self.price


def signal_sample(seed: int, samples: int, every: int = 300, burn_in: int = 200) -> list[float]:
    """SAMPLES values of the signal, one every EVERY steps (300: 30 s of the example's 0.1 s loop,
    the step at which the drift monitors read their window), after BURN_IN steps. Nearer samples
    are correlated, and would make the KS statistic of a healthy window look like drift."""
    mid = SimulatedMid(seed=seed)
    for _ in range(burn_in):
        mid.step()
    out = []
    for _ in range(samples):
        for _ in range(every):
            mid.step()
        out.append(round(mid.signal, 4))
    return out
