"""The ``glm-realtime`` command as a user runs it: a real process against a local server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.fake_glm import Expect, FakeGLMServer, Send
from tests.glm_graph import KEY, dumped_turn, tone_wav, turn, uplink_audio


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m glm_realtime.cli ...`` (the console script's code) to completion."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from glm_realtime.cli import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_run_plays_the_input_writes_the_reply_and_prints_transcripts(tmp_path: Path) -> None:
    script = [
        [
            Expect("session.update"),
            Expect("input_audio_buffer.append", 5),
            Send(*turn("r1", ["It is nine."])),
        ]
    ]
    async with FakeGLMServer(script) as server:
        code, out, err = await cli(
            "run",
            "--input",
            str(tone_wav(tmp_path / "in.wav")),
            "--output",
            str(tmp_path / "reply.wav"),
            "--speed",
            "0",
            "--transcript",
            str(tmp_path / "t.jsonl"),
            "--url",
            server.url,
            env={"GLM_API_KEY": KEY},
        )
    assert code == 0, err
    assert "assistant: It is nine." in out
    assert "user: What time is it?" in out
    assert "time to first audio:" in out
    assert "wrote 0.08 s of assistant audio" in out
    kinds = {json.loads(line)["kind"] for line in (tmp_path / "t.jsonl").read_text().splitlines()}
    assert kinds == {"text", "metrics"}
    assert KEY.split(".")[1] not in out + err  # the key's secret never printed


async def test_run_with_a_refused_key_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    async with FakeGLMServer(api_key="x.y") as server:
        code, _, err = await cli(
            "run",
            "--input",
            str(tone_wav(tmp_path / "in.wav")),
            "--output",
            str(tmp_path / "o.wav"),
            "--speed",
            "0",
            "--url",
            server.url,
            "--api-key",
            KEY,
        )
    assert code == 1
    assert "the GLM session failed" in err and "401" in err


async def test_run_refuses_a_missing_input_file(tmp_path: Path) -> None:
    code, _, err = await cli(
        "run",
        "--input",
        str(tmp_path / "nope.wav"),
        "--output",
        str(tmp_path / "o.wav"),
        env={"GLM_API_KEY": KEY},
    )
    assert code == 2
    assert "nope.wav" in err and "does not exist" in err


async def test_replay_of_a_user_dump_sends_the_same_audio_again(tmp_path: Path) -> None:
    """A turn dumped by the extension, replayed by the CLI, reaches GLM unchanged."""
    original, dump = await dumped_turn(tmp_path)
    script = [
        [
            Expect("session.update"),
            Expect("input_audio_buffer.append", 10),
            Send(*turn("r1", ["Hi."])),
        ]
    ]
    async with FakeGLMServer(script) as server:
        code, out, err = await cli(
            "replay",
            str(dump),
            "--output",
            str(tmp_path / "again.wav"),
            "--speed",
            "0",
            "--url",
            server.url,
            env={"GLM_API_KEY": KEY},
        )
        replayed = uplink_audio(await server.connection(0))
    assert code == 0, err
    assert "assistant: Hi." in out
    assert len(original) >= 10 * 3200
    assert replayed[: len(original)] == original


async def test_replay_needs_a_rate_when_the_name_does_not_say(tmp_path: Path) -> None:
    dump = tmp_path / "speech.pcm"
    dump.write_bytes(b"\0" * 320)
    code, _, err = await cli(
        "replay", str(dump), "--output", str(tmp_path / "o.wav"), env={"GLM_API_KEY": KEY}
    )
    assert code == 2
    assert "--sample-rate" in err
