"""One caller turn as :class:`~glm_gym.environment.VoiceEnv` plays it: which of the
assistant's replies answer it, when it is over, and its figures.

A reply *answers* the turn when it started at or after the turn's start (``from_ms``, the
caller's line or silence); a reply that started earlier belongs to an earlier turn even
when it ends during this one. That happens on the wall clock, where a step returns at
its reply's first audio and the reply plays on into the next step, the one a ``barge in``
cuts short; the cut reply's words still count among what the assistant said in this
step (``since_seq``), never as its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from glm_gym.caller import Utterance
from glm_gym.collector import Collector, Reply
from glm_gym.world import World

__all__ = ["Turn", "still_speaking"]


@dataclass
class Turn:
    """The bookkeeping of one step's turn; times on the call's clock."""

    since_seq: int
    """Events after this one happened during the step."""
    from_ms: float = 0.0
    """When the caller's part began (its line, or its silence)."""
    utterance: Utterance | None = None
    playing_until: float | None = None
    """When the last reply stops playing: a polite caller's line starts there."""
    spoke_over: Reply | None = None
    """The reply a barge-in speaks over (it barged in if it started before that ended)."""
    previous_reply: str = ""
    """Wall clock: the words of the reply the last step left playing, once it ended."""

    def said(self, collector: Collector) -> list[Reply]:
        """Replies that ended during the step, and the one still in progress."""
        replies = [r for r in collector.replies if r.seq > self.since_seq]
        if collector.current is not None:
            replies.append(collector.current)
        return replies

    def answers(self, collector: Collector) -> list[Reply]:
        """The replies to this turn's line (or silence), done ones first."""
        return [r for r in self.said(collector) if r.started_ms >= self.from_ms]

    def speaking(self, collector: Collector) -> bool:
        """An answer of this turn is being heard (its first audio arrived; its words may
        come later: the node sends the transcript a sentence at a time)."""
        current = collector.current
        return (
            current is not None
            and current.first_audio_ms is not None
            and current.started_ms >= self.from_ms
            and (self.utterance is None or self.utterance.end_ms is not None)
        )

    def over(self, collector: Collector) -> bool:
        """The assistant's turn is over: its last answer is final and came after the
        caller's last transcript (tool round trips included), or the call failed."""
        if collector.fatal:
            return True
        if self.utterance is not None and self.utterance.end_ms is None:
            return False
        if collector.current is not None:
            return False
        answers = [r for r in self.answers(collector) if r.done_ms is not None]
        if not answers or not answers[-1].final:
            return False
        last_user = collector.user_texts[-1].seq if collector.user_texts else 0
        return answers[-1].seq > last_user

    def figures(
        self,
        collector: Collector,
        world: World,
        first_call: int,
        *,
        barged: bool,
        clock: str,
    ) -> dict[str, Any]:
        """What the step reports: words, transcripts, tool calls, latencies, flags."""
        utterance = self.utterance
        calls = world.calls[first_call:]
        latencies: dict[str, Any] = {"clock": clock}
        answers = self.answers(collector)
        audio_at = [r.first_audio_ms for r in answers if r.first_audio_ms is not None]
        if utterance is not None and utterance.end_ms is not None and audio_at:
            latencies["voice_to_voice_ms"] = round(audio_at[0] - utterance.end_ms, 1)
        if calls:
            # Dead air of the tool round trip: the call reached the world -> audio again.
            after = [at for at in audio_at if at >= calls[0].at_ms]
            if after:
                latencies["tool_wait_ms"] = round(after[0] - calls[0].at_ms, 1)
        interrupted = False
        if barged and utterance is not None and utterance.start_ms is not None:
            cuts = [f for f in collector.flushes if f >= utterance.start_ms]
            if cuts:
                interrupted = True
                latencies["barge_in_yield_ms"] = round(cuts[0] - utterance.start_ms, 1)
        return {
            "assistant": " ".join(r.text for r in self.said(collector) if r.text),
            "heard": [u.text for u in collector.user_texts if u.seq > self.since_seq],
            "tool_calls": [c.to_json() for c in calls],
            "latencies": latencies,
            "interrupted": interrupted,
            "barged_in": barged,
            "speaking": still_speaking(collector),
        }


def still_speaking(collector: Collector) -> bool:
    """The assistant is still streaming a reply it has started to speak: its words so far
    are not all of them (the wall clock; on the virtual clock a step ends after the last)."""
    current = collector.current
    return current is not None and current.first_audio_ms is not None
