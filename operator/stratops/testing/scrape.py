"""The demo desk's Prometheus: a real server, its history backfilled, scraping the strategy.

The strategy's pods are found the way Prometheus' kubernetes_sd would find them (a list of the
Running pods with the strategy's label, their pod IP and probe port), and written to a
file_sd file, because the pinned build leaves the service-discovery plugins out
(`-tags remove_all_sd`, hack/build-monitoring.sh). Where the strategy runs as a process on the
host instead, the target is its loopback port. Each target carries instance=<strategy>, the
label the backfilled history has, so history and live data are one series per metric."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from stratops.lifecycle.manifests import LABEL_STRATEGY, PROBE_PORT
from stratops.testing.history import Labels, openmetrics
from stratops.testing.prometheus import PrometheusServer

SCRAPE_INTERVAL = "5s"


class DeskPrometheus:
    def __init__(self, workdir: Path, namespace: str, strategy: str, host_target: str | None = None) -> None:
        self.namespace, self.strategy, self.host_target = namespace, strategy, host_target
        workdir.mkdir(parents=True, exist_ok=True)
        self.targets_file = workdir / "targets.json"
        self._written: list[str] | None = None
        self.write_targets([host_target] if host_target else [])
        labels = Labels(strategy)
        self.server = PrometheusServer(
            targets=[],
            scrape_interval=SCRAPE_INTERVAL,
            workdir=workdir,
            scrape_configs=[
                {
                    "job_name": labels.job,
                    "file_sd_configs": [{"files": [str(self.targets_file)], "refresh_interval": "1s"}],
                }
            ],
            # the last sample a minute before now: the live scrape carries on after it
            history=openmetrics(strategy, time.time() - 60),
        )

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> DeskPrometheus:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(remove=False)  # the control plane's directory goes with it

    def write_targets(self, addresses: list[str]) -> None:
        if addresses == self._written:
            return
        groups = [{"targets": addresses, "labels": {"instance": self.strategy}}] if addresses else []
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        os.replace(tmp, self.targets_file)  # Prometheus must never read half a file
        self._written = addresses

    def refresh(self, api: client.ApiClient) -> list[str]:
        """Point the scrape at the strategy's Running pods (or the host process); the targets."""
        if self.host_target:
            return [self.host_target]
        pods = (
            client.CoreV1Api(api)
            .list_namespaced_pod(self.namespace, label_selector=f"{LABEL_STRATEGY}={self.strategy}")
            .items
        )
        addresses = sorted(
            f"{p.status.pod_ip}:{PROBE_PORT}"
            for p in pods
            if p.status.phase == "Running" and p.status.pod_ip and not p.metadata.deletion_timestamp
        )
        self.write_targets(addresses)
        return addresses

    def missing(self, queries: list[str]) -> list[str]:
        """The QUERIES that have no data yet."""
        return [q for q in queries if not self.server.series(q)]


def monitor_queries(docs: list[dict[str, Any]]) -> list[str]:
    """Every PromQL query the Monitors in DOCS evaluate (their source and second queries)."""
    out = []
    for d in docs:
        if d.get("kind") != "Monitor":
            continue
        spec = d["spec"]
        if q := ((spec.get("source") or {}).get("prometheus") or {}).get("query"):
            out.append(q)
        for check in (spec.get("check") or {}).values():
            if isinstance(check, dict):
                out += [v for k, v in check.items() if k in ("backupQuery", "expectedQuery") and v]
    return out
