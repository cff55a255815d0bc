"""The control document: what the operator tells a strategy's pods, and their acknowledgement.

The operator writes it into the control ConfigMap (mounted into the pod); the strategy-side SDK
applies it and acknowledges the generation it applied, so that an action is verified rather
than hoped for.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from stratops.models.strategy import EffectiveLimits, Mode, RiskLimits, TradingState

CONTROL_KEY = "control.json"
MOUNT_PATH = "/etc/stratops/control"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


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
        max_order_value=limits.max_order_value, max_order_volume=limits.max_order_volume,
        price_collar_bps=limits.price_collar_bps, max_message_rate=limits.max_message_rate,
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

    def content_hash(self) -> str:
        """SHA-256 of what the strategy must apply (generation and time excluded). A document
        without controls hashes as documents did before controls existed, so acknowledgements
        from pods already running stay valid across an operator upgrade."""
        body = self.model_dump(by_alias=True, mode="json", exclude={"generation", "issued_at", "controls"})
        if self.controls is not None:
            # Unset controls are left out, so declaring a new optional control later moves no hash.
            body["controls"] = self.controls.model_dump(by_alias=True, mode="json", exclude_none=True)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def same_content(self, other: "ControlDocument | None") -> bool:
        return other is not None and other.content_hash() == self.content_hash()


class Acknowledgement(_Wire):
    """What one pod applied: written by the SDK under the pod's name in the ack ConfigMap."""

    pod: str
    generation: int = Field(ge=0)
    trading_state: TradingState
    at: datetime
    position: float | None = None
    open_orders: int | None = None
    control_hash: str | None = None  # content_hash() of the document applied: fleet verification
    exposure: float | None = None  # gross exposure, reported by the strategy (exposure-linked kill)
    loss: float | None = None  # today's loss as a positive number, reported by the strategy


def parse_control(data: dict[str, str] | None) -> ControlDocument | None:
    if not data or CONTROL_KEY not in data:
        return None
    return ControlDocument.model_validate_json(data[CONTROL_KEY])


def parse_acks(data: dict[str, str] | None) -> dict[str, Acknowledgement]:
    """Acknowledgements by pod name; unreadable entries are skipped (they acknowledge nothing)."""
    out: dict[str, Acknowledgement] = {}
    for pod, raw in (data or {}).items():
        try:
            out[pod] = Acknowledgement.model_validate_json(raw)
        except ValueError:
            continue
    return out
