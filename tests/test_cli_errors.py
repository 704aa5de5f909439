"""User errors of ``run`` and ``replay`` as a newcomer meets them: a real process, the exit
code, one or two lines that name the problem and what is accepted, never a traceback.

Everything here is refused before a backend starts: no key is needed, nothing listens.
"""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from tests.cli_process import assert_user_error, bundled_graph_with, cli
from tests.glm_graph import KEY, tone_wav

ROOT_PROPERTY = Path(__file__).parent.parent / "property.json"
NO_KEY = {"GLM_API_KEY": None, "GLM_REALTIME_URL": None}


def short(err: str) -> bool:
    return len(err.strip().splitlines()) <= 2


async def run(tmp: Path, *args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    code, _, err = await cli(
        "run", "--output", str(tmp / "o.wav"), "--speed", "0", *args, env=env or NO_KEY
    )
    return code, err


@pytest.mark.parametrize("rate", [5, 999999])
async def test_replay_refuses_a_rate_in_the_name_out_of_range_in_one_error(
    tmp_path: Path, rate: int
) -> None:
    dump = tmp_path / f"user_a_{rate}hz.pcm"
    dump.write_bytes(b"\1\0" * 3200)
    code, _, err = await cli("replay", str(dump), "--output", str(tmp_path / "r.wav"), env=NO_KEY)
    assert_user_error(code, err, 2, f"{rate} Hz", "accepted: 8000..192000 Hz", "--sample-rate")
    assert short(err)


async def test_run_refuses_raw_pcm_without_a_known_rate(tmp_path: Path) -> None:
    dump = tmp_path / "dump.pcm"
    dump.write_bytes(b"\1\0" * 3200)
    code, err = await run(tmp_path, "--input", str(dump))
    assert_user_error(code, err, 2, "no header to state its rate", "--input-rate", "_16000hz")
    assert short(err)


async def test_run_range_checks_input_rate(tmp_path: Path) -> None:
    dump = tmp_path / "dump.pcm"
    dump.write_bytes(b"\1\0" * 3200)
    code, err = await run(tmp_path, "--input", str(dump), "--input-rate", "5")
    assert_user_error(code, err, 2, "--input-rate", "8000<=x<=192000")


async def test_run_refuses_a_wav_with_no_audio_at_once(tmp_path: Path) -> None:
    """A header and no frames: refused before any backend starts, not a 60 s wait."""
    path = tmp_path / "zeroframes.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
    code, err = await run(tmp_path, "--input", str(path))
    assert_user_error(code, err, 2, "zeroframes.wav", "holds no audio")
    assert "backend" not in err
    assert short(err)


async def test_run_names_why_an_empty_or_non_audio_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    code, err = await run(tmp_path, "--input", str(empty))
    assert_user_error(code, err, 2, "empty.wav", "the file is empty (0 bytes)")
    assert short(err)

    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    code, err = await run(tmp_path, "--input", str(text))
    assert_user_error(code, err, 2, "notes.wav", "accepted: WAV (8/16/24/32-bit integer")
    assert short(err)


async def test_a_misspelt_addon_of_the_glm_node_is_named(tmp_path: Path) -> None:
    graph = bundled_graph_with(tmp_path, "g.json", "glm", {"addon": "glm_v2v_pyton"})
    code, err = await run(
        tmp_path, "--input", str(tone_wav(tmp_path / "in.wav")), "--graph", str(graph)
    )
    assert_user_error(
        code, err, 1, "unknown addon 'glm_v2v_pyton'", "did you mean 'glm_v2v_python'?"
    )
    assert "backend" not in err


async def test_an_unknown_key_of_a_node_is_an_error(tmp_path: Path) -> None:
    graph = bundled_graph_with(tmp_path, "g.json", "glm", {"proprety": {"temperature": 0.1}})
    code, err = await run(
        tmp_path, "--input", str(tone_wav(tmp_path / "in.wav")), "--graph", str(graph)
    )
    assert_user_error(
        code, err, 1, "node 'glm'", "unknown key 'proprety'", "did you mean 'property'?"
    )


async def test_the_addon_property_file_given_as_graph_says_how_to_make_one(tmp_path: Path) -> None:
    code, err = await run(
        tmp_path, "--input", str(tone_wav(tmp_path / "in.wav")), "--graph", str(ROOT_PROPERTY)
    )
    assert_user_error(
        code,
        err,
        1,
        "property file of addon 'glm_v2v_python'",
        "not an app graph",
        "'_ten.predefined_graphs'",
        "copy ",
        "voice_assistant.json",
    )
    assert short(err)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model": "gpt"}, "session.model: unknown model; expected one of glm-realtime-flash"),
        ({"temperature": 5}, "temperature: Input should be less than or equal to 1 (got 5.0)"),
    ],
)
async def test_a_bad_glm_property_is_one_line_without_doubled_wording(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    graph = bundled_graph_with(
        tmp_path, "g.json", "glm", {"property": {"api_key": "${env:GLM_API_KEY|}", **change}}
    )
    code, err = await run(
        tmp_path, "--input", str(tone_wav(tmp_path / "in.wav")), "--graph", str(graph)
    )
    assert_user_error(code, err, 1, "invalid property of node 'glm'", expected)
    assert err.count("(got") == 1
    assert err.count("node 'glm'") == 1
    assert "value:" not in err and "ConfigError" not in err
    assert "backend" not in err  # checked before anything starts
    assert short(err)


async def test_client_vad_with_nothing_to_end_the_turn_is_refused_before_it_starts(
    tmp_path: Path,
) -> None:
    """server_vad false waits for a flush cmd; the bundled graph sends none, so the run
    would only time out: it is refused at once, saying what to change."""
    graph = bundled_graph_with(tmp_path, "g.json", "glm", {"property": {"server_vad": False}})
    code, err = await run(
        tmp_path, "--input", str(tone_wav(tmp_path / "in.wav")), "--graph", str(graph)
    )
    assert_user_error(code, err, 1, "node 'glm' has server_vad false", "set server_vad true")
    assert "backend" not in err  # checked before anything starts
    assert short(err)


@pytest.mark.parametrize("option", ["--output", "--transcript"])
async def test_an_output_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, option: str
) -> None:
    """It was found only by the node writing it: a traceback a frame, then exit 0."""
    (tmp_path / "a_file").write_text("not a folder")
    unwritable = tmp_path / "a_file" / "out"
    paths = {"--output": tmp_path / "o.wav", "--transcript": tmp_path / "t.jsonl"}
    paths[option] = unwritable
    code, _, err = await cli(
        *("run", "--input", str(tone_wav(tmp_path / "in.wav")), "--speed", "0"),
        *("--output", str(paths["--output"]), "--transcript", str(paths["--transcript"])),
        env=NO_KEY,
    )
    assert_user_error(
        code, err, 2, f"'{option}': cannot write {unwritable}", f"{tmp_path / 'a_file'} is a file"
    )
    assert "backend" not in err  # checked before anything starts
    assert short(err)


