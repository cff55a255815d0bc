"""The Prometheus HTTP API as a monitor source (instant and range queries).

Unreachable, an error answer, or an empty result raise `SourceUnavailable`: the evaluation
turns it into a stale-data finding, never a pass.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx


class SourceUnavailable(RuntimeError):
    """The source could not answer, or answered with no data."""


class NoSeries(SourceUnavailable):
    """The source answered with no series (or none of this strategy's): nothing exported or
    scraped yet, or a query that matches nothing."""


class SourceUnreachable(SourceUnavailable):
    """The source itself did not answer (connection, timeout, a 5xx, no JSON): unlike a query
    with no data, every monitor reading it sees the same, so it is one root cause for the desk."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[datetime, float]]

    @property
    def last(self) -> float:
        return self.points[-1][1]


class Answer(list[Series]):
    """A query's series, indexed by a label's value on first asking (`by`): a batch's answer is
    read by each of its monitors for its own strategy, and a scan of every series per monitor
    made the fan-out quadratic in the batch (1,000 strategies: 10^7 label looks a period)."""

    def by(self, label: str) -> dict[str | None, list[Series]]:
        """The series per value of LABEL, each without that label (what the strategy's own
        query would have given), in the answer's order. Shared by every reader: never mutated."""
        index: dict[str, dict[str | None, list[Series]]] = self.__dict__.setdefault("_by", {})
        if label not in index:  # two threads may both build it: the same index, either kept
            groups: dict[str | None, list[Series]] = {}
            for s in self:
                value = s.labels.get(label)
                stripped = s if value is None else Series({k: v for k, v in s.labels.items() if k != label}, s.points)
                groups.setdefault(value, []).append(stripped)
            index[label] = groups
        return index[label]


class SharedQueries:
    """Query results shared by the monitors of one source (source.prometheus.groupBy): one query
    per expression (and, for a range, window: a grouped monitor's windows end on their step's
    grid, stratops.monitors.evaluate) at most every MAX_AGE, however many
    monitors read it, and one at a time (the others wait for it rather than send their own). A
    failure is shared the same way: a source that is down costs one timeout per MAX_AGE, not one
    per monitor. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._results: dict[tuple[Any, ...], tuple[float, list[Series] | SourceUnavailable]] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self.queries = 0  # sent to the source
        self.reads = 0  # answered, from the source or shared

    def query(self, fetch: Any, expr: str, max_age: float) -> list[Series]:
        return self._shared((expr,), lambda: fetch.query(expr), max_age)

    def query_range(
        self, fetch: Any, expr: str, start: datetime, end: datetime, step_s: float, max_age: float
    ) -> list[Series]:
        key = (expr, start.timestamp(), end.timestamp(), step_s)
        return self._shared(key, lambda: fetch.query_range(expr, start, end, step_s), max_age)

    def _shared(self, key: tuple[Any, ...], send: Callable[[], list[Series]], max_age: float) -> list[Series]:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
            self.reads += 1
        with lock:
            hit = self._results.get(key)
            if hit is None or self.clock() - hit[0] >= max_age:
                try:
                    result: list[Series] | SourceUnavailable = send()
                except SourceUnavailable as e:
                    result = e
                with self._lock:
                    self.queries += 1
                    if len(self._results) >= 4096:  # windows move on: start over
                        self._results.clear()
                        self._locks = {key: lock}
                    self._results[key] = hit = (self.clock(), result)
        if isinstance(hit[1], SourceUnavailable):
            raise hit[1]
        return hit[1]


class Batched:
    """The Fetcher of a grouped monitor: its queries go through the source's SharedQueries."""

    def __init__(self, fetch: Any, shared: SharedQueries, max_age: float) -> None:
        self.fetch, self.shared, self.max_age = fetch, shared, max_age

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        return self.shared.query(self.fetch, expr, self.max_age)

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        return self.shared.query_range(self.fetch, expr, start, end, step_s, self.max_age)


class Prometheus:
    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        connections: int = 8,
    ) -> None:
        self.url = url.rstrip("/")
        # At most CONNECTIONS open to the source, however many monitors read it: a desk's
        # thousands of evaluations queue here rather than open as many sockets to one Prometheus.
        self._client = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            trust_env=False,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            r = self._client.get(path, params=params)
        except httpx.HTTPError as e:
            raise SourceUnreachable(f"Prometheus at {self.url} unreachable: {type(e).__name__}: {e}") from e
        return _data(self.url, r.status_code, r.json)

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        """Instant query: one point per series. An empty result raises SourceUnavailable."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        data = self._get("/api/v1/query", params)
        return _parse(data, expr)

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        data = self._get(
            "/api/v1/query_range",
            {
                "query": expr,
                "start": f"{start.timestamp():.3f}",
                "end": f"{end.timestamp():.3f}",
                "step": f"{step_s:g}",
            },
        )
        return _parse(data, expr)


#: An answer longer than this (bytes) is decoded off the event loop: a few milliseconds of it.
PARSED_ON_THE_LOOP = 64 * 1024


class AsyncPrometheus:
    """The same source read on the event loop: an evaluation waiting for its answer holds no
    worker thread, so a slow source delays its own monitors' answers, never the evaluation of the
    others. At most CONNECTIONS open to it at once. aiohttp (kopf's own HTTP client), not
    httpx's AsyncClient: measured here, about 0.2 ms of CPU per query where httpx's took 1.4 to
    2.0 ms (its sync client 0.56), which at a desk's hundreds of queries a second was most of a core.
    Create it on the loop that uses it."""

    def __init__(self, url: str, timeout: float = 10.0, token: str | None = None, connections: int = 8) -> None:
        import aiohttp

        self.url = url.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )

    async def aclose(self) -> None:
        await self._session.close()

    async def _get(self, path: str, params: dict[str, str], expr: str) -> list[Series]:
        import aiohttp

        try:
            async with self._session.get(self.url + path, params=params) as r:
                status, body = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise SourceUnreachable(f"Prometheus at {self.url} unreachable: {type(e).__name__}: {e}") from e
        if len(body) > PARSED_ON_THE_LOOP:  # a long range: decoded in a thread, not on the loop
            return await asyncio.to_thread(lambda: _parse(_data(self.url, status, lambda: json.loads(body)), expr))
        return _parse(_data(self.url, status, lambda: json.loads(body)), expr)

    async def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        return await self._get("/api/v1/query", params, expr)

    async def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        params = {"query": expr, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}"}
        return await self._get("/api/v1/query_range", {**params, "step": f"{step_s:g}"}, expr)


class AsyncSharedQueries:
    """SharedQueries on the event loop: one query per expression (and window) at most
    every MAX_AGE, and the evaluations that ask while it is in flight await it rather than send
    their own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._results: dict[tuple[Any, ...], tuple[float, asyncio.Future[list[Series]]]] = {}
        self.queries = 0
        self.reads = 0

    async def query(self, fetch: AsyncPrometheus, expr: str, max_age: float) -> list[Series]:
        return await self._shared((expr,), lambda: fetch.query(expr), max_age)

    async def query_range(
        self, fetch: AsyncPrometheus, expr: str, start: datetime, end: datetime, step_s: float, max_age: float
    ) -> list[Series]:
        key = (expr, start.timestamp(), end.timestamp(), step_s)
        return await self._shared(key, lambda: fetch.query_range(expr, start, end, step_s), max_age)

    async def _shared(
        self, key: tuple[Any, ...], send: Callable[[], Coroutine[Any, Any, list[Series]]], max_age: float
    ) -> list[Series]:
        self.reads += 1
        hit = self._results.get(key)
        if hit is None or (hit[1].done() and self.clock() - hit[0] >= max_age):
            if len(self._results) >= 4096:  # windows move on: start over
                self._results.clear()
            task = asyncio.ensure_future(send())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
            self._results[key] = hit = (self.clock(), task)
            self.queries += 1
        # Shielded: one evaluation cancelled (its replica paused) does not cancel the others' read.
        return await asyncio.shield(hit[1])


def _data(url: str, status: int, decoded: Callable[[], Any]) -> dict[str, Any]:
    """The data of a Prometheus API answer (its STATUS and DECODED body), or why there is none."""
    try:
        body = decoded()
    except ValueError as e:
        raise SourceUnreachable(f"Prometheus at {url} answered {status} with no JSON") from e
    if not isinstance(body, dict):
        raise SourceUnreachable(f"Prometheus at {url} answered {status} with no JSON object")
    if status >= 500 and body.get("errorType") != "bad_data":
        raise SourceUnreachable(f"Prometheus at {url} failed ({status}): {body.get('error', '')}")
    if status != 200 or body.get("status") != "success":
        raise SourceUnavailable(f"Prometheus query failed ({status}): {body.get('error', 'unknown error')}")
    data: dict[str, Any] = body["data"]
    return data


def _ts(v: float) -> datetime:
    return datetime.fromtimestamp(float(v), tz=UTC)


class _Times(dict[Any, datetime]):
    """One answer's sample times as datetimes, each built once: the series of a desk-wide range
    query share their step grid (1,000 series of 60 points: 60 datetimes, not 60,000, which
    were a seventh of the operator's time holding the GIL at 1,000 strategies)."""

    def __missing__(self, v: Any) -> datetime:
        t = self[v] = _ts(v)
        return t


def _parse(data: dict[str, Any], expr: str) -> list[Series]:
    kind, result = data.get("resultType"), data.get("result") or []
    out = Answer()
    at = _Times()
    if kind == "scalar":
        out.append(Series({}, [(at[result[0]], float(result[1]))]))
    elif kind == "vector":
        out += [Series(r["metric"], [(at[r["value"][0]], float(r["value"][1]))]) for r in result]
    elif kind == "matrix":
        out += [Series(r["metric"], [(at[t], float(v)) for t, v in r["values"]]) for r in result]
    if not out or all(not s.points for s in out):
        raise NoSeries(f"no data for {expr!r}")
    return out
