"""What the session says to its host, sent in order by one task of its own.

The owner never awaits the graph: it appends outputs here and goes on with the next inbox
item, so a slow downstream node (a transcript writer on a slow disk, a stuck player)
cannot stall the GLM receive loop. One sender task (``glm-session:outbox``) calls the
:class:`SessionHandler` for each output, oldest first, and waits for each.

Policy when the host is slower than GLM:

* audio is bounded in bytes (``audio_limit``): past it the *oldest* queued audio is dropped
  (counted in ``dropped_audio_bytes``), so what plays is the freshest;
* other outputs are bounded in count (``item_limit``): past it the *new* one is dropped
  (counted in ``dropped_items``), so what is queued keeps its order;
* a flush drops every audio output queued before it: that audio is stale by definition,
  and it can then never play after the flush.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .handler import SessionHandler
from .memory import Role

__all__ = [
    "AudioOut",
    "ErrorOut",
    "FlushOut",
    "HistoryOut",
    "MetricsOut",
    "Outbox",
    "Output",
    "TranscriptOut",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioOut:
    """Assistant audio, s16le mono."""

    pcm: bytes
    sample_rate: int


@dataclass(frozen=True)
class TranscriptOut:
    """A transcript piece; ``final`` ends the segment."""

    text: str
    role: Role
    final: bool


@dataclass(frozen=True)
class FlushOut:
    """Stop playing queued assistant audio."""


@dataclass(frozen=True)
class MetricsOut:
    """Timing and usage figures."""

    metrics: dict[str, object]


@dataclass(frozen=True)
class ErrorOut:
    """A server or connection error; ``fatal``: the session gave up."""

    code: str | None
    message: str
    fatal: bool


@dataclass(frozen=True)
class HistoryOut:
    """A turn for the storage node."""

    role: Role
    text: str


Output = AudioOut | TranscriptOut | FlushOut | MetricsOut | ErrorOut | HistoryOut


class Outbox:
    """Ordered, bounded outputs to a :class:`SessionHandler` (policy in the module docstring)."""

    def __init__(
        self,
        handler: SessionHandler,
        *,
        audio_limit: int = 960_000,
        item_limit: int = 1024,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.handler = handler
        self._on_idle = on_idle
        self.audio_limit = audio_limit
        self.item_limit = item_limit
        self.dropped_audio_bytes = 0
        self.dropped_items = 0
        self._queue: deque[Output] = deque()
        self._audio_bytes = 0
        self._others = 0
        self._busy = False
        self._readable = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def audio_bytes(self) -> int:
        """Bytes of audio queued."""
        return self._audio_bytes

    def __len__(self) -> int:
        return len(self._queue)

    def idle(self) -> bool:
        """Nothing queued and nothing being sent."""
        return not self._queue and not self._busy

    def put(self, out: Output) -> None:
        """Queue ``out`` (never waits)."""
        match out:
            case AudioOut(pcm=pcm):
                self._audio_bytes += len(pcm)
                while self._audio_bytes > self.audio_limit and self._drop_oldest_audio():
                    pass
            case FlushOut():
                self._drop_audio()
            case _ if self._others >= self.item_limit:
                self.dropped_items += 1
                logger.warning("! host too slow: dropped an output (%d so far)", self.dropped_items)
                return
        if not isinstance(out, AudioOut):
            self._others += 1
        self._queue.append(out)
        self._idle.clear()
        self._readable.set()

    def _drop_oldest_audio(self) -> bool:
        for out in self._queue:
            if isinstance(out, AudioOut):
                self._queue.remove(out)
                self._audio_bytes -= len(out.pcm)
                self.dropped_audio_bytes += len(out.pcm)
                logger.warning(
                    "! host too slow: dropped %d bytes of queued audio", self.dropped_audio_bytes
                )
                return True
        return False

    def _drop_audio(self) -> None:
        kept: deque[Output] = deque(out for out in self._queue if not isinstance(out, AudioOut))
        self._queue = kept
        self._audio_bytes = 0

    async def wait_idle(self) -> None:
        """Wait until every queued output was handed to the host."""
        await self._idle.wait()

    async def run(self) -> None:
        """Send outputs oldest first, forever (the session cancels it on stop)."""
        while True:
            while not self._queue:
                if not self._idle.is_set():
                    self._idle.set()
                    if self._on_idle is not None:
                        self._on_idle()
                self._readable.clear()
                await self._readable.wait()
            out = self._queue.popleft()
            if isinstance(out, AudioOut):
                self._audio_bytes -= len(out.pcm)
            else:
                self._others -= 1
            self._busy = True
            try:
                await self._send(out)
            except Exception:  # noqa: BLE001 - a host failure must not end the session
                logger.exception("! host failed to take %s", type(out).__name__)
            finally:
                self._busy = False

    async def _send(self, out: Output) -> None:
        handler = self.handler
        match out:
            case AudioOut(pcm=pcm, sample_rate=rate):
                await handler.send_audio(pcm, rate)
            case TranscriptOut(text=text, role=role, final=final):
                await handler.send_transcript(text, role, final)
            case FlushOut():
                await handler.send_flush()
            case MetricsOut(metrics=metrics):
                await handler.send_metrics(metrics)
            case ErrorOut(code=code, message=message, fatal=fatal):
                await handler.send_error(code, message, fatal)
            case HistoryOut(role=role, text=text):
                await handler.append_history(role, text)
