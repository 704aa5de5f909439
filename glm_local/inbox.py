"""The frames one client sent that its session has not handled yet, bounded in bytes.

The session's reader task puts every frame here as it comes off the socket; its consumer
takes them in order. A frame waits at the socket (so TCP throttles the client) while the
inbox holds ``max_bytes`` or more; a frame larger than the whole budget is still taken once
the inbox is empty, so any frame the server accepts (``max_frame_bytes``) gets through.
With websockets' own buffer kept to one frame, what one connection can make the server hold
is about ``max_bytes`` plus two frames, where it was 256 frames of up to 8 MiB.

Each frame keeps the ``time.monotonic()`` at which it was read, so the session can tell how
far behind its client's clock it runs, and the size it was counted at: measured once, since
``sys.getsizeof`` of a str grows when Python caches its UTF-8 form (pydantic's JSON parsing
does), and a frame that gave back more than it took would let the budget drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["DEFAULT_READ_AHEAD_BYTES", "Inbox"]

DEFAULT_READ_AHEAD_BYTES = 4 * 1024 * 1024
"""A minute of 16 kHz audio in base64 JSON takes ~2.6 MB."""


class Inbox:
    """Frames read ahead of the consumer: :meth:`read` fills it, :meth:`get` empties it."""

    def __init__(self, max_bytes: int = DEFAULT_READ_AHEAD_BYTES) -> None:
        self.max_bytes = max_bytes
        self._frames: deque[tuple[str | bytes, float, int]] = deque()  # frame, at, size
        self._bytes = 0
        self._changed = asyncio.Condition()
        self.peak_bytes = 0
        """The most bytes held at once."""
        self.heard_at = time.monotonic()
        """When the last frame arrived (or the inbox was made)."""

    @property
    def held_bytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)

    async def put(self, frame: str | bytes) -> None:
        """Add ``frame``; waits while the inbox is at its budget."""
        size = sys.getsizeof(frame)  # what it occupies, text or binary
        async with self._changed:
            await self._changed.wait_for(
                lambda: not self._frames or self._bytes + size <= self.max_bytes
            )
            self.heard_at = time.monotonic()
            self._frames.append((frame, self.heard_at, size))
            self._bytes += size
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._changed.notify_all()

    async def get(self) -> tuple[str | bytes, float]:
        """The oldest frame and when it arrived; waits for one."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._frames))
            frame, at, size = self._frames.popleft()
            self._bytes -= size
            self._changed.notify_all()
            return frame, at

    async def read(self, ws: ServerConnection) -> None:
        """Put every frame of ``ws`` here until it closes."""
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                await self.put(frame)
