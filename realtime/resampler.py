"""A streaming s16 resampler over ``soxr.ResampleStream``, and when a call to it is worth it.

For most rate pairs soxr releases output in whole blocks of its filter stage (734 samples
for 16 -> 24 kHz at the default quality; blocks of a fractional ratio vary by a sample or
two), and only while the output it holds plus what a new chunk brings (the *fill*) is at or
above a threshold set by the filter; it releases as many blocks as keep the fill at or above
it. So a call returns nothing under the threshold, and otherwise one block plus one more for
every further block of fill above it.

:func:`release_model` measures the threshold (from below) and the block size on a throwaway
stream fed three seconds of chunks of random sizes, and checks the result on a second one
cut differently (a few ms, once per rate pair and process). With a model,
:class:`StreamResampler` bounds what a call would return, so a caller that batches input
(the uplink packer) skips the calls that could not give it what it waits for. In float32
soxr gives the same samples for one big call as for many small ones, so skipping costs no
samples, and as the bound does not undercount, no output comes later than with a call on
every chunk. Pairs that do not follow the rule (ratios beyond 3, run in several stages) get
no model and the plain bound: what a drain would return. Tests check both claims over many
rates and chunkings. One limit is soxr's own: at some large ratios (seen at 96 -> 22.05 kHz)
when soxr releases depends on how the input was cut, so no batching can match per-chunk
calls to the frame there.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from realtime.pcm import PCM_DTYPE

logger = logging.getLogger(__name__)

__all__ = ["ReleaseModel", "StreamResampler", "release_model", "to_pcm"]

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


@dataclass(frozen=True)
class ReleaseModel:
    """How soxr releases output for one rate pair (see the module docstring)."""

    quiet_fill: float
    """The largest fill seen that released nothing or stayed held: under the threshold."""
    block: int
    """The smallest release seen: one block."""
    block_low: float = field(init=False)
    """The least a block may be: blocks of a fractional ratio vary by a sample or two."""
    block_high: float = field(init=False)
    """The most a block may be."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_low", self.block * 0.99 - 1.0)
        object.__setattr__(self, "block_high", self.block * 1.01 + 1.0)

    def bound(self, fill: float) -> float:
        """At most how many samples a call that brings the fill to ``fill`` returns."""
        above = fill - self.quiet_fill
        if above <= 0:
            return 0.0
        return (above // self.block_low + 1) * self.block_high

    def fill_for(self, out_samples: float) -> float:
        """The least fill for which :meth:`bound` reaches ``out_samples``."""
        blocks = max(1, math.ceil(out_samples / self.block_high))
        return self.quiet_fill + (blocks - 1) * self.block_low


def _random_chunks(in_rate: int, seed: int) -> list[npt.NDArray[np.float32]]:
    """Three seconds of silence in chunks of 0.1 to 300 ms, log-uniform: from sample-sized
    pieces to the large blocks a batching caller sends. When soxr releases output depends
    on the sizes only, not on the samples."""
    rng = random.Random(seed)
    signal = np.zeros(in_rate * 3, dtype=np.float32)
    chunks, pos = [], 0
    while pos < signal.size:
        size = max(1, int(in_rate * 10 ** rng.uniform(-4.0, -0.5)))
        chunks.append(signal[pos : pos + size])
        pos += size
    return chunks


@lru_cache(maxsize=64)
def release_model(in_rate: int, out_rate: int) -> ReleaseModel | None:
    """Measure how soxr releases output from ``in_rate`` to ``out_rate``, or None if it
    does not follow the threshold-and-blocks rule closely enough to predict it.

    One throwaway stream measures the model, a second one with another chunking checks it:
    no call may return more than the model allows.
    """
    ratio = out_rate / in_rate
    if not 1 / 3 <= ratio <= 3:
        # Larger ratios run soxr in several stages, whose releases a probe cannot pin down
        # (seen at 44.1 -> 8 kHz: a model that passed both probes undercounted later).
        return None
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
    quiet, least_release, releases = 0.0, math.inf, []
    for chunk in _random_chunks(in_rate, seed=1):
        fill = float(stream.delay()) + chunk.size * ratio
        out = stream.resample_chunk(chunk)
        if out.size:
            least_release = min(least_release, fill)
            releases.append(out.size)
            quiet = max(quiet, float(stream.delay()))
        else:
            quiet = max(quiet, fill)
    if not releases or quiet > least_release - 1.0:
        return None  # no sharp threshold
    block = min(releases)
    if any(abs(size - round(size / block) * block) > 0.01 * size + 1 for size in releases):
        return None  # releases are not whole blocks
    model = ReleaseModel(quiet_fill=quiet, block=block)
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
    for chunk in _random_chunks(in_rate, seed=2):
        fill = float(stream.delay()) + chunk.size * ratio
        if stream.resample_chunk(chunk).size > model.bound(fill):
            return None
    return model


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
        self.ratio = out_rate / in_rate
        self.rates = (in_rate, out_rate)
        self._stream: Any = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
        # Measured on first use: only a batching caller asks for bounds.
        self._model: ReleaseModel | None = None
        self._model_loaded = False

    def _release_model(self) -> ReleaseModel | None:
        if not self._model_loaded:
            self._model = release_model(*self.rates)
            self._model_loaded = True
        return self._model

    def held_samples(self) -> float:
        """Output samples the filter holds (what :meth:`drain` would return)."""
        return float(self._stream.delay())

    def output_bound(self, in_samples: int) -> float:
        """At most how many samples a call with ``in_samples`` of input would return now."""
        fill: float = self._stream.delay() + in_samples * self.ratio
        model = self._release_model()
        if model is None:
            return fill  # a drain's worth
        return min(model.bound(fill), fill)

    def input_for(self, out_samples: float) -> float:
        """The least input for which :meth:`output_bound` could reach ``out_samples``."""
        model = self._release_model()
        fill = out_samples if model is None else max(model.fill_for(out_samples), out_samples)
        held: float = self._stream.delay()
        return max(0.0, (fill - held) / self.ratio)

    def process_into(
        self, pcm: memoryview | bytes | bytearray, dest: bytearray, *, last: bool = False
    ) -> None:
        """Resample whole s16le samples and append the result to ``dest``.

        ``last=True`` also drains the filter's tail and resets the filter.
        """
        stream = self._stream
        samples = np.frombuffer(pcm, dtype=PCM_DTYPE).astype(np.float32)
        fill: float = stream.delay() + samples.size * self.ratio
        out: npt.NDArray[np.float32] = stream.resample_chunk(samples, last=last)
        if last:
            # Ready for a fresh signal without paying for a new filter.
            stream.clear()
        elif self._model is not None and out.size > self._model.bound(fill):
            # Never seen in testing; if soxr ever releases more than the model allows, the
            # model is wrong for this stream and only the drain bound is safe.
            logger.warning("soxr %d -> %d Hz broke its release model; dropped", *self.rates)
            self._model = None
        if out.size:
            # soxr returns a fresh array: safe to work in place. Its memoryview makes `+=`
            # bytearray concatenation rather than a numpy broadcast.
            dest += to_pcm(out).data

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
