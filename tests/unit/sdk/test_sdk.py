"""The strategy-side SDK: the order guard (strict REDUCING, HALTED, limits) and the ack loop."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cases import example
from stratops.lifecycle.control import (
    Acknowledgement,
    BrokerInUse,
    ControlDocument,
    PreTradeControls,
    pre_trade_controls,
)
from stratops.lifecycle.limits import from_spec
from stratops.models.strategy import EffectiveLimits, Mode, StrategySpec, TradingState
from stratops.sdk import Order, OrderGuard, StrategyControl


def doc(state=TradingState.ACTIVE, gen=1, pos=100.0, rate=1000.0, reducing=False) -> ControlDocument:
    return ControlDocument(
        strategy="s",
        generation=gen,
        trading_state=state,
        mode=Mode.paper,
        limits=EffectiveLimits(max_position=pos, max_order_rate=rate, max_daily_loss=1),
        broker=BrokerInUse(name="b", endpoint="fix://b:1"),
        allow_risk_reducing=reducing,
    )


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


@pytest.mark.parametrize(
    "position,order,allowed",
    [
        (0.0, Order("buy", 1), False),  # from flat nothing opens
        (0.0, Order("sell", 1), False),
        (50.0, Order("sell", 50), True),  # to flat
        (50.0, Order("sell", 20), True),
        (50.0, Order("sell", 51), False),  # would flip: exceeds the open position
        (50.0, Order("buy", 1), False),  # grows
        (-50.0, Order("buy", 30), True),
        (-50.0, Order("buy", 80), False),
        (-50.0, Order("sell", 1), False),
    ],
)
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


def load_example():
    path = Path(__file__).resolve().parents[3] / "examples" / "strategy-app" / "paper_mean_revert.py"
    spec = importlib.util.spec_from_file_location("paper_mean_revert", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["paper_mean_revert"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_example_strategy_obeys_halt_and_reducing():
    mod = load_example()
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


# --- Pre-trade controls (RTS 6 Art. 15): every declared limit is enforced before an order is sent.


def controlled(
    state=TradingState.ACTIVE, pos=100.0, rate=1e9, loss=100.0, reducing=False, **controls
) -> ControlDocument:
    return doc(state, pos=pos, rate=rate, reducing=reducing).model_copy(
        update={
            "limits": EffectiveLimits(max_position=pos, max_order_rate=rate, max_daily_loss=loss),
            "controls": PreTradeControls(**controls),
        }
    )


def ticking(step=10.0):
    """A clock that moves STEP seconds per reading: every check falls in a fresh rate window."""
    t = itertools.count(0.0, step)
    return lambda: next(t)


HANDOVER = {"version", "others", "starting_book"}  # the handover's fields, hashed only when present


def test_a_document_without_controls_hashes_as_before_controls_existed():
    d = doc()
    assert d.controls is None
    assert d.content_hash() == "873c6fb197945a57b8027a4aa2e8b31dcf861ec9c37821063356b15f60ff3f74"
    # the body of a document before controls (and the handover's fields) existed
    old_body = d.model_dump(by_alias=True, mode="json", exclude={"generation", "issued_at", "controls", *HANDOVER})
    assert d.content_hash() == hashlib.sha256(json.dumps(old_body, sort_keys=True).encode()).hexdigest()
    with_controls = d.model_copy(update={"controls": PreTradeControls(max_order_volume=10)})
    assert with_controls.content_hash() != d.content_hash()
    assert not with_controls.same_content(d)
    # A control left unset does not enter the hash: declaring new optional controls later moves no hash.
    body = with_controls.model_dump(by_alias=True, mode="json", exclude={"generation", "issued_at", *HANDOVER})
    body["controls"] = {"maxOrderVolume": 10.0}
    assert with_controls.content_hash() == hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def test_controls_travel_on_the_wire_and_are_hashed_the_same_by_the_pod():
    d = controlled(instruments=["EURUSD"], venues=["LMAX"], price_collar_bps=50, max_message_rate=20)
    wire = json.loads(d.to_json())
    assert wire["controls"] == {
        "instruments": ["EURUSD"],
        "venues": ["LMAX"],
        "priceCollarBps": 50,
        "maxMessageRate": 20,
    }
    back = ControlDocument.model_validate_json(d.to_json())
    assert back.controls == d.controls and back.content_hash() == d.content_hash()
    assert "controls" not in json.loads(doc().to_json())


def test_pre_trade_controls_copies_the_declared_limits_of_the_spec():
    spec = StrategySpec.model_validate(example("strategy.yaml")["spec"])
    c = pre_trade_controls(spec.risk_limits)
    assert c == PreTradeControls(
        max_order_value=500000,
        max_order_volume=500000,
        price_collar_bps=50,
        max_message_rate=20,
        instruments=[
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
        ],
        venues=["LMAX", "EBS"],
    )
    assert c.instruments is not spec.risk_limits.instruments  # a copy: the document never aliases the spec
    bare = spec.risk_limits.model_copy(
        update=dict.fromkeys(
            ("max_order_value", "max_order_volume", "price_collar_bps", "max_message_rate", "instruments", "venues")
        )
    )
    assert pre_trade_controls(bare) == PreTradeControls()


def test_instruments_are_an_allow_list_and_an_order_without_one_fails_closed():
    g = guard(controlled(instruments=["EURUSD", "GBPUSD"]), clock=ticking())
    assert g.check(Order("buy", 1, instrument="EURUSD"), 0).allowed
    assert g.check(Order("buy", 1, instrument="GBPUSD"), 0).allowed
    refused = g.check(Order("buy", 1, instrument="XAUUSD"), 0)
    assert not refused.allowed and "XAUUSD" in refused.reason and "EURUSD" in refused.reason
    refused = g.check(Order("buy", 1), 0)
    assert not refused.allowed and "no instrument" in refused.reason
    assert not guard(controlled(instruments=[])).check(Order("buy", 1, instrument="EURUSD"), 0).allowed
    assert g.check(Order("buy", 1, kind="cancel", instrument="XAUUSD"), 0).allowed


def test_venues_are_an_allow_list_and_an_order_without_one_fails_closed():
    g = guard(controlled(venues=["LMAX", "EBS"]), clock=ticking())
    assert g.check(Order("buy", 1, venue="EBS"), 0).allowed
    refused = g.check(Order("buy", 1, venue="NYSE"), 0)
    assert not refused.allowed and "NYSE" in refused.reason and "LMAX" in refused.reason
    refused = g.check(Order("buy", 1), 0)
    assert not refused.allowed and "no venue" in refused.reason


def test_max_order_volume_passes_at_the_limit_and_refuses_just_over():
    g = guard(controlled(pos=1e9, max_order_volume=500_000), clock=ticking())
    assert g.check(Order("buy", 500_000), 0).allowed
    refused = g.check(Order("buy", 500_000.01), 0)
    assert not refused.allowed
    assert refused.reason == "order volume 500000.01 exceeds max order volume 500000"


def test_price_collar_passes_at_the_collar_and_refuses_just_beyond():
    g = guard(controlled(price_collar_bps=50), clock=ticking())
    assert g.check(Order("buy", 1, price=100.5), 0, reference_price=100).allowed  # exactly 50 bps above
    assert g.check(Order("sell", 1, price=99.5), 0, reference_price=100).allowed  # exactly 50 bps below
    assert g.check(Order("buy", 1, price=100), 0, reference_price=100).allowed
    refused = g.check(Order("buy", 1, price=100.51), 0, reference_price=100)
    assert not refused.allowed and "51 bps" in refused.reason and "price collar 50 bps" in refused.reason
    assert not g.check(Order("sell", 1, price=99.49), 0, reference_price=100).allowed


def test_price_collar_without_a_reference_price_fails_closed():
    g = guard(controlled(price_collar_bps=50), clock=ticking())
    refused = g.check(Order("buy", 1, price=100), 0)
    assert not refused.allowed and "reference price" in refused.reason
    assert not g.check(Order("buy", 1), 0).allowed  # a market order needs the reference too
    assert not g.check(Order("buy", 1, price=100), 0, reference_price=0).allowed
    assert g.check(Order("buy", 1), 0, reference_price=100).allowed  # ...and is then within the collar


def test_max_order_value_uses_the_limit_price_or_else_the_reference_price():
    g = guard(controlled(pos=1e9, max_order_value=500_000), clock=ticking())
    assert g.check(Order("buy", 5_000, price=100), 0).allowed  # exactly 500000
    refused = g.check(Order("buy", 6_000, price=100), 0)
    assert not refused.allowed and refused.reason == "order value 600000 exceeds max order value 500000"
    assert not g.check(Order("buy", 5_000, price=100.01), 0).allowed
    assert g.check(Order("buy", 5_000), 0, reference_price=100).allowed  # market order: at the reference
    assert not g.check(Order("buy", 5_001), 0, reference_price=100).allowed
    # The limit price decides, not the reference: it is the worst the order can fill at.
    assert not g.check(Order("buy", 5_000, price=101), 0, reference_price=99).allowed
    refused = g.check(Order("buy", 1), 0)
    assert not refused.allowed and "max order value 500000" in refused.reason  # no price known: fail closed


def test_daily_loss_reached_allows_only_reducing_orders():
    g = guard(controlled(loss=25_000), clock=ticking())
    assert g.check(Order("buy", 10), 0, loss_today=24_999.99).allowed
    refused = g.check(Order("buy", 10), 0, loss_today=25_000)
    assert not refused.allowed and "daily loss 25000 reached max daily loss 25000" in refused.reason
    assert not g.check(Order("buy", 10), 50, loss_today=30_000).allowed  # grows
    assert not g.check(Order("sell", 60), 50, loss_today=30_000).allowed  # flips
    assert g.check(Order("sell", 50), 50, loss_today=30_000).allowed  # to flat
    assert g.check(Order("buy", 20), -50, loss_today=30_000).allowed
    assert g.check(Order("buy", 10), 0, loss_today=None).allowed  # unknown: not checked here


def test_daily_loss_applies_without_controls_when_the_loss_is_given():
    g = guard(doc(), clock=ticking())  # doc() declares max daily loss 1
    assert not g.check(Order("buy", 1), 0, loss_today=1).allowed
    assert g.check(Order("buy", 1), 0).allowed


def test_non_finite_numbers_fail_closed():
    g = guard(controlled(pos=1e9, max_order_value=1e6, price_collar_bps=50), clock=ticking())
    nan = float("nan")
    assert not g.check(Order("buy", nan), 0, reference_price=100).allowed
    assert not g.check(Order("buy", 1, price=nan), 0, reference_price=100).allowed
    assert not g.check(Order("buy", 1, price=100), 0, reference_price=nan).allowed
    assert not g.check(Order("buy", 1, price=100), 0, reference_price=100, loss_today=nan).allowed
    assert not g.check(Order("buy", float("inf")), 0, reference_price=100).allowed
    assert g.check(Order("buy", 1, price=100), 0, reference_price=100).allowed


def test_modify_is_checked_like_a_new_order():
    g = guard(controlled(pos=100, instruments=["EURUSD"], max_order_volume=50, price_collar_bps=50), clock=ticking())
    ok = dict(instrument="EURUSD", price=100.0)
    assert g.check(Order("buy", 50, kind="modify", **ok), 0, reference_price=100).allowed
    assert not g.check(Order("buy", 51, kind="modify", **ok), 0, reference_price=100).allowed
    assert not g.check(Order("buy", 10, kind="modify", instrument="GBPUSD", price=100), 0, reference_price=100).allowed
    assert not g.check(Order("buy", 10, kind="modify", instrument="EURUSD", price=101), 0, reference_price=100).allowed
    assert not g.check(Order("buy", 10, kind="modify", **ok), 95, reference_price=100).allowed  # position 105
    assert not guard(controlled(TradingState.HALTED)).check(Order("buy", 1, kind="modify"), 0).allowed
    assert not guard(controlled(TradingState.REDUCING)).check(Order("buy", 1, kind="modify"), 0).allowed


def test_message_rate_counts_new_modify_and_cancel_and_cancels_always_pass():
    now = [0.0]
    g = guard(controlled(rate=1e9, max_message_rate=3), clock=lambda: now[0])
    assert g.check(Order("buy", 1), 0).allowed
    assert g.check(Order("buy", 1, kind="modify"), 0).allowed
    assert g.check(Order("buy", 1, kind="cancel"), 0).allowed
    refused = g.check(Order("buy", 1), 0)
    assert not refused.allowed and refused.reason == "message rate 4/s would exceed max message rate 3/s"
    assert not g.check(Order("buy", 1, kind="modify"), 0).allowed
    for _ in range(10):  # the budget is used up, yet cancels still pass (and are counted)
        assert g.check(Order("sell", 1, kind="cancel"), 0).allowed
    now[0] = 0.5
    assert not g.check(Order("buy", 1), 0).allowed
    now[0] = 1.2  # the first three left the window, the ten cancels at t=0 too
    assert g.check(Order("buy", 1), 0).allowed


def test_a_burst_of_cancels_uses_up_the_budget_for_new_orders():
    now = [0.0]
    g = guard(controlled(rate=1e9, max_message_rate=5), clock=lambda: now[0])
    for _ in range(5):
        assert g.check(Order("buy", 1, kind="cancel"), 0).allowed
    assert not g.check(Order("buy", 1), 0).allowed
    now[0] = 1.0
    assert g.check(Order("buy", 1), 0).allowed


def test_order_rate_counts_new_orders_only():
    now = [0.0]
    g = guard(controlled(rate=2, max_message_rate=100), clock=lambda: now[0])
    assert g.check(Order("buy", 1), 0).allowed
    assert g.check(Order("buy", 1), 0).allowed
    for _ in range(3):
        assert g.check(Order("buy", 1, kind="modify"), 0).allowed
        assert g.check(Order("buy", 1, kind="cancel"), 0).allowed
    refused = g.check(Order("buy", 1), 0)
    assert not refused.allowed and refused.reason == "order rate 3/s would exceed max order rate 2/s"


def test_halted_risk_reducing_orders_still_meet_the_pre_trade_controls():
    g = guard(
        controlled(TradingState.HALTED, reducing=True, instruments=["EURUSD"], max_order_volume=20), clock=ticking()
    )
    assert g.check(Order("sell", 20, instrument="EURUSD"), 50).allowed
    assert not g.check(Order("sell", 21, instrument="EURUSD"), 50).allowed
    assert not g.check(Order("sell", 20, instrument="GBPUSD"), 50).allowed


SIDES = ("buy", "sell")
QUANTITIES = (1.0, 40.0, 50.0, 60.0, 100.0)
PRICES = (None, 99.0, 99.5, 99.75, 100.0, 100.5, 101.0)
REFERENCES = (None, 100.0, 200.0)
INSTRUMENTS = (None, "EURUSD", "XAUUSD")
VENUES = (None, "LMAX", "NYSE")
POSITIONS = (-60.0, -50.0, 0.0, 40.0, 50.0)
LOSSES = (None, 0.0, 99.0, 100.0, 150.0)
LIMITS = dict(
    max_position=100.0,
    max_daily_loss=100.0,
    max_order_volume=50.0,
    max_order_value=5_000.0,
    price_collar_bps=50.0,
    instruments=("EURUSD", "GBPUSD"),
    venues=("LMAX", "EBS"),
)


def within_every_limit(state, allow_reducing, side, qty, price, ref, instrument, venue, position, loss) -> bool:
    """The declared limits, restated from the regulation's words rather than from the guard."""
    after = position + (qty if side == "buy" else -qty)
    reduces = abs(after) < abs(position) and (after == 0 or (after > 0) == (position > 0))
    if state == TradingState.HALTED and not (allow_reducing and reduces):
        return False
    if state == TradingState.REDUCING and not reduces:
        return False
    if instrument not in LIMITS["instruments"] or venue not in LIMITS["venues"]:
        return False
    if qty > LIMITS["max_order_volume"]:
        return False
    # Exact fractions: the collar's edge (e.g. 99.5 against 100 is exactly 50 bps) must not blur.
    if ref is None:
        return False
    if price is not None and abs(Fraction(price) / Fraction(ref) - 1) * 10_000 > LIMITS["price_collar_bps"]:
        return False
    if qty * (ref if price is None else price) > LIMITS["max_order_value"]:
        return False
    if loss is not None and loss >= LIMITS["max_daily_loss"] and not reduces:
        return False
    return state == TradingState.HALTED or abs(after) <= LIMITS["max_position"]


