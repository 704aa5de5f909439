"""The ``glm-realtime`` click group: shared flags and one place that turns errors into lines.

Every command attached to :class:`CliGroup` (``run``, ``replay``, ``serve``, later ones
too) gets ``-v``/``-q``, which count the same before or after the command name
(``glm-realtime -v serve`` and ``glm-realtime serve -v`` both log sessions):

* ``-q``: errors only, no progress; ``-v``: info logs; ``-vv``: debug logs, and a
  traceback with every error.

An exception that escapes a command becomes ``Error: <root cause>`` (one line, exit 1)
instead of a traceback: its message is the cause's, with the node it happened in, and
an OS error's reason. A usage error (a bad option value) prints two lines, the problem
and where the help is, and exits 2.

The options several commands take (the GLM key and URL, where a server listens) are
declared once here, as decorators, so their names, environment variables and types agree;
:func:`listen_error` says why a server of :func:`listen_options` cannot listen.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from glm_realtime.host.errors import NodeError

__all__ = [
    "CliGroup",
    "api_key_option",
    "describe_error",
    "listen_error",
    "listen_options",
    "url_option",
    "verbosity",
]

F = TypeVar("F", bound=Callable[..., Any])

_VERBOSITY = "glm_realtime.verbosity"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def verbosity() -> int:
    """The ``-v`` count minus the ``-q`` count of the running command line (0 outside one)."""
    ctx = click.get_current_context(silent=True)
    return 0 if ctx is None else int(ctx.find_root().meta.get(_VERBOSITY, 0))


def _count(ctx: click.Context, param: click.Parameter, value: int) -> None:
    root = ctx.find_root()
    sign = -1 if param.name == "quiet" else 1
    root.meta[_VERBOSITY] = root.meta.get(_VERBOSITY, 0) + sign * value
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}
    logging.basicConfig(format=_LOG_FORMAT)  # a no-op once a handler exists
    logging.getLogger().setLevel(level.get(max(-1, root.meta[_VERBOSITY]), logging.DEBUG))


def _verbosity_options() -> list[click.Option]:
    common: dict[str, Any] = {"count": True, "expose_value": False, "callback": _count}
    return [
        click.Option(["-v", "--verbose"], help="-v info logs, -vv debug logs.", **common),
        click.Option(["-q", "--quiet"], help="Errors only, no progress.", **common),
    ]


def api_key_option(help: str) -> Callable[[F], F]:
    """``--api-key`` (env ``GLM_API_KEY``, default none): the GLM key of a command."""
    return click.option("--api-key", envvar="GLM_API_KEY", default=None, help=help)


def url_option(help: str, dest: str = "url") -> Callable[[F], F]:
    """``--url`` (env ``GLM_REALTIME_URL``, default none), passed as ``dest``."""
    return click.option("--url", dest, envvar="GLM_REALTIME_URL", default=None, help=help)


def listen_options(port: int, port_help: str) -> Callable[[F], F]:
    """``--host`` (default 127.0.0.1) and ``--port`` (0..65535, default ``port``) of a server."""

    def decorate(func: F) -> F:
        func = click.option(
            "--port",
            default=port,
            show_default=True,
            type=click.IntRange(0, 65535),
            help=port_help,
        )(func)
        return click.option(
            "--host", default="127.0.0.1", show_default=True, help="Interface to listen on."
        )(func)

    return decorate


def listen_error(host: str, port: int, exc: OSError) -> str:
    """Why a server of ``listen_options`` cannot listen on ``host:port``, and what to do."""
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot listen on --host {host}: the name does not resolve ({exc.strerror}); "
            "give an address of this machine, like 127.0.0.1"
        )
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; pick another --port (0: any free one)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on --host {host}: not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port} (ports below 1024 need root)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def check_writable(path: Path | None, param_hint: str, *, folder: bool = False) -> None:
    """Make ``path``'s folder (``path`` itself when ``folder``) and try a file in it, so an
    output that cannot be written stops a command before it starts, not after the work.

    Raises:
        click.BadParameter: It cannot be written, naming the path and why.
    """
    if path is None:
        return
    where = path if folder else path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        if not folder and path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied", str(path))
        with tempfile.NamedTemporaryFile(dir=where, prefix=f".{path.name}."):
            pass
    except (FileExistsError, NotADirectoryError) as exc:  # a file where a folder should be
        files = (p for p in reversed((where, *where.parents)) if p.exists() and not p.is_dir())
        raise click.BadParameter(
            f"cannot write {path}: {next(files, exc.filename)} is a file, not a folder",
            param_hint=param_hint,
        ) from exc
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {path}: {exc.strerror or exc}", param_hint=param_hint
        ) from exc


def _import_command(name: str, target: str, extra: str) -> click.Command:
    module_name, _, attribute = target.partition(":")
    try:
        command = getattr(importlib.import_module(module_name), attribute)
    except ImportError as exc:
        reason = (
            f"'{name}' cannot load ({exc}); install it with: pip install 'glm-realtime[{extra}]'"
        )

        @click.command(name, help=f"(not installed: {exc})")
        def unavailable() -> None:
            raise click.ClickException(reason)

        return unavailable
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


def describe_error(exc: BaseException) -> str:
    """One line that names the root cause of ``exc`` (and the node it happened in)."""
    if isinstance(exc, NodeError) and exc.__cause__ is not None:
        cause = describe_error(exc.__cause__)
        return cause if f"'{exc.node}'" in cause else f"node '{exc.node}': {cause}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve a host name ({exc.strerror}): no network, or a wrong host"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class CliGroup(click.Group):
    """A group whose commands share ``-v``/``-q`` and report errors in one line.

    Attributes:
        user_errors: Exception types that are the user's to fix (bad input, no network,
            a refused key); others are reported as internal errors, also in one line.
    """

    user_errors: tuple[type[BaseException], ...] = (click.ClickException,)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_verbosity_options())
        self._lazy: dict[str, tuple[str, str]] = {}

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Attach ``cmd``, giving it ``-v``/``-q`` unless it declares them itself."""
        taken = {opt for param in cmd.params for opt in getattr(param, "opts", ())}
        cmd.params.extend(o for o in _verbosity_options() if not taken & set(o.opts))
        super().add_command(cmd, name)

    def add_lazy_command(self, name: str, target: str, extra: str = "local") -> None:
        """Attach the command ``target`` (``"package.module:attribute"``) as ``name``,
        imported only when it is run or listed (``--help``), so that a layer above this
        package (the backend, the gym) costs nothing to the commands that do not use it.
        If it cannot be imported, running it says to install ``extra``.
        """
        self._lazy[name] = (target, extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self._lazy.pop(cmd_name, None)
        if lazy is not None:
            self.add_command(_import_command(cmd_name, *lazy), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if verbosity() >= 2:
                traceback.print_exception(type(exc), exc, exc.__traceback__)
            message = describe_error(exc)
            if not isinstance(exc, self.user_errors):
                message += f" (internal error {type(exc).__name__}: -vv shows the traceback)"
            raise click.ClickException(message) from None

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> None:
        """Run the command line; usage errors in two lines, other errors in one."""
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            if exc.ctx is not None:
                click.echo(f"See '{exc.ctx.command_path} --help'.", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)
