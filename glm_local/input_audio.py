"""Uplink audio of one session: ``input_audio_buffer.append`` payloads to 16 kHz PCM.

``wav`` packets each carry their own RIFF header (parsed with the stdlib :mod:`wave`);
any rate is accepted, but only mono 16-bit PCM. ``pcm16`` and ``pcm24`` are raw s16le at
16 or 24 kHz (their rate cannot be checked). Everything is resampled to 16 kHz for the
VAD and the recogniser with one :class:`realtime.resampler.StreamResampler` per input rate.
"""

from __future__ import annotations

import binascii
import io
import wave

import pybase64

from realtime.audio import InputAudioFormat, input_sample_rate
from realtime.pcm import MAX_RATE, MIN_RATE
from realtime.resampler import StreamResampler

__all__ = ["TARGET_RATE", "InputAudioDecoder", "InvalidAudio"]

TARGET_RATE = 16000


class InvalidAudio(ValueError):
    """A payload that is not audio in the session's format; the message says why."""


class InputAudioDecoder:
    """Decodes the append payloads of one stream, keeping resampler state between them."""

    def __init__(self, fmt: InputAudioFormat) -> None:
        self.format: InputAudioFormat = fmt
        self._rate: int | None = None
        self._resampler: StreamResampler | None = None
        self._odd = b""

    def decode(self, payload: str) -> bytes:
        """One base64 payload to 16 kHz s16le mono bytes.

        Raises:
            InvalidAudio: not base64, not a WAV (in ``wav`` mode), or not mono 16-bit.
        """
        try:
            data = pybase64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidAudio(f"audio is not valid base64: {exc}") from exc
        if self.format == "wav":
            pcm, rate = _read_wav(data)
        else:
            data = self._odd + data
            whole = len(data) - len(data) % 2
            self._odd = data[whole:]
            pcm, rate = data[:whole], input_sample_rate(self.format)
        return self._resample(pcm, rate)

    def flush(self) -> bytes:
        """What the resampler still holds (call at the end of a turn's audio)."""
        if self._resampler is None:
            return b""
        out = self._resampler.drain()
        self._resampler = None
        self._rate = None
        return out

    def reset(self) -> None:
        """Forget any held audio."""
        self._resampler = None
        self._rate = None
        self._odd = b""

    def _resample(self, pcm: bytes, rate: int) -> bytes:
        tail = b""
        if rate != self._rate:
            tail = self.flush()
            self._rate = rate
            if rate != TARGET_RATE:
                self._resampler = StreamResampler(rate, TARGET_RATE)
        if self._resampler is None:
            return tail + pcm
        out = bytearray(tail)
        self._resampler.process_into(pcm, out)
        return bytes(out)


def _read_wav(data: bytes) -> tuple[bytes, int]:
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, ValueError) as exc:
        raise InvalidAudio(f"audio is not a WAV file: {exc}") from exc
    if channels != 1 or width != 2:
        raise InvalidAudio(
            f"WAV audio must be mono 16-bit PCM, got {channels} channel(s) of {8 * width}-bit"
        )
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidAudio(f"WAV sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    return frames[: len(frames) - len(frames) % 2], rate
