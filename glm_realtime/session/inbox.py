"""The session's one ordered inbox: everything that may change a conversation goes here.

Producers (the socket reader, the host's cmds and audio, tool tasks, timers, ``stop()``)
only enqueue; the owner task takes items one at a time, in arrival order.

Bound: *bulk* items (server events, user audio and video) count against ``limit``; a
producer of bulk waits while the inbox holds that many (back-pressure on the socket and on
the graph). *Control* items (host cmds, tool results, timers, connection changes, stop)
are always admitted at once, so no cmd handler, tool or timer ever waits on the owner;
their number is bounded by their sources (one per cmd in flight, per tool call, per timer).
Once closed (the owner ended) puts are dropped, so no producer is stranded.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from realtime import events as ev
from realtime.session import FunctionTool

from .handler import ToolOutcome

__all__ = [
    "AudioIn",
    "Connected",
    "Disconnected",
    "FlushCmd",
    "Inbox",
    "InboxItem",
    "RegisterTool",
    "ServerEventIn",
    "StopCmd",
    "TimerFired",
    "ToolResult",
    "UserJoined",
    "UserLeft",
    "VideoIn",
]


@dataclass(frozen=True)
class Connected:
    """Socket ``gen`` is open (before its first event)."""

    gen: int
    conn: Any  # the realtime Connection; only the shell uses it
    handshake_ms: float


@dataclass(frozen=True)
class ServerEventIn:
    """An event read from socket ``gen``."""

    gen: int
    event: ev.ServerEvent


@dataclass(frozen=True)
class Disconnected:
    """Socket ``gen`` ended (or never opened); ``error`` is None for a normal close."""

    gen: int
    error: BaseException | None


@dataclass(frozen=True)
class AudioIn:
    """User audio, s16le mono at ``sample_rate``."""

    pcm: bytes
    sample_rate: int


@dataclass(frozen=True)
class VideoIn:
    """A JPEG frame (``video_passive``)."""

    jpeg: bytes


@dataclass(frozen=True)
class FlushCmd:
    """The host's ``flush``: barge-in, and the end of the turn under client VAD."""


@dataclass(frozen=True)
class UserJoined:
    """``on_user_joined``."""


@dataclass(frozen=True)
class UserLeft:
    """``on_user_left``."""


@dataclass(frozen=True)
class RegisterTool:
    """``tool_register``, already validated by the node."""

    tool: FunctionTool


@dataclass(frozen=True)
class ToolResult:
    """Tool call ``seq`` answered (a timeout or failure is an outcome too)."""

    seq: int
    outcome: ToolOutcome


@dataclass(frozen=True)
class TimerFired:
    """A timer the owner set: ``proven`` (socket ``gen`` stayed up) or ``reconnect``."""

    kind: Literal["proven", "reconnect"]
    gen: int


@dataclass(frozen=True)
class StopCmd:
    """``stop()``: end the conversation."""


InboxItem = (
    Connected
    | ServerEventIn
    | Disconnected
    | AudioIn
    | VideoIn
    | FlushCmd
    | UserJoined
    | UserLeft
    | RegisterTool
    | ToolResult
    | TimerFired
    | StopCmd
)
_BULK = (ServerEventIn, AudioIn, VideoIn)


class Inbox:
    """FIFO of :data:`InboxItem`, bounded for bulk items (see the module docstring)."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._items: deque[InboxItem] = deque()
        self._bulk = 0
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """No more items are taken."""
        return self._closed

    def put_control(self, item: InboxItem) -> None:
        """Enqueue a control item now (never waits)."""
        if self._closed:
            return
        self._append(item)

    async def put(self, item: InboxItem) -> None:
        """Enqueue a bulk item; waits while the inbox holds ``limit`` bulk items."""
        while not self._closed and self._bulk >= self.limit:
            self._writable.clear()
            await self._writable.wait()
        if not self._closed:
            self._append(item)

    def _append(self, item: InboxItem) -> None:
        self._items.append(item)
        if isinstance(item, _BULK):
            self._bulk += 1
        self._readable.set()

    async def get(self) -> InboxItem:
        """The oldest item; waits while empty."""
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        if isinstance(item, _BULK):
            self._bulk -= 1
            if self._bulk < self.limit:
                self._writable.set()
        return item

    def close(self) -> None:
        """Take nothing more: drop what is queued and release every waiting producer."""
        self._closed = True
        self._items.clear()
        self._bulk = 0
        self._writable.set()
