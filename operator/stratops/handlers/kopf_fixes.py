"""A fix for kopf's index readiness: a watcher stopped before its first listing held every
handler of the operator, for good.

kopf holds all handlers of all resources until every index is filled: each watcher of an
indexed resource (one per served namespace) adds a toggle to a global "indexed" set and drops
it once its first LIST is done; each object first seen before readiness adds one more, dropped
once it is indexed. When a served namespace is deleted, kopf stops that namespace's watchers
and their workers, but never drops their toggles. A namespace deleted within the moment
between its watchers' start and their first listing (namespace churn, or an operator starting
while a namespace terminates) therefore left the set "not indexed" for the rest of the
process: no handler ran, no daemon started, no kill-switch was carried out. Seen in kopf
1.45.2 (`orchestration.terminate_redundancies` drops only the peering flags); reproduced by
tests/e2e/test_faults.py::test_namespace_churn_at_start_does_not_hold_the_operator.

The fix: a watcher or worker that ends, however it ends, drops the toggle it was given. Its
namespace is gone or its object's processing is over, so nothing is left to wait for.
Dropping is idempotent (a set discard), so the normal path is unchanged.

A second fix: kopf stopped watching a namespace as soon as it was marked for deletion and its
status had conditions none of which was True. The namespace controller's first report during
an ordered deletion (pods first) is exactly that: three conditions, all False ("All content
successfully deleted, may be waiting on finalization"), written before it deletes the other
objects. kopf then stopped the namespace's watchers, never saw its Strategies and Monitors
marked for deletion, never released their finalizers, and the namespace stayed Terminating
for good (a restart did not help: kopf ignores a terminating namespace with blockers). Seen
with kopf 1.45.2 (its PR #1225 was meant to fix this) and Kubernetes 1.36.3; see
Kubernetes PR #138209 on those conditions. The fix: a namespace is gone when the API server
says DELETED, which it can say only once every finalizer in it is released. If that event is
missed (a watch broken at that moment), the namespace's watchers idle on an empty namespace
until the operator restarts: harmless, where the other error is a namespace that never goes.

A third fix: a namespace created while the operator starts was never served. kopf's namespace
observer lists the namespaces once (its insights), then starts a watcher, whose own first LIST
reports every namespace again as type None; kopf's processor returns early on those ("already
seen by the first listing"). A namespace created between the two listings is in neither as a
change: it is never added, its strategies get no watcher, no handler, no kill-switch, until
something modifies the namespace itself (its deletion, for instance). Seen with kopf 1.45.2: 1
start in 15 here with a namespace created right after the operator served /metrics, and the
"start that acts on nothing" of bench/start_churn.py (the orchestrator idle, no watcher task
for the namespace: the SIGUSR1 dump). The fix: the watcher's listing revises the namespaces too
(revise_namespaces takes listed bodies as they are; a namespace already known is a no-op).

A fourth fix: kopf's indexes kept what a listing no longer reports. A watch stream that ends (a
pause while another replica acts, "410 Gone", a dropped connection) is followed by a fresh
LIST, whose objects kopf re-indexes; an object deleted in the gap is in no event at all, and
stayed in the index for the rest of the process (a pod, a ConfigMap, an Incident that is gone).
And a replica resumed after a pause acted at once, on indexes as they were when it paused
(kopf holds handlers for index readiness only until the first listing). The fix: the end of
every listing reports a DELETED event for each object the stream had reported and the listing
did not; and a stream resumed after a pause is "relisting" until its listing ends, which the
Strategy daemon waits for before it decides (relisted()).

A fifth fix: a replica that cannot renew its peering record goes on acting. kopf's peering is no
lease: the others resume once a replica's record is older than its lifetime, but the replica
itself never stops (it pauses only for a live peer with a higher priority). An API server away
for longer than the lifetime (seen in the soak: a kube-apiserver restart) left two replicas
acting at once until the first one's keep-alive landed again. The fix (fence()): a replica whose
last successful keep-alive is older than its lifetime less a margin pauses itself, and acts
again only once its record has been renewed for a whole lifetime (and a second): by then every
peer has seen it alive, and paused. The fence measures with the monotonic clock: a step of the
wall clock neither fences a replica nor keeps it from fencing.

A sixth fix: kopf judged a peer alive by comparing the `lastseen` the peer wrote with its own
wall clock, so two replicas whose clocks disagree by more than the lifetime both acted: a peer
whose clock is behind (or a replica whose clock is ahead) sees the other's fresh record as
dead. Seen in the soak with one replica's clock stepped 40 s behind: its peer resumed while it
went on acting, for 8 s (issue 22's clock-step fault). The fix (ObservedPeer), as client-go's
leader election does: a peer is alive until its record has gone unchanged for a whole lifetime
as this replica's monotonic clock measures it from the moment it first saw that record. The
price: a replica that starts beside a dead peer's record waits up to a lifetime before it acts.
Only a record older than its lifetime plus STRATOPS_PEERING_CLOCK_SKEW_SECONDS (300) by this
replica's clock is taken as dead at once: clocks further apart than that still fail open.

A seventh fix: with shards, replicas fought over every Strategy's and Gate's finalizer. kopf
counts a daemon's `when` filter in whether its finalizer is required: a replica of another shard,
its daemon filtered out for a strategy, removed the finalizer the owning shard had put; the owner
put it back; each patch was an event for both (about 15 patches a second per strategy, for as
long as both ran), and the owner's status writes, a kill's included, met 409 after 409 among them
(tests/e2e/test_shards.py found it). The fix: whether a daemon needs the finalizer does not
depend on its `when` filter (every `when` on our daemons is a shard filter: stratops.handlers.
sharding), so every shard keeps the one finalizer, and only the owner's daemon runs. At deletion a
replica with no daemon for the object releases it at once, as kopf always did for an object it
runs nothing for; the owner's daemon is then stopped by the object's DELETED event.

An eighth fix: every object kopf was handed became garbage that only Python's cyclic collector
could free. kopf wraps each event's object in a Body whose `meta`, `spec` and `status` views hold
the Body (and its Meta's `labels` and `annotations` views hold the Meta), and each handler's Patch
the same way: a reference cycle per event, which kept the whole raw object alive until a
collection. At 1,000 strategies that was 112,000 objects in 20 s (a census of the collector's
garbage: kopf's Bodies, Patches, their views, and the raw objects they held), and young
collections of 50 to 360 ms to free them, stopping the whole operator. The fix
(`_apply_views_without_cycles`): the views are made when asked for, each a live view of its
source as before, and kept by nobody, so the Body and the Patch are freed by reference counting
as soon as kopf lets them go. Seen with kopf 1.45.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import kopf

from stratops.k8s.client import drop_managed_fields

log = logging.getLogger("stratops.operator")
_APPLIED = "_stratops_drops_index_toggles"


#: kopf's global "indexed" toggle set, seen by the first watcher (for held_for()).
_readiness: dict[str, Any] = {"toggles": None, "off_since": None, "paused": None}


def held_for(now: float) -> tuple[float, list[str]]:
    """Seconds for which kopf has been holding every handler for index readiness (0 when it is
    not), and what it waits for. A start or a new namespace holds them for a moment (its first
    listings); minutes mean a stuck operator: the liveness probe then fails (see handlers)."""
    toggles, paused = _readiness["toggles"], _readiness["paused"]
    if toggles is None or toggles.is_on() or (paused is not None and paused.is_on()):
        # A paused replica (a standby, or fenced) lists nothing: nothing is held, nothing is stuck.
        _readiness["off_since"] = None
        return 0.0, []
    if _readiness["off_since"] is None:
        _readiness["off_since"] = now
    return now - _readiness["off_since"], sorted(str(t.name) for t in toggles if not t.is_on())


def _dropping_toggle(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("operator_indexed") is not None:
            _readiness["toggles"] = kwargs["operator_indexed"]
        try:
            await fn(*args, **kwargs)
        finally:
            if fn.__name__ == "watcher":  # its stream is over: nothing to remember, nothing to wait for
                key = _stream_key(kwargs.get("resource"), kwargs.get("namespace"))
                _reported.pop(key, None)
                _listed(key)
            toggles, toggle = kwargs.get("operator_indexed"), kwargs.get("resource_indexed")
            if toggles is not None and toggle is not None and toggle in toggles:
                # Shielded: this runs while the task is being cancelled, and may be cancelled again.
                await asyncio.shield(toggles.drop_toggle(toggle))

    setattr(wrapper, _APPLIED, True)
    return wrapper


def namespace_gone(raw_event: Any) -> bool:
    """A served namespace is gone (its watchers may stop) once the API server reports it
    DELETED: only then is every finalizer in it released."""
    return bool(raw_event.get("type") == "DELETED")


_kopf_original: dict[str, Callable[..., Any]] = {}


def apply() -> bool:
    """The fixes (idempotent). False, with a warning, when this kopf's internals are not the
    ones they were written against."""
    return (
        _apply_index_toggles()
        & _apply_namespace_gone()
        & _apply_listed_namespaces()
        & _apply_relisting()
        & _apply_keepalive_record()
        & _apply_observed_peers()
        & _apply_finalizer_for_every_shard()
        & _apply_views_without_cycles()
    )


_ACYCLIC = "_stratops_views_without_cycles"


def _apply_views_without_cycles() -> bool:
    """kopf's Body, Meta, Patch and MetaPatch with views made when asked for (the eighth fix)."""
    from kopf._cogs.structs import bodies, dicts, patches

    body, meta, patch, meta_patch = bodies.Body, bodies.Meta, patches.Patch, patches.MetaPatch
    if getattr(body, _ACYCLIC, False):
        return True
    expected = (
        isinstance(body.__dict__.get("meta"), property)
        and isinstance(meta.__dict__.get("labels"), property)
        and isinstance(patch.__dict__.get("meta"), property)
        and isinstance(meta_patch.__dict__.get("labels"), property)
        and issubclass(body, dicts.ReplaceableMappingView)
        and issubclass(patch, dict)
    )
    if not expected:
        log.warning("kopf's bodies are not the ones the fix was written for: their reference cycles stay")
        return False

    def body_init(self: Any, src: Any) -> None:
        dicts.ReplaceableMappingView.__init__(self, src)

    def meta_init(self: Any, src: Any) -> None:
        dicts.MappingView.__init__(self, src, "metadata")

    def patch_init(self: Any, src: Any = None, /, body: Any = None, fns: Any = ()) -> None:
        dict.__init__(self, src or {})
        self._original = body
        self._fns = (src.fns if isinstance(src, patches.Patch) else []) + list(fns)

    def meta_patch_init(self: Any, src: Any) -> None:
        dicts.MutableMappingView.__init__(self, src, "metadata")

    def view(make: Any, *key: str) -> property:
        return property(lambda self: make(self, *key))

    # Each class: its __init__ without the views, then each view made when asked for.
    fixed: dict[type, tuple[Any, dict[tuple[str, ...], property]]] = {
        body: (
            body_init,
            {
                ("meta", "metadata"): view(bodies.Meta),
                ("spec",): view(bodies.Spec),
                ("status",): view(bodies.Status),
            },
        ),
        meta: (
            meta_init,
            {
                ("labels",): view(dicts.MappingView, "labels"),
                ("annotations",): view(dicts.MappingView, "annotations"),
            },
        ),
        patch: (
            patch_init,
            {
                ("meta", "metadata"): view(patches.MetaPatch),
                ("spec",): view(patches.SpecPatch),
                ("status",): view(patches.StatusPatch),
            },
        ),
        meta_patch: (
            meta_patch_init,
            {
                ("labels",): view(dicts.MutableMappingView, "labels"),
                ("annotations",): view(dicts.MutableMappingView, "annotations"),
            },
        ),
    }
    for cls, (init, views) in fixed.items():
        cls.__init__ = init  # type: ignore[misc]
        for names, prop in views.items():
            for name in names:
                setattr(cls, name, prop)
    setattr(body, _ACYCLIC, True)
    return True