@pytest.mark.parametrize(
    "state,allow_reducing", [(TradingState.ACTIVE, False), (TradingState.REDUCING, False), (TradingState.HALTED, True)]
)
def test_allowed_orders_meet_every_declared_limit_exhaustively(state, allow_reducing):
    limits = {k: v for k, v in LIMITS.items() if k not in ("max_position", "max_daily_loss")}
    limits["instruments"], limits["venues"] = list(limits["instruments"]), list(limits["venues"])
    g = guard(
        controlled(state, pos=LIMITS["max_position"], loss=LIMITS["max_daily_loss"], reducing=allow_reducing, **limits),
        clock=ticking(),
    )
    allowed = 0
    for side, qty, price, ref, instrument, venue, position, loss in itertools.product(
        SIDES, QUANTITIES, PRICES, REFERENCES, INSTRUMENTS, VENUES, POSITIONS, LOSSES
    ):
        d = g.check(
            Order(side, qty, instrument=instrument, venue=venue, price=price),
            position,
            reference_price=ref,
            loss_today=loss,
        )
        expected = within_every_limit(state, allow_reducing, side, qty, price, ref, instrument, venue, position, loss)
        assert d.allowed is expected, (side, qty, price, ref, instrument, venue, position, loss, d.reason)
        if not d.allowed:
            assert d.reason
        allowed += d.allowed
    assert allowed > 0  # the grid reaches the allowed side of every limit, not only refusals


