"""The strategy-side SDK: the order guard (strict REDUCING, HALTED, limits) and the ack loop."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from stratops.lifecycle.control import Acknowledgement, BrokerInUse, ControlDocument
from stratops.models.strategy import EffectiveLimits, Mode, TradingState
from stratops.sdk import Order, OrderGuard, StrategyControl


def doc(state=TradingState.ACTIVE, gen=1, pos=100.0, rate=1000.0, reducing=False) -> ControlDocument:
    return ControlDocument(strategy="s", generation=gen, trading_state=state, mode=Mode.paper,
                           limits=EffectiveLimits(max_position=pos, max_order_rate=rate, max_daily_loss=1),
                           broker=BrokerInUse(name="b", endpoint="fix://b:1"), allow_risk_reducing=reducing)


def guard(d: ControlDocument, clock=None) -> OrderGuard:
    g = OrderGuard(clock=clock) if clock else OrderGuard()
    g.apply(d)
    return g


def test_without_a_control_document_only_cancels_pass():
    g = OrderGuard()
    assert not g.check(Order("buy", 1), 0).allowed
    assert g.check(Order("buy", 1, kind="cancel"), 0).allowed


@pytest.mark.parametrize("position", [-50.0, 0.0, 50.0])
def test_halted_denies_everything_but_cancels(position):
    g = guard(doc(TradingState.HALTED))
    assert not g.check(Order("buy", 1), position).allowed
    assert not g.check(Order("sell", 1), position).allowed
    assert g.check(Order("sell", 1, kind="cancel"), position).allowed


def test_halted_allows_risk_reducing_only_when_configured():
    assert guard(doc(TradingState.HALTED, reducing=True)).check(Order("sell", 10), 50).allowed
    assert not guard(doc(TradingState.HALTED, reducing=True)).check(Order("buy", 10), 50).allowed
    assert not guard(doc(TradingState.HALTED)).check(Order("sell", 10), 50).allowed


@pytest.mark.parametrize("position,order,allowed", [
    (0.0, Order("buy", 1), False),        # from flat nothing opens
    (0.0, Order("sell", 1), False),
    (50.0, Order("sell", 50), True),      # to flat
    (50.0, Order("sell", 20), True),
    (50.0, Order("sell", 51), False),     # would flip: exceeds the open position
    (50.0, Order("buy", 1), False),       # grows
    (-50.0, Order("buy", 30), True),
    (-50.0, Order("buy", 80), False),
    (-50.0, Order("sell", 1), False),
])
def test_reducing_is_strict(position, order, allowed):
    assert guard(doc(TradingState.REDUCING)).check(order, position).allowed is allowed


def test_reducing_never_grows_absolute_position_exhaustively():
    g = guard(doc(TradingState.REDUCING))
    for position in range(-20, 21):
        for qty in range(1, 25):
            for side in ("buy", "sell"):
                if g.check(Order(side, qty), position).allowed:
                    after = position + (qty if side == "buy" else -qty)
                    assert abs(after) < abs(position) or after == 0
                    assert qty <= abs(position)
                g._sent.clear()


def test_active_caps_position_and_rate():
    now = [0.0]
    g = guard(doc(pos=100, rate=2), clock=lambda: now[0])
    assert not g.check(Order("buy", 101), 0).allowed
    assert g.check(Order("buy", 10), 0).allowed
    assert g.check(Order("buy", 10), 10).allowed
    assert "rate" in g.check(Order("buy", 10), 20).reason
    now[0] = 1.0
    assert g.check(Order("buy", 10), 20).allowed


class MemorySource:
    def __init__(self) -> None:
        self.doc: ControlDocument | None = None

    def read(self):
        return self.doc


class MemoryAcks:
    def __init__(self) -> None:
        self.acks: list[Acknowledgement] = []

    def acknowledge(self, ack):
        self.acks.append(ack)


def test_poll_applies_runs_callbacks_then_acknowledges_each_generation_once():
    src, acks = MemorySource(), MemoryAcks()
    seen = []
    c = StrategyControl("pod-0", src, acks, position=lambda: 5.0)
    c.on_change(lambda d: seen.append((d.generation, len(acks.acks))))
    assert c.poll() is None and acks.acks == []
    src.doc = doc(gen=1)
    c.poll()
    c.poll()
    src.doc = doc(TradingState.HALTED, gen=2)
    c.poll()
    assert [a.generation for a in acks.acks] == [1, 2]
    assert seen == [(1, 0), (2, 1)]  # callbacks run before the ack
    assert acks.acks[-1].trading_state == TradingState.HALTED and acks.acks[-1].position == 5.0
    assert not c.guard.check(Order("buy", 1), 0).allowed


def test_example_strategy_obeys_halt_and_reducing():
    path = Path(__file__).resolve().parents[2] / "examples" / "strategy-app" / "paper_mean_revert.py"
    spec = importlib.util.spec_from_file_location("paper_mean_revert", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["paper_mean_revert"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    src, acks = MemorySource(), MemoryAcks()
    book = mod.PaperBook()
    control = StrategyControl("p", src, acks, position=lambda: book.position)
    s = mod.MeanRevert(control, book)
    src.doc = doc(gen=1, pos=1e9, rate=1e9)
    for _ in range(300):
        s.step()
    assert book.fills > 0
    src.doc = doc(TradingState.REDUCING, gen=2, pos=1e9, rate=1e9)
    start = abs(book.position)
    for _ in range(300):
        s.step()
        assert abs(book.position) <= start
    assert book.position == 0
    src.doc = doc(TradingState.HALTED, gen=3, pos=1e9, rate=1e9)
    fills = book.fills
    for _ in range(100):
        s.step()
    assert book.fills == fills and acks.acks[-1].generation == 3
