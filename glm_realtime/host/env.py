"""The environment handed to each node: its properties, its way out, its logger.

:class:`AsyncTenEnv` mirrors the TEN 0.8 ``AsyncTenEnv`` that extension code uses,
with one deliberate difference: :meth:`AsyncTenEnv.send_cmd` returns the
:class:`~glm_realtime.host.messages.CmdResult` itself, never ``None`` and never a
``(result, error)`` tuple. When something goes wrong (no destination, a handler that
raised or never answered, a stopped graph) the result is ``StatusCode.ERROR`` with a
``detail`` property saying why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar

from .messages import AudioFrame, Cmd, CmdResult, Data
from .properties import PropertyAccessors, PropertyStore

__all__ = ["AsyncTenEnv", "MessageRouter", "node_logger"]

_T = TypeVar("_T")


def node_logger(node: str) -> logging.Logger:
    """Return the stdlib logger of a node: ``glm_realtime.graph.<node>``."""
    return logging.getLogger(f"glm_realtime.graph.{node}")


class MessageRouter(Protocol):
    """What an environment needs from its host (implemented by ``GraphRunner``)."""

    async def route_cmd(self, source: str, cmd: Cmd) -> CmdResult:
        """Deliver ``cmd`` from ``source`` and return the answer."""
        ...

    async def route_message(self, source: str, msg: Data | AudioFrame) -> None:
        """Queue ``msg`` from ``source`` for its destinations."""
        ...

    async def route_result(self, source: str, result: CmdResult, target_cmd: Cmd) -> None:
        """Hand ``result`` to whoever awaits ``target_cmd``."""
        ...

    def request_stop(self, source: str) -> None:
        """Ask the host to stop the graph."""
        ...

    def spawn(self, source: str, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        """Run ``coro`` as a task the host owns and cancels when ``source`` stops."""
        ...


class AsyncTenEnv(PropertyAccessors):
    """A node's handle on the graph.

    Args:
        node: Name of the node this environment belongs to.
        properties: The node's resolved properties (copied).
        router: The host that delivers what the node sends.
    """

    def __init__(self, node: str, properties: Mapping[str, Any], router: MessageRouter) -> None:
        self._node = node
        self._props = PropertyStore(f"node '{node}'", properties)
        self._router = router
        self._logger = node_logger(node)

    @property
    def node_name(self) -> str:
        """Name of the node this environment belongs to."""
        return self._node

    @property
    def logger(self) -> logging.Logger:
        """The node's stdlib logger."""
        return self._logger

    async def send_cmd(self, cmd: Cmd) -> CmdResult:
        """Send ``cmd`` along the graph and wait for its result.

        Returns:
            The destination's result. With several destinations, the first one's
            (in connection order). ``StatusCode.ERROR`` with a ``detail`` property when
            there is no destination, the handler raised or never called
            ``return_result``, or the graph is stopping. Never ``None``; never raises
            for those reasons.
        """
        return await self._router.route_cmd(self._node, cmd)

    async def send_data(self, data: Data) -> None:
        """Queue ``data`` for its destinations; waits while a destination queue is full.

        Data with no destination is dropped (logged at debug level).
        """
        await self._router.route_message(self._node, data)

    async def send_audio_frame(self, audio_frame: AudioFrame) -> None:
        """Queue ``audio_frame`` for its destinations; waits while a queue is full."""
        await self._router.route_message(self._node, audio_frame)

    async def return_result(self, result: CmdResult, target_cmd: Cmd) -> None:
        """Answer ``target_cmd`` (received in ``on_cmd``) with ``result``."""
        await self._router.route_result(self._node, result, target_cmd)

    def stop_graph(self) -> None:
        """Ask the host to stop the whole graph; returns at once."""
        self._router.request_stop(self._node)

    def create_task(self, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        """Run ``coro`` as a task named ``graph:<node>:<name>``.

        The host keeps a reference, logs an exception it ends with, and cancels and
        awaits it right after this node's ``on_stop``.
        """
        return self._router.spawn(self._node, coro, name)

    def log_debug(self, msg: str) -> None:
        """Log at DEBUG level on the node's logger."""
        self._logger.debug(msg)

    def log_info(self, msg: str) -> None:
        """Log at INFO level on the node's logger."""
        self._logger.info(msg)

    def log_warn(self, msg: str) -> None:
        """Log at WARNING level on the node's logger."""
        self._logger.warning(msg)

    def log_error(self, msg: str) -> None:
        """Log at ERROR level on the node's logger."""
        self._logger.error(msg)

    def log_fatal(self, msg: str) -> None:
        """Log at CRITICAL level on the node's logger (the host does not exit)."""
        self._logger.critical(msg)
