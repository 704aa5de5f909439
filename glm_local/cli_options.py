"""Options of the embedded backend that the commands serving it share (``serve``, ``gym``).

Only click and the worker-process limit are imported: the commands that use these load
the backend when they run, not when the command line is built.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from glm_local.speech.asr_processes import MAX_PROCESSES
from glm_realtime.cli_group import F

__all__ = ["asr_processes_option"]


def asr_processes_option(default: int | None, help: str) -> Callable[[F], F]:
    """``--asr-processes`` (0..MAX_PROCESSES recogniser worker processes; 0: in process)."""
    return click.option(
        "--asr-processes",
        default=default,
        show_default=default is not None,
        type=click.IntRange(0, MAX_PROCESSES),
        help=help,
    )
