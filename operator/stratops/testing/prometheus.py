"""A real Prometheus server and a real Alertmanager on loopback, plus a test exporter
(prometheus-client) and an HTTP alert receiver, for end-to-end tests.

The binaries (`monitoring_binary`) come from STRATOPS_MONITORING_ASSETS (a directory of ready
binaries), else from hack/build-monitoring.sh (built from the pinned Go module in
hack/monitoring, cached), else from PATH (Debian's prometheus and prometheus-alertmanager)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from stratops.testing.controlplane import ControlPlaneError, _die_with_parent, free_port, repo_root, stop_process

_ON_PATH = {
    "prometheus": ("prometheus",),
    "promtool": ("promtool",),
    "alertmanager": ("alertmanager", "prometheus-alertmanager"),
}


@functools.cache
def _monitoring_dir() -> tuple[Path | None, str]:
    """The directory of pinned monitoring binaries, and why there is none."""
    if d := os.environ.get("STRATOPS_MONITORING_ASSETS"):
        return Path(d), ""
    root = repo_root()
    script = root / "hack" / "build-monitoring.sh" if root is not None else None
    if script is None or not script.exists():
        return None, "not in a stratops checkout (hack/build-monitoring.sh builds them)"
    # Builds them the first time (a few minutes; its progress goes to stderr), then is instant.
    out = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        return None, "hack/build-monitoring.sh failed (its output is above)"
    return Path(out.stdout.strip().splitlines()[-1]), ""


def monitoring_binary(name: str) -> str:
    """The path of NAME (prometheus, promtool or alertmanager); ControlPlaneError saying why not."""
    d, why = _monitoring_dir()
    if d is not None and (d / name).is_file():
        return str(d / name)
    for candidate in _ON_PATH[name]:
        if found := shutil.which(candidate):
            return found
    where = f"{d} has no {name}" if d is not None else why
    raise ControlPlaneError(
        f"no {name} binary: {where}, and none on PATH (make test builds it: bash hack/build-monitoring.sh; "
        "or set STRATOPS_MONITORING_ASSETS to a directory holding it)"
    )


def _start_ready(args: list[str], log_path: Path, url: str, timeout: float) -> subprocess.Popen[bytes]:
    """Start a server process (dies with us) and wait for its /-/ready; its log tail on failure."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    name = Path(args[0]).name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ControlPlaneError(f"{name} exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1, trust_env=False).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s: {log_path.read_text()[-2000:]}")


