"""Worker threads that hand their results back to the event loop in batches.

`loop.run_in_executor` wakes the loop once per call: a write to its self-pipe and a chain of
two futures, 50 to 150 µs of CPU per call on the 2-core bench machine (more threads waiting
for the GIL, more of it). The monitors' thousands of evaluations a minute each paid it. Here
the threads take calls one at a time from one queue, so a long call (a KS over a large window)
holds no other back, and put each result on one list; the loop is woken once for all the
results that finished while it was busy, not once per result.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: A job: the loop to hand the result back to, the call, and the future awaiting it.
_Job = tuple[asyncio.AbstractEventLoop, Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class HandbackThreads:
    """THREADS threads running calls for one event loop (started at the first call)."""

    def __init__(self, threads: int, name: str = "stratops-monitor") -> None:
        self.size, self.name = max(1, threads), name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[asyncio.Future[Any], bool, Any]] = collections.deque()
        # Whether a hand-back is queued on the loop. Read and set without a lock: a race only
        # queues one hand-back too many (it finds nothing), never one too few, since a
        # hand-back clears it before it takes the results.
        self._queued = False
        self._threads: list[threading.Thread] = []

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """FN(*ARGS) in a thread; its result (or exception) on the calling loop."""
        loop = asyncio.get_running_loop()
        if not self._threads:
            self._start()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, fn, args, fut))
        return fut

    def close(self) -> None:
        """The threads end once the calls queued before are done."""
        for _ in self._threads:
            self._jobs.put(None)
        self._threads = []

    def _start(self) -> None:
        for i in range(self.size):
            t = threading.Thread(target=self._work, name=f"{self.name}_{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, fn, args, fut = job
            try:
                self._done.append((fut, True, fn(*args)))
            except BaseException as e:  # handed to the awaiting task, as run_in_executor does
                self._done.append((fut, False, e))
            if not self._queued:
                self._queued = True
                try:
                    loop.call_soon_threadsafe(self._hand_back)
                except RuntimeError:  # the loop is closed: nobody awaits the result
                    return

    def _hand_back(self) -> None:
        self._queued = False
        while self._done:
            fut, ok, value = self._done.popleft()
            if fut.cancelled():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
