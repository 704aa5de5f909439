"""Gym server under load: live envs one process holds, step overhead, CPU and memory per env.

A real ``glm-realtime gym`` process (embedded backend, virtual clock) is measured from the
outside, the way its users see it: through :class:`~glm_gym.client.GlmVoiceEnvClient`
over HTTP on 127.0.0.1, from threads of this process.

1. ``--envs N`` envs are created and started (each ``reset`` runs a live conversation on
   the shared embedded backend: a graph, a session, its recogniser); then every one of
   them is asked for its observation and stepped once (``--concurrency`` at a time) to
   show it is alive. **Live envs held** is how many answered.
2. **Memory per env**: the server's process tree RSS (server + any ASR workers) with the N
   envs live, less the RSS with the first one live (it loads what all share), over N - 1.
   **Idle CPU per env**: the
   tree's CPU time over ``--idle-s`` seconds with N envs live and no request.
3. **Step overhead beyond the voice turn**: for every step, the client's round trip (POST
   sent to answer parsed) less the time spent inside ``VoiceEnv.step`` (the server's
   ``Server-Timing: env`` header): HTTP, JSON, routing, registry, locks. Reported for the
   voice steps of (1) and for ``--probes`` instant steps (an invalid action the env
   answers without speaking), one at a time. **CPU per step**: the tree's CPU over the
   voice steps, per step.

Run: ``python -m benchmarks gym [--envs 64] [--concurrency 4] [--idle-s 5]
[--asr-processes N]``. Eval
throughput (audio seconds per wall second over the bundled set) is measured by
``python -m benchmarks eval_scale``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from benchmarks._proc import percentile, usage
from glm_gym.client import GlmVoiceEnvClient

SAY = "Thought: I greet the assistant.\nAction: say Hello there."
PROBE = "Thought: I do not know what to do.\nAction: dance"


def _start_server(max_envs: int, asr_processes: int | None) -> tuple[subprocess.Popen[str], str]:
    asr = [] if asr_processes is None else ["--asr-processes", str(asr_processes)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from glm_realtime.cli import main; main()",
            "gym",
            "--port",
            "0",
            "--max-envs",
            str(max_envs),
            "--ttl",
            "0",
            *asr,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    if "listening at" not in banner:
        proc.kill()
        raise SystemExit(f"the gym server did not start: {banner!r}")
    return proc, banner.rsplit(" ", 1)[1].strip()


def _settle(pid: int, limit_s: float = 300.0) -> float:
    """Wait until the server's tree is idle (under 5 % of a core over a second): with ASR
    workers a reset answers before its session's recogniser is made there. Returns the
    seconds waited."""
    start = time.perf_counter()
    cpu, _ = usage(pid)
    while time.perf_counter() - start < limit_s:
        time.sleep(1.0)  # a measurement window, not a synchronisation
        now, _ = usage(pid)
        if now - cpu < 0.05:
            break
        cpu = now
    return time.perf_counter() - start


def _timed_step(client: GlmVoiceEnvClient, action: str) -> tuple[float, float]:
    """Round trip and env time (seconds) of one step, from the client's side."""
    client.step(action)
    assert client.last_round_trip_s is not None and client.last_env_s is not None
    return client.last_round_trip_s, client.last_env_s


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks gym", description=__doc__)
    parser.add_argument("--envs", type=int, default=64, help="envs to create and hold")
    parser.add_argument("--concurrency", type=int, default=4, help="requests at once")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle CPU window")
    parser.add_argument("--probes", type=int, default=200, help="instant steps, one at a time")
    parser.add_argument(
        "--asr-processes", type=int, default=None, help="the server's ASR workers (default: its)"
    )
    args = parser.parse_args(argv)
    if args.envs < 1 or args.concurrency < 1 or args.probes < 1:
        parser.error("--envs, --concurrency and --probes must be at least 1")

    proc, url = _start_server(args.envs, args.asr_processes)
    clients: list[GlmVoiceEnvClient] = []
    try:
        cpu0, _ = usage(proc.pid)
        # The first env loads what every env shares (recogniser model, voices): not per env.
        clients.append(GlmVoiceEnvClient(url, timeout=600))
        clients[0].reset(0)
        _, rss0 = usage(proc.pid)
        with ThreadPoolExecutor(args.concurrency) as pool:
            start = time.perf_counter()
            more = pool.map(lambda _: GlmVoiceEnvClient(url, timeout=600), range(args.envs - 1))
            clients.extend(more)
            list(pool.map(lambda c: c.reset(0), clients[1:]))
            started_s = time.perf_counter() - start
            settled_s = _settle(proc.pid) + started_s
            cpu1, rss1 = usage(proc.pid)
            time.sleep(args.idle_s)  # the measurement window itself, not a synchronisation
            cpu2, _ = usage(proc.pid)
            steps = list(pool.map(lambda c: _timed_step(c, SAY), clients))
            cpu3, rss3 = usage(proc.pid)
            answered = sum(
                httpx.get(f"{url}/observation", params={"id": c.env_id}).status_code == 200
                for c in clients
            )
        probes = [_timed_step(clients[0], PROBE) for _ in range(args.probes)]
        health = httpx.get(f"{url}/health").json()
    finally:
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)

    voice_over = [(total - env) * 1000 for total, env in steps]
    probe_over = [(total - env) * 1000 for total, env in probes]
    turn_s = [env for _, env in steps]
    load = os.getloadavg()
    print(
        f"gym server, embedded backend, virtual clock, "
        f"{'the default' if args.asr_processes is None else args.asr_processes} ASR workers; "
        f"load average {load[0]:.1f} "
        f"{load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"  live envs held                {answered} of {args.envs} "
        f"(created and started in {started_s:.1f} s, {args.concurrency} at a time, the "
        f"server idle after {settled_s:.1f} s; server reported {health['live_envs']} live)"
    )
    per_env = (rss1 - rss0) / max(1, args.envs - 1)
    per_env_stepped = (rss3 - rss0) / max(1, args.envs - 1)
    print(
        f"  memory per live env           {per_env:.2f} MiB started, {per_env_stepped:.2f} MiB "
        f"after a step each (tree RSS {rss0:.0f} MiB with one env, {rss1:.0f} with all "
        f"started; {rss3:.0f} after a step each)"
    )
    print(
        f"  idle CPU per live env         {(cpu2 - cpu1) / args.idle_s / args.envs * 1000:.2f} "
        f"ms/s ({args.idle_s:g} s window)"
    )
    print(
        f"  CPU per voice step            {(cpu3 - cpu2) / len(steps) * 1000:.0f} ms "
        f"(turn p50 {statistics.median(turn_s):.2f} s)"
    )
    print(
        f"  step overhead, voice steps    p50 {percentile(voice_over, 0.5):.2f} ms, "
        f"p95 {percentile(voice_over, 0.95):.2f} ms ({len(steps)} steps, "
        f"{args.concurrency} at a time)"
    )
    print(
        f"  step overhead, instant steps  p50 {percentile(probe_over, 0.5):.2f} ms, "
        f"p95 {percentile(probe_over, 0.95):.2f} ms ({args.probes}, one at a time)"
    )
    print(f"  targets: >= 64 live envs, overhead p50 < 5 ms; start-up CPU {cpu1 - cpu0:.1f} s")
    return 0 if answered == args.envs else 1
