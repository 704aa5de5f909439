"""Events GLM-Realtime sends, typed after the spec and what live clients saw.

Field quirks are part of the models, not exceptions to them:

* ``heartbeat`` arrives first, before ``session.created``, and then every 30 s;
* ``speech_started``/``speech_stopped`` may come without ``audio_start_ms``/``audio_end_ms``;
* transcription events may come without ``content_index`` (and ``item_id``);
* ``error`` may come without ``error.type``, and its ``code`` may be a number or a string;
* ``response.function_call_arguments.done`` may come with or without ``call_id``;
* GLM sends ``response.cancelled``, ``conversation.created`` and
  ``response.function_call.simple_browser``, which the OpenAI dialect lacks.

Only the payload an event exists for is required (the ``delta`` of a delta, the ``name``
and ``arguments`` of a call, the ``error`` of an error); everything else is optional.
Unknown fields are kept (``extra="allow"``). The objects the events carry (the session, a
response and its usage, an error) are :mod:`realtime.server_objects`, re-exported here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from realtime.items import ContentPart, ConversationItem
from realtime.server_objects import (
    ConversationInfo,
    ErrorDetail,
    InputTokenDetails,
    OutputTokenDetails,
    ResponseInfo,
    SessionInfo,
    Usage,
)

__all__ = [
    "ConversationCreated",
    "ConversationInfo",
    "ConversationItemCreated",
    "ConversationItemDeleted",
    "ConversationItemRetrieved",
    "ErrorDetail",
    "ErrorEvent",
    "Heartbeat",
    "InputAudioBufferCleared",
    "InputAudioBufferCommitted",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputAudioTranscriptionCompleted",
    "InputAudioTranscriptionFailed",
    "InputTokenDetails",
    "KnownServerEvent",
    "OutputTokenDetails",
    "ResponseAudioDelta",
    "ResponseAudioDone",
    "ResponseAudioTranscriptDelta",
    "ResponseAudioTranscriptDone",
    "ResponseCancelled",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFunctionCallArgumentsDone",
    "ResponseFunctionCallSimpleBrowser",
    "ResponseInfo",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseTextDelta",
    "ResponseTextDone",
    "ServerEventBase",
    "SessionCreated",
    "SessionInfo",
    "SessionUpdated",
    "Usage",
]


class ServerEventBase(BaseModel):
    """Fields every server event may have."""

    model_config = ConfigDict(extra="allow")

    event_id: str | None = None


class Heartbeat(ServerEventBase):
    """Liveness signal: at session create/update, then every 30 s."""

    type: Literal["heartbeat"]


class SessionCreated(ServerEventBase):
    """The session exists; send ``session.update`` now."""

    type: Literal["session.created"]
    session: SessionInfo = Field(default_factory=SessionInfo)


class SessionUpdated(ServerEventBase):
    """The server applied a ``session.update``."""

    type: Literal["session.updated"]
    session: SessionInfo = Field(default_factory=SessionInfo)


class ConversationCreated(ServerEventBase):
    """GLM-only: the conversation was created."""

    type: Literal["conversation.created"]
    conversation: ConversationInfo = Field(default_factory=ConversationInfo)


class ConversationItemCreated(ServerEventBase):
    """An item joined the conversation."""

    type: Literal["conversation.item.created"]
    item: ConversationItem
    previous_item_id: str | None = None


class ConversationItemDeleted(ServerEventBase):
    """An item left the conversation."""

    type: Literal["conversation.item.deleted"]
    item_id: str | None = None


class ConversationItemRetrieved(ServerEventBase):
    """The answer to ``conversation.item.retrieve``."""

    type: Literal["conversation.item.retrieved"]
    item: ConversationItem


class InputAudioTranscriptionCompleted(ServerEventBase):
    """What the user said, from a separate asynchronous ASR (may be empty)."""

    type: Literal["conversation.item.input_audio_transcription.completed"]
    item_id: str | None = None
    content_index: int | None = None
    transcript: str = ""


class InputAudioTranscriptionFailed(ServerEventBase):
    """The user's audio could not be transcribed."""

    type: Literal["conversation.item.input_audio_transcription.failed"]
    item_id: str | None = None
    content_index: int | None = None
    error: ErrorDetail | None = None


class InputAudioBufferCommitted(ServerEventBase):
    """The input buffer became a user item."""

    type: Literal["input_audio_buffer.committed"]
    item_id: str | None = None
    previous_item_id: str | None = None


class InputAudioBufferCleared(ServerEventBase):
    """The input buffer was emptied."""

    type: Literal["input_audio_buffer.cleared"]


