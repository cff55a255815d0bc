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
example monitors query. Switches make it misbehave, for drills and tests:
EXAMPLE_IGNORE_HALTED=1 (it never applies, nor acknowledges, HALTED: a hung process), a
version beginning with "crash" (it exits at once: a crash-looping release), and the faults
`stratops drill` turns on through the probe port (class Faults).
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
from stratops.sdk.paper import SimulatedMid


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
    """One instrument: buy below the moving mean, sell above it, on a simulated mid."""

    def __init__(
        self,
        control: StrategyControl,
        book: PaperBook,
        seed: int = 7,
        lot: float = 10_000,
        instrument: str = "EURUSD",
        venue: str = "LMAX",
    ) -> None:
        self.control, self.book, self.lot = control, book, lot
        self.instrument, self.venue = instrument, venue
        self.mid = SimulatedMid(seed=seed)
        self.rejected: list[str] = []
        control.on_change(self._on_control)

    @property
    def price(self) -> float:
        return self.mid.price

    @property
    def pnl(self) -> float:
        return self.book.cash + self.book.position * self.mid.price

    def _on_control(self, doc) -> None:  # type: ignore[no-untyped-def]
        if doc.trading_state == TradingState.HALTED:
            self.book.cancel_all()

    def step(self, poll: bool = True) -> None:
        if poll:
            self.control.poll()
        self.mid.step()
        signal_ = self.mid.signal
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


#: The basket: twelve FX pairs, so that no one name makes much of the day's PnL (the
#: concentration monitor's 25%, which eight names came within a point of in the first minute).
#: The Strategy's riskLimits.instruments lists the same twelve.
INSTRUMENTS = (
    "EURUSD",
    "GBPUSD",
    "USDJPY",
    "AUDUSD",
    "USDCAD",
    "USDCHF",
    "NZDUSD",
    "EURGBP",
    "EURJPY",
    "GBPJPY",
    "AUDJPY",
    "EURCHF",
)


class Basket:
    """MeanRevert on each instrument, stepped in a new random order each time: the order rate
    limit is shared, and a fixed order would give the first names every order it allows."""

    def __init__(self, control: StrategyControl, instruments: tuple[str, ...] = INSTRUMENTS, seed: int = 7) -> None:
        self.control = control
        self.legs = [
            MeanRevert(control, PaperBook(), seed=seed + i, instrument=name) for i, name in enumerate(instruments)
        ]
        self.rng = random.Random(seed)

    @property
    def position(self) -> float:
        return sum(abs(leg.book.position) for leg in self.legs)

    @property
    def working(self) -> int:
        return sum(len(leg.book.working) for leg in self.legs)

    @property
    def rejected(self) -> list[str]:
        return [r for leg in self.legs for r in leg.rejected]

    def cancel_all(self) -> int:
        return sum(leg.book.cancel_all() for leg in self.legs)

    def book(self) -> dict[str, float]:
        """Signed position by instrument: what a warm handover carries to the next version."""
        return {leg.instrument: leg.book.position for leg in self.legs}

    def take_book(self, book: dict[str, float]) -> None:
        """Start from BOOK (handed over by the version this one replaces), marked at the mid."""
        for leg in self.legs:
            leg.book.position = book.get(leg.instrument, 0.0)
            leg.book.cash = -leg.book.position * leg.price

    def step(self) -> None:
        self.control.poll()
        for leg in self.rng.sample(self.legs, len(self.legs)):
            leg.step(poll=False)


