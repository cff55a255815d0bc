"""An evaluation's reads, found before it runs, so that they can be sent without a thread waiting.

`compute()` (stratops.monitors.evaluate) reads its source through a Fetcher, one read after the
other as its check needs them. `next_read()` runs it over the answers known so far and returns
the first read it has no answer for: the operator sends that one (asynchronously, on its event
loop), adds the answer and asks again, until the check has every answer it needs (it stops
there, before the statistic, which is computed in the worker). The
evaluation itself then runs in a worker over `Answered`, and returns what it would have returned
reading the source itself: the same reads, in the same order, answered the same (a property
test, tests/unit/monitors/test_prefetch.py). A read it still lacks (what it reads changed
meanwhile) falls back to the source, in the worker, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import StrategySpec
from stratops.monitors.evaluate import BaselineLoader, Fetcher, compute
from stratops.monitors.prometheus import Series

#: More reads than any check makes (excess cost: two ranges; a PSI: its baseline and a window).
MOST_READS = 8


@dataclass(frozen=True)
class Read:
    """One read of an evaluation: an instant query at AT, a range query, or a baseline key."""

    kind: Literal["query", "range", "baseline"]
    expr: str
    at: float | None = None
    start: float | None = None
    end: float | None = None
    step: float | None = None
    key: str | None = None  # a baseline's ConfigMap key (EXPR: the ConfigMap)

    @staticmethod
    def query(expr: str, at: datetime | None) -> Read:
        return Read("query", expr, at=at.timestamp() if at is not None else None)

    @staticmethod
    def range(expr: str, start: datetime, end: datetime, step_s: float) -> Read:
        return Read("range", expr, start=start.timestamp(), end=end.timestamp(), step=step_s)

    @staticmethod
    def baseline(configmap: str, key: str) -> Read:
        return Read("baseline", configmap, key=key)


#: What a read gave: its series (or a baseline's text), or the exception it raised.
Answers = dict[Read, Any]


class _Unanswered(Exception):
    def __init__(self, read: Read) -> None:
        super().__init__(read)
        self.read = read


class _EveryReadMade(Exception):
    pass


def _every_read_made(*_: object) -> Any:
    """The check's statistic, not computed here: that is the evaluation's work, in a worker
    (a KS over 10^6 points takes half a second, which the event loop must not)."""
    raise _EveryReadMade


def _answer(answers: Answers, read: Read) -> Any:
    if read not in answers:
        raise _Unanswered(read)
    got = answers[read]
    if isinstance(got, BaseException):
        raise got
    return got


class Answered:
    """A Fetcher over ANSWERS; a read without one goes to FALLBACK (None: it is asked for)."""

    def __init__(self, answers: Answers, fallback: Fetcher | None = None, shared: bool = False) -> None:
        #: SHARED: instant queries are a batch's, answered whatever their time (Batched).
        self.answers, self.fallback, self.shared = answers, fallback, shared
        self.fell_back = 0  # reads the fallback made

    def _try(self, read: Read, fall: Any) -> Any:
        if self.fallback is not None and read not in self.answers:
            self.fell_back += 1
            return fall()
        return _answer(self.answers, read)

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        read = Read.query(expr, None if self.shared else at)
        return self._try(read, lambda: self.fallback.query(expr, at))  # type: ignore[union-attr,no-any-return]

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        read = Read.range(expr, start, end, step_s)
        return self._try(  # type: ignore[no-any-return]
            read,
            lambda: self.fallback.query_range(expr, start, end, step_s),  # type: ignore[union-attr]
        )


def answered_loader(answers: Answers, fallback: BaselineLoader | None = None) -> BaselineLoader:
    """A BaselineLoader over ANSWERS (a missing key's KeyError included); else FALLBACK."""

    def load(name: str, key: str) -> str:
        read = Read.baseline(name, key)
        if fallback is not None and read not in answers:
            return fallback(name, key)
        return _answer(answers, read)  # type: ignore[no-any-return]

    return load


def next_read(
    spec: MonitorSpec, strategy: StrategySpec | None, answers: Answers, now: datetime, shared: bool = False
) -> Read | None:
    """The first read SPEC's check makes at NOW that ANSWERS lacks; None when it has them all
    (or stops before it needs another: no data, a bad baseline, a check it cannot make)."""
    try:
        compute(spec, strategy, Answered(answers, shared=shared), answered_loader(answers), now, _every_read_made)
    except _EveryReadMade:
        return None
    except _Unanswered as e:
        return e.read
    except Exception:  # the evaluation will raise it again, over the same answers, and report it
        return None
    return None