@settings(max_examples=400, deadline=None)
@given(
    side=st.sampled_from(SIDES),
    qty=st.integers(1, 20_000),
    price=st.none() | st.integers(1, 4_000_000),
    ref=st.none() | st.integers(1, 4_000_000),
    position=st.integers(-30_000, 30_000),
    loss=st.none() | st.integers(0, 50_000),
    bps=st.integers(1, 10_000),
    volume=st.integers(1, 20_000),
    value=st.integers(1, 10**10),
    max_position=st.integers(1, 30_000),
    max_loss=st.integers(1, 50_000),
)
def test_allowed_orders_meet_every_declared_limit_fuzzed(
    side, qty, price, ref, position, loss, bps, volume, value, max_position, max_loss
):
    # Prices in quarter units: dyadic, so the guard's floats and the exact fractions here agree at the edges.
    price_f = None if price is None else price / 4
    ref_f = None if ref is None else ref / 4
    g = guard(
        controlled(
            pos=max_position, loss=max_loss, max_order_volume=volume, max_order_value=value, price_collar_bps=bps
        ),
        clock=ticking(),
    )
    d = g.check(Order(side, qty, price=price_f), position, reference_price=ref_f, loss_today=loss)
    after = position + (qty if side == "buy" else -qty)
    reduces = abs(after) < abs(position) and (after == 0 or (after > 0) == (position > 0))
    expected = (
        qty <= volume
        and ref is not None
        and (price is None or Fraction(abs(price - ref), ref) * 10_000 <= bps)
        and Fraction(qty * (ref if price is None else price), 4) <= value
        and (loss is None or loss < max_loss or reduces)
        and abs(after) <= max_position
    )
    assert d.allowed is expected, d.reason


