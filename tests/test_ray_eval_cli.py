"""``glm-realtime eval --ray`` as a user runs it: a real process starting its own local Ray.

Ctrl-C (SIGINT to the whole process group, as a terminal sends it) mid-run leaves the
partial report of the conversations that finished, each once, exit code 130, no traceback,
and no process of that Ray instance behind. The Ray instance lives in a temporary
directory of its own (``RAY_TMPDIR``), so its processes are told apart from any other Ray
on the machine by that variable in their environment.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from glm_realtime.cli import cli
from tests.net_utils import refused_port

pytestmark = [
    pytest.mark.speech,
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"),
        reason="reads /proc and waits on pidfds",
    ),
]
pytest.importorskip("pocketsphinx")
pytest.importorskip("matplotlib")
pytest.importorskip("ray")

SLICE = ("small-talk-hello", "one-tool-weather-paris", "question-days-in-week")
# One line per finished conversation when stderr is not a terminal.
FINISHED = re.compile(r"^(pass|FAIL) (\S+) trial (\d+) ")
EXITED_WITHIN_S = 30.0


@pytest.fixture
def ray_tmpdir() -> Iterator[Path]:
    """A short directory for the run's Ray (its socket paths must stay under 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="glmray", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def ray_processes(ray_tmpdir: Path) -> dict[int, str]:
    """pid -> command line of every live process of the Ray instance kept in ``ray_tmpdir``:
    those with its ``RAY_TMPDIR`` in their environment, and their descendants (a daemon may
    start a child with an environment of its own)."""
    marker = f"RAY_TMPDIR={ray_tmpdir}".encode()
    found: dict[int, str] = {}
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile, or not ours
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        if marker in environ:
            found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    grown = True
    while grown:
        children = {pid for pid, ppid in parents.items() if ppid in found and pid not in found}
        found.update((pid, f"child of {parents[pid]}") for pid in children)
        grown = bool(children)
    return found


def wait_exited(pids: list[int], timeout_s: float) -> list[int]:
    """Wait (on pidfds) for ``pids`` to exit, ``timeout_s`` at most; those still alive."""
    fds = {}
    for pid in pids:
        try:
            fds[pid] = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
    try:
        poller = select.poll()
        for fd in fds.values():
            poller.register(fd, select.POLLIN)
        alive = set(fds)
        by_fd = {fd: pid for pid, fd in fds.items()}
        while alive:
            ready = poller.poll(timeout_s * 1000)
            if not ready:
                break
            for fd, _ in ready:
                alive.discard(by_fd[fd])
                poller.unregister(fd)
        return sorted(alive)
    finally:
        for fd in fds.values():
            os.close(fd)


