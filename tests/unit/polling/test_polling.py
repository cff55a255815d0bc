"""The shared poll loop: the first truthy value, None at the deadline or when told to stop."""

import time

from stratops.polling import poll


def test_returns_the_first_truthy_value():
    seen = iter([None, 0, "", "ready", "later"])
    assert poll(lambda: next(seen), timeout=5, interval=0) == "ready"


def test_none_after_the_deadline_and_the_check_ran_after_it():
    calls = []
    start = time.monotonic()
    assert poll(lambda: calls.append(time.monotonic()), timeout=0.05, interval=0.01) is None
    assert calls[-1] - start >= 0.05 and len(calls) >= 2


def test_stop_ends_the_wait_at_once():
    calls = []
    assert poll(lambda: calls.append(1), timeout=60, interval=0, stop=lambda: len(calls) >= 3) is None
    assert len(calls) == 3
