"""UplinkPacker: PCM frames of any size and rate in, fixed-duration packets at the session rate out.

An RTC source delivers 10 ms frames, often at 16 or 48 kHz; GLM wants the session's rate and,
in ``wav`` mode, a WAV header per packet. Packing 100 ms per packet instead of one WAV per
frame sends a tenth of the messages, and resampling in blocks instead of per frame calls soxr
about once per packet, with no packet leaving later than per-frame resampling would send it.
"""

from __future__ import annotations

import logging

from realtime.errors import ConfigError
from realtime.pcm import (
    MAX_RATE,
    MAX_WAV_RATE,
    MIN_RATE,
    MIN_WAV_RATE,
    SAMPLE_WIDTH,
    InputAudioFormat,
    as_bytes_view,
    check_int_range,
    input_sample_rate,
    wav_header,
)
from realtime.resampler import StreamResampler

__all__ = ["UplinkPacker"]

logger = logging.getLogger("realtime.audio")

_MIN_PACKET_MS, _MAX_PACKET_MS = 10, 1000


class UplinkPacker:
    """Turns PCM frames of any size and rate into fixed-duration packets at the session input rate.

    Frames are mono s16le. Audio at another rate goes through a streaming soxr resampler;
    audio already at the session rate is copied through untouched, so no sample is lost or
    duplicated. An odd trailing byte (half a sample) waits for the next frame.

    Resampling runs on blocks of frames rather than on each frame (soxr's per-call cost
    dominates on 10 ms frames), yet no packet leaves later than with per-frame resampling:
    soxr is called once the audio waiting for it could complete a packet and is past what
    soxr would swallow without output (see :mod:`realtime.resampler`), which is about once
    per packet. Until then a frame of whole samples (``bytes`` or ``bytearray``, no half
    sample carried) is only appended to a buffer: one append and one length check.

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
        check_int_range("wav_rate", wav_rate, MIN_WAV_RATE, MAX_WAV_RATE)
        check_int_range("packet_ms", packet_ms, _MIN_PACKET_MS, _MAX_PACKET_MS)
        self._rate = input_sample_rate(input_format, wav_rate)
        if self._rate * packet_ms % 1000:
            # A fractional packet would drift or vary in length; refuse it up front.
            raise ConfigError(
                f"packet_ms={packet_ms} is not a whole number of samples at {self._rate} Hz"
            )
        self._wav = input_format == "wav"
        self._packet_samples = self._rate * packet_ms // 1000
        self._packet_bytes = self._packet_samples * SAMPLE_WIDTH
        # Every full packet in wav mode starts with the same header.
        self._header = wav_header(self._rate, self._packet_bytes) if self._wav else b""
        # Session-rate PCM not yet emitted; always whole samples.
        self._pending = bytearray()
        self._carry = b""  # half a sample left over from the last frame
        self._in_rate: int | None = None  # rate of the frames being pushed
        self._resampler: StreamResampler | None = None  # None while input is at the session rate
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
        held = len(self._pending) / SAMPLE_WIDTH
        if self._resampler is not None:
            held += self._resampler.held_samples()
            held += len(self._raw) / SAMPLE_WIDTH * self._resampler.ratio
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
            check_int_range("sample_rate", sample_rate, MIN_RATE, MAX_RATE)
            if sample_rate != self._in_rate:
                self._switch_rate(sample_rate)
        kind = type(pcm)
        if (kind is bytes or kind is bytearray) and not len(pcm) % 2 and not self._carry:
            # The common frame (whole samples, no half sample carried) is appended and,
            # until it could complete a packet, nothing else is done: at the session rate
            # that is nine 10 ms frames in ten, and about as many with 16 -> 24 kHz
            # resampling (soxr is then called about once per packet).
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
            self._drain_resampler()
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
        view = as_bytes_view(pcm)
        if self._carry:
            # Only a frame that completes a carried half-sample is copied.
            data: memoryview | bytes = self._carry + view.tobytes()
            self._carry = b""
        else:
            data = view
        whole = len(data) - len(data) % SAMPLE_WIDTH
        if whole < len(data):
            self._carry = bytes(data[whole:])
        if whole:
            self._acc += data[:whole]
        if len(self._acc) < self._acc_limit:
            return []
        return self._advance()

    def _advance(self) -> list[bytes]:
        """Resample the waiting block if that can complete a packet; cut the full packets."""
        resampler, raw, pending = self._resampler, self._raw, self._pending
        if resampler is not None and raw:
            # Call soxr only when the call could complete a packet. Waiting otherwise costs
            # no time: the call would return too little (see realtime.resampler), and
            # float32 soxr gives the same samples for one big call as for many small ones.
            short = self._packet_samples - len(pending) // SAMPLE_WIDTH
            if resampler.output_bound(len(raw) // SAMPLE_WIDTH) >= short:
                resampler.process_into(raw, pending)
                raw.clear()
        packets = self._take_packets() if len(pending) >= self._packet_bytes else []
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
            # The shortest input block for which _advance would call soxr, less a sample:
            # float rounding can only make push leave the fast path a frame early, and
            # _advance then decides exactly, as a check on every frame would.
            short = self._packet_samples - len(self._pending) // SAMPLE_WIDTH
            needed = resampler.input_for(short)
            self._acc_limit = max(SAMPLE_WIDTH, (int(needed) - 1) * SAMPLE_WIDTH)

    def _switch_rate(self, sample_rate: int) -> None:
        """Finish the audio at the old input rate and prepare for ``sample_rate``."""
        if self._resampler is not None:
            # The old filter still holds the end of the previous audio: keep it.
            self._drain_resampler()
        # Half a sample at the old rate cannot be joined to a frame at another rate.
        self._drop_carry("rate change")
        self._in_rate = sample_rate
        self._resampler = (
            None if sample_rate == self._rate else StreamResampler(sample_rate, self._rate)
        )
        self._acc = self._pending if self._resampler is None else self._raw
        self._set_limit()

    def _drain_resampler(self) -> None:
        """Resample the waiting input and the filter's tail into the pending buffer."""
        assert self._resampler is not None
        self._resampler.process_into(self._raw, self._pending, last=True)
        self._raw.clear()

    def _drop_carry(self, why: str) -> None:
        if self._carry:
            logger.debug("uplink %s: dropped a lone odd byte (half a sample)", why)
            self._carry = b""

    def _take_packets(self) -> list[bytes]:
        """Cut every full packet off the front of the pending buffer."""
        size, pending = self._packet_bytes, self._pending
        count = len(pending) // size
        if count == 1:  # the common case: one copy into the packet, one front deletion
            packet = self._header + pending[:size]
            del pending[:size]
            return [packet]
        if not count:
            return []
        # One copy per packet: bytes + a memoryview slice joins them straight into the result.
        # The `with` releases the export, which would otherwise forbid resizing the bytearray.
        with memoryview(pending) as view:
            packets = [self._header + view[i * size : (i + 1) * size] for i in range(count)]
        # One front deletion per push; bytearray makes it cheap (no realloc of the rest).
        del pending[: count * size]
        return packets

    def _wrap(self, pcm: bytes) -> bytes:
        if self._wav:
            return wav_header(self._rate, len(pcm)) + pcm
        return pcm