# -- no essence built where nothing diffs it -----------------------------------------------------
class EssenceUnused(kopf.AnnotationsDiffBaseStorage):
    """kopf builds every event's "essence" (a deep copy of the whole body, status included) and
    diffs it against the last handled one, for on.create/update/delete handlers. Where none is
    registered nothing reads it (daemons use the diff only to reset `idle` timers, and none has
    one): an empty essence instead (issue 21: 6 % of the operator's CPU creating a fleet)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}


def diffbase_storage(registry: Any, prefix: str, key: str) -> kopf.DiffBaseStorage:
    """kopf's annotations storage, or EssenceUnused's where REGISTRY has no changing handler."""
    changing = getattr(getattr(registry, "_changing", None), "_handlers", None)
    if isinstance(changing, list) and not changing:
        return EssenceUnused(prefix=prefix, key=key)
    if not isinstance(changing, list):
        log.warning("kopf internals changed (registry._changing): every event's essence is built, as kopf does")
    return kopf.AnnotationsDiffBaseStorage(prefix=prefix, key=key)


# -- a daemon without a finalizer ---------------------------------------------------------------
def without_finalizer(registry: Any, fn: Callable[..., Any]) -> bool:
    """kopf's daemon for FN in REGISTRY, made not to require kopf's finalizer (kopf.daemon
    always does). The daemon must then end by itself when its object is deleted: kopf stops a
    daemon only while a finalizer holds the object. False, with a warning, if kopf changed."""
    import dataclasses

    spawning = getattr(registry, "_spawning", None)
    handlers = getattr(spawning, "_handlers", None)
    if not isinstance(handlers, list):
        log.warning("kopf internals changed (registry._spawning): the daemon keeps kopf's finalizer")
        return False
    found = False
    for i, h in enumerate(handlers):
        if getattr(h, "fn", None) is fn and getattr(h, "requires_finalizer", None) is not None:
            handlers[i] = dataclasses.replace(h, requires_finalizer=False)
            found = True
    if not found:
        log.warning("kopf internals changed (no daemon handler for %s): it keeps kopf's finalizer", fn.__name__)
    return found


# -- one finalizer for every shard -------------------------------------------------------------
def requires_finalizer_whatever_the_filter(self: Any, cause: Any, excluded: Any = frozenset()) -> bool:
    """kopf's SpawningRegistry.requires_finalizer, less the handlers' `when` callbacks."""
    from kopf._core.intents import registries as r

    for handler in self._handlers:
        if handler.id in excluded or not handler.requires_finalizer:
            continue
        kwargs: dict[str, Any] = {}
        if (
            r._matches_resource(handler, cause.resource)
            and r._matches_labels(handler, cause, kwargs)
            and r._matches_annotations(handler, cause, kwargs)
            and r._matches_field_values(handler, cause, kwargs)
        ):
            return True
    return False


def _apply_finalizer_for_every_shard() -> bool:
    try:
        from kopf._core.intents import registries
    except ImportError:
        log.warning("kopf internals moved: the shard finalizer fix is not applied (check kopf's changelog)")
        return False
    current = getattr(registries.SpawningRegistry, "requires_finalizer", None)
    helpers = ("_matches_resource", "_matches_labels", "_matches_annotations", "_matches_field_values")
    if (
        current is None
        or list(inspect.signature(current).parameters) != ["self", "cause", "excluded"]
        or not all(hasattr(registries, h) for h in helpers)
    ):
        log.warning(
            "kopf internals changed (SpawningRegistry.requires_finalizer): the shard finalizer fix is not applied"
        )
        return False
    if current is not requires_finalizer_whatever_the_filter:
        _kopf_original["requires_finalizer"] = current  # for the test that shows kopf's defect
        registries.SpawningRegistry.requires_finalizer = requires_finalizer_whatever_the_filter  # type: ignore[method-assign]
    return True


# -- listings that forget what is gone, and streams resumed after a pause ----------------------
StreamKey = tuple[str, str | None]  # (resource, namespace); None: cluster-wide
#: Per stream, a stub of every object it has reported and not reported deleted.
_reported: dict[StreamKey, dict[str, dict[str, Any]]] = {}
#: Streams resumed after a pause whose listing has not ended yet; set once it has.
_relisting: dict[StreamKey, asyncio.Event] = {}


def _stream_key(resource: Any, namespace: str | None) -> StreamKey:
    return (str(resource), namespace)


def _stub(obj: dict[str, Any]) -> dict[str, Any]:
    """What kopf and the operator's event handlers need to forget an object: its identity
    (indexes are keyed by namespace, name and uid), its labels (the handlers' filters) and the
    spec fields that name its strategy (whom to poke). Not the whole object: a fleet's pods
    would be kept twice."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    stub: dict[str, Any] = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in ("namespace", "name", "uid", "labels") if k in meta},
    }
    named = {k: spec[k] for k in ("strategy", "strategies") if k in spec} if isinstance(spec, dict) else {}
    source = spec.get("source") if isinstance(spec, dict) else None
    if isinstance(source, dict) and "strategy" in source:
        # Whether a Monitor reads its strategy's reports (whom its event pokes), not its source:
        # a Prometheus source's queries, kept for every Monitor, were most of a stub's size.
        named["source"] = {"strategy": source["strategy"]}
    if named:
        stub["spec"] = named
    return stub


