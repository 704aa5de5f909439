"""The objects GLM-Realtime's server events carry: the session, a response and its usage,
the conversation, an error.

Read as leniently as the events that carry them (see :mod:`realtime.server_events`): every
field but a response's ``id`` is optional, unknown fields are kept (``extra="allow"``) and an
error's numeric ``code`` is read as text. Conversation items are :mod:`realtime.items`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from realtime.items import ConversationItem

__all__ = [
    "ConversationInfo",
    "ErrorDetail",
    "InputTokenDetails",
    "OutputTokenDetails",
    "ResponseInfo",
    "SessionInfo",
    "Usage",
]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class SessionInfo(_Lenient):
    """The effective session as the server reports it (values are not re-validated)."""

    id: str | None = None
    model: str | None = None
    input_audio_format: str | None = None
    output_audio_format: str | None = None
    instructions: str | None = None
    voice: str | None = None
    turn_detection: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    beta_fields: dict[str, Any] | None = None


class InputTokenDetails(_Lenient):
    """Input token split."""

    cached_tokens: int = 0
    text_tokens: int = 0
    audio_tokens: int = 0


class OutputTokenDetails(_Lenient):
    """Output token split."""

    text_tokens: int = 0
    audio_tokens: int = 0


class Usage(_Lenient):
    """Token usage of one response (the old doc says GLM reported zeros)."""

    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_token_details: InputTokenDetails | None = None
    output_token_details: OutputTokenDetails | None = None


class ResponseInfo(_Lenient):
    """A response as ``response.created``/``.done``/``.cancelled`` report it."""

    id: str
    object: str | None = None
    status: str | None = None
    status_details: dict[str, Any] | None = None
    output: list[ConversationItem] | None = None
    usage: Usage | None = None


class ConversationInfo(_Lenient):
    """The conversation a session holds."""

    id: str | None = None
    object: str | None = None


class ErrorDetail(_Lenient):
    """What went wrong; ``type`` was absent in live tests, ``code`` may be numeric."""

    type: str | None = None
    code: str | None = None
    message: str = ""
    param: str | None = None
    event_id: str | None = None

    @field_validator("code", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
