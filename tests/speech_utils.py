"""Helpers for the offline speech tests: fixture loading, WER, synthetic backgrounds.

Only numpy and the standard library at import time; soundfile, soxr, jiwer and num2words
are imported inside the functions that need them, so a missing speech extra makes the
test module skip instead of this import failing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from glm_local.speech import Synthesizer

AUDIO = Path(__file__).parent / "fixtures" / "audio"
RATE = 16000
PHRASES = [
    "go forward ten meters",
    "turn left at the next corner",
    "what time is it",
    "hello can you hear me clearly",
    "please stop the music",
]
"""Short commands, rendered by the backend's own TTS for round trips through a recogniser."""
HARVARD = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "Four hours of steady work faced us.",
]
"""Harvard sentences (list 1, public domain): phonetically balanced open speech."""

_PUNCTUATION = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")
# A number as a recogniser writes it: 10, 1,000, 3.5, 21st, 50%.
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(st|nd|rd|th)?(%?)")
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def _spell_number(match: re.Match[str]) -> str:
    from num2words import num2words

    digits, ordinal, percent = match.groups()
    words = num2words(digits.replace(",", ""), to="ordinal" if ordinal else "cardinal")
    return f" {words}{' percent' if percent else ''} "


def normalize(text: str) -> str:
    """Lowercase, numbers spelled out (whisper writes "10 of clubs", the references say
    "ten of clubs"), punctuation and hyphens dropped (apostrophes inside words kept),
    titles spelled out ("Mr." -> "mister")."""
    spelled = _NUMBER.sub(_spell_number, text.lower())
    words = _PUNCTUATION.sub(" ", spelled).split()
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate (jiwer) after :func:`normalize`."""
    import jiwer

    return float(jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses]))


def read_transcription(path: Path) -> dict[str, str]:
    """Parse pocketsphinx ``<s> words </s> (id)`` lines into ``{id: words}``."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*<s>(.*)</s>\s*\((.+)\)\s*$", line)
        if match:
            out[match.group(2)] = " ".join(match.group(1).split())
    return out


def load_wav(path: Path) -> bytes:
    """A 16 kHz mono WAV as int16 little-endian bytes."""
    import soundfile

    data, rate = soundfile.read(str(path), dtype="int16")
    assert rate == RATE and data.ndim == 1, (path, rate, data.shape)
    return bytes(data.astype("<i2").tobytes())


def corpus(name: str, root: Path = AUDIO) -> list[tuple[str, bytes]]:
    """(transcript, pcm16k) pairs of a recording set under ``root`` (the fixtures, or
    shared/audio, which has the same layout): ``librivox``, ``cards`` or ``misc``."""
    if name == "librivox":
        texts = read_transcription(root / "librivox" / "transcription")
        return [(t, load_wav(root / "librivox" / f"{k}.wav")) for k, t in sorted(texts.items())]
    if name == "cards":
        texts = read_transcription(root / "cards" / "cards.transcription")
        return [(t, load_wav(root / "cards" / f"{k}.wav")) for k, t in sorted(texts.items())]
    if name == "misc":
        misc = root / "pocketsphinx-misc"
        return [
            ("go forward ten meters", (misc / "goforward.raw").read_bytes()),
            ("feels like these days go on forever", load_wav(misc / "input_2_16k.wav")),
        ]
    raise ValueError(name)


def noise(n_samples: int, dbfs: float, seed: int = 0) -> np.ndarray:
    """Seeded white noise with the given RMS level, as float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n_samples) * 10 ** (dbfs / 20)).astype(np.float32)


def to_pcm16(audio: np.ndarray) -> bytes:
    """float [-1, 1] to int16 little-endian bytes."""
    return bytes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())


def from_pcm16(pcm: bytes) -> np.ndarray:
    """int16 little-endian bytes to float32 in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768


def in_room(
    pcm16k: bytes, *, lead_ms: int = 300, trail_ms: int = 600, dbfs: float = -50.0
) -> bytes:
    """Put clean (e.g. synthetic) speech into a quiet room as a microphone would hear it.

    Adds ``lead_ms``/``trail_ms`` of background around it (what the VAD's prefix
    padding and hangover pass to the recogniser) and the same background under it.
    """
    speech = from_pcm16(pcm16k)
    lead, trail = lead_ms * RATE // 1000, trail_ms * RATE // 1000
    background = noise(lead + speech.size + trail, dbfs)
    background[lead : lead + speech.size] += speech
    return to_pcm16(background)


def energy_onset_ms(pcm16k: bytes, *, below_peak_db: float = 25.0, hold_ms: int = 50) -> int:
    """Start of the first ``hold_ms`` run of 10 ms frames within ``below_peak_db`` of the peak.

    Requiring a run skips isolated clicks before the speech.
    """
    x = from_pcm16(pcm16k).astype(np.float64)
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    loud = level > level.max() - below_peak_db
    hold = hold_ms // 10
    for i in range(loud.size - hold + 1):
        if loud[i : i + hold].all():
            return i * 10
    raise AssertionError("no speech-like energy found")


def energy_offset_ms(pcm16k: bytes, *, below_peak_db: float = 25.0) -> int:
    """End of the last 10 ms frame within ``below_peak_db`` of the peak."""
    x = from_pcm16(pcm16k).astype(np.float64)
    frames = x[: x.size // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    loud = np.nonzero(level > level.max() - below_peak_db)[0]
    return int(loud[-1] + 1) * 10


def resample(pcm: bytes, src: int, dst: int) -> bytes:
    """Resample int16 bytes with soxr HQ."""
    import soxr

    return to_pcm16(soxr.resample(from_pcm16(pcm), src, dst))


def tts_to_16k(synth: Synthesizer, text: str) -> bytes:
    """``text`` spoken by ``synth``, resampled to 16 kHz."""
    return resample(b"".join(synth.synthesize(text)), synth.sample_rate, RATE)


def chunks(data: bytes, size: int) -> list[bytes]:
    """Split bytes into pieces of ``size`` (the last may be shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)]
