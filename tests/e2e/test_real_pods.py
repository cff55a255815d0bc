"""The example strategy as real containers on the local control plane's real node (a kubelet,
containerd and runc): the path the product exists for, operator -> control document -> strategy
process -> acknowledgement -> scale to 0, with nothing played by the test.

The pods run as the ServiceAccount the operator makes per strategy, follow their control
document through a watch on the API, answer a real readiness probe, and on SIGTERM cancel their
orders, acknowledge their exit and end. Skipped, saying why, where no real node can run (not
root, no containerd); CI sets STRATOPS_REQUIRE_REAL_NODE=1, so there they fail instead. On a kind
cluster of hack/kind-up.sh (make kind-e2e) the kind node is the real node.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from cases import example
from lifecycle_helpers import Desk
from stratops.lifecycle.control import Acknowledgement, ControlDocument
from stratops.lifecycle.manifests import ack_name, control_name, identity_name
from stratops.testing import realnode
from stratops.testing.kind import KindNode
from stratops.testing.wait import wait_for

# kind: these run on a kind cluster of hack/kind-up.sh too (its node is the real node there).
pytestmark = [pytest.mark.e2e, pytest.mark.kind]
NAME = "mean-revert"


def real_strategy(
    name: str = NAME,
    version: str = "1.4.2",
    replicas: int = 1,
    env: dict[str, str] | None = None,
    rollout_deadline: str = "120s",
) -> dict[str, Any]:
    """The example strategy, paper-trading, as the image built here, on the real node."""
    doc = copy.deepcopy(example("strategy.yaml"))
    doc["metadata"]["name"] = name
    spec = doc["spec"]
    spec.update(image="stratops.local/mean-revert", version=version, replicas=replicas, mode="paper")
    spec["podTemplate"] = realnode.pod_template(env)
    spec["rollbackPolicy"] = {
        "automatic": True,
        "revisionHistoryLimit": 5,
        "rolloutDeadline": rollout_deadline,
        "healthyFor": "2s",
    }
    spec["killSwitch"] = {"ackDeadline": "20s"}
    spec.pop("gates")  # paper trading, no desk gates here: a lapsed daily gate would hold new versions
    return doc


def acks(desk: Desk, name: str = NAME) -> dict[str, Acknowledgement]:
    data = desk.core.read_namespaced_config_map(ack_name(name), desk.ns).data or {}
    return {k: Acknowledgement.model_validate_json(v) for k, v in data.items()}


def pods(desk: Desk, name: str = NAME) -> list[client.V1Pod]:
    return [
        p
        for p in desk.core.list_namespaced_pod(desk.ns, label_selector=f"stratops.io/strategy={name}").items
        if p.metadata.deletion_timestamp is None
    ]


def ready_pods(desk: Desk, name: str = NAME, n: int = 1) -> list[client.V1Pod]:
    """Wait for N pods of NAME Ready on the real node (its readiness probe: the SDK's /ready)."""

    def probe() -> list[client.V1Pod] | None:
        ps = pods(desk, name)
        ready = [p for p in ps if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        return ready if len(ready) == n and len(ps) == n else None

    return wait_for(probe, timeout=120, what=f"{n} pod(s) of {name} Ready on the real node")


def background(target: Any, *args: Any) -> threading.Thread:
    """TARGET in a daemon thread. A watch or log stream that the API server ends (the test's
    namespace deleted, the control plane stopped) just ends: what it saw is what the test
    asserts on, and a test that needed more waits for it with a deadline."""

    def run() -> None:
        try:
            target(*args)
        except (ApiException, OSError, urllib3.exceptions.HTTPError):
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Follow:
    """`kubectl logs -f` and a watch on a pod, from now until it is gone: its log lines and
    every container state it passed through (the exit is seen before the pod is deleted)."""

    def __init__(self, core: client.CoreV1Api, namespace: str, pod: str) -> None:
        self.lines: list[str] = []
        self.terminated: list[client.V1ContainerStateTerminated] = []
        self.gone = threading.Event()
        self._threads = [background(f, core, namespace, pod) for f in (self._log, self._watch)]

    def _log(self, core: client.CoreV1Api, namespace: str, pod: str) -> None:
        resp = core.read_namespaced_pod_log(pod, namespace, container="strategy", follow=True, _preload_content=False)
        for line in resp:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def _watch(self, core: client.CoreV1Api, namespace: str, pod: str) -> None:
        w = watch.Watch()
        for ev in w.stream(
            core.list_namespaced_pod, namespace, field_selector=f"metadata.name={pod}", timeout_seconds=180
        ):
            for st in ev["object"].status.container_statuses or []:
                if st.state and st.state.terminated:
                    self.terminated.append(st.state.terminated)
            if ev["type"] == "DELETED":
                self.gone.set()
                w.stop()

    def log(self) -> str:
        return "\n".join(self.lines)


class PodExits:
    """(image, exit code) of every container exit a watch on the namespace's pods shows."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.seen: set[tuple[str, int]] = set()

        def run() -> None:
            for ev in watch.Watch().stream(core.list_namespaced_pod, namespace, timeout_seconds=300):
                pod = ev["object"]
                # the pod's spec names the version: every version here is one image under several
                # tags, and the runtime reports any one of them as the status's image
                images = {c.name: c.image for c in pod.spec.containers}
                for st in pod.status.container_statuses or []:
                    for state in (st.state, st.last_state):
                        if state is not None and state.terminated is not None:
                            self.seen.add((images.get(st.name, st.image), state.terminated.exit_code))

        background(run)


def pod_token(node: Any, pod: client.V1Pod) -> str:
    """The pod's own ServiceAccount token, as the kubelet mounted it (bound to the pod)."""
    projected = f"pods/{pod.metadata.uid}/volumes/kubernetes.io~projected"
    if isinstance(node, KindNode):  # the kubelet's directory is inside the kind node
        return node.read(f"/var/lib/kubelet/{projected}/*/token")
    base = Path(node.d) / "kubelet" / projected
    tokens = sorted(base.glob("*/token"))
    assert tokens, f"no projected token under {base}"
    return tokens[0].read_text()


def as_token(cluster: Any, token: str) -> client.ApiClient:
    """An API client that presents TOKEN (and trusts the local control plane's CA)."""
    admin = cluster.api_client()
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = admin.configuration.host, admin.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


@pytest.fixture
def desk(kube, namespace, operator, strategy_image) -> Desk:
    return Desk(kube, namespace)


def test_strategy_runs_as_a_real_container_ready_through_its_probe(desk, real_node):
    desk.create("strategies", real_strategy())
    (pod,) = ready_pods(desk)
    assert pod.spec.node_name == real_node.name
    assert pod.spec.service_account_name == identity_name(NAME)
    container = pod.spec.containers[0]
    assert container.readiness_probe.http_get.path == "/ready"
    status = pod.status.container_statuses[0]
    assert status.ready and status.state.running is not None and status.restart_count == 0
    # Ready means the process applied a control document and acknowledged it, as itself.
    doc = ControlDocument.model_validate_json(
        desk.core.read_namespaced_config_map(control_name(NAME), desk.ns).data["control.json"]
    )
    ack = acks(desk)[pod.metadata.name]
    assert ack.generation == doc.generation and ack.control_hash == doc.content_hash()
    s = desk.wait_status(
        lambda s: s.get("phase") == "Running" and s.get("lastKnownGood") == "1.4.2", "Running, known-good", timeout=60
    )
    assert s["control"]["acknowledgedGeneration"] == doc.generation
    # Prometheus would scrape every series the twelve example monitors query from this pod.
    wanted = set()
    for path in sorted((Path(__file__).parents[2] / "examples" / "monitors").glob("*.yaml")):
        wanted |= set(re.findall(r"stratops_strategy_[a-z_]+", path.read_text()))
    assert len(wanted) >= 10, wanted

    def exported() -> set[str] | None:
        text = desk.core.connect_get_namespaced_pod_proxy_with_path(f"{pod.metadata.name}:8080", desk.ns, "metrics")
        names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
        return names if wanted <= names else None

    wait_for(exported, timeout=30, what=f"the pod's /metrics exporting {sorted(wanted)}")


class ConfigMapLog:
    """Every version of the namespace's control and ack ConfigMaps as a watch delivers them,
    with the (monotonic) time each arrived: a write's arrival here is where latency is measured."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        import time

        self.seen: list[tuple[float, str, dict[str, str]]] = []
        self._w = watch.Watch()
        self._clock = time.monotonic

        def run() -> None:
            for ev in self._w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=300):
                self.seen.append((self._clock(), ev["object"].metadata.name, dict(ev["object"].data or {})))

        background(run)

    def first(self, name: str, match: Any) -> tuple[float, dict[str, str]] | None:
        return next(((t, d) for t, n, d in list(self.seen) if n == name and match(d)), None)

    def stop(self) -> None:
        self._w.stop()


def test_kill_switch_is_acknowledged_by_the_real_process_and_it_exits_cleanly(desk):
    desk.create("strategies", real_strategy())
    (pod,) = ready_pods(desk)
    me = pod.metadata.name
    follow = Follow(desk.core, desk.ns, me)
    cms = ConfigMapLog(desk.core, desk.ns)
    wait_for(
        lambda: any("control generation" in line for line in follow.lines),
        timeout=30,
        what="the strategy's log followed",
    )
    desk.command("kill", reason="runaway orders (drill)")
    s = desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "kill-switch completed", timeout=60)
    cms.stop()
    ks = s["killSwitch"]
    assert ks["acknowledged"] is True and ks["pods"] == [me]
    # HALTED reached the process and came back acknowledged within 2 s of the operator's write
    # (both as this watch saw them arrive), through the API, not a kubelet sync period.
    halted = lambda d: "control.json" in d and json.loads(d["control.json"])["tradingState"] == "HALTED"  # noqa: E731
    acked = lambda d: me in d and json.loads(d[me])["tradingState"] == "HALTED"  # noqa: E731
    written, ack_seen = cms.first(control_name(NAME), halted), cms.first(ack_name(NAME), acked)
    assert written is not None and ack_seen is not None, cms.seen
    assert ack_seen[0] - written[0] < 2.0, f"HALTED acknowledged {ack_seen[0] - written[0]:.2f}s after the write"
    assert Acknowledgement.model_validate_json(ack_seen[1][me]).generation == ks["haltGeneration"]
    assert desk.deployment().spec.replicas == 0
    # SIGTERM: the process cancelled its orders, acknowledged its exit and ended with 0.
    last = acks(desk)[me]
    assert last.exiting is True and last.open_orders == 0 and last.trading_state.value == "HALTED"
    assert follow.gone.wait(60), "the pod was not deleted after the scale to 0"
    log = follow.log()
    assert "HALTED" in log and "cancelled" in log and "exiting cleanly" in log, log
    assert [t.exit_code for t in follow.terminated][-1:] == [0], follow.terminated
    s = desk.wait_status(lambda s: s["killSwitch"].get("exitsFinalAt"), "exits recorded", timeout=30)
    (exit_,) = s["killSwitch"]["exits"]
    assert exit_["pod"] == me and exit_["clean"] is True, exit_
    wait_for(lambda: desk.events("PodsExitedCleanly"), timeout=30, what="the PodsExitedCleanly event")


def test_throttle_is_acknowledged_by_every_real_pod_with_the_lowered_limits(desk):
    desk.create("strategies", real_strategy(replicas=2))
    ready = ready_pods(desk, n=2)
    before = desk.wait_status(lambda s: s.get("effectiveLimits"), "limits in force")["effectiveLimits"]
    desk.command("throttle", reason="latency spike (drill)")
    s = desk.wait_status(
        lambda s: (
            s.get("tradingState") == "REDUCING"
            and (s.get("control") or {}).get("acknowledgedGeneration") == s["control"]["generation"]
        ),
        "REDUCING acknowledged by both pods",
        timeout=60,
    )
    doc = ControlDocument.model_validate_json(
        desk.core.read_namespaced_config_map(control_name(NAME), desk.ns).data["control.json"]
    )
    assert doc.trading_state.value == "REDUCING" and doc.generation == s["control"]["generation"]
    assert doc.limits.max_position < before["maxPosition"] and doc.limits.max_order_rate < before["maxOrderRate"]
    got = acks(desk)
    for p in ready:
        a = got[p.metadata.name]
        assert (
            a.trading_state.value == "REDUCING"
            and a.generation == doc.generation
            and a.control_hash == doc.content_hash()
        )


def test_a_hung_process_is_scaled_to_zero_at_the_deadline_with_a_p0(desk):
    doc = real_strategy(env={"EXAMPLE_IGNORE_HALTED": "1"})
    doc["spec"]["killSwitch"] = {"ackDeadline": "5s"}
    desk.create("strategies", doc)
    (pod,) = ready_pods(desk)
    desk.command("kill", reason="hung process drill")
    s = desk.wait_status(
        lambda s: (s.get("killSwitch") or {}).get("acknowledged") is False, "scaled to 0 unacknowledged", timeout=40
    )
    assert desk.deployment().spec.replicas == 0
    inc = wait_for(
        lambda: [
            i for i in desk.incidents() if i["spec"]["severity"] == "P0" and "not acknowledged" in i["spec"]["summary"]
        ],
        timeout=30,
        what="the P0 incident",
    )
    assert pod.metadata.name in inc[0]["spec"]["summary"]
    s = desk.wait_status(lambda s: s["killSwitch"].get("exitsFinalAt"), "exits recorded", timeout=60)
    (exit_,) = s["killSwitch"]["exits"]
    assert (
        exit_["pod"] == pod.metadata.name and exit_["clean"] is False and "never acknowledged HALTED" in exit_["detail"]
    )
    wait_for(lambda: desk.events("PodExitUnclean"), timeout=30, what="the PodExitUnclean event")


def test_the_strategy_identity_writes_only_its_own_pods_ack(desk, cluster, real_node):
    # A ServiceAccount of the strategy's name made in advance (its tokens handed out) is not
    # the one the pods get: the operator makes its own, and the old tokens die with the old one.
    squatted = desk.core.create_namespaced_service_account(desk.ns, {"metadata": {"name": identity_name(NAME)}})
    stale = desk.core.create_namespaced_service_account_token(
        identity_name(NAME), desk.ns, {"spec": {"expirationSeconds": 600}}
    )
    desk.create("strategies", real_strategy())
    other = real_strategy(name="other")
    other["spec"].pop("podTemplate")  # a KWOK pod: only its ack ConfigMap matters here
    desk.create("strategies", other)
    (pod,) = ready_pods(desk)
    sa = desk.core.read_namespaced_service_account(identity_name(NAME), desk.ns)
    assert sa.metadata.uid != squatted.metadata.uid and sa.metadata.owner_references[0].name == NAME
    wait_for(
        lambda: desk.core.read_namespaced_config_map(ack_name("other"), desk.ns),
        timeout=30,
        what="other's ack ConfigMap",
    )
    core = client.CoreV1Api(as_token(cluster, pod_token(real_node, pod)))
    me = pod.metadata.name
    mine = acks(desk)[me].to_json()
    core.patch_namespaced_config_map(ack_name(NAME), desk.ns, {"data": {me: mine}})  # its own: allowed

    def refused(fn: Any, status: int = 403) -> str:
        with pytest.raises(ApiException) as e:
            fn()
        assert e.value.status == status, e.value.body
        return json.loads(e.value.body)["message"]

    msg = refused(
        lambda: core.patch_namespaced_config_map(ack_name(NAME), desk.ns, {"data": {f"{NAME}-7f9c-x2": mine}})
    )
    assert f"may write only its own acknowledgement (data[{me}])" in msg
    assert "labels" in refused(
        lambda: core.patch_namespaced_config_map(
            ack_name(NAME), desk.ns, {"metadata": {"labels": {"stratops.io/strategy": "other"}}}
        )
    )
    refused(lambda: core.patch_namespaced_config_map(ack_name("other"), desk.ns, {"data": {me: mine}}))
    refused(lambda: core.patch_namespaced_config_map(control_name(NAME), desk.ns, {"data": {"control.json": "{}"}}))
    refused(
        lambda: core.replace_namespaced_config_map(
            control_name(NAME), desk.ns, desk.core.read_namespaced_config_map(control_name(NAME), desk.ns)
        )
    )
    refused(lambda: core.create_namespaced_config_map(desk.ns, {"metadata": {"name": "x"}}))
    refused(lambda: core.read_namespaced_config_map(control_name("other"), desk.ns))
    # The ServiceAccount's token without the pod (a TokenRequest of its own) writes nothing.
    token = desk.core.create_namespaced_service_account_token(
        identity_name(NAME), desk.ns, {"spec": {"expirationSeconds": 600}}
    )
    bare = client.CoreV1Api(as_token(cluster, token.status.token))
    assert "bound to the pod" in refused(
        lambda: bare.patch_namespaced_config_map(ack_name(NAME), desk.ns, {"data": {me: mine}})
    )
    # The squatter's token names a ServiceAccount that no longer exists (by uid): refused.
    gone = client.CoreV1Api(as_token(cluster, stale.status.token))
    refused(lambda: gone.read_namespaced_config_map(control_name(NAME), desk.ns), status=401)
    claims = json.loads(base64.urlsafe_b64decode(pod_token(real_node, pod).split(".")[1] + "=="))
    assert claims["kubernetes.io"]["pod"]["name"] == me


def test_a_new_version_rolls_out_on_the_real_node_and_a_crash_looping_one_is_rolled_back(desk):
    desk.create("strategies", real_strategy(rollout_deadline="25s"))
    ready_pods(desk)
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "1.4.2 known-good", timeout=60)
    desk.patch_spec(version="1.4.3")
    desk.wait_status(
        lambda s: s.get("lastKnownGood") == "1.4.3" and s.get("phase") == "Running", "1.4.3 rolled out", timeout=120
    )
    (pod,) = ready_pods(desk)
    assert pod.spec.containers[0].image == "stratops.local/mean-revert:1.4.3"
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["STRATOPS_VERSION"] == "1.4.3"
    exits = PodExits(desk.core, desk.ns)
    desk.patch_spec(version="crash-1.4.4")
    wait_for(
        lambda: [code for image, code in exits.seen if image.endswith(":crash-1.4.4")],
        timeout=90,
        what="the crash-looping version's container exiting",
    )
    assert {code for image, code in exits.seen if image.endswith(":crash-1.4.4")} == {3}
    s = desk.wait_status(
        lambda s: (s.get("rollout") or {}).get("rollback") and s.get("phase") == "Running",
        "rolled back to 1.4.3",
        timeout=120,
    )
    assert s["rollout"]["version"] == "1.4.3"
    assert any(b["version"] == "crash-1.4.4" for b in s.get("blockedVersions") or [])
    (pod,) = ready_pods(desk)
    assert pod.spec.containers[0].image == "stratops.local/mean-revert:1.4.3"
    assert desk.events("RollbackAutomatic")
