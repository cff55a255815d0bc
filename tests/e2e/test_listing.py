"""kopf's listings in pages (issue 21): at 10,000 strategies one list of the namespace's
~100,000 Monitors outlasted the operator's 30 s request timeout again and again, and the
operator saw no Monitor change while it did."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from lifecycle_helpers import GITOPS, Desk, grant_chart_roles
from stratops.testing.controlplane import operator_process, repo_root, stop_process
from stratops.testing.wait import wait_for

pytestmark = pytest.mark.e2e


def _monitor(namespace: str, name: str) -> dict:
    """The example queue-backlog monitor, of a strategy that is not deployed."""
    doc = yaml.safe_load((repo_root() / "examples" / "monitors" / "06-infra-queue-backlog.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["strategy"] = "not-deployed"
    return doc


def test_the_operator_lists_in_pages_and_sees_every_monitor(cluster, kube, crds, own_namespace, tmp_path):
    """Five Monitors, applied by the desk's GitOps identity, exist before the operator starts,
    which lists two per page: it asks for pages (`limit=2`, then with the server's `continue`
    token) and every one of the five is seen (each says its strategy is not there). With the
    whole list in one request, no request carries a limit."""
    desk = Desk(kube, own_namespace)
    gitops = Desk(cluster.api_client(grant_chart_roles(cluster, kube, own_namespace, tmp_path)[GITOPS]), own_namespace)
    names = [f"m{i}" for i in range(5)]
    for name in names:
        gitops.create("monitors", _monitor(own_namespace, name))  # as the desk's GitOps identity applies them
    _, offset = cluster.control_plane.audit_events(0)
    proc = operator_process(
        cluster.kubeconfig,
        [own_namespace],
        tmp_path / "operator.log",
        env={"STRATOPS_LIST_CHUNK_SIZE": "2", "STRATOPS_WEBHOOK_PORT": ""},
    )
    try:

        def problems() -> list[str]:
            items = desk.custom.list_namespaced_custom_object("stratops.io", "v1alpha1", own_namespace, "monitors")
            return sorted(m["metadata"]["name"] for m in items["items"] if (m.get("status") or {}).get("problem"))

        wait_for(lambda: problems() == names, timeout=90, what="every monitor seen")
    finally:
        stop_process(proc, 30)
    events, _ = cluster.control_plane.audit_events(offset)
    pages = [
        parse_qs(urlparse(e["requestURI"]).query)
        for e in events
        if e.get("stage") == "ResponseComplete"
        and e.get("verb") == "list"
        and (e.get("objectRef") or {}).get("resource") == "monitors"
        and (e.get("objectRef") or {}).get("namespace") == own_namespace
        and (e.get("userAgent") or "").startswith("kopf/")
    ]
    assert pages and all(p.get("limit") == ["2"] for p in pages), pages
    assert sum(1 for p in pages if "continue" in p) >= 2, pages  # the five in three pages
