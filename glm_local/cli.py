"""``serve``: run the embedded GLM-Realtime backend until Ctrl-C.

Example::

    glm-realtime serve --port 8765 --token secret --tts piper
    glm-realtime serve --asr-processes 0 --max-sessions 2   # in-process ASR, 2 at once
    glm-realtime serve --asr whisper            # accurate recognition, ~1 s per utterance
    glm-realtime serve --engine openai --engine-url http://127.0.0.1:8080/v1 \\
        --engine-model my-model
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Literal, cast

import click

from glm_local.admission import (
    SPEAKERS_PER_ASR_CORE,
    WHISPER_SPEAKERS_PER_CORE,
    default_asr_processes,
)
from glm_local.cli_options import asr_processes_option
from glm_local.engine import DeterministicEngine, OpenAIChatEngine, ReplyEngine
from glm_local.server import DEFAULT_IDLE_TIMEOUT_S, LocalRealtimeServer
from glm_local.speech import MissingSpeechDependency
from glm_local.speech.recognizers import (
    RECOGNIZER_NAMES,
    RecognizerName,
    check_recognizer_installed,
)
from glm_realtime.cli_group import listen_error, listen_options

__all__ = ["serve"]


def _engine(kind: str, url: str | None, model: str | None, key: str | None) -> ReplyEngine:
    if kind == "deterministic":
        return DeterministicEngine()
    if not url or not model:
        raise click.UsageError("--engine openai needs --engine-url and --engine-model")
    return OpenAIChatEngine(base_url=url, model=model, api_key=key)


@click.command("serve")
@listen_options(8765, "TCP port (0: any free one).")
@click.option(
    "--token",
    envvar="GLM_LOCAL_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' (env GLM_LOCAL_TOKEN).",
)
@click.option(
    "--heartbeat",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between heartbeat events (> 0).",
)
@click.option(
    "--pace",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Stream audio at most PACE x real time (0: as fast as synthesised).",
)
@click.option("--tts", type=click.Choice(["espeak", "piper"]), default="espeak", show_default=True)
@click.option(
    "--engine",
    "engine_kind",
    type=click.Choice(["deterministic", "openai"]),
    default="deterministic",
    show_default=True,
)
@click.option("--engine-url", default=None, help="OpenAI-compatible base URL (with /v1).")
@click.option("--engine-model", default=None, help="Model name for --engine openai.")
@click.option("--engine-key", envvar="OPENAI_API_KEY", default=None, help="env OPENAI_API_KEY")
@asr_processes_option(
    None,
    "Recognise speech in N worker processes (0: in the server process). Default: one "
    "per core (in-process on one core); pocketsphinx holds the GIL, so in-process "
    "recognition of all sessions shares one core.",
)
@click.option(
    "--max-sessions",
    default=None,
    type=click.IntRange(min=1),
    help="Serve at most N sessions at once; more get GLM's concurrency error (1302) and "
    f"close 1013. Default: what this machine serves at real time ({SPEAKERS_PER_ASR_CORE} "
    f"per core of recognition for pocketsphinx, {WHISPER_SPEAKERS_PER_CORE} for whisper); "
    "no limit with --pace 0.",
)
@click.option(
    "--idle-timeout",
    default=DEFAULT_IDLE_TIMEOUT_S,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Close a connection that sends nothing for this many seconds.",
)
@click.option(
    "--asr",
    type=click.Choice(RECOGNIZER_NAMES),
    default="pocketsphinx",
    show_default=True,
    help="Recogniser: pocketsphinx (streaming, fast, weak on open speech and synthetic "
    "voices) or whisper (the [whisper] extra; far fewer errors, ~1 s after each utterance).",
)
def serve(
    host: str,
    port: int,
    token: str | None,
    heartbeat: float,
    pace: float,
    tts: str,
    engine_kind: str,
    engine_url: str | None,
    engine_model: str | None,
    engine_key: str | None,
    asr_processes: int | None,
    max_sessions: int | None,
    idle_timeout: float,
    asr: str,
) -> None:
    """Serve GLM-Realtime on offline speech parts (no key, no network).

    -v (before or after 'serve') logs each session.
    """
    try:
        check_recognizer_installed(cast(RecognizerName, asr))
    except MissingSpeechDependency as exc:
        raise click.ClickException(f"--asr {asr}: {exc}") from exc
    engine = _engine(engine_kind, engine_url, engine_model, engine_key)
    server = LocalRealtimeServer(
        host,
        port,
        token,
        heartbeat_s=heartbeat,
        pace=pace,
        tts=cast(Literal["espeak", "piper"], tts),
        engine=engine,
        asr_processes=default_asr_processes(asr) if asr_processes is None else asr_processes,
        max_sessions=max_sessions,
        idle_timeout_s=idle_timeout,
        asr=cast(RecognizerName, asr),
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await server.start()
        except OSError as exc:
            raise click.ClickException(listen_error(host, port, exc)) from exc
        try:
            click.echo(f"GLM-Realtime (local) listening at {server.url}")
            if server.max_sessions is not None:
                click.echo(f"serving up to {server.max_sessions} sessions at once", err=True)
            if token is None:
                click.echo("no token set: any client may connect", err=True)
            await stop.wait()
        finally:
            await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    click.echo("stopped", err=True)
