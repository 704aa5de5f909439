"""The model caller: an LLM given the scenario's brief plays the caller (tau2's user simulator).

Roles are seen from the simulator's side, as tau2 does: the system message holds the part to
play and the brief (goal, what the caller knows); each observation of the environment (the
assistant's words, its tool calls, the flags, or the instructive answer to an invalid
action) is a ``user`` message; each of the model's answers an ``assistant`` message. The
model answers in the ReAct form every agent of the gym uses, so its answer goes to the
environment as it is, and an answer that is not a valid action gets the environment's
instructive observation, as any agent's would.

The simulator hears what a caller hears: the observation without the assistant's tool calls
and their results (as tau2's user sees only the agent's messages), so it learns a tool's
answer only if the assistant says it.

Ending the call: ``Action: hang up``, or tau2's stop token ``###STOP###``. Words before the
token are played first, then the caller hangs up; the token alone hangs up. A model that
gives ``MAX_INVALID_IN_A_ROW`` invalid answers in a row is hung up for, the reason in the
action's Thought (the environment's turn limit counts only valid actions).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from glm_gym.actions import ACTION_HELP, InvalidAction, parse_action
from glm_gym.callers import CallerTurns
from glm_gym.chat_client import ChatClient
from glm_gym.observations import turn_text
from glm_gym.scenarios import Scenario

__all__ = ["MAX_INVALID_IN_A_ROW", "STOP_TOKEN", "ModelCaller", "heard", "system_prompt"]

STOP_TOKEN = "###STOP###"
MAX_INVALID_IN_A_ROW = 3
HANG_UP = "Thought: My goal is met or the call cannot go on ({why}).\nAction: hang up"

_GUIDE = """\
You play a person who phones a voice assistant. You are the caller, never the assistant:
the messages you receive tell you what the assistant said and did.

How to play:
- Follow your brief. Do not invent facts it does not give you; give what you know when it is
  needed or asked for, in your own words, not the brief's.
- What you say is spoken aloud: one or two short, plain sentences, the way people talk on
  the phone. No lists, no markdown, no emoji.
- Answer every message with one line 'Thought: ...' (your reasoning, never spoken) and then
  exactly one line 'Action: ...'.
- When your goal is met, or the call cannot get any further, end the call: answer
  'Action: hang up', or put {stop} after your last words (they are said, then you hang up).

{actions}"""


def system_prompt(scenario: Scenario) -> str:
    """The simulator's instructions and the scenario's brief."""
    brief = scenario.brief
    lines = [
        _GUIDE.format(stop=STOP_TOKEN, actions=ACTION_HELP),
        "",
        "Your brief:",
        f"- Your goal: {brief.goal}",
    ]
    if brief.knows:
        lines += [f"- You know: {fact}" for fact in brief.knows]
    else:
        lines.append("- You know nothing beyond your goal.")
    return "\n".join(lines)


def heard(observation: str, info: dict[str, Any]) -> str:
    """The observation as the caller hears it: a turn's text without its tool calls."""
    if not info.get("tool_calls"):
        return observation  # the reset, an invalid action's answer, a turn with no tools
    # the caller is asked only while the call goes on: never a done turn
    return turn_text({**info, "tool_calls": []}, done=False)


class _ModelTurns:
    """One conversation: the messages so far, and a hang-up owed after last words."""

    def __init__(self, client: ChatClient, scenario: Scenario, seed: int) -> None:
        self._client = client
        self._seed = seed
        self._messages = [{"role": "system", "content": system_prompt(scenario)}]
        self._hang_up_next = False
        self._invalid = 0

    async def next_action(self, observation: str, info: dict[str, Any]) -> str | None:
        if self._hang_up_next:
            return HANG_UP.format(why=f"the model said {STOP_TOKEN}")
        self._messages.append({"role": "user", "content": heard(observation, info)})
        reply = await self._client.complete(self._messages, seed=self._seed)
        self._messages.append({"role": "assistant", "content": reply})
        return self._action(reply)

    def _action(self, reply: str) -> str:
        if STOP_TOKEN in reply:
            last_words = reply.replace(STOP_TOKEN, " ").strip()
            if last_words and not isinstance(parse_action(last_words), InvalidAction):
                self._hang_up_next = True  # a hang-up action itself is played as it is
                return last_words
            return HANG_UP.format(why=f"the model said {STOP_TOKEN}")
        if not isinstance(parse_action(reply), InvalidAction):
            self._invalid = 0
            return reply
        self._invalid += 1
        if self._invalid > MAX_INVALID_IN_A_ROW:
            why = f"the caller model gave {MAX_INVALID_IN_A_ROW + 1} invalid actions in a row"
            return HANG_UP.format(why=why)
        return reply  # the environment answers with what an action looks like


class ModelCaller:
    """A model behind an OpenAI-compatible endpoint playing each scenario's brief."""

    def __init__(self, client: ChatClient, *, label: str) -> None:
        self.label = label
        self._client = client

    def begin(self, scenario: Scenario, seed: int) -> CallerTurns:
        return _ModelTurns(self._client, scenario, seed)

    def usage(self) -> dict[str, int] | None:
        return dataclasses.asdict(self._client.usage)
