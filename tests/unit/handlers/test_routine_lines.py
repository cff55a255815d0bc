"""The operator's log keeps what says something: kopf's success line for the event handlers (one
per watch event of every object) and httpx's line per request are dropped, failures kept."""

from __future__ import annotations

import logging

import kopf
import pytest

from stratops.handlers import quiet_routine_lines, register


@pytest.fixture
def quiet():
    registry = kopf.OperatorRegistry()
    register(registry)
    objects, httpx = logging.getLogger("kopf.objects"), logging.getLogger("httpx")
    filters, level = list(objects.filters), httpx.level
    quiet_routine_lines(registry)
    yield objects
    objects.filters[:] = filters
    httpx.setLevel(level)


def _kept(logger: logging.Logger, level: int, msg: str) -> bool:
    record = logger.makeRecord(logger.name, level, __file__, 1, msg, (), None)
    return all(f.filter(record) for f in logger.filters)


def test_event_handlers_successes_are_dropped_and_everything_else_kept(quiet):
    assert not _kept(quiet, logging.INFO, "[desk/s0001-pnl] Handler 'monitor_seen' succeeded.")
    assert not _kept(quiet, logging.INFO, "Handler 'pod_changed' succeeded.")
    # A daemon's or a command handler's lines, and any failure, are kept.
    assert not _kept(quiet, logging.INFO, "[desk/i-1] Handler 'incident_command' succeeded.")  # an event handler too
    assert _kept(quiet, logging.INFO, "[desk/s] Handler 'strategy_daemon' succeeded.")
    assert _kept(quiet, logging.ERROR, "[desk/s] Handler 'monitor_seen' failed with an exception. Will retry.")
    assert _kept(quiet, logging.WARNING, "[desk/s] Handler 'monitor_seen' succeeded.")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
