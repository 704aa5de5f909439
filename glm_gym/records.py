"""What one evaluated conversation leaves behind: per-step, per-turn and per-scenario records.

A :class:`StepResult` is what a conversation's ``reset`` and ``step`` return, the same
type in process (:class:`~glm_gym.environment.VoiceEnv`) and through a gym server
(:class:`~glm_gym.episode.HttpConversation`, from ``GET /detail``).

A :class:`ScenarioRecord` is one (scenario, trial) pair, run once to the end (or to its
error). Its turns keep what the environment reported for each step, normalised into
typed fields, plus the raw ``info`` so nothing the environment said is lost. Every
figure of a report is computed from these records alone (``glm_gym.scoring``), so a
report can be recomputed, merged or checked from its JSON.

Latencies are milliseconds on the clock named by ``clock``: ``"virtual"`` is the audio
timeline of the embedded backend running faster than real time, ``"wall"`` the caller's
wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["LATENCY_KINDS", "Clock", "ScenarioRecord", "StepResult", "ToolCall", "TurnRecord"]

Clock = Literal["virtual", "wall"]

# The latency figures a turn can carry, in report order:
#   voice_to_voice  end of the caller's speech -> first assistant audio
#   greeting        session start -> first assistant audio, before the caller spoke
#   barge_in_yield  caller starts speaking over the assistant -> its audio stops
#   tool_wait       tool call issued -> its result handed back to the model
LATENCY_KINDS: tuple[str, ...] = ("voice_to_voice", "greeting", "barge_in_yield", "tool_wait")


@dataclass(frozen=True)
class StepResult:
    """What reset and step return."""

    observation: str
    reward: float
    done: bool
    info: dict[str, Any]


class ToolCall(BaseModel):
    """One tool call: its name and arguments (the result when the call was made)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None


class TurnRecord(BaseModel):
    """One step of the conversation (index 0 is the reset: the greeting, if any)."""

    model_config = ConfigDict(extra="forbid")

    index: int
    action: str = ""
    observation: str = ""
    reward: float = 0.0
    done: bool = False
    assistant_text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    latencies_ms: dict[str, list[float]] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    info: dict[str, Any] = Field(default_factory=dict)


class ScenarioRecord(BaseModel):
    """One (scenario, trial): outcome, turns, tool calls, latencies, errors, attempts."""

    model_config = ConfigDict(extra="forbid")

    scenario_id: str
    category: str
    trial: int
    seed: int = 0
    reward: float = 0.0
    passed: bool = False
    criteria: dict[str, float] = Field(default_factory=dict)
    turns: list[TurnRecord] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    expected_tool_calls: list[ToolCall] = Field(default_factory=list)
    latencies: dict[str, list[float]] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)
    attempts: int = 1
    worker: str | None = None
    caller: str = "scripted"
    """Who played the caller: ``scripted`` or ``openai:<model>`` (figures of different
    callers are not comparable)."""
    clock: Clock = "wall"
    wall_s: float = 0.0
    audio_s: float = 0.0

    @property
    def key(self) -> tuple[str, int]:
        """What makes a record unique in one evaluation: (scenario id, trial)."""
        return (self.scenario_id, self.trial)
