"""Uplink CPU cost, websocket included: 100 ms resampled WAV packets vs a pydub WAV per frame.

Both pipelines take the same 16 kHz mono s16 signal in 10 ms frames, as an RTC source
delivers it, and turn it into ``input_audio_buffer.append`` events:

* ours: ``UplinkPacker("wav", wav_rate=24000, packet_ms=100)`` (soxr 16 -> 24 kHz, one WAV
  per 100 ms), then ``Connection.send_audio`` from ``realtime.connection`` (base64, the
  append event's JSON, the frame size check, ``websocket.send``): 10 messages per second;
* seed: the original extension's ``convert_to_wav_in_memory`` (a pydub ``AudioSegment``
  exported to WAV per frame, header claiming 24 kHz whatever the source rate), base64,
  ``json.dumps`` with a uuid4 ``event_id``, then ``websocket.send``: 100 messages per second.

Two measurements, both reported:

* whole uplink: every message really goes over a websocket (ours through the library's
  ``Connection``, the seed through a bare ``websockets`` client, both in this process with
  compression off) to a loopback sink server that runs in a subprocess, so the sink's CPU is
  not counted. A run ends when the sink confirms it received every message;
* compute only: the same pipelines stopped at the JSON, no socket (ours:
  ``audio_append_json``, what ``send_audio`` sends).

CPU time is ``time.process_time`` of this process. Runs are interleaved (the order flips
every repeat) and the median is reported, with the range of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.version import version as websockets_version

from realtime.audio import UplinkPacker
from realtime.client_events import audio_append_json
from realtime.connection import Connection
from realtime.connection import connect as connect_glm
from realtime.events import UnknownEvent

with warnings.catch_warnings():
    # pydub warns at import when ffmpeg is absent; WAV export does not need it.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

SOURCE_RATE = 16000
FRAME_MS = 10
# The client's last message of a run; the sink answers with its counts in a "bench.counts".
_END: dict[str, str] = {"type": "bench.end_of_run"}
_REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    """What one pipeline produced (and, with the socket, sent) for the whole signal."""

    messages: int = 0
    json_bytes: int = 0  # UTF-8 length of the JSON text messages (the sink's count if sent)
    frame_bytes: int = 0  # websocket frames, headers included (reported by the sink)


def speech_like(seconds: float, rate: int = SOURCE_RATE, seed: int = 7) -> bytes:
    """A deterministic speech-like signal: voiced syllables with gliding pitch, pauses, noise.

    Args:
        seconds: Length of the signal.
        rate: Sample rate in Hz.
        seed: Seed for the syllable layout and the noise.

    Returns:
        Mono s16le PCM.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n)
    pos = 0
    while pos < n:
        syl = int(rng.uniform(0.12, 0.32) * rate)
        end = min(pos + syl, n)
        t = np.arange(end - pos) / rate
        f0 = rng.uniform(100, 220) * (1 + 0.15 * t / max(t[-1], 1e-9) * rng.choice([-1, 1]))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        # A few harmonics with a falling spectrum stand in for formants.
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        env = np.sin(np.pi * np.arange(end - pos) / (end - pos)) ** 2
        out[pos:end] = 9000 * env * voiced / 3
        pos = end + int(rng.uniform(0.04, 0.4) * rate)  # the gap between syllables
    out += 60 * rng.standard_normal(n)  # room noise, so silence is not digital zero
    return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


def frames_of(pcm: bytes, rate: int = SOURCE_RATE, ms: int = FRAME_MS) -> list[bytes]:
    """Cut PCM into ``ms`` frames (the last one may be short)."""
    size = rate * ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


# --- the two pipelines ------------------------------------------------------------------------


def _seed_convert_to_wav_in_memory(buff: bytes) -> bytes:
    # As in the original extension: numpy round trip, pydub, a header claiming 24 kHz.
    pcm_data = np.frombuffer(buff, dtype=np.int16)
    audio_segment = AudioSegment(pcm_data.tobytes(), frame_rate=24000, sample_width=2, channels=1)
    memory_stream = io.BytesIO()
    audio_segment.export(memory_stream, format="wav")
    return memory_stream.getvalue()


def _seed_text(frame: bytes) -> str:
    wav = _seed_convert_to_wav_in_memory(frame)
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "type": "input_audio_buffer.append",
            "client_timestamp": int(time.time() * 1000),
            "audio": base64.b64encode(wav).decode("utf-8"),
        }
    )


def run_ours(frames: Sequence[bytes], wav_rate: int = 24000) -> Result:
    """Compute only: UplinkPacker (16 -> 24 kHz, 100 ms WAV) + the append event's JSON."""
    result = Result()
    packer = UplinkPacker("wav", wav_rate=wav_rate, packet_ms=100)
    for frame in frames:
        for packet in packer.push(frame, SOURCE_RATE):
            result.json_bytes += len(audio_append_json(packet))
            result.messages += 1
    for packet in packer.flush():
        result.json_bytes += len(audio_append_json(packet))
        result.messages += 1
    return result


