"""The strategy-side SDK: read the control document, enforce it, acknowledge it.

A strategy process does three things with it:

    control = StrategyControl.from_environment()      # mounted file in a pod; API for local runs
    control.on_change(lambda doc: broker.cancel_all() if doc.trading_state == "HALTED" else None)
    ...
    decision = control.guard.check(Order(side="buy", quantity=10), position=current_position)
    if decision.allowed: broker.submit(...)

`StrategyControl.poll()` (call it in the main loop, or run `run_in_background()`) reads the
control document; when its generation changes it applies it to the guard, runs the callbacks
(cancel open orders on HALTED, for instance), and then acknowledges the generation, so the
operator can verify the action instead of hoping.

The guard is strict, stricter than NautilusTrader's REDUCING: reduce-only means the absolute
position never grows and no order may exceed the open position, so nothing opens from flat.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, Protocol

from stratops.lifecycle.control import CONTROL_KEY, Acknowledgement, ControlDocument
from stratops.lifecycle.manifests import ack_name, control_name
from stratops.models.strategy import TradingState

Side = Literal["buy", "sell"]


@dataclass(frozen=True)
class Order:
    """An order the strategy wants to send: a new order, or a cancel of a working one."""

    side: Side
    quantity: float
    kind: Literal["new", "cancel"] = "new"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


class OrderGuard:
    """Pre-trade checks against the control document in force. Fail closed: without a
    control document nothing but cancels passes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.doc: ControlDocument | None = None
        self._clock = clock
        self._sent: deque[float] = deque()

    def apply(self, doc: ControlDocument) -> None:
        self.doc = doc

    def check(self, order: Order, position: float) -> Decision:
        """Whether ORDER may be sent with the strategy's current signed POSITION."""
        if order.kind == "cancel":
            return Decision(True)  # cancels always pass: they only ever reduce risk
        if order.quantity <= 0:
            return Decision(False, "quantity must be positive")
        doc = self.doc
        if doc is None:
            return Decision(False, "no control document applied yet: only cancels are allowed")
        signed = order.quantity if order.side == "buy" else -order.quantity
        after = position + signed
        reduces = position != 0 and (signed > 0) != (position > 0) and order.quantity <= abs(position)
        state = doc.trading_state
        if state == TradingState.HALTED:
            if doc.allow_risk_reducing and reduces:
                return self._rate_limited()
            return Decision(False, "HALTED: only cancels" + (" and risk-reducing orders" if doc.allow_risk_reducing else ""))
        if state == TradingState.REDUCING and not reduces:
            return Decision(False, f"REDUCING: order must reduce the position ({position:g}) without exceeding it")
        if abs(after) > doc.limits.max_position:
            return Decision(False, f"position {after:g} would exceed max position {doc.limits.max_position:g}")
        return self._rate_limited()

    def _rate_limited(self) -> Decision:
        assert self.doc is not None
        now = self._clock()
        while self._sent and now - self._sent[0] >= 1.0:
            self._sent.popleft()
        if len(self._sent) + 1 > self.doc.limits.max_order_rate:
            return Decision(False, f"order rate above {self.doc.limits.max_order_rate:g}/s")
        self._sent.append(now)
        return Decision(True)


class ControlSource(Protocol):
    def read(self) -> ControlDocument | None: ...


class Acknowledger(Protocol):
    def acknowledge(self, ack: Acknowledgement) -> None: ...


class FileControl:
    """The control document mounted into the pod (ConfigMap volume)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> ControlDocument | None:
        try:
            return ControlDocument.model_validate_json(self.path.read_text())
        except (OSError, ValueError):
            return None


class ApiControl:
    """The control document read from the API (local runs, or faster than a volume update)."""

    def __init__(self, namespace: str, strategy: str, api: object | None = None) -> None:
        from kubernetes import client

        from stratops.k8s.client import api_client

        self.core = client.CoreV1Api(api or api_client())
        self.namespace, self.name = namespace, control_name(strategy)

    def read(self) -> ControlDocument | None:
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.core.read_namespaced_config_map(self.name, self.namespace)
        except ApiException:
            return None
        raw = (cm.data or {}).get(CONTROL_KEY)
        return ControlDocument.model_validate_json(raw) if raw else None


class ApiAcknowledger:
    """Writes this pod's acknowledgement into the strategy's ack ConfigMap (its own key only)."""

    def __init__(self, namespace: str, strategy: str, api: object | None = None) -> None:
        from kubernetes import client

        from stratops.k8s.client import api_client

        self.core = client.CoreV1Api(api or api_client())
        self.namespace, self.name = namespace, ack_name(strategy)

    def acknowledge(self, ack: Acknowledgement) -> None:
        self.core.patch_namespaced_config_map(self.name, self.namespace, {"data": {ack.pod: ack.to_json()}})


class StrategyControl:
    """Follows the control document, enforces it through `guard`, acknowledges each generation."""

    def __init__(self, pod: str, source: ControlSource, acknowledger: Acknowledger,
                 position: Callable[[], float] = lambda: 0.0, open_orders: Callable[[], int] = lambda: 0) -> None:
        self.pod = pod
        self.source = source
        self.acknowledger = acknowledger
        self.guard = OrderGuard()
        self.position, self.open_orders = position, open_orders
        self.applied: ControlDocument | None = None
        self._callbacks: list[Callable[[ControlDocument], None]] = []
        self._stop = threading.Event()

    @classmethod
    def from_environment(cls, **kw: object) -> "StrategyControl":
        """In a pod started by stratops: the mounted file and the pod's identity from env."""
        ns, strategy, pod = (os.environ[k] for k in ("STRATOPS_NAMESPACE", "STRATOPS_STRATEGY", "STRATOPS_POD_NAME"))
        path = os.environ.get("STRATOPS_CONTROL_FILE")
        source: ControlSource = FileControl(path) if path and Path(path).exists() else ApiControl(ns, strategy)
        return cls(pod, source, ApiAcknowledger(ns, strategy), **kw)  # type: ignore[arg-type]

    def on_change(self, callback: Callable[[ControlDocument], None]) -> None:
        """Run CALLBACK with each new control document before it is acknowledged."""
        self._callbacks.append(callback)

    def poll(self) -> ControlDocument | None:
        """Read the control document; apply and acknowledge a new generation. Returns it."""
        doc = self.source.read()
        if doc is None or (self.applied is not None and doc.generation <= self.applied.generation):
            return self.applied
        self.guard.apply(doc)
        for cb in self._callbacks:
            cb(doc)  # e.g. cancel every working order on HALTED: must finish before the ack
        self.applied = doc
        self.acknowledger.acknowledge(Acknowledgement(
            pod=self.pod, generation=doc.generation, trading_state=doc.trading_state,
            at=datetime.now(timezone.utc), position=self.position(), open_orders=self.open_orders(),
            control_hash=doc.content_hash()))
        return doc

    def run_in_background(self, interval: float = 0.2) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 - a failed read or ack is retried; the operator times out on us
                    continue

        t = threading.Thread(target=loop, name=f"stratops-control-{self.pod}", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()


__all__ = ["Order", "Decision", "OrderGuard", "StrategyControl", "FileControl", "ApiControl", "ApiAcknowledger"]
