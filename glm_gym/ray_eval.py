"""``glm-realtime eval --ray``: the same eval, its conversations spread over a Ray cluster.

Only this module imports Ray (the ``ray`` extra); the CLI imports it for ``--ray`` alone.

Layout (the driver is the ``glm-realtime eval`` process)::

    driver: Dispatcher ── pending deque of (WorkItem, attempt) ── Collector ── Report
              │  hands an item to any actor with a free slot, as soon as one frees
              ▼
    RunnerActor x N (one per CPU by default, each an ItemRunner with its own backend and
              │      ``slots`` concurrent conversations)
              ▼
    SessionCap (one named actor): concurrent GLM sessions across the cluster <= the key's cap

Faults: a runner that dies (its process killed, its node lost) fails the calls in flight
with ``RayActorError``; each of those items goes back to the front of the queue with
``attempt + 1``, preferring another runner, and a fresh runner takes the dead one's place.
An item is given up after ``max_attempts`` (a failed record saying so). Ray's own task
retries are off, so only the dispatcher retries, and the Collector keeps one record per
(scenario, trial): nothing is counted twice, nothing is lost. Permits the dead runner
held in the SessionCap are released for it. A stop (Ctrl-C) cancels the calls in flight,
stops the runners and returns the partial report.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayActorError

from glm_gym.evaluation import (
    Collector,
    EvalError,
    EvalOptions,
    ItemRunner,
    WorkItem,
    build_report,
    work_items,
)
from glm_gym.records import ScenarioRecord
from glm_gym.report import Report

if TYPE_CHECKING:
    from glm_gym.scenarios import Scenario

__all__ = ["RayOptions", "SessionCap", "run_ray_eval"]

NAMESPACE = "glm-realtime-eval"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: ``address`` None starts a local Ray (``num_cpus`` of it)."""

    address: str | None = None
    actors: int | None = None
    max_attempts: int = 3
    num_cpus: int | None = None
    cpus_per_actor: float = 1.0

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise EvalError(f"--actors must be >= 1, got {self.actors}")
        if self.max_attempts < 1:
            raise EvalError(f"--max-attempts must be >= 1, got {self.max_attempts}")
        if not self.cpus_per_actor > 0:
            raise EvalError(f"CPUs per actor must be > 0, got {self.cpus_per_actor}")


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
        await self._runner.__aenter__()
        return {
            "name": self._name,
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            **self._runner.describe(),
        }

    async def run(self, item: WorkItem) -> dict[str, Any]:
        record = await self._runner.run(item)
        return record.model_dump(mode="json")

    async def stop(self) -> None:
        await self._runner.__aexit__(None, None, None)


@dataclass
class _Runner:
    handle: Any
    info: dict[str, Any]
    busy: int = 0


@dataclass
class _Ticket:
    item: WorkItem
    attempt: int = 1
    avoid: set[str] = field(default_factory=set)