def run_ours_same_rate(frames: Sequence[bytes]) -> Result:
    """As ``ours`` but with 16 kHz WAV packets: the framing cost without resampling."""
    return run_ours(frames, wav_rate=SOURCE_RATE)


def run_packing_only(frames: Sequence[bytes]) -> Result:
    """UplinkPacker alone, to show how the cost of ``ours`` splits."""
    result = Result()
    packer = UplinkPacker("wav", wav_rate=24000, packet_ms=100)
    for frame in frames:
        result.messages += len(packer.push(frame, SOURCE_RATE))
    result.messages += len(packer.flush())
    return result


def run_seed(frames: Sequence[bytes]) -> Result:
    """Compute only: the original uplink, one pydub WAV per 10 ms frame + base64 + JSON."""
    result = Result()
    for frame in frames:
        text = _seed_text(frame)
        result.messages += 1
        result.json_bytes += len(text)  # json.dumps escapes to ASCII: chars are bytes
    return result


async def send_ours(conn: Connection, frames: Sequence[bytes], wav_rate: int = 24000) -> Result:
    """Whole uplink: ``UplinkPacker`` then ``Connection.send_audio``, as a session does it."""
    result = Result()
    packer = UplinkPacker("wav", wav_rate=wav_rate, packet_ms=100)
    for frame in frames:
        for packet in packer.push(frame, SOURCE_RATE):
            await conn.send_audio(packet)
            result.messages += 1
    for packet in packer.flush():
        await conn.send_audio(packet)
        result.messages += 1
    return result


async def send_ours_same_rate(conn: Connection, frames: Sequence[bytes]) -> Result:
    """As ``send_ours`` but with 16 kHz WAV packets (no resampling)."""
    return await send_ours(conn, frames, wav_rate=SOURCE_RATE)


async def send_seed(ws: ClientConnection, frames: Sequence[bytes]) -> Result:
    """Whole uplink: ``run_seed``, one websocket message per 10 ms frame."""
    result = Result()
    for frame in frames:
        text = _seed_text(frame)
        await ws.send(text)
        result.messages += 1
        result.json_bytes += len(text)
    return result


# --- the sink ---------------------------------------------------------------------------------


def _client_frame_bytes(payload: int) -> int:
    """Bytes of one masked client text frame: header, extended length, mask, payload."""
    extended = 0 if payload < 126 else 2 if payload < 65536 else 8
    return 2 + extended + 4 + payload


async def _sink() -> None:
    """Count what arrives; on ``_END`` answer with the counts since the last ``_END``."""
    end = json.dumps(_END)

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


def _start_sink() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.uplink", "--sink"],
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


async def _end_run(channel: Connection | ClientConnection, result: Result) -> None:
    """Wait until the sink has every message of the run, check that it has, take its sizes."""
    if isinstance(channel, Connection):
        await channel.send_raw(_END)
        event = await channel.recv()
        if not isinstance(event, UnknownEvent):  # the sink's "bench.counts"
            raise RuntimeError(f"the sink answered {event!r}")
        counts = dict(event.raw)
    else:
        await channel.send(json.dumps(_END))
        counts = json.loads(await channel.recv())
    if counts["messages"] != result.messages:
        raise RuntimeError(f"the sink got {counts}, the client sent {result}")
    if result.json_bytes and counts["json"] != result.json_bytes:
        raise RuntimeError(f"the sink got {counts}, the client sent {result}")
    result.json_bytes = counts["json"]
    result.frame_bytes = counts["frames"]


# --- measurement ------------------------------------------------------------------------------

Sync = Callable[[Sequence[bytes]], Result]
Sender = Callable[[Any, Sequence[bytes]], Awaitable[Result]]


async def _measure(
    frames: Sequence[bytes],
    repeats: int,
    compute: dict[str, Sync],
    socket: dict[str, Sender],
    port: int,
) -> tuple[dict[str, list[float]], dict[str, Result]]:
    """Run every pipeline ``repeats`` times, interleaved; return CPU times and results."""
    url = f"ws://127.0.0.1:{port}"
    options: dict[str, Any] = {"compression": None, "max_size": None, "ping_interval": None}
    # One connection per socket pipeline, opened before any measurement: the library's
    # Connection for ours (the sink ignores the key), a bare websockets client for the seed.
    conns: dict[str, Connection | ClientConnection] = {
        name: await (
            connect_glm(url, api_key="benchmark")
            if name.startswith("ours")
            else connect(url, **options)
        )
        for name in socket
    }
    times: dict[str, list[float]] = {name: [] for name in [*socket, *compute]}
    results: dict[str, Result] = {}

    async def once(name: str, part: Sequence[bytes]) -> tuple[float, Result]:
        gc.collect()
        start = time.process_time()
        if name in socket:
            result = await socket[name](conns[name], part)
            await _end_run(conns[name], result)
        else:
            result = compute[name](part)
        return time.process_time() - start, result

    try:
        for name in times:  # warm-up: imports, soxr filter design, caches, the connection
            await once(name, frames[:100])
        names = list(times)
        for i in range(repeats):
            for name in names if i % 2 == 0 else names[::-1]:  # drift hits all alike
                cpu, results[name] = await once(name, frames)
                times[name].append(cpu)
    finally:
        for ws in conns.values():
            await ws.close()
    return times, results


