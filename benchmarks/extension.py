"""Latency the GLM node adds, through the real graph host and a loopback websocket.

* uplink: a 10 ms ``pcm_frame`` sent into the graph -> the ``input_audio_buffer.append``
  it completes arrives at the server (routing, packing, WAV, base64, JSON, send);
* downlink: a ``response.audio.delta`` leaves the server -> its ``pcm_frame`` reaches
  the next node (parse, stale check, decode, frame, routing).

Both include the loopback transfer and the server's own parse; the server runs in the
same process, so the CPU figure is an upper bound for the node alone.

Run: ``python -m benchmarks extension [--seconds 20]`` (16 kHz audio up, 24 kHz down)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve

import glm_realtime.extension  # noqa: F401 - registers glm_v2v_python
from glm_realtime.host.env import AsyncTenEnv
from glm_realtime.host.extension import Extension
from glm_realtime.host.graph import Graph, load_graph
from glm_realtime.host.messages import AudioFrame
from glm_realtime.host.registry import Addon, AddonRegistry
from glm_realtime.host.runner import GraphRunner

FRAME_MS = 10
DELTA_MS = 40


class _Server:
    """Greets like GLM, timestamps appends, then plays timestamped audio deltas."""

    def __init__(self, deltas: int) -> None:
        self.deltas = deltas
        self.append_arrivals: list[int] = []
        self.delta_sent: list[int] = []
        self.uplink_done = asyncio.Event()
        self.expected_appends = 0

    async def handle(self, ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "heartbeat"}))
        await ws.send(json.dumps({"type": "session.created", "session": {"id": "bench"}}))
        async for frame in ws:
            now = time.perf_counter_ns()
            event = json.loads(frame)
            if event["type"] == "input_audio_buffer.append":
                self.append_arrivals.append(now)
                if len(self.append_arrivals) >= self.expected_appends:
                    self.uplink_done.set()
                    await self._play(ws)

    async def _play(self, ws: ServerConnection) -> None:
        rid = "bench"
        await ws.send(json.dumps({"type": "response.created", "response": {"id": rid}}))
        pcm = (np.sin(np.arange(24 * DELTA_MS) / 10) * 8000).astype("<i2").tobytes()
        delta = base64.b64encode(pcm).decode()
        for _ in range(self.deltas):
            sent = time.perf_counter_ns()
            self.delta_sent.append(sent)
            await ws.send(
                json.dumps({"type": "response.audio.delta", "response_id": rid, "delta": delta})
            )
            await asyncio.sleep(DELTA_MS / 1000)  # GLM streams at about real time


class _Timer(Extension):
    """Stamps the arrival of every audio frame."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.arrivals: list[int] = []
        self.all_in = asyncio.Event()
        self.expected = 0

    async def on_audio_frame(self, env: AsyncTenEnv, audio_frame: AudioFrame) -> None:
        self.arrivals.append(time.perf_counter_ns())
        if len(self.arrivals) >= self.expected:
            self.all_in.set()


def _graph(url: str) -> Graph:
    base, path = url.split("/api/", 1)
    glm = {"base_uri": base, "path": "/api/" + path, "api_key": "bench.key"}
    nodes = [
        {"type": "extension", "name": "glm", "addon": "glm_v2v_python", "property": glm},
        {"type": "extension", "name": "timer", "addon": "timer"},
    ]
    connections = [
        {
            "extension": "timer",
            "audio_frame": [{"name": "pcm_frame", "dest": [{"extension": "glm"}]}],
        },
        {
            "extension": "glm",
            "audio_frame": [{"name": "pcm_frame", "dest": [{"extension": "timer"}]}],
        },
    ]
    registry = AddonRegistry()
    registry.add(Addon("timer", _Timer, {"type": "extension", "name": "timer"}, {}, origin="bench"))
    graph = {"name": "bench", "auto_start": True, "nodes": nodes, "connections": connections}
    return load_graph({"_ten": {"predefined_graphs": [graph]}}, registry=registry, environ={})


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


async def _run(seconds: float, rate: int) -> dict[str, Any]:
    frames = int(seconds * 1000 / FRAME_MS)
    frames_per_packet = 100 // FRAME_MS
    server = _Server(deltas=int(seconds * 1000 / DELTA_MS))
    server.expected_appends = frames // frames_per_packet
    pcm = (np.sin(np.arange(rate * FRAME_MS // 1000) / 7) * 6000).astype("<i2").tobytes()
    frame_sent: list[int] = []
    async with serve(server.handle, "127.0.0.1", 0, compression=None) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        async with GraphRunner(_graph(f"ws://127.0.0.1:{port}/api/paas/v4/realtime")) as runner:
            timer = runner.node("timer")
            assert isinstance(timer, _Timer)
            timer.expected = server.deltas
            await runner.node("glm").session.wait_ready()  # type: ignore[attr-defined]
            env = runner.env("timer")
            cpu0, start = time.process_time(), time.perf_counter()
            for i in range(frames):
                # Real-time pace, scheduled from the start so delays don't accumulate.
                await asyncio.sleep(max(0.0, start + i * FRAME_MS / 1000 - time.perf_counter()))
                frame_sent.append(time.perf_counter_ns())
                await env.send_audio_frame(AudioFrame.from_buffer("pcm_frame", pcm, rate))
            await asyncio.wait_for(server.uplink_done.wait(), 10)
            await asyncio.wait_for(timer.all_in.wait(), seconds + 10)
            cpu = time.process_time() - cpu0
    completing = [
        frame_sent[(k + 1) * frames_per_packet - 1] for k in range(len(server.append_arrivals))
    ]
    up_ms = [(a - s) / 1e6 for a, s in zip(server.append_arrivals, completing, strict=True)]
    down_ms = [(a - s) / 1e6 for a, s in zip(timer.arrivals, server.delta_sent, strict=True)]
    return {"up_ms": up_ms, "down_ms": down_ms, "cpu_s": cpu, "audio_s": 2 * seconds}


def main(argv: list[str] | None = None) -> None:
    """Print p50/p99 of both directions and CPU per second of audio."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks extension", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="audio each way")
    args = parser.parse_args(argv)
    # 16 kHz in, 16 kHz WAV out: no resampler delay, so the frame that completes each
    # packet is known exactly.
    result = asyncio.run(_run(args.seconds, 16000))
    print(
        f"{args.seconds:g} s of 16 kHz audio up (10 ms frames), "
        f"{args.seconds:g} s down ({DELTA_MS} ms deltas)"
    )
    labels = {
        "up_ms": "uplink   frame in -> append at server",
        "down_ms": "downlink delta sent -> pcm_frame out",
    }
    for key, label in labels.items():
        values = result[key]
        print(
            f"{label}: p50 {_pct(values, 50):.3f} ms  p99 {_pct(values, 99):.3f} ms"
            f"  max {max(values):.3f} ms  (n={len(values)})"
        )
    per_s = result["cpu_s"] * 1000 / result["audio_s"]
    print(f"CPU: {per_s:.2f} ms per s of audio (node + host + the in-process test server)")
    print("target: p99 under 2 ms each way")