def test_without_controls_the_new_order_fields_change_nothing():
    for state in TradingState:
        g = guard(doc(state, pos=100, reducing=True), clock=ticking())
        for side, qty, price, ref, instrument, venue, position in itertools.product(
            SIDES, QUANTITIES, PRICES, REFERENCES, INSTRUMENTS, VENUES, POSITIONS
        ):
            plain = g.check(Order(side, qty), position)
            rich = g.check(
                Order(side, qty, instrument=instrument, venue=venue, price=price), position, reference_price=ref
            )
            assert plain == rich


def test_strategy_control_checks_with_the_last_reported_loss():
    src, acks = MemorySource(), MemoryAcks()
    c = StrategyControl("pod-0", src, acks)
    src.doc = controlled(loss=1_000, price_collar_bps=50)
    c.poll()
    assert c.check(Order("buy", 1), 0, reference_price=100).allowed
    assert not c.check(Order("buy", 1), 0).allowed  # the collar needs the reference price
    c.report(loss=1_000)
    refused = c.check(Order("buy", 1), 0, reference_price=100)
    assert not refused.allowed and "daily loss" in refused.reason
    assert c.check(Order("sell", 1), 1, reference_price=100).allowed
    assert not c.guard.check(Order("buy", 1), 0, reference_price=100, loss_today=1_000).allowed
    c.report(loss=10)
    assert c.check(Order("buy", 1), 0, reference_price=100).allowed


