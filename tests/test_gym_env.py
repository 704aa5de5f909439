"""VoiceEnv end to end on the embedded backend: a real server on 127.0.0.1, the caller's
voice synthesised and streamed as audio, the assistant's replies heard through the graph."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest

from glm_gym.backends import LocalBackend
from glm_gym.environment import VoiceEnv
from glm_gym.scenarios import Scenario, load_scenarios
from glm_gym.scripted import scripted_actions

try:
    from glm_local.speech import PocketSphinxModel

    PocketSphinxModel.default()
except ImportError as exc:  # the [local] extra is missing
    pytest.skip(f"embedded backend unavailable: {exc}", allow_module_level=True)

pytestmark = pytest.mark.speech


def bundled(scenario_id: str) -> Scenario:
    return next(s for s in load_scenarios() if s.id == scenario_id)


@pytest.fixture
async def backend() -> AsyncIterator[LocalBackend]:
    async with LocalBackend() as local:
        yield local


async def test_say_reaches_the_assistant_as_audio_and_its_tool_call_is_answered_from_the_world(
    backend: LocalBackend,
) -> None:
    scenario = bundled("one-tool-weather-paris")
    env = VoiceEnv(backend, [scenario], turn_timeout_s=30)
    try:
        reset = await env.reset(0)
        assert scenario.brief.goal in reset.observation
        assert not reset.done and reset.info["clock"] == "virtual"
        step = await env.step(scripted_actions(scenario)[0])
        info = step.info
        assert not info["timed_out"]
        # The server heard the synthesised voice (its transcript came back through the graph).
        assert any("weather" in heard for heard in info["heard"])
        assert [c["name"] for c in info["tool_calls"]] == ["get_weather"]
        call = info["tool_calls"][0]
        assert call["result"] in info["assistant"] or not call["ok"]
        assert info["latencies"]["clock"] == "virtual"
        assert info["latencies"]["voice_to_voice_ms"] > 0
        assert info["latencies"]["tool_wait_ms"] >= 0
        parts = info["criteria"]["parts"]
        assert set(parts) == {"tool_calls", "say"}
        assert step.reward == math.prod(parts.values())
        assert step.done == (step.reward == 1.0)
        assert env.observation() == step.observation and env.detail() == info
    finally:
        await env.close()


async def test_hang_up_ends_the_call_and_a_later_step_says_so(backend: LocalBackend) -> None:
    scenario = bundled("recall-name")
    env = VoiceEnv(backend, [scenario])
    try:
        await env.reset(0)
        step = await env.step("Thought: done.\nAction: hang up")
        assert step.done and step.info["hung_up"]
        assert step.reward == 0.0  # the recall question was never asked
        again = await env.step("Action: say hello")
        assert again.done and "over" in again.observation
    finally:
        await env.close()


async def test_an_invalid_action_speaks_nothing_and_explains_the_format(
    backend: LocalBackend,
) -> None:
    env = VoiceEnv(backend, [bundled("small-talk-hello")])
    try:
        await env.reset(0)
        sent_before = env._call.caller.sent_ms if env._call else None
        step = await env.step("Thought: two at once\nAction: say hi\nAction: hang up")
        assert step.reward == 0.0 and not step.done
        assert "exactly one line 'Action: <action>'" in step.observation
        assert env._call is not None and env._call.caller.sent_ms == sent_before
        unknown = await env.step("Action: dance wildly")
        assert "Unknown action 'dance'" in unknown.observation and not unknown.done
    finally:
        await env.close()


async def test_reset_rejects_an_index_outside_the_set(backend: LocalBackend) -> None:
    env = VoiceEnv(backend, [bundled("small-talk-hello")])
    with pytest.raises(ValueError, match=r"data_idx 3 is outside 0\.\.0"):
        await env.reset(3)
    with pytest.raises(RuntimeError, match="reset"):
        await env.step("Action: say hi")
    await env.close()