def _gone(stub: dict[str, Any]) -> dict[str, Any]:
    """STUB as a DELETED event's object: marked deleted, so that kopf stops its daemons and
    spawns none (a daemon spawned on a stub would act on an object that is not there)."""
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**stub, "metadata": {**stub["metadata"], "deletionTimestamp": when, "finalizers": []}}


def _listed(key: StreamKey) -> None:
    done = _relisting.pop(key, None)
    if done is not None:
        done.set()


def relisting(namespace: str) -> list[str]:
    """The streams serving NAMESPACE that resumed after a pause and have not listed again."""
    return sorted(f"{r}@{ns or 'cluster'}" for (r, ns) in _relisting if ns in (namespace, None))


#: After a listing, until its events are in the indexes: kopf hands each object's events to a
#: worker task of its own, which runs when the event loop gets to it. (kopf 1.45 has no batch
#: window to wait out: `settings.batching.batch_window` is deprecated and affects nothing.)
settle_seconds = 0.2


async def relisted(namespace: str) -> None:
    """Until every stream serving NAMESPACE has listed again since its last pause, and
    settle_seconds more."""
    waited = False
    while pending := [done for (_, ns), done in list(_relisting.items()) if ns in (namespace, None)]:
        await pending[0].wait()
        waited = True
    if waited:
        await asyncio.sleep(settle_seconds)


