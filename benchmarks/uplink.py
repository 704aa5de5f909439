"""Uplink CPU cost, websocket included: 100 ms resampled WAV packets vs a pydub WAV per frame.

Both pipelines take the same 16 kHz mono s16 signal in 10 ms frames, as an RTC source
delivers it, and turn it into ``input_audio_buffer.append`` events:

* ours: ``UplinkPacker("wav", wav_rate=24000, packet_ms=100)`` (soxr 16 -> 24 kHz, one WAV
  per 100 ms), then ``Connection.send_audio`` from ``realtime.connection`` (base64, the
  append event's JSON, the frame size check, ``websocket.send``): 10 messages per second;
* seed: the original extension's uplink as recorded in ``benchmarks/_seed_uplink.py``: a
  pydub WAV per frame (its header claiming 24 kHz whatever the source rate), base64, a
  dataclass event serialised by ``asdict`` + ``json.dumps``, aiohttp's ``send_str``: 100
  messages per second.

Two measurements, both reported:

* whole uplink: every message really goes over a websocket, each pipeline through its own
  client (ours the library's ``Connection`` on ``websockets``, the seed aiohttp as it did),
  both in this process with compression off, to a loopback sink server that runs in a
  subprocess (``benchmarks/_sink.py``), so the sink's CPU is not counted. A run ends when the
  sink confirms it received every message;
* compute only: the same pipelines stopped at the JSON, no socket (ours:
  ``audio_append_json``, what ``send_audio`` sends).

CPU time is ``time.process_time`` of this process. Runs are interleaved (the order flips
every repeat) and the median is reported, with the range of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import aiohttp
import numpy as np
from websockets.version import version as websockets_version

from benchmarks._seed_uplink import SeedSender, run_seed
from benchmarks._sink import END, Result, start_sink
from realtime.audio import UplinkPacker
from realtime.client_events import audio_append_json
from realtime.connection import Connection, connect
from realtime.events import UnknownEvent

SOURCE_RATE = 16000
FRAME_MS = 10


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


# --- ours -------------------------------------------------------------------------------------


def packets(frames: Sequence[bytes], wav_rate: int = 24000) -> Iterator[bytes]:
    """Ours up to the packets: 100 ms WAVs at ``wav_rate``, each as soon as it is complete."""
    packer = UplinkPacker("wav", wav_rate=wav_rate, packet_ms=100)
    for frame in frames:
        yield from packer.push(frame, SOURCE_RATE)
    yield from packer.flush()


def run_ours(frames: Sequence[bytes], wav_rate: int = 24000) -> Result:
    """Compute only: UplinkPacker (16 -> 24 kHz, 100 ms WAV) + the append event's JSON."""
    result = Result()
    for packet in packets(frames, wav_rate):
        result.json_bytes += len(audio_append_json(packet))
        result.messages += 1
    return result


def run_ours_same_rate(frames: Sequence[bytes]) -> Result:
    """As ``ours`` but with 16 kHz WAV packets: the framing cost without resampling."""
    return run_ours(frames, wav_rate=SOURCE_RATE)


def run_packing_only(frames: Sequence[bytes]) -> Result:
    """UplinkPacker alone, to show how the cost of ``ours`` splits."""
    return Result(messages=sum(1 for _ in packets(frames)))


class OursSender:
    """Ours over the wire: ``UplinkPacker`` then ``Connection.send_audio``, as a session."""

    def __init__(self, wav_rate: int = 24000) -> None:
        self.wav_rate = wav_rate
        self._conn: Connection | None = None

    async def open(self, url: str) -> None:
        self._conn = await connect(url, api_key="benchmark")  # the sink ignores the key

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def send(self, frames: Sequence[bytes]) -> Result:
        """Whole uplink: every packet sent as soon as the packer completes it."""
        assert self._conn is not None
        result = Result()
        for packet in packets(frames, self.wav_rate):
            await self._conn.send_audio(packet)
            result.messages += 1
        return result

    async def end_run(self, result: Result) -> None:
        """Wait until the sink has every message of the run; take its counts."""
        assert self._conn is not None
        await self._conn.send_raw(END)
        event = await self._conn.recv()
        if not isinstance(event, UnknownEvent):  # "bench.counts" is no GLM event
            raise RuntimeError(f"the sink answered {event!r}")
        result.take_counts(dict(event.raw))


# --- measurement ------------------------------------------------------------------------------


class Sender(Protocol):
    async def open(self, url: str) -> None: ...
    async def close(self) -> None: ...
    async def send(self, frames: Sequence[bytes]) -> Result: ...
    async def end_run(self, result: Result) -> None: ...


Sync = Callable[[Sequence[bytes]], Result]


async def _measure(
    frames: Sequence[bytes],
    repeats: int,
    compute: dict[str, Sync],
    socket: dict[str, Sender],
    port: int,
) -> tuple[dict[str, list[float]], dict[str, Result]]:
    """Run every pipeline ``repeats`` times, interleaved; return CPU times and results."""
    for sender in socket.values():  # connected before any measurement
        await sender.open(f"ws://127.0.0.1:{port}")
    times: dict[str, list[float]] = {name: [] for name in [*socket, *compute]}
    results: dict[str, Result] = {}

    async def once(name: str, part: Sequence[bytes]) -> tuple[float, Result]:
        gc.collect()
        start = time.process_time()
        if name in socket:
            result = await socket[name].send(part)
            await socket[name].end_run(result)
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
        for sender in socket.values():
            await sender.close()
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
    args = parser.parse_args(argv)

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())  # other work on the machine
    frames = frames_of(speech_like(args.seconds))
    audio_s = sum(len(f) for f in frames) / 2 / SOURCE_RATE
    socket: dict[str, Sender] = {
        "ours + socket": OursSender(),
        "seed + socket": SeedSender(),
        "ours, wav 16 kHz + socket": OursSender(wav_rate=SOURCE_RATE),
    }
    compute: dict[str, Sync] = {
        "ours": run_ours,
        "seed": run_seed,
        "ours, packing only": run_packing_only,
        "ours, wav 16 kHz": run_ours_same_rate,
    }
    sink, port = start_sink()
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
        f"websocket clients in this process: ours websockets {websockets_version}, the seed "
        f"aiohttp {aiohttp.__version__}; sink server in a subprocess on 127.0.0.1 (its CPU not "
        "counted)"
    )
    header = f"{'pipeline':<16} {'CPU ms / s audio':>17} {'msgs / s':>9} {'JSON B / s':>11}"
    tables = (
        ("whole uplink, every message sent over the websocket", " + socket"),
        ("compute only, up to the JSON text (no socket)", ""),
    )
    for title, suffix in tables:
        print(f"\n{title}")
        print(header + (f" {'ws frame B / s':>15}" if suffix else ""))
        for label in ("ours", "seed"):
            r = results[label + suffix]
            frame_col = f" {r.frame_bytes / audio_s:>15.0f}" if suffix else ""
            print(
                f"{label:<16} {ms_per_s(label + suffix):>17.3f} {r.messages / audio_s:>9.1f} "
                f"{r.json_bytes / audio_s:>11.0f}{frame_col}"
            )
        print(ratio("seed" + suffix, "ours" + suffix))

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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
