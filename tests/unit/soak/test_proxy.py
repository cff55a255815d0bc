"""The soak's network faults (stratops.testing.proxy), on real loopback sockets: bytes pass as
they are, a slow proxy holds them, a refusing one cuts what is open and closes what comes."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from stratops.testing.proxy import FaultyProxy


@pytest.fixture
def echo():
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return

            def loop(c: socket.socket = conn) -> None:
                with c:
                    while data := c.recv(4096):
                        c.sendall(data)

            threading.Thread(target=loop, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _roundtrip(port: int, payload: bytes = b"ping", timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(payload)
        return c.recv(4096)


def _cut(c: socket.socket, send: bytes | None = None) -> bool:
    """Whether C's peer is gone: end of stream, or a reset (a close with data unread)."""
    try:
        if send is not None:
            c.sendall(send)
        return c.recv(16) == b""
    except OSError:
        return True


def test_bytes_pass_as_they_are_slow_and_healed(echo):
    proxy = FaultyProxy("127.0.0.1", echo).start()
    try:
        assert _roundtrip(proxy.port) == b"ping"
        proxy.slow(0.3)
        began = time.monotonic()
        assert _roundtrip(proxy.port, b"slow") == b"slow"
        assert time.monotonic() - began >= 0.6, "held both ways"
        proxy.heal()
        assert _roundtrip(proxy.port, b"again") == b"again"
    finally:
        proxy.stop()


def test_refusing_cuts_open_connections_and_closes_new_ones(echo):
    proxy = FaultyProxy("127.0.0.1", echo).start()
    try:
        open_one = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        open_one.sendall(b"x")
        assert open_one.recv(16) == b"x"
        proxy.refuse()
        assert _cut(open_one), "an open connection (a watch) is cut"
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as late:
            assert _cut(late, b"y"), "a new one is closed at once"
        proxy.heal()
        assert _roundtrip(proxy.port, b"z") == b"z"
    finally:
        proxy.stop()
