"""PCM basics shared by the uplink and the downlink: formats, rates, the WAV container.

Uplink audio is mono signed 16-bit little-endian PCM. The session's ``input_audio_format``
decides the rate and the framing:

* ``"pcm16"``: raw PCM at 16000 Hz (the number is kHz, not bits, unlike OpenAI's ``pcm16``);
* ``"pcm24"``: raw PCM at 24000 Hz;
* ``"wav"``: every packet carries its own RIFF/WAV header, at a rate the client picks.

Downlink ``response.audio.delta`` payloads are base64 PCM s16le, 24 kHz mono.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Literal

import numpy as np

from realtime.errors import ConfigError

__all__ = [
    "INPUT_AUDIO_FORMATS",
    "OUTPUT_SAMPLE_RATE",
    "InputAudioFormat",
    "input_sample_rate",
    "wav_bytes",
]

InputAudioFormat = Literal["wav", "pcm16", "pcm24"]
INPUT_AUDIO_FORMATS: tuple[str, ...] = ("wav", "pcm16", "pcm24")
OUTPUT_SAMPLE_RATE = 24000

SAMPLE_WIDTH = 2  # bytes per s16 sample
PCM_DTYPE = np.dtype("<i2")  # explicit little-endian: the wire format, whatever the host
MIN_RATE, MAX_RATE = 8000, 192000
MIN_WAV_RATE, MAX_WAV_RATE = 8000, 48000

_FIXED_RATES: dict[str, int] = {"pcm16": 16000, "pcm24": 24000}
# The 44-byte RIFF/WAV header of mono s16 PCM, laid out as the stdlib ``wave`` module writes
# it (``tests/test_audio.py`` checks the bytes against ``wave`` for many rates and sizes).
_WAV_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_WAVE_FORMAT_PCM = 1


def check_int_range(field: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int in ``[low, high]``, else raise ConfigError naming it."""
    # bool is an int subclass; True as a sample rate is a bug, not 1 Hz.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{field} must be an int in {low}..{high}, got {value!r}")
    return value


def input_sample_rate(fmt: InputAudioFormat, wav_rate: int = 16000) -> int:
    """Return the uplink sample rate for a session ``input_audio_format``.

    Args:
        fmt: The session's ``input_audio_format``.
        wav_rate: The rate used in ``"wav"`` mode, where each packet's header states it.

    Returns:
        The sample rate in Hz that uplink packets must carry.

    Raises:
        ConfigError: ``fmt`` is not one of :data:`INPUT_AUDIO_FORMATS`, or ``wav_rate`` is
            not an int in 8000..48000.
    """
    if fmt == "wav":
        return check_int_range("wav_rate", wav_rate, MIN_WAV_RATE, MAX_WAV_RATE)
    rate = _FIXED_RATES.get(fmt) if isinstance(fmt, str) else None
    if rate is None:
        allowed = ", ".join(repr(f) for f in INPUT_AUDIO_FORMATS)
        raise ConfigError(f"input_audio_format must be one of {allowed}, got {fmt!r}")
    return rate


@lru_cache(maxsize=64)
def wav_header(sample_rate: int, data_bytes: int) -> bytes:
    """The header ``wave`` writes for ``data_bytes`` of mono s16 PCM at ``sample_rate``."""
    return _WAV_HEADER.pack(
        b"RIFF",
        36 + data_bytes,  # the RIFF chunk: "WAVE", the 24-byte fmt chunk, the data chunk
        b"WAVE",
        b"fmt ",
        16,
        _WAVE_FORMAT_PCM,
        1,  # channels
        sample_rate,
        sample_rate * SAMPLE_WIDTH,  # bytes per second
        SAMPLE_WIDTH,  # block align
        SAMPLE_WIDTH * 8,  # bits per sample
        b"data",
        data_bytes,
    )


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """Wrap mono s16le PCM in a RIFF/WAV container.

    The header is byte for byte what the stdlib ``wave`` module writes, built with ``struct``
    and cached per (rate, size) instead of going through ``wave`` for every packet.

    Args:
        pcm: Mono s16le samples; the byte count must be even.
        sample_rate: The rate written into the header, in Hz.

    Returns:
        A complete WAV file (44-byte header followed by ``pcm``).

    Raises:
        ConfigError: ``pcm`` holds half a sample, or ``sample_rate`` is out of range.
    """
    check_int_range("sample_rate", sample_rate, MIN_RATE, MAX_RATE)
    if len(pcm) % SAMPLE_WIDTH:
        raise ConfigError(f"pcm must hold whole 16-bit samples, got {len(pcm)} bytes")
    return wav_header(sample_rate, len(pcm)) + pcm


def as_bytes_view(pcm: bytes | bytearray | memoryview) -> memoryview:
    """View ``pcm`` as flat bytes, so ``len`` counts bytes even for a typed memoryview."""
    view = memoryview(pcm)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view
