"""Conversation items: what ``conversation.item.create`` sends and the server echoes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from realtime.wire import WireModel

__all__ = ["ContentPart", "ConversationItem", "ItemParam"]


class ContentPart(BaseModel):
    """One part of a message: text, or (server side) audio with its transcript."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    transcript: str | None = None
    audio: str | None = None


class ConversationItem(BaseModel):
    """An item as the server reports it; every field but ``type`` may be missing."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    type: str
    object: str | None = None
    status: str | None = None
    role: str | None = None
    content: list[ContentPart] | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    call_id: str | None = None


class ItemParam(WireModel):
    """An item a client creates.

    GLM uses items for function call output; ``message`` items are accepted by the
    protocol but live clients saw them ignored (use ``instructions`` to carry history).
    ``object`` is always sent (the spec requires it). Read, the empty ``id``, ``call_id``,
    ``role`` and ``status`` that Zhipu's SDKs send mean "not given".
    """

    PLACEHOLDERS: ClassVar[Mapping[str, tuple[object, ...]]] = {
        "id": ("",),
        "call_id": ("",),
        "role": ("",),
        "status": ("",),
    }

    type: Literal["message", "function_call", "function_call_output"]
    object: Literal["realtime.item"] = "realtime.item"
    id: str | None = None
    status: Literal["completed", "incomplete"] | None = None
    role: Literal["user", "assistant", "system"] | None = None
    content: tuple[ContentPart, ...] | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    call_id: str | None = None

    @model_validator(mode="after")
    def _fields_for_type(self) -> ItemParam:
        match self.type:
            case "message" if self.role is None or not self.content:
                raise ValueError("a message item needs a role and non-empty content")
            case "function_call" if self.name is None or self.arguments is None:
                raise ValueError("a function_call item needs name and arguments")
            case "function_call_output" if self.output is None:
                raise ValueError("a function_call_output item needs output")
        return self

    @classmethod
    def function_call_output(cls, output: str, call_id: str | None = None) -> ItemParam:
        """The result of a tool call; ``call_id`` is echoed when the server gave one."""
        return cls(type="function_call_output", output=output, call_id=call_id)

    @classmethod
    def text_message(cls, role: Literal["user", "assistant", "system"], text: str) -> ItemParam:
        """A plain text message item (content type ``text``: the spec has no ``input_text``)."""
        return cls(type="message", role=role, content=(ContentPart(type="text", text=text),))
