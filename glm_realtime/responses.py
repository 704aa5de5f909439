"""What the session tracks per response: transcript, timing, tools, and stale ids."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from glm_realtime.transcript import SentenceSplitter
from realtime.server_events import Usage

__all__ = ["BoundedSet", "ResponseState", "ResponseTracker"]


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


class ResponseTracker:
    """Which response is live, which are stale, and whether the conversation has settled.

    Pure bookkeeping (no I/O): the session asks it where an event belongs and tells it
    what happened. A response is *stale* once interrupted or finished; events for it
    are then ignored. The tracker *settles* when no response is live, none waits for its
    tool follow-up, and no requested response is still to start.
    """

    def __init__(self, clock: Callable[[], float], stale_limit: int = 64) -> None:
        self.clock = clock
        self.active: ResponseState | None = None
        self.done_count = 0
        self._live: dict[str, ResponseState] = {}
        self._stale = BoundedSet(stale_limit)
        self._awaiting_followup: set[str] = set()
        self._requested = False  # response.create sent, response.created not yet seen
        self._turn_end_at: float | None = None

    def settled(self) -> bool:
        """Nothing in progress and nothing owed."""
        return self.active is None and not self._awaiting_followup and not self._requested

    def turn_ended(self) -> None:
        """The user stopped speaking (server VAD) or committed (client VAD)."""
        self._turn_end_at = self.clock()

    def requested(self) -> None:
        """A ``response.create`` went out."""
        self._requested = True

    def created(self, response_id: str) -> ResponseState:
        """A response started; it owns the pending end of turn (a greeting has none)."""
        response = ResponseState(response_id, self.clock(), self._turn_end_at)
        self._turn_end_at = None
        self._requested = False
        self._live[response_id] = response
        self.active = response
        return response

    def get(self, response_id: str | None) -> ResponseState | None:
        """The live response an event belongs to; None for a stale one."""
        if response_id is None:
            return self.active
        if response_id in self._stale:
            return None
        # A delta before (or without) response.created starts tracking it here.
        return self._live.get(response_id) or self.created(response_id)

    def interrupt(self) -> ResponseState | None:
        """Mark the active response interrupted and stale; returns it if there was one."""
        response = self.active
        if response is None or response.done:
            return None
        response.interrupted = True
        self._stale.add(response.id)
        self.active = None
        return response

    def finish(self, response_id: str) -> ResponseState:
        """``response.done``: the response (a placeholder if never seen) is done and stale."""
        response = self._live.pop(response_id, None)
        if response is None:
            response = ResponseState(
                response_id, self.clock(), None, interrupted=response_id in self._stale
            )
        response.done = True
        self._stale.add(response_id)
        if self.active is response:
            self.active = None
        if response.pending_tools and not response.interrupted:
            self._awaiting_followup.add(response_id)
        self.done_count += 1
        return response

    def follow_up_due(self, response: ResponseState) -> bool:
        """True once, when a tool response's outputs are all in: time for response.create."""
        if not response.needs_followup():
            return False
        self._awaiting_followup.discard(response.id)
        response.followup_sent = True
        self._turn_end_at = response.turn_end_at  # the follow-up answers the same turn
        self._requested = True
        return True

    def connection_lost(self) -> ResponseState | None:
        """Forget everything of the old socket; returns the response it cut, if any."""
        cut = self.interrupt()
        self._live.clear()
        self._awaiting_followup.clear()
        self._requested = False
        return cut
