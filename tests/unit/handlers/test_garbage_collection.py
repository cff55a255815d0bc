"""The operator's garbage collection (stratops.handlers.startup.collect_garbage_rarely): a batch's
answer, read by its monitors for a second or two, dies young instead of being promoted to the
oldest generation, whose full collections stopped the operator for up to 1.2 s every few seconds
at 1,000 strategies. Each case runs in a fresh interpreter: the test process's own collector is
left as it is."""

from __future__ import annotations

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
    print(M.GC_PAUSE_SECONDS.labels("2")._sum.get() > 0)
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
