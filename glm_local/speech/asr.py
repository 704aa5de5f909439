"""Streaming speech recognition: the :class:`Recognizer` protocol and pocketsphinx.

:class:`PocketSphinxRecognizer` decodes 16 kHz int16 PCM with the US English models
shipped inside the pocketsphinx wheel. What was measured on this machine (2 vCPU,
pocketsphinx 5.1.1) and shaped the design:

* **Sharing.** The 27 MB trigram LM loads into ~33 MB of RAM. It *can* be shared:
  :class:`PocketSphinxModel` loads it once and every decoder gets it through
  ``Decoder.add_lm``. The acoustic model and the dictionary cannot be shared through
  the Python API (``ps_init`` loads its own copy; the mixture weights are mmapped and
  so shared by the page cache anyway). Anonymous memory per decoder: ~88 MB with its
  own LM, ~55 MB with the shared LM, ~35-45 MB when the dictionary is also cut down
  to the words the LM knows (79k of 135k entries; the others can never be
  recognised). Decoding adds a few MB of search buffers.
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
  ``calibration_ms`` of speech has been seen, :meth:`~PocketSphinxRecognizer.feed`
  only buffers, and :meth:`~PocketSphinxRecognizer.finish` measures the utterance's
  mean (a features-only pass, 5-25 ms; later calibrating utterances are blended with
  the earlier ones by pocketsphinx's live-CMN prior) and then decodes the buffer with
  it. Those finishes cost ~0.25-0.3x the utterance length (0.32 s for 1.1 s of
  speech); calibrated ones take 10-110 ms. No partials while calibrating.
* ``fwdflat`` (the second search pass) is off: it raised ``end_utt`` from ~30 ms to
  0.15-0.37 s without lowering WER here (LibriVox 28-34 % with it, 27-28 % without).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._deps import require

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PocketSphinxModel", "PocketSphinxRecognizer", "Recognizer"]

_RATE = 16000
_LM_SEARCH = "_lm"
_CMN_SEARCH = "_cmn"
# A one-word grammar: with it active, end_utt() after a no-search pass is cheap,
# which turns the decoder into a feature extractor for measuring the mean.
_CMN_GRAMMAR = "#JSGF V1.0;\ngrammar cmn;\npublic <s> = a;\n"


@runtime_checkable
class Recognizer(Protocol):
    """A streaming speech recogniser for one audio stream (16 kHz int16 mono PCM).

    An utterance is ``start()``, any number of ``feed()`` calls, then ``finish()``.
    Implementations keep per-stream state; calls on one instance must not overlap.
    """

    def start(self) -> None:
        """Begin an utterance, discarding an unfinished one."""
        ...

    def feed(self, pcm16k: bytes) -> str | None:
        """Add audio to the utterance (starting one if needed).

        Returns:
            A new partial transcript when it changed, else None.
        """
        ...

    def finish(self) -> str:
        """End the utterance and return its final transcript ("" if none)."""
        ...

    def reset(self) -> None:
        """Drop the utterance and any adaptation: the next audio is a new stream."""
        ...


class PocketSphinxModel:
    """Model files for pocketsphinx decoders, with the LM loaded once for all of them.

    Immutable after construction and safe to share between threads and recognisers;
    :meth:`default` returns one process-wide instance of the wheel's US English models.
    """

    _default: PocketSphinxModel | None = None
    _default_lock = threading.Lock()

    def __init__(
        self,
        hmm: str | None = None,
        lm: str | None = None,
        dictionary: str | None = None,
        *,
        prune_dictionary: bool = True,
    ) -> None:
        """Load the language model (and write the pruned dictionary).

        Args:
            hmm: Acoustic model directory; default: the wheel's ``en-us``.
            lm: Binary or ARPA trigram LM; default: the wheel's ``en-us.lm.bin``.
            dictionary: Pronunciation dictionary; default: the wheel's cmudict.
            prune_dictionary: Keep only the dictionary words the LM knows (saves
                ~12 MB per decoder; the dropped words could never be recognised).
                The pruned copy goes to a temporary file removed with this object.

        Raises:
            MissingSpeechDependency: If pocketsphinx is not installed.
            RuntimeError: If a model file cannot be loaded.
        """
        ps = require("pocketsphinx")
        defaults = ps.Config()
        self.hmm: str = hmm or defaults["hmm"]
        self.lm_path: str = lm or defaults["lm"]
        self.dictionary: str = dictionary or defaults["dict"]
        self._ps = ps
        self.lock = threading.Lock()
        """Serialises calls of decoders that share :attr:`lm` (it has mutable caches)."""
        self.lm: Any = ps.NGramModel(defaults, ps.LogMath(), self.lm_path)
        self.decoder_dictionary = self.dictionary
        if prune_dictionary:
            self.decoder_dictionary = self._write_pruned_dictionary()
            weakref.finalize(self, _unlink_quietly, self.decoder_dictionary)

    @classmethod
    def default(cls) -> PocketSphinxModel:
        """The process-wide model built from the wheel's files (loaded on first use)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def _write_pruned_dictionary(self) -> str:
        unknown = self.lm.prob(["\x00not-a-word\x00"])
        fd, path = tempfile.mkstemp(prefix="glm-local-", suffix=".dict")
        with (
            os.fdopen(fd, "w", encoding="utf-8") as out,
            open(self.dictionary, encoding="utf-8") as src,
        ):
            for line in src:
                # "word(2) phones..." is the second pronunciation of "word".
                word = line.split(" ", 1)[0].split("(", 1)[0]
                if word and self.lm.prob([word]) != unknown:
                    out.write(line)
        return path

    def new_decoder(self) -> Any:
        """Create a decoder using the shared LM (searches ``_lm`` and ``_cmn``)."""
        ps = self._ps
        config = ps.Config(
            hmm=self.hmm,
            dict=self.decoder_dictionary,
            lm=None,
            fwdflat=False,
            samprate=_RATE,
            loglevel="ERROR",
        )
        decoder = ps.Decoder(config)
        with self.lock:
            decoder.add_lm(_LM_SEARCH, self.lm)
            decoder.add_jsgf_string(_CMN_SEARCH, _CMN_GRAMMAR)
            decoder.activate_search(_LM_SEARCH)
        return decoder


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class PocketSphinxRecognizer:
    """Streaming pocketsphinx recogniser for one audio stream (implements Recognizer).

    Holds one decoder (~35-45 MB, ~0.25 s to create) that shares the LM of its
    :class:`PocketSphinxModel`. Calls on one instance must not overlap; instances
    may be used from different threads.
    """

    def __init__(
        self,
        model: PocketSphinxModel | None = None,
        *,
        calibration_ms: int = 2000,
        partial_interval_ms: int | None = 200,
        max_call_ms: int = 100,
    ) -> None:
        """Create the decoder.

        Args:
            model: Shared model; default :meth:`PocketSphinxModel.default`.
            calibration_ms: Speech to decode with per-utterance CMN (see the module
                docstring) before trusting live CMN; 0 streams from the first
                utterance.
            partial_interval_ms: How much audio between partial hypotheses; None
                disables partials.
            max_call_ms: Longest audio passed to pocketsphinx in one call (it holds
                the GIL throughout).

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
        self._decoder = self._model.new_decoder()
        self._calibration_samples = calibration_ms * _RATE // 1000
        self._partial_samples = (
            None if partial_interval_ms is None else partial_interval_ms * _RATE // 1000
        )
        self._call_bytes = max_call_ms * _RATE // 1000 * 2
        self._calibrated_samples = 0
        self._in_utt = False
        self._odd_byte = b""
        self._utt_audio = bytearray()  # kept only while calibrating
        self._since_partial = 0
        self._last_partial = ""

    @property
    def sample_rate(self) -> int:
        """Input sample rate (16000)."""
        return _RATE

    @property
    def calibrated(self) -> bool:
        """True once enough speech was seen to stream with live CMN."""
        return self._calibrated_samples >= self._calibration_samples

    def start(self) -> None:
        """Begin an utterance, discarding an unfinished one."""
        if self._in_utt:
            self._abort_utterance()
        with self._model.lock:
            self._decoder.start_utt()
        self._in_utt = True
        self._odd_byte = b""
        self._utt_audio.clear()
        self._since_partial = 0
        self._last_partial = ""

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
        if not self.calibrated:
            self._utt_audio += data[:usable]  # decoded in finish() with its own mean
            return None
        for piece in _pieces(data, usable, self._call_bytes):
            with self._model.lock:
                self._decoder.process_raw(piece)
        return self._partial(usable // 2)

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
        decoder = self._decoder
        with self._model.lock:
            decoder.end_utt()
        if self._utt_audio:
            audio = bytes(self._utt_audio)
            self._utt_audio.clear()
            self._decode_with_own_mean(audio)
            self._calibrated_samples += len(audio) // 2
        with self._model.lock:
            hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    def _decode_with_own_mean(self, audio: bytes) -> None:
        """Decode a whole utterance after setting CMN to that utterance's mean."""
        decoder = self._decoder
        with self._model.lock:
            decoder.activate_search(_CMN_SEARCH)
            try:
                decoder.start_utt()
                # full_utt computes batch CMN over this block; no_search keeps it cheap
                # (one call: features only, ~5-25 ms for several seconds of audio).
                decoder.process_raw(audio, no_search=True, full_utt=True)
                mean = decoder.get_cmn()
                decoder.end_utt()
            finally:
                decoder.activate_search(_LM_SEARCH)
            decoder.set_cmn(mean)
            decoder.start_utt()
        for piece in _pieces(audio, len(audio), self._call_bytes):
            with self._model.lock:
                decoder.process_raw(piece)
        with self._model.lock:
            decoder.end_utt()

    def _abort_utterance(self) -> None:
        with self._model.lock:
            self._decoder.end_utt()
        self._in_utt = False
        self._utt_audio.clear()

    def reset(self) -> None:
        """Drop the utterance, the learnt CMN and the calibration: a new stream."""
        if self._in_utt:
            self._abort_utterance()
        with self._model.lock:
            # A fresh feature pipeline: CMN back to its initial state with no frames
            # counted, so the next estimate is that utterance's own mean (set_cmn
            # would give the built-in mean a 500-frame weight instead).
            self._decoder.reinit_feat()
        self._calibrated_samples = 0
        self._odd_byte = b""
        self._since_partial = 0
        self._last_partial = ""


def _pieces(data: bytes, length: int, size: int) -> Iterator[bytes]:
    """Slices of ``data[:length]`` of at most ``size`` bytes (``size`` is even)."""
    view = memoryview(data)
    for offset in range(0, length, size):
        yield bytes(view[offset : min(offset + size, length)])
