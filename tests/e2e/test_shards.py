"""Shards (issue 21): two shards, each an HA pair with its own KopfPeering (as the chart runs
them with `shards: 2`), each acting only on the strategies that hash to it. When one shard's
leader dies without leaving, its standby takes over that shard's strategies, and the other
shard goes on as if nothing happened."""

from __future__ import annotations

import signal

import pytest
from kubernetes import client
from typer.testing import CliRunner

from chart import grant_traders
from lifecycle_helpers import Desk, strategy_doc
from stratops.cli.main import app
from stratops.lifecycle.shard import Shard, peering_name, shard_of
from stratops.testing.controlplane import free_port, operator_process, stop_process
from stratops.testing.wait import wait_for
from test_ha import CHART_CRDS, LIFETIME, Replica, _events

pytestmark = pytest.mark.e2e
SHARDS = 2


class ShardReplica(Replica):
    def __init__(self, cluster, namespace: str, shard: int, identity: str, log, priority: str) -> None:
        self.identity, self.log, self.port, self.shard = identity, log, free_port(), shard
        env = {
            "STRATOPS_SHARD": f"{shard}/{SHARDS}",
            "STRATOPS_PEERING": peering_name("stratops", Shard(shard, SHARDS)),
            "STRATOPS_PEERING_PRIORITY": priority,
            "STRATOPS_PEERING_LIFETIME": str(LIFETIME),
            "POD_ID": identity,
            "STRATOPS_RESYNC_SECONDS": "10",
            "STRATOPS_WEBHOOK_PORT": "",
        }
        self.proc = operator_process(cluster.kubeconfig, [namespace], log, self.port, env=env)


def _names(namespace: str) -> dict[int, list[str]]:
    """Two strategy names per shard."""
    found: dict[int, list[str]] = {i: [] for i in range(SHARDS)}
    for i in range(100):
        name = f"strat-{i}"
        shard = shard_of(namespace, name, SHARDS)
        if len(found[shard]) < 2:
            found[shard].append(name)
    return found


@pytest.fixture
def peerings(kube, crds, own_namespace) -> None:
    """The peerings the chart makes: one unsharded, and one per shard of two."""
    from stratops.k8s.apply import install_crds

    install_crds(kube, CHART_CRDS / "kopf.dev_peerings.yaml")
    custom = client.CustomObjectsApi(kube)
    for name in ["stratops"] + [peering_name("stratops", Shard(s, SHARDS)) for s in range(SHARDS)]:
        custom.create_namespaced_custom_object(
            "kopf.dev",
            "v1",
            own_namespace,
            "kopfpeerings",
            {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}},
        )


def _kopf_patches(cluster, offset: int, namespace: str) -> dict[str, int]:
    """kopf's patches of each Strategy in NAMESPACE since audit-log OFFSET (its finalizer)."""
    events, _ = cluster.control_plane.audit_events(offset)
    out: dict[str, int] = {}
    for e in events:
        ref = e.get("objectRef") or {}
        if (
            e.get("stage") == "ResponseComplete"
            and e.get("verb") == "patch"
            and ref.get("resource") == "strategies"
            and ref.get("namespace") == namespace
            and (e.get("userAgent") or "").startswith("kopf/")
        ):
            out[ref["name"]] = out.get(ref["name"], 0) + 1
    return out


def _deploy(desk: Desk, name: str) -> None:
    doc = strategy_doc(killSwitch={"ackDeadline": "30s"})
    doc["metadata"]["name"] = name
    desk.create("strategies", doc)


