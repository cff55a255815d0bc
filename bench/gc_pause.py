"""A full garbage collection's pause against the objects the operator holds, with and without
freezing what outlived the last full collection (stratops.handlers.startup.collect_garbage_rarely).

Python's cyclic collector stops the whole process, the kill path included, while it walks the
generation it collects; a full collection walks every tracked object that is not frozen. The
operator's long-lived objects are its fleet: the Strategies', Monitors' and their pods' views in
kopf's indexes, the schedule, the status copies. Here a fleet of PER_STRATEGY tracked objects per
strategy (JSON-shaped dicts and lists, as parsed from the API server) is built, then one full
collection is timed as the operator would meet it:
- unfrozen: every object of the fleet in the oldest generation (Python's default);
- frozen: the operator's hook froze the survivors of the last full collection, and 1 % of the
  fleet is new since (promoted by younger collections).
The floor: a full collection of the same 1 % new objects with no fleet, in the same run.
PER_STRATEGY defaults to what the operator's collector tracked at 1,000 strategies with 12
monitors each: 1,004 objects per strategy outside the frozen ones (its SIGUSR1 census in
`python bench/fleet.py --sizes 1000 --grouped`, 2026-12-08); pass --per-strategy to change it.

    python bench/gc_pause.py [--sizes 1000,10000] [--per-strategy 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time

from stratops.handlers import startup


def _monitor_like(i: int) -> dict:
    """The shape of a monitor's or a pod's view, as parsed from JSON (a dict of strings only is
    not tracked: CPython untracks it)."""
    return {
        "metadata": {"name": f"m{i}", "labels": {"stratops.io/strategy": f"s{i}"}, "annotations": {}},
        "spec": {"query": "sum by (strategy) (x)", "check": {"threshold": {"value": 1.0}}, "tags": ["a", "b"]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "history": [[1.0, 2.0]]},
    }


def _tracked(o: object) -> int:
    """The objects the collector tracks in O, a tree of dicts and lists, O included."""
    inner = o.values() if isinstance(o, dict) else o if isinstance(o, list) else ()
    return int(gc.is_tracked(o)) + sum(_tracked(x) for x in inner)


def build(strategies: int, per_strategy: int) -> list:
    """STRATEGIES lists of views, PER_STRATEGY tracked objects each (rounded to whole views)."""
    per = max(1, round(per_strategy / _tracked(_monitor_like(0))))
    return [[_monitor_like(i * per + j) for j in range(per)] for i in range(strategies)]


def pause() -> float:
    """One full collection (seconds), the operator's hook on."""
    t = time.perf_counter()
    gc.collect()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--per-strategy", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    startup.collect_garbage_rarely()  # the operator's start: what is loaded is frozen, the hook is on
    gc.disable()  # only the collections this bench makes
    rows = []
    for n in (int(x) for x in a.sizes.split(",")):
        startup.GC_FREEZE_SURVIVORS = False
        floor = []
        for _ in range(a.repeat):  # the floor: the 1 % new alone, with no fleet
            new = build(max(1, n // 100), a.per_strategy)
            floor.append(pause())
            del new
            gc.collect()
        fleet = build(n, a.per_strategy)
        tracked = len(gc.get_objects())
        unfrozen = statistics.median(pause() for _ in range(a.repeat))
        startup.GC_FREEZE_SURVIVORS = True
        pause()  # the hook freezes what outlived it
        frozen_objects = gc.get_freeze_count()
        news, frozen = [], []
        for _ in range(a.repeat):
            news.append(build(max(1, n // 100), a.per_strategy))  # promoted since the last full collection
            frozen.append(pause())
        gc.unfreeze()
        del fleet, news
        gc.collect()
        fl = statistics.median(floor)
        rows.append((f"{n:,} strategies: the floor, 1 % of them new with no fleet", f"{fl * 1e3:.1f} ms", ""))
        rows.append(
            (
                f"{n:,} strategies ({tracked / 1e6:.1f} M tracked objects), none frozen",
                f"{unfrozen * 1e3:.1f} ms",
                f"{unfrozen / fl:.0f}x floor",
            )
        )
        rows.append(
            (
                f"{n:,} strategies: survivors frozen ({frozen_objects / 1e6:.1f} M), 1 % new",
                f"{statistics.median(frozen) * 1e3:.1f} ms",
                f"{statistics.median(frozen) / fl:.1f}x floor",
            )
        )
        print(f"[bench] {n:,} strategies done", file=sys.stderr, flush=True)
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"{name.ljust(width)}  {value:>10}  {ratio}")


if __name__ == "__main__":
    main()
