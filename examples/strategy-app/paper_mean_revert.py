"""An example strategy that uses the stratops SDK: mean reversion, paper-traded on a simulated feed.

In a pod started by stratops it finds its control document and identity in the environment.
For a local run against a cluster, name them:

    python examples/strategy-app/paper_mean_revert.py --namespace desk --strategy mean-revert --pod local-0

It obeys the control document: HALTED cancels its working orders and sends nothing new;
REDUCING only trades the position down; limits cap position and order rate, and the pre-trade
controls (instruments, venues, order size and value, price collar, message rate) are checked
against the simulated mid price. Each new control generation is acknowledged after it is applied.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from dataclasses import dataclass, field

from stratops.models.strategy import TradingState
from stratops.sdk import ApiAcknowledger, ApiControl, Order, StrategyControl


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--namespace")
    p.add_argument("--strategy")
    p.add_argument("--pod")
    p.add_argument("--steps", type=int, default=0, help="stop after N steps (0: run until SIGTERM)")
    p.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args(argv)
    book = PaperBook()
    if args.namespace and args.strategy and args.pod:
        control = StrategyControl(args.pod, ApiControl(args.namespace, args.strategy),
                                  ApiAcknowledger(args.namespace, args.strategy),
                                  position=lambda: book.position, open_orders=lambda: len(book.working))
    else:
        control = StrategyControl.from_environment(position=lambda: book.position, open_orders=lambda: len(book.working))
    strategy = MeanRevert(control, book)
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    n = 0
    while running and (args.steps == 0 or n < args.steps):
        strategy.step()
        n += 1
        time.sleep(args.interval)
    print(f"steps={n} fills={book.fills} position={book.position:g} rejected={len(strategy.rejected)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
