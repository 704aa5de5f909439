"""``glm-realtime eval --ray``: the same eval, its conversations spread over a Ray cluster.

Only this module, its actors (``glm_gym.ray_actors``) and ``glm_gym.ray_connect`` import
Ray (the ``ray`` extra); the CLI imports it for ``--ray`` alone.

Layout (the driver is the ``glm-realtime eval`` process)::

    driver: Dispatcher ── pending deque of (WorkItem, attempt) ── Collector ── Report
              │  hands an item to any actor with a free slot, as soon as one frees
              ▼
    RunnerActor x N (one per CPU by default, each an ItemRunner with its own backend and
              │      ``slots`` concurrent conversations)
              ▼
    SessionCap (one actor): concurrent GLM sessions across the cluster <= the key's cap

Faults: a runner that dies (its process killed, its node lost) fails the calls in flight
with ``RayActorError``; each of those items goes back to the front of the queue with
``attempt + 1``, preferring another runner, and a fresh runner takes the dead one's place.
An item is given up after ``max_attempts`` (a failed record saying so). Ray's own task
retries are off, so only the dispatcher retries, and the Collector keeps one record per
(scenario, trial): nothing is counted twice, nothing is lost. Permits the dead runner
held in the SessionCap are released for it. A stop (Ctrl-C) cancels the calls in flight,
stops the runners and returns the partial report.

A model playing the caller (``--caller openai``) is opened by every runner, with the
driver's ``OPENAI_API_KEY`` in its environment; its configuration faults
(``CallerConfigError``: a refused key, an unknown model) end the eval as they do in
process, and the report sums what the runners' callers spent (``caller_usage``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayActorError, RayError

from glm_gym.callers import CallerConfigError
from glm_gym.evaluation import Collector, EvalError, EvalOptions, EvalRun, WorkItem
from glm_gym.ray_actors import RunnerActor, SessionCap, error_reason, raise_caller_fault
from glm_gym.ray_connect import connect, host_port
from glm_gym.records import ScenarioRecord
from glm_gym.report import Report

if TYPE_CHECKING:
    from glm_gym.scenarios import Scenario

__all__ = ["RayOptions", "run_ray_eval"]

NAMESPACE = "glm-realtime-eval"
# Seconds a stop waits for cancelled conversations and stopping runners before killing them.
STOP_GRACE_S = 10.0


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
        if self.address is not None:
            host_port(self.address)  # a malformed address is refused with the options


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
        # The keys reach the runners in their environment (runtime_env variables), never
        # in an argument, a record or a log line; without one they read their own.
        keys = {"GLM_API_KEY": api_key} if api_key else {}
        keys |= options.caller.key_env()
        self._runtime_env = {"env_vars": keys} if keys else None
        self._runners: dict[str, _Runner] = {}
        self._starting: dict[asyncio.Future[None], tuple[str, Any]] = {}
        self._started = 0
        self._replacements_left = actors * ray_options.max_attempts
        self.infos: list[dict[str, Any]] = []
        self.deaths = 0
        self.start_errors: list[str] = []
        self.setup_s = 0.0
        """Seconds until the first runners were all up (or had failed)."""
        self.caller_usage: dict[str, int] | None = None
        """What the callers of the runners that stopped spent, summed (None: the script)."""

    def _spawn(self) -> None:
        """Start one runner; it takes work as soon as its backend is up."""
        name = f"runner-{self._started}"
        self._started += 1
        handle = RunnerActor.options(  # type: ignore[attr-defined]
            num_cpus=self._ray.cpus_per_actor,
            max_concurrency=self._slots + 4,
            max_restarts=0,
            max_task_retries=0,
            runtime_env=self._runtime_env,
        ).remote(self._scenarios, self._options, name, self._cap)
        task = asyncio.ensure_future(self._started_runner(name, handle))
        self._starting[task] = (name, handle)

    async def _started_runner(self, name: str, handle: Any) -> None:
        try:
            info = await handle.start.remote()
        except RayError as exc:  # died, or its caller or backend could not start
            ray.kill(handle)
            raise_caller_fault(exc)
            self.deaths += 1
            self.start_errors.append(f"{name}: {error_reason(exc)}")
            return
        self._runners[name] = _Runner(handle, info)
        self.infos.append(info)

    async def run(self, items: list[WorkItem], stop: asyncio.Event, started: float) -> bool:
        """Run every item; True when all finished, False when stopped."""
        for _ in range(self._actors):
            self._spawn()
        pending = deque(_Ticket(item) for item in items)
        inflight: dict[asyncio.Future[Any], tuple[_Ticket, str, Any]] = {}
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while (pending or inflight) and not stop.is_set():
                self._fill(pending, inflight)
                if not inflight and not self._starting:
                    if not self.infos:
                        raise EvalError(f"no runner could start: {'; '.join(self.start_errors)}")
                    self._give_up(pending, "no runner is left to run it")
                    pending.clear()
                    break
                done, _ = await asyncio.wait(
                    [*inflight, *self._starting, stopper], return_when=asyncio.FIRST_COMPLETED
                )
                if stop.is_set():
                    break  # what finished meanwhile is kept by _stopped, nothing retried
                for future in done:
                    if future in self._starting:
                        self._starting.pop(future)
                        future.result()  # a caller's configuration fault ends the eval
                        if not self._starting and not self.setup_s:
                            self.setup_s = time.perf_counter() - started
                    else:
                        ticket, name, _ = inflight.pop(future)
                        await self._settle(future, ticket, name, pending)
            if pending or inflight:
                await self._stopped(inflight)
                return False
            return True
        except CallerConfigError:
            await self._stopped(inflight)  # the others' calls would fail alike: cancel them
            raise
        finally:
            stopper.cancel()
            await self._stop_all()

    async def _stopped(self, inflight: dict[asyncio.Future[Any], tuple[_Ticket, str, Any]]) -> None:
        """Cancel the calls in flight; keep the conversations that finished regardless.

        A call can finish while the stop is being seen (or before its cancel lands): its
        record goes into the partial report like any other. Nothing is retried now.
        """
        for future, (_, _, ref) in inflight.items():
            if not future.done():
                ray.cancel(ref)
        for task, (_, handle) in self._starting.items():
            if not task.done():  # a runner still starting has nothing to finish: no waiting
                task.cancel()
                ray.kill(handle)
        await asyncio.gather(*self._starting, return_exceptions=True)
        self._starting.clear()
        # A conversation that swallows its cancel would hold the stop until it ends: what
        # has not ended after the grace is dropped (its runner is killed right after).
        await _settled(inflight, STOP_GRACE_S)
        for future, (ticket, _, _) in inflight.items():
            if future.done() and not future.cancelled() and future.exception() is None:
                self._keep(future.result(), ticket)

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
            self._runner_died(name)
            if ticket.attempt >= self._ray.max_attempts:
                self._give_up([ticket], f"its runner died on each of {ticket.attempt} attempts")
            else:
                ticket.attempt += 1
                ticket.avoid.add(name)
                pending.appendleft(ticket)
            return
        except RayError as exc:  # the runner lives, but this conversation raised in it
            raise_caller_fault(exc)
            self._give_up([ticket], error_reason(exc))
            return
        self._keep(result, ticket)

    def _keep(self, result: dict[str, Any], ticket: _Ticket) -> None:
        record = ScenarioRecord.model_validate(result)
        self._collector.add(record.model_copy(update={"attempts": ticket.attempt}))

    def _runner_died(self, name: str) -> None:
        if self._runners.pop(name, None) is None:
            return  # already handled for another of its calls
        self.deaths += 1
        if self._cap is not None:
            self._cap.forget.remote(name)  # actor calls run in order: before any new acquire
        if self._replacements_left > 0:
            self._replacements_left -= 1
            self._spawn()

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
                    clock=self._options.clock,
                )
            )

    async def _stop_all(self) -> None:
        for task in self._starting:
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        runners = list(self._runners.values())
        self._runners.clear()
        stops = [asyncio.wrap_future(r.handle.stop.remote().future()) for r in runners]
        await _settled(stops)
        for runner in runners:
            ray.kill(runner.handle)
        for stopped in stops:
            if stopped.done() and not stopped.cancelled() and stopped.exception() is None:
                self._add_usage(stopped.result())

    def _add_usage(self, usage: dict[str, int] | None) -> None:
        if usage is not None:
            total = self.caller_usage or {}
            self.caller_usage = {k: total.get(k, 0) + v for k, v in usage.items()}


async def _settled(futures: Iterable[asyncio.Future[Any]], grace_s: float = STOP_GRACE_S) -> None:
    """Wait for ``futures`` to end, ``grace_s`` at most; their outcomes are read later."""
    waiting = set(futures)
    if waiting:
        await asyncio.wait(waiting, timeout=grace_s)
    for future in waiting:  # retrieved, so an exception left unread is not logged
        if future.done() and not future.cancelled():
            future.exception()


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
    run = EvalRun(scenarios, options, concurrency=concurrency, trials=trials, on_record=on_record)
    items = run.items
    owns_ray = connect(ray_options.address, num_cpus=ray_options.num_cpus, namespace=NAMESPACE)
    cap: Any = None
    try:
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = int(resources.get("CPU", 1) // ray_options.cpus_per_actor)
        actors = min(ray_options.actors or max(1, cpus), len(items))
        slots = max(1, math.ceil(concurrency / actors))
        cap = SessionCap.remote(options.max_sessions) if options.backend == "glm" else None  # type: ignore[attr-defined]
        dispatcher = _Dispatcher(
            list(scenarios),
            options,
            ray_options,
            run.collector,
            actors=actors,
            slots=slots,
            cap=cap,
            on_dispatch=on_dispatch,
            api_key=api_key,
        )
        complete = await dispatcher.run(items, stop or asyncio.Event(), run.started)
        cap_stats = await cap.stats.remote() if cap is not None else None
    finally:
        if cap is not None:
            ray.kill(cap)
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
    }
    if dispatcher.caller_usage is not None:
        meta["caller_usage"] = dispatcher.caller_usage
    return run.report(
        meta, concurrency=actors * slots, setup_s=dispatcher.setup_s, complete=complete
    )
