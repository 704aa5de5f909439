"""Against the real GLM cloud: runs only with GLM_API_KEY set (never in CI without one)."""

from __future__ import annotations

import os

import pytest

from realtime import events as ev
from realtime.connection import DEFAULT_URL, connect
from realtime.session import SessionConfig

pytestmark = pytest.mark.live

KEY = os.environ.get("GLM_API_KEY", "")


@pytest.mark.skipif(not KEY, reason="GLM_API_KEY is not set")
async def test_live_service_greets_and_accepts_a_full_session_update() -> None:
    async with connect(os.environ.get("GLM_REALTIME_URL", DEFAULT_URL), api_key=KEY) as conn:
        seen: list[str] = []
        async for event in conn:
            seen.append(event.type or "")
            if isinstance(event, ev.SessionCreated):
                await conn.send(ev.SessionUpdate(session=SessionConfig(instructions="Be brief.")))
            if isinstance(event, (ev.SessionUpdated, ev.ErrorEvent)):
                break
    assert "session.created" in seen
    assert seen[-1] == "session.updated", seen
