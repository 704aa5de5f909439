"""The env registry behind the gym server: ids, one step at a time per env, the cap, the TTL.

One registry per server process, confined to the server's event loop (every method is
called there; nothing here blocks it). The "small global lock" of the AgentGym guide is the
loop itself: id allocation, the cap check and every change to the table are synchronous
sections with no ``await`` inside, so no other request can interleave with them. The
per-env lock is :attr:`_Entry.task`: an env runs at most one step or reset, in a task of
its own, and a second one is refused (409, :class:`EnvBusy`) rather than queued, because a
queued step would act on a conversation its sender has not seen yet.

One env's life::

    create ─► idle ◄──── step/reset done ────┐       (create with data_idx null: idle,
               │ step/reset                  │        no conversation until /reset)
               ▼                             │
             busy ───────────────────────────┘
               │ the env raised, or a step gave no answer in 2 x turn timeout + 30 s
               ▼
             failed ── reset ─► busy            (step answers 409 until then)

    any state ── close / idle TTL / shutdown ─► closed   (its id answers 404 "closed: why")

The step runs in its own task, so a client that hangs up mid-step does not cancel the
conversation half way: the step finishes and the env stays in a defined state. Closing an
env cancels its running step, then closes the env (which frees its backend session).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from glm_gym.errors import AtCapacity, BadRequest, EnvBusy, EnvFailure, EnvNotReady, UnknownEnv
from glm_gym.metrics import GymMetrics
from glm_gym.scenarios import UnknownScenarios, select_scenarios
from realtime.compat import TIMEOUT_ERRORS, timeout

if TYPE_CHECKING:
    from glm_gym.environment import StepResult, VoiceEnv
    from glm_gym.scenarios import Scenario

__all__ = ["Created", "EnvRegistry", "EnvView", "MakeEnv", "Outcome"]

logger = logging.getLogger(__name__)

MakeEnv = Callable[["Sequence[Scenario]", float], "VoiceEnv"]

# Ids of closed envs kept to tell "closed (why)" from "unknown" in a 404; oldest dropped.
_CLOSED_MEMORY = 10_000


@dataclass(frozen=True)
class Outcome:
    """A finished step or reset and the wall time spent inside the env."""

    result: StepResult
    env_s: float


@dataclass(frozen=True)
class Created:
    """A new env: its id, its first reset (None if not started) and its scenario count."""

    id: str
    outcome: Outcome | None
    data_len: int


@dataclass(frozen=True)
class EnvView:
    """A snapshot of one env for ``/observation`` and ``/detail``."""

    id: str
    result: StepResult | None
    scenario_id: str | None


@dataclass(eq=False)
class _Entry:
    id: str
    env: VoiceEnv
    scenarios: int
    turn_timeout_s: float
    last_used: float
    result: StepResult | None = None
    failure: str | None = None
    task: asyncio.Task[Outcome] | None = None


class EnvRegistry:
    """Live envs by id; an async context manager that runs the idle reaper.

    Args:
        make_env: builds one env for a scenario list and a turn timeout (no I/O).
        scenarios: the server's scenario set; ``/create`` may pick a subset.
        max_envs: live envs at most; ``/create`` beyond is a 503 with Retry-After.
        ttl_s: an env untouched for this long is closed with its session (0: never).
        turn_timeout_s: default seconds one assistant turn may take.
        clock: monotonic seconds (the reaper's and the tests' notion of idle time).
    """

    def __init__(
        self,
        make_env: MakeEnv,
        scenarios: Sequence[Scenario],
        *,
        max_envs: int = 128,
        ttl_s: float = 600.0,
        turn_timeout_s: float = 30.0,
        retry_after_s: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not scenarios:
            raise ValueError("the gym needs at least one scenario")
        if max_envs < 1:
            raise ValueError(f"max_envs must be at least 1, got {max_envs}")
        self._make_env = make_env
        self.scenarios = list(scenarios)
        self.max_envs = max_envs
        self.ttl_s = ttl_s
        self.turn_timeout_s = turn_timeout_s
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._table: dict[str, _Entry] = {}
        self._closed: OrderedDict[str, str] = OrderedDict()
        self._disposals: set[asyncio.Task[None]] = set()
        self._serial = itertools.count(1)
        self._stopping = False
        self._reaper: asyncio.Task[None] | None = None
        self.metrics = GymMetrics()
        self.metrics.gauge("glm_gym_live_envs", "Envs created and not closed.", lambda: self.live)

    @property
    def live(self) -> int:
        """Envs created and not closed."""
        return len(self._table)

    def busy(self, env_id: str) -> bool:
        """Whether a step or reset is running on a live env."""
        entry = self._table.get(env_id)
        return entry is not None and entry.task is not None

    async def __aenter__(self) -> EnvRegistry:
        if self.ttl_s > 0:
            self._reaper = asyncio.create_task(self._reap_forever(), name="gym-ttl-reaper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def create(
        self, names: Sequence[str] | None, data_idx: int | None, turn_timeout_s: float | None
    ) -> Created:
        """A new env on the chosen scenarios, started on ``data_idx`` unless it is None."""
        if self._stopping:
            raise AtCapacity("the gym server is shutting down", self._retry_after_s)
        try:
            chosen = select_scenarios(self.scenarios, names or ())
        except UnknownScenarios as exc:
            raise BadRequest(
                f"scenarios: {exc} (GET / lists how many scenarios there are)"
            ) from exc
        if data_idx is not None:
            _check_index(data_idx, len(chosen))
        if len(self._table) >= self.max_envs:
            self.metrics.rejected.inc()
            raise AtCapacity(
                f"all {self.max_envs} envs of this server are in use (the --max-envs cap): "
                "close one with POST /close, or retry later",
                self._retry_after_s,
            )
        env_id = f"{next(self._serial)}-{secrets.token_urlsafe(12)}"
        timeout = turn_timeout_s or self.turn_timeout_s
        entry = _Entry(env_id, self._make_env(chosen, timeout), len(chosen), timeout, self._clock())
        self._table[env_id] = entry
        self.metrics.created.inc()
        if data_idx is None:
            return Created(env_id, None, len(chosen))
        try:
            outcome = await self._run(entry, "reset", lambda: entry.env.reset(data_idx))
        except EnvFailure:
            if self._table.pop(env_id, None) is not None:
                self._forget(env_id, "its first reset failed")
                await self._dispose(entry, "failed")
            raise
        return Created(env_id, outcome, len(chosen))

    async def step(self, env_id: str, action: str) -> Outcome:
        """One action on a started env."""
        entry = self._entry(env_id)
        if entry.task is None and entry.failure is not None:
            raise EnvNotReady(
                f"env {env_id} failed in its last step or reset ({entry.failure}); "
                "start it again with POST /reset, or POST /close it"
            )
        if entry.task is None and entry.result is None:
            raise EnvNotReady(
                f"env {env_id} has no conversation yet; start one with POST /reset "
                '{"id": ..., "data_idx": N}'
            )
        return await self._run(entry, "step", lambda: entry.env.step(action))

    async def reset(self, env_id: str, data_idx: int) -> Outcome:
        """(Re)start the env's conversation on its scenario ``data_idx``."""
        entry = self._entry(env_id)
        _check_index(data_idx, entry.scenarios)
        return await self._run(entry, "reset", lambda: entry.env.reset(data_idx))

    def view(self, env_id: str) -> EnvView:
        """The last result of an env (counts as use for the TTL)."""
        entry = self._entry(env_id)
        scenario = entry.env.scenario
        return EnvView(env_id, entry.result, scenario.id if scenario else None)

    async def close(self, env_id: str) -> None:
        """Close an env: cancel its running step, free its session; the id stays dead."""
        entry = self._entry(env_id)
        del self._table[env_id]
        self._forget(env_id, "closed by a client")
        await self._dispose(entry, "client")

    async def reap_idle(self) -> list[str]:
        """Close every env idle for at least the TTL; the ids closed."""
        now = self._clock()
        if self.ttl_s <= 0:
            return []
        idle = [
            e for e in self._table.values() if e.task is None and now - e.last_used >= self.ttl_s
        ]
        for entry in idle:
            del self._table[entry.id]
            self._forget(entry.id, f"closed after {self.ttl_s:g} s without a request (the TTL)")
            logger.info("env %s idle for %.0f s: closing it", entry.id, now - entry.last_used)
        await asyncio.gather(*(self._dispose(e, "ttl") for e in idle))
        return [e.id for e in idle]

    async def aclose(self) -> None:
        """Refuse new envs, close every live one, wait for every close. Idempotent."""
        self._stopping = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        entries = list(self._table.values())
        self._table.clear()
        for entry in entries:
            self._forget(entry.id, "the server shut down")
        if entries:
            logger.info("closing %d envs", len(entries))
        await asyncio.gather(*(self._dispose(e, "shutdown") for e in entries))
        while self._disposals:
            await asyncio.wait(set(self._disposals))

    # -- internals -------------------------------------------------------------------

    def _entry(self, env_id: str) -> _Entry:
        entry = self._table.get(env_id)
        if entry is None:
            why = self._closed.get(env_id)
            if why is not None:
                raise UnknownEnv(f"env {env_id} is closed ({why}); create another with /create")
            raise UnknownEnv(f"unknown env id {env_id!r}: create an env with POST /create")
        entry.last_used = self._clock()
        return entry

    def _forget(self, env_id: str, why: str) -> None:
        self._closed[env_id] = why
        while len(self._closed) > _CLOSED_MEMORY:
            self._closed.popitem(last=False)

    async def _run(
        self, entry: _Entry, kind: str, call: Callable[[], Awaitable[StepResult]]
    ) -> Outcome:
        if entry.task is not None:
            raise EnvBusy(
                f"env {entry.id} is busy with another step or reset; send one at a time "
                "and wait for its answer"
            )
        # A step that outlives twice its turn timeout has hung. A reset is not guarded: it
        # may wait in line for a session slot (GLM's per-key cap) for as long as others talk.
        guard_s = 2 * entry.turn_timeout_s + 30 if kind == "step" else None
        task = asyncio.create_task(_timed(call, guard_s), name=f"gym-{kind}-{entry.id}")
        entry.task = task
        task.add_done_callback(functools.partial(self._settled, entry, kind))
        # The route may be cancelled (client gone); the step task is not, it settles itself.
        await asyncio.wait({task})
        if task.cancelled():
            raise UnknownEnv(f"env {entry.id} was closed during its {kind}")
        exc = task.exception()
        if exc is not None:
            raise EnvFailure(f"the environment failed during {kind}: {_describe(exc)}")
        return task.result()

    def _settled(self, entry: _Entry, kind: str, task: asyncio.Task[Outcome]) -> None:
        entry.task = None
        entry.last_used = self._clock()
        if task.cancelled():
            self.metrics.steps.labels(kind, "cancelled").inc()
            return
        exc = task.exception()
        if exc is not None:
            entry.failure = _describe(exc)
            logger.error("env %s: %s failed", entry.id, kind, exc_info=exc)
            self.metrics.steps.labels(kind, "failed").inc()
            return
        outcome = task.result()
        entry.result = outcome.result
        entry.failure = None
        self.metrics.steps.labels(kind, "ok").inc()
        if kind == "step":
            self.metrics.step_seconds.observe(outcome.env_s)

    async def _dispose(self, entry: _Entry, reason: str) -> None:
        # A task of its own, so a close whose request is cancelled still finishes.
        task = asyncio.create_task(self._close_env(entry, reason), name=f"gym-close-{entry.id}")
        self._disposals.add(task)
        task.add_done_callback(self._disposals.discard)
        await asyncio.shield(task)

    async def _close_env(self, entry: _Entry, reason: str) -> None:
        if entry.task is not None:
            entry.task.cancel()
            await asyncio.wait({entry.task})
        try:
            await entry.env.close()
        except Exception:
            logger.exception("env %s: close failed", entry.id)
        self.metrics.closed.labels(reason).inc()

    async def _reap_forever(self) -> None:
        period = min(max(self.ttl_s / 4, 0.05), 10.0)
        while True:
            await asyncio.sleep(period)
            await self.reap_idle()


async def _timed(call: Callable[[], Awaitable[StepResult]], guard_s: float | None) -> Outcome:
    start = time.perf_counter()
    try:
        async with timeout(guard_s):  # not wait_for: it can swallow a close's cancel
            result = await call()
    except TIMEOUT_ERRORS as exc:
        raise TimeoutError(
            f"no answer within {guard_s:g} s (twice the turn timeout + 30 s)"
        ) from exc
    return Outcome(result, time.perf_counter() - start)


def _check_index(data_idx: int, size: int) -> None:
    if data_idx >= size:
        raise BadRequest(
            f"data_idx {data_idx} is out of range: this env has {size} scenarios (0..{size - 1})"
        )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
