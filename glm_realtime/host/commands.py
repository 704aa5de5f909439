"""Commands in flight: each handler in a task of its own, and the ``send_cmd`` calls waiting.

When a node's consumer takes a :class:`~.running_node.CmdDelivery` from its queue,
:func:`start_cmd` runs the node's ``on_cmd`` in a task (``graph:<node>:cmd:<name>#<id>``) and
returns once the handler first waits, so the next message is taken after it started and a
handler that awaits another command cannot deadlock its node. :class:`PendingCmds` holds the
futures the ``send_cmd`` calls await, by cmd id, until ``return_result`` resolves them; a
handler that ends without answering, fails, is cancelled, or belongs to a stopped node
answers ERROR, saying which.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from .messages import Cmd, CmdResult
from .running_node import CmdDelivery, RunningNode

__all__ = ["PendingCmds", "Spawn", "start_cmd"]

_log = logging.getLogger("glm_realtime.host.runner")  # one log for the runner and its parts

Spawn = Callable[[RunningNode, Coroutine[Any, Any, None], str], asyncio.Task[None]]
"""Runs a coroutine as a named task of a node (cancelled when the node stops)."""


class PendingCmds:
    """The ``send_cmd`` calls waiting for a result, by cmd id."""

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[CmdResult]] = {}

    def expect(self, cmd: Cmd, future: asyncio.Future[CmdResult]) -> None:
        """``future`` awaits the final result of ``cmd``."""
        self._futures[cmd.cmd_id] = future

    def forget(self, cmd: Cmd) -> None:
        """``cmd``'s handler ended: a result for it now is not awaited."""
        self._futures.pop(cmd.cmd_id, None)

    def resolve(self, source: str, result: CmdResult, target_cmd: Cmd) -> None:
        """Hand ``result`` (from node ``source``) to the ``send_cmd`` awaiting ``target_cmd``."""
        future = self._futures.get(target_cmd.cmd_id)
        if future is None or future.done():
            _log.warning(
                "node '%s' returned a result for cmd '%s' that is not awaited "
                "(answered twice, or after its handler ended)",
                source,
                target_cmd.get_name(),
            )
            return
        if not result.is_final():
            _log.debug("ignoring a non-final result for cmd '%s'", target_cmd.get_name())
            return
        result._answer(target_cmd)
        future.set_result(result)

    def fail_all(self, reason: str) -> None:
        """Answer every waiting call ERROR with ``reason`` (the graph stopped)."""
        for future in self._futures.values():
            if not future.done():
                future.set_result(CmdResult.error(reason))
        self._futures.clear()


async def start_cmd(
    node: RunningNode, delivery: CmdDelivery, pending: PendingCmds, spawn: Spawn
) -> None:
    """Start the handler; return once it first waits, so the next message comes after."""
    cmd = delivery.cmd
    started = asyncio.Event()
    task_name = f"graph:{node.spec.name}:cmd:{cmd.get_name()}#{cmd.cmd_id}"
    spawn(node, _handle_cmd(node, cmd, delivery.future, started, pending), task_name)
    await started.wait()


async def _handle_cmd(
    node: RunningNode,
    cmd: Cmd,
    future: asyncio.Future[CmdResult],
    started: asyncio.Event,
    pending: PendingCmds,
) -> None:
    name, where = cmd.get_name(), node.spec.name
    # The consumer wakes only when this task first waits: on_cmd runs up to there first.
    started.set()
    try:
        if node.stopping:
            future.set_result(CmdResult.error(f"node '{where}' is stopped", cmd))
            return
        try:
            await node.ext.on_cmd(node.env, cmd)
        except Exception as exc:
            node.env.logger.exception("node '%s' failed in on_cmd('%s')", where, name)
            if not future.done():
                text = f"cmd '{name}' failed in node '{where}': {type(exc).__name__}: {exc}"
                future.set_result(CmdResult.error(text, cmd))
            return
        if not future.done():
            text = f"node '{where}' returned from on_cmd('{name}') without return_result"
            node.env.logger.error("%s", text)
            future.set_result(CmdResult.error(text, cmd))
    finally:
        pending.forget(cmd)
        if not future.done():
            future.set_result(CmdResult.error(f"cmd '{name}' to '{where}' was cancelled", cmd))
