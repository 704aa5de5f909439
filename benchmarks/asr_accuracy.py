"""Recognisers side by side: WER and latency of pocketsphinx and whisper per recording set.

Sets (``--sets``):

* ``commands``: the real recordings "go forward ten meters", "feels like these days go on
  forever" and the five cards clips, wrapped in the digital silence a gated microphone gives
  (300 ms before, 500 ms after: the VAD's padding and hangover), as in ``test_speech.py``.
* ``librivox``: five real LibriVox sentences (3-7 s).
* ``espeak`` / ``piper``: the backend's own TTS (``glm_local.speech.tts``) saying five
  commands and four Harvard sentences, in a quiet room (-50 dBFS background).

The real recordings are read from ``--audio`` (default ``tests/fixtures/audio``;
``../shared/audio`` has the same files). Each engine gets one fresh recogniser per set (one
call), fed 20 ms pieces; WER is scored with jiwer after the tests' normaliser (numbers
spelled out: whisper writes "10"). Measured per utterance:

* **finish**: wall time of ``finish()``, from the last audio fed to the transcript, i.e.
  what the caller waits after the VAD has decided the turn ended (pocketsphinx has decoded
  while the audio streamed; whisper decodes the whole utterance here).
* **CPU / audio**: process CPU time (every thread) for feeding and finishing, per second
  of audio.

Run: ``python -m benchmarks asr_accuracy [--sets commands,librivox,espeak,piper]
[--engines pocketsphinx,whisper] [--audio DIR]``. ``python -m benchmarks local_backend``
prints the same table at its end (:func:`report`).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.speech_utils import AUDIO, HARVARD, PHRASES, RATE, corpus, in_room, tts_to_16k, wer

SETS = ("commands", "librivox", "espeak", "piper")
ENGINES = ("pocketsphinx", "whisper")
_CHUNK = RATE // 50 * 2  # 20 ms of int16
_LEAD, _TRAIL = bytes(RATE * 2 * 300 // 1000), bytes(RATE * 2 * 500 // 1000)


def _utterances(name: str, audio: Path) -> list[tuple[str, bytes]]:
    if name == "commands":
        real = corpus("misc", audio) + corpus("cards", audio)
        return [(text, _LEAD + pcm + _TRAIL) for text, pcm in real]
    if name == "librivox":
        return corpus("librivox", audio)
    from glm_local.speech import make_synthesizer

    synth = make_synthesizer("piper" if name == "piper" else "espeak")
    return [(text, in_room(tts_to_16k(synth, text))) for text in PHRASES + HARVARD]


@dataclass
class _Result:
    wer: float
    finish_s: list[float]
    cpu_s: float
    audio_s: float


def _run(new_recognizer: Callable[[], Any], data: list[tuple[str, bytes]]) -> _Result:
    recognizer = new_recognizer()
    hyps, finishes = [], []
    cpu0 = time.process_time()
    for _, pcm in data:
        recognizer.start()
        for offset in range(0, len(pcm), _CHUNK):
            recognizer.feed(pcm[offset : offset + _CHUNK])
        started = time.perf_counter()
        hyps.append(recognizer.finish())
        finishes.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu0
    recognizer.close()
    audio_s = sum(len(pcm) for _, pcm in data) / 2 / RATE
    return _Result(wer([t for t, _ in data], hyps), finishes, cpu, audio_s)


def _available(engines: list[str], sets: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The engines and sets whose packages are installed, and notes on the others."""
    from glm_local.speech import MissingSpeechDependency
    from glm_local.speech.recognizers import check_recognizer_installed, check_recognizer_name

    notes, usable = [], []
    for engine in engines:
        try:
            check_recognizer_installed(check_recognizer_name(engine))
            usable.append(engine)
        except MissingSpeechDependency as exc:
            notes.append(f"{engine} skipped: {exc}")
    if "piper" in sets and importlib.util.find_spec("piper") is None:
        sets = [s for s in sets if s != "piper"]
        notes.append("piper set skipped: pip install 'glm-realtime[piper]'")
    return usable, sets, notes


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f}"


def report(
    sets: list[str] | None = None, engines: list[str] | None = None, audio: Path = AUDIO
) -> str:
    """Measure and return the markdown table (engines and sets not installed are noted)."""
    from glm_local.speech.recognizers import check_recognizer_name, recognizer_factory

    engines, sets, notes = _available(list(engines or ENGINES), list(sets or SETS))
    data = {name: _utterances(name, audio) for name in sets}
    results: dict[tuple[str, str], _Result] = {}
    loads: dict[str, float] = {}
    for engine in engines:
        started = time.perf_counter()
        new_recognizer = recognizer_factory(check_recognizer_name(engine))
        loads[engine] = time.perf_counter() - started
        for name in sets:
            results[engine, name] = _run(new_recognizer, data[name])
    head = " | ".join(
        [f"{e} WER" for e in engines]
        + [f"{e} finish p50 / max ms" for e in engines]
        + [f"{e} CPU s per s of audio" for e in engines]
    )
    lines = [
        f"| recordings | utterances (audio s) | {head} |",
        "|---|---:|" + "---:|" * (3 * len(engines)),
    ]
    for name in sets:
        cells = [f"{results[e, name].wer:.1%}" for e in engines]
        cells += [_ms(results[e, name].finish_s) for e in engines]
        cells += [f"{results[e, name].cpu_s / results[e, name].audio_s:.2f}" for e in engines]
        audio_s = sum(len(pcm) for _, pcm in data[name]) / 2 / RATE
        lines.append(f"| {name} | {len(data[name])} ({audio_s:.0f}) | " + " | ".join(cells) + " |")
    loaded = ", ".join(f"{e} {s:.1f} s" for e, s in loads.items())
    lines.append(f"\nmodel load (first in this process): {loaded}")
    return "\n".join(lines + notes)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks asr_accuracy")
    parser.add_argument("--sets", default=",".join(SETS), help=f"of {', '.join(SETS)}")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"of {', '.join(ENGINES)}")
    parser.add_argument("--audio", type=Path, default=AUDIO, help="the real recordings' folder")
    args = parser.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    engines = [e for e in args.engines.split(",") if e]
    unknown = sorted(set(sets) - set(SETS)) + sorted(set(engines) - set(ENGINES))
    if unknown:
        parser.error(f"unknown {', '.join(unknown)}; sets: {SETS}, engines: {ENGINES}")
    print(report(sets, engines, args.audio))
    return 0
