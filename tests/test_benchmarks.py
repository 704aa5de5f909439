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
