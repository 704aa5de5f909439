"""One live call as a graph on the host: caller, ``glm_v2v_python`` node, world, collector.

::

    caller --pcm_frame, on_user_joined/left--> glm --pcm_frame, text_data, metrics,
      (gym_caller)                              |     error, flush--> collector
                                                |                     (gym_collector)
                        world <--tool_call------+
                    (gym_world) --tool_register-->

:func:`build_graph` makes the graph for a scenario on a backend; :class:`Call` runs it:
started by :meth:`Call.start`, stopped by :meth:`Call.aclose` (graph stopped, session
closed, session slot given back, every task cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from functools import cache
from typing import Any

from glm_gym.backends import Backend
from glm_gym.caller import CallerNode
from glm_gym.collector import Collector, Reply, UserText
from glm_gym.scenarios import Scenario
from glm_gym.world import World, WorldNode
from glm_realtime.host import AddonRegistry, Graph, GraphRunner, default_registry, parse_graph

__all__ = ["VAD_SILENCE_MS", "Call", "build_graph", "call_length_ms", "said_by_turn"]

VAD_SILENCE_MS = 500
"""Server VAD end-of-turn silence the conversations use."""
DEFAULT_PROMPT = "You are a concise, friendly voice assistant. Use the tools you are given."


@cache
def _registry() -> AddonRegistry:
    registry = AddonRegistry(include_decorated=False)
    import glm_realtime.extension  # noqa: F401 - registers glm_v2v_python

    registry.add(default_registry().get("glm_v2v_python"))
    for node in (CallerNode, WorldNode, Collector):
        registry.add(node.as_addon())
    return registry


def build_graph(scenario: Scenario, backend: Backend) -> Graph:
    """The graph of one call of ``scenario`` on ``backend``."""
    glm: dict[str, Any] = {
        **backend.node_properties(),
        "prompt": scenario.instructions or DEFAULT_PROMPT,
        "greeting": scenario.greeting,
        "vad_silence_duration_ms": VAD_SILENCE_MS,
        "disconnected_keep_ms": 60_000,  # audio sent before the session is ready waits
        "max_reconnect_attempts": 2,
        "reconnect_base_delay_ms": 200,
        "reconnect_max_delay_ms": 1000,
    }
    definition = {
        "name": f"gym:{scenario.id}",
        "nodes": [
            {"type": "extension", "name": "glm", "addon": "glm_v2v_python", "property": glm},
            {"type": "extension", "name": "world", "addon": "gym_world"},
            {"type": "extension", "name": "caller", "addon": "gym_caller"},
            {"type": "extension", "name": "collector", "addon": "gym_collector"},
        ],
        "connections": [
            {
                "extension": "caller",
                "cmd": [
                    {"name": "on_user_joined", "dest": [{"extension": "glm"}]},
                    {"name": "on_user_left", "dest": [{"extension": "glm"}]},
                ],
                "audio_frame": [{"name": "pcm_frame", "dest": [{"extension": "glm"}]}],
            },
            {
                "extension": "glm",
                "cmd": [
                    {"name": "flush", "dest": [{"extension": "collector"}]},
                    {"name": "tool_call", "dest": [{"extension": "world"}]},
                ],
                "data": [
                    {"name": name, "dest": [{"extension": "collector"}]}
                    for name in ("text_data", "metrics", "error")
                ],
                "audio_frame": [{"name": "pcm_frame", "dest": [{"extension": "collector"}]}],
            },
            {
                "extension": "world",
                "cmd": [{"name": "tool_register", "dest": [{"extension": "glm"}]}],
            },
        ],
    }
    return parse_graph(definition, registry=_registry(), environ={})


class Call:
    """The running graph of one conversation and the backend slot it holds."""

    def __init__(self, scenario: Scenario, backend: Backend) -> None:
        self.scenario = scenario
        self.backend = backend
        self.runner = GraphRunner(build_graph(scenario, backend), stop_timeout=5.0)
        caller = self.runner.node("caller")
        collector = self.runner.node("collector")
        world_node = self.runner.node("world")
        assert isinstance(caller, CallerNode)
        assert isinstance(collector, Collector)
        assert isinstance(world_node, WorldNode)
        caller.realtime = not backend.virtual_clock
        collector.clock = caller.now_ms
        self.world = World(scenario, clock=caller.now_ms)
        world_node.world = self.world
        self.caller = caller
        self.collector = collector
        self.world_node = world_node
        self._stack = contextlib.AsyncExitStack()
        self._closing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take a session slot (may wait in line), then start the graph."""
        try:
            await self._stack.enter_async_context(self.backend.session())
            await self.runner.start()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop the graph (closing the session) and give the slot back; idempotent.

        The teardown is a task of its own that runs to its end even when the task awaiting
        it is cancelled (which then gets its ``CancelledError`` after it): a graph stopped
        halfway would keep its tasks, its socket and its session slot.
        """
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(
                self._teardown(), name=f"gym-call-close:{self.scenario.id}"
            )
        cancelled = False
        while not self._closing.done():
            try:
                await asyncio.shield(self._closing)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        self._closing.result()

    async def _teardown(self) -> None:
        try:
            await self.runner.aclose(drain=False)
        finally:
            await self._stack.aclose()


def said_by_turn(collector: Collector, line_turns: Sequence[int]) -> dict[int, str]:
    """The assistant's words per caller turn they answer (0: before the caller spoke).

    The backend hears the lines in order, so its k-th transcript is of the k-th line and a
    reply answers the transcript before it, however late it comes (after a turn timeout
    it arrives during a later step).
    """
    events: list[tuple[int, UserText | Reply]] = [(u.seq, u) for u in collector.user_texts]
    events += [(r.seq, r) for r in collector.replies]
    if collector.current is not None:  # the words so far of a reply still speaking
        events.append((collector.current.seq, collector.current))
    said: dict[int, list[str]] = {}
    heard, turn = 0, 0
    for _, event in sorted(events, key=lambda e: e[0]):
        if isinstance(event, UserText):
            if line_turns:
                turn = line_turns[min(heard, len(line_turns) - 1)]
            heard += 1
        elif event.text:
            said.setdefault(turn, []).append(event.text)
    return {t: " ".join(words) for t, words in said.items()}


def call_length_ms(call: Call) -> float:
    """How long the call has lasted on its clock, the assistant's audio still playing
    included (the audio seconds a throughput figure counts)."""
    ends = [call.caller.now_ms()]
    ends += [r.playback_end_ms for r in call.collector.replies if r.playback_end_ms is not None]
    return round(max(ends), 1)