def test_example_strategy_keeps_trading_within_the_example_controls():
    spec = StrategySpec.model_validate(example("strategy.yaml")["spec"])
    d = doc(gen=1).model_copy(
        update={"limits": from_spec(spec.risk_limits), "controls": pre_trade_controls(spec.risk_limits)}
    )
    mod = load_example()
    src, acks = MemorySource(), MemoryAcks()
    book = mod.PaperBook()
    control = StrategyControl("p", src, acks, position=lambda: book.position)
    control.guard = OrderGuard(clock=ticking(0.1))  # the example's default step interval
    s = mod.MeanRevert(control, book)
    src.doc = d
    for _ in range(300):
        s.step()
        assert abs(book.position) <= d.limits.max_position
    assert book.fills > 0
    assert not [r for r in s.rejected if "rate" not in r]  # only the rate limits ever refuse it
    src.doc = d.model_copy(update={"generation": 2, "trading_state": TradingState.REDUCING})
    for _ in range(2000):
        s.step()
    assert book.position == 0


def test_halted_risk_reducing_orders_are_not_held_to_max_position_as_before():
    # A throttle may have lowered max position below the open one: a halted strategy must still reduce.
    g = guard(controlled(TradingState.HALTED, pos=100, reducing=True, max_order_volume=50), clock=ticking())
    assert g.check(Order("sell", 20), 150).allowed


