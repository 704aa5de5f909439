"""Every GLM-Realtime event, and the two parse functions that never raise.

``parse_server_event`` turns a frame into a typed server event; ``parse_client_event``
does the same for servers that receive client events (the embedded backend, the test
server). Neither raises: a frame that is not JSON, has no ``type`` or fails validation
becomes an :class:`InvalidEvent`, an unknown ``type`` an :class:`UnknownEvent`; both
carry the raw data and the whole reason, every field named.

Client frames are read leniently, as GLM reads them (see :mod:`realtime.wire`: ``null``
is "not given", unknown fields are ignored, the SDKs' placeholders mean the default);
``strict=True`` reads them the way we build them, to check that a sender is exact.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from realtime._validation import describe_validation_error
from realtime.client_events import *  # noqa: F403 - this module is the one import point
from realtime.client_events import ClientEvent
from realtime.client_events import __all__ as _client_all
from realtime.items import ContentPart, ConversationItem, ItemParam
from realtime.server_events import *  # noqa: F403
from realtime.server_events import KnownServerEvent
from realtime.server_events import __all__ as _server_all
from realtime.wire import LENIENT

__all__ = [
    *_client_all,
    *_server_all,
    "ContentPart",
    "ConversationItem",
    "InvalidEvent",
    "ItemParam",
    "ServerEvent",
    "UnknownEvent",
    "describe",
    "parse_client_event",
    "parse_server_event",
]


class _Unparsed(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str | None
    raw: Any

    def __repr__(self) -> str:
        # The raw frame may hold base64 audio: show its size, never its content.
        name = type(self).__name__
        return f"{name}(type={self.type!r}, raw_size={_size(self.raw)}{self._extra_repr()})"

    def _extra_repr(self) -> str:
        return ""

    __str__ = __repr__

    @property
    def event_id(self) -> str | None:
        """The sender's ``event_id``, if the frame had one (to echo in an error)."""
        given = self.raw.get("event_id") if isinstance(self.raw, dict) else None
        return given if isinstance(given, str) and given else None


class UnknownEvent(_Unparsed):
    """A well-formed event of a type this package does not know."""

    kind: Literal["unknown"] = "unknown"


class InvalidEvent(_Unparsed):
    """A frame that could not be understood; ``reason`` says why."""

    kind: Literal["invalid"] = "invalid"
    reason: str

    def _extra_repr(self) -> str:
        return f", reason={self.reason!r}"


ServerEvent = Union[KnownServerEvent, UnknownEvent, InvalidEvent]

_SERVER_ADAPTER: TypeAdapter[KnownServerEvent] = TypeAdapter(KnownServerEvent)
_CLIENT_ADAPTER: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)


def _union_types(union: Any) -> frozenset[str]:
    members = get_args(get_args(union)[0])
    return frozenset(get_args(m.model_fields["type"].annotation)[0] for m in members)


SERVER_EVENT_TYPES = _union_types(KnownServerEvent)
CLIENT_EVENT_TYPES = _union_types(ClientEvent)

_T = TypeVar("_T")


def _size(raw: Any) -> int:
    if isinstance(raw, (str, bytes, bytearray)):
        return len(raw)
    try:
        return len(json.dumps(raw, default=str))
    except (TypeError, ValueError):
        return -1


def _parse(
    data: str | bytes | bytearray | Mapping[str, Any],
    adapter: TypeAdapter[_T],
    known: frozenset[str],
    context: Mapping[str, Any] | None = None,
) -> _T | UnknownEvent | InvalidEvent:
    if isinstance(data, Mapping):
        obj: Any = dict(data)
    else:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return InvalidEvent(type=None, raw=data, reason=f"frame is not JSON: {exc}")
    if not isinstance(obj, dict):
        return InvalidEvent(
            type=None, raw=obj, reason=f"event must be a JSON object, got {type(obj).__name__}"
        )
    event_type = obj.get("type")
    if not isinstance(event_type, str) or not event_type:
        return InvalidEvent(type=None, raw=obj, reason="event has no 'type' string")
    if event_type not in known:
        return UnknownEvent(type=event_type, raw=obj)
    try:
        return adapter.validate_python(obj, context=context)
    except ValidationError as exc:
        reason = describe_validation_error(exc)
        # Drop the discriminator prefix pydantic puts on every location.
        reason = reason.replace(f"{event_type}.", "")
        return InvalidEvent(type=event_type, raw=obj, reason=reason)


def parse_server_event(
    data: str | bytes | bytearray | Mapping[str, Any],
) -> ServerEvent:
    """Parse one server frame; never raises."""
    return _parse(data, _SERVER_ADAPTER, SERVER_EVENT_TYPES)


def parse_client_event(
    data: str | bytes | bytearray | Mapping[str, Any],
    *,
    strict: bool = False,
) -> ClientEvent | UnknownEvent | InvalidEvent:
    """Parse one client frame (for servers), leniently unless ``strict``; never raises."""
    return _parse(data, _CLIENT_ADAPTER, CLIENT_EVENT_TYPES, None if strict else LENIENT)


def describe(event: BaseModel) -> str:
    """A short log line for an event: its type and sizes, never audio or text content."""
    event_type = getattr(event, "type", type(event).__name__)
    for field in ("delta", "audio", "video_frame"):
        value = getattr(event, field, None)
        if isinstance(value, str):
            return f"{event_type} ({field} {len(value)} chars)"
    return str(event_type)
