"""The caller's actions, parsed from the ReAct text an agent writes.

An agent answers with ``Thought: ...`` then one ``Action: ...`` line; the action is one of

* ``say <words>``: speak, then listen to the assistant's turn;
* ``barge in <words>``: start speaking over the assistant's last reply at its first
  audio, or ``barge in after <N> ms <words>`` N ms into it;
* ``wait <seconds>``: stay silent (does the assistant prompt?);
* ``hang up``: end the call.

:func:`parse_action` never raises: text that is not exactly one known action gives an
:class:`InvalidAction` whose ``reason`` tells the agent how to write it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ACTION_HELP",
    "MAX_WAIT_S",
    "Action",
    "BargeIn",
    "HangUp",
    "InvalidAction",
    "Say",
    "Wait",
    "parse_action",
]

MAX_WAIT_S = 60.0
ACTION_HELP = (
    "Answer with 'Thought: <your reasoning>' and then exactly one line 'Action: <action>', "
    "where <action> is one of: 'say <words>', 'barge in <words>', "
    "'barge in after <N> ms <words>', 'wait <seconds>', 'hang up'."
)


@dataclass(frozen=True)
class Say:
    """Speak ``words``."""

    words: str
    kind: Literal["say"] = "say"


@dataclass(frozen=True)
class BargeIn:
    """Speak ``words`` ``after_ms`` into the assistant's last reply."""

    words: str
    after_ms: int = 0
    kind: Literal["barge_in"] = "barge_in"


@dataclass(frozen=True)
class Wait:
    """Stay silent for ``seconds``."""

    seconds: float
    kind: Literal["wait"] = "wait"


@dataclass(frozen=True)
class HangUp:
    """End the call."""

    kind: Literal["hang_up"] = "hang_up"


@dataclass(frozen=True)
class InvalidAction:
    """Not one known action; ``reason`` says what is wrong and what is accepted."""

    reason: str
    kind: Literal["invalid"] = "invalid"


Action = Say | BargeIn | Wait | HangUp

_ACTION_LINE = re.compile(r"^\s*Action\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_THOUGHT = re.compile(r"^\s*Thought\s*:", re.IGNORECASE)
_BARGE = re.compile(r"^barge[\s-]+in\b\s*(.*)$", re.IGNORECASE | re.DOTALL)
_AFTER = re.compile(r"^after\s+(\d+)\s*ms\b\s*(.*)$", re.IGNORECASE | re.DOTALL)
_WAIT = re.compile(r"^wait\b\s*(.*)$", re.IGNORECASE)
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)?$", re.IGNORECASE)
_SAY = re.compile(r"^say\b\s*(.*)$", re.IGNORECASE | re.DOTALL)
_HANG_UP = re.compile(r"^hang[\s-]*up[\s.!]*$", re.IGNORECASE)


def _words(text: str) -> str:
    return " ".join(text.strip().strip("\"'").split())


def parse_action(text: str) -> Action | InvalidAction:
    """The one action in ``text`` (a ReAct answer, or a bare action line)."""
    lines = _ACTION_LINE.findall(text)
    if len(lines) > 1:
        return InvalidAction(
            f"Your answer has {len(lines)} 'Action:' lines; nothing was said. " + ACTION_HELP
        )
    if not lines and _THOUGHT.match(text):
        return InvalidAction("Your answer has a Thought but no 'Action:' line. " + ACTION_HELP)
    body = (lines[0] if lines else text).strip()
    if not body:
        return InvalidAction("Your answer has no action. " + ACTION_HELP)
    return _parse_body(body)


def _parse_body(body: str) -> Action | InvalidAction:
    if _HANG_UP.match(body):
        return HangUp()
    if match := _BARGE.match(body):
        rest, after_ms = match.group(1).strip(), 0
        if after := _AFTER.match(rest):
            after_ms, rest = int(after.group(1)), after.group(2)
        words = _words(rest)
        if not words:
            return InvalidAction("'barge in' needs the words to say. " + ACTION_HELP)
        return BargeIn(words, after_ms)
    if match := _WAIT.match(body):
        seconds = _SECONDS.match(match.group(1).strip())
        if seconds is None:
            return InvalidAction(
                f"'wait' needs a number of seconds, got {match.group(1).strip()!r}. " + ACTION_HELP
            )
        value = float(seconds.group(1))
        if not 0 < value <= MAX_WAIT_S:
            return InvalidAction(f"'wait' takes 0 < seconds <= {MAX_WAIT_S:g}, got {value:g}.")
        return Wait(value)
    if match := _SAY.match(body):
        words = _words(match.group(1))
        if not words:
            return InvalidAction("'say' needs the words to say. " + ACTION_HELP)
        return Say(words)
    first = body.split()[0] if body.split() else body
    return InvalidAction(f"Unknown action {first!r}. " + ACTION_HELP)