def test_the_exit_acknowledgement_comes_last_and_says_so():
    src, acks = MemorySource(), MemoryAcks()
    working = [1, 2]
    c = StrategyControl("pod-0", src, acks, open_orders=lambda: len(working))
    c.acknowledge_exit()
    assert acks.acks == []  # nothing applied: nothing to say
    src.doc = doc(TradingState.HALTED, gen=3)
    c.poll()
    working.clear()  # the strategy cancelled its working orders on SIGTERM
    c.acknowledge_exit()
    last = acks.acks[-1]
    assert last.exiting is True and last.generation == 3 and last.open_orders == 0
    assert last.trading_state == TradingState.HALTED and acks.acks[0].exiting is None


def test_the_mounted_file_wins_when_it_is_newer_than_what_the_watch_saw(tmp_path):
    from stratops.sdk import FileControl, WatchControl

    f = tmp_path / "control.json"
    w = WatchControl.__new__(WatchControl)  # no API here: the watch's state as a stuck watch leaves it
    w.fallback, w.connected, w._doc = FileControl(f), True, doc(gen=4)
    assert w.read().generation == 4  # no file yet
    f.write_text(doc(TradingState.HALTED, gen=5).to_json())
    assert w.read().generation == 5 and w.read().trading_state == TradingState.HALTED
    f.write_text(doc(gen=3).to_json())
    assert w.read().generation == 4  # never back to an older document


def test_the_example_basket_spreads_its_pnl_below_the_concentration_monitors_share():
    """At rest the example desk's twelfth monitor (more than 25% of the day's PnL from one name)
    must not breach: the basket's twelve names each make a part of it, under the Strategy's own
    limits (shared order and message rates refuse some orders)."""
    from stratops.models.strategy import StrategySpec
    from stratops.monitors.statistics import concentration

    mod = load_example()
    spec = StrategySpec.model_validate(example("strategy.yaml")["spec"])
    assert list(mod.INSTRUMENTS) == spec.risk_limits.instruments  # the basket trades what the spec allows
    src, acks = MemorySource(), MemoryAcks()
    control = StrategyControl("p", src, acks, position=lambda: 0.0)
    now = [0.0]
    control.guard = OrderGuard(clock=lambda: now[0])  # the loop's own pace: a step each 0.1 s
    basket = mod.Basket(control)
    src.doc = controlled(
        pos=spec.risk_limits.max_position,
        rate=spec.risk_limits.max_order_rate,
        loss=1e9,
        instruments=spec.risk_limits.instruments,
        venues=spec.risk_limits.venues,
        max_message_rate=spec.risk_limits.max_message_rate,
    )
    for _ in range(600):  # a minute of the 0.1 s loop: about what the demo's first evaluation sees
        basket.step()
        now[0] += 0.1
    by_name = {leg.instrument: leg.pnl for leg in basket.legs}
    assert all(leg.book.fills for leg in basket.legs), by_name
    reading = concentration(by_name, 0.25)
    assert not reading.breach, reading.detail


