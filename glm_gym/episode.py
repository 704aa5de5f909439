"""One conversation, start to end, and the record it leaves.

``play_episode`` drives anything shaped like the environment (``reset(idx)``,
``step(action)``, ``close()``, each giving a :class:`~glm_gym.records.StepResult`): the
in-process :class:`~glm_gym.environment.VoiceEnv`, or :class:`HttpConversation`, the same
conversation through a gym server. The scripted caller's actions come from
``glm_gym.scripted`` unless a caller's turns are given (a model playing the brief:
``glm_gym.callers``), each one answering the last observation; the conversation is always
closed, also when it fails or is cancelled. The caller's own
configuration faults (a refused key, an unknown model: ``CallerConfigError``) are not a
conversation's error: they end the eval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from glm_gym.callers import CallerConfigError
from glm_gym.records import ScenarioRecord, StepResult, ToolCall, TurnRecord

if TYPE_CHECKING:
    from glm_gym.callers import CallerTurns

__all__ = ["Conversation", "HttpConversation", "play_episode", "turn_record"]

PASS_REWARD = 1.0 - 1e-9  # reward is a product of criteria in [0, 1]; 1 is a pass
FLAGS = ("timed_out", "interrupted", "barged_in", "hung_up")


class Conversation(Protocol):
    async def reset(self, data_idx: int) -> StepResult: ...
    async def step(self, action: str) -> StepResult: ...
    async def close(self) -> None: ...


class HttpConversation:
    """One scenario through a gym server: ``GlmVoiceEnvClient`` calls, each on a thread.

    The env is created for ``scenario_id`` alone (its ``data_idx`` is then 0), so the
    server's scenario order does not matter; it is created at ``reset`` and closed at
    ``close``.
    """

    def __init__(self, server_url: str, scenario_id: str, turn_timeout_s: float) -> None:
        self._url = server_url
        self._scenario_id = scenario_id
        self._turn_timeout_s = turn_timeout_s
        self._client: Any = None

    async def _detail(self) -> StepResult:
        answer = await asyncio.to_thread(self._client.detail)
        return StepResult(answer["observation"], answer["reward"], answer["done"], answer["info"])

    async def reset(self, data_idx: int) -> StepResult:
        from glm_gym.client import GlmVoiceEnvClient

        if self._client is None:
            self._client = await asyncio.to_thread(
                GlmVoiceEnvClient,
                self._url,
                scenarios=[self._scenario_id],
                turn_timeout_s=self._turn_timeout_s,
            )
        await asyncio.to_thread(self._client.reset, data_idx)
        return await self._detail()

    async def step(self, action: str) -> StepResult:
        await asyncio.to_thread(self._client.step, action)
        return await self._detail()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)


async def play_episode(
    conversation: Conversation,
    data_idx: int,
    scenario: Any,
    caller: CallerTurns | None = None,
) -> ScenarioRecord:
    """Reset to ``data_idx``, play the caller's actions until done, judge, close.

    ``caller`` None plays the scenario's script.
    """
    if caller is None:
        from glm_gym.callers import ScriptedCaller

        caller = ScriptedCaller().begin(scenario, 0)
    turns: list[TurnRecord] = []
    errors: list[str] = []
    last: StepResult | None = None
    try:
        last = await conversation.reset(data_idx)
        turns.append(turn_record(0, "", last))
        while not last.done:
            action = await caller.next_action(last.observation, last.info)
            if action is None:
                break
            last = await conversation.step(action)
            turns.append(turn_record(len(turns), action, last))
    except CallerConfigError:
        raise  # every conversation would fail alike: the eval stops with the reason
    except Exception as exc:  # the environment's fault is this record's error, not the eval's
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await conversation.close()
    reward = float(last.reward) if last is not None else 0.0
    info = last.info if last is not None else {}
    expected = scenario.success.tool_calls or []
    return ScenarioRecord(
        scenario_id=scenario.id,
        category=scenario.category,
        trial=0,
        reward=reward,
        passed=not errors and reward >= PASS_REWARD,  # an exception is never a pass
        criteria=_criteria(info),
        turns=turns,
        tool_calls=[call for turn in turns for call in turn.tool_calls],
        expected_tool_calls=[ToolCall(name=c.name, arguments=dict(c.arguments)) for c in expected],
        latencies=_merged_latencies(turns),
        errors=[*_errors(turns), *errors],
        audio_s=float(info.get("clock_ms") or 0.0) / 1000,
    )


def turn_record(index: int, action: str, result: StepResult) -> TurnRecord:
    """The typed view of one step's result (its raw ``info`` kept alongside)."""
    info = dict(result.info)
    return TurnRecord(
        index=index,
        action=action,
        observation=result.observation,
        reward=float(result.reward),
        done=bool(result.done),
        assistant_text=str(info.get("assistant", info.get("greeting")) or ""),
        tool_calls=[_tool_call(c) for c in info.get("tool_calls") or []],
        latencies_ms=_latencies(info.get("latencies") or {}),
        flags=[flag for flag in FLAGS if info.get(flag)],
        info=info,
    )


def _tool_call(raw: Mapping[str, Any]) -> ToolCall:
    return ToolCall(
        name=str(raw.get("name", "")),
        arguments=dict(raw.get("arguments") or {}),
        result=raw.get("result"),
    )


def _latencies(raw: Mapping[str, Any]) -> dict[str, list[float]]:
    """``{"voice_to_voice_ms": 512.0, "clock": ...}`` -> ``{"voice_to_voice": [512.0]}``."""
    found: dict[str, list[float]] = {}
    for key, value in raw.items():
        if not key.endswith("_ms") or not isinstance(value, int | float):
            continue
        found[key.removesuffix("_ms")] = [float(value)]
    return found


def _merged_latencies(turns: list[TurnRecord]) -> dict[str, list[float]]:
    merged: dict[str, list[float]] = {}
    for turn in turns:
        for kind, values in turn.latencies_ms.items():
            merged.setdefault(kind, []).extend(values)
    return merged


def _criteria(info: Mapping[str, Any]) -> dict[str, float]:
    parts = (info.get("criteria") or {}).get("parts") or {}
    return {str(k): float(v) for k, v in parts.items()}


def _errors(turns: list[TurnRecord]) -> list[str]:
    """The session errors the environment reported, once each, in order."""
    seen: dict[str, None] = {}
    for turn in turns:
        for error in turn.info.get("errors") or []:
            seen.setdefault(str(error))
    return list(seen)
