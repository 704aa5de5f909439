"""The assistant's side of each response: audio decoded per response, sentences, timing.

Part of the conversation core (no I/O): it reads response events, keeps each response's
state in the :class:`~.responses.ResponseTracker` and emits outputs through ``emit``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from realtime import events as ev
from realtime.errors import ProtocolViolation

from ..config import ExtensionConfig
from .effects import Effect, Send
from .outbox import AudioOut, TranscriptOut
from .responses import ResponseState, ResponseTracker

__all__ = ["Downlink", "StreamEvent"]

logger = logging.getLogger(__name__)

StreamEvent = (
    ev.ResponseCreated
    | ev.ResponseAudioDelta
    | ev.ResponseAudioDone
    | ev.ResponseAudioTranscriptDelta
    | ev.ResponseTextDelta
    | ev.ResponseAudioTranscriptDone
    | ev.ResponseTextDone
)


class Downlink:
    """Turns response events into audio and transcript outputs."""

    def __init__(
        self,
        config: ExtensionConfig,
        clock: Callable[[], float],
        responses: ResponseTracker,
        emit: Callable[[Effect], None],
    ) -> None:
        self.config = config
        self.clock = clock
        self.responses = responses
        self._emit = emit

    def take(self, event: StreamEvent) -> None:
        """One response event."""
        match event:
            case ev.ResponseCreated():
                self.response(event.response.id)
            case ev.ResponseAudioDelta():
                self._audio_delta(event)
            case ev.ResponseAudioDone():
                response = self.response(event.response_id)
                if response is not None:
                    self._play(response, response.decoder.flush())
            case ev.ResponseAudioTranscriptDelta() | ev.ResponseTextDelta():
                self._text_delta(event.response_id, event.delta)
            case ev.ResponseAudioTranscriptDone():
                self._final_text(event.response_id, event.transcript)
            case ev.ResponseTextDone():
                self._final_text(event.response_id, event.text)

    def response(self, response_id: str | None) -> ResponseState | None:
        """The live response an event belongs to; cancels a late one the user barged in on."""
        response, cancel_late = self.responses.get(response_id)
        if cancel_late:
            logger.info("= cancelling %s: it answers a request the user barged in on", response_id)
            self._emit(Send(ev.ResponseCancel()))
        return response

    def finish(self, response: ResponseState) -> None:
        """A response ended normally: its audio tail and its last words go out now."""
        self._play(response, response.decoder.flush())
        self._emit(TranscriptOut(response.splitter.finish(), "assistant", True))

    def _audio_delta(self, event: ev.ResponseAudioDelta) -> None:
        response = self.response(event.response_id)
        if response is None or not self.config.audio_out:
            return
        try:
            pcm = response.decoder.decode(event.delta)
        except ProtocolViolation as exc:
            logger.warning("! skipping an audio delta of %s: %s", response.id, exc)
            return
        if response.first_audio_at is None:
            response.first_audio_at = self.clock()
        self._play(response, pcm)

    def _play(self, response: ResponseState, pcm: bytes) -> None:
        response.audio_samples += len(pcm) // 2
        if pcm:
            self._emit(AudioOut(pcm, self.config.sample_rate))

    def _text_delta(self, response_id: str | None, delta: str) -> None:
        response = self.response(response_id)
        if response is None:
            return
        if response.first_text_at is None:
            response.first_text_at = self.clock()
        for sentence in response.splitter.feed(delta):
            self._emit(TranscriptOut(sentence, "assistant", False))

    def _final_text(self, response_id: str | None, text: str) -> None:
        response = self.response(response_id)
        if response is not None and text:
            response.final_transcript = text
