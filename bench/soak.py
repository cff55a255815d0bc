"""Chaos soak (issue 22): a desk of strategies on a local control plane, two peered operator
replicas, a driver doing what a desk does, a nemesis striking at random moments, and a checker
proving the desk's invariants over the history afterwards (stratops.soak.checker).

    python bench/soak.py [--seconds 180] [--seed 168] [--strategies 4] [--out DIR]
                         [--faults a,b] [--real-node auto|yes|no]

The driver kills (one strategy, or all of them by selector), throttles, resumes latched
strategies after their reconciliation, rolls out new versions (handed over warm while a strategy
trades) and versions whose processes never start, releases held handovers, promotes strategies to
live on their pre-launch signatures, demotes them, and withdraws and signs again a signature of
the daily gate. It acts as the desk's people, each with a client certificate and the chart's Role,
under the admission policies: a trader (tina) kills and throttles, risk owners (rita, rob)
reconcile, resolve, resume, release and sign, and GitOps applies every spec change. It also cuts
corners the operator must refuse: resumes without a new reconciliation or while the daily gate is
lapsed, a promotion and a live strategy's new version that nobody signed. The nemesis SIGKILLs
the acting replica or both, restarts the kube-apiserver, takes etcd away (its data kept), hangs a
strategy's processes so they stop acknowledging or kills them (restarted in their pods), stops
the desk's Prometheus or its Alertmanager for a while, slows or cuts the replicas' connections to
the API server (a proxy between them, stratops.testing.proxy), and steps a replica's clock (as its
peering reads it, stratops.testing.clock). Each strategy has a monitor on a metric the driver
pushes over its threshold (a breach, which must open one incident and slow the strategy) and
brings back. Where this machine can run a real node (stratops.testing.realnode: root, containerd,
Docker to build the image), the first strategy runs there as real containers of the example
strategy (examples/strategy-app): the nemesis freezes them (hang) or SIGKILLs them (the kubelet
restarts them), and its bad versions crash at their start. The other strategies' pods are KWOK
pods; their SDK runs here, one per pod, as in the e2e tests, each as its pod (its strategy's
identity, a token bound to the pod). The replicas run with the
chart's arguments, environment and Role, as its ServiceAccount with tokens bound to two pods of
its Deployment (held unscheduled). Every command, fault, sample and replica write (from the API
server's audit log, a replica told by its pod) goes into DIR/history.jsonl.

Progress goes to stderr. The summary goes to stdout: faults injected, commands given,
invariants checked, violations (each with the history around it), and the worst kill latency.
Exit status 1 when an invariant is violated. `make soak` runs the CI length with a fixed seed;
a long run (--seconds 1800 and more) with --seed random is the bench.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stratops import GROUP, VERSION
from stratops.cli.gates import patch_signatures
from stratops.gates.evaluate import subject_for
from stratops.k8s.apply import install_crds
from stratops.k8s.desk import DeskApi
from stratops.lifecycle.commands import command_value, new_command
from stratops.lifecycle.control import Acknowledgement, allows_orders
from stratops.lifecycle.manifests import LABEL_VERSION, ack_name, control_name, identity_name
from stratops.models.strategy import StrategySpec
from stratops.sdk import ApiAcknowledger, ApiControl, StrategyControl
from stratops.soak import checker, generator
from stratops.soak.history import Record, dump
from stratops.testing import ControlPlane, admission, clock, images, realnode
from stratops.testing.chart import (
    RISK_OWNERS,
    TRADERS,
    grant_people_roles,
    install_operator,
    operator_from_deployment,
    replica_pod,
    service_account_kubeconfig,
)
from stratops.testing.controlplane import free_port, operator_process, stop_process
from stratops.testing.prometheus import AlertmanagerServer, PrometheusServer
from stratops.testing.proxy import FaultyProxy
from stratops.testing.wait import wait_for

ROOT = Path(__file__).resolve().parents[1]
NS = "soak"
RELEASE = "stratops"  # the chart's release: its full name, ServiceAccount and KopfPeering
#: The API server names the pod a token is bound to in the request's user: how the replicas'
#: writes (one ServiceAccount) are told apart in its audit log, as they would be in a cluster.
POD_NAME = "authentication.kubernetes.io/pod-name"
LIFETIME = 10  # a dead replica's peering record lapses after this: the takeover's delay
SLOTS = ("a", "b")
BOOK = {"EURUSD": 250_000.0, "GBPUSD": -40_000.0}  # what each strategy's first version holds
#: A rollout's deadline in the soak: a bad version is aborted after it, a handover stands by at most this.
ROLLOUT_DEADLINE = 20
LIMITS = {"maxPosition": "max_position", "maxOrderRate": "max_order_rate", "maxDailyLoss": "max_daily_loss"}
#: The breach monitor's threshold (examples/monitors/06-infra-queue-backlog.yaml: above 1000) and
#: the metric's values either side of it.
CALM, BREACHING = 10.0, 5000.0
#: A breach is brought back only once it is this old: long enough for its monitor to have seen it
#: (1 s scrapes, 1 s evaluations), so every breach the history holds was there to be found.
BREACH_AT_LEAST = 10.0


#: The desk's people, with the chart's Roles (client certificates of their own): a trader gives
#: kills and throttles; risk owners reconcile, resolve incidents, resume and release handovers,
#: and sign gates (each their own items); the GitOps controller applies every spec change.
PEOPLE = {"tina": (TRADERS,), "rita": (RISK_OWNERS,), "rob": (RISK_OWNERS,)}
GITOPS = "gitops"
TRADER, RISK_OWNER, SIGNERS = "tina", "rita", ("rita", "rob")
DAILY = "fx-daily"
#: Strategies promoted to live at the start (the others start on paper): every run has both.
LIVE_AT_START = 2


def monitor_name(strategy: str) -> str:
    return f"{strategy}-backlog"


def prelaunch_name(strategy: str) -> str:
    return f"{strategy}-pre-launch"


def progress(msg: str) -> None:
    print(f"[soak {datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def _ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Soak:
    def __init__(
        self,
        cp: ControlPlane,
        strategies: int,
        seed: int,
        seconds: float,
        out: Path,
        faults: tuple[str, ...] = generator.FAULTS,
    ) -> None:
        self.cp, self.seed, self.seconds, self.out, self.faults = cp, seed, seconds, out, faults
        #: The strategy whose pods run as real containers on the real node, when there is one:
        #: the first, live from the start. The others are KWOK pods with their SDK here.
        self.real: set[str] = set()
        self.api = cp.api_client()
        self.core, self.apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.names = [f"s{i}" for i in range(strategies)]
        if cp.node is not None:
            self.real = {self.names[0]}
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        #: Set once every process is stopped. The nemesis thread lives until then: processes it
        #: starts (a replica, the kube-apiserver) get SIGKILL when the thread that started them
        #: ends (PR_SET_PDEATHSIG follows the thread, not the process).
        self.finished = threading.Event()
        self.struck = threading.Event()
        self.replicas: dict[str, Any] = {}
        self.generation: Counter[str] = Counter()
        self.logs: list[tuple[str, Path]] = []
        self.kill_watch_halts = 0  # read from the replicas' logs at the end
        self.hung: set[str] = set()
        self.agents: dict[str, StrategyControl] = {}
        self.books: dict[str, tuple[str, str, dict[str, float]]] = {}  # pod -> (strategy, version, its book)
        self.versions = 0  # the last new version named
        self.people: dict[str, Any] = {}  # user -> ApiClient with their client certificate
        self.daily_lapsed = False
        self.operator: dict[str, Any] = {}  # the chart's Deployment, as rendered
        self.replica_kubeconfigs: dict[str, Path] = {}  # slot -> a token bound to its pod
        self.pod_apis: dict[str, client.ApiClient] = {}  # strategy pod -> its own token
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.signal = Gauge("soak_queue_depth", "The soak's breach metric.", ["strategy"], registry=self.registry)
        self.exporter_port = free_port()
        start_http_server(self.exporter_port, "127.0.0.1", registry=self.registry)
        self.breached: dict[str, float] = {}  # strategy -> when its breach began
        self.prometheus = PrometheusServer([f"127.0.0.1:{self.exporter_port}"])
        # The replicas reach the API server through it; the driver and the observer do not.
        self.proxy = FaultyProxy("127.0.0.1", int(cp.server.rsplit(":", 1)[1])).start()
        self.alertmanager = AlertmanagerServer()

    # -- the history ---------------------------------------------------------------------
    def rec(self, process: str, type_: str, f: str, strategy: str | None = None, **value: Any) -> None:
        with self.lock:
            self.records.append(Record(time.time(), process, type_, f, strategy, value))

    # -- the desk ------------------------------------------------------------------------
    def setup(self) -> None:
        for name in self.names:
            self.signal.labels(name).set(CALM)
        self.prometheus.start()
        self.alertmanager.start()
        install_crds(self.api, ROOT / "crds")
        install_crds(self.api, ROOT / "charts" / "stratops" / "crds" / "kopf.dev_peerings.yaml")
        # The admission policies as the chart installs them (attribution, authorship, signatures
        # in the API server itself), and the chart's Roles for the desk's people.
        self.core.create_namespace({"metadata": {"name": NS, "labels": dict(admission.POLICY_LABEL)}})
        admission.install(self.api, None, None, None)
        grant_people_roles(self.api, NS, self.out, PEOPLE, gitops=GITOPS)
        self.people = {
            user: self.cp.api_client(self.cp.user_kubeconfig(user, groups))
            for user, groups in {**PEOPLE, GITOPS: ()}.items()
        }
        # The operator's identity as the chart makes it (ServiceAccount, Role, KopfPeering); each
        # replica authenticates with a token bound to a pod of the chart's Deployment.
        sa, self.operator = install_operator(self.api, NS, self.out, release=RELEASE)
        for slot in SLOTS:
            pod = replica_pod(self.api, NS, self.operator, f"{RELEASE}-replica-{slot}")
            self.replica_kubeconfigs[slot] = service_account_kubeconfig(
                self.api,
                Path(self.cp.kubeconfig),
                NS,
                sa,
                self.out / f"replica-{slot}.kubeconfig",
                pod=pod,
                server=self.proxy.url,
                seconds=int(self.seconds) + 7200,
            )
        for slot in SLOTS:
            self.start_replica(slot)
        daily = yaml.safe_load((ROOT / "examples" / "gates" / "daily.yaml").read_text())
        daily["spec"]["strategies"] = list(self.names)
        self.as_(GITOPS).create_namespaced_custom_object(GROUP, VERSION, NS, "gates", daily)
        self.daily_sign()
        prelaunch = yaml.safe_load((ROOT / "examples" / "gates" / "pre-launch.yaml").read_text())
        base = yaml.safe_load((ROOT / "examples" / "strategy.yaml").read_text())
        real_image = self.load_strategy_image() if self.real else ""
        for name in self.names:
            gate = json.loads(json.dumps(prelaunch))
            gate["metadata"] = {"name": prelaunch_name(name)}
            gate["spec"]["strategies"] = [name]
            self.as_(GITOPS).create_namespaced_custom_object(GROUP, VERSION, NS, "gates", gate)
            doc = json.loads(json.dumps(base))
            doc["metadata"] = {"name": name}
            doc["spec"]["rollbackPolicy"].update(healthyFor="1s", rolloutDeadline=f"{ROLLOUT_DEADLINE}s", handover=True)
            doc["spec"]["gates"] = {"preLaunch": prelaunch_name(name), "daily": DAILY}
            doc["spec"]["image"] += "@sha256:" + "5a" * 32  # pinned by digest, as a live strategy must be
            if name in self.real:  # the example strategy's image, built here, as real containers
                doc["spec"].update(image=real_image, podTemplate=realnode.pod_template())
            self.as_(GITOPS).create_namespaced_custom_object(GROUP, VERSION, NS, "strategies", doc)
        for name in self.names:
            wait_for(
                lambda name=name: (self.status(name) or {}).get("lastKnownGood"),
                timeout=120,
                what=f"{name} deployed and known-good",
            )
        monitor = yaml.safe_load((ROOT / "examples" / "monitors" / "06-infra-queue-backlog.yaml").read_text())
        for name in self.names:
            query = f'max(soak_queue_depth{{strategy="{name}"}})'
            wait_for(lambda q=query: self.prometheus.value(q) == CALM, timeout=60, what=f"{name}'s metric scraped")
            doc = json.loads(json.dumps(monitor))
            doc["metadata"] = {"name": monitor_name(name)}
            doc["spec"].update(
                strategy=name,
                frequency="1s",
                source={"prometheus": {"url": self.prometheus.url, "query": query, "timeout": "2s"}},
                incident={"class": "RiskBreach", "severity": "P1"},
                alert={"channel": "page"},
            )
            self.as_(GITOPS).create_namespaced_custom_object(GROUP, VERSION, NS, "monitors", doc)
        for name in self.names[:LIVE_AT_START]:
            if not self.promote(name):
                raise RuntimeError(f"{name} could not be promoted at the start (the history says why)")
            wait_for(lambda name=name: self.status(name).get("mode") == "live", timeout=60, what=f"{name} live")
        progress(
            f"{len(self.names)} strategies deployed and known-good, each with a monitor, "
            f"{min(LIVE_AT_START, len(self.names))} of them live; two replicas peered"
            + (f"; {', '.join(sorted(self.real))} on the real node" if self.real else "")
        )

    # -- the real node -------------------------------------------------------------------
    def load_strategy_image(self) -> str:
        """The example strategy's image, built here and loaded into the real node: its reference
        pinned by digest, so every version the soak names runs this one image (a bad version,
        "crash-…", exits at its start: examples/strategy-app)."""
        progress("the example strategy's image built and loaded into the real node")
        built = images.strategy_image()
        tag = f"{images.STRATEGY_REPOSITORY}:1.4.2"
        digest = images.load(self.cp.node, built, [tag])[tag]
        self.rec("driver", "info", "real-node", strategies=sorted(self.real), digest=digest)
        return f"{images.STRATEGY_REPOSITORY}@{digest}"

    def containers(self, name: str) -> list[str]:
        """The containerd ids of the real strategy NAME's running containers."""
        pods = self.core.list_namespaced_pod(NS, label_selector=f"{GROUP}/strategy={name}").items
        return [
            st.container_id.split("://", 1)[1]
            for p in pods
            for st in p.status.container_statuses or []
            if st.container_id and st.state and st.state.running
        ]

    def status(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, NS, "strategies", name).get("status") or {}

    def as_(self, user: str) -> client.CustomObjectsApi:
        """The API as USER, with the chart's Role (and the admission policies) for them."""
        return client.CustomObjectsApi(self.people[user])

    def command(self, name: str, kind: str, by: str, **value: Any) -> None:
        """A command as the CLI writes it, by BY with their own credentials (the policies check
        that the command names its requesting user). With a fresh id, as the CLI gives it: the
        same words given again are another command (a reconciliation repeated with the same
        evidence was dropped as the first one's left-over, and the resume after it refused)."""
        body = {"metadata": {"annotations": {f"{GROUP}/{kind}": command_value(by, **new_command(by, **value))}}}
        self.as_(by).patch_namespaced_custom_object(GROUP, VERSION, NS, "strategies", name, body)

    def strategy(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, NS, "strategies", name)

    # -- gates and signatures ------------------------------------------------------------
    def sign_items(self, user: str, gate: str, subject: str | None = None, withdraw: bool = False) -> None:
        """USER signs their share of GATE's items (item n is SIGNERS[n % 2]'s), as `stratops gate
        sign` writes it (for SUBJECT, pre-launch), or, WITHDRAW, takes one of them back."""
        desk = DeskApi(self.people[user])
        g = desk.get("gates", NS, gate)
        ids = [i["id"] for i in g["spec"]["items"]]
        mine = [i for n, i in enumerate(ids) if SIGNERS[n % len(SIGNERS)] == user]
        sigs = {(x["item"], x["signer"]): x for x in g["spec"].get("signatures") or []}
        now = datetime.now(UTC).isoformat()
        if withdraw:
            sigs = {k: v for k, v in sigs.items() if k != (mine[0], user)}
        else:
            for item in mine:
                sigs[(item, user)] = {
                    "item": item,
                    "signer": user,
                    "signedAt": now,
                    "evidence": "soak",
                    **({"subject": subject} if subject else {}),
                }
        patch = {
            "metadata": {"resourceVersion": g["metadata"]["resourceVersion"]},
            "spec": {"signatures": list(sigs.values())},
        }
        patch_signatures(desk, NS, gate, g, patch)

    def sign_prelaunch(self, name: str, spec: dict[str, Any]) -> bool:
        """Every item of NAME's pre-launch gate signed for SPEC, by two risk owners (neither the
        spec's author: GitOps applies it). Recorded as `sign` with the subject and version."""
        subject = subject_for(name, StrategySpec.model_validate(spec))
        self.rec("driver", "invoke", "sign", name, subject=subject, version=spec["version"], signers=list(SIGNERS))
        try:
            for user in SIGNERS:
                self.sign_items(user, prelaunch_name(name), subject)
        except Exception as e:  # refused, or the API server restarting
            self.rec("driver", "fail", "sign", name, subject=subject, error=str(e)[:200])
            return False
        self.rec("driver", "ok", "sign", name, subject=subject, version=spec["version"], signers=list(SIGNERS))
        return True

    def daily_sign(self) -> None:
        self.rec("driver", "invoke", "daily-sign", gate=DAILY)
        try:
            for user in SIGNERS:
                self.sign_items(user, DAILY)
        except Exception as e:
            self.rec("driver", "fail", "daily-sign", gate=DAILY, error=str(e)[:200])
            return
        self.daily_lapsed = False
        self.rec("driver", "ok", "daily-sign", gate=DAILY)

    def daily_lapse(self) -> None:
        """A signature of today's daily gate withdrawn by its signer: until it is signed again,
        no resume and no new version (the operator must refuse them)."""
        self.rec("driver", "invoke", "daily-lapse", gate=DAILY)
        try:
            self.sign_items(RISK_OWNER, DAILY, withdraw=True)
        except Exception as e:
            self.rec("driver", "fail", "daily-lapse", gate=DAILY, error=str(e)[:200])
            return
        self.daily_lapsed = True
        self.rec("driver", "ok", "daily-lapse", gate=DAILY)

    def spec_change(self, f: str, name: str, spec: dict[str, Any], sign: bool) -> bool:
        """SPEC (a part of it) applied by GitOps, as a merged pull request is; SIGN: its
        pre-launch signatures first, for the spec as it will be."""
        try:
            whole = self.strategy(name)["spec"]
        except Exception:  # the API server may be restarting
            return False
        if sign and not self.sign_prelaunch(name, {**whole, **spec}):
            return False
        self.rec("driver", "invoke", f, name, **spec)
        try:
            self.as_(GITOPS).patch_namespaced_custom_object(GROUP, VERSION, NS, "strategies", name, {"spec": spec})
        except Exception as e:  # an API server restarting refuses it
            self.rec("driver", "fail", f, name, error=str(e)[:200], **spec)
            return False
        self.rec("driver", "ok", f, name, **spec)
        return True

    def promote(self, name: str) -> bool:
        return self.spec_change("promote", name, {"mode": "live"}, sign=True)

    # -- the replicas --------------------------------------------------------------------
    def start_replica(self, slot: str) -> None:
        self.generation[slot] += 1
        identity = f"replica-{slot}-{self.generation[slot]}"
        log = self.out / f"{identity}.log"
        # The chart's arguments and environment, but a shorter peering lifetime (a takeover's delay).
        namespaces, env = operator_from_deployment(self.operator, identity)
        env |= {
            "STRATOPS_PEERING_LIFETIME": str(LIFETIME),
            "STRATOPS_ALERTMANAGER_URL": self.alertmanager.url,
            # Its peering clock, which the nemesis steps (stratops.testing.clock).
            clock.ENV: str(self.clock_file(slot)),
            "PYTHONPATH": os.pathsep.join(
                [str(clock.site_dir(self.out / "site")), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        proc = operator_process(self.replica_kubeconfigs[slot], namespaces, log, free_port(), env=env)
        self.replicas[slot] = (identity, proc)
        self.logs.append((identity, log))
        self.rec("replica", "info", "started", replica=identity)

    def clock_file(self, slot: str) -> Path:
        path = self.out / f"clock-{slot}"
        if not path.exists():
            clock.step(path, 0)
        return path

    def leader(self) -> str | None:
        """The slot whose live replica has the highest priority in the peering."""
        try:
            peers = (
                self.custom.get_namespaced_custom_object("kopf.dev", "v1", NS, "kopfpeerings", RELEASE).get("status")
                or {}
            )
        except ApiException:
            return None
        live = {ident: slot for slot, (ident, p) in self.replicas.items() if p.poll() is None}
        ranked = sorted((int(v.get("priority", 0)), ident) for ident, v in peers.items() if ident in live)
        return live[ranked[-1][1]] if ranked else None

    def sigkill(self, slot: str) -> None:
        identity, proc = self.replicas[slot]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.rec("replica", "info", "killed", replica=identity)

    # -- strategy processes (the SDK, one per running KWOK pod) -----------------------------
    def pod_api(self, pod: str, strategy: str) -> client.ApiClient | None:
        """The API as the strategy pod POD: its strategy's identity, with a token bound to the pod
        (as the kubelet mounts it), held to the acknowledgement policy."""
        if pod not in self.pod_apis:
            try:
                (self.out / "pods").mkdir(exist_ok=True)
                body = self.core.read_namespaced_pod(pod, NS)
                path = service_account_kubeconfig(
                    self.api,
                    Path(self.cp.kubeconfig),
                    NS,
                    identity_name(strategy),
                    self.out / "pods" / f"{pod}.kubeconfig",
                    pod=body,
                    seconds=int(self.seconds) + 7200,
                )
            except Exception:
                return None
            self.pod_apis[pod] = self.cp.api_client(path)
        return self.pod_apis[pod]

    def play(self) -> None:
        while not self.stop.wait(0.2):
            try:
                pods = self.core.list_namespaced_pod(NS, label_selector=f"{GROUP}/strategy").items
            except Exception:  # the API server may be restarting: next round
                continue
            running = {
                p.metadata.name: (p.metadata.labels[f"{GROUP}/strategy"], p.metadata.labels.get(LABEL_VERSION, ""))
                for p in pods
                if p.metadata.deletion_timestamp is None
                and p.metadata.labels[f"{GROUP}/strategy"] not in self.real  # its own SDK, in its container
                and not p.metadata.labels.get(LABEL_VERSION, "").startswith("fail-")  # never starts
            }
            for pod, agent in list(self.agents.items()):
                if pod not in running or running[pod][0] in self.hung:
                    agent.stop()
                    del self.agents[pod]
            for pod, (strategy, version) in running.items():
                if pod not in self.agents and strategy not in self.hung:
                    if pod not in self.books:  # the first version holds the book; a later one takes it
                        first = version == "1.4.2"
                        self.books[pod] = (strategy, version, dict(BOOK) if first else {})
                    book = self.books[pod][2]
                    if (api := self.pod_api(pod, strategy)) is None:
                        continue  # the API server may be restarting: next round
                    a = StrategyControl(
                        pod,
                        ApiControl(NS, strategy, api),
                        ApiAcknowledger(NS, strategy, api),
                        version=version,
                        book=lambda b=book: b,
                        take_book=book.update,
                    )
                    a.run_in_background(0.1)
                    self.agents[pod] = a

    # -- the observer ----------------------------------------------------------------------
    def observe(self) -> None:
        while not self.stop.wait(0.5):
            try:
                strategies = self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "strategies")["items"]
                cms = {c.metadata.name: c for c in self.core.list_namespaced_config_map(NS).items}
                deps = {d.metadata.name: d for d in self.apps.list_namespaced_deployment(NS).items}
                pods = self.core.list_namespaced_pod(NS, label_selector=f"{GROUP}/strategy").items
                monitors = self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "monitors")["items"]
                incidents = self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "incidents")["items"]
            except Exception:  # the API server may be restarting: no sample this round
                continue
            watching = {m["metadata"]["name"]: (m.get("status") or {}).get("incident") for m in monitors}
            for s in strategies:
                name, st, spec = s["metadata"]["name"], s.get("status") or {}, s["spec"]
                cm = cms.get(control_name(name))
                state = json.loads(cm.data["control.json"]).get("tradingState") if cm and cm.data else None
                live = {
                    p.metadata.name: p.metadata.labels.get(LABEL_VERSION)
                    for p in pods
                    if p.metadata.labels.get(f"{GROUP}/strategy") == name and p.metadata.deletion_timestamp is None
                }
                acks = (cms.get(ack_name(name)) and cms[ack_name(name)].data) or {}
                h = st.get("handover") or {}
                dep = deps.get(name)
                eff = st.get("effectiveLimits") or {}
                ks = st.get("killSwitch") or {}
                self.rec(
                    "observer",
                    "info",
                    "observe",
                    name,
                    latched=bool((st.get("killSwitch") or {}).get("latched")),
                    halted=state == "HALTED",
                    replicas=dep.spec.replicas if dep else None,
                    pods=sum(
                        1
                        for p in pods
                        if p.metadata.labels.get(f"{GROUP}/strategy") == name and p.metadata.deletion_timestamp is None
                    ),
                    effective={k: eff.get(k) for k in LIMITS},
                    spec={k: (spec.get("riskLimits") or {}).get(k) for k in LIMITS},
                    throttled=bool((st.get("throttle") or {}).get("active")),
                    completed=bool((st.get("killSwitch") or {}).get("completedAt")),
                    stopped=_ts(stop)
                    if ks.get("latched") and (stop := ks.get("completedAt") or ks.get("at"))
                    else None,
                    reconciled=_ts(rec) if (rec := (st.get("lastReconciliation") or {}).get("at")) else None,
                    message=str(st.get("message") or "")[:300],
                    trading_versions=trading_versions(live, acks),
                    mode=st.get("mode"),
                    approved={k: (st.get("approved") or {}).get(k) for k in ("subject", "signers", "author")}
                    if st.get("approved")
                    else None,
                    pod_versions=sorted({str(v) for v in live.values()}),
                    handover={k: h.get(k) for k in ("step", "startedAt", "fromVersion", "toVersion")} if h else None,
                    monitor_incident=watching.get(monitor_name(name)),
                    open_incidents={
                        i["metadata"]["name"]: _ts(i["metadata"]["creationTimestamp"])
                        for i in incidents
                        if i["spec"].get("strategy") == name and (i.get("status") or {}).get("phase") != "Resolved"
                    },
                    breach_incidents={
                        i["metadata"]["name"]: _ts(i["metadata"]["creationTimestamp"])
                        for i in incidents
                        if i["spec"].get("monitor") == monitor_name(name) and i["spec"].get("class") == "RiskBreach"
                    },
                )

    # -- the driver and the nemesis ------------------------------------------------------
    def drive(self, step: generator.Step) -> None:
        name = self.names[step.pick % len(self.names)]
        if step.f == "kill":
            self._do("kill", [name], by=TRADER, reason=f"soak kill {step.pick}")
        elif step.f == "kill-all":
            self._do("kill", list(self.names), by=TRADER, reason=f"soak kill-all {step.pick}")
        elif step.f == "throttle":
            self._do("throttle", [name], by=TRADER, reason=f"soak throttle {step.pick}")
        elif step.f == "resume":
            self.resume(step)
        elif step.f == "resume-unreconciled":
            self.resume(step, reconcile=False)
        elif step.f in ("rollout", "rollout-bad", "rollout-unsigned"):
            # A live strategy's new version is signed for first (not so "rollout-unsigned", a
            # desk cutting a corner: the operator must keep running what was signed).
            if step.f == "rollout-unsigned":  # the corner cut matters on a live strategy
                try:
                    live_now = [n for n in self.names if self.status(n).get("mode") == "live"]
                except Exception:
                    return
                if not live_now:
                    return
                name = live_now[step.pick % len(live_now)]
            version = self.new_version(name, bad=step.f == "rollout-bad")
            live = self.spec_mode(name) == "live"
            self.spec_change(step.f, name, {"version": version}, sign=live and step.f != "rollout-unsigned")
        elif step.f in ("promote", "promote-unsigned"):
            # A strategy not live yet: signed for its spec and promoted; or promoted with a new
            # version nobody signed for (the operator must keep it on paper).
            try:
                paper = [n for n in self.names if self.status(n).get("mode") != "live"]
            except Exception:
                return
            if paper:
                name = paper[step.pick % len(paper)]
                if step.f == "promote":
                    self.promote(name)
                else:
                    change = {"mode": "live", "version": self.new_version(name)}
                    self.spec_change(step.f, name, change, sign=False)
        elif step.f == "demote":
            live = [n for n in self.names if self.spec_mode(n) == "live"]
            if len(live) > 1:  # keep one live: the signatures' invariant has cases all along
                self.spec_change("demote", live[step.pick % len(live)], {"mode": "paper"}, sign=False)
        elif step.f == "daily-lapse":
            self.daily_lapse()
        elif step.f == "daily-sign":
            self.daily_sign()
        elif step.f == "release":
            self.release(step)
        elif step.f == "breach":
            calm = [n for n in self.names if n not in self.breached]
            if calm:
                name = calm[step.pick % len(calm)]
                self.signal.labels(name).set(BREACHING)
                self.breached[name] = time.time()
                self.rec("driver", "ok", "breach", name, value=BREACHING)
        elif step.f == "recover":
            old = [n for n, t in self.breached.items() if time.time() - t >= BREACH_AT_LEAST]
            if old:
                name = sorted(old)[step.pick % len(old)]
                self.signal.labels(name).set(CALM)
                del self.breached[name]
                self.rec("driver", "ok", "recover", name, value=CALM)

    def new_version(self, name: str, bad: bool = False) -> str:
        """A version never seen: BAD, one whose processes never start (a KWOK pod's SDK is not
        started for "fail-…"; a real container of "crash-…" exits at its start)."""
        self.versions += 1
        if name not in self.real:
            return f"fail-{self.versions}" if bad else f"1.5.{self.versions}"
        return f"crash-{self.versions}" if bad else f"1.5.{self.versions}"

    def _do(self, kind: str, names: list[str], as_: str | None = None, **value: Any) -> bool:
        """Give command KIND to NAMES, recorded as AS_ (default: KIND)."""
        one = names[0] if len(names) == 1 else None
        f = as_ or kind
        self.rec("driver", "invoke", f, one, strategies=names, **value)
        try:
            for n in names:
                self.command(n, kind, **value)
        except Exception as e:  # an API server restarting refuses it: the desk would say so, and retry
            self.rec("driver", "fail", f, one, strategies=names, error=str(e)[:200])
            return False
        self.rec("driver", "ok", f, one, strategies=names, **value)
        return True

    def resume(self, step: generator.Step, reconcile: bool = True) -> None:
        """Resume one stopped (its kill-switch completed) or throttled strategy, after its
        reconciliation, as a desk must; without RECONCILE, a desk cutting that corner (its
        incidents resolved, no new reconciliation): the operator must refuse it."""

        def halted(ks: dict[str, Any]) -> bool:
            return bool(ks.get("latched") and ks.get("completedAt"))

        try:
            stopped = [n for n in self.names if halted(self.status(n).get("killSwitch") or {})]
            stopped += [n for n in self.names if (self.status(n).get("throttle") or {}).get("active")]
        except Exception:
            return
        if not stopped:
            return
        name = stopped[step.pick % len(stopped)]
        if not self.resolve_incidents(name):
            return
        if not reconcile:
            self._do("resume", [name], as_="resume-unreconciled", by="rob", reason=f"soak corner cut {step.pick}")
            return
        asked = datetime.now(UTC)
        if not self._do(
            "reconciliation", [name], by=RISK_OWNER, result="Matched", evidence="broker statement vs fills"
        ):
            return
        try:
            wait_for(
                lambda: (
                    (r := self.status(name).get("lastReconciliation") or {}).get("at")
                    and _ts(r["at"]) >= asked.timestamp() - 1
                ),
                timeout=40,
                what=f"{name}'s reconciliation recorded",
            )
        except Exception as e:
            self.rec("driver", "fail", "reconciliation", name, error=str(e)[:200])
            return
        # With today's daily gate lapsed, the resume must be refused: recorded as such.
        as_ = "resume-lapsed" if self.daily_lapsed else None
        self._do("resume", [name], as_=as_, by=RISK_OWNER, reason=f"soak resume {step.pick}")

    def release(self, step: generator.Step) -> None:
        """Release one held handover, as a desk does: reconcile at the broker, then hand the new
        version the book the broker shows (what the old version's pods held)."""
        try:
            held = [n for n in self.names if (self.status(n).get("handover") or {}).get("step") == "Held"]
        except Exception:  # the API server may be restarting: no release this time
            return
        if not held:
            return
        name = held[step.pick % len(held)]
        h = self.status(name)["handover"]
        book: dict[str, float] = {}
        for strategy, version, b in list(self.books.values()):
            if strategy == name and version == h["fromVersion"]:
                for k, q in b.items():
                    book[k] = book.get(k, 0.0) + q
        asked = datetime.now(UTC)
        if not self._do("reconciliation", [name], by=RISK_OWNER, result="Matched", evidence="broker statement"):
            return
        try:
            wait_for(
                lambda: (
                    _ts((self.status(name).get("lastReconciliation") or {}).get("at") or "1970-01-01T00:00:00Z")
                    >= asked.timestamp() - 1
                ),
                timeout=40,
                what=f"{name}'s reconciliation recorded",
            )
        except Exception as e:
            self.rec("driver", "fail", "reconciliation", name, error=str(e)[:200])
            return
        self._do("release", [name], by=RISK_OWNER, reason=f"soak release {step.pick}", book=book or {"EURUSD": 0.0})

    def spec_mode(self, name: str) -> str | None:
        try:
            return str(self.strategy(name)["spec"].get("mode") or "paper")
        except Exception:  # the API server may be restarting
            return None

    def open_incidents(self, name: str) -> list[str]:
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "incidents")["items"]
        return [
            i["metadata"]["name"]
            for i in items
            if i["spec"].get("strategy") == name and (i.get("status") or {}).get("phase") != "Resolved"
        ]

    def resolve_incidents(self, name: str) -> bool:
        """What a desk does before a resume: each open incident of the strategy resolved, with
        its postmortem (as `stratops incident resolve` writes it)."""
        try:
            incidents = self.open_incidents(name)
        except Exception:
            return False
        if not incidents:
            return True
        self.rec("driver", "invoke", "resolve", name, incidents=incidents)
        try:
            for inc in incidents:
                value = {
                    "by": RISK_OWNER,
                    "reason": "soak",
                    "id": uuid.uuid4().hex[:12],
                    "at": datetime.now(UTC).isoformat(),
                }
                body = {
                    "metadata": {"annotations": {f"{GROUP}/resolve": json.dumps(value)}},
                    "spec": {"postmortem": {"rootCause": "soak", "actions": ["none"], "owner": "desk"}},
                }
                self.as_(RISK_OWNER).patch_namespaced_custom_object(GROUP, VERSION, NS, "incidents", inc, body)
            wait_for(lambda: not self.open_incidents(name), timeout=40, what=f"{name}'s incidents resolved")
        except Exception as e:
            self.rec("driver", "fail", "resolve", name, incidents=incidents, error=str(e)[:200])
            return False
        self.rec("driver", "ok", "resolve", name, incidents=incidents)
        return True

    def strike(self, step: generator.Step) -> None:
        fid = f"{step.f}-{step.at}"
        if step.f == "sigkill-leader":
            slot = self.leader() or SLOTS[step.pick % 2]
            self.rec("nemesis", "invoke", step.f, id=fid, replica=self.replicas[slot][0])
            self.sigkill(slot)
            self.stop.wait(step.duration)
            self.start_replica(slot)
        elif step.f == "sigkill-both":
            self.rec("nemesis", "invoke", step.f, id=fid)
            for slot in SLOTS:
                self.sigkill(slot)
            self.stop.wait(step.duration)
            for slot in SLOTS:
                self.start_replica(slot)
        elif step.f == "apiserver-restart":
            self.rec("nemesis", "invoke", step.f, id=fid)
            self.cp.restart("kube-apiserver")
        elif step.f == "etcd-restart":
            self.rec("nemesis", "invoke", step.f, id=fid)
            self.cp.restart("etcd", down_for=step.duration)
        elif step.f in ("prometheus-stop", "alertmanager-stop"):
            server = self.prometheus if step.f == "prometheus-stop" else self.alertmanager
            self.rec("nemesis", "invoke", step.f, id=fid)
            stop_process(server.process, 15)
            self.stop.wait(step.duration)
            server.start()  # the same port, so the monitors and the replicas find it again
        elif step.f in ("api-slow", "api-refused"):
            # Between the replicas and the API server: every chunk held a second (watches lag,
            # writes crawl), or every connection cut and refused.
            self.rec("nemesis", "invoke", step.f, id=fid)
            if step.f == "api-slow":
                self.proxy.slow(1.0)
            else:
                self.proxy.refuse()
            self.stop.wait(step.duration)
            self.proxy.heal()
        elif step.f == "clock-step":
            # One replica's wall clock steps several lifetimes ahead or behind (NTP stepping a
            # drifted clock, a VM resumed), then back: its peers' records look dead to it, or its
            # own to them.
            slot = SLOTS[step.pick % 2]
            seconds = (1 if step.pick // 2 % 2 else -1) * LIFETIME * (3 + step.pick // 4 % 4)
            self.rec("nemesis", "invoke", step.f, id=fid, replica=self.replicas[slot][0], seconds=seconds)
            clock.step(self.clock_file(slot), seconds)
            self.stop.wait(step.duration)
            clock.step(self.clock_file(slot), 0)
        elif step.f in ("hang", "process-kill"):
            # Hung: the strategy's processes stop acknowledging for the fault's length. Killed:
            # they die and the kubelet starts them again in their pods, as fresh processes that
            # know nothing but the control document (the restart a moment later, at most 2 s).
            name = self.names[step.pick % len(self.names)]
            self.rec("nemesis", "invoke", step.f, name, id=fid)
            if name in self.real:
                self.strike_containers(step, name)
            else:
                self.hung.add(name)
                self.stop.wait(step.duration if step.f == "hang" else min(step.duration, 2.0))
                self.hung.discard(name)
        self.rec("nemesis", "ok", step.f, id=fid)

    def strike_containers(self, step: generator.Step, name: str) -> None:
        """On the real node: hung, the containers are frozen (their cgroup's freezer) for the
        fault's length; killed, their processes get SIGKILL and the kubelet starts them again."""
        try:
            ids = self.containers(name)
        except Exception as e:  # the API server may be restarting: nothing struck
            self.rec("nemesis", "info", step.f, name, error=str(e)[:200])
            return
        self.rec("nemesis", "info", step.f, name, containers=ids)
        verb = ("tasks", "pause") if step.f == "hang" else ("tasks", "kill", "--signal", "SIGKILL")
        for cid in ids:
            self.cp.node.ctr(*verb, cid, check=False, timeout=30)
        if step.f == "hang":
            self.stop.wait(step.duration)
            for cid in ids:
                self.cp.node.ctr("tasks", "resume", cid, check=False, timeout=30)

    def run(self) -> None:
        steps = generator.schedule(self.seed, self.seconds, faults=self.faults)
        threads = [threading.Thread(target=t, name=t.__name__, daemon=True) for t in (self.play, self.observe)]
        for t in threads:
            t.start()
        began = time.time()

        def follow(process: str, act: Any) -> None:
            for step in (s for s in steps if s.process == process):
                if self.stop.wait(max(0.0, began + step.at - time.time())):
                    return
                progress(f"{step.at:6.1f}s {process}: {step.f}")
                act(step)

        def nemesis() -> None:
            try:
                follow("nemesis", self.strike)
            finally:
                self.struck.set()
            self.finished.wait()

        threading.Thread(target=nemesis, daemon=True).start()
        follow("driver", self.drive)
        self.struck.wait()
        quiet = checker.Bounds().kill + 5
        progress(f"schedule done; {quiet:.0f} s without commands or faults, for the last ones to land")
        time.sleep(quiet)  # an observation window, not a synchronisation: the checker judges it
        # A thread of the soak's own that died (its traceback is on stderr) leaves a history
        # that proves nothing: say so, not "violations".
        dead = [t.name for t in threads if not t.is_alive()]
        self.stop.set()
        if dead:
            raise RuntimeError(f"the soak's own {', '.join(dead)} thread died (traceback above): no verdict")
        for t in threads:
            t.join(10)
        for a in self.agents.values():
            a.stop()

    # -- after the run ---------------------------------------------------------------------
    def final(self) -> None:
        events = self.core.list_namespaced_event(NS).items
        kills = Counter(
            e.involved_object.name for e in events if e.involved_object.kind == "Strategy" and e.reason == "KillSwitch"
        )
        self.rec("final", "info", "events", KillSwitch=dict(kills))
        incidents = self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "incidents")["items"]
        each = {
            i["metadata"]["name"]: {
                "class": i["spec"]["class"],
                "strategy": i["spec"].get("strategy"),
                "phase": (i.get("status") or {}).get("phase"),
                "steps": {
                    k: _ts(v["at"])
                    for k, v in ((i.get("status") or {}).get("steps") or {}).items()
                    if v and v.get("at")
                },
            }
            for i in incidents
        }
        self.rec("final", "info", "incidents", opened=dict(Counter(i["spec"]["class"] for i in incidents)), each=each)
        from stratops.cli.audit import read_trails

        chains = {}
        for (_, kind, name), (entries, findings) in read_trails(self.api, NS).items():
            key = name if kind == "Strategy" else f"{kind}/{name}"
            chains[key] = {
                "entries": len(entries),
                "findings": [str(f) for f in findings],
                "kill_switches": sum(1 for e in entries if e.get("reason") == "KillSwitch"),
            }
        self.rec("final", "info", "audit", chains=chains)
        writes, _ = self.cp.audit_events()
        for ev in writes:
            # A replica is its ServiceAccount with a token bound to its pod.
            user = ((ev.get("user") or {}).get("extra") or {}).get(POD_NAME, [""])[0]
            ref = ev.get("objectRef") or {}
            if (
                user.startswith(f"{RELEASE}-replica-")
                and ev.get("stage") == "ResponseComplete"
                and ev.get("verb") in ("create", "update", "patch", "delete")
                and ref.get("namespace") == NS
                and ref.get("resource") != "kopfpeerings"
                and int((ev.get("responseStatus") or {}).get("code", 500)) < 400
            ):
                self.records.append(
                    Record(
                        _ts(ev["requestReceivedTimestamp"]),
                        "apiserver",
                        "info",
                        "write",
                        None,
                        {"user": user, "verb": ev["verb"], "resource": ref.get("resource"), "name": ref.get("name")},
                    )
                )
        for identity, log in self.logs:
            for line in log.read_text(errors="replace").splitlines():
                if "carried out by the kill watch" in line:
                    self.kill_watch_halts += 1  # kopf did not take a kill up within the grace
                for marker, f, why in (
                    ("Pausing operations", "paused", "peering"),
                    ("Pausing all operators", "paused", "peering"),
                    ("Resuming operations", "acting", "peering"),
                    ("] fenced: ", "paused", "fence"),
                    ("] fence lifted", "acting", "fence"),
                ):
                    if marker in line and line.startswith("["):
                        at = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
                        self.records.append(Record(at, "replica", "info", f, None, {"replica": identity, "why": why}))

    def stop_replicas(self) -> None:
        for _, proc in self.replicas.values():
            stop_process(proc, 30)