class Exporter:
    """Metrics a test sets by hand, served on a loopback port for Prometheus to scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.port = free_port()
        self._gauges: dict[str, Gauge] = {}
        self._server, self._thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def gauge(self, name: str, labels: tuple[str, ...] = ("strategy",)) -> Gauge:
        if name not in self._gauges:
            self._gauges[name] = Gauge(name, f"test metric {name}", labels, registry=self.registry)
        return self._gauges[name]

    def stop(self) -> None:
        self._server.shutdown()


@dataclass
class PrometheusServer:
    targets: list[str]
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    #: Scrape configs in place of the one static job over TARGETS (file_sd_configs, relabelling).
    scrape_configs: list[dict[str, Any]] | None = None
    #: OpenMetrics text written into the TSDB before the server starts (promtool's backfill).
    history: str | None = None
    #: Rule files it evaluates (reloaded by `reload()`), and the Alertmanagers it sends alerts to.
    rule_files: list[str] | None = None
    alertmanagers: list[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> PrometheusServer:
        binary = monitoring_binary("prometheus")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="stratops-prom-"))
        cfg = self.workdir / "prometheus.yml"
        scrape = self.scrape_configs or [{"job_name": "stratops-test", "static_configs": [{"targets": self.targets}]}]
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": scrape,
        }
        if self.rule_files:
            config["rule_files"] = self.rule_files
        if self.alertmanagers:
            hosts = [u.split("://", 1)[-1] for u in self.alertmanagers]
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": hosts}]}]}
        cfg.write_text(json.dumps(config))
        if self.history is not None:
            self.backfill(self.history, self.workdir / "data")
        self.process = _start_ready(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
                "--web.enable-lifecycle",  # reload(): rule files changed
            ],
            self.workdir / "prometheus.log",
            self.url,
            timeout,
        )
        return self

    @staticmethod
    def backfill(openmetrics: str, data: Path) -> None:
        """Write OPENMETRICS into the TSDB at DATA as blocks (`promtool tsdb create-blocks-from
        openmetrics`), for a server started on DATA afterwards; promtool's output on failure."""
        data.mkdir(parents=True, exist_ok=True)
        src = data.parent / "history.om"
        src.write_text(openmetrics)
        out = subprocess.run(
            [
                monitoring_binary("promtool"),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--quiet",
                "--max-block-duration=1512h",  # 63 days in a few blocks, not 2-hour ones by the hundred
                str(src),
                str(data),
            ],
            capture_output=True,
            text=True,
        )
        src.unlink()
        if out.returncode != 0:
            raise ControlPlaneError(f"promtool could not backfill the history: {(out.stdout + out.stderr)[-2000:]}")

    def stop(self, remove: bool = True) -> None:
        stop_process(self.process, 15)
        if remove and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def reload(self) -> None:
        """Read the configuration and rule files again (as prometheus-operator's reloader does)."""
        httpx.post(f"{self.url}/-/reload", trust_env=False, timeout=30).raise_for_status()

    def rule_groups(self) -> list[dict[str, Any]]:
        """The rule groups it has loaded (its rules API)."""
        r = httpx.get(f"{self.url}/api/v1/rules", trust_env=False, timeout=10).json()
        return list(r["data"]["groups"])

    def series(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector EXPR evaluates to now ([] when it has no data)."""
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, trust_env=False, timeout=10).json()
        return list(r["data"]["result"])

    def value(self, expr: str) -> float | None:
        res = self.series(expr)
        return float(res[0]["value"][1]) if res else None


class AlertReceiver:
    """An HTTP endpoint that records every POST (Slack webhook, Alertmanager API, PagerDuty).
    `failing = True` makes it answer 503, to test retries."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.failing = False
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.failing:
                    outer.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.received.append((self.path, json.loads(body or b"null")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self, path: str = "/slack") -> list[str]:
        return [b.get("text", "") for p, b in self.received if p == path and isinstance(b, dict)]

    def stop(self) -> None:
        self.server.shutdown()


@dataclass
class AlertmanagerServer:
    """A real Alertmanager on loopback, clustering off."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    #: Its whole configuration, in place of the default route (the README's grouping).
    config: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> AlertmanagerServer:
        binary = monitoring_binary("alertmanager")
        if self.workdir is None:  # started again after a stop: the same place, its silences kept
            self.workdir = Path(tempfile.mkdtemp(prefix="stratops-am-"))
        cfg = self.workdir / "alertmanager.yml"
        # Grouped as the README advises a desk to route stratops's alerts: one notification per
        # strategy and incident class (a source outage is one page, as it is one incident).
        route = {"receiver": "null", "group_wait": "0s", "group_by": ["namespace", "strategy", "incident_class"]}
        # And a source down for a whole desk is one page: its StratopsSourceDown alert holds back
        # the per-strategy stale alerts of the same source and desk (README, "Monitors").
        inhibit = {
            "source_matchers": ['alertname="StratopsSourceDown"'],
            "target_matchers": ['alertname="StratopsMonitorBreach"', 'incident_class="StaleData"'],
            "equal": ["namespace", "source"],
        }
        default = {"route": route, "receivers": [{"name": "null"}], "inhibit_rules": [inhibit]}
        cfg.write_text(json.dumps(self.config or default))
        self.process = _start_ready(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            self.workdir / "alertmanager.log",
            self.url,
            timeout,
        )
        return self

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (active and, with active=false, resolved) matching LABELS."""
        params = [("filter", f'{k}="{v}"') for k, v in labels.items()]
        return httpx.get(f"{self.url}/api/v2/alerts", params=params, trust_env=False).json()

    def groups(self, **labels: str) -> list[dict[str, Any]]:
        """Alertmanager's groups of the alerts matching LABELS: what it notifies, once per group."""
        params = [("filter", f'{k}="{v}"') for k, v in labels.items()]
        return httpx.get(f"{self.url}/api/v2/alerts/groups", params=params, trust_env=False).json()

    def stop(self) -> None:
        stop_process(self.process, 15)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class RuleSync:
    """prometheus-operator's part in the Prometheus-ruler mode: NAMESPACE's PrometheusRules into
    PROMETHEUS's rule file at PATH, reloaded when they change (its reloader does this in a
    cluster; it manages Prometheus pods, which KWOK's nodes do not run). Stopped by `stop.set()`."""

    def __init__(self, kube: Any, namespace: str, prometheus: PrometheusServer, path: Path) -> None:
        from kubernetes import client

        self.custom, self.ns, self.prometheus, self.path = client.CustomObjectsApi(kube), namespace, prometheus, path
        self.stop, self.written = threading.Event(), ""
        self.thread = threading.Thread(target=self._run, daemon=True, name="rule sync")
        self.thread.start()

    def _run(self) -> None:
        import yaml

        while not self.stop.wait(0.5):
            try:
                items = self.custom.list_namespaced_custom_object(
                    "monitoring.coreos.com", "v1", self.ns, "prometheusrules"
                )["items"]
                text = yaml.safe_dump({"groups": [g for i in items for g in i["spec"].get("groups", [])]})
                if text != self.written:
                    self.path.write_text(text)
                    self.prometheus.reload()
                    self.written = text
            except Exception:  # the next round tries again; the caller's waits say what never came
                continue


def ruler_alertmanager_config(receiver_url: str, token_file: Path, repeat_interval: str = "1m") -> dict[str, Any]:
    """Alertmanager's configuration for the Prometheus-ruler mode, as the README gives it: the
    rules' alerts go to the operator's receiver only, one group per monitor."""
    return {
        "route": {
            "receiver": "null",
            "routes": [
                {
                    "matchers": ['stratops_ruler="true"'],
                    "receiver": "stratops",
                    "group_by": ["stratops_namespace", "stratops_monitor"],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": repeat_interval,
                }
            ],
        },
        "receivers": [
            {"name": "null"},
            {
                "name": "stratops",
                "webhook_configs": [
                    {
                        "url": receiver_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials_file": str(token_file)}},
                    }
                ],
            },
        ],
    }


def sample(text: str, name: str, **labels: str) -> float:
    """The value of NAME{LABELS} in a Prometheus text exposition (0 when absent), the labels
    in the order the exposition gives them."""
    want = "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(name + want + " ")), 0.0)
