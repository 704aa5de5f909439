"""What the session tracks per response: transcript, audio decoder, timing, tools, stale ids."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from realtime.audio import DownlinkDecoder
from realtime.server_objects import Usage

from .transcript import SentenceSplitter

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
    """One response from its first event to its follow-up after tools.

    Each response decodes its audio with a decoder of its own, so a resampler tail or an
    odd byte of one response never reaches the next.
    """

    id: str
    created_at: float
    turn_end_at: float | None
    decoder: DownlinkDecoder
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
    what happened. A response is *stale* once interrupted or finished; events for it are
    then ignored and it is never revived. The tracker *settles* when no response is live,
    none waits for its tool follow-up, and no requested response is still to start.

    A barge-in while our ``response.create`` is unanswered marks that request cancelled:
    the response that starts next is the late answer, and :meth:`start` says to cancel it.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        decoder: Callable[[], DownlinkDecoder],
        stale_limit: int = 64,
    ) -> None:
        self.clock = clock
        self._decoder = decoder
        self.active: ResponseState | None = None
        self.done_count = 0
        self.answered_count = 0  # responses done that answered the user (not a greeting)
        self._live: dict[str, ResponseState] = {}
        self._stale = BoundedSet(stale_limit)
        # Interrupted responses until their response.done, for their metrics (bounded).
        self._interrupted: OrderedDict[str, ResponseState] = OrderedDict()
        self._awaiting_followup: set[str] = set()
        self.requested = False  # response.create sent, its response not started yet
        self._cancel_requested = False
        self._turn_end_at: float | None = None

    def settled(self) -> bool:
        """Nothing in progress and nothing owed."""
        return self.active is None and not self._awaiting_followup and not self.requested

    def live_count(self) -> int:
        """Responses tracked as live (bounded: one active plus late ones)."""
        return len(self._live)

    def turn_ended(self) -> None:
        """The user stopped speaking (server VAD) or committed (client VAD)."""
        self._turn_end_at = self.clock()

    def request(self) -> None:
        """A ``response.create`` goes out."""
        self.requested = True

    def start(self, response_id: str) -> tuple[ResponseState | None, bool]:
        """A response's first event (``response.created`` or an early delta).

        Returns the live state (None for a stale id: never revived) and whether this is
        the late answer to a request a barge-in cancelled (the caller cancels it).
        """
        if response_id in self._stale:
            return None, False
        known = self._live.get(response_id)
        if known is not None:
            return known, False
        response = ResponseState(response_id, self.clock(), self._turn_end_at, self._decoder())
        self._turn_end_at = None
        self.requested = False
        if self._cancel_requested:
            self._cancel_requested = False
            response.interrupted = True
            self._stale.add(response_id)
            return None, True
        self._live[response_id] = response
        self.active = response
        return response, False

    def get(self, response_id: str | None) -> tuple[ResponseState | None, bool]:
        """The live response an event belongs to (see :meth:`start`)."""
        if response_id is None:
            return self.active, False
        return self.start(response_id)

    def interrupt(self) -> ResponseState | None:
        """Barge-in: every live response is interrupted and stale, a pending request cancelled.

        Returns the response that was playing, if any. Tool follow-ups still owed are
        dropped: they would answer the old question over the new turn.
        """
        if self.requested:
            self.requested = False
            self._cancel_requested = True
        self._awaiting_followup.clear()
        playing = self.active if self.active is not None and not self.active.done else None
        for response in self._live.values():
            response.interrupted = True
            self._stale.add(response.id)
            if not response.done:  # its response.done is still to come, with its metrics
                self._interrupted[response.id] = response
        while len(self._interrupted) > self._stale.limit:
            self._interrupted.popitem(last=False)
        self._live.clear()
        self.active = None
        return playing

    def finish(self, response_id: str) -> ResponseState:
        """``response.done``: the response (a placeholder if never seen) is done and stale."""
        response = self._live.get(response_id) or self._interrupted.pop(response_id, None)
        if response is None:
            response = ResponseState(
                response_id,
                self.clock(),
                None,
                self._decoder(),
                interrupted=response_id in self._stale,
            )
        response.done = True
        self._stale.add(response_id)
        if self.active is response:
            self.active = None
        if response.pending_tools and not response.interrupted:
            self._awaiting_followup.add(response_id)
        else:
            self._live.pop(response_id, None)
        self.done_count += 1
        if response.turn_end_at is not None:
            self.answered_count += 1
        return response

    def follow_up_due(self, response: ResponseState) -> bool:
        """True once, when a tool response's outputs are all in: time for response.create."""
        if not response.needs_followup():
            return False
        self._awaiting_followup.discard(response.id)
        self._live.pop(response.id, None)
        response.followup_sent = True
        self._turn_end_at = response.turn_end_at  # the follow-up answers the same turn
        self.requested = True
        return True

    def connection_lost(self) -> ResponseState | None:
        """Forget everything of the old socket; returns the response it cut, if any."""
        cut = self.active
        if cut is not None:
            cut.interrupted = True
            self._stale.add(cut.id)
        for response in self._live.values():
            response.interrupted = True
        self.active = None
        self._live.clear()
        self._interrupted.clear()
        self._awaiting_followup.clear()
        self.requested = self._cancel_requested = False
        return cut
