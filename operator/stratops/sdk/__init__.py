"""The strategy-side SDK: read the control document, enforce it, acknowledge it.

A strategy process does three things with it:

    control = StrategyControl.from_environment()      # in a pod: a watch on the API, the mounted file as fallback
    control.on_change(lambda doc: broker.cancel_all() if doc.trading_state == "HALTED" else None)
    ...
    order = Order(side="buy", quantity=10, instrument="EURUSD", venue="LMAX", price=1.1012)
    decision = control.check(order, position=current_position, reference_price=mid)
    if decision.allowed: broker.submit(...)

`StrategyControl.poll()` (call it in the main loop, or run `run_in_background()`) reads the
control document; when its generation changes it applies it to the guard, runs the callbacks
(cancel open orders on HALTED, for instance), and then acknowledges the generation, so the
operator can verify the action instead of hoping. In a pod the document arrives through a
watch on the API (`WatchControl`: within a second of the operator's write; a mounted ConfigMap
file lags the kubelet's sync period, up to a minute and more), and the mounted file is the
fallback while the API cannot be reached. `serve(control, port)` answers the pod's probes
(/ready once the first document is applied and acknowledged, /live) and Prometheus (/metrics).
On SIGTERM a strategy cancels its working orders and calls `acknowledge_exit()` before it exits:
the operator records, per pod, whether it exited cleanly after HALTED.

The guard is strict, stricter than NautilusTrader's REDUCING: reduce-only means the absolute
position never grows and no order may exceed the open position, so nothing opens from flat.

Before an order is sent the guard also enforces every limit the document declares (RTS 6
Art. 15): allowed instruments and venues, max order volume and value, the price collar around
the reference price, the daily loss (reduce-only once reached), max position, order rate (new
orders per second) and message rate (new, modify and cancel messages per second). It fails
closed: an order that names no instrument or venue where a list is declared, or lacks the price
a collar or value limit needs, is refused. Cancels always pass, but count as messages; under
STANDBY (a new version warming up beside the one that trades) nothing passes, cancels included.
`control.check` passes the loss last given to `report(loss=...)`; `guard.check` takes it as
`loss_today`.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from stratops.lifecycle.control import CONTROL_KEY, Acknowledgement, ControlDocument, PreTradeControls
from stratops.lifecycle.manifests import ack_name, control_name
from stratops.models.strategy import TradingState

Side = Literal["buy", "sell"]


@dataclass(frozen=True)
class Order:
    """An order message the strategy wants to send: a new order, a modify of a working one (checked
    like a new order with the modified side, quantity and price), or a cancel. PRICE is the limit
    price; None is a market order."""

    side: Side
    quantity: float
    kind: Literal["new", "modify", "cancel"] = "new"
    instrument: str | None = None
    venue: str | None = None
    price: float | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def _num(x: float) -> str:
    return f"{x:.12g}"  # enough digits that "exceeds" never reads as two equal numbers


def _names(allowed: Sequence[str]) -> str:
    shown = ", ".join(allowed[:5])
    return f"[{shown}{f', ... ({len(allowed)} in all)' if len(allowed) > 5 else ''}]"


def _in_list(what: str, value: str | None, allowed: list[str] | None) -> Decision | None:
    if allowed is None:
        return None
    if value is None:
        return Decision(False, f"order names no {what}: allowed {what}s are {_names(allowed)}")
    if value not in allowed:
        return Decision(False, f"{what} {value} is not among the allowed {what}s {_names(allowed)}")
    return None


def _controls_refusal(order: Order, c: PreTradeControls, reference_price: float | None) -> Decision | None:
    """The first pre-trade control ORDER breaks, in the order RTS 6 Art. 15 lists them; None: none."""
    refused = _in_list("instrument", order.instrument, c.instruments) or _in_list("venue", order.venue, c.venues)
    if refused:
        return refused
    if c.max_order_volume is not None and order.quantity > c.max_order_volume:
        return Decision(
            False, f"order volume {_num(order.quantity)} exceeds max order volume {_num(c.max_order_volume)}"
        )
    if c.price_collar_bps is not None:
        bps = c.price_collar_bps
        if reference_price is None or reference_price <= 0:
            return Decision(
                False, f"price collar {_num(bps)} bps needs a positive reference price, got {reference_price}"
            )
        # Compared without dividing, so an order exactly at the collar passes.
        if order.price is not None and abs(order.price - reference_price) * 10_000 > bps * reference_price:
            away = abs(order.price - reference_price) / reference_price * 10_000
            return Decision(
                False,
                f"price {_num(order.price)} is {away:.4g} bps from reference "
                f"{_num(reference_price)}, exceeds price collar {_num(bps)} bps",
            )
    if c.max_order_value is not None:
        price = order.price if order.price is not None else reference_price
        if price is None:
            return Decision(
                False,
                f"order value unknown (no limit price, no reference price), max order value {_num(c.max_order_value)}",
            )
        value = order.quantity * abs(price)
        if value > c.max_order_value:
            return Decision(False, f"order value {_num(value)} exceeds max order value {_num(c.max_order_value)}")
    return None


class OrderGuard:
    """Pre-trade checks against the control document in force. Fail closed: without a
    control document nothing but cancels passes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.doc: ControlDocument | None = None
        self._clock = clock
        self._sent: deque[float] = deque()  # new orders in the last second
        self._messages: deque[float] = deque()  # new, modify and cancel messages in the last second

    def apply(self, doc: ControlDocument) -> None:
        self.doc = doc

    def check(
        self, order: Order, position: float, *, reference_price: float | None = None, loss_today: float | None = None
    ) -> Decision:
        """Whether ORDER may be sent with the strategy's current signed POSITION.

        REFERENCE_PRICE is the instrument's current reference (mid or last), needed when the
        document declares a price collar, and for a market order's value when it declares a
        max order value. LOSS_TODAY is today's loss as a positive number; None means unknown,
        and then the daily loss limit is not checked here (the operator still checks reported
        losses). Whatever is allowed is counted toward the rates (a new order toward both, a
        modify or cancel toward the message rate only): call check only for messages then sent.
        """
        if self.doc is not None and self.doc.trading_state == TradingState.STANDBY:
            # A version on standby owns no order: a cancel from it could only hit the orders of
            # the version that trades (same account, same instruments). Nothing passes, and
            # nothing is counted toward the rates.
            return Decision(
                False, "STANDBY: this version trades nothing, not even a cancel, until it is handed trading"
            )
        if order.kind == "cancel":
            # Cancels always pass (they only ever reduce risk) but use up the message budget.
            now = self._clock()
            self._prune(self._messages, now)
            self._messages.append(now)
            return Decision(True)
        if not order.quantity > 0:  # also refuses NaN
            return Decision(False, "quantity must be positive")
        # A NaN compares false with every limit, so it would pass them all: fail closed instead.
        for name, x in (
            ("quantity", order.quantity),
            ("price", order.price),
            ("reference price", reference_price),
            ("loss today", loss_today),
        ):
            if x is not None and not math.isfinite(x):
                return Decision(False, f"{name} must be a finite number, got {x}")
        doc = self.doc
        if doc is None:
            return Decision(False, "no control document applied yet: only cancels are allowed")
        signed = order.quantity if order.side == "buy" else -order.quantity
        after = position + signed
        reduces = position != 0 and (signed > 0) != (position > 0) and order.quantity <= abs(position)
        state = doc.trading_state
        if state == TradingState.HALTED and not (doc.allow_risk_reducing and reduces):
            return Decision(
                False, "HALTED: only cancels" + (" and risk-reducing orders" if doc.allow_risk_reducing else "")
            )
        if state == TradingState.REDUCING and not reduces:
            return Decision(False, f"REDUCING: order must reduce the position ({position:g}) without exceeding it")
        if doc.controls is not None:
            refused = _controls_refusal(order, doc.controls, reference_price)
            if refused:
                return refused
        max_loss = doc.limits.max_daily_loss
        if loss_today is not None and loss_today >= max_loss and not reduces:
            return Decision(
                False,
                f"daily loss {_num(loss_today)} reached max daily loss {_num(max_loss)}: "
                f"order must reduce the position ({position:g}) without exceeding it",
            )
        # A risk-reducing order under HALTED is not held to max position (as before controls existed).
        if state != TradingState.HALTED and abs(after) > doc.limits.max_position:
            return Decision(False, f"position {after:g} would exceed max position {doc.limits.max_position:g}")
        return self._rate_limited(order.kind)

    @staticmethod
    def _prune(window: deque[float], now: float) -> None:
        while window and now - window[0] >= 1.0:
            window.popleft()

    def _rate_limited(self, kind: Literal["new", "modify"]) -> Decision:
        assert self.doc is not None
        now = self._clock()
        self._prune(self._sent, now)
        self._prune(self._messages, now)
        max_rate = self.doc.limits.max_order_rate
        if kind == "new" and len(self._sent) + 1 > max_rate:
            return Decision(False, f"order rate {len(self._sent) + 1}/s would exceed max order rate {max_rate:g}/s")
        max_messages = self.doc.controls.max_message_rate if self.doc.controls else None
        if max_messages is not None and len(self._messages) + 1 > max_messages:
            return Decision(
                False, f"message rate {len(self._messages) + 1}/s would exceed max message rate {_num(max_messages)}/s"
            )
        if kind == "new":
            self._sent.append(now)
        self._messages.append(now)
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


