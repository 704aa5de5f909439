"""PCM helpers shared by the bundled audio nodes: read an input file, downmix, frame.

Which files are read (``read_audio``):

* ``.pcm``/``.raw``: headerless mono s16le at a rate the caller knows;
* anything else through soundfile (libsndfile, in the ``[local]`` extra) when it is
  installed: WAV of 8/16/24/32-bit integer or 32/64-bit float samples (also
  WAVE_FORMAT_EXTENSIBLE), FLAC, OGG, AIFF, any channel count;
* without soundfile, through the stdlib ``wave`` module: integer PCM WAV of 8/16/24/32
  bits, any channel count; a float WAV is refused with the command that adds soundfile.

Every channel layout is averaged down to mono s16. A file without a single sample, or
at a rate outside 8000..192000 Hz, is refused: it cannot be heard.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from realtime.pcm import MAX_RATE, MIN_RATE

__all__ = [
    "ACCEPTED_AUDIO",
    "RAW_SUFFIXES",
    "AudioFileError",
    "check_rate",
    "frame_bounds",
    "read_audio",
    "to_mono_s16",
]

RAW_SUFFIXES = frozenset({".pcm", ".raw"})
ACCEPTED_AUDIO = (
    "accepted: WAV (8/16/24/32-bit integer or 32/64-bit float samples, any channels), "
    "FLAC, OGG or AIFF, or headerless s16le .pcm/.raw at a known rate"
)
_FLOAT_FORMATS = ("unknown format: 3", "unknown format: 65534")  # IEEE float, EXTENSIBLE


class AudioFileError(ValueError):
    """A file cannot be used as speech; the message says why and what is accepted."""


def to_mono_s16(samples: npt.NDArray[np.int64], channels: int) -> npt.NDArray[np.int16]:
    """Average interleaved ``channels`` into one s16 channel (rounded, clipped).

    Args:
        samples: Interleaved samples already scaled to the s16 range.
        channels: Channel count.
    """
    usable = len(samples) - len(samples) % channels
    mixed = samples[:usable].reshape(-1, channels).mean(axis=1) if channels > 1 else samples
    return np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)


def _decode(raw: bytes, width: int) -> npt.NDArray[np.int64]:
    """Turn little-endian PCM of ``width`` bytes into s16-scaled integers."""
    if width == 1:  # unsigned 8-bit
        return (np.frombuffer(raw, np.uint8).astype(np.int64) - 128) << 8
    if width == 2:
        return np.frombuffer(raw, "<i2").astype(np.int64)
    if width == 3:
        b = np.frombuffer(raw[: len(raw) - len(raw) % 3], np.uint8).reshape(-1, 3)
        value = (
            b[:, 0].astype(np.int64)
            | (b[:, 1].astype(np.int64) << 8)
            | (b[:, 2].astype(np.int64) << 16)
        )
        value = np.where(value >= 1 << 23, value - (1 << 24), value)
        return value >> 8
    if width == 4:
        return np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    raise AudioFileError(f"unsupported sample width of {width} bytes; {ACCEPTED_AUDIO}")


def _read_with_wave(path: Path) -> tuple[npt.NDArray[np.int16], int]:
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        if str(exc) in _FLOAT_FORMATS:
            raise AudioFileError(
                "a float or extensible WAV needs soundfile: pip install 'glm-realtime[local]' "
                "(without it only integer PCM WAV is read)"
            ) from exc
        reason = exc or "truncated header"
        raise AudioFileError(f"not a WAV file ({reason}); {ACCEPTED_AUDIO}") from exc
    return to_mono_s16(_decode(raw, width), channels), rate


def _read_with_soundfile(path: Path) -> tuple[npt.NDArray[np.int16], int] | None:
    try:
        import soundfile
    except ImportError:  # the [local] extra is not installed
        return None
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as exc:  # soundfile.LibsndfileError
        reason = str(exc).removeprefix(f"Error opening {str(path)!r}: ").rstrip(".")
        raise AudioFileError(
            f"not a sound file libsndfile reads ({reason}); {ACCEPTED_AUDIO}"
        ) from exc
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.clip(np.rint(mono * 32768), -32768, 32767).astype(np.int16), int(rate)


def read_audio(path: Path, raw_rate: int) -> tuple[npt.NDArray[np.int16], int]:
    """Read a speech file as mono s16 (the formats are in the module docstring).

    Args:
        path: ``.pcm``/``.raw`` is read as s16le mono at ``raw_rate``; anything else
            as a sound file with a header.
        raw_rate: Sample rate of a raw file.

    Returns:
        Mono s16 samples and their sample rate.

    Raises:
        OSError: The file cannot be opened.
        AudioFileError: Empty, no audio, an unsupported format or an unusable rate.
    """
    if path.stat().st_size == 0:
        raise AudioFileError("the file is empty (0 bytes)")
    if path.suffix.lower() in RAW_SUFFIXES:
        check_rate(raw_rate, "the sample rate of a raw PCM file")
        raw = path.read_bytes()
        samples = np.frombuffer(raw[: len(raw) - len(raw) % 2], "<i2").astype(np.int16)
        rate = raw_rate
    else:
        read = _read_with_soundfile(path)
        samples, rate = read if read is not None else _read_with_wave(path)
        check_rate(rate, "the file's sample rate")
    if len(samples) == 0:
        raise AudioFileError("the file holds no audio (0 samples)")
    return samples, rate


def check_rate(rate: int, what: str) -> int:
    """Return ``rate`` if usable for speech, else raise :class:`AudioFileError` naming ``what``."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFileError(f"{what} is {rate} Hz; accepted: {MIN_RATE}..{MAX_RATE} Hz")
    return rate


def frame_bounds(total: int, rate: int, frame_ms: int) -> list[tuple[int, int]]:
    """Split ``total`` samples into frames of ``frame_ms`` at ``rate``.

    Frame ``k`` covers samples ``[round(k*step), round((k+1)*step))`` with
    ``step = rate*frame_ms/1000``, so frames at odd rates (22050 Hz, 10 ms) alternate
    220 and 221 samples and never drift. The last frame may be shorter.
    """
    step = rate * frame_ms / 1000
    bounds: list[tuple[int, int]] = []
    k = 0
    while True:
        start = round(k * step)
        if start >= total:
            return bounds
        bounds.append((start, min(round((k + 1) * step), total)))
        k += 1