# -- STANDBY: a version warming up beside the one that trades ------------------------------------
KINDS = ("new", "modify", "cancel")


@pytest.mark.parametrize("reducing", [False, True])
def test_standby_refuses_every_message_exhaustively(reducing):
    """Whatever the order, the position, the prices and the limits: nothing passes on standby,
    not a cancel (it owns no order), not a risk-reducing order, and nothing is counted."""
    limits = {k: v for k, v in LIMITS.items() if k not in ("max_position", "max_daily_loss")}
    limits["instruments"], limits["venues"] = list(limits["instruments"]), list(limits["venues"])
    for d in (
        doc(TradingState.STANDBY, reducing=reducing),
        controlled(
            TradingState.STANDBY, pos=LIMITS["max_position"], loss=LIMITS["max_daily_loss"], reducing=reducing, **limits
        ),
    ):
        g = guard(d, clock=ticking())
        for kind, side, qty, price, ref, instrument, venue, position, loss in itertools.product(
            KINDS, SIDES, QUANTITIES, PRICES, REFERENCES, INSTRUMENTS, VENUES, POSITIONS, LOSSES
        ):
            got = g.check(
                Order(side, qty, kind=kind, instrument=instrument, venue=venue, price=price),
                position,
                reference_price=ref,
                loss_today=loss,
            )
            assert not got.allowed and got.reason.startswith("STANDBY:"), (kind, side, qty, position, got)
        assert not g._sent and not g._messages  # refusals use no rate budget


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    side=st.sampled_from(SIDES),
    qty=st.floats(allow_nan=True, allow_infinity=True),
    position=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    price=st.none() | st.floats(),
    reducing=st.booleans(),
)
def test_standby_refuses_every_message_fuzzed(kind, side, qty, position, price, reducing):
    got = guard(doc(TradingState.STANDBY, reducing=reducing)).check(Order(side, qty, kind=kind, price=price), position)
    assert not got.allowed and got.reason.startswith("STANDBY:")


def test_standby_then_handed_trading_has_its_whole_rate_budget():
    t = [0.0]
    g = guard(doc(TradingState.STANDBY, rate=3), clock=lambda: t[0])
    for _ in range(50):
        assert not g.check(Order("buy", 1), 0).allowed
    g.apply(doc(TradingState.ACTIVE, gen=2, rate=3))  # the handover: trading authority arrives
    assert [g.check(Order("buy", 1), 0).allowed for _ in range(4)] == [True, True, True, False]


def test_allows_orders_is_what_the_guard_lets_through():
    """ControlDocument.allows_orders (the handover's invariant reads it) agrees with the guard:
    a document that does not allow orders lets no new order or modify through, in any state."""
    for state, reducing in itertools.product(TradingState, (False, True)):
        d = doc(state, reducing=reducing)
        g = guard(d, clock=ticking())
        passed = any(
            g.check(Order(side, qty, kind=kind), position).allowed
            for kind in ("new", "modify")
            for side in SIDES
            for qty in (1.0, 50.0)
            for position in POSITIONS
        )
        assert passed is d.allows_orders(), (state, reducing)


def test_a_handovers_fields_are_hashed_only_when_present():
    d = doc()
    assert d.version is None and d.others is None and d.starting_book is None
    handed = d.model_copy(update={"version": "2.0", "others": TradingState.HALTED, "starting_book": {"EURUSD": -25.0}})
    assert handed.content_hash() != d.content_hash()
    assert handed.content_hash() != handed.model_copy(update={"starting_book": {"EURUSD": 25.0}}).content_hash()
    assert handed.content_hash() != handed.model_copy(update={"version": "3.0"}).content_hash()
    again = ControlDocument.model_validate_json(handed.to_json())
    assert again.starting_book == {"EURUSD": -25.0} and again.content_hash() == handed.content_hash()
    with pytest.raises(ValueError):
        ControlDocument.model_validate_json(handed.to_json().replace("-25.0", "NaN"))
    with pytest.raises(ValueError, match="others"):  # another version may never be told to trade
        ControlDocument.model_validate_json(handed.to_json().replace('"others":"HALTED"', '"others":"ACTIVE"'))


