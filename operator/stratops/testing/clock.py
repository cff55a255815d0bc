"""A wall-clock step in an operator replica's peering, for the soak's nemesis ("clock-step").

What a step of a replica's clock endangers is peering: kopf judges a peer alive by comparing the
`lastseen` the peer wrote with its own wall clock, so two replicas whose clocks disagree by more
than the lifetime can both act. This steps exactly that clock: kopf's peering module reads
`datetime.datetime.now()` through a stand-in that adds the offset held in a file (seconds, read
at most every 0.2 s), which the nemesis writes while the replica runs. The monotonic clocks are
untouched, as by a real step of the wall clock.

Why not the whole process: libfaketime (Debian's 0.9.10) steps every wall clock, but with the
monotonic clock left alone its clock_nanosleep fails with EINVAL, so Python's time.sleep raises;
with the monotonic clock stepped too, a thread's timed wait sleeps the whole step.

A replica gets it with STRATOPS_TEST_PEERING_CLOCK_FILE and the sitecustomize site_dir() writes
on its PYTHONPATH.
"""

from __future__ import annotations

import datetime as _datetime
import time
import types
from pathlib import Path

ENV = "STRATOPS_TEST_PEERING_CLOCK_FILE"
_state: dict[str, float] = {"offset": 0.0, "read": float("-inf")}


def offset(path: Path) -> float:
    """The step written in PATH, in seconds (0 while it cannot be read)."""
    now = time.monotonic()
    if now - _state["read"] >= 0.2:
        _state["read"] = now
        try:
            _state["offset"] = float(path.read_text().strip() or 0)
        except (OSError, ValueError):
            _state["offset"] = 0.0
    return _state["offset"]


def stepped_datetime(path: Path) -> types.SimpleNamespace:
    """A stand-in for the `datetime` module as kopf's peering uses it: its `datetime.now()` is
    the wall clock plus the step in PATH; everything else is the real module's."""

    class SteppedClock:
        @staticmethod
        def now(tz: _datetime.tzinfo | None = None) -> _datetime.datetime:
            return _datetime.datetime.now(tz) + _datetime.timedelta(seconds=offset(path))

        @staticmethod
        def utcnow() -> _datetime.datetime:
            return _datetime.datetime.now(_datetime.UTC).replace(tzinfo=None) + _datetime.timedelta(
                seconds=offset(path)
            )

    names = {k: getattr(_datetime, k) for k in dir(_datetime) if not k.startswith("__")}
    return types.SimpleNamespace(**{**names, "datetime": SteppedClock})


#: The sitecustomize a replica runs at start: it puts the stand-in in kopf's peering module (the
#: harness wires it there; stratops' own modules outside the handlers never import kopf).
SITECUSTOMIZE = """\
import os
from pathlib import Path

if os.environ.get({env!r}):
    from kopf._core.engines import peering

    from stratops.testing import clock

    peering.datetime = clock.stepped_datetime(Path(os.environ[{env!r}]))
"""


def site_dir(where: Path) -> Path:
    """A directory holding that sitecustomize: put it on a replica's PYTHONPATH, with ENV naming
    the file the nemesis writes the step to."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "sitecustomize.py").write_text(SITECUSTOMIZE.format(env=ENV))
    return where


def step(path: Path, seconds: float) -> None:
    """Step the clock of the replica reading PATH to SECONDS off the wall clock (0: back)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{seconds}\n")
    tmp.replace(path)