class InputAudioBufferSpeechStarted(ServerEventBase):
    """Server VAD heard the user start (the spec lists no fields; SDKs read these)."""

    type: Literal["input_audio_buffer.speech_started"]
    audio_start_ms: int | None = None
    item_id: str | None = None


class InputAudioBufferSpeechStopped(ServerEventBase):
    """Server VAD heard the user stop."""

    type: Literal["input_audio_buffer.speech_stopped"]
    audio_end_ms: int | None = None
    item_id: str | None = None


class ResponseCreated(ServerEventBase):
    """A response started."""

    type: Literal["response.created"]
    response: ResponseInfo


class ResponseDone(ServerEventBase):
    """A response ended (``status`` says how) with its usage."""

    type: Literal["response.done"]
    response: ResponseInfo


class ResponseCancelled(ServerEventBase):
    """GLM-only: a ``response.cancel`` took effect; ``response.done`` follows."""

    type: Literal["response.cancelled"]
    response: ResponseInfo | None = None


class _ResponsePart(ServerEventBase):
    response_id: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None


class ResponseOutputItemAdded(ServerEventBase):
    """Optional on GLM: an output item started."""

    type: Literal["response.output_item.added"]
    response_id: str | None = None
    output_index: int | None = None
    item: ConversationItem | None = None


class ResponseOutputItemDone(ServerEventBase):
    """Optional on GLM: an output item ended."""

    type: Literal["response.output_item.done"]
    response_id: str | None = None
    output_index: int | None = None
    item: ConversationItem | None = None


class ResponseContentPartAdded(_ResponsePart):
    """Optional on GLM: a content part started."""

    type: Literal["response.content_part.added"]
    part: ContentPart | None = None


class ResponseContentPartDone(_ResponsePart):
    """Optional on GLM: a content part ended."""

    type: Literal["response.content_part.done"]
    part: ContentPart | None = None


class ResponseAudioDelta(_ResponsePart):
    """Base64 PCM, 24 kHz mono s16le."""

    type: Literal["response.audio.delta"]
    delta: str


class ResponseAudioDone(_ResponsePart):
    """The response's audio is complete."""

    type: Literal["response.audio.done"]


class ResponseAudioTranscriptDelta(_ResponsePart):
    """Text of the spoken reply (arrives before the audio)."""

    type: Literal["response.audio_transcript.delta"]
    delta: str


class ResponseAudioTranscriptDone(_ResponsePart):
    """The whole transcript; GLM often does not send it, so never wait for it."""

    type: Literal["response.audio_transcript.done"]
    transcript: str = ""


class ResponseTextDelta(_ResponsePart):
    """Text output (text modality)."""

    type: Literal["response.text.delta"]
    delta: str


class ResponseTextDone(_ResponsePart):
    """The whole text output."""

    type: Literal["response.text.done"]
    text: str = ""


class ResponseFunctionCallArgumentsDone(_ResponsePart):
    """The model calls a tool (one event per call; GLM sends no argument deltas)."""

    type: Literal["response.function_call_arguments.done"]
    name: str
    arguments: str
    call_id: str | None = None


class ResponseFunctionCallSimpleBrowser(ServerEventBase):
    """GLM-only: the video model searches on its own; carries a spoken filler line."""

    type: Literal["response.function_call.simple_browser"]
    name: str = "simple_browser"
    session: dict[str, Any] | None = None

    @property
    def filler(self) -> str | None:
        """The line GLM says while it searches, if given."""
        browser = ((self.session or {}).get("beta_fields") or {}).get("simple_browser") or {}
        description = browser.get("description")
        return description if isinstance(description, str) else None


class ErrorEvent(ServerEventBase):
    """An error; most leave the session open."""

    type: Literal["error"]
    error: ErrorDetail


KnownServerEvent = Annotated[
    Union[
        Heartbeat,
        SessionCreated,
        SessionUpdated,
        ConversationCreated,
        ConversationItemCreated,
        ConversationItemDeleted,
        ConversationItemRetrieved,
        InputAudioTranscriptionCompleted,
        InputAudioTranscriptionFailed,
        InputAudioBufferCommitted,
        InputAudioBufferCleared,
        InputAudioBufferSpeechStarted,
        InputAudioBufferSpeechStopped,
        ResponseCreated,
        ResponseDone,
        ResponseCancelled,
        ResponseOutputItemAdded,
        ResponseOutputItemDone,
        ResponseContentPartAdded,
        ResponseContentPartDone,
        ResponseAudioDelta,
        ResponseAudioDone,
        ResponseAudioTranscriptDelta,
        ResponseAudioTranscriptDone,
        ResponseTextDelta,
        ResponseTextDone,
        ResponseFunctionCallArgumentsDone,
        ResponseFunctionCallSimpleBrowser,
        ErrorEvent,
    ],
    Field(discriminator="type"),
]
