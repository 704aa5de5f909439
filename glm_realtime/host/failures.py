"""Bounded logging of the failures of one node's ``on_data``/``on_audio_frame``.

A node that raises on every frame (50 a second of 20 ms audio) would fill the log with a
traceback a frame and bury what happened before. The first ``lines`` failures of a node are
logged one line each, naming the node, the handler, the message and the error; only the
first carries the traceback (every one does when the logger is at DEBUG). After those,
only the 10th, 100th, 1000th... failure is logged, with the count, so a node failing for
hours leaves a few dozen lines.
"""

from __future__ import annotations

import logging

__all__ = ["FailureLog"]


class FailureLog:
    """Counts and logs the handler failures of one node (see the module docstring)."""

    def __init__(self, logger: logging.Logger, node: str, lines: int = 10) -> None:
        self.logger = logger
        self.node = node
        self.lines = lines
        self.failures = 0

    def record(self, handler: str, message: str, exc: Exception) -> None:
        """Count a failure of ``handler`` on ``message`` and log it if it is due."""
        self.failures += 1
        count = self.failures
        if count > self.lines and not _power_of_ten(count):
            return
        suffix = ""
        if count > self.lines:
            suffix = f" ({count} failures of this node so far; now logging every 10x)"
        self.logger.error(
            "node '%s' failed in %s('%s'): %s: %s%s",
            self.node,
            handler,
            message,
            type(exc).__name__,
            exc,
            suffix,
            exc_info=exc if count == 1 or self.logger.isEnabledFor(logging.DEBUG) else None,
        )


def _power_of_ten(count: int) -> bool:
    while count % 10 == 0:
        count //= 10
    return count == 1