def main(argv: list[str]) -> int:
    """Run the uplink benchmark and print the figures.

    Args:
        argv: Command-line arguments after the benchmark name.

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks uplink", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length (default 60)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved runs (default 9)")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        asyncio.run(_sink())
        return 0

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())  # other work on the machine
    frames = frames_of(speech_like(args.seconds))
    audio_s = sum(len(f) for f in frames) / 2 / SOURCE_RATE
    socket: dict[str, Sender] = {
        "ours + socket": send_ours,
        "seed + socket": send_seed,
        "ours, wav 16 kHz + socket": send_ours_same_rate,
    }
    compute: dict[str, Sync] = {
        "ours": run_ours,
        "seed": run_seed,
        "ours, packing only": run_packing_only,
        "ours, wav 16 kHz": run_ours_same_rate,
    }
    sink, port = _start_sink()
    try:
        times, results = asyncio.run(_measure(frames, args.repeats, compute, socket, port))
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(timeout=10)

    def ms_per_s(name: str) -> float:
        return statistics.median(times[name]) * 1000 / audio_s

    def ratio(seed: str, ours: str) -> str:
        per_run = [s / o for s, o in zip(times[seed], times[ours], strict=True)]
        median = ms_per_s(seed) / ms_per_s(ours)
        met = "met" if median >= 6 else "NOT met"
        return (
            f"seed / ours CPU: {median:.1f}x (per-repeat {min(per_run):.1f}x to "
            f"{max(per_run):.1f}x); 6x target {met}"
        )

    print(
        f"uplink: {audio_s:g} s of speech-like {SOURCE_RATE // 1000} kHz mono audio in "
        f"{FRAME_MS} ms frames; CPU time of this process, median of {args.repeats} "
        "interleaved runs"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average before the run {load}")
    print(
        f"websocket: websockets {websockets_version} client in this process, compression "
        "off; sink server in a subprocess on 127.0.0.1 (its CPU not counted)"
    )
    header = f"{'pipeline':<16} {'CPU ms / s audio':>17} {'msgs / s':>9} {'JSON B / s':>11}"
    print("\nwhole uplink, every message sent over the websocket")
    print(f"{header} {'ws frame B / s':>15}")
    for name in ("ours + socket", "seed + socket"):
        r = results[name]
        print(
            f"{name.split()[0]:<16} {ms_per_s(name):>17.3f} {r.messages / audio_s:>9.1f} "
            f"{r.json_bytes / audio_s:>11.0f} {r.frame_bytes / audio_s:>15.0f}"
        )
    print(ratio("seed + socket", "ours + socket"))

    print("\ncompute only, up to the JSON text (no socket)")
    print(header)
    for name in ("ours", "seed"):
        r = results[name]
        print(
            f"{name:<16} {ms_per_s(name):>17.3f} {r.messages / audio_s:>9.1f} "
            f"{r.json_bytes / audio_s:>11.0f}"
        )
    print(ratio("seed", "ours"))

    print("\nbreakdown (not part of the comparison)")
    for name in ("ours", "seed"):
        sent = ms_per_s(f"{name} + socket") - ms_per_s(name)
        per_msg = sent * 1000 / (results[name].messages / audio_s)
        print(
            f"  {name + ', sending only':<34} {sent:>7.3f} ms / s  "
            f"(about {per_msg:.0f} us per message, by difference)"
        )
    print(f"  {'ours, UplinkPacker only':<34} {ms_per_s('ours, packing only'):>7.3f} ms / s")
    same = ms_per_s("ours, wav 16 kHz")
    print(
        f"  {'ours, wav 16 kHz (no resampling)':<34} {same:>7.3f} ms / s  "
        f"(compute only; seed / that = {ms_per_s('seed') / same:.1f}x)"
    )
    same = ms_per_s("ours, wav 16 kHz + socket")
    print(
        f"  {'same, sent over the websocket':<34} {same:>7.3f} ms / s  "
        f"(seed + socket / that = {ms_per_s('seed + socket') / same:.1f}x)"
    )
    print(
        "note: ours sends 24 kHz audio (1.5x the samples of the 16 kHz source); the seed "
        "sends the 16 kHz samples under a header that claims 24 kHz"
    )
    return 0


if __name__ == "__main__":  # the sink subprocess: python -m benchmarks.uplink --sink
    sys.exit(main(sys.argv[1:]))
