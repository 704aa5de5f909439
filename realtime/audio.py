"""Audio framing for GLM-Realtime: uplink packets and downlink decoding.

Uplink audio is mono signed 16-bit little-endian PCM. The session's ``input_audio_format``
decides the rate and the framing:

* ``"pcm16"``: raw PCM at 16000 Hz (the number is kHz, not bits, unlike OpenAI's ``pcm16``);
* ``"pcm24"``: raw PCM at 24000 Hz;
* ``"wav"``: every packet carries its own RIFF/WAV header, at a rate the client picks.

Downlink ``response.audio.delta`` payloads are base64 PCM s16le, 24 kHz mono.

:class:`UplinkPacker` turns frames of any size and rate (an RTC source delivers 10 ms frames,
often at 16 or 48 kHz) into fixed-duration packets at the session's rate, so the uplink sends a
steady 100 ms cadence instead of one WAV per 10 ms frame. :class:`DownlinkDecoder` decodes the
deltas to whole samples, optionally resampled for a sink that wants another rate.
"""

from __future__ import annotations

import base64
import binascii
import logging
import struct
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import soxr

from realtime.errors import ConfigError, ProtocolViolation

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

InputAudioFormat = Literal["wav", "pcm16", "pcm24"]
INPUT_AUDIO_FORMATS: tuple[str, ...] = ("wav", "pcm16", "pcm24")
OUTPUT_SAMPLE_RATE = 24000

_FIXED_RATES: dict[str, int] = {"pcm16": 16000, "pcm24": 24000}
_SAMPLE_WIDTH = 2  # bytes per s16 sample
_PCM_DTYPE = np.dtype("<i2")  # explicit little-endian: the wire format, whatever the host
_MIN_RATE, _MAX_RATE = 8000, 192000
_MIN_WAV_RATE, _MAX_WAV_RATE = 8000, 48000
_MIN_PACKET_MS, _MAX_PACKET_MS = 10, 1000
# The s16 range; resampled output saturates to it.
_S16_MIN, _S16_MAX = -32768.0, 32767.0
# The 44-byte RIFF/WAV header of mono s16 PCM, laid out as the stdlib ``wave`` module writes
# it (``tests/test_audio.py`` checks the bytes against ``wave`` for many rates and sizes).
_WAV_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_WAVE_FORMAT_PCM = 1


def _check_int_range(field: str, value: object, low: int, high: int) -> int:
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
        return _check_int_range("wav_rate", wav_rate, _MIN_WAV_RATE, _MAX_WAV_RATE)
    rate = _FIXED_RATES.get(fmt) if isinstance(fmt, str) else None
    if rate is None:
        allowed = ", ".join(repr(f) for f in INPUT_AUDIO_FORMATS)
        raise ConfigError(f"input_audio_format must be one of {allowed}, got {fmt!r}")
    return rate


@lru_cache(maxsize=64)
def _wav_header(sample_rate: int, data_bytes: int) -> bytes:
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
        sample_rate * _SAMPLE_WIDTH,  # bytes per second
        _SAMPLE_WIDTH,  # block align
        _SAMPLE_WIDTH * 8,  # bits per sample
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
    _check_int_range("sample_rate", sample_rate, _MIN_RATE, _MAX_RATE)
    if len(pcm) % _SAMPLE_WIDTH:
        raise ConfigError(f"pcm must hold whole 16-bit samples, got {len(pcm)} bytes")
    return _wav_header(sample_rate, len(pcm)) + pcm


