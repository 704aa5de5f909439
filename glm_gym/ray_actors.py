"""The Ray actors of ``glm-realtime eval --ray``: a runner per share of the work, one cap.

- :class:`RunnerActor` holds one :class:`~glm_gym.evaluation.ItemRunner` (its own backend)
  and runs up to its ``max_concurrency`` conversations at once (an async actor).
- :class:`SessionCap` is a counting semaphore for the whole cluster: every runner takes a
  permit for each GLM session, named by the runner, so the permits of a runner that died
  can be freed for it (``forget``).
- :func:`error_reason` and :func:`raise_caller_fault` read what a runner's call failed with.

Only ``glm_gym.ray_eval`` imports this module (the ``ray`` extra).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayError

from glm_gym.callers import CallerConfigError
from glm_gym.evaluation import EvalOptions, ItemRunner, WorkItem

if TYPE_CHECKING:
    from glm_gym.scenarios import Scenario

__all__ = ["RunnerActor", "SessionCap", "error_reason", "raise_caller_fault"]


@ray.remote(num_cpus=0)
class SessionCap:
    """A counting semaphore for the whole cluster, with permits held by named holders."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held: dict[str, int] = {}
        self._waiters: deque[tuple[str, asyncio.Future[None]]] = deque()
        self.max_in_use = 0

    def _in_use(self) -> int:
        return sum(self._held.values())

    async def acquire(self, holder: str) -> None:
        if self._in_use() >= self._limit or self._waiters:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((holder, waiter))
            await waiter  # granted by _grant, which counts the permit for us
            return
        self._take(holder)

    def _take(self, holder: str) -> None:
        self._held[holder] = self._held.get(holder, 0) + 1
        self.max_in_use = max(self.max_in_use, self._in_use())

    def _grant(self) -> None:
        while self._waiters and self._in_use() < self._limit:
            holder, waiter = self._waiters.popleft()
            if not waiter.done():
                self._take(holder)
                waiter.set_result(None)

    async def release(self, holder: str) -> None:
        if self._held.get(holder, 0) > 0:
            self._held[holder] -= 1
        self._grant()

    async def forget(self, holder: str) -> int:
        """Free every permit ``holder`` had (it died); how many there were."""
        freed = self._held.pop(holder, 0)
        self._waiters = deque((h, w) for h, w in self._waiters if h != holder)
        self._grant()
        return freed

    async def stats(self) -> dict[str, int]:
        return {"limit": self._limit, "in_use": self._in_use(), "max_in_use": self.max_in_use}


@ray.remote
class RunnerActor:
    """One ItemRunner (its own backend) serving ``run`` calls concurrently."""

    def __init__(
        self, scenarios: list[Scenario], options: EvalOptions, name: str, cap: Any
    ) -> None:
        self._name = name
        self._runner = ItemRunner(scenarios, options, gate=self._gate, worker=name)
        self._cap = cap

    @asynccontextmanager
    async def _gate(self) -> AsyncIterator[None]:
        if self._cap is None:
            yield
            return
        await self._cap.acquire.remote(self._name)
        try:
            yield
        finally:
            await self._cap.release.remote(self._name)

    async def start(self) -> dict[str, Any]:
        await self._runner.start()
        return {
            "name": self._name,
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            **self._runner.describe(),
        }

    async def run(self, item: WorkItem) -> dict[str, Any]:
        record = await self._runner.run(item)
        return record.model_dump(mode="json")

    async def stop(self) -> dict[str, int] | None:
        """Close the runner; what its caller model spent (None for the script)."""
        usage = self._runner.caller_usage()
        await self._runner.close()
        return usage


def raise_caller_fault(exc: RayError) -> None:
    """Raise the caller's configuration fault that ``exc`` carries (every conversation
    would fail alike: the eval stops with it, as in process)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, CallerConfigError):
        raise cause from None


def error_reason(exc: BaseException) -> str:
    """The first line of a Ray error (its cause's type and message, without the traceback)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
