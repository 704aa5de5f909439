"""The eval: every (scenario, trial) played by the caller, judged, recorded.

The caller is the scenario's script by default, or a model playing the brief
(``EvalOptions.caller``, see ``glm_gym.callers``).

Pieces, each usable alone (``glm_gym.ray_eval`` reuses all but ``run_eval``)::

    EvalOptions ──> ItemRunner (one Backend, many concurrent conversations)
                      run(WorkItem) -> ScenarioRecord
    work_items(scenarios, trials) ──> queue ──> N worker tasks ──> Collector ──> Report

``run_eval`` runs ``concurrency`` conversations at once in this process; a stop event
(Ctrl-C in the CLI) cancels the conversations in flight and returns the partial report of
those that finished (``meta.complete`` false). Every (scenario, trial) is recorded once:
the :class:`Collector` drops a second record of the same pair.

A conversation that fails (the environment raises, a turn times out badly) is a failed
record with its error, not a failed eval: one broken scenario does not hide the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from glm_gym.callers import CallerOptions
from glm_gym.records import Clock, ScenarioRecord
from glm_gym.report import Report
from realtime.lifecycle import StartClose

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from glm_gym.callers import Caller
    from glm_gym.scenarios import Scenario

__all__ = [
    "Collector",
    "EvalError",
    "EvalOptions",
    "EvalRun",
    "ItemRunner",
    "ScenarioRecord",
    "WorkItem",
    "build_report",
    "derive_seed",
    "run_eval",
    "work_items",
]

BackendName = Literal["local", "glm"]
Gate = Callable[[], "AbstractAsyncContextManager[Any]"]


class EvalError(ValueError):
    """Options or a selection that cannot run; the message says what is accepted."""


@dataclass(frozen=True)
class EvalOptions:
    """How conversations run. Picklable (Ray ships it to actors); never holds a key.

    ``realtime`` applies to the embedded backend (virtual clock unless set); GLM always
    runs at wall-clock pace. ``server_url`` plays every conversation through a gym server
    over HTTP instead of in this process. ``glm_url`` is the cloud websocket (None: the
    default); ``max_sessions`` caps concurrent GLM sessions per key; ``caller`` says who
    plays the caller (the script unless set).
    """

    backend: BackendName = "local"
    realtime: bool = False
    turn_timeout_s: float = 30.0
    seed: int = 0
    server_url: str | None = None
    glm_url: str | None = None
    max_sessions: int = 5
    caller: CallerOptions = field(default_factory=CallerOptions)

    def __post_init__(self) -> None:
        if self.backend not in ("local", "glm"):
            raise EvalError(f"backend must be 'local' or 'glm', got {self.backend!r}")
        if not self.turn_timeout_s > 0:
            raise EvalError(f"turn timeout must be > 0 s, got {self.turn_timeout_s}")
        if self.max_sessions < 1:
            raise EvalError(f"max sessions must be >= 1, got {self.max_sessions}")
        if self.server_url is not None:
            parts = urlsplit(self.server_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise EvalError(f"server URL must be http(s)://host:port, got {self.server_url!r}")

    @property
    def clock(self) -> Clock:
        return "virtual" if self.backend == "local" and not self.realtime else "wall"


@dataclass(frozen=True, order=True)
class WorkItem:
    """One conversation to run: a scenario and the trial number (0-based)."""

    scenario_id: str
    trial: int


def derive_seed(seed: int, item: WorkItem) -> int:
    """A per-conversation seed, the same in every process (sha256, not ``hash()``)."""
    digest = hashlib.sha256(f"{seed}:{item.scenario_id}:{item.trial}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def work_items(scenarios: Sequence[Scenario], trials: int, seed: int = 0) -> list[WorkItem]:
    """Every (scenario, trial) in the order they start: trial by trial, so a partial run
    covers many scenarios, and within a trial shuffled by ``seed`` (the same order in
    every process), so categories are spread over the run instead of in file order."""
    if trials < 1:
        raise EvalError(f"trials must be >= 1, got {trials}")
    items = [WorkItem(s.id, t) for t in range(trials) for s in scenarios]
    return sorted(items, key=lambda item: (item.trial, derive_seed(seed, item)))


class ItemRunner(StartClose):
    """Runs conversations on one backend it owns; ``run`` is safe to call concurrently.

    ``gate`` wraps each conversation (Ray passes the cluster-wide GLM session cap);
    ``api_key`` is used for GLM when given, else ``GLM_API_KEY`` from the environment.
    """

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        options: EvalOptions,
        *,
        api_key: str | None = None,
        gate: Gate | None = None,
        worker: str | None = None,
    ) -> None:
        self._scenarios = list(scenarios)
        self._index = {s.id: i for i, s in enumerate(self._scenarios)}
        self._options = options
        self._api_key = api_key
        self._gate: Gate = gate or nullcontext
        self._worker = worker
        self._stack = AsyncExitStack()
        self._backend: Any = None
        self._caller: Caller | None = None

    def describe(self, records: Sequence[ScenarioRecord] = ()) -> dict[str, Any]:
        """The backend's own description (name, clock, engine, caller voice; never a key).

        Through a gym server the server's backend says it, in the first reset's ``info``.
        """
        if self._backend is not None:
            return dict(self._backend.describe())
        reset = records[0].turns[0].info if records and records[0].turns else {}
        keys = ("backend", "clock", "engine", "caller_voice")
        return {"backend": "unknown", "engine": "unknown"} | {
            k: reset[k] for k in keys if k in reset
        }

    def caller_usage(self) -> dict[str, int] | None:
        """What the caller model spent so far (None for the script)."""
        return self._caller.usage() if self._caller is not None else None

    async def start(self) -> None:
        """Open the caller, then the backend (none through a gym server)."""
        from glm_gym.callers import open_caller

        # The caller first: a refused key or an unknown model fails before a backend starts.
        self._caller = await self._stack.enter_async_context(open_caller(self._options.caller))
        if self._options.server_url is None:
            self._backend = await self._stack.enter_async_context(self._open_backend())
        else:  # a server that is not there stops the eval, not each conversation in turn
            from glm_gym.client import GymClientError, server_info

            try:
                await asyncio.to_thread(server_info, self._options.server_url)
            except GymClientError as exc:
                raise EvalError(f"{exc}; start a gym server with: glm-realtime gym") from exc

    async def close(self) -> None:
        """Close the backend and the caller; safe to call more than once."""
        await self._stack.aclose()
        self._backend = None
        self._caller = None

    def _open_backend(self) -> AbstractAsyncContextManager[Any]:
        from glm_gym.backends import GLM_URL, GlmBackend, LocalBackend

        if self._options.backend == "local":
            return LocalBackend(realtime=self._options.realtime)
        key = self._api_key or os.environ.get("GLM_API_KEY")
        if not key:
            raise EvalError("the glm backend needs a key: set GLM_API_KEY or pass --api-key")
        url = self._options.glm_url or GLM_URL
        return GlmBackend(api_key=key, url=url, max_sessions=self._options.max_sessions)

    async def run(self, item: WorkItem) -> ScenarioRecord:
        """Play one conversation to its end and judge it; never raises for the env's faults."""
        if item.scenario_id not in self._index:
            raise EvalError(f"unknown scenario id {item.scenario_id!r}")
        scenario = self._scenarios[self._index[item.scenario_id]]
        from glm_gym.episode import play_episode

        if self._caller is None:
            raise RuntimeError("ItemRunner is not open: use it as an async context manager")
        seed = derive_seed(self._options.seed, item)
        started = time.perf_counter()
        async with self._gate():
            conversation, data_idx = self._conversation(scenario.id)
            caller = self._caller.begin(scenario, seed)
            record = await play_episode(conversation, data_idx, scenario, caller)
        return record.model_copy(
            update={
                "trial": item.trial,
                "seed": seed,
                "caller": self._caller.label,
                "worker": self._worker,
                "clock": _clock(record, self._options.clock),
                "wall_s": time.perf_counter() - started,
            }
        )

    def _conversation(self, scenario_id: str) -> tuple[Any, int]:
        """A fresh conversation for ``scenario_id`` and the data_idx that plays it."""
        if self._options.server_url is not None:
            from glm_gym.episode import HttpConversation

            url, timeout = self._options.server_url, self._options.turn_timeout_s
            return HttpConversation(url, scenario_id, timeout), 0
        from glm_gym.environment import VoiceEnv

        env = VoiceEnv(self._backend, self._scenarios, turn_timeout_s=self._options.turn_timeout_s)
        return env, self._index[scenario_id]


