"""An example strategy that uses the stratops SDK: mean reversion, paper-traded on a simulated feed.

In a pod started by stratops (the image examples/strategy-app/Dockerfile builds) it finds its
identity in the environment and follows its control document through a watch on the API, as
the ServiceAccount the operator made for it. For a local run against a cluster, name them:

    python examples/strategy-app/paper_mean_revert.py --namespace desk --strategy mean-revert --pod local-0

It obeys the control document: HALTED cancels its working orders and sends nothing new;
REDUCING only trades the position down; limits cap position and order rate, and the pre-trade
controls (instruments, venues, order size and value, price collar, message rate) are checked
against the simulated mid price. Each new control generation is acknowledged after it is applied.
On SIGTERM (a scale to 0, a node drain) it cancels its working orders and exits 0.

In a pod it also answers the kubelet's probes and Prometheus on STRATOPS_PROBE_PORT (8080):
/ready once the first control document is applied, /live, /metrics with the series the twelve
example monitors query. Two switches make it misbehave, for drills and tests:
EXAMPLE_IGNORE_HALTED=1 (it never applies, nor acknowledges, HALTED: a hung process) and a
version beginning with "crash" (it exits at once: a crash-looping release).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from dataclasses import dataclass, field

from stratops.models.strategy import TradingState
from stratops.sdk import ApiAcknowledger, ApiControl, Order, StrategyControl, serve


@dataclass
class PaperBook:
    """Simulated fills at the mid price; one working order at most."""

    position: float = 0.0
    cash: float = 0.0
    working: list[Order] = field(default_factory=list)
    fills: int = 0

    def cancel_all(self) -> int:
        n = len(self.working)
        self.working.clear()
        return n

    def fill(self, order: Order, price: float) -> None:
        signed = order.quantity if order.side == "buy" else -order.quantity
        self.position += signed
        self.cash -= signed * price
        self.fills += 1


class MeanRevert:
    def __init__(self, control: StrategyControl, book: PaperBook, seed: int = 7, lot: float = 10_000,
                 instrument: str = "EURUSD", venue: str = "LMAX") -> None:
        self.control, self.book, self.lot = control, book, lot
        self.instrument, self.venue = instrument, venue
        self.rng = random.Random(seed)
        self.price, self.mean = 1.10, 1.10
        self.rejected: list[str] = []
        control.on_change(self._on_control)

    def _on_control(self, doc) -> None:  # type: ignore[no-untyped-def]
        if doc.trading_state == TradingState.HALTED:
            self.book.cancel_all()

    def step(self) -> None:
        self.control.poll()
        self.price += self.rng.gauss(0, 0.0005) + 0.05 * (1.10 - self.price)
        self.mean = 0.95 * self.mean + 0.05 * self.price
        signal_ = (self.mean - self.price) / 0.0005
        state = self.control.applied.trading_state if self.control.applied else None
        if state == TradingState.REDUCING and self.book.position:
            side, qty = ("sell" if self.book.position > 0 else "buy"), min(self.lot, abs(self.book.position))
        elif abs(signal_) > 1:
            side, qty = ("buy" if signal_ > 0 else "sell"), self.lot
        else:
            return
        order = Order(side, qty, instrument=self.instrument, venue=self.venue)  # market order, filled at the mid
        decision = self.control.check(order, self.book.position, reference_price=self.price)
        if decision.allowed:
            self.book.fill(order, self.price)
        else:
            self.rejected.append(decision.reason)


class Metrics:
    """The series the example monitors query (examples/monitors), kept plausible and healthy."""

    def __init__(self, strategy: str) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        lab = {"strategy": strategy}
        self.lab = lab
        self.bar_ts = Gauge("stratops_strategy_last_bar_timestamp_seconds", "Time of the last bar.", ["strategy", "symbol"])
        self.bars = Counter("stratops_strategy_bars_total", "Bars received.", ["strategy", "feed"])
        self.feature = Gauge("stratops_strategy_feature_value", "Latest feature value.", ["strategy", "feature"])
        self.importance = Gauge("stratops_strategy_feature_importance", "Feature importance.", ["strategy", "feature"])
        self.health = Gauge("stratops_strategy_healthcheck_up", "1 while the strategy is healthy.", ["strategy"])
        self.order_latency = Histogram("stratops_strategy_order_latency_seconds", "Order round trip.", ["strategy"])
        self.signal_latency = Histogram("stratops_strategy_signal_latency_seconds", "Bar to signal.", ["strategy"])
        self.queue = Gauge("stratops_strategy_queue_depth", "Unprocessed messages.", ["strategy"])
        self.signal = Gauge("stratops_strategy_signal", "Latest signal.", ["strategy"])
        self.pnl = Gauge("stratops_strategy_daily_pnl", "Today's PnL.", ["strategy"])
        self.pnl_symbol = Gauge("stratops_strategy_daily_pnl_by_symbol", "Today's PnL by symbol.", ["strategy", "symbol"])
        self.cost = Gauge("stratops_strategy_realised_cost_bps", "Realised cost.", ["strategy"])
        self.expected_cost = Gauge("stratops_strategy_expected_cost_bps", "Expected cost (the cost model).", ["strategy"])
        self.health.labels(**lab).set(1)
        for i, f in enumerate(("zscore", "spread", "momentum", "volume", "volatility", "carry")):
            self.importance.labels(feature=f, **lab).set(1.0 / (i + 1))

    def bar(self, strategy: "MeanRevert", signal_: float) -> None:
        lab = self.lab
        self.bar_ts.labels(symbol=strategy.instrument, **lab).set(time.time())
        for feed in ("primary", "backup"):
            self.bars.labels(feed=feed, **lab).inc()
        self.feature.labels(feature="zscore", **lab).set(signal_)
        self.signal.labels(**lab).set(signal_)
        self.signal_latency.labels(**lab).observe(0.002)
        self.order_latency.labels(**lab).observe(0.004)
        self.queue.labels(**lab).set(0)
        pnl = strategy.book.cash + strategy.book.position * strategy.price
        self.pnl.labels(**lab).set(pnl)
        self.pnl_symbol.labels(symbol=strategy.instrument, **lab).set(pnl)
        self.cost.labels(**lab).set(0.4)
        self.expected_cost.labels(**lab).set(0.3)


class IgnoresHalted:
    """A control source that never shows HALTED: the hung process of a drill (it goes on with
    the last document it applied, and never acknowledges the halt)."""

    def __init__(self, source) -> None:  # type: ignore[no-untyped-def]
        self.source, self.last = source, None
        self.changed = getattr(source, "changed", None)

    def read(self):  # type: ignore[no-untyped-def]
        doc = self.source.read()
        if doc is not None and doc.trading_state != TradingState.HALTED:
            self.last = doc
        return self.last


def main(argv: list[str] | None = None) -> int:
    import os

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--namespace")
    p.add_argument("--strategy")
    p.add_argument("--pod")
    p.add_argument("--steps", type=int, default=0, help="stop after N steps (0: run until SIGTERM)")
    p.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args(argv)
    version = os.environ.get("STRATOPS_VERSION", "")
    if version.startswith("crash"):
        print(f"version {version}: exiting at start (a crash-looping release, on purpose)", flush=True)
        return 3
    book = PaperBook()
    in_pod = not (args.namespace and args.strategy and args.pod)
    if not in_pod:
        control = StrategyControl(args.pod, ApiControl(args.namespace, args.strategy),
                                  ApiAcknowledger(args.namespace, args.strategy),
                                  position=lambda: book.position, open_orders=lambda: len(book.working))
    else:
        control = StrategyControl.from_environment(position=lambda: book.position, open_orders=lambda: len(book.working))
    if os.environ.get("EXAMPLE_IGNORE_HALTED") == "1":
        control.source = IgnoresHalted(control.source)
    strategy = MeanRevert(control, book)
    control.on_change(lambda doc: print(f"control generation {doc.generation}: {doc.trading_state.value}"
                                        + (f" ({doc.reason})" if doc.reason else ""), flush=True))
    metrics = None
    if in_pod:
        metrics = Metrics(os.environ.get("STRATOPS_STRATEGY", "strategy"))
        serve(control, int(os.environ.get("STRATOPS_PROBE_PORT", "8080")))
        control.run_in_background(0.2)  # HALTED applied as soon as the watch sees it, between steps too
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    n = 0
    while running and (args.steps == 0 or n < args.steps):
        strategy.step()
        if metrics is not None:
            metrics.bar(strategy, (strategy.mean - strategy.price) / 0.0005)
        n += 1
        time.sleep(args.interval)
    cancelled = book.cancel_all()
    control.acknowledge_exit()
    print(f"stopping: cancelled {cancelled} working orders; steps={n} fills={book.fills} position={book.position:g} "
          f"rejected={len(strategy.rejected)}; exiting cleanly", flush=True)
    control.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
