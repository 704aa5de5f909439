"""Events a client sends to GLM-Realtime.

Every event carries ``event_id`` and ``client_timestamp`` (ms), filled in when not given:
GLM's server VAD needs ``client_timestamp`` on every ``input_audio_buffer.append`` or the
turn never ends. Serialise with :meth:`ClientEventBase.to_json`, which leaves out ``None``.
The models are strict to build and lenient to read (see :mod:`realtime.wire`).

The uplink sends ten ``input_audio_buffer.append`` events a second per session, so
:func:`audio_append_json` builds that one event's wire bytes directly, without pydantic.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Union

import pybase64
from pydantic import Field

from realtime.items import ItemParam
from realtime.session import SessionConfig
from realtime.wire import WireModel

__all__ = [
    "ClientEvent",
    "ClientEventBase",
    "ConversationItemCreate",
    "ConversationItemDelete",
    "ConversationItemRetrieve",
    "InputAudioBufferAppend",
    "InputAudioBufferAppendVideoFrame",
    "InputAudioBufferClear",
    "InputAudioBufferCommit",
    "InputAudioBufferPreCommit",
    "ResponseCancel",
    "ResponseCreate",
    "SessionUpdate",
    "audio_append_json",
    "new_event_id",
    "now_ms",
]


# Event ids: a random per-process prefix and a counter, 32 hex digits like uuid4().hex,
# without a getrandom system call for each of the ten appends a second per session.
_EVENT_ID_PREFIX = os.urandom(10).hex()
_event_counter = itertools.count()


def new_event_id() -> str:
    """A fresh client event id, unique within this process and, by its prefix, beyond."""
    return f"evt_{_EVENT_ID_PREFIX}{next(_event_counter) & 0xFFFFFFFFFFFF:012x}"


def now_ms() -> int:
    """Wall-clock time in milliseconds, as ``client_timestamp`` wants it."""
    return time.time_ns() // 1_000_000


class ClientEventBase(WireModel):
    """Fields every client event has (read, an empty ``event_id`` is a fresh one)."""

    PLACEHOLDERS: ClassVar[Mapping[str, tuple[object, ...]]] = {"event_id": ("",)}

    event_id: str = Field(default_factory=new_event_id)
    client_timestamp: int = Field(default_factory=now_ms)

    def to_json(self) -> str:
        """The wire form: JSON without ``None`` fields."""
        return self.model_dump_json(exclude_none=True)

    def to_dict(self) -> dict[str, Any]:
        """The wire form as a dict."""
        return self.model_dump(mode="json", exclude_none=True)


class SessionUpdate(ClientEventBase):
    """Replace the whole session configuration (GLM does not patch)."""

    type: Literal["session.update"] = "session.update"
    session: SessionConfig


class InputAudioBufferAppend(ClientEventBase):
    """One audio packet, base64 (a WAV file per packet in ``wav`` mode, else raw PCM)."""

    type: Literal["input_audio_buffer.append"] = "input_audio_buffer.append"
    audio: str


def audio_append_json(packet: bytes) -> bytes:
    """The wire form of ``InputAudioBufferAppend`` for one audio packet, as UTF-8 JSON.

    Byte for byte what ``InputAudioBufferAppend(audio=<base64 of packet>).to_json()``
    encodes to (a test checks), without building a model and re-encoding the text: base64
    and the generated id and timestamp never need JSON escaping.

    Args:
        packet: The audio, a WAV file or raw PCM as the session's format wants.

    Returns:
        The event as UTF-8 bytes, ready for a websocket text frame.
    """
    return b"".join(
        (
            b'{"event_id":"',
            new_event_id().encode(),
            b'","client_timestamp":',
            str(now_ms()).encode(),
            b',"type":"input_audio_buffer.append","audio":"',
            pybase64.b64encode(packet),  # SIMD base64, 10x the stdlib's speed
            b'"}',
        )
    )


class InputAudioBufferAppendVideoFrame(ClientEventBase):
    """One base64 JPEG frame; ``chat_mode`` ``video_passive`` only."""

    type: Literal["input_audio_buffer.append_video_frame"] = "input_audio_buffer.append_video_frame"
    video_frame: str


class InputAudioBufferCommit(ClientEventBase):
    """End the user turn (client VAD); the server errors on an empty buffer."""

    type: Literal["input_audio_buffer.commit"] = "input_audio_buffer.commit"


class InputAudioBufferPreCommit(ClientEventBase):
    """Undocumented; the official web demo sends it at local end of speech."""

    type: Literal["input_audio_buffer.pre_commit"] = "input_audio_buffer.pre_commit"


class InputAudioBufferClear(ClientEventBase):
    """Drop the uncommitted input audio."""

    type: Literal["input_audio_buffer.clear"] = "input_audio_buffer.clear"


class ConversationItemCreate(ClientEventBase):
    """Add an item (on GLM: function call output, or text)."""

    type: Literal["conversation.item.create"] = "conversation.item.create"
    item: ItemParam
    previous_item_id: str | None = None


class ConversationItemDelete(ClientEventBase):
    """Remove an item from the server's conversation."""

    type: Literal["conversation.item.delete"] = "conversation.item.delete"
    item_id: str


class ConversationItemRetrieve(ClientEventBase):
    """Ask the server for an item."""

    type: Literal["conversation.item.retrieve"] = "conversation.item.retrieve"
    item_id: str


class ResponseCreate(ClientEventBase):
    """Ask for a response (client VAD, or after tool output); GLM takes no parameters."""

    type: Literal["response.create"] = "response.create"


class ResponseCancel(ClientEventBase):
    """Stop the response in progress (text already generated stays in history)."""

    type: Literal["response.cancel"] = "response.cancel"


ClientEvent = Annotated[
    Union[
        SessionUpdate,
        InputAudioBufferAppend,
        InputAudioBufferAppendVideoFrame,
        InputAudioBufferCommit,
        InputAudioBufferPreCommit,
        InputAudioBufferClear,
        ConversationItemCreate,
        ConversationItemDelete,
        ConversationItemRetrieve,
        ResponseCreate,
        ResponseCancel,
    ],
    Field(discriminator="type"),
]
