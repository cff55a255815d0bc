"""One Monitor evaluation with its effects: status, alerts, incident. Runs in a worker thread."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor as Pool
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import Gauge
from pydantic import BaseModel

from stratops import GROUP, VERSION
from stratops.alerts import Alert, Notifier
from stratops.k8s.executor import Executor
from stratops.lifecycle.shard import parse_shard
from stratops.metrics import MONITOR_SERIES, MONITOR_SOURCE_READS
from stratops.models.monitor import LastAlert, MonitorSpec, MonitorStatus
from stratops.models.strategy import StrategySpec
from stratops.monitors.decide import decide as decide_monitor
from stratops.monitors.desk import DeskFindings, source_label
from stratops.monitors.evaluate import Evaluation, evaluate
from stratops.monitors.prefetch import MOST_READS, Answered, Answers, answered_loader, next_read
from stratops.monitors.prometheus import (
    AsyncPrometheus,
    AsyncSharedQueries,
    Batched,
    Prometheus,
    SharedQueries,
    SourceUnavailable,
)
from stratops.monitors.ruler import RulerState
from stratops.monitors.rules import CompiledMonitor, compile_monitor, prometheus_rule, rule_name

log = logging.getLogger("stratops.monitors")
#: While nothing that matters changes (verdict, breach count, stale, alert, incident, problem,
#: generation), a monitor's status (lastValue, detail, lastEvaluation) is refreshed at most this
#: often: 12,000 monitors evaluated every few seconds must not become as many API writes (the
#: kubelet's node status report works the same way, every 5 minutes). 0 writes on every
#: evaluation. The gauges (stratops_monitor_value, ...) are set on every evaluation.
STATUS_REFRESH_SECONDS = float(os.environ.get("STRATOPS_MONITOR_STATUS_SECONDS", "300"))
#: A monitor's referenced objects (its authSecretRef Secret, its baseline ConfigMaps) are read
#: at most this often per object, not on every evaluation: thousands of evaluations a minute
#: would otherwise be as many reads. A rotated token or an edited baseline is used within this
#: time; a missing one is read again on the next evaluation. 0 reads on every evaluation.
REFS_SECONDS = float(os.environ.get("STRATOPS_MONITOR_REFS_SECONDS", "60"))
#: Connections open at once to one source (every monitor reading it shares them). By default 20,
#: Prometheus's own `--query.max-concurrency`: more queries at once would only queue there.
SOURCE_CONNECTIONS = int(os.environ.get("STRATOPS_SOURCE_CONNECTIONS", "20"))
#: A PrometheusRule that could not be written (no CRD, no right) is tried again after this long;
#: meanwhile the operator evaluates the monitor itself.
RULE_RETRY_SECONDS = 60.0
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class RecentReads:
    """Values read from the API server, kept for SECONDS (thread-safe). Failed reads are not
    kept, and only what is needed is: a Secret's one key, never the whole Secret."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic, limit: int = 4096) -> None:
        self.seconds, self.clock, self.limit = seconds, clock, limit
        self._items: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...], read: Callable[[], T], fresh: bool = False) -> T:
        """The value kept for KEY if younger than SECONDS (and not FRESH), else READ's."""
        if self.seconds > 0 and not fresh:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None and self.clock() - hit[0] < self.seconds:
                    return hit[1]  # type: ignore[no-any-return]
        value = read()  # outside the lock: one slow read must not hold up every worker
        if self.seconds > 0:
            with self._lock:
                if len(self._items) >= self.limit:
                    self._items.clear()
                self._items[key] = (self.clock(), value)
        return value


#: A batch's shared result serves evaluations for half the monitor's period, at most this long.
BATCH_MAX_AGE_SECONDS = float(os.environ.get("STRATOPS_BATCH_MAX_AGE_SECONDS", "5"))
BATCH_QUERIES = Gauge(
    "stratops_batch_queries",
    "Queries sent to a source for grouped monitors (source.prometheus.groupBy), since the start.",
    ["source"],
)
BATCH_READS = Gauge(
    "stratops_batch_reads",
    "Evaluations of grouped monitors answered, by a query of their own or a shared one, since the start.",
    ["source"],
)
SOURCE_DOWN = Gauge(
    "stratops_source_down",
    "1 while a metrics source is unreachable from every monitor of a desk that reads it (two strategies or more).",
    ["namespace", "source"],
)