def test_ctrl_c_on_ray_writes_the_partial_report_and_leaves_no_ray_process(
    tmp_path: Path, ray_tmpdir: Path
) -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-c", "from glm_realtime.cli import main; main()", "eval",
            "--ray", "--actors", "2", "--concurrency", "2", "--trials", "3",
            "--only", ",".join(SLICE), "--out", str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_TMPDIR": str(ray_tmpdir)},
        start_new_session=True,  # its own group, so the Ctrl-C reaches it and Ray, not pytest
    )  # fmt: skip
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        for line in proc.stderr:  # the first finished conversation: the run is under way
            seen.append(line)
            if FINISHED.match(line):
                running = ray_processes(ray_tmpdir)
                os.killpg(proc.pid, signal.SIGINT)
                break
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: leave nothing running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            sys.stderr.write("".join(seen))  # shown with the failure
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr[-3000:]
    # Only the eval's own lines: no start-up notes of its Ray cutting through the bar.
    assert "Ray instance" not in stderr and "WARNING" not in stderr, stderr[-3000:]

    # The eval started this Ray itself (its session is named after the eval's pid) and its
    # daemons and runner actors were running when Ctrl-C came; none outlives the run.
    sessions = list((ray_tmpdir / "ray").glob(f"session_*_{proc.pid}"))
    assert len(sessions) == 1, list((ray_tmpdir / "ray").iterdir())
    commands = " | ".join(running.values())
    assert "raylet" in commands and "RunnerActor" in commands, commands
    assert wait_exited(list(running), EXITED_WITHIN_S) == [], running
    assert ray_processes(ray_tmpdir) == {}
    for log in (sessions[0] / "logs").glob("worker-*.err"):  # the runners stopped cleanly
        assert "Traceback" not in log.read_text(errors="replace"), log

    # The partial report: exactly the conversations that finished (streamed one line
    # each), each once, marked partial.
    report = json.loads((tmp_path / "report.json").read_text())
    streamed = [(m[2], int(m[3])) for m in map(FINISHED.match, stderr.splitlines()) if m]
    keys = [(r["scenario_id"], r["trial"]) for r in report["records"]]
    assert sorted(keys) == sorted(streamed) and len(set(keys)) == len(keys)
    assert 1 <= len(keys) < report["meta"]["planned"] == len(SLICE) * 3
    assert report["meta"]["complete"] is False and report["meta"]["runner"] == "ray"
    assert report["summary"]["records"] == len(keys)
    assert all(r["attempts"] == 1 and not r["errors"] for r in report["records"])
    assert "partial" in (tmp_path / "report.md").read_text()
    assert f"/{len(keys)}" in stdout.splitlines()[0]  # "passed P/N" of these records only


def test_ctrl_c_as_the_ray_eval_starts_writes_the_empty_partial_report(
    tmp_path: Path, ray_tmpdir: Path
) -> None:
    """Ctrl-C the moment the run is announced, before its Ray or any runner started: the
    same end as a later Ctrl-C (the partial report, here empty; exit code 130), not a bare
    "Aborted.". The signal goes to the eval alone: its Ray is not started yet (the whole
    group, Ray's processes in it, is the test above)."""
    proc = subprocess.Popen(
        [
            sys.executable, "-c", "from glm_realtime.cli import main; main()", "eval",
            "--ray", "--actors", "2", "--only", ",".join(SLICE), "--out", str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_TMPDIR": str(ray_tmpdir)},
        start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        announced = proc.stderr.readline()  # "eval: N scenarios x ...": Ctrl-C is its own now
        assert announced.startswith("eval: "), announced
        os.kill(proc.pid, signal.SIGINT)
        stdout, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: leave nothing running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    stderr = announced + rest
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "Aborted" not in stderr, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["records"] == [] and report["meta"]["runner"] == "ray"
    assert report["meta"]["complete"] is False and report["meta"]["planned"] == len(SLICE)
    assert "partial" in (tmp_path / "report.md").read_text()
    assert stdout.startswith("passed 0/0"), stdout
    assert wait_exited(list(ray_processes(ray_tmpdir)), EXITED_WITHIN_S) == []


def test_a_cluster_address_where_nothing_listens_is_refused_at_once_in_one_line(
    tmp_path: Path,
) -> None:
    """Ray alone would retry for minutes, printing its GCS client's warnings."""
    with refused_port() as port:
        address = f"127.0.0.1:{port}"
        done = subprocess.run(
            [sys.executable, "-c", "from glm_realtime.cli import main; main()", "eval",
             "--ray", address, "--only", SLICE[0], "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: --ray {address}: no Ray cluster answers there"), last
    assert "ray start --head" in last
    assert "Traceback" not in done.stderr and "GCS" not in done.stderr


@pytest.mark.parametrize("address", ["nonsense", "localhost:abc", "10.0.0.1:0"])
def test_a_malformed_cluster_address_is_refused_with_the_accepted_forms(address: str) -> None:
    result = CliRunner().invoke(cli, ["eval", "--ray", address])
    assert result.exit_code == 2, result.output
    assert "expected 'auto', HOST:PORT" in result.output and "ray://" in result.output
    assert "Traceback" not in result.output
