"""The warm handover with the example strategy as real containers on the real node (issue 19):
a new version starts on STANDBY beside the one that trades, is handed trading and the book once
Ready, and a bad version never stops the good one. What the pods applied is read from their own
acknowledgements, as a watch delivered them."""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle_helpers import Desk
from stratops.lifecycle.control import Acknowledgement, ControlDocument
from stratops.lifecycle.manifests import ack_name, control_name
from stratops.models.strategy import TradingState
from stratops.testing.wait import wait_for
from test_real_pods import ConfigMapLog, ready_pods, real_strategy

pytestmark = pytest.mark.e2e
NAME = "mean-revert"
TRADES = {TradingState.ACTIVE.value, TradingState.REDUCING.value}


def warm_strategy(version: str = "1.4.2", rollout_deadline: str = "60s") -> dict[str, Any]:
    doc = real_strategy(version=version, rollout_deadline=rollout_deadline)
    doc["spec"]["rollbackPolicy"]["handover"] = True
    return doc


class Timeline:
    """What each pod acknowledged, in the order the watch delivered it: (time, pod, version,
    state, generation, book)."""

    def __init__(self, log: ConfigMapLog) -> None:
        self.rows: list[tuple[float, str, str | None, str, int, dict[str, float] | None]] = []
        seen: set[tuple[str, int, str]] = set()
        for t, name, data in list(log.seen):
            if name != ack_name(NAME):
                continue
            for pod, raw in sorted(data.items()):
                a = Acknowledgement.model_validate_json(raw)
                key = (pod, a.generation, a.trading_state.value)
                if key not in seen:
                    seen.add(key)
                    self.rows.append((t, pod, a.version, a.trading_state.value, a.generation, a.book))

    def first(self, version: str, states: set[str]) -> tuple[float, str, str | None, str, int, Any] | None:
        return next((r for r in self.rows if r[2] == version and r[3] in states), None)

    def states(self, version: str) -> list[str]:
        return [r[3] for r in self.rows if r[2] == version]


def documents(log: ConfigMapLog) -> list[ControlDocument]:
    """Every control document the watch delivered."""
    return [ControlDocument.model_validate_json(d["control.json"]) for _, n, d in log.seen if n == control_name(NAME)]


@pytest.fixture
def desk(kube, namespace, operator, strategy_image) -> Desk:
    return Desk(kube, namespace)


def test_a_good_version_is_handed_trading_and_its_book_with_never_two_versions_trading(desk):
    desk.create("strategies", warm_strategy())
    (old_pod,) = ready_pods(desk)
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "1.4.2 known-good", timeout=60)
    log = ConfigMapLog(desk.core, desk.ns)
    wait_for(lambda: log.first(ack_name(NAME), lambda d: d), timeout=30, what="the acks watched")
    desk.patch_spec(version="1.4.3")
    s = desk.wait_status(
        lambda s: (s.get("handover") or {}).get("step") == "Done" and s.get("lastKnownGood") == "1.4.3",
        "handover done, 1.4.3 known-good",
        timeout=150,
    )
    (new_pod,) = ready_pods(desk)
    log.stop()
    tl = Timeline(log)
    assert new_pod.metadata.labels["stratops.io/version"] == "1.4.3"
    # The old version traded until it was told HALTED; the new one stood by until it was handed
    # trading, which came only after the old one had acknowledged HALTED with its orders cancelled.
    old_states, new_states = tl.states("1.4.2"), tl.states("1.4.3")
    assert old_states[: old_states.index("HALTED")] and set(old_states[: old_states.index("HALTED")]) <= TRADES
    assert new_states[0] == "STANDBY" and set(new_states[: new_states.index("ACTIVE")]) == {"STANDBY"}
    halted = tl.first("1.4.2", {"HALTED"})
    handed = tl.first("1.4.3", TRADES)
    assert halted is not None and handed is not None and halted[0] <= handed[0] and halted[4] < handed[4]
    # Nothing traded between the two: at most the step itself, within its acknowledgement deadline.
    gap = handed[0] - halted[0]
    print(f"no version trading for {gap:.3f}s (HALTED acknowledged -> the new version's first trading ack)")
    assert gap < 20.0
    # The book: reported by the old version as it halted, handed over, confirmed by the new one.
    assert halted[5] and s["handover"]["book"] == halted[5] == handed[5]
    # Every document written named at most one version that may trade.
    for doc in documents(log):
        assert doc.version is None or doc.others in (TradingState.STANDBY, TradingState.HALTED)
    steps = sorted(e.reason for e in desk.events() if e.reason.startswith("Handover"))
    assert steps == sorted(["HandoverStarted", "HandoverHaltingOld", "HandoverActivatingNew", "HandoverDone"])
    assert not desk.incidents()
    assert old_pod.metadata.name not in [p.metadata.name for p in ready_pods(desk)]


