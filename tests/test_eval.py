"""``glm-realtime eval`` as a user runs it: a slice of the bundled set on the virtual clock.

The report is checked against what the environment itself said in each turn's ``info``
(recomputed here by hand, not with the report's own code), Ctrl-C leaves a partial
report, and bad options are refused with the reason.
"""

from __future__ import annotations

import json
import math
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from glm_realtime.cli import cli
from tests.cli_process import cli as cli_process
from tests.net_utils import refused_port

pytestmark = pytest.mark.speech
pytest.importorskip("pocketsphinx")
pytest.importorskip("matplotlib")

# Short conversations of different categories: one tool call, a plain answer, a recall.
SLICE = ("small-talk-hello", "one-tool-weather-paris", "question-days-in-week")
TRIALS = 2
# The console script's code; at exit it says whether Ray was ever imported.
MAIN = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('ray imported:', 'ray' in sys.modules, file=sys.stderr))\n"
    "from glm_realtime.cli import main\n"
    "main()\n"
)


def eval_process(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", MAIN, "eval", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def slice_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("eval")
    proc = eval_process(
        "--only", ",".join(SLICE), "--trials", str(TRIALS), "--concurrency", "3",
        "--seed", "7", "--out", str(out),
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    return {"out": out, "stdout": stdout, "stderr": stderr, "report": report}


def test_eval_writes_json_markdown_and_png_plots_for_every_conversation(
    slice_run: dict[str, Any],
) -> None:
    out, report = slice_run["out"], slice_run["report"]
    keys = sorted((r["scenario_id"], r["trial"]) for r in report["records"])
    assert keys == sorted((s, t) for s in SLICE for t in range(TRIALS))
    for record in report["records"]:
        assert record["turns"][0]["index"] == 0 and len(record["turns"]) >= 2
        assert all(turn["info"] for turn in record["turns"])  # what the env said, kept
    markdown = (out / "report.md").read_text()
    assert all(sid in markdown for sid in SLICE)
    assert "virtual clock" in markdown and "pass^k" in markdown
    for name in ("pass_rate_by_category.png", "latency.png"):
        blob = (out / name).read_bytes()
        assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 5000
    assert f"passed {report['summary']['passed']}/{len(keys)}" in slice_run["stdout"]
    # one progress line per conversation when stderr is not a terminal
    assert slice_run["stderr"].count(" trial ") == len(keys)


def test_eval_without_ray_never_imports_ray(slice_run: dict[str, Any]) -> None:
    assert "ray imported: False" in slice_run["stderr"]


def test_report_names_backend_engine_and_marks_the_virtual_clock(
    slice_run: dict[str, Any],
) -> None:
    meta = slice_run["report"]["meta"]
    assert (meta["backend"], meta["clock"], meta["runner"]) == ("local", "virtual", "in-process")
    assert meta["engine"] == "DeterministicEngine" and meta["complete"] is True
    assert meta["options"]["seed"] == 7 and meta["planned"] == len(SLICE) * TRIALS
    assert {r["clock"] for r in slice_run["report"]["records"]} == {"virtual"}


def _p(values: list[float], q: float) -> float:
    """Linear-interpolation percentile, written out (numpy's default method)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_report_figures_agree_with_what_each_turn_reported(slice_run: dict[str, Any]) -> None:
    report = slice_run["report"]
    records, summary = report["records"], report["summary"]
    for r in records:
        last = r["turns"][-1]
        assert r["reward"] == last["reward"]
        assert r["criteria"] == last["info"]["criteria"]["parts"]
        assert r["passed"] == (last["reward"] == 1.0)  # no conversation raised
    assert summary["passed"] == sum(r["passed"] for r in records)
    for category, figures in summary["by_category"].items():
        group = [r for r in records if r["category"] == category]
        assert figures["passed"] == sum(r["passed"] for r in group)
    passes: dict[str, list[bool]] = {}
    for r in records:
        passes.setdefault(r["scenario_id"], []).append(r["passed"])
    hat2 = statistics.mean(math.comb(sum(p), 2) / math.comb(len(p), 2) for p in passes.values())
    assert summary["trials"]["pass^k"]["2"] == pytest.approx(hat2)

    def raw(kind: str) -> list[float]:
        return [
            turn["info"]["latencies"][f"{kind}_ms"]
            for r in records
            for turn in r["turns"]
            if f"{kind}_ms" in turn["info"].get("latencies", {})
        ]

    for kind in ("voice_to_voice", "greeting", "tool_wait", "barge_in_yield"):
        values, figures = raw(kind), summary["latency_ms"][kind]
        assert figures["count"] == len(values)
        if values:
            assert figures["max"] == max(values)
            assert figures["p50"] == pytest.approx(statistics.median(values))
            assert figures["p95"] == pytest.approx(_p(values, 0.95))
    assert summary["latency_ms"]["voice_to_voice"]["count"] > 0
    made = sum(len(turn["info"].get("tool_calls", [])) for r in records for turn in r["turns"])
    assert summary["tools"]["made"] == made
    weather = [r for r in records if r["scenario_id"] == "one-tool-weather-paris"]
    assert summary["tools"]["expected"] == sum(len(r["expected_tool_calls"]) for r in weather) > 0


def test_ctrl_c_stops_the_eval_and_writes_the_partial_report(tmp_path: Path) -> None:
    proc = eval_process("--trials", "3", "--concurrency", "1", "--out", str(tmp_path))
    assert proc.stderr is not None
    for line in proc.stderr:  # the first finished conversation: the run is under way
        if " trial " in line:
            proc.send_signal(signal.SIGINT)
            break
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["meta"]["complete"] is False
    assert 1 <= len(report["records"]) < report["meta"]["planned"], stderr[-3000:]
    assert "partial" in (tmp_path / "report.md").read_text()
    assert "interrupted" in stderr and "Traceback" not in stderr


def test_eval_through_a_gym_server_plays_each_conversation_over_http(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from glm_gym.server import GymSettings, create_app
    from tests.gym_utils import serving

    two = SLICE[:2]
    with serving(create_app(GymSettings())) as url:
        proc = eval_process("--server", url, "--only", ",".join(two), "--out", str(tmp_path))
        _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    meta, records = report["meta"], report["records"]
    assert (meta["runner"], meta["backend"], meta["clock"]) == ("server", "local", "virtual")
    assert sorted(r["scenario_id"] for r in records) == sorted(two)
    for r in records:  # each turn's info is what the server's env reported for that env
        assert not r["errors"] and len(r["turns"]) >= 2
        assert {t["info"]["scenario_id"] for t in r["turns"]} == {r["scenario_id"]}
        assert r["reward"] == r["turns"][-1]["reward"]


def test_a_gym_server_that_is_not_there_stops_the_eval_before_any_conversation(
    tmp_path: Path,
) -> None:
    """Every conversation would fail in turn, and the eval exit 0: it stops at once."""
    with refused_port() as port:
        refused = f"http://127.0.0.1:{port}"
        proc = eval_process("--server", refused, "--only", SLICE[0], "--out", str(tmp_path))
        _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr[-3000:]
    assert f"Error: cannot reach {refused}" in stderr and "glm-realtime gym" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "report.json").exists()


async def test_a_server_that_is_not_a_gym_server_stops_the_eval_naming_it(tmp_path: Path) -> None:
    """--server given the realtime backend's address (serve's, not gym's)."""
    from glm_local.server import LocalRealtimeServer

    async with LocalRealtimeServer(port=0) as server:
        http = server.url.replace("ws://", "http://").split("/api/")[0]
        code, _, err = await cli_process("eval", "--server", http, "--out", str(tmp_path))
    assert code == 1, err
    assert f"{http} is not a glm-realtime gym server" in err and "Traceback" not in err
    assert not (tmp_path / "report.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "no-such-scenario"], "no scenario id or category 'no-such-scenario'"),
        (["--only", ""], "'' names no scenario; give ids or categories"),
        (["--trials", "0"], "--trials"),
        (["--concurrency", "0"], "--concurrency"),
        (["--turn-timeout", "0"], "--turn-timeout"),
        (["--server", "localhost:36001"], "server URL must be http(s)://host:port"),
        (["--backend", "glm"], "needs a key: set GLM_API_KEY or pass --api-key"),
        (["--actors", "2"], "--actors needs --ray"),
        (["--ray", "--server", "http://127.0.0.1:9"], "--ray and --server do not combine"),
    ],
)
def test_bad_options_are_refused_with_the_reason(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["eval", *args], env={"GLM_API_KEY": None})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_an_out_folder_that_cannot_be_made_is_refused_before_the_run(tmp_path: Path) -> None:
    """It was found only when the report was written, after every conversation."""
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "eval"
    result = CliRunner().invoke(cli, ["eval", "--only", SLICE[0], "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"'--out': cannot write {out}: {tmp_path / 'a_file'} is a file" in result.output
    assert "scenarios x" not in result.output  # refused before the run was announced


def test_a_bad_scenario_file_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "category": "nonsense"}\n')
    result = CliRunner().invoke(cli, ["eval", "--scenarios", str(bad)])
    assert result.exit_code == 2 and f"{bad}:1" in result.output, result.output
