"""A loopback websocket sink for the uplink benchmark, run in a process of its own.

It counts the text messages each connection sends and, on :data:`END`, answers with a
``bench.counts`` event holding the counts since the last one, so a run ends when the sink
has every message, and the sink's CPU is not the benchmark's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

END: dict[str, str] = {"type": "bench.end_of_run"}
"""The client's last message of a run."""

_REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    """What one pipeline produced (and, with the socket, sent) for the whole signal."""

    messages: int = 0
    json_bytes: int = 0  # UTF-8 length of the JSON text messages (the sink's count if sent)
    frame_bytes: int = 0  # websocket frames, headers included (reported by the sink)

    def take_counts(self, counts: dict[str, Any]) -> None:
        """Check the sink's counts against what was sent, and keep its sizes."""
        if counts.get("type") != "bench.counts" or counts["messages"] != self.messages:
            raise RuntimeError(f"the sink got {counts}, the client sent {self}")
        self.json_bytes = counts["json"]
        self.frame_bytes = counts["frames"]


def _client_frame_bytes(payload: int) -> int:
    """Bytes of one masked client text frame: header, extended length, mask, payload."""
    extended = 0 if payload < 126 else 2 if payload < 65536 else 8
    return 2 + extended + 4 + payload


async def _serve() -> None:
    end = json.dumps(END)

    async def handler(ws: ServerConnection) -> None:
        messages = json_bytes = frame_bytes = 0
        async for message in ws:
            if message == end:
                counts = {"messages": messages, "json": json_bytes, "frames": frame_bytes}
                await ws.send(json.dumps({"type": "bench.counts", **counts}))
                messages = json_bytes = frame_bytes = 0
                continue
            size = len(message.encode()) if isinstance(message, str) else len(message)
            messages += 1
            json_bytes += size
            frame_bytes += _client_frame_bytes(size)

    async with serve(
        handler, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        # Serve until the benchmark closes our stdin (or dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def start_sink() -> tuple[subprocess.Popen[str], int]:
    """Start the sink process; return it and its port. Close its stdin to stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._sink"],
        cwd=_REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the sink did not start (said {line!r})")
    return proc, int(line)


if __name__ == "__main__":
    asyncio.run(_serve())
