"""The threads the embedded backend's blocking work (decoding, VAD, ASR, TTS) runs on."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["BlockingWork"]

P = ParamSpec("P")
T = TypeVar("T")


class BlockingWork:
    """A thread pool for the sessions of one server, not asyncio's default one.

    The default pool has ``min(32, cores + 4)`` threads, 6 on 2 cores, so with a dozen
    sessions their calls queue behind each other even when the recognition itself runs in
    ASR worker processes and the threads only wait. A session has at most one VAD/ASR call
    and one TTS render in flight, so ``max_threads`` of twice the expected sessions never
    queues; threads are started only when needed.
    """

    def __init__(self, max_threads: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_threads, thread_name_prefix="glm-local")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a pool thread and wait for its result."""
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def shutdown(self) -> None:
        """Wait for the calls in flight to end, then stop the threads (blocking)."""
        self._pool.shutdown(wait=True)
