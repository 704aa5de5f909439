"""The benchmarks still run: each on a tiny input, as a user would start it.

No figure is checked (figures belong to the benchmark runs recorded in BENCHMARKS.md);
these tests only keep the scripts from rotting as the code under them changes.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m benchmarks ARGS`` to completion; it must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_benchmark_list_names_every_benchmark() -> None:
    listed = set(re.findall(r"^  (\w+)", bench("--help").stderr, re.M))
    assert {"uplink", "extension", "local_backend"} <= listed


def test_uplink_benchmark_sends_every_message_and_reports_both_ratios() -> None:
    """The sink checks it received every message of every run (the run fails if not)."""
    out = bench("uplink", "--seconds", "1", "--repeats", "1").stdout
    assert len(re.findall(r"seed / ours CPU: [\d.]+x", out)) == 2
    assert re.search(r"^ours +[\d.]+ +10\.0 ", out, re.M)  # 10 messages per second
    assert re.search(r"^seed +[\d.]+ +100\.0 ", out, re.M)  # one per 10 ms frame


def test_extension_benchmark_measures_both_directions() -> None:
    out = bench("extension", "--seconds", "1").stdout
    assert re.search(r"^uplink .* p99 [\d.]+ ms .*\(n=\d+\)", out, re.M)
    assert re.search(r"^downlink .* p99 [\d.]+ ms .*\(n=\d+\)", out, re.M)


@pytest.mark.speech
def test_local_backend_benchmark_answers_a_turn() -> None:
    pytest.importorskip("pocketsphinx")
    out = bench(
        "local_backend",
        "--sessions",
        "1",
        "--turns",
        "1",
        "--rounds",
        "1",
        "--round-sessions",
        "1",
        "--wer-sets",
        "",
    ).stdout
    # one speaker offered, admitted, none refused, one reply, none given up, its time
    assert re.search(r"^\| 1 \| 1 \| 0 \| 1 \| 0 \| \d+ / \d+ / \d+ \|", out, re.M), out
    assert re.search(r"^\| 1 \| 1 \| \d+ \| 0 \|$", out, re.M), out  # no recogniser left


def test_a_local_backend_speaker_settles_once_each_utterance_is_transcribed_and_answered() -> None:
    """The speaker's running counts: an utterance with words waits for its response.done,
    an empty one only for its transcript, and an earlier turn's stop is not a new one."""
    from benchmarks.local_backend import _Client
    from realtime.events import parse_server_event

    client = _Client()

    def receive(kind: str, **fields: object) -> None:
        client.record(0.0, parse_server_event({"type": kind, "event_id": "e", **fields}))

    transcribed = "conversation.item.input_audio_transcription.completed"
    item = {"item_id": "i", "content_index": 0}
    receive("session.created", session={"id": "s"})
    receive("input_audio_buffer.speech_started", audio_start_ms=0, item_id="i")
    receive("input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="i")
    assert not client.settled(0)  # not transcribed yet
    receive(transcribed, transcript="go forward ten meters", **item)
    assert not client.settled(0)  # not answered yet
    receive("response.done", response={"id": "r", "status": "completed"})
    assert client.settled(0) and not client.settled(1)
    receive("input_audio_buffer.speech_started", audio_start_ms=2000, item_id="j")
    receive("input_audio_buffer.speech_stopped", audio_end_ms=2500, item_id="j")
    receive(transcribed, transcript="", **item)
    assert client.settled(1)  # nothing said: nothing to answer
    assert client.count("input_audio_buffer.speech_stopped") == 2


@pytest.mark.speech
def test_eval_scale_benchmark_compares_ray_with_the_in_process_eval() -> None:
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("ray")
    out = bench(
        "eval_scale", "--only", "small-talk-hello", "--actors", "1", "--num-cpus", "1"
    ).stdout
    assert re.search(r"^\| in-process \| - \| 4 \| \d/1 \|.* 1\.00x \| \d+% \|$", out, re.M), out
    assert re.search(r"^\| ray \| 1 \| 4 \| \d/1 \|.*x \| \d+% \|$", out, re.M), out


@pytest.mark.speech
def test_asr_accuracy_benchmark_scores_every_installed_engine() -> None:
    pytest.importorskip("pocketsphinx")
    out = bench("asr_accuracy", "--sets", "commands").stdout
    row = re.search(r"^\| commands \| 7 \(\d+\) \| ([\d.]+)% \|", out, re.M)
    assert row is not None, out
    if importlib.util.find_spec("faster_whisper") is not None:
        assert "| pocketsphinx WER | whisper WER |" in out, out


@pytest.mark.speech
def test_gym_benchmark_holds_its_envs_and_reports_the_step_overhead() -> None:
    pytest.importorskip("fastapi")
    out = bench("gym", "--envs", "2", "--idle-s", "0.2", "--probes", "3").stdout
    assert re.search(r"live envs held +2 of 2", out), out
    assert re.search(r"step overhead, instant steps +p50 [\d.]+ ms", out), out