class WatchControl:
    """The control document followed through a watch on its ConfigMap (the operator's write
    reaches the strategy in well under a second), with the mounted file as the fallback while
    the API cannot be reached. `changed` is set on each new document, so a loop can wake at once."""

    def __init__(
        self,
        namespace: str,
        strategy: str,
        api: object | None = None,
        fallback: FileControl | None = None,
        retry: float = 1.0,
    ) -> None:
        from kubernetes import client

        from stratops.k8s.client import api_client

        self.core = client.CoreV1Api(api or api_client())
        self.namespace, self.name = namespace, control_name(strategy)
        self.fallback, self.retry = fallback, retry
        self.changed = threading.Event()
        self.connected = False
        self._doc: ControlDocument | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"stratops-watch-{self.name}", daemon=True)
        self._thread.start()

    def _take(self, raw: str | None) -> None:
        if not raw:
            return
        try:
            doc = ControlDocument.model_validate_json(raw)
        except ValueError:
            return  # unreadable: keep what was in force (the operator reports and rewrites it)
        if self._doc is None or doc.generation > self._doc.generation:
            self._doc = doc
            self.changed.set()

    def _follow(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(
                    self.core.list_namespaced_config_map,
                    self.namespace,
                    field_selector=f"metadata.name={self.name}",
                    timeout_seconds=60,
                    _request_timeout=(5, 90),
                ):
                    self.connected = True
                    self._take(((event.get("object") and event["object"].data) or {}).get(CONTROL_KEY))
                    if self._stop.is_set():
                        break
            except Exception:  # the API is away: the file serves until it is back
                self.connected = False
                self.changed.set()  # let the loop look at the file now
            finally:
                w.stop()
            self._stop.wait(self.retry)

    def read(self) -> ControlDocument | None:
        doc = self._doc
        if self.fallback is not None:
            # Always compared, not only while disconnected: a watch stuck on a half-open
            # connection looks connected, and the file (a sync period late) then still wins.
            mounted = self.fallback.read()
            if mounted is not None and (doc is None or mounted.generation > doc.generation):
                doc = mounted
        return doc

    def stop(self) -> None:
        self._stop.set()


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

    def __init__(
        self,
        pod: str,
        source: ControlSource,
        acknowledger: Acknowledger,
        position: Callable[[], float] = lambda: 0.0,
        open_orders: Callable[[], int] = lambda: 0,
        *,
        version: str | None = None,
        book: Callable[[], Mapping[str, float]] | None = None,
        take_book: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        """POSITION and OPEN_ORDERS report the strategy's book in every acknowledgement, and BOOK
        (signed quantity by instrument) the book itself: a version that reports it can be handed
        over warm. VERSION is this process's version (STRATOPS_VERSION in a pod): during a warm
        handover the document names the version that may trade, and every other version stands
        by (or halts); a process that does not know its version never trades on a document that
        names one. TAKE_BOOK sets the book at a warm handover: when this process, on STANDBY, is
        handed trading with the book the old version reported (`starting_book`), it is called
        with it before the acknowledgement, which then confirms it. Only then: a process that
        starts later, or that never stood by, keeps its own book (a mismatch is the operator's
        finding, never silently overwritten)."""
        self.pod = pod
        self.source = source
        self.acknowledger = acknowledger
        self.guard = OrderGuard()
        self.position, self.open_orders = position, open_orders
        self.version, self.book, self.take_book = version, book, take_book
        self.applied: ControlDocument | None = None  # as applied for this version
        self._applied_hash: str | None = None  # the content hash of the document as written
        self._callbacks: list[Callable[[ControlDocument], None]] = []
        self._reported: dict[str, float | None] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the main loop and run_in_background may both poll

    @classmethod
    def from_environment(cls, **kw: object) -> StrategyControl:
        """In a pod started by stratops: its identity and version from the environment, the control
        document through a watch on the API (as the pod's own ServiceAccount, which may read only
        it), the mounted file while the API cannot be reached."""
        ns, strategy, pod = (os.environ[k] for k in ("STRATOPS_NAMESPACE", "STRATOPS_STRATEGY", "STRATOPS_POD_NAME"))
        path = os.environ.get("STRATOPS_CONTROL_FILE")
        source = WatchControl(ns, strategy, fallback=FileControl(path) if path else None)
        kw.setdefault("version", os.environ.get("STRATOPS_VERSION") or None)
        return cls(pod, source, ApiAcknowledger(ns, strategy), **kw)  # type: ignore[arg-type]

    def on_change(self, callback: Callable[[ControlDocument], None]) -> None:
        """Run CALLBACK with each new control document (as it applies to this version) before it
        is acknowledged."""
        self._callbacks.append(callback)

    def poll(self) -> ControlDocument | None:
        """Read the control document; apply and acknowledge a new generation. Returns it, as it
        applies to this version."""
        with self._lock:
            return self._poll()

    def _poll(self) -> ControlDocument | None:
        written = self.source.read()
        if written is None or (self.applied is not None and written.generation <= self.applied.generation):
            return self.applied
        doc = written.for_version(self.version)
        handed = (
            doc.starting_book is not None
            and self.applied is not None
            and self.applied.trading_state == TradingState.STANDBY
            and doc.trading_state != TradingState.STANDBY
        )
        if handed and self.take_book is not None:
            self.take_book(dict(doc.starting_book or {}))
        self.guard.apply(doc)
        for cb in self._callbacks:
            cb(doc)  # e.g. cancel every working order on HALTED: must finish before the ack
        self.applied, self._applied_hash = doc, written.content_hash()
        self.acknowledger.acknowledge(self._acknowledgement())
        return doc

    def _acknowledgement(self, exiting: bool | None = None) -> Acknowledgement:
        """This pod's acknowledgement of the document applied, with its book and what it reported."""
        doc = self.applied
        assert doc is not None
        return Acknowledgement(
            pod=self.pod,
            generation=doc.generation,
            trading_state=doc.trading_state,
            at=datetime.now(UTC),
            position=self.position(),
            open_orders=self.open_orders(),
            control_hash=self._applied_hash,
            exiting=exiting,
            version=self.version,
            book=dict(self.book()) if self.book is not None else None,
            **self._reported,
        )

    def report(self, exposure: float | None = None, loss: float | None = None) -> None:
        """Report gross exposure and today's loss (positive) to the operator, which checks them
        against the strategy's exposure-linked monitors on every report. Call it whenever they
        change; it re-acknowledges the applied generation with the new figures."""
        if self.applied is None:
            raise RuntimeError("report() before the first control document was applied: call poll() first")
        self._reported = {"exposure": exposure, "loss": loss}  # carried on every later acknowledgement
        self.acknowledger.acknowledge(self._acknowledgement())

    def acknowledge_exit(self) -> None:
        """The process's last acknowledgement, on SIGTERM once its working orders are cancelled:
        the operator records from it that the pod exited cleanly after HALTED. Best effort (the
        API may be away; the operator then records the exit as unclean)."""
        with self._lock:
            if self.applied is None:
                return
            try:
                self.acknowledger.acknowledge(self._acknowledgement(exiting=True))
            except Exception:  # exiting either way
                return

    def check(self, order: Order, position: float, *, reference_price: float | None = None) -> Decision:
        """`guard.check` with today's loss as last given to `report(loss=...)` (unknown before)."""
        return self.guard.check(order, position, reference_price=reference_price, loss_today=self._reported.get("loss"))

    def run_in_background(self, interval: float = 0.2) -> threading.Thread:
        """Poll every INTERVAL seconds, and at once when the source says a document changed."""
        changed: threading.Event | None = getattr(self.source, "changed", None)

        def loop() -> None:
            while not self._stop.is_set():
                if changed is not None:
                    changed.wait(interval)
                    changed.clear()
                elif self._stop.wait(interval):
                    break
                try:
                    self.poll()
                except Exception:  # a failed read or ack is retried; the operator times out on us
                    continue

        t = threading.Thread(target=loop, name=f"stratops-control-{self.pod}", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()
        if hasattr(self.source, "stop"):
            self.source.stop()


def serve(
    control: StrategyControl,
    port: int = 8080,
    address: str = "0.0.0.0",
    registry: object | None = None,
    actions: dict[str, Callable[[], str]] | None = None,
) -> Any:
    """The pod's probes and metrics on PORT: /ready (200 once the first control document is
    applied and acknowledged: before that the strategy must not count as able to trade), /live,
    and /metrics (prometheus-client's registry, or REGISTRY). ACTIONS are the strategy's own POST
    paths (its answer is the body; an exception is a 500). Returns the server (shutdown())."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    reg = registry or REGISTRY

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            if self.path.startswith("/metrics"):
                body, ctype, code = generate_latest(reg), CONTENT_TYPE_LATEST, 200  # type: ignore[arg-type]
            elif self.path.startswith("/ready"):
                ok = control.applied is not None
                body, ctype, code = (
                    (b"ready\n" if ok else b"no control document applied yet\n"),
                    "text/plain",
                    200 if ok else 503,
                )
            elif self.path.startswith("/live"):
                body, ctype, code = b"live\n", "text/plain", 200
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # http.server's name
            action = (actions or {}).get(self.path.split("?")[0])
            try:
                body, code = ((action() + "\n").encode(), 200) if action else (b"not found\n", 404)
            except Exception as e:  # the caller reads why
                body, code = f"{e}\n".encode(), 500
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return  # probes every few seconds: not worth a log line each

    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, name="stratops-probes", daemon=True).start()
    return server


__all__ = [
    "ApiAcknowledger",
    "ApiControl",
    "Decision",
    "FileControl",
    "Order",
    "OrderGuard",
    "StrategyControl",
    "WatchControl",
    "serve",
]
