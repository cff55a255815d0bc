"""An evaluation's reads made ahead (stratops.monitors.prefetch, issue 21's async HTTP): for every
example monitor, on any answers, the reads found ahead are the ones the evaluation makes, in its
order, and the evaluation over their answers is the one it makes reading the source itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from cases import EXAMPLES, example
from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import StrategySpec
from stratops.monitors.evaluate import evaluate
from stratops.monitors.prefetch import Answered, Read, answered_loader, next_read
from stratops.monitors.prometheus import Series, SourceUnavailable, SourceUnreachable

NOW = datetime(2026, 12, 6, 9, tzinfo=UTC)
STRATEGY = StrategySpec.model_validate(example("strategy.yaml")["spec"])
MONITORS = sorted(p.name for p in (EXAMPLES / "monitors").glob("*.yaml"))
NAMES = ["spread", "momentum", "EURUSD", "GBPUSD"]

values = hs.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
labels = hs.one_of(hs.just({}), hs.sampled_from(NAMES).map(lambda n: {"feature": n}))
series = hs.lists(hs.tuples(labels, hs.lists(values, min_size=1, max_size=5)), min_size=1, max_size=3)
failure = hs.sampled_from([SourceUnavailable("no data"), SourceUnreachable("connection refused")])
baseline = hs.one_of(
    hs.dictionaries(hs.sampled_from(NAMES), hs.lists(values, min_size=2, max_size=20), min_size=1).map(json.dumps),
    hs.lists(values, min_size=2, max_size=20).map(json.dumps),
    hs.lists(hs.sampled_from(NAMES), min_size=1, max_size=5).map(json.dumps),
    hs.just("not json"),
    hs.just(KeyError("momentum")),
)


class Source:
    """A source and baseline store answering each read as drawn the first time it is made."""

    def __init__(self, data: Any, grouped: bool) -> None:
        self.data, self.grouped = data, grouped
        self.given: dict[Read, Any] = {}
        self.reads: list[Read] = []

    def answer(self, read: Read) -> Any:
        if read not in self.given:
            if read.kind == "baseline":
                self.given[read] = self.data.draw(baseline)
            else:
                got = self.data.draw(hs.one_of(series, failure))
                if isinstance(got, list):
                    stamp = (lambda i: NOW - timedelta(minutes=i)) if read.kind == "range" else (lambda i: NOW)
                    extra = {"strategy": "alpha"} if self.grouped else {}
                    got = [Series({**ls, **extra}, [(stamp(i), v) for i, v in enumerate(vs)]) for ls, vs in got]
                self.given[read] = got
        return self.given[read]

    def _made(self, read: Read) -> Any:
        self.reads.append(read)
        got = self.answer(read)
        if isinstance(got, BaseException):
            raise got
        return got

    def query(self, expr: str, at: datetime | None = None) -> list[Series]:
        return self._made(Read.query(expr, None if self.grouped else at))  # type: ignore[no-any-return]

    def query_range(self, expr: str, start: datetime, end: datetime, step_s: float) -> list[Series]:
        return self._made(Read.range(expr, start, end, step_s))  # type: ignore[no-any-return]

    def load(self, name: str, key: str) -> str:
        return self._made(Read.baseline(name, key))  # type: ignore[no-any-return]


def _spec(file: str, grouped: bool) -> MonitorSpec:
    doc = example(f"monitors/{file}")["spec"]
    if grouped:
        prom = {**doc["source"]["prometheus"], "groupBy": "strategy"}
        doc = {**doc, "strategy": "alpha", "source": {"prometheus": prom}}
    return MonitorSpec.model_validate(doc)


@pytest.mark.parametrize("grouped", [False, True], ids=["own query", "grouped"])
@pytest.mark.parametrize("file", MONITORS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=hs.data(), before=hs.integers(min_value=0, max_value=3))
def test_reads_made_ahead_are_the_evaluation_s_and_give_its_verdict(file: str, grouped: bool, data: Any, before: int):
    spec = _spec(file, grouped)
    src = Source(data, grouped)
    answers: dict[Read, Any] = {}
    while (read := next_read(spec, STRATEGY, answers, NOW, shared=grouped)) is not None:
        assert read not in answers and len(answers) < 8
        answers[read] = src.answer(read)
    ahead = evaluate(spec, STRATEGY, Answered(answers, shared=grouped), answered_loader(answers), NOW, before)
    itself = evaluate(spec, STRATEGY, src, src.load, NOW, before)
    assert list(answers) == src.reads
    assert ahead == itself


def test_a_read_not_made_ahead_falls_back_to_the_source():
    spec = _spec("06-infra-queue-backlog.yaml", grouped=False)
    q = spec.source.prometheus.query

    class Live:
        def query(self, expr, at=None):
            return [Series({}, [(NOW, 5000.0)])]

        def query_range(self, expr, start, end, step_s):
            raise AssertionError("not read")

    ev = evaluate(spec, STRATEGY, Answered({}, Live()), answered_loader({}, lambda n, k: "{}"), NOW, 0)
    assert ev.value == 5000.0 and next_read(spec, STRATEGY, {}, NOW) == Read.query(q, NOW)


# -- the source read on the event loop, against a real HTTP server on loopback ----------------------
class _Server:
    """A Prometheus API stand-in: each answer takes DELAY (the server's own work), and it counts
    the connections open at once and the queries per expression."""

    def __init__(self, delay: float = 0.05, status: int = 200, points: int = 0) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        self.lock, self.open, self.most, self.queries = threading.Lock(), 0, 0, {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                q = parse_qs(urlparse(self.path).query)
                with outer.lock:
                    outer.open += 1
                    outer.most = max(outer.most, outer.open)
                    expr = q["query"][0]
                    outer.queries[expr] = outer.queries.get(expr, 0) + 1
                threading.Event().wait(delay)  # the server's own work, not a synchronisation
                if self.path.startswith("/api/v1/query_range"):  # POINTS points, one a second
                    values = [[NOW.timestamp() - points + i, str(i)] for i in range(points)]
                    data = {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}
                else:
                    result = [{"metric": {"strategy": "alpha"}, "value": [NOW.timestamp(), "42"]}]
                    data = {"resultType": "vector", "result": result}
                body = json.dumps(
                    {"status": "success", "data": data}
                    if status == 200
                    else {"status": "error", "errorType": "internal", "error": "overloaded"}
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with outer.lock:
                    outer.open -= 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_source_on_the_event_loop_holds_at_most_its_connections():
    import asyncio

    from stratops.monitors.prometheus import AsyncPrometheus

    async def main(url: str) -> list[list[Series]]:
        prom = AsyncPrometheus(url, connections=3)
        try:
            return await asyncio.gather(*(prom.query(f"up{i}", NOW) for i in range(24)))
        finally:
            await prom.aclose()

    with _Server() as server:
        answers = asyncio.run(main(server.url))
        assert all(a[0].last == 42 and a[0].labels == {"strategy": "alpha"} for a in answers)
        assert 1 <= server.most <= 3 and sum(server.queries.values()) == 24


def test_grouped_reads_on_the_event_loop_share_one_query_and_its_failure():
    import asyncio

    from stratops.monitors.prometheus import AsyncPrometheus, AsyncSharedQueries

    async def main(url: str) -> tuple[list[Any], int]:
        prom, shared = AsyncPrometheus(url), AsyncSharedQueries()
        try:
            got = await asyncio.gather(
                *(shared.query(prom, "max by (strategy) (queue_depth)", 5.0) for _ in range(20)),
                return_exceptions=True,
            )
            return got, shared.queries
        finally:
            await prom.aclose()

    with _Server() as server:
        got, sent = asyncio.run(main(server.url))
        assert sent == 1 and server.queries == {"max by (strategy) (queue_depth)": 1}
        assert all(g[0].last == 42 for g in got)
    with _Server(status=503) as down:
        got, sent = asyncio.run(main(down.url))
        assert sent == 1 and sum(down.queries.values()) == 1
        assert all(isinstance(g, SourceUnreachable) and "overloaded" in str(g) for g in got)


def test_finding_the_reads_never_computes_the_statistic(monkeypatch: pytest.MonkeyPatch):
    """The reads are found on the event loop; the statistic (a KS over 10^6 points: half a second)
    is the worker's."""
    from stratops.monitors import statistics

    spec = _spec("07-model-ks.yaml", grouped=False)
    calls: list[object] = []
    real = statistics.ks
    monkeypatch.setattr(statistics, "ks", lambda *a: calls.append(a) or real(*a))
    answers: dict[Read, Any] = {}
    while (read := next_read(spec, STRATEGY, answers, NOW)) is not None:
        if read.kind == "baseline":
            answers[read] = json.dumps([0.1 * i for i in range(50)])
        else:
            answers[read] = [Series({}, [(NOW, 0.05 * i) for i in range(50)])]
    assert len(answers) == 2 and calls == []
    ev = evaluate(spec, STRATEGY, Answered(answers), answered_loader(answers), NOW, 0)
    assert not ev.stale and len(calls) == 1


def test_a_long_answer_is_decoded_off_the_event_loop(monkeypatch: pytest.MonkeyPatch):
    import asyncio
    import threading

    from stratops.monitors import prometheus
    from stratops.monitors.prometheus import AsyncPrometheus

    decoded_in: list[str] = []
    real = prometheus._parse
    monkeypatch.setattr(
        prometheus, "_parse", lambda d, e: decoded_in.append(threading.current_thread().name) or real(d, e)
    )

    async def main(url: str) -> tuple[list[Series], list[Series]]:
        prom = AsyncPrometheus(url)
        try:
            return await prom.query("up"), await prom.query_range("up", NOW - timedelta(hours=6), NOW, 1.0)
        finally:
            await prom.aclose()

    with _Server(delay=0, points=20_000) as server:
        short, [long] = asyncio.run(main(server.url))
    assert short[0].last == 42 and len(long.points) == 20_000
    # The short answer on the loop (the main thread here), the long one in another thread.
    assert decoded_in[0] == threading.main_thread().name and decoded_in[1] != decoded_in[0], decoded_in
