"""Audio for GLM-Realtime: uplink packets, downlink decoding, and the PCM basics.

This module is the public face of the audio parts:

* :class:`UplinkPacker` (in :mod:`realtime.packer`) turns frames of any size and rate into
  fixed-duration packets at the session's rate, a WAV per packet in ``wav`` mode;
* :class:`DownlinkDecoder` decodes ``response.audio.delta`` payloads (base64 PCM s16le,
  24 kHz mono) to whole samples, optionally resampled for a sink that wants another rate;
* :func:`input_sample_rate` and :func:`wav_bytes` (in :mod:`realtime.pcm`) give the rate of
  an ``input_audio_format`` (``pcm16`` and ``pcm24`` name kHz, not bits) and the WAV
  container.
"""

from __future__ import annotations

import binascii
import logging

import pybase64

from realtime.errors import ProtocolViolation
from realtime.packer import UplinkPacker
from realtime.pcm import (
    INPUT_AUDIO_FORMATS,
    MAX_RATE,
    MIN_RATE,
    OUTPUT_SAMPLE_RATE,
    SAMPLE_WIDTH,
    InputAudioFormat,
    check_int_range,
    input_sample_rate,
    wav_bytes,
)
from realtime.resampler import StreamResampler

__all__ = [
    "INPUT_AUDIO_FORMATS",
    "OUTPUT_SAMPLE_RATE",
    "DownlinkDecoder",
    "InputAudioFormat",
    "UplinkPacker",
    "input_sample_rate",
    "wav_bytes",
]

logger = logging.getLogger(__name__)


class DownlinkDecoder:
    """Decodes base64 audio deltas to whole s16le samples, optionally resampled from 24 kHz.

    Deltas are not guaranteed to end on a sample boundary; an odd trailing byte is carried
    into the next delta so a sink always receives whole samples.
    """

    def __init__(self, output_rate: int = OUTPUT_SAMPLE_RATE) -> None:
        """Create a decoder.

        Args:
            output_rate: The rate the sink wants, in Hz (8000..192000). At 24000 the PCM is
                passed through untouched.

        Raises:
            ConfigError: ``output_rate`` is out of range.
        """
        self._rate = check_int_range("output_rate", output_rate, MIN_RATE, MAX_RATE)
        self._carry = b""
        self._resampler = (
            None
            if output_rate == OUTPUT_SAMPLE_RATE
            else StreamResampler(OUTPUT_SAMPLE_RATE, output_rate)
        )

    def decode(self, delta_b64: str) -> bytes:
        """Decode one ``response.audio.delta`` payload.

        Args:
            delta_b64: The event's base64 ``delta``.

        Returns:
            Whole s16le samples at the decoder's output rate (possibly empty).

        Raises:
            ProtocolViolation: ``delta_b64`` is not a string of valid base64.
        """
        if not isinstance(delta_b64, str):
            raise ProtocolViolation(
                f"audio delta must be a base64 string, got {type(delta_b64).__name__}"
            )
        try:
            raw = pybase64.b64decode(delta_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            # Name the problem and the size, never echo the payload itself.
            raise ProtocolViolation(
                f"audio delta is not valid base64 ({len(delta_b64)} chars): {exc}"
            ) from exc
        if self._carry:
            raw = self._carry + raw
            self._carry = b""
        whole = len(raw) - len(raw) % SAMPLE_WIDTH
        if whole < len(raw):
            self._carry = raw[whole:]
            raw = raw[:whole]
        if self._resampler is None or not raw:
            return raw
        return self._resampler.process(raw)

    def flush(self) -> bytes:
        """Return what the resampler still holds and reset; a lone odd byte is dropped.

        Returns:
            The remaining s16le samples (empty without resampling).
        """
        if self._carry:
            logger.debug("downlink flush: dropped a lone odd byte (half a sample)")
            self._carry = b""
        if self._resampler is None:
            return b""
        return self._resampler.drain()

    def clear(self) -> None:
        """Drop the carried byte and the resampler's state (on barge-in or a new response)."""
        self._carry = b""
        if self._resampler is not None:
            self._resampler.reset()
