"""``glm-realtime gym``: serve voice environments to AgentGym clients over HTTP.

Example::

    glm-realtime gym --port 36001                        # embedded backend, virtual clock
    glm-realtime gym --backend glm --max-sessions 5      # GLM cloud (GLM_API_KEY), 1x pace

One process, one port (env state lives in the process: scale with more processes on more
ports, never uvicorn workers). Ctrl-C or SIGTERM closes every env and its session first.
Only click is imported here; the server and its extra load when the command runs.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any, Literal, cast

import click

from glm_gym.cli_options import max_sessions_option, realtime_option, scenarios_option
from glm_gym.model import MAX_TURN_TIMEOUT_S
from glm_local.admission import default_asr_processes
from glm_local.cli_options import asr_processes_option
from glm_realtime.cli_group import api_key_option, listen_error, listen_options, url_option

__all__ = ["gym", "listening_socket"]

# Seconds uvicorn waits for running requests (a step is a whole turn) before it closes them.
_GRACE_S = 10


@click.command("gym")
@listen_options(36001, "TCP port (0: any free one; the URL is printed).")
@click.option(
    "--backend",
    "backend_kind",
    type=click.Choice(["local", "glm"]),
    default="local",
    show_default=True,
    help="local: the embedded backend; glm: the GLM cloud.",
)
@click.option(
    "--max-envs",
    default=128,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Live envs at most; /create beyond answers 503 with Retry-After.",
)
@click.option(
    "--ttl",
    "ttl_s",
    default=600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Close an env (and its session) after this many idle seconds (0: never).",
)
@realtime_option
@asr_processes_option(
    None,
    "Embedded backend: recognise speech in N worker processes (0: in this one). "
    "Default: one per core, as serve (a step's answer then waits less behind other "
    "envs' recognition: p95 13 ms instead of 100 ms beside 4 voice turns on 2 cores).",
)
@click.option(
    "--turn-timeout",
    "turn_timeout_s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True, max=MAX_TURN_TIMEOUT_S),
    help="Seconds one assistant turn may take before a step returns without it.",
)
@scenarios_option("scenarios_path", must_exist=True)
@api_key_option("GLM key for --backend glm (env GLM_API_KEY).")
@url_option("GLM websocket URL for --backend glm.")
@max_sessions_option("Concurrent GLM sessions per key (accounts allow 5-20); more envs queue.")
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
def gym(
    host: str,
    port: int,
    backend_kind: str,
    max_envs: int,
    ttl_s: float,
    realtime: bool,
    asr_processes: int | None,
    turn_timeout_s: float,
    scenarios_path: Path | None,
    api_key: str | None,
    url: str | None,
    max_sessions: int,
    verbose: bool,
) -> None:
    """Serve spoken conversations as AgentGym environments (POST /create, /step, ...)."""
    if backend_kind == "glm" and not api_key:
        raise click.UsageError("--backend glm needs a key: set GLM_API_KEY or pass --api-key")
    try:
        import uvicorn

        from glm_gym.scenarios import ScenarioError, load_scenarios
        from glm_gym.server import GymSettings, create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the gym server cannot load ({exc}); install it with: pip install 'glm-realtime[gym]'"
        ) from exc
    try:
        scenarios = load_scenarios(scenarios_path)
    except (ScenarioError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    settings = GymSettings(
        backend=cast(Literal["local", "glm"], backend_kind),
        realtime=realtime or backend_kind == "glm",
        asr_processes=default_asr_processes() if asr_processes is None else asr_processes,
        max_envs=max_envs,
        ttl_s=ttl_s,
        turn_timeout_s=turn_timeout_s,
        glm_api_key=api_key,
        glm_url=url,
        glm_max_sessions=max_sessions,
    )
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        raise click.ClickException(listen_error(host, port, exc)) from exc
    app = create_app(settings, scenarios=scenarios)
    config = uvicorn.Config(
        app,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        lifespan="on",
        timeout_graceful_shutdown=_GRACE_S,
    )
    bound = sock.getsockname()
    clock = "wall clock" if settings.realtime else "virtual clock"
    click.echo(
        f"GLM voice gym ({backend_kind} backend, {clock}, {len(scenarios)} scenarios, "
        f"at most {max_envs} envs) listening at http://{bound[0]}:{bound[1]}"
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
    # handler it found: make that one a no-op so the command ends normally after it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopped)
    with sock:
        server.run(sockets=[sock])
    if not server.started:
        raise click.ClickException("the gym server did not start (the reason is logged above)")
    click.echo("stopped: every env closed", err=True)


def _stopped(signum: int, frame: Any) -> None:
    """The signal's work (a graceful shutdown) is already done when this runs."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (0: a free port) for uvicorn's ``sockets``.

    Made with ``IPPROTO_TCP`` named: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    that say so, and ``socket.create_server`` leaves the protocol 0. With Nagle on, every
    keep-alive answer waits for the client's delayed ACK: 40 ms a request on Linux.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock
