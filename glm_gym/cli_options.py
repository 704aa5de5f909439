"""Options that ``glm-realtime gym`` and ``glm-realtime eval`` share.

The GLM key and URL come from :mod:`glm_realtime.cli_group`, the backend's own options
from :mod:`glm_local.cli_options`; these are the gym's: the scenario file, the pace of the
embedded backend and the GLM session cap. Only click is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from glm_realtime.cli_group import F

__all__ = ["max_sessions_option", "realtime_option", "scenarios_option"]


def scenarios_option(dest: str, *, must_exist: bool) -> Callable[[F], F]:
    """``--scenarios FILE`` (default: the bundled set), passed as ``dest``."""
    return click.option(
        "--scenarios",
        dest,
        default=None,
        type=click.Path(exists=must_exist, dir_okay=False, path_type=Path),
        help="Scenario JSONL file (default: the bundled set).",
    )


def realtime_option(func: F) -> F:
    """``--realtime``: the embedded backend at wall-clock pace instead of a virtual clock."""
    return click.option(
        "--realtime",
        is_flag=True,
        help="Wall-clock pace on the embedded backend (GLM always runs in real time).",
    )(func)


def max_sessions_option(help: str) -> Callable[[F], F]:
    """``--max-sessions`` (1..1000, default 5): concurrent GLM sessions per key."""
    return click.option(
        "--max-sessions",
        default=5,
        show_default=True,
        type=click.IntRange(1, 1000),
        help=help,
    )