_REFRESHED = {"last_value", "detail", "last_evaluation"}
_COMPARED = tuple(f for f in MonitorStatus.model_fields if f not in _REFRESHED)


def needs_write(prev: MonitorStatus, new: MonitorStatus, now: datetime, refresh_seconds: float | None = None) -> bool:
    """Whether NEW must be written over PREV (the status as last written): at once when anything
    but the value, the detail and the evaluation time changed (every evaluation's state that the
    next one builds on, such as the breach count, is in that set); otherwise once the written
    lastEvaluation is REFRESH_SECONDS old."""
    refresh = STATUS_REFRESH_SECONDS if refresh_seconds is None else refresh_seconds
    if prev.last_evaluation is None or refresh <= 0:
        return True
    if any(getattr(new, f) != getattr(prev, f) for f in _COMPARED):
        return True
    return (now - prev.last_evaluation).total_seconds() >= refresh


class MonitorRunner:
    def __init__(
        self, api: client.ApiClient, notifier: Notifier | None = None, ruler: RulerState | None = None
    ) -> None:
        self.api = api
        #: The Prometheus-ruler mode (None: off): what Alertmanager's notifications said.
        self.ruler = ruler
        #: This process's shard (its rules carry it); read once, not at every evaluation.
        shard = parse_shard(os.environ.get("STRATOPS_SHARD"))
        self.shard_index = shard.index if shard else None
        #: Per monitor: (uid, digest) of the PrometheusRule this process wrote, or (uid, why, when)
        #: it could not.
        self._rules: dict[tuple[str, str], tuple[str, str, float]] = {}
        #: Per monitor: the PrometheusRule's spec as the API server answered this process's write.
        self._rule_specs: dict[tuple[str, str], Any] = {}
        #: The monitors whose PrometheusRule exists, as the watch of them saw (a restart included).
        self._rules_present: set[tuple[str, str]] = set()
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.executor = Executor(api)
        self.notifier = notifier or Notifier.from_environment()
        self._sources: dict[tuple[str, float, str | None], Prometheus] = {}
        self._sources_lock = threading.Lock()
        self._shared: dict[str, SharedQueries] = {}  # per source URL: grouped monitors' queries
        #: The same, read on the event loop (prefetch); touched only by the loop's thread.
        self._async_sources: dict[tuple[str, float, str | None], AsyncPrometheus] = {}
        self._async_shared: dict[str, AsyncSharedQueries] = {}
        self._recent = RecentReads(REFS_SECONDS)
        #: Per monitor (namespace, name): its uid and the status this process last wrote.
        self._written: dict[tuple[str, str], tuple[str, MonitorStatus]] = {}
        self._specs: dict[tuple[str, ...], tuple[object, Any]] = {}  # dict ops are atomic under the GIL
        # The open incident of each (namespace, strategy, group): findings of one root cause join it.
        # The lock makes "look for it, else open it" one step across the worker threads.
        self._groups: dict[tuple[str, str, str], str] = {}
        self._groups_lock = threading.Lock()
        self.desk = DeskFindings()  # sources down for a whole desk
        self._down_since: dict[tuple[str, str], datetime] = {}
        self._desk_unsent: dict[tuple[str, str], Alert] = {}

    def _source(self, url: str, timeout: float, token: str | None) -> Prometheus:
        """One HTTP client (connection pool, TLS context) per source, shared by every monitor and
        worker thread: a new client per evaluation costs ~15 ms of CPU, mostly building its TLS
        context, which at thousands of evaluations a minute is most of the operator's CPU."""
        key = (url, timeout, token)
        with self._sources_lock:
            prom = self._sources.get(key)
            if prom is None:
                if len(self._sources) >= 64:  # rotated tokens, edited URLs: start over (an
                    self._sources.clear()  # evaluation still using a dropped one finishes)
                prom = self._sources[key] = Prometheus(url, timeout, token, connections=SOURCE_CONNECTIONS)
            return prom

    def _shared_queries(self, url: str) -> SharedQueries:
        with self._sources_lock:
            return self._shared.setdefault(url, SharedQueries())

    def _parsed(self, key: tuple[str, ...], version: object, model: type[M], data: dict[str, Any]) -> M:
        """DATA validated as MODEL, once per VERSION of the object at KEY (its uid and
        generation): validation at every evaluation was a tenth of the operator's CPU at
        12,000 monitors. The models are never mutated after parsing."""
        if version is None or (isinstance(version, tuple) and None in version):
            return model.model_validate(data)  # nothing to tell versions apart by
        hit = self._specs.get(key)
        if hit is not None and hit[0] == version and isinstance(hit[1], model):
            return hit[1]
        parsed = model.model_validate(data)
        if len(self._specs) >= 100_000:
            self._specs.clear()
        self._specs[key] = (version, parsed)
        return parsed

    def _token(self, namespace: str, spec: MonitorSpec) -> str | None:
        ref = spec.source.prometheus.auth_secret_ref
        if ref is None:
            return None
        import base64

        def read() -> str:
            secret = self.core.read_namespaced_secret(ref.name, namespace)
            return base64.b64decode((secret.data or {})[ref.key]).decode()

        return self._recent.get(("secret", namespace, ref.name, ref.key), read)

    def _loader(self, namespace: str):  # type: ignore[no-untyped-def]
        def data(name: str) -> dict[str, str]:
            try:
                return self.core.read_namespaced_config_map(name, namespace).data or {}
            except ApiException as e:
                raise KeyError(name) from e

        def load(name: str, key: str) -> str:
            values = self._recent.get(("configmap", namespace, name), lambda: data(name))
            if key not in values:  # perhaps just added: look again rather than wait out the time
                values = self._recent.get(("configmap", namespace, name), lambda: data(name), fresh=True)
            if key not in values:
                raise KeyError(key)
            return values[key]

        return load

    def _strategy_spec(self, ns: str, spec: MonitorSpec, strategy: dict[str, Any]) -> StrategySpec | None:
        try:
            # A spec change bumps the generation (strategies_by_name carries it and the uid).
            return self._parsed(
                ("strategy", ns, spec.strategy),
                (strategy.get("uid"), strategy.get("generation")),
                StrategySpec,
                strategy.get("spec") or {},
            )
        except ValueError:
            return None

    def _async_source(self, url: str, timeout: float, token: str | None) -> AsyncPrometheus:
        key = (url, timeout, token)
        prom = self._async_sources.get(key)
        if prom is None:
            if len(self._async_sources) >= 64:  # as _source: rotated tokens, edited URLs
                self._async_sources.clear()
            prom = self._async_sources[key] = AsyncPrometheus(url, timeout, token, connections=SOURCE_CONNECTIONS)
        return prom

    async def aclose(self) -> None:
        """Close the sources read on the event loop (prefetch)."""
        sources, self._async_sources = list(self._async_sources.values()), {}
        for source in sources:
            await source.aclose()

    def _batch_counts(self, url: str) -> None:
        sync, on_loop = self._shared.get(url), self._async_shared.get(url)
        BATCH_QUERIES.labels(source_label(url)).set((sync.queries if sync else 0) + (on_loop.queries if on_loop else 0))
        BATCH_READS.labels(source_label(url)).set((sync.reads if sync else 0) + (on_loop.reads if on_loop else 0))

    async def prefetch(
        self, body: dict[str, Any], strategy: dict[str, Any] | None, now: datetime, pool: Pool
    ) -> Answers | None:
        """What the evaluation of BODY at NOW will read from its source, read on the event loop
        (stratops.monitors.prefetch), for `run` to evaluate over in a worker: a worker no longer
        waits on a source. None where it reads none (no strategy, no URL, a strategy-reported
        monitor) or the ruler evaluates the monitor (its evaluation reads no source).
        The token Secret and baseline ConfigMaps are read in POOL, kept as `run` keeps them."""
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if strategy is None or (self.ruler is not None and self.ruler.holds(ns, name)):
            return None
        spec = self._parsed(("monitor", ns, name), (meta.get("uid"), meta.get("generation")), MonitorSpec, body["spec"])
        prom = spec.source.prometheus
        url = (prom.url or os.environ.get("STRATOPS_PROMETHEUS_URL")) if prom is not None else None
        if prom is None or not url:
            return None
        from stratops.models.common import parse_duration

        loop = asyncio.get_running_loop()
        strategy_spec = self._strategy_spec(ns, spec, strategy)
        token = await loop.run_in_executor(pool, self._token, ns, spec) if prom.auth_secret_ref else None
        source = self._async_source(url, parse_duration(prom.timeout).total_seconds(), token)
        grouped = bool(prom.group_by)
        max_age = min(parse_duration(spec.frequency).total_seconds() / 2, BATCH_MAX_AGE_SECONDS)
        load = self._loader(ns)
        shared = self._async_shared.setdefault(url, AsyncSharedQueries()) if grouped else None
        answers: Answers = {}
        for _ in range(MOST_READS):
            read = next_read(spec, strategy_spec, answers, now, shared=grouped)
            if read is None:
                break
            try:
                if read.kind == "baseline":
                    answers[read] = await loop.run_in_executor(pool, load, read.expr, read.key)
                elif read.kind == "query":
                    at = datetime.fromtimestamp(read.at, UTC) if read.at is not None else None
                    answers[read] = await (
                        shared.query(source, read.expr, max_age) if shared is not None else source.query(read.expr, at)
                    )
                else:
                    assert read.start is not None and read.end is not None and read.step is not None
                    start, end = datetime.fromtimestamp(read.start, UTC), datetime.fromtimestamp(read.end, UTC)
                    answers[read] = await (
                        shared.query_range(source, read.expr, start, end, read.step, max_age)
                        if shared is not None
                        else source.query_range(read.expr, start, end, read.step)
                    )
            except (SourceUnavailable, KeyError) as e:
                answers[read] = e  # the evaluation raises it again where it reads it: stale
        return answers

    def run(
        self,
        body: dict[str, Any],
        strategy: dict[str, Any] | None,
        now: datetime | None = None,
        answers: Answers | None = None,
    ) -> Evaluation:
        """Evaluate BODY at NOW with its effects (status, alert, incident). ANSWERS: its reads,
        made beforehand (prefetch); a read they lack is made here."""
        now = now or datetime.now(UTC)
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        spec = self._parsed(("monitor", ns, name), (meta.get("uid"), meta.get("generation")), MonitorSpec, body["spec"])
        prev = self._last_known(ns, name, meta.get("uid", ""), MonitorStatus.model_validate(body.get("status") or {}))
        if strategy is None:
            # Schema-valid but unable to work: say so on the Monitor, open nothing against a
            # strategy that does not exist, and keep serving every other monitor.
            problem = f"strategy {spec.strategy} not found in namespace {ns}: not evaluated"
            if prev.problem != problem:
                st = prev.model_copy(
                    update={"problem": problem, "observed_generation": int(meta.get("generation") or 0)}
                )
                self._write_status(ns, name, st, meta.get("uid", ""))
                self.executor.event(
                    ns, name, meta.get("uid", ""), "Warning", "StrategyNotFound", problem, now, kind="Monitor"
                )
            return Evaluation(None, False, False, 0, problem)
        strategy_spec = self._strategy_spec(ns, spec, strategy)
        url = spec.source.prometheus.url or os.environ.get("STRATOPS_PROMETHEUS_URL")
        ruled, why = self._by_ruler(ns, name, meta.get("uid", ""), spec, strategy_spec)
        if ruled is not None:
            ev = ruled  # Prometheus evaluated it: no query
        elif not url:
            ev = Evaluation(
                None, False, True, 0, "stale: no Prometheus URL (spec.source.prometheus.url or STRATOPS_PROMETHEUS_URL)"
            )
        else:
            from stratops.models.common import parse_duration

            prom = self._source(
                url, parse_duration(spec.source.prometheus.timeout).total_seconds(), self._token(ns, spec)
            )
            shared = self._shared_queries(url) if spec.source.prometheus.group_by else None
            fetch: Any = prom
            if shared is not None:  # a batch: one query shared by the monitors of this source
                max_age = min(parse_duration(spec.frequency).total_seconds() / 2, BATCH_MAX_AGE_SECONDS)
                fetch = Batched(prom, shared, max_age)
            fetch = Answered(answers or {}, fetch, shared=shared is not None)
            load = answered_loader(answers or {}, self._loader(ns))
            ev = evaluate(spec, strategy_spec, fetch, load, now, prev.consecutive_breaches or 0)
            if answers:
                MONITOR_SOURCE_READS.labels("ahead").inc(sum(1 for r in answers if r.kind != "baseline"))
            if fetch.fell_back:
                MONITOR_SOURCE_READS.labels("in_worker").inc(fetch.fell_back)
            if shared is not None:
                self._batch_counts(url)
        MONITOR_SERIES.set(
            ns,
            name,
            spec.strategy,
            spec.layer.value,
            ev.value if ev.value is not None else float("nan"),
            ev.breaching,
            ev.stale,
        )

        source = source_label(url) if url else None
        if source is not None:
            self._desk_finding(ns, source, name, spec.strategy, ev, now)
        d = decide_monitor(
            ns, name, int(meta.get("generation") or 0), spec, prev, ev, (strategy or {}).get("status"), now, source
        )
        st = d.status
        if self.ruler is not None:
            st.evaluated_by = "ruler" if ruled is not None else "operator"
            if why and ruled is None:
                st.detail = f"{st.detail or ''} (not by the ruler: {why})"
        if d.resend is not None:  # an undelivered message from before goes first: order matters to the receiver
            ok, note = self.notifier.deliver(d.resend)
            st.last_alert = prev.last_alert.model_copy(update={"delivered": ok}) if prev.last_alert else None
            if not ok:
                log.warning("alert %s (%s) still undelivered: %s", d.resend.key, d.resend.state, note)
        if d.alert is not None:
            ok, note = self.notifier.deliver(d.alert)
            st.last_alert = LastAlert(at=now, channel=spec.alert.channel, state=d.alert.state, delivered=ok)
            if not ok:
                log.warning("alert %s (%s) not delivered, will retry: %s", d.alert.key, d.alert.state, note)
        if d.rejoin is not None and self.executor.join_incident(ns, d.rejoin, name):
            # Back within spec.clearFor while its incident is open: the same episode (a flap).
            log.info("monitor %s/%s: its finding is back within clearFor; incident %s stands", ns, name, d.rejoin)
            self.executor.event(
                ns,
                name,
                meta.get("uid", ""),
                "Normal",
                "FindingBack",
                f"the finding is back within spec.clearFor: same episode, incident {d.rejoin} (still open)",
                now,
                kind="Monitor",
            )
        elif d.incident is not None and d.group is not None:
            self._grouped(ns, name, spec.strategy, meta.get("uid", ""), d.incident, d.group, st, now)
        elif d.incident is not None:
            # The name is recorded first: a crash after the create does not open a second one.
            st.incident = d.incident.name
            self._write_status(ns, name, st, meta.get("uid", ""))
            self.executor.create_incident(
                ns, spec.strategy, meta.get("uid", ""), d.incident, now, monitor=name, detected_by=f"monitor/{name}"
            )
        if needs_write(prev, st, now):
            self._write_status(ns, name, st, meta.get("uid", ""))
        return ev

    def _desk_finding(self, ns: str, source: str, monitor: str, strategy: str, ev: Evaluation, now: datetime) -> None:
        """A source down for the whole desk: one StratopsSourceDown alert (the page), while each
        strategy's StaleData incident carries its own action (stratops.monitors.desk). A message
        not delivered is sent again at the next evaluation of a monitor of that source."""
        key = (ns, source)
        unsent = self._desk_unsent.pop(key, None)
        if unsent is not None:
            self._send_desk_alert(key, unsent)
        change = self.desk.record(ns, source, monitor, strategy, ev.unreachable, now)
        if change is None:
            return
        SOURCE_DOWN.labels(ns, source).set(1 if change.state == "down" else 0)
        log.warning("desk %s: source %s %s: %s", ns, source, change.state, change.detail)
        if change.state == "down":
            started = self._down_since.setdefault(key, now)
            summary = (
                f"{ns}: {source} unreachable for {len(change.strategies)} strategies ({', '.join(change.strategies)})"
            )
        else:
            started = self._down_since.pop(key, now)
            summary = f"{ns}: {source} reachable again"
        labels = {"alertname": "StratopsSourceDown", "namespace": ns, "source": source, "incident_class": "StaleData"}
        state = "firing" if change.state == "down" else "resolved"
        self._send_desk_alert(
            key, Alert(f"{ns}/source/{source}", state, "page", "P1", summary, change.detail, labels, None, started)
        )

    def _send_desk_alert(self, key: tuple[str, str], alert: Alert) -> None:
        ok, note = self.notifier.deliver(alert)
        if not ok:
            self._desk_unsent[key] = alert
            log.warning("desk alert %s (%s) not delivered, will retry: %s", alert.key, alert.state, note)

    def _grouped(
        self, ns: str, name: str, strategy: str, uid: str, inc: Any, group: str, st: MonitorStatus, now: datetime
    ) -> None:
        """A finding of GROUP: it joins the strategy's open incident of the group (one root cause,
        one incident, one immediate action), or opens it. The monitor records the incident's name
        before either, as for an incident of its own."""
        key = (ns, strategy, group)
        with self._groups_lock:
            joined = self.executor.open_group_incident(ns, strategy, group, self._groups.get(key))
            if joined is not None:
                st.incident = joined
                self._write_status(ns, name, st, uid)
                if self.executor.join_incident(ns, joined, name):
                    log.info("monitor %s/%s: its %s finding joins incident %s", ns, name, group, joined)
                    return
            st.incident = inc.name
            self._write_status(ns, name, st, uid)
            self.executor.create_incident(
                ns, strategy, uid, inc, now, monitor=name, detected_by=f"monitor/{name}", group=group
            )
            self._groups[key] = inc.name

    def _write_status(self, ns: str, name: str, st: MonitorStatus, uid: str) -> None:
        # Nulls in a merge patch delete: a cleared field (the episode's incident) goes away.
        body = {"status": st.model_dump(by_alias=True, mode="json")}
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, "monitors", name, body)
        self._written[(ns, name)] = (uid, st.model_copy())  # shallow: see monitors.decide

    def _by_ruler(
        self, ns: str, name: str, uid: str, spec: MonitorSpec, strategy: StrategySpec | None
    ) -> tuple[Evaluation | None, str | None]:
        """(the ruler's evaluation of the monitor, None) while the ruler holds it; else (None, why
        the operator evaluates it). Writes the monitor's PrometheusRule when its rules changed."""
        if self.ruler is None:
            return None, None
        compiled = compile_monitor(ns, name, spec, strategy, self.shard_index)
        if isinstance(compiled, str):
            self._drop_rule(ns, name)
            return None, compiled
        not_written = self._write_rule(ns, name, uid, compiled)
        if not_written:
            return None, not_written
        got = self.ruler.evaluation(ns, name, compiled.digest)
        return (got, None) if isinstance(got, Evaluation) else (None, got)

    def _write_rule(self, ns: str, name: str, uid: str, compiled: CompiledMonitor) -> str | None:
        """Create or replace the monitor's PrometheusRule unless this process wrote these rules
        already; why it could not (tried again after RULE_RETRY_SECONDS), else None."""
        held = self._rules.get((ns, name))
        if held is not None and held[0] == uid:
            if held[1] == compiled.digest:
                return None
            if held[1].startswith("!") and time.monotonic() - held[2] < RULE_RETRY_SECONDS:
                return held[1][1:]
        doc = prometheus_rule(ns, name, uid, compiled)
        self._rule_specs.pop((ns, name), None)  # its own write's event is not someone else's edit
        group, version, plural = "monitoring.coreos.com", "v1", "prometheusrules"
        try:
            try:
                got = self.custom.create_namespaced_custom_object(group, version, ns, plural, doc)
            except ApiException as e:
                if e.status != 409:
                    raise
                old = self.custom.get_namespaced_custom_object(group, version, ns, plural, rule_name(name))
                owners = [o.get("uid") for o in old["metadata"].get("ownerReferences") or []]
                if old.get("spec") == doc["spec"] and owners == [uid]:
                    got = old  # as written before a restart: not written again
                else:
                    doc["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                    got = self.custom.replace_namespaced_custom_object(group, version, ns, plural, rule_name(name), doc)
        except ApiException as e:
            why = f"its PrometheusRule could not be written ({e.status} {e.reason})"
            if e.status == 404:
                why += ": is prometheus-operator's PrometheusRule CRD installed?"
            log.warning("monitor %s/%s: %s; the operator evaluates it", ns, name, why)
            self._rules[(ns, name)] = (uid, "!" + why, time.monotonic())
            return why
        log.info("monitor %s/%s: rules %s written for the ruler", ns, name, compiled.digest)
        self._rules[(ns, name)] = (uid, compiled.digest, time.monotonic())
        self._rule_specs[(ns, name)] = got.get("spec")
        return None

    def _drop_rule(self, ns: str, name: str) -> None:
        """The monitor's check is no longer one the ruler evaluates: its PrometheusRule goes (the
        ruler would go on evaluating rules whose alerts nobody takes)."""
        key = (ns, name)
        held = self._rules.get(key)
        if key not in self._rules_present and (held is None or held[1].startswith("!")):
            return
        try:
            self.custom.delete_namespaced_custom_object(
                "monitoring.coreos.com", "v1", ns, "prometheusrules", rule_name(name)
            )
            log.info("monitor %s/%s: evaluated by the operator now; its PrometheusRule deleted", ns, name)
        except ApiException as e:
            if e.status != 404:
                log.warning("monitor %s/%s: its PrometheusRule could not be deleted: %s", ns, name, e.reason)
                return
        self._rules.pop(key, None)
        self._rule_specs.pop(key, None)
        self._rules_present.discard(key)

    def rule_seen(self, ns: str, monitor: str, spec: Any | None) -> bool:
        """The monitor's PrometheusRule as the watch saw it (None: deleted). True when it is not
        what this process wrote (someone edited or deleted it): the rules are written again at
        the monitor's next evaluation, which the caller asks for at once."""
        key = (ns, monitor)
        if spec is None:
            self._rules_present.discard(key)
        else:
            self._rules_present.add(key)
        if key not in self._rule_specs or spec == self._rule_specs[key]:
            return False
        log.warning(
            "monitor %s/%s: its PrometheusRule was %s: writing it again",
            ns,
            monitor,
            "deleted" if spec is None else "changed by someone else",
        )
        self._rule_specs.pop(key, None)
        self._rules.pop(key, None)
        return True

    def forget(self, ns: str, name: str) -> None:
        """Monitor NAME is gone (deleted, or evaluated by its strategy's reports now): the status
        this process last wrote of it is not kept (an evaluation still running may write it once
        more; its uid tells a monitor created again under the name apart)."""
        self._written.pop((ns, name), None)
        MONITOR_SERIES.remove(ns, name)
        self._rules.pop((ns, name), None)
        self._rule_specs.pop((ns, name), None)
        if self.ruler is not None:
            self.ruler.forget(ns, name)

    def _last_known(self, ns: str, name: str, uid: str, prev: MonitorStatus) -> MonitorStatus:
        """PREV (the status as kopf's copy of the Monitor has it), or the status this process
        last wrote if that records a later evaluation: a watch that lags (reconnecting after the
        API server was away) would have the next evaluation decide on a status from before its
        own last write, and open a second incident for the same breach (seen in the soak)."""
        mine = self._written.get((ns, name))
        if mine is None or mine[0] != uid or mine[1].last_evaluation is None:
            return prev
        if prev.last_evaluation is None or mine[1].last_evaluation > prev.last_evaluation:
            return mine[1].model_copy()
        return prev