def _forgetting_listing(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def continuous_watch(*, resource: Any, namespace: str | None, **kwargs: Any) -> Any:
        key = _stream_key(resource, namespace)
        reported = _reported.setdefault(key, {})
        listed: set[str] = set()
        async for event in fn(resource=resource, namespace=namespace, **kwargs):
            if isinstance(event, dict):
                obj = event.get("object") or {}
                # kopf holds the latest body of every Strategy (its daemon's), and the handlers'
                # views share its strings: none of them reads managedFields.
                drop_managed_fields(obj)
                uid = (obj.get("metadata") or {}).get("uid") if isinstance(obj, dict) else None
                if uid and event.get("type") == "DELETED":
                    reported.pop(uid, None)
                elif uid and event.get("type") != "BOOKMARK":
                    reported[uid] = _stub(obj)
                    if event.get("type") is None:  # reported by the listing
                        listed.add(uid)
            elif getattr(event, "name", None) == "LISTED":
                # Gone between the last stream and this listing: no event will ever say so.
                for uid in [u for u in reported if u not in listed]:
                    yield {"type": "DELETED", "object": _gone(reported.pop(uid))}
                listed = set()
                _listed(key)
            yield event

    setattr(continuous_watch, _APPLIED, True)
    return continuous_watch


def _marking_paused(fn: Callable[..., Any]) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def streaming_block(*, namespace: str | None, resource: Any, operator_paused: Any = None) -> Any:
        key = _stream_key(resource, namespace)
        if operator_paused is not None:
            _readiness["paused"] = operator_paused
            await _hold_for_layout(operator_paused)

        def paused(waiter: asyncio.Future[Any]) -> None:
            if not waiter.cancelled():  # done: the operator is paused from this moment
                _relisting.setdefault(key, asyncio.Event())

        if operator_paused is not None and operator_paused.is_on():
            _relisting.setdefault(key, asyncio.Event())
        async with fn(namespace=namespace, resource=resource, operator_paused=operator_paused) as waiter:
            if operator_paused is not None:  # kopf's own waiter: done when paused, cancelled when the stream ends
                waiter.add_done_callback(paused)
            yield waiter

    setattr(streaming_block, _APPLIED, True)
    return streaming_block


# -- the shard layout hold (stratops.lifecycle.shard.other_layouts_live) -----------------------
# Asked for by the start-up check before any stream starts; put in place by the first stream,
# before it can process anything (every stream waits on the lock), as a toggle among kopf's
# pause reasons; lifted by the start-up handler's task once no other layout is live.
_layout: dict[str, Any] = {"wanted": None, "toggle": None, "lock": None}


def hold_for_layout(reason: str) -> None:
    """Start paused for REASON (another shard count's replicas are live), until released."""
    _layout["wanted"] = reason


async def _hold_for_layout(operator_paused: Any) -> None:
    if _layout["wanted"] is None:
        return
    if _layout["lock"] is None:
        _layout["lock"] = asyncio.Lock()
    async with _layout["lock"]:
        if _layout["wanted"] is not None and _layout["toggle"] is None:
            _layout["toggle"] = await operator_paused.make_toggle(True, name=_layout["wanted"])


async def release_layout_hold() -> None:
    """Lift the hold (or never put it in place, if no stream has started yet)."""
    lock = _layout["lock"]
    if lock is None:
        _layout["wanted"] = None
        return
    async with lock:
        _layout["wanted"] = None
        if _layout["toggle"] is not None:
            await _layout["toggle"].turn_to(False)


def _apply_relisting() -> bool:
    try:
        from kopf._cogs.clients import watching
    except ImportError:
        log.warning("kopf internals moved: the relisting fix is not applied (check kopf's changelog)")
        return False
    watch, block = getattr(watching, "continuous_watch", None), getattr(watching, "streaming_block", None)
    if watch is None or block is None or not hasattr(watching, "Bookmark"):
        log.warning(
            "kopf internals changed (watching.continuous_watch, streaming_block): the relisting fix is not applied"
        )
        return False
    wanted = ({"resource", "namespace"}, {"resource", "namespace", "operator_paused"})
    if not all(
        w <= inspect.signature(getattr(f, "__wrapped__", f)).parameters.keys()
        for w, f in zip(wanted, (watch, block), strict=True)
    ):
        log.warning(
            "kopf internals changed (watching.continuous_watch, streaming_block): the relisting fix is not applied"
        )
        return False
    # Both looked up in the module's globals by infinite_watch at call time.
    if not getattr(watch, _APPLIED, False):
        _kopf_original["continuous_watch"] = watch
        watching.continuous_watch = _forgetting_listing(watch)  # type: ignore[assignment]
    if not getattr(block, _APPLIED, False):
        _kopf_original["streaming_block"] = block
        watching.streaming_block = _marking_paused(block)  # type: ignore[assignment]
    return True


def _apply_listed_namespaces() -> bool:
    try:
        from kopf._core.reactor import observation
    except ImportError:
        log.warning("kopf internals moved: the listed-namespace fix is not applied (check kopf's changelog)")
        return False
    fn = getattr(observation, "process_discovered_namespace_event", None)
    if fn is None or getattr(fn, _APPLIED, False):
        return fn is not None
    params = inspect.signature(fn).parameters
    if not {"raw_event", "namespaces", "insights"} <= params.keys() or not hasattr(observation, "revise_namespaces"):
        log.warning(
            "kopf internals changed (observation.process_discovered_namespace_event): the listed-namespace fix "
            "is not applied"
        )
        return False

    @functools.wraps(fn)
    async def revise_on_listing_too(*, raw_event: Any, namespaces: Any, insights: Any, **_: Any) -> None:
        async with insights.revised:
            observation.revise_namespaces(raw_events=[raw_event], insights=insights, namespaces=namespaces)
            insights.revised.notify_all()

    setattr(revise_on_listing_too, _APPLIED, True)
    _kopf_original["process_discovered_namespace_event"] = fn
    # Looked up in the module's globals by namespace_observer when it starts its watcher.
    observation.process_discovered_namespace_event = revise_on_listing_too  # type: ignore[assignment]
    return True


def _apply_namespace_gone() -> bool:
    try:
        from kopf._core.reactor import observation
    except ImportError:
        log.warning("kopf internals moved: the namespace-deletion fix is not applied (check kopf's changelog)")
        return False
    fns = {name: getattr(observation, name, None) for name in ("is_deleted", "get_blockers")}
    if not hasattr(observation, "revise_namespaces") or any(
        fn is None or list(inspect.signature(fn).parameters) != ["raw_event"] for fn in fns.values()
    ):
        log.warning(
            "kopf internals changed (observation.is_deleted, get_blockers): the namespace-deletion fix is not applied"
        )
        return False
    if fns["is_deleted"] is not namespace_gone:
        _kopf_original.update(fns)  # for the test that shows kopf's defect
        # Both looked up in the module's globals by revise_namespaces at call time. A DELETED
        # namespace has no blockers, whatever its last status said.
        blockers = fns["get_blockers"]
        observation.is_deleted = namespace_gone  # type: ignore[assignment]
        observation.get_blockers = lambda raw_event: [] if namespace_gone(raw_event) else blockers(raw_event)  # type: ignore[assignment]
    return True


def _apply_index_toggles() -> bool:
    try:
        from kopf._core.reactor import queueing
    except ImportError:
        log.warning("kopf internals moved: the index-toggle fix is not applied (check kopf's changelog)")
        return False
    for name in ("watcher", "worker"):
        fn = getattr(queueing, name, None)
        if fn is None or not inspect.iscoroutinefunction(fn):
            log.warning("kopf internals changed (queueing.%s): the index-toggle fix is not applied", name)
            return False
        if getattr(fn, _APPLIED, False):
            continue
        params = inspect.signature(fn).parameters
        if not {"operator_indexed", "resource_indexed"} <= params.keys():
            log.warning("kopf internals changed (queueing.%s): the index-toggle fix is not applied", name)
            return False
    for name in ("watcher", "worker"):
        fn = getattr(queueing, name)
        if not getattr(fn, _APPLIED, False):
            # Looked up by module attribute at call time: orchestration calls queueing.watcher,
            # and the watcher calls worker from its own module's globals.
            setattr(queueing, name, _dropping_toggle(fn))
    return True


# -- fencing: a replica whose peering record may have lapsed stops acting ------------------------
#: Monotonic time of the last keep-alive that landed (about when the "lastseen" it wrote was
#: taken), when a fence began, and since when the record has been renewed again after it.
_keepalive: dict[str, float | None] = {"touched": None, "lifetime": None, "fenced_at": None, "renewed_since": None}


def fence_margin(lifetime: float) -> float:
    """How long before its record lapses a replica stops acting: time for its last writes."""
    return min(2.0, lifetime / 5)


def fenced(now: float, touched: float | None, renewed_since: float | None, lifetime: float, fenced: bool) -> bool:
    """Whether a replica must not act. Its peers resume once its record is older than LIFETIME;
    it stops before that (fence_margin). Once fenced, it acts again only after its record has
    been renewed for LIFETIME + 1 s: every peer has then seen it alive (kopf pauses a peer the
    moment it does) and had time to stop. Never fenced before its first keep-alive: kopf keeps a
    starting replica paused until it has seen its peers."""
    if touched is None:
        return False
    if now - touched > lifetime - fence_margin(lifetime):
        return True
    if fenced:
        return renewed_since is None or now - renewed_since < lifetime + 1
    return False


def _recording_keepalive(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
    @functools.wraps(fn)
    async def touch(**kwargs: Any) -> None:
        began = time.monotonic()  # the "lastseen" kopf writes is taken about now
        await fn(**kwargs)
        if kwargs.get("lifetime") is None:  # a keep-alive (lifetime=0 is the goodbye)
            settings = kwargs.get("settings")
            _keepalive["touched"] = began
            _keepalive["lifetime"] = float(settings.peering.lifetime) if settings is not None else None
            fenced_at, since = _keepalive["fenced_at"], _keepalive["renewed_since"]
            if fenced_at is not None and (since is None or since < fenced_at):
                _keepalive["renewed_since"] = began

    setattr(touch, _APPLIED, True)
    return touch


def _replace_in_peering(
    attr: str, params: set[str], make: Callable[[Any, Any], Any], otherwise: str, coroutine: bool = False
) -> bool:
    """Replace kopf's `peering.ATTR` (looked up in the module's globals at call time) with
    MAKE(peering, original), once; False, saying OTHERWISE, when kopf's internals are not the ones
    this was written against (ATTR missing, or without the parameters PARAMS)."""
    try:
        from kopf._core.engines import peering
    except ImportError:
        log.warning("kopf internals moved: %s (check kopf's changelog)", otherwise)
        return False
    current = getattr(peering, attr, None)
    if getattr(current, _APPLIED, False):
        return True
    if (
        current is None
        or (coroutine and not inspect.iscoroutinefunction(current))
        or not params <= inspect.signature(current).parameters.keys()
    ):
        log.warning("kopf internals changed (peering.%s): %s", attr, otherwise)
        return False
    _kopf_original[attr] = current
    setattr(peering, attr, make(peering, current))
    return True


def _apply_keepalive_record() -> bool:
    # keepalive calls touch after every renewal: the wrapper records when one landed.
    return _replace_in_peering(
        "touch",
        {"identity", "settings", "lifetime"},
        lambda peering, fn: _recording_keepalive(fn),
        "the peering fence is not applied",
        coroutine=True,
    )


# -- peers judged alive by what this replica saw, not by their clocks --------------------------
#: Per peer identity: the `lastseen` it last wrote, and this replica's monotonic time when it
#: first saw that value.
_observed: dict[str, tuple[str, float]] = {}
#: A record older than its lifetime and this by this replica's wall clock is dead at once.
CLOCK_SKEW_SECONDS = float(os.environ.get("STRATOPS_PEERING_CLOCK_SKEW_SECONDS", "300"))


def peer_time_left(unchanged_for: float, lifetime: float, clock_age: float, skew: float) -> float:
    """Seconds a peer has left to live (0 or less: dead). UNCHANGED_FOR: how long this replica
    has seen its record unchanged (monotonic); CLOCK_AGE: its `lastseen` against this replica's
    wall clock, trusted only beyond the clocks' allowed SKEW."""
    if clock_age > lifetime + skew:
        return 0.0
    return lifetime - unchanged_for


def _observed_peer_class(peering: Any) -> type:
    class ObservedPeer(peering.Peer):  # type: ignore[misc,name-defined]
        """kopf's Peer, alive by observation (see the module's sixth fix)."""

        def __init__(self, *, identity: str, lastseen: str | None = None, **kwargs: Any) -> None:
            super().__init__(identity=identity, lastseen=lastseen, **kwargs)
            if lastseen is None:
                return  # this replica's own record, as it writes it (touch): kopf's rule
            mono = time.monotonic()
            seen = _observed.get(identity)
            if seen is None or seen[0] != lastseen:
                seen = _observed[identity] = (lastseen, mono)
            clock = peering.datetime  # the module's, looked up now
            now = clock.datetime.now(clock.UTC)
            left = peer_time_left(
                mono - seen[1], self.lifetime.total_seconds(), (now - self.lastseen).total_seconds(), CLOCK_SKEW_SECONDS
            )
            self.is_dead = left <= 0
            self.deadline = now + clock.timedelta(seconds=max(left, 0.0))  # kopf sleeps until then

    setattr(ObservedPeer, _APPLIED, True)
    return ObservedPeer


def _apply_observed_peers() -> bool:
    # process_peering_event and touch build every Peer from the module's class.
    return _replace_in_peering(
        "Peer",
        {"identity", "lifetime", "lastseen"},
        lambda peering, cls: _observed_peer_class(peering),
        "peers are judged by their clocks",
    )


def may_act(now: float, standalone: bool) -> bool:
    """Whether this replica may act now, for what acts outside kopf (the kill watch; read from
    its thread): not paused by peering (nor fenced: the fence is one of the pause reasons), and
    its record not about to lapse. With peering, never before kopf's pause toggle is known: a
    starting replica is paused until it has seen its peers."""
    paused = _readiness["paused"]
    if paused is None:
        return standalone
    if paused.is_on():
        return False
    lifetime = _keepalive["lifetime"]
    if lifetime is None:
        return standalone
    return not fenced(
        now, _keepalive["touched"], _keepalive["renewed_since"], lifetime, _keepalive["fenced_at"] is not None
    )


async def fence(interval: float = 0.5) -> None:
    """For ever: pause this replica (a toggle among kopf's pause reasons) while fenced()."""
    toggle = None
    while True:
        await asyncio.sleep(interval)
        lifetime, paused = _keepalive["lifetime"], _readiness["paused"]
        if lifetime is None or paused is None:
            continue
        if toggle is None:
            toggle = await paused.make_toggle(False, name="own peering record may have lapsed")
        now = time.monotonic()
        want = fenced(now, _keepalive["touched"], _keepalive["renewed_since"], lifetime, toggle.is_on())
        if want and not toggle.is_on():
            _keepalive["fenced_at"], _keepalive["renewed_since"] = now, None
            log.warning(
                "fenced: this replica's peering record was last renewed %.1fs ago (lifetime %.0fs); a peer may "
                "take over: not acting until it has been renewed for %.0fs",
                now - (_keepalive["touched"] or now),
                lifetime,
                lifetime + 1,
            )
            await toggle.turn_to(True)
        elif not want and toggle.is_on():
            _keepalive["fenced_at"] = None
            log.warning("fence lifted: the peering record has been renewed for %.0fs", lifetime + 1)
            await toggle.turn_to(False)