class _Dispatcher:
    """Hands items to runners with free slots; retries what a dead runner held."""

    def __init__(
        self,
        scenarios: list[Scenario],
        options: EvalOptions,
        ray_options: RayOptions,
        collector: Collector,
        *,
        actors: int,
        slots: int,
        cap: Any,
        on_dispatch: Callable[[WorkItem, dict[str, Any]], None] | None,
        api_key: str | None,
    ) -> None:
        self._scenarios = scenarios
        self._options = options
        self._ray = ray_options
        self._collector = collector
        self._actors = actors
        self._slots = slots
        self._cap = cap
        self._on_dispatch = on_dispatch
        # The key reaches the runners in their environment (a runtime_env variable), never
        # in an argument, a record or a log line; without one they read their own.
        self._runtime_env = {"env_vars": {"GLM_API_KEY": api_key}} if api_key else None
        self._runners: dict[str, _Runner] = {}
        self._started = 0
        self._replacements_left = actors * ray_options.max_attempts
        self.infos: list[dict[str, Any]] = []
        self.deaths = 0
        self.setup_s = 0.0

    async def _spawn(self, count: int) -> None:
        names = [f"runner-{self._started + i}" for i in range(count)]
        self._started += count
        handles = [
            RunnerActor.options(  # type: ignore[attr-defined]
                name=None,
                num_cpus=self._ray.cpus_per_actor,
                max_concurrency=self._slots + 4,
                max_restarts=0,
                max_task_retries=0,
                runtime_env=self._runtime_env,
            ).remote(self._scenarios, self._options, name, self._cap)
            for name in names
        ]
        for name, handle in zip(names, handles, strict=True):
            try:
                info = await handle.start.remote()
            except RayActorError:
                self.deaths += 1
                continue
            self._runners[name] = _Runner(handle, info)
            self.infos.append(info)

    async def run(self, items: list[WorkItem], stop: asyncio.Event, started: float) -> bool:
        """Run every item; True when all finished, False when stopped."""
        await self._spawn(self._actors)
        self.setup_s = time.perf_counter() - started
        pending = deque(_Ticket(item) for item in items)
        inflight: dict[asyncio.Future[Any], tuple[_Ticket, str, Any]] = {}
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while pending or inflight:
                self._fill(pending, inflight)
                if not inflight:
                    self._give_up(pending, "no runner is left to run it")
                    break
                done, _ = await asyncio.wait(
                    [*inflight, stopper], return_when=asyncio.FIRST_COMPLETED
                )
                if stopper in done:
                    for _, _, ref in inflight.values():
                        ray.cancel(ref)
                    await asyncio.gather(*inflight, return_exceptions=True)
                    return False
                for future in done:
                    ticket, name, _ = inflight.pop(future)
                    await self._settle(future, ticket, name, pending)
            return True
        finally:
            stopper.cancel()
            await self._stop_all()

    def _fill(
        self,
        pending: deque[_Ticket],
        inflight: dict[asyncio.Future[Any], tuple[_Ticket, str, Any]],
    ) -> None:
        while pending:
            free = [(n, r) for n, r in self._runners.items() if r.busy < self._slots]
            if not free:
                return
            ticket = pending.popleft()
            fresh = [(n, r) for n, r in free if n not in ticket.avoid] or free
            name, runner = min(fresh, key=lambda nr: nr[1].busy)
            runner.busy += 1
            ref = runner.handle.run.remote(ticket.item)
            inflight[asyncio.wrap_future(ref.future())] = (ticket, name, ref)
            if self._on_dispatch is not None:
                self._on_dispatch(ticket.item, runner.info)

    async def _settle(
        self, future: asyncio.Future[Any], ticket: _Ticket, name: str, pending: deque[_Ticket]
    ) -> None:
        runner = self._runners.get(name)
        if runner is not None:
            runner.busy -= 1
        try:
            result = future.result()
        except RayActorError:
            await self._runner_died(name)
            if ticket.attempt >= self._ray.max_attempts:
                self._give_up([ticket], f"its runner died on each of {ticket.attempt} attempts")
            else:
                ticket.attempt += 1
                ticket.avoid.add(name)
                pending.appendleft(ticket)
            return
        record = ScenarioRecord.model_validate(result)
        self._collector.add(record.model_copy(update={"attempts": ticket.attempt}))

    async def _runner_died(self, name: str) -> None:
        if self._runners.pop(name, None) is None:
            return  # already handled for another of its calls
        self.deaths += 1
        if self._cap is not None:
            await self._cap.forget.remote(name)
        if self._replacements_left > 0:
            self._replacements_left -= 1
            await self._spawn(1)

    def _give_up(self, tickets: Sequence[_Ticket], why: str) -> None:
        by_id = {s.id: s for s in self._scenarios}
        for ticket in tickets:
            scenario = by_id[ticket.item.scenario_id]
            self._collector.add(
                ScenarioRecord(
                    scenario_id=scenario.id,
                    category=scenario.category,
                    trial=ticket.item.trial,
                    errors=[f"not run: {why}"],
                    attempts=ticket.attempt,
                    clock=self._options.clock,  # type: ignore[arg-type]
                )
            )

    async def _stop_all(self) -> None:
        runners = list(self._runners.values())
        self._runners.clear()
        stops = [asyncio.wrap_future(r.handle.stop.remote().future()) for r in runners]
        await asyncio.gather(*stops, return_exceptions=True)
        for runner in runners:
            ray.kill(runner.handle)


def _connect(ray_options: RayOptions) -> bool:
    """Connect to (or start) Ray; True when this call started it (and should shut it down)."""
    if ray.is_initialized():
        return False
    ray.init(
        address=ray_options.address,
        num_cpus=ray_options.num_cpus if ray_options.address is None else None,
        include_dashboard=False,
        namespace=NAMESPACE,
        log_to_driver=False,
    )
    return True


async def run_ray_eval(
    scenarios: Sequence[Scenario],
    options: EvalOptions,
    ray_options: RayOptions,
    *,
    concurrency: int,
    trials: int,
    on_record: Callable[[ScenarioRecord], None] | None = None,
    stop: asyncio.Event | None = None,
    on_dispatch: Callable[[WorkItem, dict[str, Any]], None] | None = None,
    api_key: str | None = None,
) -> Report:
    """Run every (scenario, trial) on Ray actors; the same report as ``run_eval``."""
    if concurrency < 1:
        raise EvalError(f"concurrency must be >= 1, got {concurrency}")
    items = work_items(scenarios, trials, options.seed)
    collector = Collector(total=len(items), on_record=on_record)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    owns_ray = _connect(ray_options)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1) // ray_options.cpus_per_actor)
        actors = min(ray_options.actors or max(1, cpus), len(items))
        slots = max(1, math.ceil(concurrency / actors))
        cap = SessionCap.remote(options.max_sessions) if options.backend == "glm" else None  # type: ignore[attr-defined]
        dispatcher = _Dispatcher(
            list(scenarios),
            options,
            ray_options,
            collector,
            actors=actors,
            slots=slots,
            cap=cap,
            on_dispatch=on_dispatch,
            api_key=api_key,
        )
        complete = await dispatcher.run(items, stop or asyncio.Event(), started)
        cap_stats = await cap.stats.remote() if cap is not None else None
        if cap is not None:
            ray.kill(cap)
    finally:
        if owns_ray:
            ray.shutdown()
    first = dispatcher.infos[0] if dispatcher.infos else {}
    meta = {
        **{k: v for k, v in first.items() if k not in ("name", "pid", "node")},
        "runner": "ray",
        "ray": {
            "address": ray_options.address or "local",
            "actors": actors,
            "slots_per_actor": slots,
            "nodes": len({i["node"] for i in dispatcher.infos}),
            "runner_deaths": dispatcher.deaths,
            "session_cap": cap_stats,
        },
        "concurrency": actors * slots,
        "started_at": started_at,
        "setup_s": dispatcher.setup_s,
        "wall_s": time.perf_counter() - started,
        "complete": complete,
        "planned": collector.total,
    }
    return build_report(collector.records, options=options, trials=trials, meta=meta)
