"""``serve``, and ``run --url`` against it, as real processes: flags that do what their help
says, and bad values refused in two lines without a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from glm_local.server import LocalRealtimeServer
from glm_realtime.app import DEFAULT_GRAPH
from realtime.connection import connect
from tests.cli_process import PROCESS_TIMEOUT, assert_user_error, bundled_graph_with, cli
from tests.fake_glm import Close, FakeGLMServer

pytestmark = pytest.mark.speech

SPEECH = Path(__file__).parent.parent / "examples" / "go_forward.wav"
NO_KEY = {"GLM_API_KEY": None, "GLM_REALTIME_URL": None}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--port", "99999"), "'--port': 99999 is not in the range 0<=x<=65535"),
        (("--port", "-1"), "'--port': -1 is not in the range 0<=x<=65535"),
        (("--pace", "-1"), "'--pace': -1.0 is not in the range x>=0"),
        (("--heartbeat", "0"), "'--heartbeat': 0.0 is not in the range x>0"),
    ],
)
async def test_serve_refuses_bad_numbers_in_two_lines(args: tuple[str, ...], fragment: str) -> None:
    code, out, err = await cli("serve", *args)
    assert_user_error(code, err, 2, fragment, "glm-realtime serve --help")
    assert len(err.strip().splitlines()) == 2
    assert "listening" not in out


async def test_serve_on_a_port_in_use_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await cli("serve", "--port", str(port))
    assert_user_error(code, err, 1, f"port {port} on 127.0.0.1 is already in use", "--port")
    assert len(err.strip().splitlines()) == 1


async def test_serve_on_a_host_that_does_not_resolve_says_so() -> None:
    code, _, err = await cli("serve", "--host", "nosuch.invalid", "--port", "0")
    assert_user_error(code, err, 1, "--host nosuch.invalid", "does not resolve", "127.0.0.1")
    assert len(err.strip().splitlines()) == 1


@contextlib.asynccontextmanager
async def serve_process(*args: str) -> AsyncIterator[tuple[str, list[str]]]:
    """``glm-realtime ARGS`` (a serve), its URL once it listens, and (after) its stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from glm_realtime.cli import main; main()",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr: list[str] = []
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), PROCESS_TIMEOUT)
        assert "listening at" in line.decode(), line
        yield line.decode().split()[-1], stderr
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), PROCESS_TIMEOUT)
        stderr.extend(err.decode().splitlines())


@pytest.mark.parametrize("where", ["before", "after"])
async def test_serve_v_logs_sessions_before_or_after_the_command(where: str) -> None:
    args = ("-v", "serve", "--port", "0") if where == "before" else ("serve", "--port", "0", "-v")
    async with serve_process(*args) as (url, stderr):
        async with connect(url, api_key="anything") as conn:
            await conn.recv()  # the server greets: the session exists
    assert any("session" in line and "connected from" in line for line in stderr), stderr
    assert not any("Traceback" in line for line in stderr)


async def run_without_a_key(
    server: LocalRealtimeServer | FakeGLMServer, tmp: Path
) -> tuple[int, str, str]:
    return await cli(
        "run",
        "--input",
        str(SPEECH),
        "--output",
        str(tmp / "b.wav"),
        "--speed",
        "0",
        "--url",
        server.url,
        env=NO_KEY,
    )


async def test_run_honours_url_without_a_key_on_a_local_server(tmp_path: Path) -> None:
    """No key and a URL on this machine: that server, not a second embedded one."""
    async with LocalRealtimeServer(port=0, pace=0) as server:
        code, out, err = await run_without_a_key(server, tmp_path)
        served = server.sessions_served
    assert code == 0, err
    assert f"connecting to {server.url} without a key" in err
    assert "embedded backend" not in err
    assert served == 1
    assert "assistant: You said: go forward ten meters." in out


async def test_run_without_a_key_sends_no_authorization_header_to_a_local_url(
    tmp_path: Path,
) -> None:
    """No key: no credential at all, not a made-up one (the server checks none)."""
    async with FakeGLMServer([[Close(1003)]], api_key=None) as server:
        await run_without_a_key(server, tmp_path)
        fake = await server.connection(0)
    assert fake.authorization is None


async def test_run_without_a_key_on_a_server_with_a_token_says_to_pass_it(tmp_path: Path) -> None:
    async with LocalRealtimeServer(port=0, pace=0, token="secret") as server:
        code, _, err = await run_without_a_key(server, tmp_path)
    assert_user_error(code, err, 1, "401", "pass it as --api-key")
    assert err.strip().splitlines()[-1].startswith("Error: the GLM session failed")


async def test_a_run_with_a_greeting_waits_for_the_reply_to_the_user_not_the_greeting(
    tmp_path: Path,
) -> None:
    """The greeting is a response too: the turn ends on the answer to what was said, so
    with the input played at once the reply is not cut when the greeting is over."""
    nodes = json.loads(DEFAULT_GRAPH.read_text())["_ten"]["predefined_graphs"][0]["nodes"]
    glm = {**next(n for n in nodes if n["name"] == "glm")["property"], "greeting": "Hello!"}
    graph = bundled_graph_with(tmp_path, "greets.json", "glm", {"property": glm})
    transcript = tmp_path / "t.jsonl"
    async with LocalRealtimeServer(port=0, pace=0) as server:
        code, out, err = await cli(
            *("run", "--input", str(SPEECH), "--output", str(tmp_path / "b.wav")),
            *("--speed", "0", "--url", server.url, "--graph", str(graph)),
            *("--transcript", str(transcript)),
            env=NO_KEY,
        )
    assert code == 0, err
    assert "assistant: You said: go forward ten meters." in out
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    responses = [r["metrics"] for r in records if r.get("metrics", {}).get("kind") == "response"]
    assert responses[-1]["status"] == "completed", responses
