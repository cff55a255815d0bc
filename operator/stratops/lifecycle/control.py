"""The control document: what the operator tells a strategy's pods, and their acknowledgement.

The operator writes it into the control ConfigMap (mounted into the pod); the strategy-side SDK
applies it and acknowledges the generation it applied, so that an action is verified rather
than hoped for.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from stratops.models.strategy import EffectiveLimits, Mode, RiskLimits, TradingState

CONTROL_KEY = "control.json"
MOUNT_PATH = "/etc/stratops/control"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def allows_orders(state: TradingState | None, allow_risk_reducing: bool = False) -> bool:
    """Whether a document in STATE lets an order that can fill through (a new order or a
    modify): ACTIVE, REDUCING, or HALTED with risk-reducing orders allowed."""
    return state in (TradingState.ACTIVE, TradingState.REDUCING) or (
        state == TradingState.HALTED and allow_risk_reducing
    )


class BrokerInUse(_Wire):
    name: str
    endpoint: str


class PreTradeControls(_Wire):
    """The spec's pre-trade controls (RTS 6 Art. 15) the SDK checks every order against.
    A field left unset is not declared and not checked; a list that is set is an allow-list."""

    max_order_value: float | None = None
    max_order_volume: float | None = None
    price_collar_bps: float | None = None
    max_message_rate: float | None = None
    instruments: list[str] | None = None
    venues: list[str] | None = None


def pre_trade_controls(limits: RiskLimits) -> PreTradeControls:
    """The pre-trade controls LIMITS declare, as the control document carries them."""
    return PreTradeControls(
        max_order_value=limits.max_order_value,
        max_order_volume=limits.max_order_volume,
        price_collar_bps=limits.price_collar_bps,
        max_message_rate=limits.max_message_rate,
        instruments=list(limits.instruments) if limits.instruments is not None else None,
        venues=list(limits.venues) if limits.venues is not None else None,
    )


class ControlDocument(_Wire):
    """The trading state, effective limits, pre-trade controls and broker a strategy must apply."""

    strategy: str
    generation: int = Field(ge=1)
    trading_state: TradingState
    mode: Mode
    limits: EffectiveLimits
    broker: BrokerInUse
    allow_risk_reducing: bool = False
    reason: str = ""
    issued_at: datetime | None = None
    controls: PreTradeControls | None = None  # absent: only limits are enforced (documents before RTS 6 Art. 15)
    # A warm handover (stratops.lifecycle.handover) runs two versions' pods side by side on one
    # document: VERSION names the version the trading state is for; every pod of another version
    # applies OTHERS instead (STANDBY or HALTED, never a state that trades), so at most one
    # version may send orders, whatever each pod reads and when. Absent: every pod applies the
    # trading state (no handover).
    version: str | None = Field(default=None, min_length=1, max_length=128)
    others: Literal[TradingState.STANDBY, TradingState.HALTED] | None = None
    # The book VERSION takes over (signed quantity by instrument), as the version it replaces
    # reported it in its HALTED acknowledgement. The process starts from it; its first
    # acknowledgement confirms it (a mismatch is a position-mismatch P0). Absent: no handover.
    starting_book: dict[str, Annotated[float, Field(allow_inf_nan=False)]] | None = Field(default=None, max_length=200)

    def content_hash(self) -> str:
        """SHA-256 of what the strategy must apply (generation and time excluded). A document
        without controls (or without a handover's fields) hashes as documents did before those
        existed, so acknowledgements from pods already running stay valid across an operator
        upgrade."""
        handover = {"version", "others", "starting_book"}
        body = self.model_dump(by_alias=True, mode="json", exclude={"generation", "issued_at", "controls", *handover})
        if self.controls is not None:
            # Unset controls are left out, so declaring a new optional control later moves no hash.
            body["controls"] = self.controls.model_dump(by_alias=True, mode="json", exclude_none=True)
        body.update(self.model_dump(by_alias=True, mode="json", include=handover, exclude_none=True))
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def for_version(self, version: str | None) -> ControlDocument:
        """What a pod of VERSION applies: this document, or, when it names another version (or
        the pod does not know its own), OTHERS (STANDBY by default) with no book to take over."""
        if self.version is None or version == self.version:
            return self
        return self.model_copy(
            update={
                "trading_state": self.others or TradingState.STANDBY,
                "allow_risk_reducing": False,
                "starting_book": None,
            }
        )

    def allows_orders(self) -> bool:
        """Whether a process applying this document may send an order that can fill. The
        handover's invariant is that at most one version's document allows them at any moment."""
        return allows_orders(self.trading_state, self.allow_risk_reducing)

    def same_content(self, other: ControlDocument | None) -> bool:
        return other is not None and other.content_hash() == self.content_hash()


MAX_ACK_BYTES = 16384  # one pod's acknowledgement: a few numbers and its book; anything bigger is not one


class Acknowledgement(_Wire):
    """What one pod applied: written by the SDK under the pod's name in the ack ConfigMap.
    Validated: a figure that is not finite or is negative, or a time without its offset, makes
    the whole acknowledgement unreadable (that pod then counts as not acknowledging)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", allow_inf_nan=False)

    pod: str = Field(min_length=1, max_length=253)
    generation: int = Field(ge=0)
    trading_state: TradingState
    at: AwareDatetime
    position: float | None = None  # signed: short is negative
    open_orders: int | None = Field(default=None, ge=0)
    control_hash: str | None = Field(default=None, max_length=64)  # content_hash() of the document applied
    exposure: float | None = Field(
        default=None, ge=0
    )  # gross exposure, reported by the strategy (exposure-linked kill)
    loss: float | None = Field(default=None, ge=0)  # today's loss as a positive number, reported by the strategy
    # The process's last word, on SIGTERM: its working orders are cancelled and it is exiting.
    exiting: bool | None = None
    # The pod's version (STRATOPS_VERSION), as the SDK applied the document for it; absent from an
    # SDK older than warm handovers, which applies a document addressed to another version as if
    # it were its own (the operator's fleet verification catches it: a P0).
    version: str | None = Field(default=None, max_length=128)
    # The strategy's book: signed quantity by instrument (the position a handover carries over).
    book: dict[str, Annotated[float, Field(allow_inf_nan=False)]] | None = Field(default=None, max_length=200)


def parse_control(data: dict[str, str] | None) -> ControlDocument | None:
    """The control document in an owned control ConfigMap's DATA (None: none written yet).
    ValueError when it cannot be read: a ConfigDrift finding, never a failure of the reconcile."""
    if not data or CONTROL_KEY not in data:
        return None
    return ControlDocument.model_validate_json(data[CONTROL_KEY])


def read_control(data: dict[str, str] | None) -> tuple[ControlDocument | None, str | None]:
    """(document, problem): the document, or None and why it cannot be read."""
    try:
        return parse_control(data), None
    except ValueError as e:
        return None, f"control document unreadable: {str(e).splitlines()[0][:300]}"


def parse_acks(data: dict[str, str] | None) -> dict[str, Acknowledgement]:
    """Acknowledgements by pod name; unreadable entries are skipped (they acknowledge nothing)."""
    return read_acks(data)[0]


def read_acks(data: dict[str, str] | None) -> tuple[dict[str, Acknowledgement], list[str]]:
    """(acknowledgements by pod, problems): an entry counts only if it reads, is small, and is
    written under its own pod's name; the others acknowledge nothing and are said."""
    out: dict[str, Acknowledgement] = {}
    problems = []
    for key, raw in sorted((data or {}).items()):
        if len(raw) > MAX_ACK_BYTES:
            problems.append(f"ack {key}: {len(raw)} bytes, more than {MAX_ACK_BYTES}: ignored")
            continue
        try:
            ack = Acknowledgement.model_validate_json(raw)
        except ValueError as e:
            problems.append(f"ack {key}: unreadable ({str(e).splitlines()[0][:120]}): ignored")
            continue
        if ack.pod != key:
            problems.append(f"ack {key}: names pod {ack.pod}: ignored (a pod acknowledges for itself only)")
            continue
        out[key] = ack
    return out, problems