@pytest.mark.parametrize("others", [None, TradingState.STANDBY, TradingState.HALTED])
@pytest.mark.parametrize("state", list(TradingState))
def test_a_document_for_one_version_lets_no_other_version_trade(state, others):
    d = doc(state).model_copy(
        update={"version": "2.0", "others": others, "starting_book": {"EURUSD": 3.0}, "allow_risk_reducing": True}
    )
    assert d.for_version("2.0") is d
    for version in ("1.0", None):  # another version, or a process that does not know its own
        other = d.for_version(version)
        assert other.trading_state == (others or TradingState.STANDBY)
        assert not other.allows_orders() and other.starting_book is None
        assert other.generation == d.generation
    assert doc(state).for_version("anything").trading_state == state  # no version named: every pod


def test_a_process_on_standby_takes_the_handed_book_and_its_ack_confirms_it():
    src, acks = MemorySource(), MemoryAcks()
    book = {"EURUSD": 0.0}
    c = StrategyControl("new-0", src, acks, version="2.0", book=lambda: book, take_book=book.update)
    src.doc = doc(TradingState.ACTIVE).model_copy(update={"version": "1.0", "others": TradingState.STANDBY})
    c.poll()
    ack = acks.acks[-1]
    assert ack.trading_state == TradingState.STANDBY and ack.book == {"EURUSD": 0.0} and ack.version == "2.0"
    assert ack.control_hash == src.doc.content_hash()  # the document as written, not as applied
    assert not c.check(Order("sell", 1.0, kind="cancel"), 0.0).allowed  # STANDBY: not even a cancel
    handed = {"version": "2.0", "others": TradingState.HALTED, "starting_book": {"EURUSD": -30.0, "GBPUSD": 5.0}}
    src.doc = doc(TradingState.REDUCING, gen=2).model_copy(update=handed)
    c.poll()
    assert book == {"EURUSD": -30.0, "GBPUSD": 5.0}
    ack = acks.acks[-1]
    assert ack.generation == 2 and ack.book == book and ack.trading_state == TradingState.REDUCING
    # later documents carry it still (same content), but the book is this process's own now
    book["EURUSD"] = -10.0
    src.doc = doc(TradingState.REDUCING, gen=3, pos=50).model_copy(update=handed)
    c.poll()
    assert book["EURUSD"] == -10.0 and acks.acks[-1].book["EURUSD"] == -10.0


def test_the_old_version_is_halted_by_a_document_handed_to_the_new_one():
    src, acks = MemorySource(), MemoryAcks()
    c = StrategyControl("old-0", src, acks, version="1.0", book=lambda: {"EURUSD": 7.0})
    src.doc = doc(TradingState.ACTIVE, gen=4).model_copy(update={"version": "2.0", "others": TradingState.HALTED})
    c.poll()
    assert acks.acks[-1].trading_state == TradingState.HALTED and c.applied.starting_book is None
    assert c.check(Order("sell", 1.0, kind="cancel"), 7.0).allowed  # HALTED: cancels still pass
    assert not c.check(Order("sell", 1.0), 7.0).allowed


def test_a_process_that_never_stood_by_keeps_its_own_book():
    """Started after the handover (or restarted): the starting book is history, not its book."""
    src, acks = MemorySource(), MemoryAcks()
    taken: list[dict] = []
    c = StrategyControl("new-1", src, acks, version="2.0", book=lambda: {"EURUSD": 12.0}, take_book=taken.append)
    src.doc = doc(TradingState.ACTIVE).model_copy(update={"version": "2.0", "starting_book": {"EURUSD": -30.0}})
    c.poll()
    assert taken == [] and acks.acks[-1].book == {"EURUSD": 12.0}  # the operator sees the mismatch
