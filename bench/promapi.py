"""A stand-in for the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`) that answers
the 12 example monitors' queries (examples/monitors/*.yaml) for any `strategy="..."` label
with healthy data, so that 12,000 monitors evaluate without a real Prometheus holding 60 days
of history. The bench makes one strategy's bars stale (`POST /bench/age?strategy=S&age=600`)
to breach its bar-age monitor, reads when a breaching answer was first served
(`GET /bench/breach-read?strategy=S`), and how many queries each series received
(`GET /bench/counts`). Queries come as GET or as a POSTed form (Prometheus's Go client). A
desk-wide query (`strategy=~".+"`, a batch's) answers for each of the fleet's strategies
(`POST /bench/fleet?n=N`: s0000 to s{N-1}), each series labelled with its strategy.
Run as its own process: `python bench/promapi.py PORT [LATENCY]`; LATENCY (seconds, default 0)
is how long each query takes to answer, as a real Prometheus takes a few to tens of
milliseconds per query (the stand-in itself answers in about half a millisecond).

Healthy means: bar age 5 s (limit 2 x 1 m), health checks all up, order p95 0.1 s, queue 10,
signal p99 0.1 s, feature and signal samples on the baseline's quantiles (PSI and KS near 0),
primary = backup bars, daily PnL inside its band, slippage = expected, 10 names with equal
PnL shares, the baseline's top-5 features on top.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from statistics import NormalDist
from urllib.parse import parse_qs, urlparse

STRATEGY = re.compile(r'strategy="([^"]+)"')
#: A desk-wide query (a batch: source.prometheus.groupBy): every strategy of the fleet at once.
DESK = 'strategy=~".+"'
FEATURES = [f"f{i}" for i in range(10)]
SYMBOLS = [f"S{i}" for i in range(10)]
_normal = NormalDist()


def quantiles(n: int) -> list[float]:
    """N values on the standard normal's quantiles: any sample size matches the baseline."""
    return [_normal.inv_cdf((i + 0.5) / n) for i in range(n)]


def baselines() -> dict[str, str]:
    """The baseline ConfigMap the example monitors name (features.json, signal.json, top-features.json)."""
    q = quantiles(2000)
    return {
        "features.json": json.dumps(dict.fromkeys(FEATURES, q)),
        "signal.json": json.dumps(q),
        "top-features.json": json.dumps(FEATURES[:5]),
    }


class State:
    def __init__(self) -> None:
        self.age: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        #: When each strategy's bars were first served stale since its age was last set (wall
        #: clock): the breaching read a controller's reaction is timed from (bench/rollouts.py).
        self.breach_read: dict[str, float] = {}
        #: The fleet's strategies, which a desk-wide query answers for (POST /bench/fleet).
        self.fleet: list[str] = []
        self.lock = threading.Lock()

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1


def key_of(expr: str) -> str:
    """Which example series the query asks for (the bench counts evaluations by it)."""
    for k in (
        "breach_bar",
        "last_bar_timestamp",
        "feature_value",
        "bars_total",
        "healthcheck_up",
        "order_latency",
        "queue_depth",
        "signal_latency",
        "feature_importance",
        "daily_pnl_by_symbol",
        "daily_pnl",
        "realised_cost",
        "expected_cost",
        "strategy_signal",
    ):
        if k in expr:
            return k
    return "other"


def instant(expr: str, at: float, state: State) -> list[dict]:
    if DESK in expr:  # a batch's query: each strategy's series, labelled with it
        return [
            {**r, "metric": {**r["metric"], "strategy": name}}
            for name in state.fleet
            for r in instant(expr.replace(DESK, f'strategy="{name}"'), at, state)
        ]
    k = key_of(expr)
    m = STRATEGY.search(expr)
    strategy = m.group(1) if m else ""

    def one(v: float, **labels: str) -> dict:
        return {"metric": labels, "value": [at, repr(float(v))]}

    if k in ("last_bar_timestamp", "breach_bar"):
        age = state.age.get(strategy, 5.0) if k == "breach_bar" else 5.0  # only the bench's own monitor breaches
        if age > 120:
            with state.lock:
                state.breach_read.setdefault(strategy, time.time())
        return [one(age, symbol="EURUSD"), one(5.0, symbol="GBPUSD")]
    if k == "bars_total":
        return [one(100)]
    if k in ("order_latency", "signal_latency"):
        return [one(0.1)]
    if k == "queue_depth":
        return [one(10)]
    if k == "feature_importance":
        return [one(10 - i, feature=f) for i, f in enumerate(FEATURES[:5])]
    if k == "daily_pnl_by_symbol":
        return [one(100, symbol=s) for s in SYMBOLS]
    return []


def matrix(expr: str, start: float, end: float, step: float) -> list[dict]:
    k = key_of(expr)
    n = max(1, min(int((end - start) / step) + 1, 11000))
    ts = [start + i * step for i in range(n)]

    def series(values: list[float], **labels: str) -> dict:
        return {"metric": labels, "values": [[t, repr(float(v))] for t, v in zip(ts, values, strict=True)]}

    if k == "healthcheck_up":
        return [series([1.0] * n)]
    if k == "feature_value":
        q = quantiles(n)
        return [series(q, feature=f) for f in FEATURES]
    if k == "strategy_signal":
        return [series(quantiles(n))]
    if k == "daily_pnl":  # a spread history; the last days at its median
        return [series([(i % 11) - 5.0 for i in range(n - 5)] + [0.0] * min(5, n))]
    if k in ("realised_cost", "expected_cost"):
        return [series([1.0] * n)]
    return []


def serve(port: int, latency: float = 0.0) -> None:
    state = State()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response, no Nagle: headers and body written apart meet the client's
        # delayed ACK and cost ~40 ms per query on loopback, which capped the bench at
        # (workers / 40 ms) evaluations per second.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def _send(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # http.server's naming
            u = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            self._query(u.path, q)

        def _query(self, path: str, q: dict[str, str]) -> None:
            if path == "/bench/counts":
                with state.lock:
                    return self._send(200, dict(state.counts))
            if path == "/bench/breach-read":
                with state.lock:
                    return self._send(200, {"at": state.breach_read.get(q["strategy"])})
            if path == "/-/ready":
                return self._send(200, {})
            expr = q.get("query", "")
            state.count(key_of(expr))
            if latency > 0:
                time.sleep(latency)  # the source's own work (a real one's query time)
            if path == "/api/v1/query":
                data = {"resultType": "vector", "result": instant(expr, float(q.get("time", time.time())), state)}
            elif path == "/api/v1/query_range":
                data = {
                    "resultType": "matrix",
                    "result": matrix(expr, float(q["start"]), float(q["end"]), float(q["step"])),
                }
            else:
                return self._send(404, {"status": "error", "error": "not found"})
            self._send(200, {"status": "success", "data": data})

        def do_POST(self) -> None:
            u = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            form = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if u.path == "/bench/fleet":
                with state.lock:
                    state.fleet = [f"s{i:04d}" for i in range(int(q["n"]))]
                return self._send(200, {})
            if u.path == "/bench/age":
                with state.lock:
                    state.age[q["strategy"]] = float(q["age"])
                    state.breach_read.pop(q["strategy"], None)
                return self._send(200, {})
            if u.path.startswith("/api/v1/"):  # Prometheus's Go client POSTs its queries as a form
                return self._query(u.path, {**q, **{k: v[0] for k, v in parse_qs(form).items()}})
            self._send(404, {})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
