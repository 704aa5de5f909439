"""Judging a conversation against its scenario's success criteria (tau2's rule).

Each criterion present in ``Scenario.success`` scores 0 or 1; the reward is their
product, and every part with what decided it goes into ``info``:

* ``tool_calls``: every expected call was made (a distinct actual call of that name whose
  arguments include the expected ones; strings compared ignoring case and spacing); with
  ``only_expected_calls`` no other call was made;
* ``end_state``: each expected field of each expected row holds its value in the world;
* ``say``: each fact is a substring (ignoring case) of what the assistant said from its
  ``from_turn`` on;
* ``interrupted``: a barge-in cut the assistant's audio (or, if false, none did);
* ``spoke_in_silence``: the assistant spoke while the caller waited (or kept quiet).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from glm_gym.scenarios import ExpectedCall, Scenario
from glm_gym.world import ToolCallRecord, normalise_key

__all__ = ["Verdict", "arguments_match", "judge"]


@dataclass(frozen=True)
class Verdict:
    """The reward, its parts (criterion -> 0/1) and what decided each part."""

    reward: float
    parts: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return {"reward": self.reward, "parts": self.parts, "details": self.details}


def _same(expected: object, actual: object) -> bool:
    if isinstance(expected, str) and isinstance(actual, str):
        return normalise_key(expected) == normalise_key(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual)
    if isinstance(expected, str) and isinstance(actual, int | float):
        return normalise_key(expected) == normalise_key(actual)
    if isinstance(expected, int | float) and isinstance(actual, str):
        return normalise_key(expected) == normalise_key(actual)
    return expected == actual


def arguments_match(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Every expected argument is present in ``actual`` with the same value."""
    return all(k in actual and _same(v, actual[k]) for k, v in expected.items())


def _match_calls(
    expected: Sequence[ExpectedCall], calls: Sequence[ToolCallRecord]
) -> tuple[list[int | None], list[int]]:
    """For each expected call the index of the actual call matching it; unmatched actuals."""
    free = list(range(len(calls)))
    matched: list[int | None] = []
    for want in expected:
        hit = next(
            (
                i
                for i in free
                if calls[i].name == want.name
                and arguments_match(want.arguments, calls[i].arguments)
            ),
            None,
        )
        matched.append(hit)
        if hit is not None:
            free.remove(hit)
    return matched, free


def judge(
    scenario: Scenario,
    calls: Sequence[ToolCallRecord],
    state: Mapping[str, Mapping[str, Any]],
    said_by_turn: Mapping[int, str],
    *,
    interrupted: bool = False,
    spoke_in_silence: bool = False,
) -> Verdict:
    """Score a conversation.

    Args:
        scenario: its criteria.
        calls: every tool call the assistant made, in order.
        state: the world's tables now.
        said_by_turn: the assistant's words per caller turn (0: the greeting).
        interrupted: whether a barge-in cut the assistant's audio.
        spoke_in_silence: whether the assistant spoke during a ``wait``.
    """
    success = scenario.success
    parts: dict[str, float] = {}
    details: dict[str, Any] = {}
    if success.tool_calls is not None:
        matched, extra = _match_calls(success.tool_calls, calls)
        ok = all(m is not None for m in matched) and not (success.only_expected_calls and extra)
        parts["tool_calls"] = 1.0 if ok else 0.0
        details["tool_calls"] = {
            "expected": [c.model_dump() for c in success.tool_calls],
            "missing": [
                c.model_dump()
                for c, m in zip(success.tool_calls, matched, strict=True)
                if m is None
            ],
            "unexpected": [{"name": calls[i].name, "arguments": calls[i].arguments} for i in extra],
        }
    if success.end_state is not None:
        wrong: list[str] = []
        for table, rows in success.end_state.items():
            actual_rows = state.get(table, {})
            for key, fields in rows.items():
                row = next(
                    (r for k, r in actual_rows.items() if normalise_key(k) == normalise_key(key)),
                    None,
                )
                for name, value in fields.items():
                    got = row.get(name) if isinstance(row, Mapping) else None
                    if row is None or not _same(value, got):
                        wrong.append(f"{table}.{key}.{name}: expected {value!r}, got {got!r}")
        parts["end_state"] = 0.0 if wrong else 1.0
        details["end_state"] = {"wrong": wrong}
    facts = success.facts()
    if facts:
        missing = []
        for fact in facts:
            words = " ".join(t for turn, t in said_by_turn.items() if turn >= fact.from_turn)
            if not fact.said_in(words):
                missing.append(fact.text)
        parts["say"] = 0.0 if missing else 1.0
        details["say"] = {"missing": missing}
    for name, wanted, happened in (
        ("interrupted", success.interrupted, interrupted),
        ("spoke_in_silence", success.spoke_in_silence, spoke_in_silence),
    ):
        if wanted is not None:
            parts[name] = 1.0 if happened == wanted else 0.0
    reward = math.prod(parts.values()) if parts else 0.0
    return Verdict(reward, parts, details)
