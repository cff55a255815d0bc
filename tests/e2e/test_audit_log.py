"""ControlPlane(audit=True): the kube-apiserver's audit log names who asked for what (the
benchmark counts the operator's requests with it); off by default."""

from __future__ import annotations

import pytest
from kubernetes import client

from stratops.testing.controlplane import ControlPlane, ControlPlaneError
from stratops.testing.fixtures import use_existing_cluster
from stratops.testing.wait import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(use_existing_cluster(), reason="reads the local control plane's audit log"),
]


def test_audit_log_counts_requests_by_user(cluster, namespace):
    # The session's control plane runs with the audit log on (a second control plane started
    # in the same test process before it was seen to stall the session operator's start).
    cp = cluster.control_plane
    _, offset = cp.audit_events(0)
    core = client.CoreV1Api(cp.api_client(cp.user_kubeconfig("bench-user", groups=("system:masters",))))
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "audited"}})
    core.read_namespaced_config_map("audited", namespace)

    def mine() -> list[tuple[str, str]]:
        events, _ = cp.audit_events(offset)
        return [
            (e["verb"], e["objectRef"]["resource"])
            for e in events
            if e["user"]["username"] == "bench-user" and e["stage"] == "ResponseComplete"
        ]

    seen = wait_for(lambda: len(mine()) >= 2 and mine(), timeout=30, what="two audited requests")
    assert seen == [("create", "configmaps"), ("get", "configmaps")]


def test_audit_log_is_off_by_default():
    cp = ControlPlane()
    assert cp.audit_log_path is None
    with pytest.raises(ControlPlaneError, match="audit"):
        cp.audit_events(0)
