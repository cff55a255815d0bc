"""The monitors' worker threads (stratops.controller.threads.HandbackThreads): each call's result
or exception reaches its awaiting task, results that finish while the loop is busy are handed
back with one wake-up, and a long call holds no other back."""

from __future__ import annotations

import asyncio
import threading

import pytest

from stratops.controller.threads import HandbackThreads


def test_results_and_exceptions_reach_their_callers():
    async def main():
        threads = HandbackThreads(3)
        try:
            assert await asyncio.gather(*(threads.run(pow, i, 2) for i in range(50))) == [i * i for i in range(50)]
            with pytest.raises(ZeroDivisionError):
                await threads.run(divmod, 1, 0)
            assert await threads.run(str, 7) == "7"  # a thread that raised goes on working
        finally:
            threads.close()

    asyncio.run(main())


def test_results_finished_while_the_loop_is_busy_come_back_with_one_wake_up():
    """200 calls finish while the loop is busy in other work: one hand-back, not 200 (each a
    write to the loop's self-pipe with run_in_executor)."""
    done = threading.Event()
    finished = []

    def call(i: int) -> int:
        finished.append(i)
        if len(finished) == 200:
            done.set()
        return i

    async def main():
        threads = HandbackThreads(1)  # with more, two may both see no hand-back queued: one too many
        hand_backs = 0
        real = threads._hand_back

        def counted() -> None:
            nonlocal hand_backs
            hand_backs += 1
            real()

        threads._hand_back = counted  # type: ignore[method-assign]
        try:
            futures = [threads.run(call, i) for i in range(200)]
            assert done.wait(10)  # the loop is busy (blocked here) while every call finishes
            assert await asyncio.gather(*futures) == list(range(200))
            assert hand_backs == 1
        finally:
            threads.close()

    asyncio.run(main())


def test_a_long_call_holds_no_other_back():
    release = threading.Event()

    async def main():
        threads = HandbackThreads(2)
        try:
            long = threads.run(release.wait, 10)
            assert await asyncio.gather(*(threads.run(abs, -i) for i in range(20))) == list(range(20))
            assert not long.done()
            release.set()
            assert await long is True
        finally:
            release.set()
            threads.close()

    asyncio.run(main())


def test_closed_threads_end_after_the_calls_queued_before():
    async def main():
        threads = HandbackThreads(2)
        first = threads.run(abs, -1)
        running = list(threads._threads)
        threads.close()
        assert await first == 1
        return running

    for t in asyncio.run(main()):
        t.join(10)
        assert not t.is_alive()
