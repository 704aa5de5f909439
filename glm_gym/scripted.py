"""The scripted caller: a scenario's own lines as ReAct actions (no LLM needed)."""

from __future__ import annotations

from glm_gym.actions import HangUp, parse_action
from glm_gym.scenarios import Scenario

__all__ = ["scripted_actions"]


def scripted_actions(scenario: Scenario) -> list[str]:
    """``say <opening>``, the follow-ups, then ``hang up`` (unless the script hangs up)."""
    lines = [f"say {scenario.opening}", *scenario.follow_ups]
    if not isinstance(parse_action(lines[-1]), HangUp):
        lines.append("hang up")
    return [
        f"Thought: I follow my script, line {i} of {len(lines)}.\nAction: {line}"
        for i, line in enumerate(lines, start=1)
    ]
