"""The index-toggle fix (stratops.handlers.kopf_fixes) against the installed kopf: a watcher
stopped before its first listing, as when its namespace is deleted, must not hold the
operator's readiness (kopf 1.45.2 left its toggle in the set, and every handler waited)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import watching
from kopf._cogs.structs import references
from kopf._core.reactor import queueing

from stratops.handlers import kopf_fixes

RESOURCE = references.Resource(group="stratops.io", version="v1alpha1", plural="strategies", namespaced=True)


_listing: dict[str, asyncio.Event] = {}


async def _never_lists(**_: object):  # the first LIST has not answered yet
    _listing["started"].set()
    await asyncio.Event().wait()
    yield  # pragma: no cover


async def _processor(**_: object) -> None:
    return None


async def _stop_watcher_before_listing() -> aiotoggles.ToggleSet:
    indexed = aiotoggles.ToggleSet(all)
    toggle = await indexed.make_toggle(name=f"{RESOURCE}@t-gone")
    _listing["started"] = asyncio.Event()
    task = asyncio.create_task(
        queueing.watcher(
            namespace="t-gone",
            settings=kopf.OperatorSettings(),
            resource=RESOURCE,
            processor=_processor,
            operator_indexed=indexed,
            resource_indexed=toggle,
        )
    )
    await asyncio.wait_for(_listing["started"].wait(), timeout=10)  # the watcher is in its listing
    assert indexed.is_off()  # waiting for the listing, as it should
    task.cancel()  # what kopf does when the namespace is deleted
    with pytest.raises(asyncio.CancelledError):
        await task
    return indexed


def test_a_watcher_stopped_before_its_listing_releases_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "infinite_watch", _never_lists)
    assert kopf_fixes.apply()
    indexed = asyncio.run(_stop_watcher_before_listing())
    assert indexed.is_on() and len(indexed) == 0


def test_without_the_fix_kopf_keeps_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect the fix is for, shown on kopf's own watcher (if kopf fixes it, this fails:
    the fix can then go)."""
    monkeypatch.setattr(watching, "infinite_watch", _never_lists)
    original = getattr(queueing.watcher, "__wrapped__", queueing.watcher)
    monkeypatch.setattr(queueing, "watcher", original)
    indexed = asyncio.run(_stop_watcher_before_listing())
    assert indexed.is_off()


def test_apply_is_idempotent() -> None:
    assert kopf_fixes.apply() and kopf_fixes.apply()
    assert not hasattr(queueing.watcher.__wrapped__, "__wrapped__")


def test_the_liveness_probe_fails_when_handlers_are_held_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    from stratops.handlers import startup as handlers

    async def held_set() -> aiotoggles.ToggleSet:
        toggles = aiotoggles.ToggleSet(all)
        await toggles.make_toggle(name="configmaps.v1@t-gone")
        return toggles

    toggles = asyncio.run(held_set())
    monkeypatch.setitem(kopf_fixes._readiness, "toggles", toggles)
    monkeypatch.setitem(kopf_fixes._readiness, "off_since", None)
    assert kopf_fixes.held_for(100.0) == (0.0, ["configmaps.v1@t-gone"])  # starts counting
    monkeypatch.setattr(handlers.time, "monotonic", lambda: 100.0 + handlers.HELD_LIMIT_SECONDS + 1)
    with pytest.raises(kopf.PermanentError, match=r"configmaps\.v1@t-gone"):
        handlers.held_handlers()
    monkeypatch.setattr(handlers.time, "monotonic", lambda: 101.0)
    assert handlers.held_handlers() == 1.0


# -- a namespace being deleted stays watched until it is gone ---------------------------------
def _terminating(conditions: list[tuple[str, str]], type_: str = "MODIFIED") -> dict:
    """A namespace event as the namespace controller writes it during a deletion."""
    return {
        "type": type_,
        "object": {
            "metadata": {"name": "t-gone", "deletionTimestamp": "2026-11-24T22:39:43Z"},
            "status": {"phase": "Terminating", "conditions": [{"type": t, "status": v} for t, v in conditions]},
        },
    }


