"""The warm handover against Recreate, with the example strategy as real containers on the real
node, in the same run (issue 19).

Figures, for a good rollout (1.4.2 -> 1.4.3) and a failed one (1.4.2 -> crash-1.4.4, which exits
at start; rollout deadline 15 s), each a strategy handed over warm (rollbackPolicy.handover) and
one rolled out with Recreate, interleaved so both see the same noise:
- time with no trading version: from the moment the last pod of the old version stopped trading
  (its HALTED acknowledgement, or its exit on SIGTERM) to the first trading acknowledgement of a
  pod of the version that trades next (the new one, or after a failed rollout the known-good one
  again). A version that never stopped trading counts 0. The Recreate figures are the floor this
  is measured against.
- the handover's duration: status.handover startedAt -> Done (good rollouts).

Every time is an acknowledgement's arrival in a host-side watch on the ack ConfigMap (one clock).

    python bench/handover.py [--samples N]

Needs what the real node needs (root, containerd, runc, CNI plugins) and Docker for the images.
Progress goes to stderr; the table to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import datetime
from typing import Any

from kubernetes import client, watch

from real_pods import bench_operator, pct, print_table, progress, real_node_desk, strategy, unavailable
from stratops import GROUP, VERSION
from stratops.lifecycle.control import Acknowledgement
from stratops.lifecycle.manifests import ack_name
from stratops.testing.wait import wait_for

VERSIONS = ("1.4.2", "1.4.3", "crash-1.4.4")
TRADES = ("ACTIVE", "REDUCING")


class Acks:
    """Every acknowledgement of one strategy, with the time its watch delivered it."""

    def __init__(self, core: client.CoreV1Api, ns: str, name: str) -> None:
        self.rows: list[tuple[float, str, Acknowledgement]] = []
        self._w = watch.Watch()

        def run() -> None:
            seen: set[tuple[str, int, str, bool]] = set()
            try:
                for ev in self._w.stream(
                    core.list_namespaced_config_map, ns, field_selector=f"metadata.name={ack_name(name)}"
                ):
                    now = time.time()
                    for pod, raw in (ev["object"].data or {}).items():
                        a = Acknowledgement.model_validate_json(raw)
                        key = (pod, a.generation, a.trading_state.value, bool(a.exiting))
                        if key not in seen:
                            seen.add(key)
                            self.rows.append((now, pod, a))
            except Exception:  # the strategy deleted: done
                return

        threading.Thread(target=run, daemon=True).start()

    def stop(self) -> None:
        self._w.stop()

    def gap(self, old: str, after: float) -> float | None:
        """Seconds with no trading version after AFTER: from the old version's pods' last trading
        moment to the next trading ack of a pod (0: the old one never stopped; None: nothing trades
        yet)."""
        rows = [r for r in self.rows if r[0] >= after]
        stopped = [t for t, _, a in rows if a.version == old and (a.trading_state.value not in TRADES or a.exiting)]
        if not stopped:
            return 0.0
        t0 = min(stopped)
        nxt = [t for t, _, a in rows if t >= t0 and a.trading_state.value in TRADES and not a.exiting]
        return min(nxt) - t0 if nxt else None


def ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def sample(api: client.ApiClient, ns: str, name: str, warm: bool, to: str) -> dict[str, float]:
    """One rollout of TO on a fresh strategy trading 1.4.2: its no-trading time (and the
    handover's duration when WARM and TO is good)."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    doc = strategy(name, True)
    doc["spec"]["rollbackPolicy"] = {"rolloutDeadline": "15s", "healthyFor": "2s", "handover": warm}

    def status() -> dict[str, Any]:
        return custom.get_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name).get("status") or {}

    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "strategies", doc)
    wait_for(lambda: status().get("lastKnownGood") == "1.4.2", timeout=180, what=f"{name}: 1.4.2 known-good")
    acks = Acks(core, ns, name)
    wait_for(lambda: acks.rows, timeout=30, what=f"{name}: its acks watched")
    t0 = time.time()
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name, {"spec": {"version": to}})
    out: dict[str, float] = {}
    if to.startswith("crash"):
        wait_for(
            lambda: (
                (s := status()).get("phase") == "Running"
                and any(b["version"] == to for b in s.get("blockedVersions") or [])
            ),
            timeout=180,
            what=f"{name}: {to} blocked, 1.4.2 running",
        )
    else:
        s = wait_for(
            lambda: (s := status()).get("lastKnownGood") == to and s, timeout=180, what=f"{name}: {to} known-good"
        )
        if warm:
            h = s["handover"]
            assert h["step"] == "Done", h
            out["duration"] = ts(h["stepAt"]) - ts(h["startedAt"])
    gap = wait_for(
        lambda: acks.gap("1.4.2", t0) is not None and [acks.gap("1.4.2", t0)],
        timeout=60,
        what=f"{name}: a version trading again",
    )
    out["gap"] = gap[0]
    acks.stop()
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "strategies", name)
    return out


def run(rows: list[tuple[str, str, str]], samples: int) -> None:
    ns = "bench-handover"
    got: dict[tuple[str, bool], list[dict[str, float]]] = {}
    with real_node_desk(ns, VERSIONS) as (cp, api), bench_operator(cp, ns):
        for i in range(samples):
            for to in ("1.4.3", "crash-1.4.4"):
                for warm in (True, False):
                    r = sample(
                        api,
                        ns,
                        f"{'warm' if warm else 'recreate'}-{'crash' if 'crash' in to else 'good'}-{i}",
                        warm,
                        to,
                    )
                    got.setdefault((to, warm), []).append(r)
                    progress(f"{i + 1}/{samples} {to} {'warm' if warm else 'Recreate'}: {r}")
    for to, what in (("1.4.3", "good rollout"), ("crash-1.4.4", "failed rollout")):
        warm, floor = [r["gap"] for r in got[(to, True)]], [r["gap"] for r in got[(to, False)]]
        rows.append(
            (
                f"handover: no trading version, {what}, p50 / p99 (s)",
                f"{statistics.median(warm):.2f} / {pct(warm, 0.99):.2f}",
                f"Recreate (floor): {statistics.median(floor):.2f} / {pct(floor, 0.99):.2f}, n={len(warm)}",
            )
        )
    d = [r["duration"] for r in got[("1.4.3", True)]]
    rows.append(
        (
            "handover: started -> done, good rollout, p50 / p99 (s)",
            f"{statistics.median(d):.2f} / {pct(d, 0.99):.2f}",
            f"no-trading gap inside it: {statistics.median([r['gap'] for r in got[('1.4.3', True)]]):.2f}s p50",
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=5)
    args = ap.parse_args()
    if (why := unavailable()) is not None:
        print(f"bench/handover.py cannot run here: {why}", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, str]] = []
    run(rows, args.samples)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
