"""A scenario's tool world, and the graph node that answers the assistant's tool calls.

:class:`World` holds a copy of the scenario's tables and runs each tool as the scenario
declares it (a lookup into a table or an update of a row); every call is recorded with
its arguments, its result and when it came. :class:`WorldNode` (addon ``gym_world``)
registers the scenario's tools with the ``glm_v2v_python`` node through ``tool_register``
on start and answers its ``tool_call`` cmds from the world: OK with ``tool_result``
``{"type": "llmresult", "content": text}``, also for a failed lookup (the model should
hear that a key is unknown), ERROR only for a cmd that is not a tool call.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from glm_gym.scenarios import Lookup, Row, Scenario, Update
from glm_realtime.host import Addon, AsyncTenEnv, Cmd, CmdResult, Extension, StatusCode

__all__ = ["ToolCallRecord", "World", "WorldNode", "normalise_key"]


_ARTICLES = ("the ", "a ", "an ")


def normalise_key(value: object) -> str:
    """How keys and values are matched: case, spacing and a leading article do not matter
    ("The Library" is "library")."""
    key = " ".join(str(value).split()).casefold()
    for article in _ARTICLES:
        if key.startswith(article) and len(key) > len(article):
            return key[len(article) :]
    return key


@dataclass(frozen=True)
class ToolCallRecord:
    """One call the assistant made."""

    name: str
    arguments: Row
    result: str
    ok: bool
    at_ms: float
    """When the world got it, on the conversation's clock."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return {
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "ok": self.ok,
            "at_ms": round(self.at_ms, 1),
        }


class World:
    """The state of one conversation's tools; changed only by :meth:`call`."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float] = lambda: 0.0) -> None:
        self.scenario = scenario
        self.state: dict[str, dict[str, Any]] = copy.deepcopy(scenario.world.state)
        self.calls: list[ToolCallRecord] = []
        self.clock = clock

    def call(self, name: str, arguments: Row) -> ToolCallRecord:
        """Run tool ``name``; the record (also appended to :attr:`calls`) says how it went."""
        effect = self.scenario.world.effects.get(name)
        if effect is None:
            known = ", ".join(t.name for t in self.scenario.tools) or "none"
            ok, text = False, f"unknown tool '{name}' (tools: {known})"
        elif isinstance(effect, Lookup):
            ok, text = self._lookup(effect, arguments)
        else:
            ok, text = self._update(effect, arguments)
        record = ToolCallRecord(name, dict(arguments), text, ok, self.clock())
        self.calls.append(record)
        return record

    def _find(self, effect: Lookup | Update, arguments: Row) -> tuple[str | None, str]:
        """(the key of the row the call names, or None) and, for None, why not."""
        if effect.key not in arguments:
            return None, f"missing argument '{effect.key}'"
        wanted = normalise_key(arguments[effect.key])
        table = self.state.setdefault(effect.table, {})
        key = next((k for k in table if normalise_key(k) == wanted), None)
        if key is None and isinstance(effect, Update) and effect.create:
            key = str(arguments[effect.key])
            table[key] = {}
        return key, f"no {effect.key} '{arguments[effect.key]}' found"

    def _lookup(self, effect: Lookup, arguments: Row) -> tuple[bool, str]:
        key, problem = self._find(effect, arguments)
        if key is None:
            return False, problem
        row = self.state[effect.table][key]
        return True, row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)

    def _update(self, effect: Update, arguments: Row) -> tuple[bool, str]:
        missing = [f for f in effect.fields if f not in arguments]
        if missing and effect.key in arguments:
            return False, f"missing argument(s) {', '.join(missing)}"
        key, problem = self._find(effect, arguments)
        if key is None:
            return False, problem
        row = self.state[effect.table][key]
        if not isinstance(row, dict):
            return False, f"{effect.key} '{key}' cannot be changed"
        row.update({f: arguments[f] for f in effect.fields})
        row.update(effect.set)
        try:
            return True, effect.reply.format(**{effect.key: key, **row})
        except (KeyError, IndexError, ValueError):
            return True, effect.reply


MANIFEST: dict[str, Any] = {
    "type": "extension",
    "name": "gym_world",
    "version": "0.1.0",
    "api": {
        "property": {},
        "cmd_in": [{"name": "tool_call"}],
        "cmd_out": [{"name": "tool_register"}],
    },
}


class WorldNode(Extension):
    """Registers the world's tools and answers ``tool_call`` from it.

    Set :attr:`world` before the graph starts (the environment does).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.world: World | None = None
        self.registration_errors: list[str] = []

    @classmethod
    def as_addon(cls) -> Addon:
        """The ``gym_world`` addon."""
        return Addon("gym_world", cls, MANIFEST, {}, origin="glm_gym")

    async def on_start(self, env: AsyncTenEnv) -> None:
        assert self.world is not None, "set WorldNode.world before starting the graph"
        for tool in self.world.scenario.tools:
            cmd = Cmd.create("tool_register")
            cmd.set_property_from_json("tool", tool.model_dump_json())
            result = await env.send_cmd(cmd)
            if result.get_status_code() != StatusCode.OK:
                detail = result.get_property_to_json()
                self.registration_errors.append(f"{tool.name}: {detail}")
                env.log_error(f"tool_register {tool.name} refused: {detail}")

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        if cmd.get_name() != "tool_call" or self.world is None:
            result = CmdResult.create(StatusCode.ERROR)
            result.set_property_string("detail", f"gym_world does not handle '{cmd.get_name()}'")
            await env.return_result(result, cmd)
            return
        name = cmd.get_property_string("name") if cmd.is_property_exist("name") else ""
        record = self.world.call(name, _arguments(cmd))
        result = CmdResult.create(StatusCode.OK)
        content = record.result if record.ok else f"error: {record.result}"
        result.set_property_from_json(
            "tool_result", json.dumps({"type": "llmresult", "content": content})
        )
        await env.return_result(result, cmd)


def _arguments(cmd: Cmd) -> Row:
    if not cmd.is_property_exist("arguments"):
        return {}
    value: Any = json.loads(cmd.get_property_to_json("arguments"))
    if isinstance(value, str):  # the node passes non-JSON arguments as text
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            return {"_raw": value}
    return value if isinstance(value, dict) else {"_raw": value}
