"""``demo_tools``: two deterministic tools, in the ten_ai_base tool-extension shape.

On start one ``tool_register`` cmd is sent per tool, its ``tool`` property holding
``{"name", "description", "parameters": [{"name", "type", "description",
"required"}]}`` (``LLMToolMetadata``). A ``tool_call`` cmd (``name``, ``arguments``
as a JSON string or object) is answered OK with ``tool_result`` =
``{"type": "llmresult", "content": text}``, or ERROR with a ``detail`` naming the
problem (unknown tool, bad or missing arguments).

Tools: ``get_current_time`` (``"HH:MM"`` from :attr:`DemoTools.clock`) and
``get_weather(location)`` (fake weather derived from a hash of the location).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..host import AsyncTenEnv, Cmd, CmdResult, Extension, StatusCode, register_addon

__all__ = ["TOOLS", "DemoTools", "ToolError", "fake_weather"]

MANIFEST = {
    "type": "extension",
    "name": "demo_tools",
    "version": "0.1.0",
    "api": {
        "property": {"delay_ms": {"type": "int32"}},
        "cmd_in": [
            {
                "name": "tool_call",
                "property": {"name": {"type": "string"}, "arguments": {"type": "object"}},
                "result": {"property": {"tool_result": {"type": "object"}}},
            }
        ],
        "cmd_out": [{"name": "tool_register", "property": {"tool": {"type": "object"}}}],
    },
}
DEFAULTS = {"delay_ms": 0}

TOOLS: tuple[dict[str, Any], ...] = (
    {
        "name": "get_current_time",
        "description": "Get the current local time as HH:MM.",
        "parameters": [],
    },
    {
        "name": "get_weather",
        "description": "Get the current weather for a location.",
        "parameters": [
            {
                "name": "location",
                "type": "string",
                "description": "City or place name, for example 'Paris'.",
                "required": True,
            }
        ],
    },
)
_SKIES = ("Sunny", "Cloudy", "Rainy", "Windy", "Foggy", "Snowy", "Partly cloudy")


class ToolError(ValueError):
    """A tool call cannot be answered; the message says why."""


def fake_weather(location: str) -> str:
    """Return deterministic fake weather, for example ``"Sunny, 21°C in Paris"``."""
    digest = hashlib.sha256(location.strip().casefold().encode("utf-8")).digest()
    return f"{_SKIES[digest[0] % len(_SKIES)]}, {digest[1] % 40 - 5}°C in {location.strip()}"


def _arguments(cmd: Cmd) -> dict[str, Any]:
    if not cmd.is_property_exist("arguments"):
        return {}
    value = json.loads(cmd.get_property_to_json("arguments"))
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise ToolError(f"arguments are not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ToolError(f"arguments must be a JSON object, got {type(value).__name__}")
    return value


@register_addon("demo_tools", manifest=MANIFEST, defaults=DEFAULTS)
class DemoTools(Extension):
    """Registers and answers the demo tools.

    Attributes:
        clock: Returns the current time; replace for deterministic answers.
        calls: ``(name, arguments)`` of each call whose arguments parsed, in order.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.clock: Callable[[], datetime] = datetime.now
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def on_start(self, env: AsyncTenEnv) -> None:
        for tool in TOOLS:
            cmd = Cmd.create("tool_register")
            cmd.set_property_from_json("tool", json.dumps(tool))
            result = await env.send_cmd(cmd)
            if result.get_status_code() != StatusCode.OK:
                env.log_warn(
                    f"tool_register {tool['name']} failed: {result.get_property_to_json()}"
                )

    def run(self, name: str, args: dict[str, Any]) -> str:
        """Run tool ``name`` with ``args``.

        Raises:
            ToolError: Unknown tool or bad arguments.
        """
        if name == "get_current_time":
            return self.clock().strftime("%H:%M")
        if name == "get_weather":
            location = args.get("location")
            if not isinstance(location, str) or not location.strip():
                raise ToolError("get_weather needs a non-empty string argument 'location'")
            return fake_weather(location)
        known = ", ".join(t["name"] for t in TOOLS)
        raise ToolError(f"unknown tool '{name}' (known: {known})")

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        if cmd.get_name() != "tool_call":
            await super().on_cmd(env, cmd)
            return
        delay = env.get_property_int("delay_ms")
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        try:
            if not cmd.is_property_exist("name"):
                raise ToolError("tool_call has no 'name' property")
            name = cmd.get_property_string("name")
            args = _arguments(cmd)
            self.calls.append((name, args))
            content = self.run(name, args)
        except (ToolError, RuntimeError) as exc:
            env.log_warn(f"tool_call failed: {exc}")
            await env.return_result(CmdResult.error(str(exc)), cmd)
            return
        result = CmdResult.create(StatusCode.OK)
        result.set_property_from_json(
            "tool_result", json.dumps({"type": "llmresult", "content": content})
        )
        await env.return_result(result, cmd)
