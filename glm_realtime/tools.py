"""Tool metadata as graph nodes register it, turned into GLM function tools.

``tool_register`` carries ten_ai_base's ``LLMToolMetadata``: ``{name, description,
parameters: [{name, type, description, required}]}``. Newer nodes send ``parameters``
as a JSON Schema object already; both are accepted.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from realtime._validation import describe_validation_error
from realtime.errors import ConfigError
from realtime.session import FunctionTool

__all__ = ["tool_from_metadata", "tool_result_text"]

_JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array"}


class _Parameter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    type: str = "string"
    description: str = ""
    required: bool = False


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    description: str
    parameters: list[_Parameter] | dict[str, Any] = []


def tool_from_metadata(metadata: object) -> FunctionTool:
    """A validated FunctionTool; ConfigError names what is wrong with the metadata."""
    try:
        meta = _Metadata.model_validate(metadata)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid tool metadata: {describe_validation_error(exc, 'tool')}"
        ) from exc
    if isinstance(meta.parameters, dict):
        schema = meta.parameters
    else:
        unknown = [p.type for p in meta.parameters if p.type not in _JSON_TYPES]
        if unknown:
            raise ConfigError(
                f"tool '{meta.name}': parameter type {unknown[0]!r} is not one of "
                f"{', '.join(sorted(_JSON_TYPES))}"
            )
        schema = {
            "type": "object",
            "properties": {
                p.name: {"type": p.type, "description": p.description} for p in meta.parameters
            },
            "required": [p.name for p in meta.parameters if p.required],
        }
    return FunctionTool(name=meta.name, description=meta.description, parameters=schema)


def tool_result_text(result_json: str) -> str:
    """The text GLM gets from an ``LLMToolResult`` (``{type, content}``).

    ``content`` is a string or a list of content parts; only text parts reach a voice
    model, joined by newlines.
    """
    try:
        result = json.loads(result_json)
    except ValueError as exc:
        raise ValueError(f"tool_result is not JSON: {exc}") from exc
    content = result.get("content") if isinstance(result, dict) else result
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    raise ValueError("tool_result has no string or list 'content'")