def _clock(record: ScenarioRecord, default: Clock) -> Clock:
    """The clock the environment said it measured on (a gym server's may differ)."""
    said = record.turns[0].info.get("clock") if record.turns else None
    return "virtual" if said == "virtual" else "wall" if said == "wall" else default


@dataclass
class Collector:
    """Records as they finish: one per (scenario, trial), later duplicates dropped."""

    total: int
    on_record: Callable[[ScenarioRecord], None] | None = None
    _records: dict[tuple[str, int], ScenarioRecord] = field(default_factory=dict)
    duplicates: int = 0

    def add(self, record: ScenarioRecord) -> bool:
        """Keep ``record`` unless its pair is already recorded; True when kept."""
        if record.key in self._records:
            self.duplicates += 1
            return False
        self._records[record.key] = record
        if self.on_record is not None:
            self.on_record(record)
        return True

    @property
    def records(self) -> list[ScenarioRecord]:
        return list(self._records.values())

    @property
    def done(self) -> int:
        return len(self._records)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self._records.values())


def build_report(
    records: Sequence[ScenarioRecord],
    *,
    options: EvalOptions,
    trials: int,
    meta: dict[str, Any],
) -> Report:
    """The report of these records, with the options and how the run went in ``meta``."""
    wall = meta.get("wall_s") or 0.0
    audio = sum(r.audio_s for r in records)
    full_meta: dict[str, Any] = {
        "backend": options.backend,
        "clock": options.clock,
        **options.caller.describe(),
        "options": asdict(options),
        "python": platform.python_version(),
        "scenarios_per_min": 60 * len(records) / wall if wall else None,
        "audio_s_per_wall_s": audio / wall if wall else None,
        "complete": True,
        **meta,
    }
    return Report(records=list(records), trials=trials, meta=full_meta)


