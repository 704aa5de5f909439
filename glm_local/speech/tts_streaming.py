"""What every synthesizer is, and the streaming loop the engines share.

:class:`Synthesizer` is the protocol: text in, 24 kHz s16le mono chunks out.
:class:`SegmentedSynthesizer` is how the engines (:mod:`~glm_local.speech.espeak_synthesizer`,
:mod:`~glm_local.speech.piper_synthesizer`) implement it. It cuts the text into segments
(:func:`split_text`: sentences, and long sentences at commas, semicolons and colons),
renders one segment at a time and resamples it to 24 kHz with one ``soxr.ResampleStream``
per call, so the first chunk is out after the first segment instead of after the whole
text. The generator is lazy: a segment is rendered only when the caller asks for the next
chunk, and no lock is held between chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ._deps import require

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["OUTPUT_SAMPLE_RATE", "SegmentedSynthesizer", "Synthesizer", "split_text"]

OUTPUT_SAMPLE_RATE = 24000
"""Sample rate of every chunk a :class:`Synthesizer` yields (the realtime protocol's)."""

# Whitespace after a sentence end, optionally followed by a closing quote or bracket
# (the lookbehinds keep those with the sentence they close).
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?\u2026])|(?<=[.!?\u2026][\"'\u201d\u2019)\]]))\s+")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:\u2014\u2013])\s+")


@runtime_checkable
class Synthesizer(Protocol):
    """Text to 24 kHz s16le mono PCM, streamed chunk by chunk."""

    @property
    def sample_rate(self) -> int:
        """Sample rate of the yielded audio (24000)."""
        ...

    def synthesize(self, text: str) -> Iterator[bytes]:
        """Yield s16le mono chunks as they are produced (nothing for blank text)."""
        ...


def split_text(text: str, max_chars: int = 80) -> list[str]:
    """Cut text into segments that can be synthesised one after another.

    Sentences are always separate segments. A sentence longer than ``max_chars`` is
    split after commas, semicolons, colons and dashes, and the pieces are merged
    back greedily up to ``max_chars``; a single clause longer than that stays whole.

    Args:
        text: Any text.
        max_chars: Longest segment built from several clauses.

    Returns:
        Non-empty segments with their punctuation, in order.
    """
    segments: list[str] = []
    for sentence in _SENTENCE_BREAK.split(text.strip()):
        sentence = " ".join(sentence.split())
        if not sentence:
            continue
        if len(sentence) <= max_chars:
            segments.append(sentence)
            continue
        current = ""
        for clause in _CLAUSE_BREAK.split(sentence):
            if current and len(current) + 1 + len(clause) > max_chars:
                segments.append(current)
                current = clause
            else:
                current = f"{current} {clause}" if current else clause
        if current:
            segments.append(current)
    return segments


class SegmentedSynthesizer:
    """The engines' streaming loop: split, render a segment, resample, yield.

    An engine sets ``_native_rate`` and ``_max_segment_chars`` and implements :meth:`_render`.
    """

    _native_rate: int
    _max_segment_chars: int

    @property
    def sample_rate(self) -> int:
        """Sample rate of the yielded audio (24000)."""
        return OUTPUT_SAMPLE_RATE

    def _render(self, segment: str) -> NDArray[np.float32]:
        """Render one segment as float32 mono at ``_native_rate``."""
        raise NotImplementedError

    def synthesize(self, text: str) -> Iterator[bytes]:
        """Yield 24 kHz s16le mono chunks, one per rendered segment.

        Args:
            text: Text to speak; blank text yields nothing.

        Yields:
            PCM chunks; the first is ready after the first segment is rendered.
        """
        segments = split_text(text, self._max_segment_chars)
        if not segments:
            return
        soxr = require("soxr")
        # float32 rather than int16 inside soxr: its int16 path dithers, which made
        # the output depend on the chunking.
        stream = soxr.ResampleStream(
            self._native_rate, OUTPUT_SAMPLE_RATE, 1, dtype="float32", quality="HQ"
        )
        last = len(segments) - 1
        for index, segment in enumerate(segments):
            audio = self._render(segment)
            out = stream.resample_chunk(audio, last=index == last)
            if out.size:
                yield _float_to_pcm16(out)

    def synthesize_all(self, text: str) -> bytes:
        """Synthesize the whole text and return one 24 kHz s16le buffer."""
        return b"".join(self.synthesize(text))


def _float_to_pcm16(audio: NDArray[np.float32]) -> bytes:
    scaled = np.clip(audio, -1.0, 1.0) * 32767.0
    return scaled.astype("<i2").tobytes()
