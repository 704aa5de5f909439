"""Run a graph: node lifecycle, message delivery, stop.

Here: the lifecycle, routing and each node's consumer. A node's run-time state and queue are
in :mod:`.running_node`; command handler tasks and the ``send_cmd`` calls waiting for their
results in :mod:`.commands`.

Delivery semantics:

* **Order.** Every message to a node (cmd, data or audio frame) goes through that node's
  one bounded FIFO queue, drained by one consumer task (``graph:<node>:inbox``): between
  one source and one destination, messages are delivered in the order sent, whatever
  their kind. A ``flush`` cmd is never overtaken by audio queued before it, so stale
  audio cannot play after it.
* **Data and audio frames** are handled one at a time: the consumer awaits ``on_data`` /
  ``on_audio_frame`` before taking the next message.
* **Commands** run each in its own task (``graph:<node>:cmd:<name>#<id>``), started in
  queue order: the consumer starts the handler and takes the next message once the
  handler first waits (or returns), so a handler that awaits another command cannot
  deadlock the node. ``send_cmd`` resolves when the destination calls
  ``return_result``. A handler that returns without answering yields an ERROR result
  saying so; one that raises yields an ERROR result carrying the exception text (and the
  exception is logged). A command routed to several nodes goes to all of them and
  ``send_cmd`` returns the **first** destination's result (connection order); the
  others' results are discarded. Non-final results are ignored.
* **Slow nodes: back-pressure.** ``send_data``, ``send_audio_frame`` and ``send_cmd`` wait
  while a destination's queue is full (``queue_size`` messages), so a slow node slows
  only the nodes that send to it, and nothing is dropped. A node that must never wait on
  a slow neighbour (the GLM node's receive loop) keeps its own outbox (see
  :mod:`glm_realtime.session.outbox`). A message routed to several nodes is cloned for
  all but the last.
* A node receives messages once its ``on_init`` has returned. From the moment its
  ``on_stop`` is called it receives nothing more: data and frames for it are dropped
  and commands to it answer ERROR.
* An exception in ``on_data``/``on_audio_frame`` is logged in one line with the node name
  and the error (a traceback with the first; bounded, see :mod:`.failures`) and the node
  keeps receiving.
* On a normal stop the queues are drained first (up to ``drain_timeout``), so a sink
  gets every frame a finished source sent; on cancellation or error they are not.

A node whose handler sends to a full queue that only it drains (itself, or a cycle of
nodes all blocked on each other) deadlocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from .commands import PendingCmds, start_cmd
from .env import AsyncTenEnv
from .errors import NodeError
from .extension import Extension
from .graph import Graph, MsgKind
from .messages import AudioFrame, Cmd, CmdResult, Data
from .running_node import CmdDelivery, RunningNode

__all__ = ["GraphRunner", "run_graph"]

_T = TypeVar("_T")
_log = logging.getLogger("glm_realtime.host.runner")


class GraphRunner:
    """Instantiate a graph's nodes and run them.

    Use as ``async with GraphRunner(graph) as runner: await runner.wait_stopped()``.
    Nodes are created in the constructor, so a test may adjust ``runner.node(name)``
    before entering.

    Args:
        graph: A graph from ``load_graph``/``parse_graph``.
        queue_size: Capacity of each node's data/audio queue (at least 1).
        stop_timeout: Seconds each ``on_stop``/``on_deinit`` may take before it is
            cancelled and logged; ``None`` waits forever.
        drain_timeout: On a normal stop, seconds to wait for queued data and frames
            to be handled before nodes stop; ``None`` waits forever.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        queue_size: int = 64,
        stop_timeout: float | None = 10.0,
        drain_timeout: float | None = 5.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.graph = graph
        self._stop_timeout = stop_timeout
        self._drain_timeout = drain_timeout
        self._nodes: dict[str, RunningNode] = {}
        for spec in graph.nodes:
            ext = graph.addons[spec.addon].create(spec.name)
            env = AsyncTenEnv(spec.name, spec.properties, self)
            self._nodes[spec.name] = RunningNode(spec, ext, env, asyncio.Queue(queue_size))
        self._cmds = PendingCmds()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_requested = asyncio.Event()
        self._state = "created"
        self._closed = asyncio.Event()
        self.stopped_by: str | None = None
        """Who asked to stop: a node name, ``"runner"``, or ``None`` so far."""

    # -- public API ---------------------------------------------------------------

    def node(self, name: str) -> Extension:
        """Return the extension instance of node ``name`` (``KeyError`` if none)."""
        return self._nodes[name].ext

    def env(self, name: str) -> AsyncTenEnv:
        """Return the environment of node ``name``; sending through it sends as that node."""
        return self._nodes[name].env

    def queue_depth(self, name: str) -> int:
        """Return how many messages wait in node ``name``'s queue."""
        return self._nodes[name].inbox.qsize()

    async def __aenter__(self) -> GraphRunner:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose(drain=exc_type is None)

    async def start(self) -> None:
        """Run ``on_init`` then ``on_start`` of every node, in graph order.

        Raises:
            NodeError: A node failed; the nodes already set up were torn down.
            RuntimeError: The runner was already started.
        """
        if self._state != "created":
            raise RuntimeError(f"graph '{self.graph.name}' runner already {self._state}")
        self._state = "starting"
        try:
            for node in self._nodes.values():
                await self._lifecycle(node, "on_init")
                node.inited = True
                # The consumer outlives on_stop (dropping what arrives) so that a
                # sender blocked on a full queue is never stranded.
                self._spawn(node, self._consume(node), f"graph:{node.spec.name}:inbox", own=False)
            for node in self._nodes.values():
                node.start_called = True
                await self._lifecycle(node, "on_start")
        except BaseException:
            await self.aclose(drain=False)
            raise
        self._state = "running"
        _log.info("graph '%s' started (%d nodes)", self.graph.name, len(self._nodes))

    def stop(self) -> None:
        """Ask the graph to stop: :meth:`wait_stopped` returns; returns at once."""
        self.request_stop("runner")

    async def wait_stopped(self) -> None:
        """Wait until a node calls ``env.stop_graph()`` or :meth:`stop` is called."""
        await self._stop_requested.wait()

    async def aclose(self, *, drain: bool = True) -> None:
        """Stop every node and cancel every task; safe to call more than once.

        With ``drain`` (the default, and what leaving ``async with`` without an
        exception does), data and frames already queued are handled first, for up to
        ``drain_timeout`` seconds; after an exception or a cancellation they are not.
        Then ``on_stop`` runs in reverse graph order for every node whose ``on_start`` was
        called, then each node's own tasks are cancelled; after all nodes stopped,
        the remaining tasks are cancelled and awaited, and ``on_deinit`` runs in
        reverse order. A node failing to stop is logged; the others still stop.
        """
        if self._state in ("closing", "closed"):
            await self._closed.wait()
            return
        self._state = "closing"
        self._stop_requested.set()
        try:
            if drain:
                await self._drain()
            for node in reversed(self._nodes.values()):
                node.stopping = True
                if node.start_called:
                    await self._quietly(node, "on_stop")
                await self._cancel(set(node.tasks))
            await self._cancel(set(self._tasks))
            for node in self._nodes.values():
                while not node.inbox.empty():  # wake anyone still blocked on put()
                    node.inbox.get_nowait()
            self._cmds.fail_all("graph stopped")
            for node in reversed(self._nodes.values()):
                if node.inited:
                    await self._quietly(node, "on_deinit")
            await self._cancel(set(self._tasks))  # anything started during on_deinit
        finally:
            self._state = "closed"
            self._closed.set()
            _log.info("graph '%s' stopped", self.graph.name)

    # -- MessageRouter ------------------------------------------------------------

    def request_stop(self, source: str) -> None:
        """Record a stop request from ``source`` (a node name or ``"runner"``)."""
        if not self._stop_requested.is_set():
            self.stopped_by = source
            _log.info("graph '%s': stop requested by %s", self.graph.name, source)
        self._stop_requested.set()

    def spawn(self, source: str, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        """Run ``coro`` as ``graph:<source>:<name>``, cancelled after ``source``'s ``on_stop``."""
        return self._spawn(self._nodes[source], coro, f"graph:{source}:{name}")

    async def route_message(self, source: str, msg: Data | AudioFrame) -> None:
        """Queue ``msg`` for every destination (waits while a queue is full)."""
        kind: MsgKind = "audio_frame" if isinstance(msg, AudioFrame) else "data"
        dests = self.graph.destinations(source, kind, msg.get_name())
        if self._state == "closed":
            _log.debug("graph stopped; %s '%s' from '%s' dropped", kind, msg.get_name(), source)
            return
        if not dests:
            _log.debug("no destination for %s '%s' from '%s'", kind, msg.get_name(), source)
            return
        for i, dest in enumerate(dests):
            node = self._nodes[dest]
            if node.stopping:
                continue
            await node.inbox.put(msg if i == len(dests) - 1 else msg.clone())

    async def route_cmd(self, source: str, cmd: Cmd) -> CmdResult:
        """Deliver ``cmd`` to its destinations; return the first one's result."""
        name = cmd.get_name()
        dests = self.graph.destinations(source, "cmd", name)
        if not dests:
            return CmdResult.error(f"no destination for cmd '{name}' from '{source}'", cmd)
        if self._state == "closed":
            return CmdResult.error(f"graph stopped; cmd '{name}' from '{source}' dropped", cmd)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[CmdResult]] = []
        for i, dest in enumerate(dests):
            copy = cmd if i == 0 else cmd.clone()
            future: asyncio.Future[CmdResult] = loop.create_future()
            futures.append(future)
            node = self._nodes[dest]
            if node.stopping:
                future.set_result(CmdResult.error(f"node '{dest}' is stopped", copy))
                continue
            self._cmds.expect(copy, future)
            await node.inbox.put(CmdDelivery(copy, future))
        return await futures[0]

    async def route_result(self, source: str, result: CmdResult, target_cmd: Cmd) -> None:
        """Resolve the ``send_cmd`` waiting for ``target_cmd``."""
        self._cmds.resolve(source, result, target_cmd)

    # -- internals ----------------------------------------------------------------

    def _spawn(
        self, node: RunningNode, coro: Coroutine[Any, Any, _T], name: str, *, own: bool = True
    ) -> asyncio.Task[_T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        if own:
            node.tasks.add(task)

        def forget(done: asyncio.Task[Any]) -> None:
            self._tasks.discard(done)
            node.tasks.discard(done)
            if not done.cancelled() and done.exception() is not None:
                node.env.logger.error(
                    "task %s of node '%s' failed",
                    done.get_name(),
                    node.spec.name,
                    exc_info=done.exception(),
                )

        task.add_done_callback(forget)
        return task

    async def _cancel(self, tasks: set[asyncio.Task[Any]]) -> None:
        current = asyncio.current_task()
        if current is not None:
            tasks.discard(current)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self) -> None:
        joins = [node.inbox.join() for node in self._nodes.values() if node.inited]
        try:
            await asyncio.wait_for(asyncio.gather(*joins), self._drain_timeout)
        except asyncio.TimeoutError:
            depths = {name: node.inbox.qsize() for name, node in self._nodes.items()}
            _log.warning("graph '%s': queues not drained at stop: %s", self.graph.name, depths)

    async def _lifecycle(self, node: RunningNode, phase: str) -> None:
        node.env.log_debug(phase)
        try:
            await getattr(node.ext, phase)(node.env)
        except Exception as exc:
            raise NodeError(node.spec.name, phase, exc) from exc

    async def _quietly(self, node: RunningNode, phase: str) -> None:
        try:
            await asyncio.wait_for(self._lifecycle(node, phase), self._stop_timeout)
        except NodeError as exc:
            node.env.logger.error("%s", exc, exc_info=exc.__cause__)
        except asyncio.TimeoutError:
            node.env.logger.error(
                "node '%s' did not finish %s within %s s", node.spec.name, phase, self._stop_timeout
            )

    async def _consume(self, node: RunningNode) -> None:
        while True:
            msg = await node.inbox.get()
            if isinstance(msg, CmdDelivery):
                try:
                    await start_cmd(node, msg, self._cmds, self._spawn)
                finally:
                    node.inbox.task_done()
                continue
            try:
                if node.stopping:
                    continue
                if isinstance(msg, AudioFrame):
                    await node.ext.on_audio_frame(node.env, msg)
                else:
                    await node.ext.on_data(node.env, msg)
            except Exception as exc:
                kind = "on_audio_frame" if isinstance(msg, AudioFrame) else "on_data"
                node.failures.record(kind, msg.get_name(), exc)
            finally:
                node.inbox.task_done()


async def run_graph(graph: Graph, **options: Any) -> GraphRunner:
    """Run ``graph`` until a node or a signal stops it, then tear it down.

    Cancelling the calling task (Ctrl-C under ``asyncio.run``) stops the graph cleanly.

    Args:
        graph: The graph to run.
        **options: Passed to :class:`GraphRunner`.

    Returns:
        The runner, closed, for inspection.
    """
    async with GraphRunner(graph, **options) as runner:
        await runner.wait_stopped()
    return runner
