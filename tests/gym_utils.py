"""Helpers for the gym server tests: the app in process, or behind uvicorn on a real socket.

Every server here is the real one (FastAPI app, registry, VoiceEnv) on the embedded
backend; nothing is faked. No sleeps as synchronisation: waits poll a condition by
yielding to the event loop, under a deadline.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from glm_gym.backends import Backend, LocalBackend
from glm_gym.environment import VoiceEnv
from glm_gym.launch import listening_socket
from glm_gym.registry import MakeEnv
from glm_gym.scenarios import Scenario, load_scenarios
from glm_gym.server import GymSettings, create_app

DEADLINE_S = 60.0


def scenario_index(scenarios: list[Scenario], category: str) -> int:
    """The index of the first scenario of ``category``."""
    return next(i for i, s in enumerate(scenarios) if s.category == category)


@asynccontextmanager
async def asgi(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` with its lifespan running, and an httpx client over the ASGI transport."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gym") as client:
            yield client


@asynccontextmanager
async def in_process(
    backend: Backend, scenarios: list[Scenario] | None = None, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """A gym app on a shared ``backend``, running, with its client (see :func:`asgi`)."""
    app = create_app(GymSettings(**settings), backend=backend, scenarios=scenarios)
    async with asgi(app) as client:
        yield client, app


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL.

    The socket is bound and listening before the thread starts, so a client may connect at
    once (the kernel queues it until uvicorn accepts). Leaving stops uvicorn as SIGTERM
    would: the lifespan's shutdown runs and the thread ends.
    """
    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn")
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(DEADLINE_S)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


async def until(condition: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    """Yield to the loop until ``condition()`` holds (fails after ``deadline_s``)."""

    async def poll() -> None:
        # The conditions are counters of the code under test, which has no event to await.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), deadline_s)


def bundled() -> list[Scenario]:
    return load_scenarios()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend() -> AsyncIterator[Backend]:
    """One embedded backend for a test module, as one serves a whole server process."""
    async with LocalBackend() as shared:
        yield shared


@pytest.fixture(scope="module")
def scenarios() -> list[Scenario]:
    return bundled()


def real_envs(backend: Backend, env_class: type[VoiceEnv] = VoiceEnv) -> MakeEnv:
    """The registry's env factory, as the server builds it."""

    def make(subset: Sequence[Scenario], turn_timeout_s: float) -> VoiceEnv:
        return env_class(backend, subset, turn_timeout_s=turn_timeout_s)

    return make