def test_a_version_that_never_gets_ready_never_stops_the_good_one(desk):
    desk.create("strategies", warm_strategy(rollout_deadline="20s"))
    (old_pod,) = ready_pods(desk)
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "1.4.2 known-good", timeout=60)
    log = ConfigMapLog(desk.core, desk.ns)
    wait_for(lambda: log.first(ack_name(NAME), lambda d: d), timeout=30, what="the acks watched")
    desk.patch_spec(version="crash-1.4.4")  # exits at start: never Ready
    s = desk.wait_status(lambda s: (s.get("handover") or {}).get("step") == "Aborted", "handover aborted", timeout=90)
    assert "not Ready within 20s" in s["handover"]["reason"]
    assert any(b["version"] == "crash-1.4.4" for b in s.get("blockedVersions") or [])
    (pod,) = ready_pods(desk)  # the crashing pods gone, the same old pod left
    assert pod.metadata.name == old_pod.metadata.name and pod.status.container_statuses[0].restart_count == 0
    log.stop()
    assert set(Timeline(log).states("1.4.2")) <= TRADES, "the good version was never told to stop"
    [inc] = desk.incidents()
    assert inc["spec"]["severity"] == "P1" and "aborted" in inc["spec"]["summary"]
    assert desk.wait_status(lambda s: s.get("phase") == "Running", "Running on 1.4.2")["activeVersion"] == "1.4.2"


def test_an_old_version_that_does_not_halt_is_stopped_and_a_trader_releases_the_new_one(
    desk, namespace, cluster, kube, tmp_path
):
    """The old version ignores HALTED (a hung process): at the acknowledgement deadline it is
    scaled to 0 and the new one stands by until a person decides. Tina (the chart's trader Role)
    records the broker's reconciliation and releases the handover from the book she reconciled."""
    from typer.testing import CliRunner

    from chart import grant_traders
    from stratops.cli.main import app

    grant_traders(kube, namespace, ["tina"], tmp_path)
    tina = cluster.user_kubeconfig("tina")

    def as_tina(*args: str) -> str:
        res = CliRunner().invoke(app, [*args, "-n", namespace], env={"KUBECONFIG": str(tina), "COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        return res.output

    doc = warm_strategy()
    doc["spec"]["podTemplate"]["env"] = [{"name": "EXAMPLE_IGNORE_HALTED", "value": "1"}]
    desk.create("strategies", doc)
    ready_pods(desk)
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "1.4.2 known-good", timeout=60)
    desk.patch_spec(version="1.4.3")
    s = desk.wait_status(lambda s: (s.get("handover") or {}).get("step") == "Held", "handover held", timeout=120)
    assert "HALTED not acknowledged" in s["handover"]["reason"]
    (pod,) = ready_pods(desk)  # the old version stopped; the new one stands by
    assert pod.metadata.labels["stratops.io/version"] == "1.4.3"
    assert "Held" in as_tina("describe", NAME)
    as_tina("reconcile", NAME, "--result", "Matched", "--evidence", "broker statement: EURUSD 250000")
    out = as_tina(
        "handover", "release", NAME, "--reason", "old version hung; book reconciled", "--book", "EURUSD=250000"
    )
    assert "released" in out
    s = desk.wait_status(lambda s: (s.get("handover") or {}).get("step") == "Done", "handover done", timeout=60)
    assert s["handover"]["book"] == {"EURUSD": 250000.0}
    ack = Acknowledgement.model_validate_json(
        desk.core.read_namespaced_config_map(ack_name(NAME), desk.ns).data[pod.metadata.name]
    )
    assert ack.trading_state == TradingState.ACTIVE and ack.version == "1.4.3" and "EURUSD" in (ack.book or {})
    # Done only once the new version's acknowledgement confirmed the book it was handed (it has
    # traded since, so its latest acknowledgement need not show it any more).
    done = wait_for(lambda: desk.events("HandoverDone"), timeout=30, what="the HandoverDone event")
    assert "trades from book EURUSD 250000" in done[0].message, done[0].message
    assert ["released by tina" in e.message for e in desk.events("HandoverReleased")] == [True]
    assert [i["spec"]["severity"] for i in desk.incidents()] == ["P0"]
