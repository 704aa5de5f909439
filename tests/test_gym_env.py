"""VoiceEnv end to end on the embedded backend: a real server on 127.0.0.1, the caller's
voice synthesised and streamed as audio, the assistant's replies heard through the graph."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest

from glm_gym.backends import LocalBackend
from glm_gym.environment import VoiceEnv
from glm_gym.scenarios import Scenario, load_scenarios, parse_scenario
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


HOURS = {
    "name": "get_opening_hours",
    "description": "Get the opening hours of a public place in town.",
    "parameters": {
        "type": "object",
        "properties": {"place": {"type": "string"}},
        "required": ["place"],
    },
}


def custom(scenario_id: str, opening: str, **extra: object) -> Scenario:
    return parse_scenario(
        {
            "id": scenario_id,
            "category": "barge_in",
            "brief": {"goal": "Test."},
            "opening": opening,
            "success": {"say": ["never said"]},
            "max_turns": 5,
            **extra,
        }
    )


LONG_ANSWER = {
    "tools": [HOURS],
    "world": {
        "state": {
            "hours": {
                "library": "nine in the morning to six in the evening from Monday to "
                "Saturday, and ten to four on Sundays and on public holidays"
            }
        },
        "effects": {"get_opening_hours": {"op": "lookup", "table": "hours", "key": "place"}},
    },
}


async def test_barge_in_cuts_the_reply_still_playing_and_reports_the_yield_time(
    backend: LocalBackend,
) -> None:
    scenario = custom("barge", "What are the opening hours for the library?", **LONG_ANSWER)
    env = VoiceEnv(backend, [scenario], turn_timeout_s=120)
    try:
        await env.reset(0)
        first = await env.step("Action: say What are the opening hours for the library?")
        assert first.info["tool_calls"], first.info
        step = await env.step("Thought: cut in\nAction: barge in after 300 ms Hello there.")
        info = step.info
        assert info["action"] == "barge_in" and info["barged_in"], info
        assert info["interrupted"]
        assert info["latencies"]["barge_in_yield_ms"] > 0
        assert "you interrupted the assistant" in step.observation
    finally:
        await env.close()


async def test_wait_keeps_the_caller_silent_for_that_long_on_the_call_clock(
    backend: LocalBackend,
) -> None:
    env = VoiceEnv(backend, [custom("quiet", "Hello there.")], turn_timeout_s=120)
    try:
        await env.reset(0)
        await env.step("Action: say Hello there.")
        assert env._call is not None
        caller = env._call.caller
        before = caller.now_ms()
        step = await env.step("Action: wait 2")
        assert step.info["action"] == "wait" and not step.info["timed_out"]
        assert caller.now_ms() - before >= 2000
        assert step.info["clock_ms"] >= caller.now_ms() - 1  # the call's length on its clock
        assert step.info["heard"] == []  # silence: the backend heard no words
    finally:
        await env.close()


async def test_concurrent_envs_hear_only_their_own_conversation(backend: LocalBackend) -> None:
    lines = {
        "greet": "Hello there.",
        "name": "My name is Anna.",
        "alarm": "Set an alarm for seven.",
    }
    words = {"greet": "hello", "name": "anna", "alarm": "alarm"}
    scenarios = [custom(key, line) for key, line in lines.items()]
    envs = [VoiceEnv(backend, scenarios, turn_timeout_s=120) for _ in scenarios]

    async def converse(env: VoiceEnv, index: int) -> list[str]:
        await env.reset(index)
        step = await env.step(f"Action: say {scenarios[index].opening}")
        return list(step.info["heard"])

    try:
        heard = await asyncio.gather(*(converse(env, i) for i, env in enumerate(envs)))
        assert backend.sessions_opened == len(envs)
        for key, transcripts in zip(lines, heard, strict=True):
            text = " ".join(transcripts)
            assert words[key] in text, (key, heard)
            assert not any(w in text for k, w in words.items() if k != key), (key, heard)
    finally:
        await asyncio.gather(*(env.close() for env in envs))


async def test_close_stops_the_graph_and_session_and_gives_the_slot_back(
    backend: LocalBackend,
) -> None:
    env = VoiceEnv(backend, [custom("bye", "Hello there.")], turn_timeout_s=120)
    await env.reset(0)
    await env.step("Action: say Hello there.")
    assert backend.live_sessions == 1
    await env.reset(0)  # a second call replaces the first
    assert backend.live_sessions == 1 and backend.sessions_opened == 2
    await env.close()
    await env.close()  # idempotent
    assert backend.live_sessions == 0
    names = [t.get_name() for t in asyncio.all_tasks()]
    assert not [n for n in names if n.startswith(("graph:", "glm-session"))], names
    assert env.scenario is None


async def test_realtime_runs_on_the_wall_clock_with_the_same_spoken_path() -> None:
    async with LocalBackend(realtime=True) as wall:
        env = VoiceEnv(wall, [custom("wall", "Hello there.")], turn_timeout_s=120)
        try:
            reset = await env.reset(0)
            assert reset.info["clock"] == "wall"
            step = await env.step("Action: say Hello there.")
            assert "hello" in " ".join(step.info["heard"])
            assert step.info["latencies"]["clock"] == "wall"
            assert step.info["latencies"]["voice_to_voice_ms"] > 0
        finally:
            await env.close()


LONG_GREETING = (
    "Hello and welcome to the city line. I can tell you the weather and the opening hours. "
    "What would you like to know today?"
)


async def test_at_wall_clock_pace_a_barge_in_cuts_the_reply_while_it_is_playing() -> None:
    """The embedded server streams audio at 1x; a step returns at the reply's first audio
    (time cannot stop), so a barge-in lands N ms into the reply: it is cut, its words
    stop short, the yield time is measured; a polite line then lets the answer finish."""
    async with LocalBackend(realtime=True) as wall:
        env = VoiceEnv(wall, [custom("wall-barge", "Stop.", greeting=LONG_GREETING)])
        try:
            reset = await env.reset(0)
            assert reset.info["clock"] == "wall" and "greeting_ms" in reset.info["latencies"]
            assert "still speaking" in reset.observation
            step = await env.step("Thought: cut it short\nAction: barge in after 300 ms Stop.")
            info = step.info
            assert info["barged_in"] and info["interrupted"], info
            assert info["latencies"]["barge_in_yield_ms"] > 0
            assert "What would you like" not in info["assistant"]  # the greeting cut short
            assert "you interrupted the assistant" in step.observation
            polite = await env.step("Action: say Hello there.")
            assert not polite.info["barged_in"] and not polite.info["interrupted"]
            assert "hello" in " ".join(polite.info["heard"])
            assert polite.info["latencies"]["voice_to_voice_ms"] > 0
        finally:
            await env.close()


async def test_a_backend_that_cannot_be_reached_ends_the_call_with_its_error() -> None:
    from glm_gym.backends import GlmBackend

    unreachable = GlmBackend(api_key="id.secret", url="ws://127.0.0.1:9/api/paas/v4/realtime")
    async with unreachable:
        env = VoiceEnv(unreachable, [custom("gone", "Hello there.")], turn_timeout_s=60)
        try:
            reset = await env.reset(0)
            assert reset.done and not reset.info["timed_out"]
            assert (
                reset.info["errors"] and "cannot reach ws://127.0.0.1:9" in reset.info["errors"][-1]
            )
            step = await env.step("Action: say hello")
            assert step.done and "over" in step.observation
        finally:
            await env.close()
        assert unreachable.live_sessions == 0


async def test_the_embedded_server_never_ends_a_call_that_is_silent_between_steps(
    backend: LocalBackend,
) -> None:
    server = backend.server
    assert server is not None
    assert server.idle_timeout_s is None
    assert server.max_connections >= 256
