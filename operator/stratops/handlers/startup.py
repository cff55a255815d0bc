"""Start-up: kopf's settings (persistence, peering, admission server), the Runtime, the
held-handlers watch and probe, audit retries, the SIGUSR1 dump, and the login."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import secrets
import time
from typing import Any

import kopf

from stratops import FINALIZER, GROUP
from stratops import metrics as M
from stratops.controller.runtime import Runtime, log
from stratops.handlers import kopf_fixes, ruler, sharding
from stratops.k8s.client import api_client
from stratops.k8s.monitoring import MonitorRunner

#: Tracked objects more than at the last young collection that start the next one (Python's
#: default is 700). See `collect_garbage_rarely`.
GC_YOUNG_THRESHOLD = int(os.environ.get("STRATOPS_GC_YOUNG_THRESHOLD", "50000"))
#: What outlives a full collection is frozen out of the later ones (see `collect_garbage_rarely`).
GC_FREEZE_SURVIVORS = os.environ.get("STRATOPS_GC_FREEZE_SURVIVORS", "true").lower() != "false"
#: At most this often, a full collection thaws what was frozen and walks it once (0: never).
GC_THAW_SECONDS = float(os.environ.get("STRATOPS_GC_THAW_SECONDS", str(6 * 3600)))
#: Objects per page of kopf's listings (0: the whole list in one request).
LIST_CHUNK_SIZE = int(os.environ.get("STRATOPS_LIST_CHUNK_SIZE", "500"))


def collect_garbage_rarely() -> None:
    """Python's cyclic garbage collector stops the whole process while it walks the objects of
    the generation it collects. With the default thresholds, every batch answer (thousands of
    objects, alive for a second or two) was promoted to the oldest generation at once, and a
    full collection followed every few seconds: at 1,000 strategies each walked millions of
    objects for 0.5 to 1.2 s, every 4 s, and a kill waited behind it. A young generation of
    GC_YOUNG_THRESHOLD objects lets such answers die young, and what was loaded at start
    (modules, the API client's classes) is frozen out of every collection: it lives as long as
    the process.

    What outlives a full collection (the strategies, monitors and kopf's indexes: 10 s a full
    collection at 10,000 strategies) is frozen too, so the next full collection walks only what
    was promoted since. A frozen object is still freed by reference counting; only a reference
    cycle among frozen objects waits, for the next thaw: at most every GC_THAW_SECONDS, one full
    collection walks everything again, and freezes what is still alive."""
    gc.collect()  # what is garbage already is not frozen
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, 1), middle, old)
    _gc_state.thawed = time.monotonic()
    if _gc_timed not in gc.callbacks:
        gc.callbacks.append(_gc_timed)


@dataclasses.dataclass
class _Collections:
    started: float = 0.0  # perf_counter at the start of the collection under way
    started_cpu: float = 0.0  # the collecting thread's CPU time then
    thawed: float = 0.0  # monotonic time of the last thaw (or of the start)
    thawing: bool = False  # the collection under way thawed first


_gc_state = _Collections()


def _gc_timed(phase: str, info: dict[str, int]) -> None:
    """Each collection's pause, as stratops_gc_pause_seconds: what a slow kill may have waited
    on. A full collection freezes its survivors, and, once a thaw is due, first thaws."""
    full = info.get("generation") == 2 and GC_FREEZE_SURVIVORS
    if phase == "start":
        _gc_state.started, _gc_state.started_cpu = time.perf_counter(), time.thread_time()
        thaw = full and GC_THAW_SECONDS > 0 and time.monotonic() - _gc_state.thawed >= GC_THAW_SECONDS
        if thaw:  # before the collector merges the generations: it walks the thawed objects too
            gc.unfreeze()
            _gc_state.thawed, _gc_state.thawing = time.monotonic(), True
            M.GC_THAWS.inc()
        return
    generation = str(info.get("generation", ""))
    M.GC_PAUSE_SECONDS.labels(generation).observe(time.perf_counter() - _gc_state.started)
    M.GC_PAUSE_CPU_SECONDS.labels(generation).observe(time.thread_time() - _gc_state.started_cpu)
    if full and _gc_state.thawing:
        _gc_state.thawing = False
        M.GC_THAW_FREED.inc(info.get("collected", 0))  # what waited, frozen, for this thaw (or died since)
    if full:
        # The collection is over: what is left is alive. (Not counted here: gc.get_freeze_count
        # walks every frozen object, 0.7 s at 10,000 strategies. SIGUSR1's census counts them.)
        gc.freeze()


def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    collect_garbage_rarely()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    # settings.persistence.diffbase_storage: essence_where_diffed (register), which sees the registry.
    settings.persistence.finalizer = FINALIZER
    settings.posting.enabled = False  # the operator posts its own, meaningful Events
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    # kopf lists each resource in pages before it watches, not in one request: at 10,000
    # strategies the namespace's ~100,000 Monitors in one list outlasted the 30 s request timeout
    # again and again, and the operator saw no Monitor change meanwhile (issue 21's bench).
    settings.watching.chunk_size = LIST_CHUNK_SIZE or None
    _configure_peering(settings)
    shard = sharding.current()
    if shard is not None:
        log.info("shard %s: serving the strategies that hash to it, and the gates that do", shard)
    # kopf follows namespaces and CRDs cluster-wide to start watches as they appear. An operator
    # given only namespaced rights (the chart's default) says so, and serves its named namespaces
    # and the CRDs present at start, instead of retrying forbidden cluster-wide lists for a minute.
    settings.scanning.disabled = os.environ.get("STRATOPS_CLUSTER_SCANNING", "true").lower() == "false"
    _configure_admission(settings)
    memo.runtime = Runtime()
    memo.monitors = MonitorRunner(memo.runtime.executor.api, ruler=ruler.ruler_state())
    M.serve(int(os.environ.get("STRATOPS_METRICS_PORT", "0")))


HELD_LIMIT_SECONDS = float(os.environ.get("STRATOPS_HANDLERS_HELD_LIMIT_SECONDS", "60"))


async def watch_held_handlers(**_: Any) -> None:
    """Every handler waits while kopf fills its indexes; held for long, no kill-switch would be
    carried out. Said in the log (with what it waits for) and as a gauge; the liveness probe
    (held_handlers) fails past STRATOPS_HANDLERS_HELD_LIMIT_SECONDS, so the kubelet restarts it."""

    async def watch() -> None:
        said = 0.0
        while True:
            held, waiting = kopf_fixes.held_for(time.monotonic())
            M.HANDLERS_HELD_SECONDS.set(held)
            if held >= 30 and held - said >= 30:
                log.error("every handler held for %.0fs waiting for kopf's indexes: %s", held, ", ".join(waiting[:20]))
                said = held
            elif held == 0:
                said = 0.0
            await asyncio.sleep(1)

    asyncio.get_running_loop().create_task(watch(), name="stratops: held-handlers watch")


async def fence_when_the_peering_record_may_lapse(settings: kopf.OperatorSettings, **_: Any) -> None:
    """With peering: a replica that cannot renew its record stops acting before its peers may
    take over (stratops.handlers.kopf_fixes.fence)."""
    if not settings.peering.standalone:
        asyncio.get_running_loop().create_task(kopf_fixes.fence(), name="stratops: peering fence")


LAYOUT_CHECK_SECONDS = 2.0


async def guard_shard_layout(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Never two shard counts acting at once: a replica that finds, at its start, a live replica
    in a peering of its family with another shard count (a change of `shards` rolling out) acts
    only once there is none (stratops.lifecycle.shard.other_layouts_live). The incumbent layout
    acts on until it is gone, so a rollout that never completes leaves the old one in charge.
    Fails open, said in the log and the README, when the peerings cannot be listed (403)."""
    from datetime import UTC, datetime

    from kubernetes.client.exceptions import ApiException

    from stratops.k8s.killwatch import exact
    from stratops.k8s.peering import read_peerings
    from stratops.lifecycle.shard import other_layouts_live

    if settings.peering.standalone or "scope" not in memo:
        return
    mine = settings.peering.name
    namespaces, clusterwide = memo["scope"]
    scope = None if clusterwide else exact(namespaces)
    if not clusterwide and scope is None:
        log.warning("shard layout guard off: namespace globs name no peerings to read")
        return
    loop = asyncio.get_running_loop()

    async def others() -> list[str] | None:
        """The live peerings of other layouts; None: the peerings cannot be read here (403)."""
        try:
            peerings = await loop.run_in_executor(None, read_peerings, memo.runtime.executor.api, scope)
        except ApiException as e:
            if e.status == 403:
                return None
            raise
        return other_layouts_live(mine, peerings, datetime.now(UTC))

    try:
        found = await others()
    except Exception as e:  # the API server away at start: hold until a read says
        found = [f"unknown ({type(e).__name__})"]
    if found is None:
        log.warning("shard layout guard off: listing kopf peerings is forbidden; a change of shard count is unguarded")
        return
    if not found:
        return
    log.warning("holding: replicas of another shard count are live (%s); acting once they are gone", ", ".join(found))
    kopf_fixes.hold_for_layout(f"another shard layout is live: {', '.join(found)}")

    async def watch() -> None:
        while True:
            await asyncio.sleep(LAYOUT_CHECK_SECONDS)
            try:
                found = await others()
            except Exception as e:
                log.warning("shard layout guard: peerings not read (%s); still holding", e)
                continue
            if not found:
                log.warning("hold lifted: no replica of another shard count is live")
                await kopf_fixes.release_layout_hold()
                return

    memo.layout_guard = loop.create_task(watch(), name="stratops: shard layout guard")


def start_kill_watch(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """A kill lands while kopf's handlers act on nothing: a watch of the Strategies in threads
    of its own carries out a kill no reconcile takes up within STRATOPS_KILL_WATCH_GRACE_SECONDS
    (stratops.k8s.killwatch; 0 turns it off)."""
    from stratops.k8s.killwatch import KillWatch, exact, serves
    from stratops.lifecycle.killwatch import DEFAULT_GRACE_SECONDS

    grace = float(os.environ.get("STRATOPS_KILL_WATCH_GRACE_SECONDS", str(DEFAULT_GRACE_SECONDS)))
    if grace <= 0:
        log.warning("STRATOPS_KILL_WATCH_GRACE_SECONDS=0: the kill watch is off; a kill waits for kopf's reconcile")
        return
    if "scope" not in memo:
        log.warning("the kill watch is off: started without stratops.handlers.run, its namespaces are unknown")
        return
    namespaces, clusterwide = memo["scope"]
    standalone = bool(settings.peering.standalone)
    shard = sharding.current()
    memo.kill_watch = KillWatch(
        memo.runtime.executor,
        None if clusterwide else exact(namespaces),
        (lambda ns: True) if clusterwide else serves(namespaces),
        lambda: kopf_fixes.may_act(time.monotonic(), standalone),
        grace,
        owns=shard.owns if shard is not None else None,
    ).start()


async def retry_audit_writes(memo: kopf.Memo, **_: Any) -> None:
    """Audit entries whose write failed are retried every few seconds, off the kill path."""

    async def retry() -> None:
        rt: Runtime = memo.runtime
        while True:
            await asyncio.sleep(5)
            if rt.executor.audit.pending():
                await asyncio.get_running_loop().run_in_executor(rt.gate_pool, rt.executor.audit.retry)

    asyncio.get_running_loop().create_task(retry(), name="stratops: audit retries")


#: How often the event loop's lateness is sampled (stratops_event_loop_lag_seconds).
LOOP_LAG_TICK_SECONDS = 0.25


async def watch_loop_lag(**_: Any) -> None:
    """How late the event loop runs a timer, every LOOP_LAG_TICK_SECONDS: what a kill handled
    on the loop waits for, whatever held it (a garbage collection, the GIL held by a worker
    thread, a handler's synchronous code)."""

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LOOP_LAG_TICK_SECONDS
            await asyncio.sleep(LOOP_LAG_TICK_SECONDS)
            M.EVENT_LOOP_LAG_SECONDS.observe(max(0.0, loop.time() - due))

    asyncio.get_running_loop().create_task(tick(), name="stratops: event loop lag")


def gc_census() -> str:
    """The objects Python's collector tracks, by generation, and the frozen ones: what a
    collection of each generation walks (the frozen ones: none). Counting walks them all:
    about a second at 10,000 strategies, on demand only."""
    counts = [len(gc.get_objects(generation=g)) for g in range(3)]
    return (
        f"gc: tracked objects young {counts[0]:,}, middle {counts[1]:,}, old {counts[2]:,}, "
        f"frozen {gc.get_freeze_count():,}"
    )


def memory_report(previous: list[Any], places: int = 30) -> list[str]:
    """Where the memory traced by tracemalloc is held (the PLACES largest) and, when PREVIOUS
    holds the last report's snapshot, what grew most since; PREVIOUS is left holding this one.
    Nothing when tracemalloc is not tracing (PYTHONTRACEMALLOC unset)."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        return []
    snap = tracemalloc.take_snapshot()
    by = "traceback" if tracemalloc.get_traceback_limit() > 1 else "lineno"

    def where(trace: tracemalloc.Traceback) -> str:
        return "\n".join(f"  {f.filename}:{f.lineno}" for f in trace)

    stats = snap.statistics(by)
    out = [f"SIGUSR1: {sum(s.size for s in stats) / 2**20:.1f} MiB traced, in {len(stats)} places; the largest follow"]
    out += [f"{s.size / 2**20:.1f} MiB in {s.count} blocks:\n{where(s.traceback)}" for s in stats[:places]]
    if previous:
        grown = snap.compare_to(previous[0], by)
        out.append(f"SIGUSR1: {sum(g.size_diff for g in grown) / 2**20:+.1f} MiB since the previous USR1")
        out += [
            f"grew {g.size_diff / 2**20:+.2f} MiB, {g.count_diff:+d} blocks:\n{where(g.traceback)}"
            for g in grown[:places]
        ]
    previous[:] = [snap]
    return out


async def dump_on_sigusr1(**_: Any) -> None:
    """`kill -USR1 <operator>` logs what every asyncio task and thread is waiting on: for an
    operator that serves but does not act, this is where it is stuck. Started with
    PYTHONTRACEMALLOC=N, it also logs where the memory it holds was allocated (the 30 largest
    places, N frames each), and the 30 that grew most since the previous USR1: for an operator
    that grows, this is where (signal it before and after the growth)."""
    import faulthandler
    import signal
    import tracemalloc

    def awaiting(coro: Any) -> str:
        # A task's own stack is one frame for a suspended coroutine: follow what it awaits.
        out = []
        while coro is not None and len(out) < 40:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                out.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        return "\n".join(out)

    previous: list[tracemalloc.Snapshot] = []  # the last report's, for what grew since

    def dump() -> None:
        tasks = asyncio.all_tasks()
        log.warning("SIGUSR1: %d asyncio tasks and every thread follow", len(tasks))
        for task in sorted(tasks, key=lambda t: t.get_name()):
            log.warning("task %s awaits:\n%s", task.get_name(), awaiting(task.get_coro()))
        faulthandler.dump_traceback(all_threads=True)  # to stderr
        log.warning("SIGUSR1: %s", gc_census())
        for line in memory_report(previous):
            log.warning("%s", line)

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (in-process tests)
        log.debug("SIGUSR1 dump not installed: signals are handled by the main thread only")


def held_handlers(**_: Any) -> float:
    held, waiting = kopf_fixes.held_for(time.monotonic())
    if held > HELD_LIMIT_SECONDS:
        raise kopf.PermanentError(f"every handler held for {held:.0f}s waiting for: {', '.join(waiting[:20])}")
    return held


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The same credentials as the operator's own client (KUBECONFIG read at call time)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        return kopf.login_via_client(**kwargs)
    cfg = api_client().configuration
    # kubernetes >= 30 keeps a kubeconfig's token under "BearerToken" (older: "authorization").
    keys = cfg.api_key or {}
    token = keys.get("BearerToken") or keys.get("authorization") or ""
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        scheme="Bearer" if token else None,
        token=token.removeprefix("Bearer ") or None,
    )


def peering_priority(value: str) -> int:
    """STRATOPS_PEERING_PRIORITY: a number, or `random` for replicas of one Deployment, which
    cannot be given distinct numbers (equal priorities would pause every replica)."""
    if value.strip().lower() == "random":
        return secrets.randbelow(2**31 - 1) + 1
    return int(value)


def _configure_peering(settings: kopf.OperatorSettings) -> None:
    """HA: with STRATOPS_PEERING (the KopfPeering/ClusterKopfPeering name) only the replica with
    the highest priority acts; the others pause until its record lapses or it leaves."""
    name = os.environ.get("STRATOPS_PEERING", "")
    settings.peering.standalone = name == ""
    if not name:
        return
    settings.peering.name = name
    settings.peering.priority = peering_priority(os.environ.get("STRATOPS_PEERING_PRIORITY", "0"))
    # Mandatory: a replica starts paused and acts only once it has seen its peers, so two
    # replicas starting together never both act; a missing peering object keeps it paused.
    settings.peering.mandatory = True
    # How long a replica that died without leaving (SIGKILL, node loss) blocks the standby.
    settings.peering.lifetime = int(os.environ.get("STRATOPS_PEERING_LIFETIME", "60"))
    log.info("peering %r with priority %d", name, settings.peering.priority)


def _configure_admission(settings: kopf.OperatorSettings) -> None:
    """Serve the validating webhooks when STRATOPS_WEBHOOK_PORT is set (TLS: _CERT, _KEY, _CA
    files; _HOST is what the API server dials). Their configuration is the chart's (or
    stratops.admission.webhooks'): the operator never writes admission configuration. Without
    them, promotion, live changes and signature times are checked by the operator only after
    the fact: said loudly, once."""
    port = os.environ.get("STRATOPS_WEBHOOK_PORT")
    if not port:
        log.warning(
            "STRATOPS_WEBHOOK_PORT is not set: promotions, live changes and gate signatures are NOT checked "
            "at admission (the operator still refuses to act on them)"
        )
        return
    settings.admission.server = kopf.WebhookServer(
        addr=os.environ.get("STRATOPS_WEBHOOK_ADDR", "0.0.0.0"),
        port=int(port),
        host=os.environ.get("STRATOPS_WEBHOOK_HOST"),
        certfile=os.environ.get("STRATOPS_WEBHOOK_CERT"),
        pkeyfile=os.environ.get("STRATOPS_WEBHOOK_KEY"),
        cafile=os.environ.get("STRATOPS_WEBHOOK_CA"),
    )
    settings.admission.managed = None


def register(registry: kopf.OperatorRegistry) -> None:
    for fn in (
        startup,
        guard_shard_layout,
        watch_held_handlers,
        fence_when_the_peering_record_may_lapse,
        start_kill_watch,
        retry_audit_writes,
        watch_loop_lag,
        dump_on_sigusr1,
    ):
        kopf.on.startup(registry=registry)(fn)

    def essence_where_diffed(settings: kopf.OperatorSettings, **_: Any) -> None:
        # With every handler registered: kopf's storage, or none built where no handler diffs.
        settings.persistence.diffbase_storage = kopf_fixes.diffbase_storage(
            registry, GROUP, "last-handled-configuration"
        )

    kopf.on.startup(registry=registry)(essence_where_diffed)
    kopf.on.probe(id="held_handlers", registry=registry)(held_handlers)
    kopf.on.login(registry=registry)(login)
