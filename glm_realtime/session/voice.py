"""One conversation with GLM-Realtime, with no graph runtime in sight: the session's shell.

:class:`VoiceSession` runs the owner task (``glm-session:owner``) that takes the inbox
(:mod:`.inbox`) item by item, lets the :class:`~.conversation.Conversation` decide, and
carries out its effects in order: client events and uplink packets on the live socket,
outputs through the :class:`~.outbox.Outbox` to the host, tool calls, sockets, timers.
Its public methods only enqueue, so the host's cmds, audio and the socket reader never
touch state. Tasks (all named, kept and cancelled by :meth:`VoiceSession.stop`)::

    glm-session:owner        the only task that changes state
    glm-session:outbox       hands outputs to the SessionHandler, oldest first
    glm-session:link#<gen>   one per socket: connect, read events into the inbox
    glm-session:tool:<name>#<seq>   one per tool call in flight

``stop()`` returns within about a second even when the peer never answers the closing
handshake, and wakes every waiter (:meth:`wait_ready`, :meth:`wait_settled`,
:meth:`wait_finished`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from realtime import events as ev
from realtime.compat import TIMEOUT_ERRORS
from realtime.connection import Connection, connect
from realtime.errors import ConnectionClosed, RealtimeError
from realtime.session import FunctionTool

from ..config import ExtensionConfig
from .conversation import Conversation
from .effects import CallTool, CloseSocket, Connect, Effect, Schedule, Send, SendAudio
from .handler import SessionHandler, SessionState
from .inbox import (
    AudioIn,
    Connected,
    Disconnected,
    FlushCmd,
    Inbox,
    RegisterTool,
    ServerEventIn,
    StopCmd,
    TimerFired,
    ToolResult,
    UserJoined,
    UserLeft,
    VideoIn,
)
from .memory import ChatMemory
from .outbox import AudioOut, Outbox
from .tool_calls import run_tool
from .uplink import AudioDump

__all__ = ["VoiceSession"]

logger = logging.getLogger(__name__)

# stop(): the owner gets this long to close the socket (the closing handshake is cut at
# CLOSE_TIMEOUT_S), then the outbox gets OUTBOX_DRAIN_S to hand over what is queued.
CLOSE_TIMEOUT_S = 0.5
STOP_OWNER_S = 0.75
OUTBOX_DRAIN_S = 0.25


class VoiceSession:
    """A GLM-Realtime conversation: connect, stream, answer, reconnect (one owner task)."""

    def __init__(
        self,
        config: ExtensionConfig,
        handler: SessionHandler,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.handler = handler
        self.core = Conversation(config, clock)
        self.outbox = Outbox(handler, on_idle=self._notify)
        self.dump = AudioDump(config.dump_path) if config.dump else None
        self._inbox = Inbox()
        self._conn: Connection | None = None
        self._conn_gen: int | None = None
        self._owner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------- views

    @property
    def state(self) -> SessionState:
        """Where the session is in its life."""
        return self.core.state

    @property
    def failure(self) -> BaseException | None:
        """The error that made the session FAILED (None if none did, or not failed)."""
        return self.core.failure

    @property
    def ready(self) -> bool:
        """A session is configured and audio flows."""
        return self.core.ready

    @property
    def memory(self) -> ChatMemory:
        """The chat memory (both roles)."""
        return self.core.memory

    @property
    def session_id(self) -> str | None:
        """GLM's id of the current session."""
        return self.core.session_id

    @property
    def connections(self) -> int:
        """Sockets opened so far."""
        return self.core.connections

    @property
    def users(self) -> int:
        """Users present."""
        return self.core.setup.users

    @property
    def tools(self) -> list[FunctionTool]:
        """Registered tools, in registration order."""
        return list(self.core.setup.tools.values())

    def settled(self) -> bool:
        """Nothing in progress or owed, and every output handed to the host."""
        return self.core.settled() and self.outbox.idle()

    # --------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start connecting in the background."""
        if self._owner is None:
            self._owner = asyncio.create_task(self._own(), name="glm-session:owner")
            self._spawn(self.outbox.run(), "glm-session:outbox")

    async def stop(self) -> None:
        """End the conversation: close the socket, cancel every task, close the dumps."""
        owner = self._owner
        if owner is not None and not owner.done():
            self._inbox.put_control(StopCmd())
            with contextlib.suppress(*TIMEOUT_ERRORS):
                await asyncio.wait_for(asyncio.shield(owner), STOP_OWNER_S)
        if not self.core.ended:  # never started, or the owner is stuck on a socket
            self.core.handle(StopCmd())
        if not self.outbox.idle():
            with contextlib.suppress(*TIMEOUT_ERRORS):
                await asyncio.wait_for(self.outbox.wait_idle(), OUTBOX_DRAIN_S)
        self._inbox.close()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = [*self._tasks, *([owner] if owner is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._conn = None
        if self.dump:
            self.dump.close()
        self._notify()

    async def wait_finished(self) -> None:
        """Wait until the session stopped or failed."""
        await self._wait(lambda: self.core.ended)

    async def wait_ready(self) -> None:
        """Wait until a session is configured (or the session has ended)."""
        await self._wait(lambda: self.core.ready or self.core.ended)

    async def wait_settled(self, min_responses: int = 1) -> None:
        """Wait until ``min_responses`` responses ended and the session is settled.

        A tool turn settles only after the response that answers with the tool's result.
        """
        await self._wait(
            lambda: (
                self.core.responses.done_count >= min_responses
                and self.settled()
                or self.core.ended
            )
        )

    async def wait_answered(self, min_answers: int = 1) -> None:
        """Wait until ``min_answers`` responses to the user's speech ended and the session
        is settled: a greeting (or any response the user did not ask for) does not count."""
        await self._wait(
            lambda: (
                self.core.responses.answered_count >= min_answers
                and self.settled()
                or self.core.ended
            )
        )

    async def _wait(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ------------------------------------------------------------------ inputs

    async def push_audio(self, pcm: bytes, sample_rate: int) -> None:
        """User audio of any rate (waits while the inbox is full)."""
        await self._inbox.put(AudioIn(pcm, sample_rate))

    async def push_video_frame(self, jpeg: bytes) -> None:
        """A JPEG frame for ``video_passive`` chat mode (dropped while disconnected)."""
        await self._inbox.put(VideoIn(jpeg))

    def end_user_turn(self) -> None:
        """A ``flush`` from upstream: barge-in, and under client VAD also the turn's end."""
        self._inbox.put_control(FlushCmd())

    def user_joined(self) -> None:
        """Count a user; the first one gets the greeting (once per session life)."""
        self._inbox.put_control(UserJoined())

    def user_left(self) -> None:
        """Count a user out."""
        self._inbox.put_control(UserLeft())

    def register_tool(self, tool: FunctionTool) -> None:
        """Add or replace a tool (by name); the live session is updated."""
        self._inbox.put_control(RegisterTool(tool))

    def load_history(self, records: list[dict[str, object]]) -> int:
        """Seed memory from storage, before :meth:`start`; it reaches GLM in the instructions."""
        if self._owner is not None:
            raise RuntimeError("load_history() is for before start()")
        return self.core.memory.load(records)

    # ------------------------------------------------------------------- owner

    async def _own(self) -> None:
        try:
            await self._apply(self.core.start())
            while not self.core.ended:
                item = await self._inbox.get()
                match item:
                    case Connected(gen=gen, conn=conn) if gen == self.core.live_gen:
                        self._conn, self._conn_gen = conn, gen
                    case AudioIn(pcm=pcm, sample_rate=rate) if self.dump:
                        self.dump.write("user", pcm, rate)
                await self._apply(self.core.handle(item))
                if self.core.live_gen != self._conn_gen:
                    self._conn = self._conn_gen = None
                self._notify()
        finally:
            self._inbox.close()
            self._notify()

    async def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(event=event):
                    await self._send(event)
                case SendAudio(packets=packets):
                    await self._send_audio(packets)
                case CallTool(seq=seq, name=name, arguments=arguments):
                    coro = self._call_tool(seq, name, arguments)
                    self._spawn(coro, f"glm-session:tool:{name}#{seq}")
                case Connect(gen=gen):
                    self._spawn(self._link(gen), f"glm-session:link#{gen}")
                case CloseSocket(code=code, reason=reason):
                    await self._close(code, reason)
                case Schedule(kind=kind, gen=gen, delay_s=delay_s):
                    self._schedule(TimerFired(kind, gen), delay_s)
                case AudioOut(pcm=pcm, sample_rate=rate):
                    if self.dump:
                        self.dump.write("assistant", pcm, rate)
                    self.outbox.put(effect)
                case _:
                    self.outbox.put(effect)

    async def _send(self, event: ev.ClientEventBase) -> None:
        conn = self._conn
        if conn is None:
            logger.debug("= not connected; dropping %s", ev.describe(event))
            return
        try:
            await conn.send(event)
        except ConnectionClosed as exc:
            # The reader sees the close too and reports it through the inbox.
            logger.info("= send of %s failed: %s", ev.describe(event), exc)

    async def _send_audio(self, packets: list[bytes]) -> None:
        for index, packet in enumerate(packets):
            conn = self._conn
            if conn is None:
                self.core.hold_audio(packets[index:])
                return
            try:
                await conn.send_audio(packet)
            except ConnectionClosed:
                self.core.hold_audio(packets[index:])
                return

    async def _close(self, code: int, reason: str) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Bounded by the connection's close_timeout; a peer that never answers the
            # closing handshake has its TCP connection dropped.
            with contextlib.suppress(RealtimeError, OSError):
                await conn.close(code, reason)

    def _schedule(self, item: TimerFired, delay_s: float) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            self._inbox.put_control(item)

        handle = asyncio.get_running_loop().call_later(delay_s, fire)
        self._timers.add(handle)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ helper tasks

    async def _link(self, gen: int) -> None:
        cfg = self.config
        error: BaseException | None = None
        try:
            async with connect(
                cfg.url,
                api_key=cfg.api_key if cfg.auth == "api_key" else None,
                jwt_secret=cfg.api_key if cfg.auth == "jwt" else None,
                unauthenticated=cfg.auth == "none",
                idle_timeout=cfg.heartbeat_timeout_ms / 1000,
                close_timeout=CLOSE_TIMEOUT_S,
            ) as conn:
                self._inbox.put_control(Connected(gen, conn, conn.handshake_s * 1000))
                async for event in conn:
                    await self._inbox.put(ServerEventIn(gen, event))
        except (RealtimeError, OSError) as exc:
            error = exc
        self._inbox.put_control(Disconnected(gen, error))

    async def _call_tool(self, seq: int, name: str, arguments: str) -> None:
        outcome = await run_tool(self.handler, name, arguments, self.config.tool_timeout_ms / 1000)
        self._inbox.put_control(ToolResult(seq, outcome))
