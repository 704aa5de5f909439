"""The env registry on real VoiceEnvs (embedded backend): idle TTL and failed steps."""

from __future__ import annotations

import asyncio

import pytest

from glm_gym.backends import Backend
from glm_gym.environment import StepResult, VoiceEnv
from glm_gym.errors import EnvFailure, EnvNotReady, UnknownEnv
from glm_gym.registry import EnvRegistry
from glm_gym.scenarios import Scenario
from tests.gym_utils import backend, in_process, real_envs, scenario_index, scenarios, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SAY = "Thought: I greet it.\nAction: say Hello there."
__all__ = ["backend", "scenarios"]  # the shared fixtures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_env_idle_for_the_ttl_is_closed_with_its_session(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    clock = Clock()
    idx = scenario_index(scenarios, "small_talk")

    async with EnvRegistry(real_envs(backend), scenarios, ttl_s=60, clock=clock) as registry:
        old = (await registry.create(None, idx, None)).id
        clock.now += 30
        fresh = (await registry.create(None, idx, None)).id
        clock.now += 30
        registry.view(old)  # a request: the old env's idle time starts again
        clock.now += 29
        assert await registry.reap_idle() == []
        clock.now += 1
        assert await registry.reap_idle() == [fresh]
        assert backend.live_sessions == 1
        with pytest.raises(UnknownEnv, match=r"closed after 60 s without a request \(the TTL\)"):
            registry.view(fresh)
        clock.now += 30
        assert await registry.reap_idle() == [old]
        assert registry.live == 0 and backend.live_sessions == 0


async def test_a_busy_env_is_not_reaped_mid_step(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    clock = Clock()
    idx = scenario_index(scenarios, "small_talk")

    async with EnvRegistry(real_envs(backend), scenarios, ttl_s=10, clock=clock) as registry:
        env_id = (await registry.create(None, idx, None)).id
        step = asyncio.create_task(registry.step(env_id, SAY))
        await until(lambda: registry.busy(env_id))
        clock.now += 100
        assert await registry.reap_idle() == []
        outcome = await step
        assert outcome.result.info["turn"] == 1
        assert registry.view(env_id).result == outcome.result


async def test_the_background_reaper_closes_abandoned_envs(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    async with in_process(backend, scenarios, ttl_s=0.2) as (http, app):
        env_id = (await http.post("/create", json={"data_idx": None})).json()["id"]
        await until(lambda: app.state.registry.live == 0, deadline_s=30)
        response = await http.post("/close", json={"id": env_id})
        assert response.status_code == 404 and "the TTL" in response.json()["error"]


class FailingStep(VoiceEnv):
    """A real VoiceEnv whose step raises on the word 'explode' (an environment fault)."""

    async def step(self, action: str) -> StepResult:
        if "explode" in action:
            raise RuntimeError("the caller's voice could not be rendered")
        return await super().step(action)


async def test_a_failed_step_is_a_500_with_the_reason_and_the_env_waits_for_a_reset(
    backend: Backend, scenarios: list[Scenario]
) -> None:
    idx = scenario_index(scenarios, "small_talk")

    async with EnvRegistry(real_envs(backend, FailingStep), scenarios) as registry:
        env_id = (await registry.create(None, idx, None)).id
        with pytest.raises(EnvFailure, match="could not be rendered"):
            await registry.step(env_id, "Action: say explode")
        with pytest.raises(EnvNotReady, match="could not be rendered.*POST /reset"):
            await registry.step(env_id, SAY)
        await registry.reset(env_id, idx)
        outcome = await registry.step(env_id, SAY)
        assert outcome.result.info["turn"] == 1
        failed = {"kind": "step", "outcome": "failed"}
        assert registry.metrics.registry.get_sample_value("glm_gym_steps_total", failed) == 1
