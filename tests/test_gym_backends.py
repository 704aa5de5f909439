"""Backends: GLM's per-key session cap queues conversations beyond it; bad settings are
refused with a message naming them; the key never shows in what a backend reports."""

from __future__ import annotations

import asyncio

import pytest

from glm_gym.backends import GlmBackend
from realtime.errors import ConfigError

KEY = "gym-id.gym-secret"


async def test_sessions_beyond_the_cap_wait_in_line_and_go_in_order() -> None:
    backend = GlmBackend(api_key=KEY, max_sessions=2)
    order: list[str] = []
    release = asyncio.Event()
    asking = {name: asyncio.Event() for name in "abc"}

    async def conversation(name: str) -> None:
        asking[name].set()  # runs on until it blocks: inside the session, or in line
        async with backend.session():
            order.append(name)
            await release.wait()

    tasks = [asyncio.create_task(conversation(n), name=f"test:{n}") for n in "abc"]
    for event in asking.values():
        await event.wait()
    assert (backend.live_sessions, backend.waiting_sessions) == (2, 1)
    assert order == ["a", "b"]
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    assert (backend.live_sessions, backend.waiting_sessions, backend.sessions_opened) == (0, 0, 3)


async def test_a_cancelled_wait_gives_no_slot_away() -> None:
    backend = GlmBackend(api_key=KEY, max_sessions=1)
    entered = asyncio.Event()

    async def hold() -> None:
        async with backend.session():
            entered.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold(), name="test:holder")
    await entered.wait()
    asking = asyncio.Event()

    async def wait_in_line() -> None:
        asking.set()
        async with backend.session():
            raise AssertionError("the slot is held")

    waiter = asyncio.create_task(wait_in_line(), name="test:waiter")
    await asking.wait()
    assert backend.waiting_sessions == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert backend.waiting_sessions == 0
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)
    assert backend.live_sessions == 0
    async with backend.session():  # the slot is free again
        assert backend.live_sessions == 1


def test_the_node_gets_the_key_but_reports_never_show_it() -> None:
    backend = GlmBackend(api_key=KEY, url="wss://glm.example/api/paas/v4/realtime")
    props = backend.node_properties()
    assert props["api_key"] == KEY
    assert (props["base_uri"], props["path"]) == ("wss://glm.example", "/api/paas/v4/realtime")
    assert KEY not in repr(backend) and KEY not in str(backend.describe())
    assert backend.describe()["clock"] == "wall"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api_key": " "}, "needs an api_key"),
        ({"api_key": KEY, "url": "https://glm.example/x"}, "ws"),
        ({"api_key": KEY, "max_sessions": 0}, "max_sessions must be at least 1"),
    ],
)
def test_bad_settings_are_refused_naming_them(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GlmBackend(**kwargs)  # type: ignore[arg-type]
