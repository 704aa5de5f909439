"""``glm-realtime``: run a spoken turn through a graph, replay a dump, serve locally.

Where a turn connects (``run`` and ``replay``):

* a key (``--api-key`` or ``GLM_API_KEY``): ``--url``, by default the GLM cloud;
* no key and ``--url`` on this machine (127.0.0.1, localhost, ::1): that server, with
  no credential (``serve`` without ``--token`` accepts it; with one, pass the token as
  ``--api-key``);
* no key and no ``--url``: an embedded local backend on a free port.

Everything is checked before anything starts: the input file (format, rate, that it
holds audio), the graph, the URL. Errors are one line (see :mod:`glm_realtime.cli_group`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from glm_realtime.app import TurnError, check_app, load_app, prepare_app, run_turn, summary_lines
from glm_realtime.cli_group import CliGroup, api_key_option, check_writable, url_option, verbosity
from glm_realtime.host.errors import HostError
from glm_realtime.nodes.pcm import RAW_SUFFIXES, AudioFileError, check_rate, read_audio
from glm_realtime.progress import TurnProgress
from realtime.connection import DEFAULT_URL
from realtime.errors import AuthenticationError, RealtimeError
from realtime.pcm import MAX_RATE, MIN_RATE

_RATE_IN_NAME = re.compile(r"_(\d+)hz\.(pcm|raw)$", re.IGNORECASE)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@click.group(cls=CliGroup)
def cli() -> None:
    """GLM-Realtime voice agent: graph runner, replay and local backend."""


cli.user_errors = (click.ClickException, TurnError, HostError, RealtimeError, OSError, ValueError)


def _notice(message: str) -> None:
    if verbosity() >= 0:
        click.echo(message, err=True)


@asynccontextmanager
async def _backend(
    api_key: str | None, url: str | None, asr: str = "pocketsphinx"
) -> AsyncIterator[dict[str, Any]]:
    """GLM node properties for the URL (with a key or a local URL) or an embedded server."""
    if api_key or url:
        base, _, path = (url or DEFAULT_URL).partition("/api/")
        where = {"base_uri": base, "path": "/api/" + path}
        if api_key:
            yield {**where, "api_key": api_key}
            return
        _notice(f"no GLM_API_KEY: connecting to {url} without a key")
        yield {**where, "api_key": "", "auth": "none"}
        return
    try:
        from glm_local.server import LocalRealtimeServer
        from glm_local.speech.recognizers import check_recognizer_installed, check_recognizer_name

        recognizer = check_recognizer_name(asr)
        check_recognizer_installed(recognizer)
    except ImportError as exc:
        hint = "" if "pip install" in str(exc) else "; install: pip install 'glm-realtime[local]'"
        raise click.ClickException(
            f"no GLM_API_KEY is set and the embedded backend cannot load ({exc}){hint}"
        ) from exc
    token = secrets.token_hex(16)
    async with LocalRealtimeServer(host="127.0.0.1", port=0, token=token, asr=recognizer) as server:
        _notice(f"no GLM_API_KEY: using the embedded backend at {server.url}")
        yield {"base_uri": server.base_uri, "path": server.path, "api_key": token}


def _check_url(url: str | None, api_key: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname or "/api/" not in parts.path:
        raise click.BadParameter(
            f"{url!r} is not a GLM-Realtime websocket URL; accepted: "
            f"ws:// or wss://HOST[:PORT]/api/..., like {DEFAULT_URL}",
            param_hint="'--url'",
        )
    if not api_key and parts.hostname not in _LOOPBACK_HOSTS:
        raise click.UsageError(
            f"--url {url} needs a key: set GLM_API_KEY or pass --api-key (without a key only "
            "a server on this machine is tried: 127.0.0.1, localhost or ::1)"
        )


def _raw_rate(path: Path, given: int | None, option: str) -> int | None:
    """The rate of a headerless input: ``option``'s value, else the ``_<rate>hz`` name."""
    if path.suffix.lower() not in RAW_SUFFIXES:
        if given is not None:
            raise click.UsageError(
                f"{option} is for headerless .pcm/.raw input; {path.name} states its own rate"
            )
        return None
    if given is not None:
        return given
    match = _RATE_IN_NAME.search(path.name)
    if match is None:
        raise click.UsageError(
            f"{path.name} is raw PCM with no header to state its rate: pass {option} "
            f"({MIN_RATE}..{MAX_RATE}) or name it like speech_16000hz.pcm"
        )
    rate = int(match.group(1))
    try:
        return check_rate(rate, f"the rate in the name {path.name}")
    except AudioFileError as exc:
        raise click.UsageError(f"{exc}; pass {option} to give the right one") from exc


def _input_seconds(path: Path, raw_rate: int | None, param_hint: str) -> float:
    """Read the input once up front, so a file that cannot be heard stops the run at once."""
    try:
        samples, rate = read_audio(path, raw_rate or 0)
    except (AudioFileError, OSError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint=param_hint) from exc
    return len(samples) / rate


