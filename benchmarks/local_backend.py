"""Embedded backend under load: voice-to-voice latency, lag, refusals and memory over rounds.

**Voice-to-voice** (the headline), for each count of simultaneous speakers
(``--sessions 1,4,8,16``): a fresh process starts a
:class:`~glm_local.server.LocalRealtimeServer` (its defaults: admission control on, ASR
layout as ``serve`` picks it unless ``--asr-processes`` says) and that many websocket clients,
starts spread over ``--stagger-ms``. Each client plays ``--turns`` real recordings (the
pocketsphinx fixtures) through server VAD, each followed by ``--silence-ms`` of silence, in
100 ms WAV packets sent as a microphone would (each when its audio has ended, at real time),
and waits for the reply after each. Measured on the client's clock, per reply:

* **voice-to-voice**: from sending the packet with the recording's last sample to receiving
  the reply's first ``response.audio.delta`` (VAD hangover, recognition, reply, synthesis and
  any lag, all of it);
* **lag**: from the moment the audio at ``speech_stopped.audio_end_ms`` was sent to receiving
  that ``speech_stopped``: how far the server runs behind real time.

Sessions the server refuses (GLM's concurrency error 1302, close 1013) are counted, not
timed. The server's own report of sessions more than a second behind is printed beside.

**Memory over rounds**: one server, ``--rounds`` rounds of ``--round-sessions`` concurrent
sessions (one turn each, as fast as possible); after each round, the RSS of the whole
process tree (server, clients, ASR workers) and the recognisers still alive.

Run: ``python -m benchmarks local_backend [--sessions 1,4,8,16] [--asr-processes N]
[--max-sessions N] [--rounds 3] [--round-sessions 8] [--tts espeak|piper]
[--asr pocketsphinx|whisper]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import asr_accuracy
from benchmarks._proc import percentile, usage
from realtime.compat import TIMEOUT_ERRORS, timeout

AUDIO = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "audio"
TOKEN = "bench-id.bench-secret"
RATE = 16000
PACKET_MS = 100
TURN_TIMEOUT_S = 120.0


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


@dataclass(frozen=True)
class _Turn:
    packets: list[str]
    speech_ms: int  # where the recording ends (then silence)


def _turns(silence_ms: int) -> list[_Turn]:
    from realtime.audio import UplinkPacker

    turns = []
    for clip in _clips():
        packer = UplinkPacker("wav", wav_rate=RATE, packet_ms=PACKET_MS)
        pcm = clip + b"\x00\x00" * (RATE * silence_ms // 1000)
        packets = [base64.b64encode(p).decode() for p in packer.push(pcm, RATE) + packer.flush()]
        turns.append(_Turn(packets, len(clip) * 1000 // (2 * RATE)))
    return turns


@dataclass
class _Client:
    """One speaker: what it sent when (stream ms -> client clock) and what it received.

    Received events are also counted as they come (:meth:`record`): :meth:`settled` is
    asked on every event, and scanning all of them each time made a speaker's turns
    quadratic in its events.
    """

    events: list[tuple[float, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    sent_end_ms: list[int] = field(default_factory=list)  # stream position after each packet
    sent_at: list[float] = field(default_factory=list)
    refused: bool = False
    counts: Counter[str] = field(default_factory=Counter)  # events received, by type
    transcribed: int = 0  # utterances transcribed
    worded: int = 0  # of them, those with words (each is answered)

    def record(self, at: float, event: Any) -> None:
        """Keep an event received at ``at`` and count it."""
        self.events.append((at, event))
        self.counts[event.type] += 1
        if event.type.endswith("transcription.completed"):
            self.transcribed += 1
            self.worded += bool(event.transcript)

    def count(self, kind: str) -> int:
        return self.counts[kind]

    def when_sent(self, stream_ms: float) -> float:
        """When the audio at ``stream_ms`` was sent (it left in the packet that holds it)."""
        i = min(bisect_left(self.sent_end_ms, stream_ms), len(self.sent_end_ms) - 1)
        return self.sent_at[i] - (self.sent_end_ms[i] - stream_ms) / 1000

    def settled(self, stops: int) -> bool:
        """A new utterance ended, was transcribed and, if it had words, answered."""
        stopped = self.count("input_audio_buffer.speech_stopped")
        return (
            stopped > stops
            and self.count("input_audio_buffer.speech_started") == stopped == self.transcribed
            and self.count("response.done") >= self.worded
        )


async def _speak(url: str, index: int, turns: list[_Turn], args: argparse.Namespace) -> Any:
    from realtime import events as ev
    from realtime.connection import connect
    from realtime.errors import ConnectionClosed
    from realtime.session import SessionConfig

    await asyncio.sleep(index * args.stagger_ms / 1000 / max(args.n, 1))
    client = _Client()
    v2v: list[float] = []
    timed_out = False
    async with connect(url, api_key=TOKEN) as conn:

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for event in conn:
                    async with client.changed:
                        client.record(time.monotonic(), event)
                        client.changed.notify_all()

        reader = asyncio.create_task(read(), name=f"bench:read:{index}")
        async with timeout(TURN_TIMEOUT_S), client.changed:
            await client.changed.wait_for(
                lambda: client.count("session.created") or client.count("error")
            )
        client.refused = any(e.type == "error" and e.error.code == "1302" for _, e in client.events)
        if not client.refused:
            await conn.send(ev.SessionUpdate(session=SessionConfig()))
        for number in range(0 if client.refused else args.turns):
            turn = turns[(index + number) % len(turns)]
            stops = client.count("input_audio_buffer.speech_stopped")
            start, stream0 = time.monotonic(), client.sent_end_ms[-1] if client.sent_end_ms else 0
            last_speech_at = start
            # The reply may start while this turn's trailing silence is still being sent:
            # look for it from the turn's start, not from the last packet.
            seen = len(client.events)
            for k, packet in enumerate(turn.packets):
                if args.speed > 0:  # each packet leaves when its audio has ended
                    delay = start + (k + 1) * PACKET_MS / 1000 / args.speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await conn.send(ev.InputAudioBufferAppend(audio=packet))
                client.sent_end_ms.append(stream0 + (k + 1) * PACKET_MS)
                client.sent_at.append(time.monotonic())
                if k * PACKET_MS < turn.speech_ms:
                    last_speech_at = client.sent_at[-1]
            try:
                async with timeout(TURN_TIMEOUT_S), client.changed:
                    await client.changed.wait_for(lambda: client.settled(stops) or reader.done())  # noqa: B023
            except TIMEOUT_ERRORS:  # past capacity: counted, and this speaker gives up
                timed_out = True
                break
            replies = {
                e.response.id for _, e in client.events[seen:] if e.type == "response.created"
            }
            first_audio = next(
                (
                    at
                    for at, e in client.events[seen:]
                    if e.type == "response.audio.delta" and e.response_id in replies
                ),
                None,
            )
            if first_audio is not None:
                v2v.append(first_audio - last_speech_at)
        reader.cancel()
    lags = [
        at - client.when_sent(e.audio_end_ms)
        for at, e in client.events
        if e.type == "input_audio_buffer.speech_stopped"
    ]
    return {"refused": client.refused, "v2v": v2v, "lag": lags, "timed_out": timed_out}


def _server(args: argparse.Namespace, pace: float) -> Any:
    from glm_local.admission import default_asr_processes
    from glm_local.server import LocalRealtimeServer

    return LocalRealtimeServer(
        port=0,
        token=TOKEN,
        pace=pace,
        tts=args.tts,
        asr=args.asr,
        asr_processes=(
            default_asr_processes(args.asr) if args.asr_processes is None else args.asr_processes
        ),
        max_sessions=args.max_sessions,
    )


async def _speakers_run(args: argparse.Namespace) -> dict[str, Any]:
    turns = _turns(args.silence_ms)
    async with _server(args, args.pace) as server:
        cpu0, wall0 = os.times(), time.monotonic()
        results = await asyncio.gather(*(_speak(server.url, i, turns, args) for i in range(args.n)))
        wall = time.monotonic() - wall0
        rss = usage(os.getpid())[1]
        metrics = server.metrics()
        asr = len(server.asr_worker_pids)
    cpu1 = os.times()  # the workers have exited and been waited for: their CPU counts
    cpu = sum(cpu1[:4]) - sum(cpu0[:4])
    return {
        "offered": args.n,
        "refused": sum(r["refused"] for r in results),
        "timed_out": sum(r["timed_out"] for r in results),
        "v2v": [t for r in results for t in r["v2v"]],
        "lag": [t for r in results for t in r["lag"]],
        "lagging": metrics.lagging_sessions,
        "max_sessions": metrics.max_sessions,
        "asr": asr,
        "cpu_share": cpu / wall / (os.cpu_count() or 1),
        "rss_mb": rss,
    }


async def _rounds_run(args: argparse.Namespace) -> dict[str, Any]:
    turns = _turns(args.silence_ms)
    args.n, args.turns, args.speed = args.round_sessions, 1, 0.0
    rows = []
    async with _server(args, 0.0) as server:
        idle = usage(os.getpid())[1]
        for round_number in range(1, args.rounds + 1):
            await asyncio.gather(*(_speak(server.url, i, turns, args) for i in range(args.n)))
            await server.drained()
            live = await server.live_recognizers()
            rows.append((round_number, server.sessions_served, usage(os.getpid())[1], live))
    return {"idle_mb": idle, "rows": rows}


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f}" if values else "-"


def _speakers_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"| speakers offered | admitted | refused | replies | gave up (no reply in "
        f"{TURN_TIMEOUT_S:g} s) | voice-to-voice p50 / p95 / max ms "
        "| lag p50 / p95 / max ms | server: sessions > 1 s behind | CPU share | tree RSS MB |",
        "|---:|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        v2v, lag = r["v2v"], r["lag"]
        lines.append(
            f"| {r['offered']} | {r['offered'] - r['refused']} | {r['refused']} | {len(v2v)} "
            f"| {r['timed_out']} "
            f"| {_ms(v2v, 0.5)} / {_ms(v2v, 0.95)} / {_ms(v2v, 1)} "
            f"| {_ms(lag, 0.5)} / {_ms(lag, 0.95)} / {_ms(lag, 1)} "
            f"| {r['lagging']} | {r['cpu_share']:.0%} | {r['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def _rounds_table(result: dict[str, Any]) -> str:
    lines = [
        "| round | sessions so far | tree RSS MB | recognisers alive |",
        "|---:|---:|---:|---:|",
        f"| idle | 0 | {result['idle_mb']:.0f} | 0 |",
    ]
    lines += [f"| {n} | {served} | {rss:.0f} | {live} |" for n, served, rss, live in result["rows"]]
    return "\n".join(lines)


def _in_fresh_process(argv: list[str], mode: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks", "local_backend", *argv, *mode]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks local_backend")
    parser.add_argument("--sessions", default="1,4,8,16", help="simultaneous speakers offered")
    parser.add_argument("--turns", type=int, default=3, help="recordings played per session")
    parser.add_argument("--speed", type=float, default=1.0, help="client playback speed")
    parser.add_argument("--pace", type=float, default=1.0, help="server audio pace")
    parser.add_argument("--silence-ms", type=int, default=1500, help="silence after each clip")
    parser.add_argument("--stagger-ms", type=int, default=1000, help="spread of session starts")
    parser.add_argument("--tts", choices=["espeak", "piper"], default="espeak")
    parser.add_argument("--asr", choices=["pocketsphinx", "whisper"], default="pocketsphinx")
    parser.add_argument("--asr-processes", type=int, default=None, help="default: serve's")
    parser.add_argument("--max-sessions", type=int, default=None, help="default: the server's")
    parser.add_argument("--rounds", type=int, default=3, help="memory: rounds of sessions")
    parser.add_argument("--round-sessions", type=int, default=8, help="memory: sessions a round")
    parser.add_argument(
        "--wer-sets",
        default=",".join(asr_accuracy.SETS),
        help="recogniser WER sets at the end ('': none)",
    )
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)  # one speakers run
    parser.add_argument("--rounds-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n:
        print(json.dumps(asyncio.run(_speakers_run(args))))
        return 0
    if args.rounds_run:
        print(json.dumps(asyncio.run(_rounds_run(args))))
        return 0
    rows = []
    for n in [int(s) for s in args.sessions.split(",") if s.strip()]:
        started = time.monotonic()
        rows.append(_in_fresh_process(argv, ["--n", str(n)]))
        print(f"{n} speakers: {time.monotonic() - started:.1f} s", file=sys.stderr)
    first = rows[0] if rows else {"asr": 0, "max_sessions": None}
    asr = f"ASR in {first['asr']} worker process(es)" if first["asr"] else "ASR in-process"
    print(
        f"## Voice-to-voice: {args.asr}, {asr}, max_sessions {first['max_sessions']}, "
        f"tts {args.tts}, pace {args.pace:g}, client speed {args.speed:g}, "
        f"{args.turns} turns per session, "
        f"{args.silence_ms} ms trailing silence, starts spread over {args.stagger_ms} ms; "
        f"load average before: {os.getloadavg()[0]:.1f}\n"
    )
    print(_speakers_table(rows))
    if args.rounds > 0:
        rounds = _in_fresh_process(argv, ["--rounds-run"])
        print(
            f"\n## Memory over rounds: {args.rounds} rounds of {args.round_sessions} concurrent "
            "sessions, one turn each, pace 0 (RSS of server, clients and ASR workers)\n"
        )
        print(_rounds_table(rounds))
    # Further sections (WER by engine, ...) go below, each printing its own "## ..." table.
    print(asr_accuracy.report(args.wer_sets.split(",")) if args.wer_sets else "")
    return 0