def _as_bytes_view(pcm: bytes | bytearray | memoryview) -> memoryview:
    """View ``pcm`` as flat bytes, so ``len`` counts bytes even for a typed memoryview."""
    view = memoryview(pcm)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _to_pcm(out: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """Round float samples at s16 scale to s16le, saturating; ``out`` is overwritten."""
    np.rint(out, out=out)
    # The filter rings past full scale on loud input: saturate rather than wrap. argmax and
    # argmin are vectorised and cost far less than np.clip or np.minimum/np.maximum on
    # float32, so the clip runs only on the blocks that need it.
    if out.size and (out[out.argmax()] > _S16_MAX or out[out.argmin()] < _S16_MIN):
        np.clip(out, _S16_MIN, _S16_MAX, out=out)
    return out.astype(_PCM_DTYPE)


class _Resampler:
    """A streaming s16 resampler over ``soxr.ResampleStream``.

    soxr runs in float32 here, not int16: with int16 I/O libsoxr dithers the output, and the
    dither differs with the chunking (up to +-2 LSB), so the same signal cut into different
    frames would come out different. The float32 path is bit-identical whatever the chunking,
    and no slower.

    Samples go in and come out at s16 scale (-32768..32767 as floats), not scaled to
    [-1, 1): scaling by a power of two commutes exactly with float rounding, so the output
    is bit-identical to the scaled path (a test checks it) and two passes are saved.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.ratio = out_rate / in_rate
        self._stream: Any = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")

    def process_into(
        self, pcm: memoryview | bytes | bytearray, dest: bytearray, *, last: bool = False
    ) -> None:
        """Resample whole s16le samples and append the result to ``dest``.

        ``last=True`` also drains the filter's tail and resets the filter.
        """
        samples = np.frombuffer(pcm, dtype=_PCM_DTYPE).astype(np.float32)
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(samples, last=last)
        if last:
            # Ready for a fresh signal without paying for a new filter.
            self._stream.clear()
        if out.size:
            # soxr returns a fresh array: safe to work in place. Its memoryview makes `+=`
            # bytearray concatenation rather than a numpy broadcast.
            dest += _to_pcm(out).data

    def process(self, pcm: memoryview | bytes | bytearray, *, last: bool = False) -> bytes:
        """Resample whole s16le samples; ``last=True`` also drains the filter's tail."""
        out = bytearray()
        self.process_into(pcm, out, last=last)
        return bytes(out)

    def drain(self) -> bytes:
        """Return the samples still held in the filter and reset it."""
        return self.process(b"", last=True)

    def held_samples(self) -> float:
        """Output samples the filter holds (what :meth:`drain` would return)."""
        return float(self._stream.delay())

    def reset(self) -> None:
        """Drop whatever the filter holds."""
        self._stream.clear()


class UplinkPacker:
    """Turns PCM frames of any size and rate into fixed-duration packets at the session input rate.

    Frames are mono s16le. Audio at another rate goes through a streaming soxr resampler;
    audio already at the session rate is copied through untouched, so no sample is lost or
    duplicated. An odd trailing byte (half a sample) waits for the next frame.

    Resampling runs on blocks of frames rather than on each frame (soxr's per-call cost
    dominates on 10 ms frames), yet no packet leaves later than with per-frame resampling:
    soxr is called as soon as the audio waiting for it could complete a packet. Until then a
    frame of whole samples (``bytes`` or ``bytearray``, no half sample carried) is only
    appended to a buffer, so most 10 ms frames cost one append and one length check.

    Example::

        packer = UplinkPacker("wav", wav_rate=24000, packet_ms=100)
        for frame in frames:                  # 10 ms frames at 16 kHz
            for packet in packer.push(frame, 16000):
                send(packet)                  # one 100 ms WAV at 24 kHz
        for packet in packer.flush():         # end of the user's turn
            send(packet)
    """

    def __init__(
        self,
        input_format: InputAudioFormat = "wav",
        *,
        wav_rate: int = 16000,
        packet_ms: int = 100,
    ) -> None:
        """Create a packer for one session format.

        Args:
            input_format: The session's ``input_audio_format``.
            wav_rate: The rate of ``"wav"`` packets (8000..48000); checked in every mode.
            packet_ms: The duration of each packet (10..1000 ms); it must be a whole number
                of samples at the session rate.

        Raises:
            ConfigError: A value is out of range; the message names the field.
        """
        _check_int_range("wav_rate", wav_rate, _MIN_WAV_RATE, _MAX_WAV_RATE)
        _check_int_range("packet_ms", packet_ms, _MIN_PACKET_MS, _MAX_PACKET_MS)
        self._rate = input_sample_rate(input_format, wav_rate)
        if self._rate * packet_ms % 1000:
            # A fractional packet would drift or vary in length; refuse it up front.
            raise ConfigError(
                f"packet_ms={packet_ms} is not a whole number of samples at {self._rate} Hz"
            )
        self._wav = input_format == "wav"
        self._packet_samples = self._rate * packet_ms // 1000
        self._packet_bytes = self._packet_samples * _SAMPLE_WIDTH
        # Every full packet in wav mode starts with the same header.
        self._header = _wav_header(self._rate, self._packet_bytes) if self._wav else b""
        # Session-rate PCM not yet emitted; always whole samples.
        self._pending = bytearray()
        self._carry = b""  # half a sample left over from the last frame
        self._in_rate: int | None = None  # rate of the frames being pushed
        self._resampler: _Resampler | None = None  # None while input is at the session rate
        # Input-rate PCM waiting to be resampled as one block (see push); whole samples.
        self._raw = bytearray()
        # The fast path of push: a frame is appended to `_acc` (`_pending` at the session
        # rate, `_raw` when resampling) and nothing else happens while `len(_acc)` stays
        # below `_acc_limit`, the length at which the frame could complete a packet.
        self._acc = self._pending
        self._acc_limit = self._packet_bytes

    @property
    def sample_rate(self) -> int:
        """The session (target) sample rate of every packet, in Hz."""
        return self._rate

    @property
    def packet_samples(self) -> int:
        """Samples in each full packet."""
        return self._packet_samples

    @property
    def buffered_ms(self) -> float:
        """Milliseconds of audio held and not yet emitted, including the resampler's delay."""
        held = len(self._pending) / _SAMPLE_WIDTH
        if self._resampler is not None:
            held += self._resampler.held_samples()
            held += len(self._raw) / _SAMPLE_WIDTH * self._resampler.ratio
        return held * 1000.0 / self._rate

    def push(self, pcm: bytes | bytearray | memoryview, sample_rate: int) -> list[bytes]:
        """Add one frame and return the packets it completes.

        Args:
            pcm: Mono s16le samples, any length (an odd byte waits for the next frame).
            sample_rate: The frame's rate in Hz. A change from the previous frame drains the
                old resampler first, so the audio before the change is kept.

        Returns:
            Zero or more full packets: WAV files in ``"wav"`` mode, raw PCM otherwise.

        Raises:
            ConfigError: ``sample_rate`` is not an int in 8000..192000.
        """
        # The current rate was checked when it was set; only a new one needs checking.
        if sample_rate != self._in_rate or type(sample_rate) is not int:
            _check_int_range("sample_rate", sample_rate, _MIN_RATE, _MAX_RATE)
            if sample_rate != self._in_rate:
                self._switch_rate(sample_rate)
        kind = type(pcm)
        if (kind is bytes or kind is bytearray) and not len(pcm) % 2 and not self._carry:
            # The common frame (whole samples, no half sample carried) is appended and,
            # until it could complete a packet, nothing else is done: at the session rate
            # that is nine 10 ms frames in ten, with 16 -> 24 kHz resampling about two in
            # three (soxr emits in blocks, so a packet may take a few tries to complete).
            acc = self._acc
            acc += pcm
            if len(acc) < self._acc_limit:
                return []
            return self._advance()
        return self._push_general(pcm)

    def flush(self) -> list[bytes]:
        """Drain the resampler and return the remaining packets, the last one possibly short.

        The packer is empty afterwards and ready for new audio. A lone odd byte cannot form
        a sample and is dropped.

        Returns:
            The full packets still buffered, then a shorter tail packet if samples remain.
        """
        if self._resampler is not None:
            self._resample_raw(last=True)
        self._drop_carry("flush")
        packets = self._take_packets()
        if self._pending:
            packets.append(self._wrap(bytes(self._pending)))
            self._pending.clear()
        self._set_limit()
        return packets

    def clear(self) -> None:
        """Drop everything buffered (on barge-in or disconnect)."""
        dropped = len(self._pending) + len(self._raw) + len(self._carry)
        if dropped:
            logger.debug("uplink clear: dropped %d bytes of pending audio", dropped)
        self._pending.clear()
        self._raw.clear()
        self._carry = b""
        if self._resampler is not None:
            self._resampler.reset()
        self._set_limit()

    def _push_general(self, pcm: bytes | bytearray | memoryview) -> list[bytes]:
        """The rest of push, for frames off the fast path: odd lengths, typed memoryviews."""
        view = _as_bytes_view(pcm)
        if self._carry:
            # Only a frame that completes a carried half-sample is copied.
            data: memoryview | bytes = self._carry + view.tobytes()
            self._carry = b""
        else:
            data = view
        whole = len(data) - len(data) % _SAMPLE_WIDTH
        if whole < len(data):
            self._carry = bytes(data[whole:])
        if whole:
            self._acc += data[:whole]
        if len(self._acc) < self._acc_limit:
            return []
        return self._advance()

    def _advance(self) -> list[bytes]:
        """Resample the waiting block if it could complete a packet; cut the full packets."""
        resampler = self._resampler
        if resampler is not None and self._raw:
            # Resample in blocks, not per frame: on 10 ms frames soxr's per-call overhead
            # costs more than the filtering. Wait while even a full drain (the waiting input
            # plus what the filter holds) could not complete a packet: no call could emit
            # one, so waiting adds no latency. float32 soxr is chunk-invariant, so the
            # samples are the same as with per-frame calls.
            possible = (
                len(self._pending)
                + len(self._raw) * resampler.ratio
                + resampler.held_samples() * _SAMPLE_WIDTH
            )
            if possible >= self._packet_bytes:
                self._resample_raw()
        packets = self._take_packets()
        self._set_limit()
        return packets

    def _set_limit(self) -> None:
        """Set the length of ``_acc`` at which push must leave its fast path."""
        resampler = self._resampler
        if resampler is None:
            self._acc_limit = self._packet_bytes  # `_acc` is `_pending` itself
        elif len(self._pending) >= self._packet_bytes:
            self._acc_limit = 0  # a drain at a rate change left full packets: cut them now
        else:
            # The shortest input block for which `possible` in _advance reaches a packet,
            # less a sample: float rounding can only make push leave the fast path a frame
            # early, and _advance then decides exactly, as the per-frame check would.
            short = (
                self._packet_bytes - len(self._pending) - resampler.held_samples() * _SAMPLE_WIDTH
            )
            self._acc_limit = max(_SAMPLE_WIDTH, int(short / resampler.ratio) - _SAMPLE_WIDTH)

    def _switch_rate(self, sample_rate: int) -> None:
        """Finish the audio at the old input rate and prepare for ``sample_rate``."""
        if self._resampler is not None:
            # The old filter still holds the end of the previous audio: keep it.
            self._resample_raw(last=True)
        # Half a sample at the old rate cannot be joined to a frame at another rate.
        self._drop_carry("rate change")
        self._in_rate = sample_rate
        self._resampler = None if sample_rate == self._rate else _Resampler(sample_rate, self._rate)
        self._acc = self._pending if self._resampler is None else self._raw
        self._set_limit()

    def _resample_raw(self, *, last: bool = False) -> None:
        """Resample the waiting input block into the pending buffer (``last``: drain too)."""
        assert self._resampler is not None
        self._resampler.process_into(self._raw, self._pending, last=last)
        self._raw.clear()

    def _drop_carry(self, why: str) -> None:
        if self._carry:
            logger.debug("uplink %s: dropped a lone odd byte (half a sample)", why)
            self._carry = b""

    def _take_packets(self) -> list[bytes]:
        """Cut every full packet off the front of the pending buffer."""
        size = self._packet_bytes
        count = len(self._pending) // size
        if not count:
            return []
        header = self._header  # empty unless in wav mode
        # One copy per packet: bytes + a memoryview slice joins them straight into the result.
        # The `with` releases the export, which would otherwise forbid resizing the bytearray.
        with memoryview(self._pending) as view:
            packets = [header + view[i * size : (i + 1) * size] for i in range(count)]
        # One front deletion per push; bytearray makes it cheap (no realloc of the rest).
        del self._pending[: count * size]
        return packets

    def _wrap(self, pcm: bytes) -> bytes:
        if self._wav:
            return _wav_header(self._rate, len(pcm)) + pcm
        return pcm


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
        self._rate = _check_int_range("output_rate", output_rate, _MIN_RATE, _MAX_RATE)
        self._carry = b""
        self._resampler = (
            None
            if output_rate == OUTPUT_SAMPLE_RATE
            else _Resampler(OUTPUT_SAMPLE_RATE, output_rate)
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
            raw = base64.b64decode(delta_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            # Name the problem and the size, never echo the payload itself.
            raise ProtocolViolation(
                f"audio delta is not valid base64 ({len(delta_b64)} chars): {exc}"
            ) from exc
        if self._carry:
            raw = self._carry + raw
            self._carry = b""
        whole = len(raw) - len(raw) % _SAMPLE_WIDTH
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
