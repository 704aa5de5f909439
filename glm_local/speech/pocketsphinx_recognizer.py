"""Streaming speech recognition on pocketsphinx: :class:`PocketSphinxRecognizer`.

It decodes 16 kHz int16 PCM with decoders made by its
:class:`~glm_local.speech.pocketsphinx_model.PocketSphinxModel` (which notes what the
decoders share and how they are set up). What was measured on this machine (2 vCPU,
pocketsphinx 5.1.1) and shaped the recogniser:

* **Threads and the GIL.** The pocketsphinx binding holds the GIL for the whole of
  every call, so decoders never run in parallel and a long ``process_raw`` would stall
  every other Python thread, the event loop included. Audio is therefore passed in
  pieces of at most ``max_call_ms``. The shared LM has mutable caches (n-gram history,
  weights), so calls of decoders sharing it are also serialised by the model's lock; it
  costs nothing extra because the GIL already serialises them. Streaming costs 2-4 ms
  per 20 ms of audio (median), with the odd call up to ~50 ms.
* **Cepstral mean normalisation (CMN).** A fresh decoder starts from a built-in mean
  that is far from most real input, and live CMN moves slowly, so the first
  utterances of a stream decode badly (cards WER 48 % instead of 5 %). Until
  ``calibration_ms`` of speech has been seen, each utterance is decoded with a mean
  measured on that utterance. Measuring is a features-only pass of a small second
  decoder (no LM; ~3 MB, ~3 ms per second of audio). Two ways to use it:

  - **Once, in** :meth:`finish` (the default): the utterance is buffered while it is
    spoken, its whole mean measured at the end and the whole utterance decoded once
    with it: ~0.09 s of CPU per second of audio, ``finish`` 0.26 s median, 0.65 s max
    on the fixtures (about 0.1x the utterance).
  - **While it is spoken** (``decode_while_calibrating=True``): after 1 s of audio with
    the mean of that second, then at check points (every 250 ms, later every quarter of
    what was heard) the mean so far is measured again and, if it moved by more than
    ``_CMN_TOLERANCE``, decoding restarts from the utterance's start; :meth:`finish`
    measures once more and decodes again only if still too far. ``finish`` 20 ms
    median, but 0.32 s of CPU per second of audio: restarts decode the start again
    (the mean of the first second is often 10-30 apart from the final one).

  The same WER both ways (commands, LibriVox, piper: 25.2 % over 21 utterances, each a
  stream's first). The default is the cheap one because recognition CPU bounds how
  many speakers the embedded backend serves at real time: every new session starts
  calibrating, so with 8 sessions starting together, decoding while speaking needed
  3.5x the CPU exactly when every speaker's first turn competes for it. Mean distances
  (Euclidean, 13 cepstra) and their effect are noted at ``_CMN_TOLERANCE``. No
  partials while calibrating.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._memory import return_freed_memory
from .asr_protocol import SAMPLE_RATE, count_live
from .pocketsphinx_model import PocketSphinxModel

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PocketSphinxRecognizer"]

# Calibrating utterances (see the module docstring): a stream's first utterance is
# decoded once _FIRST_DECODE_MS of it has arrived; the mean is measured again every
# _CHECK_MS, later every _CHECK_GROWTH of the audio so far (multiples of _CHECK_MS).
_FIRST_DECODE_MS = 1000
_CHECK_MS = 250
_CHECK_GROWTH = 0.25
_CHECK_BYTES = _CHECK_MS * SAMPLE_RATE // 1000 * 2
_NEVER = 1 << 62
# Euclidean distance between two 13-dim cepstral means: decoding with a mean this
# far from the utterance's own changed no word on the fixtures (8 in a random
# direction neither; 8 towards the utterance's first 40 % cost 4 of 71 LibriVox words).
_CMN_TOLERANCE = 6.0


class PocketSphinxRecognizer:
    """Streaming pocketsphinx recogniser for one audio stream (implements Recognizer).

    Holds one decoder (~35-45 MB, ~0.25 s to create) that shares the LM of its
    :class:`PocketSphinxModel`, and a small feature-only decoder (a few MB) that
    measures cepstral means while calibrating, until :meth:`close` frees them (counted by
    :func:`~glm_local.speech.asr_protocol.live_recognizers`). Calls on one instance must
    not overlap; instances may be used from different threads.
    """

    def __init__(
        self,
        model: PocketSphinxModel | None = None,
        *,
        calibration_ms: int = 2000,
        partial_interval_ms: int | None = 200,
        max_call_ms: int = 100,
        decode_while_calibrating: bool = False,
    ) -> None:
        """Create the decoders.

        Args:
            model: Shared model; default :meth:`PocketSphinxModel.default`.
            calibration_ms: Speech to decode with a measured per-utterance CMN (see
                the module docstring) before trusting live CMN; 0 streams from the
                first utterance with the built-in mean.
            partial_interval_ms: How much audio between partial hypotheses; None
                disables partials.
            max_call_ms: Longest audio passed to pocketsphinx in one call (it holds
                the GIL throughout).
            decode_while_calibrating: Decode a calibrating utterance while it is
                spoken, restarting when its mean moves (``finish`` ~20 ms, 0.3-0.6 s of
                CPU per s of audio); by default it is decoded once in ``finish``
                (~0.1 s of CPU per s of audio, ``finish`` about 0.1x its length): the
                server's capacity is bound by recognition CPU (see the module docstring).

        Raises:
            ValueError: If a setting is out of range.
            MissingSpeechDependency: If pocketsphinx is not installed.
        """
        if calibration_ms < 0:
            raise ValueError(f"calibration_ms must be >= 0, not {calibration_ms}")
        if partial_interval_ms is not None and partial_interval_ms <= 0:
            raise ValueError(f"partial_interval_ms must be > 0, not {partial_interval_ms}")
        if max_call_ms <= 0:
            raise ValueError(f"max_call_ms must be > 0, not {max_call_ms}")
        self._model = model or PocketSphinxModel.default()
        self._decoder: Any = self._model.new_decoder()
        self._meter: Any = self._model.new_meter() if calibration_ms else None
        count_live(+1)
        self._calibration_samples = calibration_ms * SAMPLE_RATE // 1000
        self._decode_while_calibrating = decode_while_calibrating
        self._partial_samples = (
            None if partial_interval_ms is None else partial_interval_ms * SAMPLE_RATE // 1000
        )
        self._call_bytes = max_call_ms * SAMPLE_RATE // 1000 * 2
        self._calibrated_samples = 0
        self._in_utt = False
        self._decoding = False  # the decoder is inside an utterance
        self._odd_byte = b""
        self._since_partial = 0
        self._last_partial = ""
        # Calibrating utterances only: all of the audio, how much of it the decoder
        # has been given, the mean it decodes with, where the next check is.
        self._calibrating = False
        self._utt_audio = bytearray()
        self._decoded = 0
        self._cmn: list[float] | None = None
        self._next_check = 0
        self._stats = {"restarts": 0, "final_redecodes": 0}
        """Calibration counters: decodes restarted with a new mean during speech, and
        finishes that had to decode the whole utterance again (the slow path)."""

    @property
    def sample_rate(self) -> int:
        """Input sample rate (16000)."""
        return SAMPLE_RATE

    @property
    def calibrated(self) -> bool:
        """True once enough speech was seen to stream with live CMN."""
        return self._calibrated_samples >= self._calibration_samples

    def start(self) -> None:
        """Begin an utterance, discarding an unfinished one."""
        if self._in_utt:
            self._abort_utterance()
        self._in_utt = True
        self._odd_byte = b""
        self._since_partial = 0
        self._last_partial = ""
        self._calibrating = not self.calibrated
        self._utt_audio.clear()
        self._decoded = 0
        self._next_check = _FIRST_DECODE_MS * SAMPLE_RATE // 1000 * 2
        self._cmn = None
        if not self._calibrating:
            with self._model.lock:
                self._decoder.start_utt()
            self._decoding = True
        elif not self._decode_while_calibrating:
            self._next_check = _NEVER  # buffered; finish() measures and decodes it once
        elif self._calibrated_samples:
            # A later calibrating utterance starts from the mean the earlier ones left
            # (live CMN has blended them); the checks replace it if this one differs.
            self._next_check = _CHECK_BYTES
            with self._model.lock:
                self._cmn = _parse_cmn(self._decoder.get_cmn())
                self._decoder.start_utt()
            self._decoding = True

    def feed(self, pcm16k: bytes) -> str | None:
        """Decode more of the utterance (int16 mono 16 kHz; starts one if needed).

        Args:
            pcm16k: Any number of bytes; an odd trailing byte waits for the next call.

        Returns:
            The partial transcript if it changed since the last one returned, at most
            once per ``partial_interval_ms`` of audio; None otherwise and while
            calibrating.
        """
        if not self._in_utt:
            self.start()
        data = self._odd_byte + bytes(pcm16k)
        usable = len(data) & ~1
        self._odd_byte = data[usable:]
        if not usable:
            return None
        if self._calibrating:
            self._feed_calibrating(data[:usable])
            return None
        for piece in _pieces(data, usable, self._call_bytes):
            with self._model.lock:
                self._decoder.process_raw(piece)
        return self._partial(usable // 2)

    def _feed_calibrating(self, data: bytes) -> None:
        """Buffer the audio; at each check point, measure the utterance's mean so far.

        The decoder streams with the latest mean; when a check finds the mean moved by
        more than ``_CMN_TOLERANCE``, decoding restarts from the utterance's start
        with the new mean. Checks sit at fixed offsets into the utterance (every
        ``_CHECK_MS`` for the first second, then about every quarter of what was
        heard), so the result does not depend on how the audio is chunked.
        """
        buf = self._utt_audio
        buf += data
        while self._next_check <= len(buf):
            check = self._next_check
            step = int(check * _CHECK_GROWTH) // _CHECK_BYTES * _CHECK_BYTES
            self._next_check = check + max(_CHECK_BYTES, step)
            mean = self._measure(bytes(buf[:check]))
            if mean is not None and (
                self._cmn is None or _distance(mean, self._cmn) > _CMN_TOLERANCE
            ):
                self._restart_decoding(mean)
                self._stats["restarts"] += 1
        if self._decoding:
            self._decode_buffered(len(buf))

    def _measure(self, audio: bytes) -> list[float] | None:
        """The cepstral mean of ``audio`` (None if no frame has any energy)."""
        meter = self._meter
        assert meter is not None
        # full_utt computes batch CMN over the block; no_search keeps it cheap
        # (features only, ~3 ms per second of audio, one call).
        meter.reinit_feat()
        meter.start_utt()
        meter.process_raw(audio, no_search=True, full_utt=True)
        mean = _parse_cmn(meter.get_cmn())
        meter.end_utt()
        return None if any(math.isnan(v) for v in mean) else mean

    def _restart_decoding(self, mean: list[float]) -> None:
        """Decode the utterance again from its start, with ``mean`` as the CMN."""
        decoder = self._decoder
        with self._model.lock:
            if self._decoding:
                decoder.end_utt()
            decoder.set_cmn(",".join(repr(v) for v in mean))
            decoder.start_utt()
        self._decoding = True
        self._decoded = 0
        self._cmn = mean

    def _decode_buffered(self, end: int) -> None:
        """Give the decoder the buffered audio up to byte ``end``."""
        audio = bytes(self._utt_audio[self._decoded : end])
        for piece in _pieces(audio, len(audio), self._call_bytes):
            with self._model.lock:
                self._decoder.process_raw(piece)
        self._decoded = end

    def _partial(self, samples: int) -> str | None:
        if self._partial_samples is None:
            return None
        self._since_partial += samples
        if self._since_partial < self._partial_samples:
            return None
        self._since_partial = 0
        with self._model.lock:
            hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        if not text or text == self._last_partial:
            return None
        self._last_partial = text
        return text

    def finish(self) -> str:
        """End the utterance and return the final transcript ("" if none was started)."""
        if not self._in_utt:
            return ""
        self._in_utt = False
        self._odd_byte = b""
        if self._calibrating:
            self._finish_calibrating()
        decoder = self._decoder
        with self._model.lock:
            if self._decoding:
                decoder.end_utt()
            hyp = decoder.hyp()
        self._decoding = False
        return hyp.hypstr if hyp is not None else ""

    def _finish_calibrating(self) -> None:
        """Check the whole utterance's mean; decode it again if it moved too far."""
        buf = self._utt_audio
        if buf:
            mean = self._measure(bytes(buf))
            if mean is not None and (
                self._cmn is None or _distance(mean, self._cmn) > _CMN_TOLERANCE
            ):
                if self._decoding:
                    self._stats["final_redecodes"] += 1
                self._restart_decoding(mean)
        if not self._decoding:  # silence only and nothing learnt: built-in mean
            with self._model.lock:
                self._decoder.start_utt()
            self._decoding = True
        self._decode_buffered(len(buf))
        self._calibrated_samples += len(buf) // 2
        buf.clear()
        self._decoded = 0

    def _abort_utterance(self) -> None:
        if self._decoding:
            with self._model.lock:
                self._decoder.end_utt()
        self._decoding = False
        self._in_utt = False
        self._utt_audio.clear()
        self._decoded = 0

    def reset(self) -> None:
        """Drop the utterance, the learnt CMN and the calibration: a new stream."""
        if self._in_utt:
            self._abort_utterance()
        with self._model.lock:
            # A fresh feature pipeline: CMN back to its built-in initial state.
            self._decoder.reinit_feat()
        self._calibrated_samples = 0
        self._odd_byte = b""
        self._since_partial = 0
        self._last_partial = ""

    def close(self) -> None:
        """Free the decoders now and return their memory to the OS; idempotent.

        Not left to the garbage collector: a session's objects form reference cycles, so
        its recogniser would live until a full collection, which ~45 MB of C memory per
        decoder does not hasten (the collector counts Python objects only). Freed, that
        memory stays in glibc's heaps unless given back
        (:func:`~glm_local.speech._memory.return_freed_memory`), so whoever owns a
        recogniser gets it back by closing it.
        """
        if self._decoder is None:
            return
        self._decoder = self._meter = None
        self._in_utt = self._decoding = False
        self._utt_audio = bytearray()
        count_live(-1)
        return_freed_memory()


def _parse_cmn(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _distance(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def _pieces(data: bytes, length: int, size: int) -> Iterator[bytes]:
    """Slices of ``data[:length]`` of at most ``size`` bytes (``size`` is even)."""
    view = memoryview(data)
    for offset in range(0, length, size):
        yield bytes(view[offset : min(offset + size, length)])
