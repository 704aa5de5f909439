"""pocketsphinx's model files, loaded once and shared by every decoder of a process.

:class:`PocketSphinxModel` holds the US English models shipped inside the pocketsphinx
wheel and makes the decoders that the recognisers of
:mod:`~glm_local.speech.pocketsphinx_recognizer` stream with. What was measured on this
machine (2 vCPU, pocketsphinx 5.1.1) and shaped the decoders:

* **Sharing.** The 27 MB trigram LM loads into ~33 MB of RAM. It *can* be shared:
  :class:`PocketSphinxModel` loads it once and every decoder gets it through
  ``Decoder.add_lm``. The acoustic model and the dictionary cannot be shared through
  the Python API (``ps_init`` loads its own copy; the mixture weights are mmapped and
  so shared by the page cache anyway). Anonymous memory per decoder: ~88 MB with its
  own LM, ~55 MB with the shared LM, ~35-45 MB when the dictionary is also cut down
  to the words the LM knows (79k of 135k entries; the others can never be
  recognised). Decoding adds a few MB of search buffers.
* ``maxhmmpf`` is 3000 (default 30000): about 40 % less CPU, the same WER but on espeak
  (see ``_MAX_HMMS_PER_FRAME``).
* ``fwdflat`` (the second search pass) is off: it raised ``end_utt`` from ~30 ms to
  0.15-0.37 s without lowering WER here (LibriVox 28-34 % with it, 27-28 % without).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import weakref
from typing import Any

from ._deps import require
from .asr_protocol import SAMPLE_RATE

__all__ = ["PocketSphinxModel"]

_LM_SEARCH = "_lm"
_CMN_SEARCH = "_cmn"
# A one-word grammar: with it active, end_utt() after a no-search pass is cheap,
# which turns the decoder into a feature extractor for measuring the mean.
_CMN_GRAMMAR = "#JSGF V1.0;\ngrammar cmn;\npublic <s> = a;\n"
# Active HMMs kept per frame (pocketsphinx's default: 30000). Measured on the commands,
# LibriVox, piper and espeak sets (32 utterances): 3000 cut decoding CPU by 45 % for a
# stream's first (calibrating) utterance and 38 % after it (0.61 -> 0.33 and 0.18 -> 0.11
# s per s of audio), with the same WER on commands, LibriVox and piper, espeak 2-5 points
# worse; 5000 and 8000 saved less, beams narrowed to 1e-40 cost 10-20 WER points.
_MAX_HMMS_PER_FRAME = 3000


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
        """Create a decoder using the shared LM (search ``_lm``)."""
        ps = self._ps
        config = ps.Config(
            hmm=self.hmm,
            dict=self.decoder_dictionary,
            lm=None,
            fwdflat=False,
            maxhmmpf=_MAX_HMMS_PER_FRAME,
            samprate=SAMPLE_RATE,
            loglevel="ERROR",
        )
        decoder = ps.Decoder(config)
        with self.lock:
            decoder.add_lm(_LM_SEARCH, self.lm)
            decoder.activate_search(_LM_SEARCH)
        return decoder

    def new_meter(self) -> Any:
        """Create a feature-only decoder for measuring cepstral means (no LM, a
        one-word dictionary and grammar: ~3 MB and ~10 ms to create)."""
        ps = self._ps
        config = ps.Config(
            hmm=self.hmm, dict=None, lm=None, fwdflat=False, samprate=SAMPLE_RATE, loglevel="ERROR"
        )
        meter = ps.Decoder(config)
        meter.add_word("a", "AH", True)
        meter.add_jsgf_string(_CMN_SEARCH, _CMN_GRAMMAR)
        meter.activate_search(_CMN_SEARCH)
        return meter


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
