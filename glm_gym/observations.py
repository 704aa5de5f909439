"""The text an agent reads: the caller's brief after reset, the assistant's turn after a step."""

from __future__ import annotations

import json
from typing import Any

from glm_gym.actions import ACTION_HELP
from glm_gym.scenarios import Scenario

__all__ = ["brief_text", "turn_text"]


def brief_text(scenario: Scenario, greeting: str, *, speaking: bool = False) -> str:
    """What the caller knows before speaking, and what the assistant said first (and
    whether it is still saying it: barging in cuts it)."""
    lines = [
        "You are calling a voice assistant. You speak; it hears your voice.",
        f"Your goal: {scenario.brief.goal}",
    ]
    if scenario.brief.knows:
        lines.append("You know: " + "; ".join(scenario.brief.knows))
    if greeting:
        lines.append(f'The assistant said: "{greeting}"')
        if speaking:
            lines.append("Note: it is still speaking (barge in to cut it off).")
    else:
        lines.append("The assistant is listening and has said nothing yet.")
    lines.append(ACTION_HELP)
    return "\n".join(lines)


def _tool_line(call: dict[str, Any]) -> str:
    arguments = json.dumps(call["arguments"], ensure_ascii=False)
    outcome = call["result"] if call["ok"] else f"error: {call['result']}"
    return f"- {call['name']}({arguments}) -> {outcome}"


def turn_text(info: dict[str, Any], *, done: bool) -> str:
    """The assistant's words of this turn, its tool calls, the flags, and what is next."""
    if info.get("hung_up"):
        lines = ["You hung up. The call is over."]
    else:
        lines = []
        if info.get("previous_reply"):
            lines.append(f'The assistant finished saying: "{info["previous_reply"]}"')
        said = info.get("assistant") or ""
        if said:
            lines.append(f'The assistant said: "{said}"')
        elif info.get("speaking"):
            lines.append("The assistant started speaking (no words transcribed yet).")
        else:
            lines.append("The assistant said nothing.")
    calls = info.get("tool_calls") or []
    if calls:
        lines.append("It called tools:")
        lines += [_tool_line(c) for c in calls]
    flags = [
        text
        for key, text in (
            ("interrupted", "you interrupted the assistant and it stopped"),
            ("timed_out", "the assistant's turn did not end in time"),
            ("speaking", "it is still speaking (barge in to cut it off)"),
        )
        if info.get(key)
    ]
    if info.get("action") == "barge_in" and not info.get("barged_in"):
        flags.append("the assistant had finished speaking before you started")
    if info.get("errors"):
        flags.append("backend errors: " + "; ".join(info["errors"][-3:]))
    if flags:
        lines.append("Note: " + "; ".join(flags) + ".")
    if done and not info.get("hung_up"):
        lines.append("The call is over.")
    return "\n".join(lines)