async def test_a_url_elsewhere_without_a_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    code, err = await run(
        tmp_path,
        "--input",
        str(tone_wav(tmp_path / "in.wav")),
        "--url",
        "wss://glm.example.com/api/paas/v4/realtime",
    )
    assert_user_error(code, err, 2, "needs a key", "GLM_API_KEY", "127.0.0.1")
    assert short(err)


async def test_a_run_without_network_fails_at_once_naming_name_resolution_in_its_last_line(
    tmp_path: Path,
) -> None:
    """The last line is the root cause, not 'the GLM session failed: unknown', and it
    comes at once: a first connection to a name that does not resolve is not retried
    (the bundled graph allows 5 reconnect attempts)."""
    code, err = await run(
        tmp_path,
        "--input",
        str(tone_wav(tmp_path / "in.wav")),
        "--url",
        "wss://glm.invalid/api/paas/v4/realtime",  # RFC 6761: never resolves
        env={"GLM_API_KEY": KEY},
    )
    assert_user_error(code, err, 1)
    assert "reconnecting" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: the GLM session failed:"), err
    assert "cannot resolve glm.invalid" in last and "no network" in last
    assert "not retried" in last
    assert KEY.split(".")[1] not in err


async def test_vv_shows_the_traceback_of_a_user_error(tmp_path: Path) -> None:
    code, _, err = await cli(
        "-vv",
        "run",
        "--input",
        str(tone_wav(tmp_path / "in.wav")),
        "--output",
        str(tmp_path / "o.wav"),
        "--graph",
        str(ROOT_PROPERTY),
        env=NO_KEY,
    )
    assert code == 1
    assert "Traceback" in err and "GraphError" in err
    assert err.index("Traceback") < err.index("Error: ") < err.index("not an app graph")
