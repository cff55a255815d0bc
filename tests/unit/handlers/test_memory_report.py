"""The operator's memory report on SIGUSR1 (stratops.handlers.startup.memory_report): where
memory is held, and what grew since the previous report."""

from __future__ import annotations

import tracemalloc

import pytest

from stratops.handlers.startup import memory_report


def test_nothing_is_reported_when_tracemalloc_is_off():
    if tracemalloc.is_tracing():
        pytest.skip("run under PYTHONTRACEMALLOC")
    previous: list = []
    assert memory_report(previous) == [] and previous == []


def test_the_second_report_names_the_line_that_grew():
    tracemalloc.start(1)
    try:
        previous: list = []
        first = memory_report(previous)
        assert first[0].startswith("SIGUSR1:") and "MiB traced" in first[0]
        assert not any("since the previous USR1" in line for line in first)
        held = [bytes(1024) for _ in range(4096)]  # 4 MiB, allocated on this line
        second = memory_report(previous, places=5)
        assert len(held) == 4096
        [at] = [n for n, line in enumerate(second) if "since the previous USR1" in line]
        grown = second[at + 1]
        assert grown.startswith("grew +4.") and __file__ in grown, grown
    finally:
        tracemalloc.stop()


def test_the_gc_census_counts_what_each_collection_walks():
    """What a full collection would walk, for on-call at a pause: the tracked objects of each
    generation, and the frozen ones it skips."""
    import gc
    import re

    from stratops.handlers.startup import gc_census

    held = [[i] for i in range(30000)]
    m = re.fullmatch(r"gc: tracked objects young ([\d,]+), middle ([\d,]+), old ([\d,]+), frozen ([\d,]+)", gc_census())
    assert m, gc_census()
    young, middle, old, frozen = (int(x.replace(",", "")) for x in m.groups())
    assert young + middle + old >= len(held) and frozen == gc.get_freeze_count()
