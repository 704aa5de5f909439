"""Run the ``glm-realtime`` command as a user does: a real process, its exit code and output."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from glm_realtime.app import DEFAULT_GRAPH

PROCESS_TIMEOUT = 120.0
# The console script's code; ``pre`` runs first (to hide an installed package, say).
_ENTRY = "from glm_realtime.cli import main; main()"


async def cli(
    *args: str, env: dict[str, str | None] | None = None, pre: str = ""
) -> tuple[int, str, str]:
    """Run ``glm-realtime ARGS`` to completion; ``env`` values of None unset a variable."""
    environ = {**os.environ}
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        f"{pre}; {_ENTRY}" if pre else _ENTRY,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    out, err = await asyncio.wait_for(proc.communicate(), PROCESS_TIMEOUT)
    return proc.returncode or 0, out.decode(), err.decode()


def assert_user_error(code: int, err: str, expected_code: int, *fragments: str) -> None:
    """The command failed with ``expected_code``, a short message holding every fragment,
    and no traceback."""
    assert code == expected_code, err
    assert "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def bundled_graph_with(tmp: Path, name: str, node: str, change: dict[str, object]) -> Path:
    """The bundled voice-assistant graph with keys of node ``node`` replaced, as a file."""
    app = json.loads(DEFAULT_GRAPH.read_text())
    for spec in app["_ten"]["predefined_graphs"][0]["nodes"]:
        if spec["name"] == node:
            spec.update(change)
    path = tmp / name
    path.write_text(json.dumps(app))
    return path
