"""What every speech recogniser is: the :class:`Recognizer` protocol and the live count.

The engines (:mod:`~glm_local.speech.pocketsphinx_recognizer`,
:mod:`~glm_local.speech.whisper`) implement the protocol and report to the count when they
take and free their resources; :func:`live_recognizers` is what a server reads to check
that every session gave its recogniser back.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

__all__ = ["SAMPLE_RATE", "Recognizer", "count_live", "live_recognizers"]

SAMPLE_RATE = 16000
"""The rate of the audio every :class:`Recognizer` takes (int16 mono PCM)."""

_live_lock = threading.Lock()
_live = 0  # recognisers of this process holding resources (made, not yet closed)


def live_recognizers() -> int:
    """How many recognisers of this process are alive (made, not closed): pocketsphinx
    ones holding their decoders, and whisper ones (:mod:`glm_local.speech.whisper`)."""
    return _live


def count_live(delta: int) -> None:
    """Add ``delta`` to :func:`live_recognizers`: +1 when an engine's recogniser is made,
    -1 when it is closed (engines call it, once each way)."""
    global _live
    with _live_lock:
        _live += delta


@runtime_checkable
class Recognizer(Protocol):
    """A streaming speech recogniser for one audio stream (16 kHz int16 mono PCM).

    An utterance is ``start()``, any number of ``feed()`` calls, then ``finish()``.
    Implementations keep per-stream state; calls on one instance must not overlap.
    """

    def start(self) -> None:
        """Begin an utterance, discarding an unfinished one."""
        ...

    def feed(self, pcm16k: bytes) -> str | None:
        """Add audio to the utterance (starting one if needed).

        Returns:
            A new partial transcript when it changed, else None.
        """
        ...

    def finish(self) -> str:
        """End the utterance and return its final transcript ("" if none)."""
        ...

    def reset(self) -> None:
        """Drop the utterance and any adaptation: the next audio is a new stream."""
        ...

    def close(self) -> None:
        """Release what the recogniser holds; it is not used afterwards."""
        ...
