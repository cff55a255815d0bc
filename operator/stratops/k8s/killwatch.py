"""The kill watch (stratops.lifecycle.killwatch): a watch of the Strategies, run in threads next
to kopf, that carries out a kill no reconcile took up within the grace period.

It reads only what the halt needs, straight from the API server (no kopf index): the Strategy,
its control ConfigMap (trusted only when the Strategy owns it), its Deployment's replicas and
its live pods. The halt is stratops.lifecycle.halt's: HALTED with zero limits, the Deployment
at 0, the latch in status (written at the resourceVersion read: a reconcile that took the kill
up meanwhile wins, and the watch forgets it). The latch is a decision: its KillSwitch entry goes
into the audit chain with it. Only a replica that may act (not paused by peering, not fenced)
carries a kill out.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from stratops import GROUP, VERSION
from stratops import metrics as M
from stratops.audit import entry_seq
from stratops.k8s.executor import Executor
from stratops.lifecycle.control import read_control
from stratops.lifecycle.halt import kill_taken_up, when_undecidable
from stratops.lifecycle.killwatch import WHY, Waiting, overdue, seen, waiting_kill
from stratops.lifecycle.observe import owned_documents

log = logging.getLogger("stratops.killwatch")
Key = tuple[str, str]
#: Each watch request's length: the server ends it then, and the next goes on from there.
WATCH_SECONDS = 30


def serves(patterns: list[str]) -> Callable[[str], bool]:
    """Whether a namespace is among PATTERNS (globs; `!glob` excludes), as kopf reads them."""
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    return lambda ns: (
        any(fnmatch.fnmatchcase(ns, p) for p in include) and not any(fnmatch.fnmatchcase(ns, p) for p in exclude)
    )


def exact(patterns: list[str]) -> list[str] | None:
    """PATTERNS as plain namespace names (one watch each), or None if any is a glob or an
    exclusion (one cluster-wide watch, filtered)."""
    if any(p.startswith("!") or any(c in p for c in "*?[") for p in patterns):
        return None
    return sorted(set(patterns))


class KillWatch:
    def __init__(
        self,
        executor: Executor,
        namespaces: list[str] | None,
        include: Callable[[str], bool],
        may_act: Callable[[], bool],
        grace: float,
        tick: float = 0.5,
        owns: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.executor = executor
        self.namespaces = namespaces  # None: cluster-wide
        self.include = include
        self.owns = owns or (lambda ns, name: True)  # this shard's strategies (all, without shards)
        self.may_act = may_act
        self.grace = grace
        self.tick = tick
        self.waiting: dict[Key, Waiting] = {}
        self.halted: list[Key] = []  # what it carried out, in order (for the log and the tests)
        self.finishing: set[Key] = set()  # halted by this watch, not yet completed (pods still going)
        self.passes = 0  # passes over the overdue kills so far (tests wait on it, not on time)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._custom = client.CustomObjectsApi(executor.api)

    # -- running ----------------------------------------------------------------------------
    def start(self) -> KillWatch:
        scopes: list[str | None] = list(self.namespaces) if self.namespaces is not None else [None]
        for ns in scopes:
            threading.Thread(
                target=self._watch, args=(ns,), name=f"stratops-killwatch-{ns or 'cluster'}", daemon=True
            ).start()
        threading.Thread(target=self._carry_out, name="stratops-killwatch", daemon=True).start()
        log.info(
            "kill watch: a kill no reconcile takes up within %.0fs is carried out without kopf (%s)",
            self.grace,
            ", ".join(self.namespaces) if self.namespaces is not None else "cluster-wide",
        )
        return self

    def stop(self) -> None:
        self._stop.set()

    def _list(self, ns: str | None, **kw: Any) -> Any:
        if ns is None:
            return self._custom.list_cluster_custom_object(GROUP, VERSION, "strategies", **kw)
        return self._custom.list_namespaced_custom_object(GROUP, VERSION, ns, "strategies", **kw)

    def _observe(self, obj: dict[str, Any], deleted: bool = False) -> None:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace", "")
        if not self.include(ns) or not self.owns(ns, meta.get("name", "")):
            return
        key = (ns, meta.get("name", ""))
        with self._lock:
            if deleted:
                self.waiting.pop(key, None)
            else:
                seen(self.waiting, key, obj, time.monotonic())

    def _watch(self, ns: str | None) -> None:
        """List, then watch from the list's resourceVersion; on any end or error, list again
        (what a listing lacks is forgotten: a kill on a deleted Strategy is nothing to do)."""
        while not self._stop.is_set():
            try:
                listing = self._list(ns)
                present = set()
                for obj in listing.get("items") or []:
                    self._observe(obj)
                    present.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
                with self._lock:
                    for key in [k for k in self.waiting if (ns is None or k[0] == ns) and k not in present]:
                        self.waiting.pop(key)
                rv = listing["metadata"].get("resourceVersion")
                while not self._stop.is_set():  # watched on from where the last stream ended
                    w = watch.Watch()
                    for ev in w.stream(
                        self._list,
                        ns,
                        resource_version=rv,
                        allow_watch_bookmarks=True,
                        timeout_seconds=WATCH_SECONDS,
                        # Past the server's own end of the stream: a connection gone silent
                        # (half-open) fails here instead of hiding kills for good.
                        _request_timeout=(10, WATCH_SECONDS + 15),
                    ):
                        if self._stop.is_set():
                            return
                        if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self._observe(ev["object"], deleted=ev["type"] == "DELETED")
                        # Where the next stream goes on from: this event's (a bookmark's too). The
                        # client's own Watch.resource_version never moves for a function it has no
                        # return type for (ours), and each new stream replayed every event since
                        # the listing: at 300 idle strategies, most of the operator's idle CPU.
                        rv = ((ev.get("object") or {}).get("metadata") or {}).get("resourceVersion") or rv
            except ApiException as e:
                if e.status != 410:  # 410: the resourceVersion is too old; list again at once
                    log.warning("kill watch of %s: %s %s; listing again", ns or "the cluster", e.status, e.reason)
                    self._stop.wait(1.0)
            except Exception as e:  # the watch must outlive an API server away or a bad event
                log.warning("kill watch of %s ended (%s: %s); listing again", ns or "the cluster", type(e).__name__, e)
                self._stop.wait(1.0)

    def _carry_out(self) -> None:
        while not self._stop.wait(self.tick):
            with self._lock:
                late = overdue(self.waiting, time.monotonic(), self.grace)
                finishing = sorted(self.finishing)
            may = bool(late or finishing) and self.may_act()
            self.passes += 1
            if not may:
                continue
            for key, step in [*((k, self.halt) for k in late), *((k, self.finish) for k in finishing)]:
                try:
                    step(key)
                except ApiException as e:  # a conflict (a reconcile wrote meanwhile) or the API server away
                    log.warning("[%s/%s] kill watch: halt not written (%s %s); again", *key, e.status, e.reason)
                except Exception:
                    log.exception("[%s/%s] kill watch: halt failed; again", *key)

    # -- the halt ---------------------------------------------------------------------------
    def halt(self, key: Key) -> bool:
        """Carry out the kill waiting on KEY, if it still waits (True: written)."""
        ns, name = key
        ex = self.executor
        fresh = ex.read_strategy(ns, name)
        cmd = waiting_kill(fresh) if fresh is not None else None
        if fresh is None or cmd is None:
            with self._lock:
                self.waiting.pop(key, None)
            return False
        meta = fresh["metadata"]
        uid = meta["uid"]
        view, control_version = ex.read_control_view(ns, name)
        control_data, _, _ = owned_documents(name, uid, [view] if view is not None else [])
        control, _ = read_control(dict(control_data) if control_data is not None else None)
        mine = ex.written_control.get(key)
        if mine is not None and (control is None or control.generation < mine.generation):
            control = mine
        replicas = ex.deployment_replicas(ns, name)
        stopped = not replicas and ex.live_pods(ns, name) == 0
        status = fresh.get("status") or {}
        now = datetime.now(UTC)
        why = WHY.format(grace=self.grace)
        halt = when_undecidable(name, int(meta.get("generation") or 0), status, cmd, control, now, why, stopped)
        # Taken up (the reconcile that comes later removes the annotation and does not decide it
        # again), and on the record: the latch's entry goes into the chain with the status that holds it.
        event, lines = kill_taken_up(name, halt, cmd, why, now, ex.audit.confirmed(ns, "Strategy", name))
        # Each write only over the object as read: a reconcile that acted meanwhile (kopf not
        # stuck after all) makes it a 409, and the next pass finds the kill taken up. HALTED first.
        if halt.control is not None:
            ex.write_control(ns, name, uid, halt.control, resource_version=control_version)
        if halt.scale_to_zero:
            ex.scale_to_zero(ns, name)
        ex.write_halt_status(ns, name, meta["resourceVersion"], halt.status)
        with self._lock:
            self.waiting.pop(key, None)
            self.halted.append(key)
            self.finishing.add(key)
        M.KILL_WATCH_HALTS.labels(ns, name).inc()
        M.ACTIONS.labels(ns, name, "kill_switch").inc()
        log.error("[%s/%s] kill by %s carried out by the kill watch: %s", ns, name, cmd.by, why)
        ex.event(ns, name, uid, event.type, event.reason, event.message, now, entry=entry_seq(lines[-1]))
        ex.audit.append(ns, "Strategy", name, lines)
        return True

    def finish(self, key: Key) -> bool:
        """Record the completion of a halt this watch made, once the Deployment is at 0 and no pod
        is left (as the halt path does); until then, or until a reconcile takes over (True: written)."""
        ns, name = key
        ex = self.executor
        fresh = ex.read_strategy(ns, name)
        ks = ((fresh or {}).get("status") or {}).get("killSwitch") or {}
        if fresh is None or not ks.get("latched") or ks.get("completedAt"):
            with self._lock:
                self.finishing.discard(key)
            return False
        if ex.deployment_replicas(ns, name) or ex.live_pods(ns, name):
            return False
        meta = fresh["metadata"]
        control = ex.written_control.get(key)
        status = fresh.get("status") or {}
        now = datetime.now(UTC)
        halt = when_undecidable(
            name, int(meta.get("generation") or 0), status, None, control, now, WHY.format(grace=self.grace), True
        )
        if halt.control is not None:  # HALTED is no longer the document in force: a reconcile's to decide
            with self._lock:
                self.finishing.discard(key)
            return False
        ex.execute_halt(ns, name, meta["uid"], meta["resourceVersion"], halt, now)
        with self._lock:
            self.finishing.discard(key)
        log.warning("[%s/%s] kill watch: the halt is complete (scaled to 0, no pod left)", ns, name)
        return True