class Metrics:
    """The series the example monitors query (examples/monitors), kept plausible and healthy."""

    def __init__(self, strategy: str) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        lab = {"strategy": strategy}
        self.lab = lab
        self.bar_ts = Gauge(
            "stratops_strategy_last_bar_timestamp_seconds", "Time of the last bar.", ["strategy", "symbol"]
        )
        self.bars = Counter("stratops_strategy_bars_total", "Bars received.", ["strategy", "feed"])
        self.feature = Gauge("stratops_strategy_feature_value", "Latest feature value.", ["strategy", "feature"])
        self.importance = Gauge("stratops_strategy_feature_importance", "Feature importance.", ["strategy", "feature"])
        self.health = Gauge("stratops_strategy_healthcheck_up", "1 while the strategy is healthy.", ["strategy"])
        self.order_latency = Histogram("stratops_strategy_order_latency_seconds", "Order round trip.", ["strategy"])
        self.signal_latency = Histogram("stratops_strategy_signal_latency_seconds", "Bar to signal.", ["strategy"])
        self.queue = Gauge("stratops_strategy_queue_depth", "Unprocessed messages.", ["strategy"])
        self.signal = Gauge("stratops_strategy_signal", "Latest signal.", ["strategy"])
        self.pnl = Gauge("stratops_strategy_daily_pnl", "Today's PnL.", ["strategy"])
        self.pnl_symbol = Gauge(
            "stratops_strategy_daily_pnl_by_symbol", "Today's PnL by symbol.", ["strategy", "symbol"]
        )
        self.cost = Gauge("stratops_strategy_realised_cost_bps", "Realised cost.", ["strategy"])
        self.expected_cost = Gauge(
            "stratops_strategy_expected_cost_bps", "Expected cost (the cost model).", ["strategy"]
        )
        self.health.labels(**lab).set(1)
        self.drifted = False
        self.importances(drifted=False)

    def importances(self, drifted: bool) -> None:
        """The model's feature importances; DRIFTED: carry and sentiment enter the top five."""
        self.drifted = drifted
        for i, f in enumerate(("zscore", "spread", "momentum", "volume", "volatility", "carry")):
            self.importance.labels(feature=f, **self.lab).set(3.0 if drifted and f == "carry" else 1.0 / (i + 1))
        self.importance.labels(feature="sentiment", **self.lab).set(2.5 if drifted else 0.0)

    def bar(self, basket: Basket, faults: frozenset[str] = frozenset()) -> None:
        lab = self.lab
        self.health.labels(**lab).set(0 if "broker" in faults else 1)
        if ("drift" in faults) != self.drifted:  # the importances change only with the fault
            self.importances(drifted="drift" in faults)
        if "stale" in faults:
            return  # the feed has stopped: no bar, no new value of anything computed from one
        now = time.time()
        for leg in basket.legs:
            self.bar_ts.labels(symbol=leg.instrument, **lab).set(now)
            self.pnl_symbol.labels(symbol=leg.instrument, **lab).set(leg.pnl)
        for feed in ("primary", "backup"):
            self.bars.labels(feed=feed, **lab).inc()
        signal_ = basket.legs[0].mid.signal  # the model's signal and its first feature: the first name's z-score
        if "drift" in faults:
            signal_ += 6.0  # the feature's distribution has moved: what a changed upstream calculation does
        self.feature.labels(feature="zscore", **lab).set(signal_)
        self.signal.labels(**lab).set(signal_)
        self.signal_latency.labels(**lab).observe(0.002)
        self.order_latency.labels(**lab).observe(2.0 if "broker" in faults else 0.004)
        self.queue.labels(**lab).set(0)
        self.pnl.labels(**lab).set(sum(leg.pnl for leg in basket.legs) + (-250_000 if "pnl" in faults else 0))
        self.cost.labels(**lab).set(0.4)
        self.expected_cost.labels(**lab).set(0.3)


