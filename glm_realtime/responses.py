"""What the session tracks per response: transcript, timing, tools, and stale ids."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from glm_realtime.transcript import SentenceSplitter
from realtime.server_events import Usage

__all__ = ["BoundedSet", "ResponseState"]


class BoundedSet:
    """A set that forgets its oldest members past ``limit`` (for stale response ids)."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._items: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: str) -> None:
        """Remember ``item``; evict the oldest if over the limit."""
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)


@dataclass
class ResponseState:
    """One response from ``response.created`` to its follow-up after tools."""

    id: str
    created_at: float
    turn_end_at: float | None
    splitter: SentenceSplitter = field(default_factory=SentenceSplitter)
    first_text_at: float | None = None
    first_audio_at: float | None = None
    audio_samples: int = 0
    final_transcript: str | None = None
    done: bool = False
    interrupted: bool = False
    pending_tools: int = 0
    called_tools: int = 0
    followup_sent: bool = False

    @property
    def text(self) -> str:
        """The assistant's words: the server's final transcript, else what streamed."""
        return self.final_transcript if self.final_transcript is not None else self.splitter.text

    def needs_followup(self) -> bool:
        """All tool calls answered after the response ended: time for ``response.create``."""
        return (
            self.done
            and not self.interrupted
            and self.called_tools > 0
            and self.pending_tools == 0
            and not self.followup_sent
        )

    def metrics(
        self, now: float, status: str | None, usage: Usage | None, sample_rate: int
    ) -> dict[str, Any]:
        """The ``metrics`` payload for this response."""

        def ms(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else round((end - start) * 1000, 1)

        return {
            "kind": "response",
            "response_id": self.id,
            "status": status,
            "interrupted": self.interrupted,
            "ttfa_ms": ms(self.turn_end_at, self.first_audio_at),
            "ttft_ms": ms(self.turn_end_at, self.first_text_at),
            "duration_ms": ms(self.created_at, now),
            "audio_out_ms": round(self.audio_samples * 1000 / sample_rate, 1),
            "tool_calls": self.called_tools,
            "usage": usage.model_dump(exclude_none=True) if usage else None,
        }
