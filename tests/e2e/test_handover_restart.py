"""The warm handover survives its operator (issue 19): SIGKILLed at each step, the next operator
finishes it once. KWOK pods, played by the SDK on the host, one agent per pod with its version
and its book, so that the test holds a step for as long as it takes: the pods of one version do
not apply the next document until the test lets them."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest

from lifecycle_helpers import NAME, Desk, strategy_doc
from stratops.lifecycle.control import ControlDocument
from stratops.sdk import ApiAcknowledger, ApiControl, StrategyControl
from stratops.testing.controlplane import operator_process, stop_process
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e
BOOK = {"EURUSD": 250_000.0, "GBPUSD": -40_000.0}


class Held:
    """A control source that, while its version is held, keeps showing the document it showed."""

    def __init__(self, source: ApiControl, pods: Pods, version: str) -> None:
        self.source, self.pods, self.version = source, pods, version
        self.last: ControlDocument | None = None

    def read(self) -> ControlDocument | None:
        if self.version not in self.pods.held or self.last is None:
            self.last = self.source.read()
        return self.last


class Pods:
    """Plays every pod of the strategy as its SDK would: its version from the pod's label, its
    book (the first version's pods hold BOOK; a new one starts flat and takes what it is handed)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.held: set[str] = set()
        self.agents: dict[str, StrategyControl] = {}
        self.books: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                pods = self.desk.core.list_namespaced_pod(
                    self.desk.ns, label_selector=f"stratops.io/strategy={NAME}"
                ).items
            except Exception:  # the namespace going away at the end
                continue
            for p in pods:
                name, version = p.metadata.name, p.metadata.labels.get("stratops.io/version")
                if name in self.agents or p.metadata.deletion_timestamp is not None:
                    continue
                book = self.books[name] = dict(BOOK) if version == "1.4.2" else {}
                agent = StrategyControl(
                    name,
                    Held(ApiControl(self.desk.ns, NAME, self.desk.kube), self, version),
                    ApiAcknowledger(self.desk.ns, NAME, self.desk.kube),
                    version=version,
                    book=lambda b=book: b,
                    take_book=book.update,
                )
                agent.run_in_background(0.1)
                self.agents[name] = agent

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for a in self.agents.values():
            a.stop()


#: What is held to keep the handover at a step: the pods of that version do not apply the next
#: document (the new one does not acknowledge STANDBY; the old one does not acknowledge HALTED;
#: the new one, handed trading, does not acknowledge it).
HOLD = {"Standby": "1.4.3", "HaltingOld": "1.4.2", "ActivatingNew": "1.4.3"}


@pytest.mark.parametrize("step", list(HOLD))
def test_an_operator_killed_at_each_step_finishes_the_handover_once(step, kube, crds, own_namespace, cluster, tmp_path):
    desk = Desk(kube, own_namespace)
    procs: list[Any] = []

    def start() -> None:
        procs.append(
            operator_process(
                cluster.kubeconfig, [own_namespace], tmp_path / "operator.log", env={"STRATOPS_RESYNC_SECONDS": "10"}
            )
        )

    pods = Pods(desk)
    try:
        start()
        policy = {"handover": True, "rolloutDeadline": "120s", "healthyFor": "1s"}
        doc = strategy_doc(rollbackPolicy=policy, killSwitch={"ackDeadline": "120s"})
        doc["spec"].pop("gates")  # no desk gates here: a lapsed daily gate would hold the new version
        desk.create("strategies", doc)
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "1.4.2 known-good", timeout=90)
        pods.held.add("1.4.2" if step == "ActivatingNew" else HOLD[step])
        desk.patch_spec(version="1.4.3")
        if step == "ActivatingNew":  # the old version halts only once the new one is held
            desk.wait_status(lambda s: (s.get("handover") or {}).get("step") == "HaltingOld", "HaltingOld", timeout=60)
            pods.held = {"1.4.3"}
        desk.wait_status(lambda s: (s.get("handover") or {}).get("step") == step, f"at {step}", timeout=60)
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(30)
        pods.held.clear()
        start()
        s = desk.wait_status(
            lambda s: (s.get("handover") or {}).get("step") == "Done" and s.get("lastKnownGood") == "1.4.3",
            "handover done after the restart",
            timeout=120,
        )
    finally:
        pods.stop()
        for p in procs:
            stop_process(p, 30)
    assert s["handover"]["book"] == BOOK
    (pod,) = desk.running_pods()
    assert pods.books[pod] == BOOK  # the new version's pod took the book over
    wait_for(lambda: desk.events("HandoverDone"), timeout=30, what="the done event")
    for reason in ("HandoverStarted", "HandoverHaltingOld", "HandoverActivatingNew", "HandoverDone"):
        assert sum(e.count or 1 for e in desk.events(reason)) == 1, reason
    assert not desk.incidents()
