"""PCM helpers shared by the bundled audio nodes: decode, downmix, frame."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["RAW_SUFFIXES", "frame_bounds", "read_audio", "to_mono_s16"]

RAW_SUFFIXES = frozenset({".pcm", ".raw"})


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
    raise ValueError(f"unsupported sample width of {width} bytes")


def read_audio(path: Path, raw_rate: int) -> tuple[npt.NDArray[np.int16], int]:
    """Read a WAV (any integer width, any channel count) or raw s16le mono file.

    Args:
        path: ``.pcm``/``.raw`` is read as s16le mono at ``raw_rate``; anything else
            as WAV.
        raw_rate: Sample rate of a raw file.

    Returns:
        Mono s16 samples and their sample rate.

    Raises:
        OSError: The file cannot be read.
        ValueError: Not a PCM WAV, or an unsupported width or rate.
    """
    if path.suffix.lower() in RAW_SUFFIXES:
        if raw_rate <= 0:
            raise ValueError(f"a raw PCM file needs a positive sample_rate, got {raw_rate}")
        raw = path.read_bytes()
        return np.frombuffer(raw[: len(raw) - len(raw) % 2], "<i2").astype(np.int16), raw_rate
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a PCM WAV file: {exc}") from exc
    return to_mono_s16(_decode(raw, width), channels), rate


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