def _kill(desk: Desk, name: str, trader: object) -> dict:
    """A kill as the desk gives it: tina, with the chart's trader Role, through the CLI."""
    res = CliRunner().invoke(
        app,
        ["kill", name, "-n", desk.ns, "--reason", "runaway orders", "--no-wait"],
        env={"KUBECONFIG": str(trader), "COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    return desk.wait_status(
        lambda s: (s.get("killSwitch") or {}).get("completedAt"), f"{name} halted", LIFETIME + 60, name
    )


@pytest.fixture
def tina(cluster, kube, own_namespace, tmp_path) -> object:
    grant_traders(kube, own_namespace, ["tina"], tmp_path)
    return cluster.user_kubeconfig("tina")


def test_two_shards_each_act_on_their_own_and_a_dead_leader_stops_only_its_shard(
    cluster, kube, operator, peerings, own_namespace, tina, tmp_path
):
    # `operator`: the admission stack as a desk has it (a kill's `by` is checked).
    desk = Desk(kube, own_namespace)
    names = _names(own_namespace)
    # Known leaders: the higher priority acts in each shard's peering.
    leaders = [
        ShardReplica(cluster, own_namespace, s, f"shard{s}-leader", tmp_path / f"s{s}-leader.log", "20")
        for s in range(SHARDS)
    ]
    standbys = [
        ShardReplica(cluster, own_namespace, s, f"shard{s}-standby", tmp_path / f"s{s}-standby.log", "10")
        for s in range(SHARDS)
    ]
    everyone = leaders + standbys
    audit = cluster.control_plane.audit_events(0)[1] if cluster.control_plane is not None else None
    try:
        for shard_names in names.values():
            for name in shard_names:
                _deploy(desk, name)
        for shard_names in names.values():
            for name in shard_names:
                desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", f"{name} known-good", 120, name)
        if audit is not None:
            # No patch of kopf's: a Strategy carries no finalizer (a shard that did not serve a
            # strategy once removed the owner's, ~15 patches a second per strategy).
            kopf_patches = _kopf_patches(cluster, audit, own_namespace)
            assert not kopf_patches, f"kopf's patches per strategy: {kopf_patches}"
        desk.keep_playing()
        first = [_kill(desk, names[s][0], tina) for s in range(SHARDS)]
        assert all(d["killSwitch"]["latched"] and d["killSwitch"]["by"] == "tina" for d in first)

        def acted(*replicas: ShardReplica) -> dict:
            """What REPLICAS carried out, together: under load a shard's standby may take over
            from its own leader (the fence), which is peering at work, not a defect."""
            out: dict = {}
            for r in replicas:
                for k, v in r.actions().items():
                    out[k] = out.get(k, 0.0) + v
            return out

        for s in range(SHARDS):
            assert acted(leaders[s], standbys[s]) == {(names[s][0], "kill_switch"): 1.0}, f"shard {s}: its own only"
        dead_leader_did = leaders[1].actions()

        # Shard 1's leader dies without leaving. Shard 0 goes on; shard 1's standby takes over
        # once the dead leader's record lapses, and halts only shard 1's strategy.
        leaders[1].proc.send_signal(signal.SIGKILL)
        leaders[1].proc.wait(30)
        _kill(desk, names[0][1], tina)
        _kill(desk, names[1][1], tina)
        assert acted(leaders[0], standbys[0]) == {(n, "kill_switch"): 1.0 for n in names[0]}
        survivor = standbys[1].actions()
        assert (names[1][1], "kill_switch") in survivor, "the dead leader's standby carried out its shard's kill"
        total = dict(dead_leader_did)
        for k, v in survivor.items():
            total[k] = total.get(k, 0.0) + v
        assert total == {(n, "kill_switch"): 1.0 for n in names[1]}
        for s in range(SHARDS):
            for name in names[s]:
                assert len(_events(desk, name, "KillSwitch")) == 1, f"{name}: exactly one kill decision"
        # Neither shard ever logged a strategy of the other.
        for r in everyone:
            text = r.log.read_text(errors="replace")
            foreign = [n for s, ns in names.items() if s != r.shard for n in ns if f"/{n}]" in text]
            assert foreign == [], f"{r.identity} acted on another shard's strategies: {foreign}"
    finally:
        desk.stop_pods()
        for r in everyone:
            stop_process(r.proc, 30)


def test_a_new_shard_count_waits_until_the_old_one_is_gone(
    cluster, kube, operator, peerings, own_namespace, tina, tmp_path
):
    """A change of `shards` rolling out: the old layout's replicas and the new one's run together,
    and a strategy may hash to a shard of each. The replica of the new count, finding a live one
    of another count at its start, holds; the old one acts on; once it has left, the new one acts."""
    desk = Desk(kube, own_namespace)
    names = _names(own_namespace)[0]
    old = Replica(cluster, own_namespace, "unsharded", tmp_path / "unsharded.log", priority="10")
    new = None
    try:
        _deploy(desk, names[0])
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "deployed by the old layout", 120, names[0])
        new = ShardReplica(cluster, own_namespace, 0, "shard0-of-2", tmp_path / "new.log", "10")
        wait_for(
            lambda: "holding: replicas of another shard count are live (stratops)" in new.log.read_text(),
            timeout=60,
            what="the new layout's replica holds",
        )
        desk.keep_playing()
        _kill(desk, names[0], tina)
        assert old.actions() == {(names[0], "kill_switch"): 1.0}
        assert new.actions() == {} and new.writes() == 0, "two shard counts never act at once"
        assert "holding: replicas of another shard count" not in old.log.read_text()

        stop_process(old.proc, 30)  # the rollout ends: the old replica leaves its peering
        wait_for(lambda: "hold lifted" in new.log.read_text(), timeout=LIFETIME + 30, what="the hold lifted")
        _deploy(desk, names[1])
        desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "deployed by the new layout", 120, names[1])
        assert new.writes() > 0
    finally:
        desk.stop_pods()
        for r in (old, new):
            if r is not None:
                stop_process(r.proc, 30)