# Kubernetes 1.36's first report of an ordered deletion: three conditions, all False, while the
# namespace's Strategies are yet to be deleted (their finalizers still to be released).
FIRST_REPORT = [
    ("NamespaceDeletionDiscoveryFailure", "False"),
    ("NamespaceDeletionGroupVersionParsingFailure", "False"),
    ("NamespaceDeletionContentFailure", "False"),
]
REMAINING = [*FIRST_REPORT, ("NamespaceContentRemaining", "True"), ("NamespaceFinalizersRemaining", "True")]


def _watched_after(events: list[dict]) -> set[str]:
    from kopf._core.reactor import observation

    insights = references.Insights()
    insights.namespaces.add("t-gone")
    observation.revise_namespaces(insights=insights, namespaces=["t-*"], raw_events=events)
    return set(insights.namespaces)


def test_a_terminating_namespace_stays_watched_until_deleted() -> None:
    assert kopf_fixes.apply()
    assert _watched_after([_terminating(FIRST_REPORT)]) == {"t-gone"}
    assert _watched_after([_terminating(FIRST_REPORT), _terminating(REMAINING)]) == {"t-gone"}
    assert _watched_after([_terminating(REMAINING), _terminating(REMAINING, "DELETED")]) == set()


def test_without_the_fix_kopf_stops_watching_at_the_first_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect, on kopf's own rule (if kopf fixes it, this fails: the fix can then go)."""
    from kopf._core.reactor import observation

    assert kopf_fixes.apply()
    monkeypatch.setattr(observation, "is_deleted", kopf_fixes._kopf_original["is_deleted"])
    assert _watched_after([_terminating(FIRST_REPORT)]) == set()


def _served_after_listing(process) -> set[str]:
    """A namespace created between kopf's first listing and its watcher's: only the watcher's
    listing (type None) reports it."""
    insights = references.Insights()
    insights.namespaces.add("t-before")  # the observer's own first listing
    listed = {"type": None, "object": {"metadata": {"name": "t-created-meanwhile"}}}
    asyncio.run(process(raw_event=listed, namespaces=["t-*"], insights=insights))
    return set(insights.namespaces)


def test_a_namespace_first_seen_in_the_watchers_listing_is_served() -> None:
    from kopf._core.reactor import observation

    assert kopf_fixes.apply()
    assert _served_after_listing(observation.process_discovered_namespace_event) == {"t-before", "t-created-meanwhile"}


def test_without_the_fix_kopf_never_serves_it() -> None:
    """The defect, on kopf's own processor (if kopf fixes it, this fails: the fix can then go)."""
    assert kopf_fixes.apply()
    assert _served_after_listing(kopf_fixes._kopf_original["process_discovered_namespace_event"]) == {"t-before"}


# -- a listing forgets what is gone; a stream resumed after a pause is waited for ----------------
def _pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": "t-desk", "name": name, "uid": f"uid-{name}", "labels": {"strategy": "s"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }


