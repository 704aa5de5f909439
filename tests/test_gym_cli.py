"""``glm-realtime gym`` as a user runs it: a real process, real HTTP, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from glm_gym.client import GlmVoiceEnvClient, GymUnavailable

COMMAND = [sys.executable, "-c", "from glm_realtime.cli import main; main()", "gym"]


def _gym(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLM_API_KEY"}
    return subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLM_API_KEY"}
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_server_prints_its_url_serves_and_stops_cleanly_on_a_signal(
    sig: signal.Signals,
) -> None:
    proc = _gym("--port", "0", "--max-envs", "4")
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "listening at http://127.0.0.1:" in banner, banner
        url = banner.rsplit(" ", 1)[1].strip()
        clients = [GlmVoiceEnvClient(url) for _ in range(2)]
        for client in clients:
            client.reset(0)
        health = httpx.get(f"{url}/health").json()
        assert health == {"status": "ok", "live_envs": 2, "max_envs": 4}
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped: every env closed" in err
    assert "Traceback" not in err
    for client in clients:
        client.retries = 1
        with pytest.raises(GymUnavailable, match="cannot reach"):
            client.close()


def test_bad_arguments_get_a_clear_error_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    cases = [
        (["--backend", "glm"], "needs a key"),
        (["--max-envs", "0"], "--max-envs"),
        (["--ttl", "-1"], "--ttl"),
        (["--backend", "cloud"], "'local', 'glm'"),
        (["--scenarios", str(bad)], "bad.jsonl"),
        (["--port", "99999"], "'--port': 99999 is not in the range 0<=x<=65535"),
    ]
    for args, expected in cases:
        done = _run(*args)
        assert done.returncode in (1, 2), (args, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_the_gym_on_a_port_in_use_says_so_in_one_line() -> None:
    """As ``serve`` does: the port, that it is taken, and what to pass instead."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _run("--port", str(port))
    assert done.returncode == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use; pick another --port" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_gym_on_a_host_that_does_not_resolve_says_so_in_one_line() -> None:
    done = _run("--host", "nosuch.invalid", "--port", "0")
    assert done.returncode == 1, done.stderr
    for fragment in ("--host nosuch.invalid", "does not resolve", "127.0.0.1"):
        assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
