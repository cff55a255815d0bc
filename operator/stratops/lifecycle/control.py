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

from stratops.models.strategy import EffectiveLimits, Mode, TradingState

CONTROL_KEY = "control.json"
MOUNT_PATH = "/etc/stratops/control"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class BrokerInUse(_Wire):
    name: str
    endpoint: str


class ControlDocument(_Wire):
    """The trading state, effective limits and broker a strategy must apply."""

    strategy: str
    generation: int = Field(ge=1)
    trading_state: TradingState
    mode: Mode
    limits: EffectiveLimits
    broker: BrokerInUse
    allow_risk_reducing: bool = False
    reason: str = ""
    issued_at: datetime | None = None

    def content_hash(self) -> str:
        """SHA-256 of what the strategy must apply (generation and time excluded)."""
        body = self.model_dump(by_alias=True, mode="json", exclude={"generation", "issued_at"})
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
