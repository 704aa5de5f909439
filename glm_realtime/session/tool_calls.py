"""The model's function calls: the ones in flight, and running one through the host."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from realtime import events as ev
from realtime.compat import TIMEOUT_ERRORS

from .handler import SessionHandler, ToolOutcome
from .responses import ResponseState

__all__ = ["PendingCall", "ToolCallBook", "run_tool"]

logger = logging.getLogger(__name__)


async def run_tool(
    handler: SessionHandler, name: str, arguments: str, timeout_s: float
) -> ToolOutcome:
    """Call ``name(arguments)`` through :meth:`SessionHandler.call_tool`.

    A timeout or an exception becomes a failure output the model can read, never an error
    of the session.
    """
    try:
        outcome = await asyncio.wait_for(handler.call_tool(name, arguments), timeout_s)
    except TIMEOUT_ERRORS:
        outcome = ToolOutcome.failure(f"tool {name} timed out after {timeout_s:g} s")
    except Exception as exc:  # noqa: BLE001 - any tool failure goes back to the model
        outcome = ToolOutcome.failure(f"tool {name} failed: {exc}")
    logger.info("= tool %s answered (ok=%s, %d chars)", name, outcome.ok, len(outcome.output))
    return outcome


@dataclass
class PendingCall:
    """A tool call sent to the host and not answered yet.

    ``gen`` is the socket it came on; ``superseded`` marks a call the user barged in on.
    """

    seq: int
    call_id: str | None
    name: str
    arguments: str
    response: ResponseState
    gen: int | None
    superseded: bool = False


class ToolCallBook:
    """The calls in flight, by sequence number (bounded by the model's calls and timeouts)."""

    def __init__(self) -> None:
        self._calls: dict[int, PendingCall] = {}
        self._seqs = itertools.count(1)

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[int]:
        return iter(self._calls)

    def get(self, seq: int) -> PendingCall | None:
        """The call ``seq`` if it is still in flight."""
        return self._calls.get(seq)

    def add(
        self, event: ev.ResponseFunctionCallArgumentsDone, response: ResponseState, gen: int | None
    ) -> PendingCall:
        """Track a new call of ``response`` on socket ``gen``."""
        call = PendingCall(
            next(self._seqs), event.call_id, event.name, event.arguments, response, gen
        )
        self._calls[call.seq] = call
        return call

    def pop(self, seq: int) -> PendingCall | None:
        """The call ``seq`` answered (None if it was forgotten)."""
        return self._calls.pop(seq, None)

    def supersede_all(self) -> None:
        """A barge-in: every call in flight now answers an old question."""
        for call in self._calls.values():
            call.superseded = True

    def clear(self) -> None:
        """Forget every call (the session ended)."""
        self._calls.clear()
