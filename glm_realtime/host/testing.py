"""Helpers for testing nodes inside a real graph.

:class:`Probe` is a node that records every message it receives and lets a test wait
for a condition without sleeping. Put one in a graph next to the node under test,
wire it both ways, and drive the graph through ``runner.env("probe")``::

    registry = AddonRegistry()
    registry.add(Probe.as_addon())
    graph = load_graph(app, registry=registry)
    async with GraphRunner(graph) as runner:
        probe = runner.node("probe")
        assert isinstance(probe, Probe)
        await runner.env("probe").send_cmd(Cmd.create("flush"))
        await probe.wait_for(lambda p: len(p.frames) >= 10)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from .env import AsyncTenEnv
from .extension import Extension
from .messages import AudioFrame, Cmd, CmdResult, Data, Msg, StatusCode
from .registry import Addon

__all__ = ["Probe"]

_M = TypeVar("_M", bound=Msg)


class Probe(Extension):
    """Records what it receives; answers every command OK (detail ``"probe"``).

    Attributes:
        received: Every message in arrival order.
        cmds: Commands received.
        data: Data messages received.
        frames: Audio frames received.
        lifecycle: The lifecycle methods called so far, in order.
        started: Set once ``on_start`` ran.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.received: list[Msg] = []
        self.cmds: list[Cmd] = []
        self.data: list[Data] = []
        self.frames: list[AudioFrame] = []
        self.lifecycle: list[str] = []
        self.started = asyncio.Event()
        self._changed = asyncio.Condition()

    @classmethod
    def as_addon(cls, name: str = "probe") -> Addon:
        """Return an :class:`Addon` for this class (no declared properties)."""
        return Addon(name, cls, {"type": "extension", "name": name}, {}, origin="testing")

    async def wait_for(self, predicate: Callable[[Probe], bool]) -> None:
        """Wait until ``predicate(self)`` holds; re-checked after each message."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def _record(self, msg: _M, bucket: list[_M]) -> None:
        async with self._changed:
            self.received.append(msg)
            bucket.append(msg)
            self._changed.notify_all()

    async def on_init(self, env: AsyncTenEnv) -> None:
        self.lifecycle.append("on_init")

    async def on_start(self, env: AsyncTenEnv) -> None:
        self.lifecycle.append("on_start")
        self.started.set()

    async def on_stop(self, env: AsyncTenEnv) -> None:
        self.lifecycle.append("on_stop")

    async def on_deinit(self, env: AsyncTenEnv) -> None:
        self.lifecycle.append("on_deinit")

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        await self._record(cmd, self.cmds)
        result = CmdResult.create(StatusCode.OK)
        result.set_property_string("detail", "probe")
        await env.return_result(result, cmd)

    async def on_data(self, env: AsyncTenEnv, data: Data) -> None:
        await self._record(data, self.data)

    async def on_audio_frame(self, env: AsyncTenEnv, audio_frame: AudioFrame) -> None:
        await self._record(audio_frame, self.frames)
