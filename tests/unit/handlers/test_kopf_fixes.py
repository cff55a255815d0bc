"""The index-toggle fix (stratops.handlers.kopf_fixes) against the installed kopf: a watcher
stopped before its first listing, as when its namespace is deleted, must not hold the
operator's readiness (kopf 1.45.2 left its toggle in the set, and every handler waited)."""

from __future__ import annotations

import asyncio

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
