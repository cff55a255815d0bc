"""The operator's garbage collection (stratops.handlers.startup.collect_garbage_rarely): a batch's
answer, read by its monitors for a second or two, dies young instead of being promoted to the
oldest generation, whose full collections stopped the operator for up to 1.2 s every few seconds
at 1,000 strategies. Each case runs in a fresh interpreter: the test process's own collector is
left as it is."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import gc, sys
    import stratops.handlers.startup as startup
    if sys.argv[1] == "tuned":
        startup.collect_garbage_rarely()
    from stratops.monitors.prometheus import _parse
    rows = [{"metric": {"strategy": f"s{i}"}, "values": [[1.0e9 + j, "1"] for j in range(60)]} for i in range(1000)]
    answer = _parse({"resultType": "matrix", "result": rows}, "q")
    readers = [[i] for i in range(3000)]  # what its monitors' evaluations hold meanwhile
    old = {id(o) for o in gc.get_objects(generation=2)}
    print(sum(1 for o in (answer, answer[0], answer[0].points) if id(o) in old), gc.get_freeze_count() > 0)
    gc.collect()
    from stratops import metrics as M
    wall, cpu = M.GC_PAUSE_SECONDS.labels("2")._sum.get(), M.GC_PAUSE_CPU_SECONDS.labels("2")._sum.get()
    print(wall > 0 and 0 < cpu <= wall + 0.01)  # the thread's CPU, timed beside the wall clock
    """
)


def _probe(mode: str) -> tuple[int, bool, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    promoted, frozen, timed = out.split()
    return int(promoted), frozen == "True", timed == "True"


def test_a_batch_answer_dies_young_what_was_loaded_at_start_is_frozen_and_pauses_are_timed():
    promoted, frozen, timed = _probe("tuned")
    assert promoted == 0 and frozen and timed


def test_with_pythons_defaults_the_same_answer_is_promoted_at_once():
    """The defect, as the probe sees it: why the thresholds are not Python's."""
    promoted, frozen, timed = _probe("default")
    assert promoted > 0 and not frozen and not timed


SURVIVORS = textwrap.dedent(
    """
    import gc, sys, time
    import stratops.handlers.startup as startup
    from stratops import metrics as M
    startup.collect_garbage_rarely()
    at_start = gc.get_freeze_count()
    fleet = [{"metadata": {"name": f"s{i}"}, "spec": [i]} for i in range(20000)]  # long-lived
    gc.collect()  # a full collection
    frozen = gc.get_freeze_count() - at_start
    a, b = [], []
    a.append(b)
    b.append(a)
    old_cycle = [a]
    gc.collect()  # the cycle outlives a full collection: frozen with the rest
    del a, b, old_cycle
    c, d = [], []
    c.append(d)
    d.append(c)
    del c, d  # a new cycle, never frozen
    if sys.argv[1] == "thaw-due":  # as if GC_THAW_SECONDS had passed since the last thaw
        startup._gc_state.thawed = time.monotonic() - startup.GC_THAW_SECONDS
    freed = gc.collect()
    thaws = int(M.GC_THAWS._value.get())
    assert int(M.GC_THAW_FREED._value.get()) == (freed if thaws else 0)
    print(frozen, freed, thaws)
    """
)


def _survivors(mode: str = "", **env: str) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", SURVIVORS, mode], capture_output=True, text=True, check=True, env={**os.environ, **env}
    ).stdout
    frozen, freed, thaws = out.split()
    return int(frozen), int(freed), int(thaws)


def test_what_outlives_a_full_collection_is_frozen_and_new_garbage_is_still_collected():
    """At 10,000 strategies a full collection walked the whole fleet's objects for 10 s. Frozen
    after one full collection, they are not walked again; a reference cycle made later is freed
    as before. A cycle that became garbage after it was frozen waits for a thaw (none here)."""
    frozen, freed, thaws = _survivors("thaw-due", STRATOPS_GC_THAW_SECONDS="0")
    assert frozen >= 40000  # each of the 20,000 dicts, and its list
    assert freed == 2 and thaws == 0  # the new cycle's two lists; the frozen cycle waits


def test_a_thaw_lets_a_full_collection_free_a_cycle_that_was_frozen():
    """A thaw comes once STRATOPS_GC_THAW_SECONDS (an hour here) have passed since the last one:
    not before, and at the first full collection after (the hour made to have passed)."""
    frozen, freed, thaws = _survivors("", STRATOPS_GC_THAW_SECONDS="3600")
    assert frozen >= 40000 and freed == 2 and thaws == 0  # not yet due: the frozen cycle waits
    frozen, freed, thaws = _survivors("thaw-due", STRATOPS_GC_THAW_SECONDS="3600")
    assert frozen >= 40000 and freed == 4 and thaws == 1


def test_without_freezing_survivors_the_fleet_stays_in_the_oldest_generation():
    frozen, freed, thaws = _survivors("thaw-due", STRATOPS_GC_FREEZE_SURVIVORS="false")
    assert frozen < 1000 and freed == 4 and thaws == 0
