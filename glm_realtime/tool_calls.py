"""The model's function calls for one session: each run through the host, bounded in time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from glm_realtime.handler import SessionHandler, ToolOutcome
from realtime.compat import TIMEOUT_ERRORS

__all__ = ["ToolCalls"]

logger = logging.getLogger(__name__)

Answer = Callable[[ToolOutcome], Awaitable[None]]


class ToolCalls:
    """Runs each function call of the model as its own named task.

    A call goes to :meth:`SessionHandler.call_tool` under a timeout; a timeout or an
    exception becomes a failure output the model can read, never an error of the session.
    The outcome goes to the ``answer`` given with the call. :meth:`cancel` stops every call
    still in flight (the session does on stop).
    """

    def __init__(self, handler: SessionHandler, timeout_s: float) -> None:
        self._handler = handler
        self.timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, name: str, arguments: str, answer: Answer) -> None:
        """Run ``name(arguments)`` in the background; ``answer`` gets its outcome."""
        task = asyncio.create_task(
            self._run(name, arguments, answer), name=f"glm-session:tool:{name}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self) -> None:
        """Cancel every call in flight and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, name: str, arguments: str, answer: Answer) -> None:
        try:
            outcome = await asyncio.wait_for(
                self._handler.call_tool(name, arguments), self.timeout_s
            )
        except TIMEOUT_ERRORS:
            outcome = ToolOutcome.failure(f"tool {name} timed out after {self.timeout_s:g} s")
        except Exception as exc:  # noqa: BLE001 - any tool failure goes back to the model
            outcome = ToolOutcome.failure(f"tool {name} failed: {exc}")
        logger.info("= tool %s answered (ok=%s, %d chars)", name, outcome.ok, len(outcome.output))
        await answer(outcome)
