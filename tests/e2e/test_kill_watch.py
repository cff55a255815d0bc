"""The kill watch on the local cluster (stratops.k8s.killwatch): a trader's kill lands, HALTED,
scaled to 0, latched, completed and on the audit chain, while no reconcile takes it up. The
namespace is one the session operator does not serve, so kopf acts on nothing there: the watch
alone carries the kill out, as it does next to a kopf whose handlers are stuck."""

from __future__ import annotations

import threading
import time

import pytest
from typer.testing import CliRunner

from chart import grant_traders
from lifecycle_helpers import NAME, Desk, strategy_doc
from stratops.cli.main import app
from stratops.k8s.executor import Executor
from stratops.k8s.killwatch import KillWatch, serves
from stratops.lifecycle import manifests
from stratops.lifecycle.killwatch import overdue
from stratops.models.strategy import StrategySpec
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e
GRACE = 2.0


def _cli(args: list[str], kubeconfig: object) -> tuple[int, str]:
    res = CliRunner().invoke(app, args, env={"KUBECONFIG": str(kubeconfig), "COLUMNS": "200"})
    return res.exit_code, res.output


def _trader(cluster, kube, namespace: str, tmp_path) -> object:
    """tina, with the chart's trader Role in NAMESPACE, as rendered."""
    grant_traders(kube, namespace, ["tina"], tmp_path)
    return cluster.user_kubeconfig("tina")


def test_a_kill_lands_while_no_reconcile_takes_it_up(cluster, kube, crds, operator, own_namespace, tmp_path):
    # `operator`: the admission stack as a desk has it (the kill's `by` is checked); it serves
    # t-*, not this namespace.
    ns = own_namespace
    desk = Desk(kube, ns)
    tina = _trader(cluster, kube, ns, tmp_path)
    created = desk.create("strategies", strategy_doc())
    # What the operator had made before its handlers stalled: the Deployment, its pod running.
    spec = StrategySpec.model_validate(created["spec"])
    operator = Executor(cluster.api_client())  # the operator's writes (an administrator runs it)
    operator.ensure_identity(ns, NAME, created["metadata"]["uid"])
    desk.apps.create_namespaced_deployment(
        ns, manifests.deployment(NAME, ns, created["metadata"]["uid"], spec, "1.4.2", 1)
    )
    wait_for(
        lambda: [
            p
            for p in desk.core.list_namespaced_pod(ns, label_selector=f"{manifests.LABEL_STRATEGY}={NAME}").items
            if p.status.phase == "Running"
        ],
        timeout=60,
        what="the strategy's pod running",
    )

    acting = threading.Event()  # a standby first: it sees the kill and must not act
    watch = KillWatch(operator, [ns], serves([ns]), acting.is_set, GRACE, tick=0.2).start()
    try:
        code, out = _cli(["kill", NAME, "-n", ns, "--reason", "runaway orders", "--no-wait"], tina)
        assert code == 0, out
        wait_for(lambda: watch.waiting, timeout=30, what="the kill seen by the watch")
        seen_at = next(iter(watch.waiting.values())).seen_at
        wait_for(lambda: watch.waiting and overdue(watch.waiting, time.monotonic(), GRACE), timeout=30, what="overdue")
        passes = watch.passes
        wait_for(lambda: watch.passes > passes + 3, timeout=30, what="passes of the watch over the overdue kill")
        assert time.monotonic() - seen_at > GRACE
        assert not (desk.status().get("killSwitch") or {}).get("latched"), "a standby carried out the kill"
        assert watch.halted == []

        acting.set()  # the replica that may act
        st = desk.wait_status(
            lambda s: (s.get("killSwitch") or {}).get("completedAt"), "the kill completed by the watch", timeout=60
        )
        ks = st["killSwitch"]
        assert ks["latched"] and ks["by"] == "tina" and ks["reason"] == "runaway orders"
        assert st["tradingState"] == "HALTED" and st["handledCommands"]["kill"]
        assert watch.halted == [(ns, NAME)]
        doc = desk.control()
        assert doc is not None
        assert doc["tradingState"] == "HALTED" and doc["limits"]["maxPosition"] == 0
        assert doc["generation"] == ks["haltGeneration"]
        assert desk.deployment().spec.replicas == 0
        assert [e for e in desk.events("KillSwitch") if "kill watch" in e.message]
        code, out = _cli(["audit", "verify", "-n", ns], cluster.kubeconfig)
        assert code == 0 and f"VERIFIED {ns}/Strategy/{NAME}: 1 entries" in out, out
    finally:
        watch.stop()


def test_each_new_stream_goes_on_from_the_last_event_not_from_the_listing(
    cluster, kube, crds, own_namespace, monkeypatch
):
    """Issue 21: the client's Watch never moves its resourceVersion for a list function it finds
    no return type for (ours), so each new stream (every WATCH_SECONDS) replayed every event
    since the listing: at 300 idle strategies, most of the operator's idle CPU. Each change is
    seen once, however many streams follow."""
    from stratops.k8s import killwatch

    monkeypatch.setattr(killwatch, "WATCH_SECONDS", 1)
    ns = own_namespace
    desk = Desk(kube, ns)
    desk.create("strategies", strategy_doc())

    class Counting(KillWatch):
        streams = observed = 0

        def _list(self, ns, **kw):  # type: ignore[no-untyped-def]
            if kw.get("watch"):
                self.streams += 1
            return super()._list(ns, **kw)

        def _observe(self, obj, deleted=False):  # type: ignore[no-untyped-def]
            self.observed += 1
            super()._observe(obj, deleted)

    watch = Counting(Executor(cluster.api_client()), [ns], serves([ns]), lambda: False, GRACE, tick=0.2).start()
    try:
        wait_for(lambda: watch.streams >= 1, timeout=30, what="the first stream")
        listed = watch.observed  # the listing's one strategy
        for i in range(5):  # five changes, none a command
            desk.custom.patch_namespaced_custom_object(
                "stratops.io", "v1alpha1", ns, "strategies", NAME, {"metadata": {"labels": {"change": str(i)}}}
            )
        wait_for(lambda: watch.observed >= listed + 5, timeout=30, what="the five changes seen")
        streams = watch.streams
        wait_for(lambda: watch.streams >= streams + 3, timeout=30, what="three more streams")
        assert watch.observed == listed + 5, f"{watch.observed - listed} events seen for 5 changes"
    finally:
        watch.stop()
