"""Where probes run: a thread pool of their own, a few at a time per namespace, timed from their start.

A probe is blocking SDK I/O (boto3, paramiko, requests) in a thread. In asyncio's default executor
(min(32, CPUs + 4) threads: 6 on a 2-core node) eight probes of one tenant's endpoints that never
answer took every thread, so a healthy Connection in another namespace waited behind them and was
then reported "timed out" although its own probe never ran. Here:

* probes have their own pool (``--probe-workers``, default 16), so neither kopf's nor the client's
  threads are taken;
* each namespace runs at most ``--probes-per-namespace`` (default 2) probes at a time: one tenant's
  slow endpoints hold at most that many threads, whatever it creates;
* the timeout counts from when the probe's thread starts, not from when it was queued;
* a probe that times out keeps its namespace's slot until its thread really ends, so timed-out probes
  can never add up beyond the namespace's share; a thread cannot be cancelled, so the probe's client is
  built with the probe timeout for each connect and read and two attempts, and opens no connection once
  the timeout has passed (controllers/connection.guarded_probe): the thread ends within about twice the
  timeout (tests/connectors/test_unreachable.py, a tarpit for every provider).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class ProbePool:
    def __init__(self, workers: int, per_namespace: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self.slots: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(per_namespace))
        self.lingering: set[asyncio.Task[None]] = set()

    async def run(self, namespace: str, probe: Callable[[], T], timeout: float) -> T:
        """``probe()`` in the pool within this namespace's share; TimeoutError ``timeout`` s after it started."""
        slot = self.slots[namespace]
        await slot.acquire()
        loop = asyncio.get_running_loop()
        started = asyncio.Event()

        def call() -> T:
            loop.call_soon_threadsafe(started.set)
            return probe()

        future = loop.run_in_executor(self.executor, call)
        try:
            await started.wait()
            result = await asyncio.wait_for(asyncio.shield(future), timeout)
        except BaseException:
            if not started.is_set():
                future.cancel()
            self._release_when_done(future, slot)
            raise
        slot.release()
        return result

    def _release_when_done(self, future: asyncio.Future[T], slot: asyncio.Semaphore) -> None:
        async def linger() -> None:
            with contextlib.suppress(BaseException):
                await future
            slot.release()

        task = asyncio.get_running_loop().create_task(linger())
        self.lingering.add(task)
        task.add_done_callback(self.lingering.discard)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
