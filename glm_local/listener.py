"""One session's ears: input audio decoding, server VAD and the recogniser.

The session hands it every ``input_audio_buffer.append`` payload and turns what it reports
into protocol events. The blocking methods (:meth:`Listener.load`, :meth:`~Listener.set_vad`,
:meth:`~Listener.feed`, :meth:`~Listener.abort`, :meth:`~Listener.clear`,
:meth:`~Listener.finish`, :meth:`~Listener.close`) are for a worker thread. They take a lock,
because a session that ends cancels its await but not the call already running on a thread:
:meth:`~Listener.close` waits for that call, then frees the recogniser and the VAD, and a
:meth:`~Listener.load` that finishes after it closes what it made. Speech times are on one
clock for the whole stream, across VAD changes and resets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from glm_local.input_audio import TARGET_RATE, InputAudioDecoder
from realtime.audio import InputAudioFormat

if TYPE_CHECKING:
    from glm_local.speech import Recognizer, SpeechDetector

__all__ = ["Listener", "SpeechEdge", "VadParams"]

VadParams = tuple[float, int, int]
"""Server VAD settings: threshold, prefix_padding_ms, silence_duration_ms."""


@dataclass(frozen=True)
class SpeechEdge:
    """Speech started (``started``) or stopped at ``ms`` on the stream's clock."""

    started: bool
    ms: int


class Listener:
    """Decodes the input audio, runs server VAD (if set) and feeds the recogniser."""

    def __init__(
        self, new_recognizer: Callable[[], Recognizer], input_format: InputAudioFormat
    ) -> None:
        self._new_recognizer = new_recognizer
        self._format = input_format
        self._decoder = InputAudioDecoder(input_format)
        self._vad: SpeechDetector | None = None
        self._vad_params: VadParams | None = None
        self._asr: Recognizer | None = None
        self._clock_ms = 0  # stream ms before the current VAD's clock started
        self._buffered_samples = 0  # client VAD: audio appended since the last turn
        self._samples_in = 0  # all audio decoded, at TARGET_RATE
        self._lock = threading.RLock()  # one blocking call at a time, close() last
        self._closed = False

    @property
    def server_vad(self) -> bool:
        """The VAD decides turns (else the client commits them)."""
        return self._vad is not None

    @property
    def audio_s(self) -> float:
        """Seconds of audio decoded so far (the position of the stream's end)."""
        return self._samples_in / TARGET_RATE

    @property
    def has_audio(self) -> bool:
        """A commit now would have speech: in progress (server VAD) or appended (client)."""
        if self._vad is not None:
            return self._vad.in_speech
        return self._buffered_samples > 0

    def load(self) -> None:
        """Make the recogniser (blocking: a decoder, here or in an ASR worker)."""
        asr = self._new_recognizer()
        with self._lock:
            if not self._closed:
                self._asr = asr
                return
        asr.close()  # the session ended while the recogniser was being made

    def set_format(self, input_format: InputAudioFormat) -> None:
        """Decode further audio as ``input_format``."""
        if input_format != self._format:
            self._format = input_format
            self._decoder = InputAudioDecoder(input_format)

    def set_vad(self, params: VadParams | None) -> bool:
        """Run server VAD with ``params``, or none (client VAD); blocking for a new VAD.

        Returns:
            Whether the VAD was replaced or dropped (so an utterance in progress is gone);
            False when the same settings are kept.
        """
        with self._lock:
            if params is not None and params == self._vad_params:
                return False
            if self._vad is not None:
                self._clock_ms += self._vad.stream_ms
                self._vad.close()
            self._vad, self._vad_params = None, None
            if params is not None:
                self._vad, self._vad_params = _new_vad(*params), params
            return True

    def feed(self, audio: str) -> list[SpeechEdge]:
        """Decode one base64 payload, run the VAD, feed the recogniser.

        Raises:
            InvalidAudio: the payload is not audio of the session's format.
        """
        with self._lock:
            return self._feed(audio)

    def _feed(self, audio: str) -> list[SpeechEdge]:
        from glm_local.speech import SpeechStarted

        pcm = self._decoder.decode(audio)
        self._samples_in += len(pcm) // 2
        asr = self._asr
        assert asr is not None, "load() first"
        vad = self._vad
        if vad is None:  # client VAD: everything appended belongs to the turn
            asr.feed(pcm)
            self._buffered_samples += len(pcm) // 2
            return []
        was_speaking = vad.in_speech
        events = vad.feed(pcm)
        starts = [e for e in events if isinstance(e, SpeechStarted)]
        if starts:
            asr.start()
            asr.feed(vad.audio_since(starts[0].audio_start_ms))
        elif was_speaking:
            asr.feed(pcm)
        return [
            SpeechEdge(True, self._clock_ms + e.audio_start_ms)
            if isinstance(e, SpeechStarted)
            else SpeechEdge(False, self._clock_ms + e.audio_end_ms)
            for e in events
        ]

    def end_speech(self) -> None:
        """Server VAD: the client commits, so the speech in progress ends here."""
        assert self._vad is not None
        self._clock_ms += self._vad.stream_ms
        self._vad.reset()

    def abort(self) -> None:
        """Drop the utterance in progress (blocking: the recogniser restarts)."""
        with self._lock:
            assert self._asr is not None, "load() first"
            self._asr.start()
            self._buffered_samples = 0
            if self._vad is not None and self._vad.in_speech:
                self._clock_ms += self._vad.stream_ms
                self._vad.reset()

    def clear(self) -> None:
        """``input_audio_buffer.clear``: drop the utterance and any half-decoded input."""
        with self._lock:
            self.abort()
            self._decoder.reset()

    def finish(self) -> str:
        """End the turn and return its transcript (blocking: the final decode)."""
        with self._lock:
            assert self._asr is not None, "load() first"
            self._buffered_samples = 0
            if self._vad is None:  # client VAD: the resampler's tail belongs to this turn
                self._asr.feed(self._decoder.flush())
            return self._asr.finish().strip()

    def close(self) -> None:
        """Free the recogniser (in its ASR worker, if any) and the VAD; idempotent."""
        with self._lock:
            self._closed = True
            asr, self._asr = self._asr, None
            vad, self._vad = self._vad, None
            if vad is not None:
                vad.close()
            if asr is not None:
                asr.close()


def _new_vad(threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> SpeechDetector:
    from glm_local.speech import SpeechDetector

    return SpeechDetector(
        sample_rate=TARGET_RATE,
        threshold=threshold,
        prefix_padding_ms=prefix_padding_ms,
        silence_duration_ms=silence_duration_ms,
    )
