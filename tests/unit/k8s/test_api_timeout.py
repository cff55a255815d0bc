"""The operator's API requests are bounded (stratops.k8s.client.bounded): an API server that
accepts the connection and never answers (half-open, failing over) fails the request instead
of holding the reconcile's thread for good. A real socket on loopback plays that server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import urllib3
from kubernetes import client

from stratops.k8s.client import bounded


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections, reads nothing, answers nothing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in accepted:
        c.close()
    srv.close()


def _api(host: str) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = host
    cfg.retries = False  # urllib3 retries would multiply the wait
    return client.ApiClient(cfg)


def _outcome(api: client.ApiClient, within: float) -> BaseException | None:
    """What reading a namespace ends with, if it ends within WITHIN seconds (None: it did not)."""
    result: list[BaseException] = []

    def call() -> None:
        try:
            client.CoreV1Api(api).read_namespace("fx")
        except BaseException as e:  # the outcome is the point
            result.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(within)
    return result[0] if result else None


def test_a_silent_api_server_fails_the_request(silent_server: str) -> None:
    outcome = _outcome(bounded(_api(silent_server), connect=2, read=1), within=30)
    assert isinstance(outcome, urllib3.exceptions.ReadTimeoutError | urllib3.exceptions.MaxRetryError), outcome


def test_without_a_bound_the_request_waits(silent_server: str) -> None:
    """Why the bound exists: the kubernetes client's default is to wait forever."""
    assert _outcome(_api(silent_server), within=3) is None


def test_a_request_with_its_own_timeout_keeps_it(silent_server: str) -> None:
    api = bounded(_api(silent_server), connect=2, read=600)
    result: list[BaseException] = []

    def call() -> None:
        try:
            client.CoreV1Api(api).read_namespace("fx", _request_timeout=1)
        except BaseException as e:
            result.append(e)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(30)
    assert result and isinstance(result[0], urllib3.exceptions.ReadTimeoutError | urllib3.exceptions.MaxRetryError)
