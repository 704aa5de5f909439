"""Embedded backend under load: time to first audio, CPU and memory for N sessions.

For each session count (``--sessions 1,4,16``) a fresh worker process starts a
:class:`~glm_local.server.LocalRealtimeServer` and N websocket clients. Each client sends
``session.update`` (server VAD, WAV input), then plays ``--turns`` real recordings (the
pocketsphinx fixtures: "go forward ten meters", the cards, "feels like these days go on
forever"), each followed by ``--silence-ms`` of silence, in 100 ms WAV packets at
``--speed`` x real time, waiting for the reply after each. Clients start ``--stagger-ms``
apart, spread evenly.

Measured, per response:

* **TTFA**: client-observed ``input_audio_buffer.speech_stopped`` to the first
  ``response.audio.delta`` of the response that follows (the server's VAD hangover is
  before speech_stopped, so it is not included).
* **CPU**: user + system time of the worker process (server and clients) during the
  run, plus that of the ASR worker processes with ``--asr-processes N`` (their start-up
  included), per second of input audio (``CPU ms / s``) and as a share of the cores.
* **Peak RSS**: ``ru_maxrss`` of the worker process (server, models and clients), and of
  the largest ASR worker.

Run: ``python -m benchmarks local_backend [--sessions 1,4,16] [--tts espeak|piper]
[--asr-processes N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from realtime.compat import timeout

AUDIO = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "audio"
TOKEN = "bench-id.bench-secret"
RATE = 16000


def _clips() -> list[bytes]:
    import soundfile

    clips = [(AUDIO / "pocketsphinx-misc" / "goforward.raw").read_bytes()]
    paths = sorted((AUDIO / "cards").glob("*.wav"))
    paths.append(AUDIO / "pocketsphinx-misc" / "input_2_16k.wav")
    for path in paths:
        data, rate = soundfile.read(str(path), dtype="int16")
        assert rate == RATE and data.ndim == 1, path
        clips.append(data.astype("<i2").tobytes())
    return clips


def _packets(pcm: bytes) -> list[str]:
    from realtime.audio import UplinkPacker

    packer = UplinkPacker("wav", wav_rate=RATE, packet_ms=100)
    return [base64.b64encode(p).decode() for p in packer.push(pcm, RATE) + packer.flush()]


@dataclass
class _Log:
    events: list[tuple[float, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def count(self, kind: str) -> int:
        return sum(1 for _, e in self.events if e.type == kind)

    def settled(self) -> bool:
        """Every detected utterance has been transcribed and, if it had words, answered."""
        kind = "conversation.item.input_audio_transcription.completed"
        said = [e for _, e in self.events if e.type == kind]
        return self.count("input_audio_buffer.speech_started") == self.count(
            "input_audio_buffer.speech_stopped"
        ) == len(said) and self.count("response.done") >= sum(1 for e in said if e.transcript)


async def _session(url: str, index: int, clips: list[list[str]], args: argparse.Namespace) -> Any:
    from realtime import events as ev
    from realtime.connection import connect
    from realtime.session import SessionConfig

    await asyncio.sleep(index * args.stagger_ms / 1000 / max(args.n, 1))
    log = _Log()
    audio_s = 0.0
    async with connect(url, api_key=TOKEN) as conn:

        async def read() -> None:
            async for event in conn:
                async with log.changed:
                    log.events.append((time.monotonic(), event))
                    log.changed.notify_all()

        reader = asyncio.create_task(read(), name=f"bench:read:{index}")
        await conn.send(ev.SessionUpdate(session=SessionConfig()))
        for turn in range(args.turns):
            packets = clips[(index + turn) % len(clips)]
            audio_s += len(packets) * 0.1
            stops = log.count("input_audio_buffer.speech_stopped")
            start = time.monotonic()
            for k, packet in enumerate(packets):
                if args.speed > 0:
                    delay = start + k * 0.1 / args.speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await conn.send(ev.InputAudioBufferAppend(audio=packet))
            async with timeout(120), log.changed:
                await log.changed.wait_for(
                    lambda: (
                        log.count("input_audio_buffer.speech_stopped") > stops  # noqa: B023
                        and log.settled()
                    )
                )
        reader.cancel()
    return _ttfas(log), audio_s


def _ttfas(log: _Log) -> list[tuple[bool, float]]:
    """(first response of the session?, TTFA s) for each response with audio."""
    out: list[tuple[bool, float]] = []
    stopped_at: float | None = None
    waiting: dict[str, float] = {}
    for at, event in log.events:
        if event.type == "input_audio_buffer.speech_stopped":
            stopped_at = at
        elif event.type == "response.created" and stopped_at is not None:
            waiting[event.response.id] = stopped_at
            stopped_at = None
        elif event.type == "response.audio.delta" and event.response_id in waiting:
            out.append((not out, at - waiting.pop(event.response_id)))
    return out


async def _worker(args: argparse.Namespace) -> dict[str, Any]:
    from glm_local.server import LocalRealtimeServer

    clips = [_packets(c + b"\x00\x00" * (RATE * args.silence_ms // 1000)) for c in _clips()]
    server = LocalRealtimeServer(
        port=0, token=TOKEN, pace=args.pace, tts=args.tts, asr_processes=args.asr_processes
    )
    async with server:
        rss_idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu0, wall0 = time.process_time(), time.monotonic()
        results = await asyncio.gather(
            *(_session(server.url, i, clips, args) for i in range(args.n))
        )
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    # ASR workers have exited and been waited for: their CPU (start-up included) counts.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += children.ru_utime + children.ru_stime
    ttfas = [t for r in results for t in r[0]]
    return {
        "sessions": args.n,
        "ttfa_first": [t for first, t in ttfas if first],
        "ttfa_later": [t for first, t in ttfas if not first],
        "audio_s": sum(r[1] for r in results),
        "cpu_s": cpu,
        "wall_s": wall,
        "rss_idle_mb": rss_idle / 1024,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_rss_mb": children.ru_maxrss / 1024,
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def _table(rows: list[dict[str, Any]]) -> str:
    cores = os.cpu_count() or 1
    lines = [
        "| sessions | responses | TTFA p50 ms | TTFA p95 ms | first-turn p50 ms | "
        "later-turn p50 ms | CPU ms per s of audio | CPU share of "
        f"{cores} cores | peak RSS MB (idle server) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        every = r["ttfa_first"] + r["ttfa_later"]
        lines.append(
            f"| {r['sessions']} | {len(every)} | {_pct(every, 0.5):.0f} | {_pct(every, 0.95):.0f}"
            f" | {_pct(r['ttfa_first'], 0.5):.0f} | {_pct(r['ttfa_later'], 0.5):.0f}"
            f" | {r['cpu_s'] / r['audio_s'] * 1000:.0f}"
            f" | {r['cpu_s'] / r['wall_s'] / cores:.0%}"
            f" | {r['rss_peak_mb']:.0f} ({r['rss_idle_mb']:.0f})"
            + (f" + {r['worker_rss_mb']:.0f} per ASR worker |" if r["worker_rss_mb"] else " |")
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks local_backend")
    parser.add_argument("--sessions", default="1,4,16", help="comma-separated session counts")
    parser.add_argument("--turns", type=int, default=3, help="recordings played per session")
    parser.add_argument("--speed", type=float, default=1.0, help="client playback speed")
    parser.add_argument("--pace", type=float, default=1.0, help="server audio pace")
    parser.add_argument("--silence-ms", type=int, default=1500, help="silence after each clip")
    parser.add_argument("--stagger-ms", type=int, default=1000, help="spread of session starts")
    parser.add_argument("--tts", choices=["espeak", "piper"], default="espeak")
    parser.add_argument(
        "--asr-processes", type=int, default=0, help="ASR worker processes (0: in-process)"
    )
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args(argv)
    if args.n:
        print(json.dumps(asyncio.run(_worker(args))))
        return 0
    rows = []
    for n in [int(s) for s in args.sessions.split(",") if s.strip()]:
        command = [sys.executable, "-m", "benchmarks", "local_backend", *argv, "--n", str(n)]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{n} sessions: {time.monotonic() - started:.1f} s", file=sys.stderr)
    print(
        f"tts {args.tts}, pace {args.pace:g}, client speed {args.speed:g}, "
        f"{args.turns} turns per session, {args.silence_ms} ms trailing silence, "
        f"starts spread over {args.stagger_ms} ms; TTFA = speech_stopped -> first audio delta; "
        + (
            f"ASR in {args.asr_processes} worker process(es), their CPU counted (start-up too)"
            if args.asr_processes
            else "ASR in the server process"
        )
    )
    print(_table(rows))
    for r in rows:
        every = sorted(r["ttfa_first"] + r["ttfa_later"])
        print(f"  {r['sessions']:>2} sessions, all TTFA ms: {[round(t * 1000) for t in every]}")
        if every:
            print(f"     mean {statistics.mean(every) * 1000:.0f} ms", file=sys.stderr)
    return 0