class _Server:
    """The API server as kopf's real watch loop sees it: LISTINGS served in turn, each followed
    by a watch that ends with "410 Gone", after which kopf lists again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, listings: list[list[dict]], hold: bool = False) -> None:
        from kopf._cogs.clients import fetching

        self.listings, self.hold = list(listings), hold
        self.exhausted = asyncio.Event()
        monkeypatch.setattr(fetching, "fetch_objs", self.fetch_objs)
        monkeypatch.setattr(watching, "watch_objs", self.watch_objs)

    async def fetch_objs(self, **_: object):
        if not self.listings:
            self.exhausted.set()
            await asyncio.Event().wait()
        yield self.listings.pop(0), "1"

    async def watch_objs(self, operator_pause_waiter: asyncio.Future, **_: object):
        if self.hold:  # a quiet desk: the watch stays open until the operator is paused
            if not self.listings:
                self.exhausted.set()
            await asyncio.wait([operator_pause_waiter])
            return
        yield {"type": "ERROR", "object": {"code": 410}}


def _seen(e: object) -> object:
    return e if isinstance(e, watching.Bookmark) else (e["type"], e["object"]["metadata"]["name"])


async def _stream(server: _Server, paused: aiotoggles.ToggleSet | None = None, on_event=None) -> list:
    """What kopf's watcher receives from infinite_watch until the listings are served."""
    events: list = []
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0

    async def consume() -> None:
        async for e in watching.infinite_watch(
            settings=settings, resource=RESOURCE, namespace="t-desk", operator_paused=paused
        ):
            events.append(e)
            if on_event is not None:
                await on_event(e)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(server.exhausted.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return [_seen(e) for e in events]


LISTED = watching.Bookmark.LISTED


@pytest.fixture(autouse=True)
def _fresh_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's stream starts with nothing reported and nothing waited for (as a process does)."""
    monkeypatch.setattr(kopf_fixes, "_reported", {})
    monkeypatch.setattr(kopf_fixes, "_relisting", {})


async def wait_until(condition, timeout: float = 10) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def test_an_object_gone_between_two_listings_is_reported_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kopf_fixes.apply()
    server = _Server(monkeypatch, [[_pod("a"), _pod("b")], [_pod("a")], []])
    events = asyncio.run(_stream(server))
    assert events == [(None, "a"), (None, "b"), LISTED, (None, "a"), ("DELETED", "b"), LISTED, ("DELETED", "a"), LISTED]


def test_the_deleted_report_carries_what_the_handlers_filter_and_poke_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kopf_fixes.apply()
    incident = {
        "apiVersion": "stratops.io/v1alpha1",
        "kind": "Incident",
        "metadata": {"namespace": "t-desk", "name": "i", "uid": "uid-i", "labels": {"l": "v"}, "annotations": {}},
        "spec": {"strategy": "mean-revert", "summary": "x" * 1000},
    }
    gone: list = []

    async def record(e: object) -> None:
        if isinstance(e, dict) and e["type"] == "DELETED":
            gone.append(e["object"])

    asyncio.run(_stream(_Server(monkeypatch, [[incident], []]), on_event=record))
    assert len(gone) == 1
    meta = gone[0]["metadata"]
    assert meta.pop("deletionTimestamp") and meta.pop("finalizers") == []  # kopf stops its daemons, spawns none
    assert gone == [
        {
            "apiVersion": "stratops.io/v1alpha1",
            "kind": "Incident",
            "metadata": {"namespace": "t-desk", "name": "i", "uid": "uid-i", "labels": {"l": "v"}},
            "spec": {"strategy": "mean-revert"},
        }
    ]


def test_a_monitor_s_stub_keeps_whom_it_pokes_and_not_its_queries() -> None:
    """Issue 21: a stub is kept per object the stream reported; a Monitor's Prometheus source
    (its queries) is not needed to forget it, only whether it reads its strategy's reports."""

    def monitor(source: dict) -> dict:
        return {
            "apiVersion": "stratops.io/v1alpha1",
            "kind": "Monitor",
            "metadata": {"namespace": "t-desk", "name": "m", "uid": "uid-m"},
            "spec": {"strategy": "mean-revert", "source": source, "check": {"threshold": {"value": 1}}},
        }

    prometheus = kopf_fixes._stub(monitor({"prometheus": {"url": "http://p:9090", "query": "x" * 2000}}))
    assert prometheus["spec"] == {"strategy": "mean-revert"}
    reports = kopf_fixes._stub(monitor({"strategy": {"report": "exposure"}}))
    assert reports["spec"] == {"strategy": "mean-revert", "source": {"strategy": {"report": "exposure"}}}


def test_what_kopf_receives_carries_no_managed_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 21: kopf holds the latest body of each object with a daemon, and the handlers' views
    share its strings; server-side apply's managedFields, read by no handler, are dropped as the
    stream receives them (listed or watched), the rest of the object kept."""
    assert kopf_fixes.apply()
    pod = _pod("a")
    pod["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]
    pod["metadata"]["labels"] = {"stratops.io/strategy": "s"}
    received: list = []

    async def record(e: object) -> None:
        if isinstance(e, dict):
            received.append(e["object"])

    asyncio.run(_stream(_Server(monkeypatch, [[pod], []]), on_event=record))
    assert received and all("managedFields" not in o["metadata"] for o in received)
    assert received[0]["metadata"]["labels"] == {"stratops.io/strategy": "s"} and received[0]["metadata"]["name"] == "a"


def test_without_the_fix_kopf_never_forgets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect, on kopf's own watch loop (if kopf fixes it, this fails: the fix can then go)."""
    assert kopf_fixes.apply()
    monkeypatch.setattr(watching, "continuous_watch", kopf_fixes._kopf_original["continuous_watch"])
    server = _Server(monkeypatch, [[_pod("a"), _pod("b")], [_pod("a")], []])
    assert asyncio.run(_stream(server)) == [(None, "a"), (None, "b"), LISTED, (None, "a"), LISTED, LISTED]


def test_a_stream_resumed_after_a_pause_is_waited_for_until_it_has_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kopf_fixes.apply()
    monkeypatch.setattr(kopf_fixes, "settle_seconds", 0)
    server = _Server(monkeypatch, [[_pod("a")], [_pod("a")]], hold=True)
    first_listing = asyncio.Event()

    async def on_event(e: object) -> None:
        if e is LISTED:
            first_listing.set()

    async def takeover(peering: aiotoggles.Toggle) -> list:
        seen = []
        await first_listing.wait()
        assert kopf_fixes.relisting("t-desk") == []  # listed, not paused: nothing to wait for
        await peering.turn_to(True)  # another replica acts: this one pauses
        await wait_until(lambda: kopf_fixes.relisting("t-desk"))  # kopf's pause waiter wakes
        seen.append(kopf_fixes.relisting("t-desk"))
        waiter = asyncio.create_task(kopf_fixes.relisted("t-desk"))
        finished, _ = await asyncio.wait({waiter}, timeout=0.5)
        seen.append(bool(finished))  # paused: the index is as it was, and is waited for
        await peering.turn_to(False)  # the other replica's record lapses: resumed, listed again
        await asyncio.wait_for(waiter, timeout=10)
        seen.append(kopf_fixes.relisting("t-desk"))
        return seen

    async def scenario() -> tuple[list, list]:
        paused = aiotoggles.ToggleSet(any)
        peering = await paused.make_toggle(False, name="peering")
        seen = asyncio.create_task(takeover(peering))
        events = await _stream(server, paused, on_event)
        return await seen, events

    seen, events = asyncio.run(scenario())
    assert seen == [[f"{RESOURCE}@t-desk"], False, []]
    assert events[:4] == [(None, "a"), LISTED, (None, "a"), LISTED]


# -- the peering fence: a replica whose record may have lapsed stops acting -----------------------
LIFETIME = 10.0


def test_a_replica_is_fenced_before_its_peers_may_take_over() -> None:
    lapse = LIFETIME - kopf_fixes.fence_margin(LIFETIME)  # peers take over at LIFETIME
    assert lapse < LIFETIME
    assert not kopf_fixes.fenced(100.0, None, None, LIFETIME, False)  # never touched: kopf keeps it paused
    assert not kopf_fixes.fenced(100.0 + lapse - 0.1, 100.0, None, LIFETIME, False)
    assert kopf_fixes.fenced(100.0 + lapse + 0.1, 100.0, None, LIFETIME, False)


def test_a_fenced_replica_acts_again_only_after_a_whole_lifetime_renewed() -> None:
    # fenced at 110; the API server answers again at 130: renewed since then
    assert kopf_fixes.fenced(130.5, 130.0, 130.0, LIFETIME, True)
    assert kopf_fixes.fenced(130.0 + LIFETIME + 0.9, 130.0 + LIFETIME, 130.0, LIFETIME, True)
    assert not kopf_fixes.fenced(130.0 + LIFETIME + 1.1, 130.0 + LIFETIME, 130.0, LIFETIME, True)
    # renewed, then lapsed again: fenced whatever came before
    assert kopf_fixes.fenced(200.0, 180.0, 130.0, LIFETIME, False)


def test_the_keepalive_that_lands_is_recorded_and_the_goodbye_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from kopf._core.engines import peering

    assert kopf_fixes.apply()
    record = {"touched": None, "lifetime": None, "fenced_at": 50.0, "renewed_since": None}
    monkeypatch.setattr(kopf_fixes, "_keepalive", record)
    calls: list[dict] = []

    async def landed(**kwargs: object) -> None:
        calls.append(kwargs)

    async def refused(**kwargs: object) -> None:
        raise RuntimeError("API server away")

    settings = kopf.OperatorSettings()
    settings.peering.lifetime = 10
    touch = kopf_fixes._recording_keepalive(refused)
    with pytest.raises(RuntimeError):
        asyncio.run(touch(identity="a", settings=settings, resource=RESOURCE, namespace="n"))
    assert record["touched"] is None  # a keep-alive that did not land renews nothing
    touch = kopf_fixes._recording_keepalive(landed)
    asyncio.run(touch(identity="a", settings=settings, resource=RESOURCE, namespace="n"))
    assert record["touched"] is not None and record["lifetime"] == 10.0
    assert record["renewed_since"] == record["touched"]  # the first renewal after the fence
    first = record["touched"]
    asyncio.run(touch(identity="a", settings=settings, resource=RESOURCE, namespace="n", lifetime=0))
    assert record["touched"] == first and len(calls) == 2
    assert getattr(peering.touch, "__wrapped__", None) is kopf_fixes._kopf_original["touch"]


def test_a_paused_replica_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """A standby lists nothing while paused: its liveness probe must not count that as held (it
    was restarted every minute by the chart's probe)."""

    async def sets() -> tuple[aiotoggles.ToggleSet, aiotoggles.ToggleSet]:
        toggles = aiotoggles.ToggleSet(all)
        await toggles.make_toggle(name="configmaps.v1@t-desk")
        paused = aiotoggles.ToggleSet(any)
        await paused.make_toggle(True, name="peering")
        return toggles, paused

    toggles, paused = asyncio.run(sets())
    monkeypatch.setitem(kopf_fixes._readiness, "toggles", toggles)
    monkeypatch.setitem(kopf_fixes._readiness, "off_since", None)
    monkeypatch.setitem(kopf_fixes._readiness, "paused", paused)
    assert kopf_fixes.held_for(100.0) == (0.0, []) and kopf_fixes.held_for(1000.0) == (0.0, [])
    monkeypatch.setitem(kopf_fixes._readiness, "paused", None)
    assert kopf_fixes.held_for(1000.0) == (0.0, ["configmaps.v1@t-desk"])  # starts counting
    assert kopf_fixes.held_for(1100.0)[0] == 100.0


def test_what_acts_outside_kopf_acts_only_on_the_replica_that_may(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kill watch asks kopf_fixes.may_act: never on a paused (standby, fenced) replica, nor on
    one whose record is about to lapse, nor with peering before kopf's pause state is known."""

    async def paused_by_peering(on: bool) -> tuple[aiotoggles.ToggleSet, aiotoggles.Toggle]:
        paused = aiotoggles.ToggleSet(any)
        return paused, await paused.make_toggle(on, name="peering")

    monkeypatch.setitem(kopf_fixes._readiness, "paused", None)
    monkeypatch.setattr(
        kopf_fixes, "_keepalive", {"touched": None, "lifetime": None, "fenced_at": None, "renewed_since": None}
    )
    assert kopf_fixes.may_act(1000.0, standalone=True)
    assert not kopf_fixes.may_act(1000.0, standalone=False)  # starting: kopf keeps it paused until it has seen peers

    paused, toggle = asyncio.run(paused_by_peering(True))
    monkeypatch.setitem(kopf_fixes._readiness, "paused", paused)
    kopf_fixes._keepalive.update(touched=999.0, lifetime=10.0)
    assert not kopf_fixes.may_act(1000.0, standalone=False)  # the standby
    asyncio.run(toggle.turn_to(False))
    assert kopf_fixes.may_act(1000.0, standalone=False)  # the leader, its record fresh
    assert not kopf_fixes.may_act(1008.5, standalone=False)  # record about to lapse: a peer may take over
    kopf_fixes._keepalive.update(fenced_at=1008.5, touched=1009.0, renewed_since=1009.0)
    assert not kopf_fixes.may_act(1012.0, standalone=False)  # renewed, but not for a whole lifetime yet
    kopf_fixes._keepalive.update(touched=1020.0)
    assert kopf_fixes.may_act(1020.5, standalone=False)


# -- peers judged alive by observation, not by comparing clocks -----------------------------------
def _peering_event(peers: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"type": "MODIFIED", "object": {"metadata": {"name": "stratops"}, "status": peers}}


def _standby_decides(peer_class: type, lastseen: str) -> bool:
    """Whether a standby (priority 1) stays paused beside a leader (priority 2) that has just
    renewed its record with LASTSEEN, as kopf's own peering decision runs with PEER_CLASS."""
    from kopf._core.engines import peering

    async def scenario() -> bool:
        settings = kopf.OperatorSettings()
        settings.peering.name, settings.peering.priority = "stratops", 1
        conflicts = aiotoggles.Toggle(True)  # a starting replica is paused
        pressure = asyncio.Event()
        pressure.set()  # do not sleep until the leader's deadline
        event = _peering_event({"leader": {"priority": 2, "lifetime": 10, "lastseen": lastseen}})
        await peering.process_peering_event(
            raw_event=event,  # type: ignore[arg-type]
            namespace="desk",
            resource=RESOURCE,
            identity=peering.Identity("standby"),
            settings=settings,
            autoclean=False,
            stream_pressure=pressure,
            conflicts_found=conflicts,
        )
        return conflicts.is_on()

    original = peering.Peer
    try:
        peering.Peer = peer_class
        return asyncio.run(scenario())
    finally:
        peering.Peer = original


def test_a_live_leader_whose_clock_is_behind_keeps_the_standby_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leader whose wall clock is 40 s behind renews its record: kopf's peering compared that
    `lastseen` with the standby's clock, took the leader for dead, and resumed the standby while
    the leader went on acting (the soak's clock-step fault). Judged by observation, it stays
    paused until the record goes unchanged for a lifetime."""
    from datetime import timedelta

    from kopf._core.engines import peering

    kopf_fixes._apply_observed_peers()
    monkeypatch.setattr(kopf_fixes, "_observed", {})
    behind = (datetime.now(UTC) - timedelta(seconds=40)).isoformat()
    assert not _standby_decides(kopf_fixes._kopf_original["Peer"], behind), "kopf 1.45.2 resumes it"
    assert _standby_decides(peering.Peer, behind)
    # The same record, first seen a whole lifetime ago on this replica's monotonic clock and
    # unchanged since: the leader is dead, and the standby takes over.
    assert kopf_fixes._observed["leader"][0] == behind
    kopf_fixes._observed["leader"] = (behind, time.monotonic() - 10.5)
    assert not _standby_decides(peering.Peer, behind)


def test_a_peer_lives_a_lifetime_from_when_its_record_was_last_seen_to_change() -> None:
    assert kopf_fixes.peer_time_left(0.0, 10.0, clock_age=-3600.0, skew=300.0) == 10.0  # its clock ahead
    assert kopf_fixes.peer_time_left(4.0, 10.0, clock_age=40.0, skew=300.0) == 6.0  # its clock behind
    assert kopf_fixes.peer_time_left(10.0, 10.0, clock_age=0.0, skew=300.0) == 0.0  # unchanged a lifetime
    # A record older than its lifetime and the allowed skew is dead at once: a replica restarted
    # after every replica died does not wait a lifetime on its predecessors' records.
    assert kopf_fixes.peer_time_left(0.0, 10.0, clock_age=311.0, skew=300.0) == 0.0


def _foreign_strategy_needs_the_finalizer(registry: kopf.OperatorRegistry) -> bool:
    """Whether kopf, in a replica of another shard (its daemon's `when` says no), still counts
    kopf's finalizer as required on a Strategy that has it (False: kopf removes it)."""
    import logging

    from kopf._cogs.structs import bodies, patches
    from kopf._core.intents import causes

    async def daemon(**_: object) -> None:  # pragma: no cover - never spawned here
        return None

    kopf.daemon("stratops.io", "v1alpha1", "strategies", when=lambda **_: False, registry=registry)(daemon)
    raw = {"metadata": {"name": "s", "namespace": "desk", "finalizers": ["stratops.io/finalizer"]}}
    cause = causes.SpawningCause(
        logger=logging.getLogger("test"),
        indices={},  # type: ignore[arg-type]
        memo=kopf.Memo(),
        resource=RESOURCE,
        patch=patches.Patch(),
        body=bodies.Body(raw),
        reset=False,
    )
    return registry._spawning.requires_finalizer(cause=cause)


def test_a_shard_that_does_not_serve_a_strategy_leaves_its_finalizer_alone() -> None:
    """Issue 21, shards: a replica of another shard removed kopf's finalizer from every strategy
    it does not serve, the owning shard put it back, and so on, about 15 patches a second per
    strategy (its status writes met 409 after 409 among them)."""
    assert kopf_fixes.apply()
    assert _foreign_strategy_needs_the_finalizer(kopf.OperatorRegistry())


def test_without_the_fix_kopf_drops_the_finalizer_of_a_strategy_filtered_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect the fix is for, on kopf's own registry (if kopf fixes it, this fails)."""
    from kopf._core.intents import registries

    assert kopf_fixes.apply()
    monkeypatch.setattr(
        registries.SpawningRegistry, "requires_finalizer", kopf_fixes._kopf_original["requires_finalizer"]
    )
    assert not _foreign_strategy_needs_the_finalizer(kopf.OperatorRegistry())


def test_the_strategy_daemon_requires_no_finalizer_and_the_gate_daemon_still_does() -> None:
    """Issue 21: kopf.daemon always asks for kopf's finalizer (a patch per new object); the
    Strategy daemon ends on its object's DELETED event instead (stratops.handlers.strategy)."""
    from stratops.handlers import gate, strategy

    registry = kopf.OperatorRegistry()
    strategy.register(registry)
    gate.register(registry)
    needs = {h.fn.__name__: h.requires_finalizer for h in registry._spawning.get_all_handlers()}
    assert needs == {"strategy_daemon": False, "gate_daemon": True}
    assert not kopf_fixes.without_finalizer(kopf.OperatorRegistry(), strategy.strategy_daemon)  # none to change


def test_no_essence_is_built_where_no_handler_diffs_a_body() -> None:
    """Issue 21: kopf deep-copied every event's body to diff it for on.create/update/delete
    handlers, which the operator has none of. Should one be added, kopf's storage is back."""
    from stratops import handlers

    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    storage = kopf_fixes.diffbase_storage(registry, "stratops.io", "last-handled-configuration")
    assert isinstance(storage, kopf_fixes.EssenceUnused)
    body = kopf.Body({"metadata": {"name": "s", "labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"y": 2}})
    assert storage.build(body=body) == {}
    kopf.on.update("stratops.io", "v1alpha1", "strategies", registry=registry)(lambda **_: None)
    storage = kopf_fixes.diffbase_storage(registry, "stratops.io", "last-handled-configuration")
    assert type(storage) is kopf.AnnotationsDiffBaseStorage
    assert storage.build(body=body)["spec"] == {"x": 1}