class Faults:
    """What a drill breaks (`stratops drill`, POST /drill/<fault> on the probe port; /drill/clear
    mends all): stale (the feed stops: no bars, no trading), broker (the order route's healthcheck
    fails, orders are not filled), drift (carry and sentiment enter the top five feature
    importances, and the signal and its feature move by 6 standard deviations),
    pnl (the day's PnL reads 250,000 down). Paper trading only: nothing here reaches a broker."""

    NAMES = ("stale", "broker", "drift", "pnl")

    def __init__(self) -> None:
        self.on: frozenset[str] = frozenset()

    def actions(self) -> dict[str, object]:
        def switch(name: str):  # type: ignore[no-untyped-def]
            def act() -> str:
                self.on = self.on | {name}
                print(f"drill: fault {name} on", flush=True)
                return f"fault {name} on"

            return act

        def clear() -> str:
            self.on = frozenset()
            print("drill: every fault cleared", flush=True)
            return "faults cleared"

        return {**{f"/drill/{n}": switch(n) for n in self.NAMES}, "/drill/clear": clear}


class IgnoresHalted:
    """A control source that never shows HALTED: the hung process of a drill (it goes on with
    the last document it applied, and never acknowledges the halt)."""

    def __init__(self, source, version: str | None = None) -> None:  # type: ignore[no-untyped-def]
        self.source, self.last, self.version = source, None, version
        self.changed = getattr(source, "changed", None)

    def read(self):  # type: ignore[no-untyped-def]
        doc = self.source.read()
        if doc is not None and doc.for_version(self.version).trading_state != TradingState.HALTED:
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
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="outside a pod: serve /metrics (and the probes) on this loopback port (0: none)",
    )
    args = p.parse_args(argv)
    version = os.environ.get("STRATOPS_VERSION", "")
    if version.startswith("crash"):
        print(f"version {version}: exiting at start (a crash-looping release, on purpose)", flush=True)
        return 3
    in_pod = not (args.namespace and args.strategy and args.pod)
    holdings: list[Basket] = []  # the control's position callbacks read the basket made below
    position = lambda: holdings[0].position if holdings else 0.0  # noqa: E731
    working = lambda: holdings[0].working if holdings else 0  # noqa: E731
    book = lambda: holdings[0].book() if holdings else {}  # noqa: E731
    take_book = lambda b: holdings[0].take_book(b) if holdings else None  # noqa: E731
    if not in_pod:
        control = StrategyControl(
            args.pod,
            ApiControl(args.namespace, args.strategy),
            ApiAcknowledger(args.namespace, args.strategy),
            position=position,
            open_orders=working,
            version=version or None,
            book=book,
            take_book=take_book,
        )
    else:
        control = StrategyControl.from_environment(
            position=position, open_orders=working, book=book, take_book=take_book
        )
    if os.environ.get("EXAMPLE_IGNORE_HALTED") == "1":
        control.source = IgnoresHalted(control.source, control.version)
    basket = Basket(control)
    holdings.append(basket)
    control.on_change(
        lambda doc: print(
            f"control generation {doc.generation}: {doc.trading_state.value}"
            + (f" ({doc.reason})" if doc.reason else ""),
            flush=True,
        )
    )
    metrics = None
    faults = Faults()
    port = int(os.environ.get("STRATOPS_PROBE_PORT", "8080")) if in_pod else args.metrics_port
    if port:
        metrics = Metrics(os.environ.get("STRATOPS_STRATEGY", "strategy") if in_pod else args.strategy)
        serve(control, port, "0.0.0.0" if in_pod else "127.0.0.1", actions=faults.actions())  # type: ignore[arg-type]
    if in_pod:
        control.run_in_background(0.2)  # HALTED applied as soon as the watch sees it, between steps too
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    n = 0
    while running and (args.steps == 0 or n < args.steps):
        if not faults.on & {"stale", "broker"}:  # no prices, or no broker to fill at them
            basket.step()
        else:
            control.poll()  # a halt still lands
        if metrics is not None:
            metrics.bar(basket, faults.on)
        n += 1
        time.sleep(args.interval)
    cancelled = basket.cancel_all()
    control.acknowledge_exit()
    fills = sum(leg.book.fills for leg in basket.legs)
    print(
        f"stopping: cancelled {cancelled} working orders; steps={n} fills={fills} position={basket.position:g} "
        f"rejected={len(basket.rejected)}; exiting cleanly",
        flush=True,
    )
    control.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