async def _run_turn(
    *,
    input_path: Path,
    input_seconds: float,
    output_path: Path,
    graph: Path | None,
    graph_name: str | None,
    asr: str,
    speed: float,
    timeout: float,
    transcript: Path | None,
    api_key: str | None,
    url: str | None,
    input_rate: int | None,
) -> list[str]:
    app = load_app(graph)
    check_app(app, graph_name)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    async with _backend(api_key, url, asr) as glm_props:
        # A recording may play faster than the socket opens: hold all of it (up to the
        # 60 s maximum) rather than the live-call default of the last 2 s.
        glm_props.update(disconnected_audio="keep", disconnected_keep_ms=60_000)
        prepared = prepare_app(
            app,
            graph_name=graph_name,
            input_path=input_path,
            output_path=output_path,
            glm=glm_props,
            speed=speed,
            input_rate=input_rate,
            transcript_path=transcript,
        )
        progress = TurnProgress(input_seconds) if verbosity() >= 0 else None
        try:
            report = await run_turn(prepared, graph_name, timeout_s=timeout, progress=progress)
        except TurnError as exc:
            if not api_key and url and isinstance(exc.__cause__, AuthenticationError):
                raise TurnError(f"{exc}; the server wants a token: pass it as --api-key") from exc
            raise
    return summary_lines(report, output_path)


def _common(func: Any) -> Any:
    options = [
        click.option(
            "--output",
            "output_path",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="WAV file for the assistant's audio.",
        ),
        click.option(
            "--graph",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="App property.json with '_ten.predefined_graphs' (default: the bundled "
            "voice assistant, glm_realtime/graphs/voice_assistant.json).",
        ),
        click.option(
            "--graph-name", default=None, help="Graph to run (default: the first auto_start graph)."
        ),
        click.option(
            "--asr",
            type=click.Choice(["pocketsphinx", "whisper"]),  # glm_local's RECOGNIZER_NAMES
            default="pocketsphinx",
            show_default=True,
            help="Recogniser of the embedded backend (no key): whisper (the [whisper] extra) "
            "hears far better, ~1 s slower per utterance.",
        ),
        click.option(
            "--speed",
            type=click.FloatRange(min=0),
            default=1.0,
            show_default=True,
            help="Input pace: 1 real time, 0 as fast as possible.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=1),
            default=60.0,
            show_default=True,
            help="Seconds to wait for a complete reply.",
        ),
        click.option(
            "--transcript",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Also write transcripts and metrics as JSONL.",
        ),
        api_key_option("GLM key (env GLM_API_KEY), or the token of a local 'serve --token'."),
        url_option(
            f"Websocket URL (env GLM_REALTIME_URL; default with a key: {DEFAULT_URL}). "
            "Without a key, a URL on this machine is used with no credential; with neither, "
            "an embedded local backend runs.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _execute(input_path: Path, rate: int | None, param_hint: str, **kwargs: Any) -> None:
    _check_url(kwargs["url"], kwargs["api_key"])
    seconds = _input_seconds(input_path, rate, param_hint)
    check_writable(kwargs["output_path"], "'--output'")
    check_writable(kwargs["transcript"], "'--transcript'")
    lines = asyncio.run(
        _run_turn(input_path=input_path, input_rate=rate, input_seconds=seconds, **kwargs)
    )
    for line in lines:
        click.echo(line)


@cli.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The user speaking: WAV (8/16/24/32-bit int or float, any rate and channels; FLAC, "
    "OGG, AIFF with the [local] extra) or headerless s16le mono .pcm/.raw.",
)
@click.option(
    "--input-rate",
    type=click.IntRange(MIN_RATE, MAX_RATE),
    default=None,
    help="Sample rate of a .pcm/.raw input (default: from a '..._<rate>hz.pcm' name).",
)
@_common
def run(input_path: Path, input_rate: int | None, **kwargs: Any) -> None:
    """Play INPUT into the graph as the user, write the assistant's spoken reply.

    Progress (audio sent, what was heard, the reply) goes to stderr; -q hides it.
    """
    rate = _raw_rate(input_path, input_rate, "--input-rate")
    _execute(input_path, rate, "'--input'", **kwargs)


@cli.command()
@click.argument("dump", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--sample-rate",
    type=click.IntRange(MIN_RATE, MAX_RATE),
    default=None,
    help="Rate of the dump (read from a '<role>_<tag>_<rate>hz.pcm' name by default).",
)
@_common
def replay(dump: Path, sample_rate: int | None, **kwargs: Any) -> None:
    """Replay a user PCM DUMP written by the extension (property dump) through a graph."""
    rate = _raw_rate(dump, sample_rate, "--sample-rate")
    _execute(dump, rate, "'DUMP'", **kwargs)


# The embedded backend and the gym sit on top of this package: their commands are
# imported when named (or listed by --help).
cli.add_lazy_command("serve", "glm_local.cli:serve")
cli.add_lazy_command("gym", "glm_gym.launch:gym", extra="gym")
cli.add_lazy_command("eval", "glm_gym.eval_cli:eval_command", extra="gym")


def main() -> None:
    """Console entry point."""
    cli(prog_name="glm-realtime")