class EvalRun:
    """One run's plan and bookkeeping, the same in process (``run_eval``) and on Ray
    (``glm_gym.ray_eval``): its (scenario, trial) items, the :class:`Collector`, when it
    started, and at the end the report with how the run went in its meta."""

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        options: EvalOptions,
        *,
        concurrency: int,
        trials: int,
        on_record: Callable[[ScenarioRecord], None] | None,
    ) -> None:
        if concurrency < 1:
            raise EvalError(f"concurrency must be >= 1, got {concurrency}")
        self.options = options
        self.trials = trials
        self.items = work_items(scenarios, trials, options.seed)
        self.collector = Collector(total=len(self.items), on_record=on_record)
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.started = time.perf_counter()

    def report(
        self, meta: dict[str, Any], *, concurrency: int, setup_s: float, complete: bool
    ) -> Report:
        """The report of the records collected; ``meta`` says what ran them."""
        run = {
            "concurrency": concurrency,
            "started_at": self.started_at,
            "setup_s": setup_s,
            "wall_s": time.perf_counter() - self.started,
            "complete": complete,
            "planned": self.collector.total,
        }
        records = self.collector.records
        return build_report(records, options=self.options, trials=self.trials, meta=meta | run)


async def run_eval(
    scenarios: Sequence[Scenario],
    options: EvalOptions,
    *,
    concurrency: int,
    trials: int,
    on_record: Callable[[ScenarioRecord], None] | None = None,
    stop: asyncio.Event | None = None,
    api_key: str | None = None,
) -> Report:
    """Run every (scenario, trial) in this process, ``concurrency`` at a time."""
    run = EvalRun(scenarios, options, concurrency=concurrency, trials=trials, on_record=on_record)
    items = deque(run.items)
    async with ItemRunner(scenarios, options, api_key=api_key, worker="local") as runner:
        setup_s = time.perf_counter() - run.started

        async def worker() -> None:
            while items:  # on stop the worker is cancelled (VoiceEnv raises it at once)
                run.collector.add(await runner.run(items.popleft()))

        workers = [
            asyncio.create_task(worker(), name=f"eval-worker-{i}")
            for i in range(min(concurrency, len(items)))
        ]
        complete = await _until_done_or_stopped(workers, stop or asyncio.Event())
        runner_kind = "server" if options.server_url else "in-process"
        meta = {"runner": runner_kind, **runner.describe(run.collector.records)}
        if (usage := runner.caller_usage()) is not None:
            meta["caller_usage"] = usage
    return run.report(meta, concurrency=concurrency, setup_s=setup_s, complete=complete)


async def _until_done_or_stopped(workers: list[asyncio.Task[None]], stop: asyncio.Event) -> bool:
    """Wait for the workers; on ``stop`` cancel them. True when all finished."""
    stopper = asyncio.create_task(stop.wait(), name="eval-stop")
    try:
        pending: set[asyncio.Future[Any]] = {*workers, stopper}
        while pending - {stopper} and not stopper.done():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopper}:
                task.result()  # a bug in a worker surfaces here, not silently
        return not stopper.done()
    finally:
        for task in (*workers, stopper):
            task.cancel()
        await asyncio.gather(*workers, stopper, return_exceptions=True)
