"""One conversation with GLM-Realtime, with no graph runtime in sight.

States::

    IDLE -> CONNECTING -> READY -> (socket lost) BACKOFF -> CONNECTING -> ...
                                \\-> STOPPED (stop())    \\-> FAILED (fatal error, or
                                                               too many attempts)

The session owns the connection (one socket at a time), the uplink, the response
bookkeeping, chat memory, tools and metrics. It talks to its host only through a
:class:`SessionHandler`, so the same code runs in a TEN graph, the bundled graph host
or an evaluation server. Every task it starts is named, kept and cancelled by
:meth:`VoiceSession.stop`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import time
from collections.abc import Callable

from glm_realtime.backoff import Backoff
from glm_realtime.config import ExtensionConfig
from glm_realtime.handler import SessionHandler, SessionState, ToolOutcome
from glm_realtime.memory import ChatMemory, Role
from glm_realtime.responses import ResponseState, ResponseTracker
from glm_realtime.tool_calls import ToolCalls
from glm_realtime.uplink import AudioDump, Uplink
from realtime import events as ev
from realtime.audio import DownlinkDecoder, UplinkPacker
from realtime.connection import Connection, connect
from realtime.errors import (
    FATAL_SERVER_CODES,
    ConnectionClosed,
    Disposition,
    RealtimeError,
    ServerError,
    classify,
)
from realtime.session import FunctionTool

__all__ = ["SessionHandler", "SessionState", "ToolOutcome", "VoiceSession"]

logger = logging.getLogger(__name__)


class VoiceSession:
    """A GLM-Realtime conversation: connect, stream, answer, reconnect."""

    def __init__(
        self,
        config: ExtensionConfig,
        handler: SessionHandler,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.handler = handler
        self.clock = clock
        self.state = SessionState.IDLE
        self.memory = ChatMemory(config.max_history)
        self.session_id: str | None = None
        self.connections = 0
        self.uplink = Uplink(
            UplinkPacker(
                config.input_audio_format,
                wav_rate=config.input_sample_rate,
                packet_ms=config.packet_ms,
            ),
            config.disconnected_audio,
            config.disconnected_keep_ms,
        )
        self.dump = AudioDump(config.dump_path) if config.dump else None
        self._decoder = DownlinkDecoder(config.sample_rate)
        self._tools: dict[str, FunctionTool] = {}
        self._conn: Connection | None = None
        self._ready = False
        self._was_ready = False
        self._commit_pending = False
        self._history_text = ""
        self._send_lock = asyncio.Lock()
        self.responses = ResponseTracker(clock)
        self._users = 0
        self._greet_pending = False
        self._greeted = False
        self._run_task: asyncio.Task[None] | None = None
        self._tool_calls = ToolCalls(handler, config.tool_timeout_ms / 1000)
        self._changed = asyncio.Condition()

    # ----------------------------------------------------------------- lifecycle

    def _set_state(self, state: SessionState) -> None:
        if state is not self.state:
            logger.info("= session %s -> %s", self.state.value, state.value)
            self.state = state

    def start(self) -> None:
        """Start connecting in the background."""
        if self._run_task is None:
            self._run_task = asyncio.create_task(self._run(), name="glm-session:run")

    async def stop(self) -> None:
        """Cancel every task, close the socket and the dump files."""
        self._set_state(SessionState.STOPPED)
        if self._conn is not None:
            await self._conn.close(1000, "client stopped")
        await self._tool_calls.cancel()
        if self._run_task is not None:
            self._run_task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
        self._run_task = None
        if self.dump:
            self.dump.close()

    async def wait_finished(self) -> None:
        """Wait until the run loop ends (failure or stop)."""
        if self._run_task is not None:
            await asyncio.shield(self._run_task)

    def settled(self) -> bool:
        """No response in progress and no tool call waiting for its follow-up."""
        return self.responses.settled()

    async def wait_settled(self, min_responses: int = 1) -> None:
        """Wait until ``min_responses`` responses ended and the session is settled.

        A tool turn settles only after the response that answers with the tool's result.
        """
        async with self._changed:
            await self._changed.wait_for(
                lambda: (
                    self.responses.done_count >= min_responses
                    and self.settled()
                    or self.state in (SessionState.FAILED, SessionState.STOPPED)
                )
            )

    async def wait_ready(self) -> None:
        """Wait until a session is configured (or the session has ended)."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._ready or self.state in (SessionState.FAILED, SessionState.STOPPED)
            )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @property
    def ready(self) -> bool:
        """A session is configured and audio flows."""
        return self._ready

    # ------------------------------------------------------------------- inputs

    async def push_audio(self, pcm: bytes, sample_rate: int) -> None:
        """User audio of any rate; packed and sent, or held while reconnecting."""
        if self.dump:
            self.dump.write("user", pcm, sample_rate)
        await self._send_packets(self.uplink.pack(pcm, sample_rate))

    async def push_video_frame(self, jpeg: bytes) -> None:
        """A JPEG frame for ``video_passive`` chat mode (dropped while disconnected)."""
        if self._conn is not None and self._ready:
            frame = base64.b64encode(jpeg).decode()
            await self._send(ev.InputAudioBufferAppendVideoFrame(video_frame=frame))

    async def interrupt(self) -> None:
        """The user barged in: stop playback and cancel the response in progress."""
        await self.handler.send_flush()
        response = self.responses.interrupt()
        if response is None:
            return
        await self._send(ev.ResponseCancel())
        partial = response.splitter.finish()
        await self.handler.send_transcript(f"{partial}[interrupted]", "assistant", True)
        await self._remember("assistant", f"{response.text} [interrupted]")

    async def end_user_turn(self) -> None:
        """A ``flush`` from upstream: barge-in, and under client VAD also the turn's end.

        Client VAD commits the audio and asks for a response; server VAD decides turns
        itself, so there it is only an interruption.
        """
        await self.interrupt()
        if self.config.server_vad:
            return
        await self._send_packets(self.uplink.packer.flush())
        self.responses.turn_ended()
        if self._ready:
            await self._commit_turn()
        else:
            # The held audio goes out when a session is ready; its commit must follow it.
            self._commit_pending = True

    async def _commit_turn(self) -> None:
        self._commit_pending = False
        await self._send(ev.InputAudioBufferCommit())
        await self._request_response()

    async def _request_response(self) -> None:
        self.responses.requested()
        await self._send(ev.ResponseCreate())

    async def user_joined(self) -> None:
        """Count a user; the first one gets the greeting (once per extension life)."""
        self._users += 1
        if self._users == 1 and self.config.greeting and not self._greeted:
            self._greet_pending = True
            if self._ready:
                await self._update_session()

    def user_left(self) -> None:
        """Count a user out."""
        self._users = max(0, self._users - 1)

    @property
    def users(self) -> int:
        """Users present."""
        return self._users

    @property
    def tools(self) -> list[FunctionTool]:
        """Registered tools, in registration order."""
        return list(self._tools.values())

    async def register_tool(self, tool: FunctionTool) -> None:
        """Add or replace a tool (by name) and update the live session."""
        self._tools[tool.name] = tool
        if self._ready:
            await self._update_session()

    def load_history(self, records: list[dict[str, object]]) -> int:
        """Seed memory from storage; it reaches GLM through the next session's instructions."""
        return self.memory.load(records)

    # ------------------------------------------------------------- connection loop

    async def _run(self) -> None:
        cfg = self.config
        backoff = Backoff(cfg.reconnect_base_delay_ms / 1000, cfg.reconnect_max_delay_ms / 1000)
        failures = 0
        while True:
            self._set_state(SessionState.CONNECTING)
            error: BaseException | None = None
            try:
                await self._serve()
            except (RealtimeError, OSError) as exc:
                error = exc
            if self.state is SessionState.STOPPED:
                return
            if self._was_ready:  # a good session: a later failure starts from scratch
                backoff.reset()
                failures = 0
            if error is not None and classify(error) is Disposition.FATAL:
                await self._fail(error, f"fatal: {error}")
                return
            failures += 1
            if failures > cfg.max_reconnect_attempts:
                reason = f"gave up after {failures} failed connection(s); last: {error}"
                await self._fail(error, reason)
                return
            delay = backoff.next_delay()
            cause = str(error) if error else "server closed the connection"
            logger.warning("! connection lost (%s); reconnecting in %.2f s", cause, delay)
            self._set_state(SessionState.BACKOFF)
            await asyncio.sleep(delay)

    async def _fail(self, error: BaseException | None, reason: str) -> None:
        self._set_state(SessionState.FAILED)
        await self._notify()
        code = getattr(error, "code", None) or getattr(error, "status", None)
        logger.error("! %s", reason)
        await self.handler.send_error(None if code is None else str(code), reason, True)

    async def _serve(self) -> None:
        cfg = self.config
        self._was_ready = False
        started = self.clock()
        jwt = cfg.auth == "jwt"
        async with connect(
            cfg.url,
            api_key=None if jwt else cfg.api_key,
            jwt_secret=cfg.api_key if jwt else None,
            idle_timeout=cfg.heartbeat_timeout_ms / 1000,
        ) as conn:
            self.connections += 1
            self._conn = conn
            await self.handler.send_metrics(
                {
                    "kind": "connect",
                    "connect_ms": round((self.clock() - started) * 1000, 1),
                    "connection": self.connections,
                }
            )
            try:
                async for event in conn:
                    await self._dispatch(event)
            finally:
                await self._connection_lost()

    async def _connection_lost(self) -> None:
        self._conn = None
        self._ready = False
        response = self.responses.connection_lost()
        if response is not None:
            # The reply was cut by the network: close its segment, keep what was said.
            await self.handler.send_transcript(response.splitter.finish(), "assistant", True)
            await self._remember("assistant", response.text)

    # ---------------------------------------------------------------- dispatching

    async def _dispatch(self, event: ev.ServerEvent) -> None:
        match event:
            case ev.Heartbeat() | ev.SessionUpdated() | ev.ConversationCreated():
                pass
            case ev.SessionCreated():
                await self._on_session_created(event)
            case ev.ErrorEvent():
                await self._on_error(event.error)
            case ev.InputAudioBufferSpeechStarted():
                if self.config.server_vad:
                    await self.interrupt()
            case ev.InputAudioBufferSpeechStopped():
                self.responses.turn_ended()
            case ev.InputAudioTranscriptionCompleted():
                await self._on_user_transcript(event.transcript)
            case ev.InputAudioTranscriptionFailed():
                logger.warning("! user transcription failed: %s", event.error)
            case ev.ResponseCreated():
                self.responses.created(event.response.id)
            case ev.ResponseAudioDelta():
                await self._on_audio_delta(event)
            case ev.ResponseAudioTranscriptDelta() | ev.ResponseTextDelta():
                await self._on_text_delta(event.response_id, event.delta)
            case ev.ResponseAudioTranscriptDone():
                self._final_text(event.response_id, event.transcript)
            case ev.ResponseTextDone():
                self._final_text(event.response_id, event.text)
            case ev.ResponseFunctionCallArgumentsDone():
                self._on_function_call(event)
            case ev.ResponseDone():
                await self._on_response_done(event.response)
            case ev.ResponseFunctionCallSimpleBrowser():
                logger.info("= GLM searches the web (%s)", event.filler or "no filler line")
            case ev.InvalidEvent():
                logger.warning("! ignoring malformed server frame: %s", event.reason)
            case _:
                logger.debug("= not handled: %s", ev.describe(event))

    async def _on_session_created(self, event: ev.SessionCreated) -> None:
        self.session_id = event.session.id
        self._history_text = self.memory.render()
        await self._update_session()
        async with self._send_lock:
            # Under the lock, so held audio goes out before any newer frame.
            self._ready = self._was_ready = True
            await self._send_packets_locked(self.uplink.take_backlog())
        self._set_state(SessionState.READY)
        await self._notify()
        if self._commit_pending:
            await self._commit_turn()

    async def _update_session(self) -> None:
        greet = self._greet_pending and not self._greeted
        session = self.config.session_config(
            tuple(self._tools.values()), self._history_text, greet=greet
        )
        await self._send(ev.SessionUpdate(session=session))
        if greet:
            self._greeted, self._greet_pending = True, False

    async def _on_error(self, error: ev.ErrorDetail) -> None:
        if error.code in FATAL_SERVER_CODES:
            raise ServerError(error.code, error.message, error.type)
        logger.warning("! server error %s: %s", error.code, error.message)
        await self.handler.send_error(error.code, error.message, False)

    async def _on_user_transcript(self, text: str) -> None:
        if not text.strip():
            return
        if self.config.input_transcript:
            await self.handler.send_transcript(text, "user", True)
        await self._remember("user", text)

    async def _on_audio_delta(self, event: ev.ResponseAudioDelta) -> None:
        response = self.responses.get(event.response_id)
        if response is None or not self.config.audio_out:
            return
        pcm = self._decoder.decode(event.delta)
        if response.first_audio_at is None:
            response.first_audio_at = self.clock()
        response.audio_samples += len(pcm) // 2
        if self.dump:
            self.dump.write("assistant", pcm, self.config.sample_rate)
        if pcm:
            await self.handler.send_audio(pcm, self.config.sample_rate)

    async def _on_text_delta(self, response_id: str | None, delta: str) -> None:
        response = self.responses.get(response_id)
        if response is None:
            return
        if response.first_text_at is None:
            response.first_text_at = self.clock()
        for sentence in response.splitter.feed(delta):
            await self.handler.send_transcript(sentence, "assistant", False)

    def _final_text(self, response_id: str | None, text: str) -> None:
        response = self.responses.get(response_id)
        if response is not None and text:
            response.final_transcript = text

    async def _on_response_done(self, info: ev.ResponseInfo) -> None:
        response = self.responses.finish(info.id)
        if not response.interrupted:
            await self.handler.send_transcript(response.splitter.finish(), "assistant", True)
            await self._remember("assistant", response.text)
        await self.handler.send_metrics(
            response.metrics(self.clock(), info.status, info.usage, self.config.sample_rate)
        )
        await self._maybe_follow_up(response)
        await self._notify()

    # ---------------------------------------------------------------------- tools

    def _on_function_call(self, event: ev.ResponseFunctionCallArgumentsDone) -> None:
        response = self.responses.get(event.response_id)
        if response is None:
            logger.info("= dropping tool call %s of an interrupted response", event.name)
            return
        response.called_tools += 1
        response.pending_tools += 1
        answer = functools.partial(self._tool_answered, response, event, self._conn)
        self._tool_calls.start(event.name, event.arguments, answer)

    async def _tool_answered(
        self,
        response: ResponseState,
        event: ev.ResponseFunctionCallArgumentsDone,
        conn: Connection | None,
        outcome: ToolOutcome,
    ) -> None:
        response.pending_tools -= 1
        if conn is None or conn is not self._conn:
            logger.warning("! connection changed during tool %s; its output is dropped", event.name)
            return
        item = ev.ItemParam.function_call_output(outcome.output, event.call_id)
        await self._send(ev.ConversationItemCreate(item=item))
        await self._maybe_follow_up(response)

    async def _maybe_follow_up(self, response: ResponseState) -> None:
        # One response.create after every output of the response is in: several would
        # race into "conversation already has an active response".
        if self.responses.follow_up_due(response):
            await self._send(ev.ResponseCreate())

    # ---------------------------------------------------------------------- sending

    async def _remember(self, role: Role, text: str) -> None:
        turn = self.memory.put(role, text)
        if turn is not None and self.config.enable_storage:
            await self.handler.append_history(turn.role, turn.content)

    async def _send(self, event: ev.ClientEventBase) -> None:
        conn = self._conn
        if conn is None:
            logger.debug("= not connected; dropping %s", ev.describe(event))
            return
        try:
            await conn.send(event)
        except ConnectionClosed as exc:
            # The receive loop sees the close too and reconnects.
            logger.info("= send of %s failed: %s", ev.describe(event), exc)

    async def _send_packets(self, packets: list[bytes]) -> None:
        if packets:
            async with self._send_lock:
                await self._send_packets_locked(packets)

    async def _send_packets_locked(self, packets: list[bytes]) -> None:
        conn = self._conn if self._ready else None
        for index, packet in enumerate(packets):
            if conn is None:
                self.uplink.hold(packets[index:])
                return
            try:
                await conn.send_audio(packet)
            except ConnectionClosed:
                self.uplink.hold(packets[index:])
                return
