"""A TCP proxy on loopback between the operator and the kube-apiserver, which the harness can
slow or make refuse: the network faults of the soak (issue 22). It forwards bytes (TLS passes
through untouched, and the API server's certificate names 127.0.0.1, whatever the port).

- slow(seconds): every chunk is held that long before it is forwarded, both ways;
- refuse(): every open connection is cut and new ones are closed at once;
- heal(): back to forwarding as is.
"""

from __future__ import annotations

import socket
import threading
import time


class FaultyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._delay = 0.0
        self._refusing = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        threading.Thread(target=self._accept, name="faulty-proxy", daemon=True).start()
        return self

    def slow(self, seconds: float) -> None:
        with self._lock:
            self._delay, self._refusing = seconds, False

    def refuse(self) -> None:
        with self._lock:
            self._refusing, self._delay = True, 0.0
            cut, self._open = self._open, set()
        for s in cut:
            _close(s)

    def heal(self) -> None:
        with self._lock:
            self._delay, self._refusing = 0.0, False

    def stop(self) -> None:
        self._stopped.set()
        _close(self._listener)
        self.refuse()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                with self._lock:
                    delay, refusing = self._delay, self._refusing
                if refusing:
                    break
                if delay:
                    time.sleep(delay)  # the fault itself: a slow network
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            _close(src)
            _close(dst)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
