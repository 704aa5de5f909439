"""Cancelling a task inside VoiceEnv.step or reset, on the embedded backend (real server,
real audio): it ends with CancelledError, and the env is left over, closable, with no task
of its call left running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from glm_gym.backends import Backend, LocalBackend
from glm_gym.collector import Collector
from glm_gym.environment import StepResult, VoiceEnv
from glm_gym.scenarios import Scenario, parse_scenario
from tests.gym_utils import backend, until

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.speech]
__all__ = ["backend"]  # the shared fixture: one embedded backend on the virtual clock

SAY = "Action: say Hello there."
CALL_TASKS = ("graph:", "glm-session", "gym-call-close")


def scenario(greeting: str = "") -> Scenario:
    return parse_scenario(
        {
            "id": "cancel",
            "category": "small_talk",
            "brief": {"goal": "Test."},
            "opening": "Hello there.",
            "greeting": greeting,
            "success": {"say": ["never said"]},
            "max_turns": 5,
        }
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def wall_backend() -> AsyncIterator[Backend]:
    async with LocalBackend(realtime=True) as wall:
        yield wall


def call_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(CALL_TASKS)]


def collector_of(env: VoiceEnv) -> Collector:
    assert env._call is not None
    return env._call.collector


async def assert_over_and_closable(env: VoiceEnv, backend: Backend, what: str) -> None:
    """After a cancel: the call is over (a step says so and speaks nothing), and close
    frees the session and every task of the call."""
    assert f"{what} was cancelled" in env.observation()
    later = await env.step(SAY)
    assert later.done and "over" in later.observation
    await env.close()
    assert backend.live_sessions == 0
    assert call_tasks() == []


async def test_a_cancel_landing_as_the_turn_ends_is_raised_not_swallowed(
    backend: Backend,
) -> None:
    """The cancel is sent in the loop iteration where the assistant's turn ends (the
    window where asyncio.wait_for on 3.10/3.11 returns the result and drops the cancel)."""
    env = VoiceEnv(backend, [scenario()], turn_timeout_s=60)
    try:
        await env.reset(0)
        collector = collector_of(env)
        since = collector.last_seq
        step = asyncio.create_task(env.step(SAY), name="test-step")
        accepted: list[bool] = []

        def turn_over() -> bool:
            new = [r for r in collector.replies if r.seq > since]
            return bool(new) and new[-1].final and collector.current is None

        await collector.wait_for(turn_over)
        asyncio.get_running_loop().call_soon(lambda: accepted.append(step.cancel()))
        outcome: StepResult | None = None
        try:
            outcome = await step
        except asyncio.CancelledError:
            assert accepted == [True]
            await assert_over_and_closable(env, backend, "step")
        else:  # the step had finished before the cancel: nothing to cancel
            assert accepted == [False], "the step took the cancel and still returned"
            assert "hello" in " ".join(outcome.info["heard"])
    finally:
        await env.close()
    assert call_tasks() == []


async def test_a_step_cancelled_while_it_waits_for_the_answer_ends_at_once(
    wall_backend: Backend,
) -> None:
    """At wall-clock pace the answer takes a second or more to come; the step is
    cancelled as the backend hears the line and ends before any answer arrived."""
    env = VoiceEnv(wall_backend, [scenario()], turn_timeout_s=60)
    try:
        await env.reset(0)
        collector = collector_of(env)
        heard = len(collector.user_texts)
        step = asyncio.create_task(env.step(SAY), name="test-step")
        await collector.wait_for(lambda: len(collector.user_texts) > heard)
        since = collector.user_texts[-1].seq
        assert step.cancel()
        with pytest.raises(asyncio.CancelledError):
            await step
        assert not [r for r in collector.replies if r.seq > since]  # no answer was awaited
        await assert_over_and_closable(env, wall_backend, "step")
    finally:
        await env.close()


async def test_a_reset_cancelled_during_the_greeting_leaves_a_closable_env(
    wall_backend: Backend,
) -> None:
    """The reset is cancelled once the session is up, while it waits for the greeting."""
    greeted = scenario(greeting="Welcome to the test line.")
    env = VoiceEnv(wall_backend, [greeted], turn_timeout_s=60)
    try:
        reset = asyncio.create_task(env.reset(0), name="test-reset")
        await until(lambda: env._call is not None)
        collector = collector_of(env)
        await collector.wait_for(lambda: collector.connected)  # the greeting is yet to come
        assert reset.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reset
        await assert_over_and_closable(env, wall_backend, "reset")
        again = await env.reset(0)  # the env starts another call after a cancelled one
        assert not again.done and "Welcome" in again.info["greeting"]
    finally:
        await env.close()
    assert call_tasks() == []
