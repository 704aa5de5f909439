"""The ``glm-realtime`` command as a user runs it: a real process against a local server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli_process import assert_user_error, bundled_graph_with, cli
from tests.fake_glm import Expect, FakeGLMServer, Send
from tests.glm_graph import KEY, dumped_turn, tone_wav, turn, uplink_audio


async def scripted_run(
    input_path: Path, *args: str, before: tuple[str, ...] = (), pre: str = ""
) -> tuple[int, str, str, bytes]:
    """``glm-realtime BEFORE run ... ARGS`` against a scripted GLM server that answers one
    turn; also the uplink audio it received."""
    script = [
        [
            Expect("session.update"),
            Expect("input_audio_buffer.append", 5),
            Send(*turn("r1", ["It is nine."])),
        ]
    ]
    async with FakeGLMServer(script) as server:
        code, out, err = await cli(
            *before,
            "run",
            "--input",
            str(input_path),
            "--output",
            str(input_path.with_name("reply.wav")),
            "--speed",
            "0",
            "--url",
            server.url,
            *args,
            env={"GLM_API_KEY": KEY},
            pre=pre,
        )
        audio = uplink_audio(server.connections[0]) if server.connections else b""
    return code, out, err, audio


async def test_run_plays_the_input_writes_the_reply_and_prints_transcripts(tmp_path: Path) -> None:
    wav = tone_wav(tmp_path / "in.wav")
    code, out, err, _ = await scripted_run(wav, "--transcript", str(tmp_path / "t.jsonl"))
    assert code == 0, err
    assert "assistant: It is nine." in out
    assert "user: What time is it?" in out
    assert "time to first audio:" in out
    assert "wrote 0.08 s of assistant audio" in out
    kinds = {json.loads(line)["kind"] for line in (tmp_path / "t.jsonl").read_text().splitlines()}
    assert kinds == {"text", "metrics"}
    assert KEY.split(".")[1] not in out + err  # the key's secret never printed


async def quick_run(
    url: str, tmp_path: Path, *args: str, env: dict[str, str | None] | None = None
) -> tuple[int, str, str]:
    """``glm-realtime run ARGS`` of a short tone against ``url``, as fast as it goes."""
    tone = str(tone_wav(tmp_path / "in.wav"))
    output = str(tmp_path / "o.wav")
    return await cli(
        "run", "--input", tone, "--output", output, "--speed", "0", "--url", url, *args, env=env
    )


async def test_run_with_a_refused_key_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    async with FakeGLMServer(api_key="x.y") as server:
        code, _, err = await quick_run(server.url, tmp_path, "--api-key", KEY)
    assert code == 1
    assert "the GLM session failed" in err and "401" in err


@pytest.mark.parametrize("status", [401, 403])
async def test_a_server_refusing_a_run_without_a_key_is_told_to_pass_one(
    tmp_path: Path, status: int
) -> None:
    """An authentication refusal (either status) of a run with no key says to pass
    --api-key."""
    async with FakeGLMServer(refuse_status=status) as server:
        code, _, err = await quick_run(server.url, tmp_path, env={"GLM_API_KEY": None})
    assert_user_error(
        code, err, 1, f"HTTP {status}", "the server wants a token: pass it as --api-key"
    )


async def test_a_refused_key_ends_the_run_before_the_input_has_played(tmp_path: Path) -> None:
    """At real-time pace a failed session ends the turn at once, not after 20 s of input."""
    async with FakeGLMServer(api_key="x.y") as server:
        code, _, err = await cli(
            "run",
            "--input",
            str(tone_wav(tmp_path / "in.wav", seconds=20.0)),
            "--output",
            str(tmp_path / "o.wav"),
            "--url",
            server.url,
            "--api-key",
            KEY,
        )
    assert_user_error(code, err, 1, "the GLM session failed", "401")
    assert "sending 20.0 s of audio" in err
    assert "sent the audio" not in err


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


async def test_a_dump_that_cannot_be_written_is_logged_and_the_turn_goes_on(
    tmp_path: Path,
) -> None:
    """The first write used to kill the session's owner task: no reply, no reason, a
    timeout. Now the dump is logged once, naming the path and why, and switched off."""
    (tmp_path / "a_file").write_text("not a folder")
    dumps = tmp_path / "a_file" / "dumps"
    graph = bundled_graph_with(
        tmp_path,
        "g.json",
        "glm",
        {"property": {"api_key": "${env:GLM_API_KEY|}", "dump": True, "dump_path": str(dumps)}},
    )
    code, out, err, _ = await scripted_run(tone_wav(tmp_path / "in.wav"), "--graph", str(graph))
    assert code == 0, err
    assert "assistant: It is nine." in out
    assert err.count("cannot write the audio dump") == 1, err
    assert str(dumps) in err and "dumping is off" in err and "Traceback" not in err


async def test_replay_needs_a_rate_when_the_name_does_not_say(tmp_path: Path) -> None:
    dump = tmp_path / "speech.pcm"
    dump.write_bytes(b"\0" * 320)
    code, _, err = await cli(
        "replay", str(dump), "--output", str(tmp_path / "o.wav"), env={"GLM_API_KEY": KEY}
    )
    assert_user_error(code, err, 2, "--sample-rate")


async def test_run_reports_progress_on_stderr_and_q_silences_it(tmp_path: Path) -> None:
    """While it works: audio sent, what was heard, the reply; the result stays on stdout."""
    wav = tone_wav(tmp_path / "in.wav")
    code, out, err, _ = await scripted_run(wav)
    assert code == 0, err
    assert "sending 1.0 s of audio" in err
    assert "sent the audio, waiting for the reply" in err
    assert "heard: What time is it?" in err
    assert "reply: It is nine." in err
    assert "assistant: It is nine." in out and "reply:" not in out

    code, out, err, _ = await scripted_run(wav, "-q")
    assert code == 0, err
    assert err == ""
    assert "assistant: It is nine." in out


def _soundfile_wav(path: Path, subtype: str, channels: int) -> Path:
    """A 1 s 440 Hz tone at 22050 Hz, 8000 / 32768 of full scale, written by libsndfile."""
    import soundfile

    tone = 8000 / 32768 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    soundfile.write(str(path), np.stack([tone] * channels, axis=1), 22050, subtype=subtype)
    return path


@pytest.mark.parametrize(
    ("subtype", "channels"),
    [("FLOAT", 1), ("DOUBLE", 1), ("PCM_24", 2), ("PCM_32", 1), ("PCM_U8", 1), ("PCM_16", 6)],
)
async def test_run_reads_wavs_in_the_formats_people_have(
    tmp_path: Path, subtype: str, channels: int
) -> None:
    """Float, 24/32-bit, 8-bit, multichannel: each reaches GLM as the same tone."""
    pytest.importorskip("soundfile")
    wav = _soundfile_wav(tmp_path / "in.wav", subtype, channels)
    code, out, err, audio = await scripted_run(wav)
    assert code == 0, err
    assert "assistant: It is nine." in out
    sent = np.frombuffer(audio, "<i2").astype(float)[:16000]  # the tone, at the 16 kHz uplink
    assert len(sent) == 16000
    peak_hz = np.argmax(np.abs(np.fft.rfft(sent)))  # 1 Hz bins over 1 s
    assert abs(peak_hz - 440) <= 1
    assert np.sqrt(np.mean(sent**2)) == pytest.approx(8000 / np.sqrt(2), rel=0.03)


async def test_a_float_wav_without_soundfile_says_how_to_read_it(tmp_path: Path) -> None:
    """Without the [local] extra, integer WAVs still play and a float WAV names the fix."""
    pytest.importorskip("soundfile")
    hide = "import sys; sys.modules['soundfile'] = None"
    wav = _soundfile_wav(tmp_path / "in.wav", "FLOAT", 1)
    code, _, err, _ = await scripted_run(wav, pre=hide)
    assert_user_error(code, err, 2, "needs soundfile", "pip install 'glm-realtime[local]'")
    assert len(err.strip().splitlines()) <= 2

    code, out, err, _ = await scripted_run(_soundfile_wav(wav, "PCM_24", 2), pre=hide)
    assert code == 0, err
    assert "assistant: It is nine." in out


async def test_a_raw_pcm_input_takes_its_rate_from_the_name(tmp_path: Path) -> None:
    pcm = tmp_path / "speech_16000hz.pcm"
    pcm.write_bytes((np.sin(np.arange(16000) / 5) * 8000).astype("<i2").tobytes())
    code, out, err, audio = await scripted_run(pcm)
    assert code == 0, err
    assert "sending 1.0 s of audio" in err  # 32000 bytes at 16 kHz, not at a 24 kHz guess
    assert len(audio) >= 32000


@pytest.mark.parametrize("where", ["before", "after"])
async def test_v_logs_whether_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    wav = tone_wav(tmp_path / "in.wav")
    if where == "before":
        code, _, err, _ = await scripted_run(wav, before=("-v",))
    else:
        code, _, err, _ = await scripted_run(wav, "-v")
    assert code == 0, err
    assert "INFO glm_realtime" in err