def trading_versions(pods: dict[str, str | None], acks: dict[str, str]) -> list[str]:
    """The versions whose live pods last acknowledged a state that trades (one ack ConfigMap, one
    snapshot: a version is handed trading only after the other's HALTED is in it)."""
    out = set()
    for pod, raw in acks.items():
        if pod not in pods:
            continue
        try:
            a = Acknowledgement.model_validate_json(raw)
        except ValueError:
            continue
        if allows_orders(a.trading_state) and not a.exiting:
            out.add(pods[pod] or "?")
    return sorted(out)


def kill_latencies(history: list[Record]) -> list[float]:
    out = []
    obs: dict[str, list[Record]] = {}
    for r in history:
        if r.process == "observer":
            obs.setdefault(str(r.strategy), []).append(r)
    for r in history:
        if r.process == "driver" and r.f == "kill" and r.type == "ok":
            for s in r.value.get("strategies") or []:
                hit = next(
                    (
                        o
                        for o in obs.get(s, [])
                        if o.t >= r.t
                        and o.value.get("halted")
                        and o.value.get("replicas") == 0
                        and o.value.get("pods") == 0
                    ),
                    None,
                )
                if hit is not None:
                    out.append(hit.t - r.t)
    return out


def main(
    seconds: float,
    seed: int,
    strategies: int,
    out: Path | None = None,
    faults: tuple[str, ...] = generator.FAULTS,
    real_node: bool = False,
) -> int:
    out = out or Path(tempfile.mkdtemp(prefix="stratops-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    progress(f"seed {seed}, {seconds:.0f} s, {strategies} strategies; history and logs in {out}")
    with ControlPlane(log=progress, audit=True, real_node=real_node) as cp:
        soak = Soak(cp, strategies, seed, seconds, out, faults)
        try:
            soak.setup()
            soak.run()
            soak.final()
        finally:
            soak.stop.set()
            soak.stop_replicas()
            soak.finished.set()
            soak.prometheus.stop()
            soak.alertmanager.stop()
            soak.proxy.stop()
    history = sorted(soak.records, key=lambda r: r.t)
    dump(history, out / "history.jsonl")
    report = checker.check(history)
    faults = Counter(r.f for r in history if r.process == "nemesis" and r.type == "invoke")
    commands = Counter(r.f for r in history if r.process == "driver" and r.type == "ok")
    latencies = kill_latencies(history)
    print(f"soak: seed {seed}, {seconds:.0f} s, {strategies} strategies, history {out / 'history.jsonl'}")
    print(
        f"on the real node (real containers): {', '.join(sorted(soak.real))}; the others on KWOK"
        if soak.real
        else "no real node: every strategy on KWOK, its SDK on this host"
    )
    print(f"faults injected: {sum(faults.values())} ({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))})")
    print(f"commands given: {sum(commands.values())} ({', '.join(f'{k} {v}' for k, v in sorted(commands.items()))})")
    print("invariants checked: " + ", ".join(f"{k} ({n} cases)" for k, n in report.checked.items()))
    if latencies:
        print(
            f"kill latency (command to HALTED, 0 replicas, no pod): worst {max(latencies):.1f} s, "
            f"median {sorted(latencies)[len(latencies) // 2]:.1f} s, over {len(latencies)} kills"
        )
    opened = next((r.value.get("opened") for r in history if r.process == "final" and r.f == "incidents"), {}) or {}
    print(f"incidents opened: {sum(opened.values())} ({', '.join(f'{k} {v}' for k, v in sorted(opened.items()))})")
    print(f"kills carried out by the kill watch (no reconcile took them up in time): {soak.kill_watch_halts}")
    print(f"violations: {len(report.violations)}")
    for v in report.violations:
        print(f"\n{v.invariant}: {v.strategy or '-'}: {v.message}")
        for line in report.excerpt(history, v):
            print(f"    {line}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="length of the schedule (then 35 s of quiet)")
    ap.add_argument("--seed", default="168", help="the schedule's seed, or 'random' (printed, to replay)")
    ap.add_argument("--strategies", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="where the history and the replicas' logs go")
    ap.add_argument(
        "--faults", default="", help="only these faults, comma-separated (default: all): to replay one kind"
    )
    ap.add_argument(
        "--real-node",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run the first strategy as real containers on a real node (auto: where this machine can)",
    )
    a = ap.parse_args()
    seed = random.SystemRandom().randrange(1 << 31) if a.seed == "random" else int(a.seed)
    faults = tuple(f for f in a.faults.split(",") if f) if a.faults else generator.FAULTS
    unknown = sorted(set(faults) - set(generator.FAULTS))
    if unknown:
        ap.error(f"--faults: no fault {', '.join(unknown)}; the faults: {', '.join(generator.FAULTS)}")
    why = realnode.unavailable() or images.docker_unavailable()
    if not why and a.real_node != "no":
        try:
            images.strategy_image()  # built once (cached): the real strategy's image
        except images.ImageUnavailable as e:
            why = f"the example strategy's image cannot be built: {e}"
    if a.real_node == "yes" and why:
        ap.error(f"--real-node yes: {why}")
    if a.real_node == "auto" and why:
        progress(f"no real node ({why}): every strategy on KWOK")
    sys.exit(main(a.seconds, seed, a.strategies, a.out, faults, real_node=a.real_node != "no" and not why))
