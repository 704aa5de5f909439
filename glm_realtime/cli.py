"""``glm-realtime``: run a spoken turn through a graph, replay a dump, serve locally."""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import click

from glm_realtime.app import TurnError, load_app, prepare_app, run_turn, summary_lines
from glm_realtime.host.errors import HostError
from realtime.connection import DEFAULT_URL
from realtime.errors import RealtimeError

_DUMP_RATE = re.compile(r"_(\d+)hz\.pcm$")


class _LazyGroup(click.Group):
    """Commands of the packages on top of this one, imported only when named.

    Nothing here imports them at module import time (the layers point down); ``--help``
    imports each listed module (click only) to show its one-line summary.
    """

    lazy = {"gym": "glm_gym.launch:gym"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, name = target.partition(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup)
@click.option("-v", "--verbose", count=True, help="-v info logs, -vv debug logs.")
def cli(verbose: int) -> None:
    """GLM-Realtime voice agent: graph runner, replay and local backend."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@asynccontextmanager
async def _backend(api_key: str | None, url: str | None) -> AsyncIterator[dict[str, Any]]:
    """GLM node properties for the cloud (with a key) or an embedded local server."""
    if api_key:
        base, _, path = (url or DEFAULT_URL).partition("/api/")
        yield {"base_uri": base, "path": "/api/" + path, "api_key": api_key}
        return
    try:
        from glm_local.server import LocalRealtimeServer
    except ImportError as exc:
        raise click.ClickException(
            f"no GLM_API_KEY is set and the embedded backend cannot load ({exc}); "
            "install it with: pip install 'glm-realtime[local]'"
        ) from exc
    token = secrets.token_hex(16)
    async with LocalRealtimeServer(host="127.0.0.1", port=0, token=token) as server:
        click.echo(f"no GLM_API_KEY: using the embedded backend at {server.url}", err=True)
        yield {"base_uri": server.base_uri, "path": server.path, "api_key": token}


async def _run_turn(
    *,
    input_path: Path,
    output_path: Path,
    graph: Path | None,
    graph_name: str | None,
    speed: float,
    timeout: float,
    transcript: Path | None,
    api_key: str | None,
    url: str | None,
    input_rate: int | None = None,
) -> list[str]:
    app = load_app(graph)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    async with _backend(api_key, url) as glm_props:
        # A recording may play faster than the socket opens: hold all of it (up to the
        # 60 s maximum) rather than the live-call default of the last 2 s.
        glm_props.update(disconnected_audio="keep", disconnected_keep_ms=60_000)
        prepared = prepare_app(
            app,
            input_path=input_path,
            output_path=output_path,
            glm=glm_props,
            speed=speed,
            input_rate=input_rate,
            transcript_path=transcript,
        )
        report = await run_turn(prepared, graph_name, timeout_s=timeout)
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
            help="App property.json with the graph (default: the bundled voice assistant).",
        ),
        click.option(
            "--graph-name", default=None, help="Graph to run (default: the first auto_start graph)."
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
        click.option(
            "--api-key",
            envvar="GLM_API_KEY",
            default=None,
            help="GLM key (env GLM_API_KEY); without one the embedded backend runs.",
        ),
        click.option(
            "--url",
            envvar="GLM_REALTIME_URL",
            default=None,
            help=f"Cloud websocket URL (default {DEFAULT_URL}).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _execute(**kwargs: Any) -> None:
    try:
        lines = asyncio.run(_run_turn(**kwargs))
    except (TurnError, HostError, RealtimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    for line in lines:
        click.echo(line)


@cli.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="WAV (any rate) or raw s16le .pcm of the user speaking.",
)
@click.option(
    "--input-rate",
    type=click.IntRange(8000, 192000),
    default=None,
    help="Sample rate of a raw .pcm input.",
)
@_common
def run(**kwargs: Any) -> None:
    """Play INPUT into the graph as the user, write the assistant's spoken reply."""
    _execute(**kwargs)


@cli.command()
@click.argument("dump", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--sample-rate",
    type=click.IntRange(8000, 192000),
    default=None,
    help="Rate of the dump (read from a '<role>_<tag>_<rate>hz.pcm' name by default).",
)
@_common
def replay(dump: Path, sample_rate: int | None, **kwargs: Any) -> None:
    """Replay a user PCM DUMP written by the extension (property dump) through a graph."""
    if sample_rate is None:
        match = _DUMP_RATE.search(dump.name)
        if match is None:
            raise click.BadParameter(
                "cannot tell the rate from the file name; pass --sample-rate", param_hint="DUMP"
            )
        sample_rate = int(match.group(1))
    _execute(input_path=dump, input_rate=sample_rate, **kwargs)


def _attach_serve() -> None:
    # The embedded backend sits on top of this package: attach its command when present.
    try:
        from glm_local.cli import serve
    except ImportError:
        return
    cli.add_command(serve)


_attach_serve()


def main() -> None:
    """Console entry point."""
    cli()
