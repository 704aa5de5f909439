"""A streaming s16 resampler over ``soxr.ResampleStream``, and when a call to it is worth it.

soxr releases output in whole blocks of its filter stage (734 samples for 16 -> 24 kHz at
the default quality), and only while the output it holds plus what a new chunk brings (the
*fill*) is at or above a threshold set by the filter; what is left below the threshold stays
held. So a call returns nothing when the fill is under the threshold, and otherwise returns
the fill less what stays held, which is at least the threshold less one block.

:class:`StreamResampler` learns both figures from the calls it makes: the largest fill that
released nothing (below the threshold) and the smallest release (one block, or more). From
them it bounds what a call would return, so a caller that batches input (the uplink packer)
skips calls that could not give it what it waits for. In float32 soxr gives the same samples
for one big call as for many small ones, so the skipped calls cost no samples, and since the
bound never undercounts, no output comes later than with a call on every chunk.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from realtime.pcm import PCM_DTYPE

__all__ = ["StreamResampler", "to_pcm"]

# The s16 range; resampled output saturates to it.
_S16_MIN, _S16_MAX = -32768.0, 32767.0


def to_pcm(out: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """Round float samples at s16 scale to s16le, saturating; ``out`` is overwritten."""
    np.rint(out, out=out)
    # The filter rings past full scale on loud input: saturate rather than wrap. argmax and
    # argmin are vectorised and cost far less than np.clip or np.minimum/np.maximum on
    # float32, so the clip runs only on the blocks that need it.
    if out.size and (out[out.argmax()] > _S16_MAX or out[out.argmin()] < _S16_MIN):
        np.clip(out, _S16_MIN, _S16_MAX, out=out)
    return out.astype(PCM_DTYPE)


class StreamResampler:
    """Resamples a stream of mono s16le PCM chunk by chunk.

    soxr runs in float32, not int16: with int16 I/O libsoxr dithers the output, and the
    dither differs with the chunking (up to +-2 LSB), so the same signal cut into different
    frames would come out different. The float32 path is bit-identical whatever the chunking,
    and no slower.

    Samples go in and come out at s16 scale (-32768..32767 as floats), not scaled to
    [-1, 1): scaling by a power of two commutes exactly with float rounding, so the output
    is bit-identical to the scaled path (a test checks it) and two passes are saved.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.ratio = out_rate / in_rate
        self._stream: Any = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
        # The largest fill (held output + new input x ratio) seen to release nothing, and
        # the smallest release seen (a block, or a multiple of one before the first single).
        self._quiet_fill = 0.0
        self._block = math.inf

    def held_samples(self) -> float:
        """Output samples the filter holds (what :meth:`drain` would return)."""
        return float(self._stream.delay())

    def _kept_floor(self) -> float:
        """A lower bound on the output a call leaves held when it releases some."""
        # A release leaves a fill under the threshold, but no less than the threshold less a
        # block; the quiet fill is under the threshold and the smallest release is at least a
        # block, so their difference is under it (less one more sample: blocks of a
        # fractional ratio vary by one).
        return max(0.0, self._quiet_fill - self._block - 1.0)

    def output_bound(self, in_samples: int) -> float:
        """At most how many samples a call with ``in_samples`` of input would return now."""
        fill = float(self._stream.delay()) + in_samples * self.ratio
        if fill <= self._quiet_fill:
            return 0.0
        return fill - self._kept_floor()

    def input_for(self, out_samples: float) -> float:
        """The least input for which :meth:`output_bound` reaches ``out_samples`` (> 0)."""
        held = float(self._stream.delay())
        fill = max(out_samples + self._kept_floor(), self._quiet_fill)
        return max(0.0, (fill - held) / self.ratio)

    def process_into(
        self, pcm: memoryview | bytes | bytearray, dest: bytearray, *, last: bool = False
    ) -> None:
        """Resample whole s16le samples and append the result to ``dest``.

        ``last=True`` also drains the filter's tail and resets the filter.
        """
        samples = np.frombuffer(pcm, dtype=PCM_DTYPE).astype(np.float32)
        fill = self._stream.delay() + samples.size * self.ratio
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(samples, last=last)
        if last:
            # Ready for a fresh signal without paying for a new filter.
            self._stream.clear()
        if out.size:
            if not last and out.size < self._block:
                self._block = out.size
            # soxr returns a fresh array: safe to work in place. Its memoryview makes `+=`
            # bytearray concatenation rather than a numpy broadcast.
            dest += to_pcm(out).data
        elif not last and fill > self._quiet_fill:
            self._quiet_fill = fill

    def process(self, pcm: memoryview | bytes | bytearray, *, last: bool = False) -> bytes:
        """Resample whole s16le samples; ``last=True`` also drains the filter's tail."""
        out = bytearray()
        self.process_into(pcm, out, last=last)
        return bytes(out)

    def drain(self) -> bytes:
        """Return the samples still held in the filter and reset it."""
        return self.process(b"", last=True)

    def reset(self) -> None:
        """Drop whatever the filter holds."""
        self._stream.clear()
