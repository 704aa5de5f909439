"""Closing a speech part gives its C memory back to the operating system, whoever owns it.

Each case runs in a fresh interpreter, so the resident size it reads is its own: a thread
makes the parts (so their memory sits in that thread's glibc arena, as in a session's
worker thread), uses them on real audio and closes them; nothing else gives memory back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from glm_local.speech import PocketSphinxModel
    from glm_local.speech._memory import _malloc_trim

    PocketSphinxModel.default()
except ImportError as exc:  # the [local] extra is missing
    pytest.skip(f"speech parts unavailable: {exc}", allow_module_level=True)

pytestmark = [
    pytest.mark.speech,
    pytest.mark.skipif(_malloc_trim() is None, reason="no glibc malloc_trim: nothing to give"),
]

_CASE = """
import json, os, sys, threading
from glm_local.speech import PocketSphinxModel, PocketSphinxRecognizer, SpeechDetector
from tests.local_utils import goforward

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def recognizers():
    parts = [PocketSphinxRecognizer(model, partial_interval_ms=None) for _ in range(2)]
    for part in parts:
        part.start(); part.feed(audio); part.finish()
    return parts

def detectors():
    parts = [SpeechDetector() for _ in range(4)]
    for part in parts:
        part.feed(audio)
    return parts

model = PocketSphinxModel.default()
SpeechDetector().close()  # the native library loaded before the baseline
audio = goforward()
figures = {"base": rss_mb()}

def session():
    parts = {"recognizers": recognizers, "detectors": detectors}[sys.argv[1]]()
    figures["peak"] = rss_mb()
    for part in parts:
        part.close()

thread = threading.Thread(target=session)
thread.start(); thread.join()
figures["after"] = rss_mb()
print(json.dumps(figures))
"""


@pytest.mark.parametrize("parts", ["recognizers", "detectors"])
def test_closing_speech_parts_made_on_a_thread_returns_their_memory(parts: str) -> None:
    """Without the trim in ``close``, glibc kept ~78 MB of the 115 two decoders took (and
    ~38 MB of four VADs' 46) in the thread's arena."""
    out = subprocess.run(
        [sys.executable, "-c", _CASE, parts],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    mb = json.loads(out.stdout)
    taken = mb["peak"] - mb["base"]
    assert taken > 20, mb  # the parts really took memory
    assert mb["after"] - mb["base"] < taken / 2, mb
