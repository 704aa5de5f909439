"""One GLM-Realtime connection of the embedded backend.

Every client frame goes through one queue and one consumer task, so events take effect
in the order they were sent (a commit after its appends, a cancel after the response it
cancels was requested). CPU work (audio decoding, VAD, ASR) runs in worker threads
(:class:`~glm_local.threads.BlockingWork`), one call at a time per session, so the event
loop, the heartbeats and the other sessions never wait for it. A response runs in its own task
(:mod:`glm_local.responder`) while the consumer goes on reading audio, so the user can
speak over it. An unexpected exception closes only this session, with 1011.

Client frames are read leniently, the way GLM reads them (:mod:`realtime.wire`): ``null``
is "not given", unknown fields are ignored, the SDKs' placeholders mean the default, and
a session starts as the spec says an empty one is (client VAD). What the spec forbids gets
an ``error`` event naming every field at fault. Video frames are counted, not seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from glm_local.engine import GREETING, Reply, ReplyEngine, ToolResult
from glm_local.inbox import Inbox
from glm_local.input_audio import InvalidAudio
from glm_local.items import ConversationLog
from glm_local.lag import LAG_REPORT_S, AudioClock
from glm_local.listener import Listener, VadParams
from glm_local.responder import Responder, UnknownCall, new_id
from glm_local.speech.asr_processes import WorkerDied
from glm_local.threads import BlockingWork
from realtime import events as ev
from realtime.session import SessionConfig

if TYPE_CHECKING:
    from glm_local.speech import Recognizer, Synthesizer

__all__ = ["LocalSession", "SessionResources"]

logger = logging.getLogger(__name__)

_VAD_DEFAULTS = (0.5, 300, 500)  # threshold, prefix_padding_ms, silence_duration_ms


@dataclass(frozen=True)
class SessionResources:
    """What all sessions of one server share (each is safe to use from many threads)."""

    new_recognizer: Callable[[], Recognizer]
    """Makes one session's recogniser (blocking; in this process or an ASR worker)."""
    blocking: BlockingWork
    """The threads the sessions' blocking calls run on."""
    synthesizer: Synthesizer
    engine: ReplyEngine
    pace: float
    heartbeat_s: float
    idle_timeout_s: float | None
    """Close a connection that sent nothing and was sent nothing but heartbeats this long."""
    read_ahead_bytes: int
    report_lag: Callable[[str, float], None]
    """Called (session id, lag s) once a session runs LAG_REPORT_S behind its audio."""


class LocalSession:
    """Serves one websocket until it closes. Made by the server, not directly."""

    def __init__(self, ws: ServerConnection, resources: SessionResources) -> None:
        self.id = new_id("sess")
        self._ws = ws
        self._res = resources
        self.config = SessionConfig.read({})  # what the spec says no session.update means
        self._listener = Listener(resources.new_recognizer, self.config.input_audio_format)
        self._speech_item: str | None = None
        self._log = ConversationLog()
        self._responder = Responder(
            self._send,
            self._spawn,
            engine=resources.engine,
            synthesizer=resources.synthesizer,
            blocking=resources.blocking,
            pace=resources.pace,
            remember=self._log.remember,
            split=_split,
        )
        self._greeted = False
        self.inbox = Inbox(resources.read_ahead_bytes)
        self.clock = AudioClock()
        self._frame_at = 0.0  # when the frame being handled arrived
        self._active_at = 0.0  # when the last event other than a heartbeat was sent
        self._tasks: set[asyncio.Task[None]] = set()
        self.speech_stopped_at: float | None = None
        self.video_frames = 0
        """``input_audio_buffer.append_video_frame`` events received (the engine is blind)."""

    # ------------------------------------------------------------------ lifecycle

    async def serve(self) -> None:
        """Greet, then serve until the socket closes or the session fails; stops its tasks.

        Then :meth:`release` frees what it holds: the server counts the session as over
        (for admission) in between, so a caller's next session need not wait for it.
        """
        try:
            await self._send(ev.Heartbeat(type="heartbeat"))
            await self._send(ev.SessionCreated(type="session.created", session=self._info()))
            self._spawn(self._heartbeats(), "heartbeat")
            if self._res.idle_timeout_s is not None:
                self._spawn(self._close_when_idle(self._res.idle_timeout_s), "idle")
            reader = self._spawn(self.inbox.read(self._ws), "reader")
            tasks = [reader, self._spawn(self._consume(), "consumer")]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._stop_tasks()

    async def release(self) -> None:
        """Free the recogniser (after :meth:`serve`)."""
        await self._res.blocking.run(self._listener.close)

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"glm-local:{self.id}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def _stop_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._res.heartbeat_s)
            await self._send(ev.Heartbeat(type="heartbeat"))

    async def _close_when_idle(self, limit: float) -> None:
        """Close the connection once neither side has said anything for ``limit`` s."""
        while True:
            wait = max(self.inbox.heard_at, self._active_at) + limit - time.monotonic()
            # Frames still waiting, or a reply being made: the connection is not idle.
            if wait > 0 or len(self.inbox) or self._responder.active is not None:
                await asyncio.sleep(wait if wait > 0 else limit)
                continue
            logger.info("session %s: idle for %g s; closing it", self.id, limit)
            await self._error("idle_timeout", f"nothing received for {limit:g} s; closing")
            await self._ws.close(1000, "idle timeout")
            return

    async def _consume(self) -> None:
        try:
            await self._res.blocking.run(self._listener.load)
            await self._configure_vad()
            while True:
                frame, self._frame_at = await self.inbox.get()
                await self._handle(frame)
        except WorkerDied as exc:  # the recogniser's process is gone: so is this session
            logger.warning("session %s: %s; closing it", self.id, exc)
            await self._error(
                "server_error", f"speech recognition stopped: {exc}; start a new session"
            )
            await self._ws.close(1011, "ASR worker gone")
        except Exception:
            logger.exception("session %s failed; closing it", self.id)
            await self._error("server_error", "internal error in the local backend")
            await self._ws.close(1011, "internal error")

    # ------------------------------------------------------------------ sending

    async def _send(self, event: ev.ServerEventBase) -> None:
        event.event_id = new_id("event")
        if not isinstance(event, ev.Heartbeat):
            self._active_at = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(event.model_dump_json(exclude_none=True))

    async def _error(self, code: str, message: str, event_id: str | None = None) -> None:
        logger.info("session %s: error %s: %s", self.id, code, message)
        detail = ev.ErrorDetail(
            type="invalid_request_error", code=code, message=message, event_id=event_id
        )
        await self._send(ev.ErrorEvent(type="error", error=detail))

    def _info(self) -> ev.SessionInfo:
        return ev.SessionInfo(id=self.id, **self.config.to_wire())

    # ------------------------------------------------------------------ dispatch

    async def _handle(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self._error("invalid_event", f"binary frame of {len(frame)} bytes; send JSON")
            return
        event = ev.parse_client_event(frame)
        match event:
            case ev.InvalidEvent():
                reason = f"{event.type or 'event'}: {event.reason}"
                await self._error("invalid_event", reason, event.event_id)
            case ev.UnknownEvent():
                await self._error(
                    "invalid_event", f"unknown event type {event.type!r}", event.event_id
                )
            case ev.InputAudioBufferAppend():
                await self._append(event.audio, event.event_id)
            case ev.SessionUpdate():
                await self._update(event.session)
            case ev.InputAudioBufferCommit():
                await self._commit(event.event_id)
            case ev.InputAudioBufferClear():
                await self._clear()
            case ev.ConversationItemCreate():
                await self._create_item(event.item, event.event_id)
            case ev.ResponseCreate():
                await self._request_response(event.event_id)
            case ev.ResponseCancel():
                if not await self._responder.abort():
                    await self._error(
                        "response_cancel_not_active",
                        "response.cancel: there is no response in progress",
                        event.event_id,
                    )
            case ev.InputAudioBufferAppendVideoFrame():
                self.video_frames += 1
                logger.debug("session %s: video frame of %d chars", self.id, len(event.video_frame))
            case ev.InputAudioBufferPreCommit():
                pass
            case _:
                await self._error(
                    "unsupported_event",
                    f"{event.type} is not supported by the local backend",
                    event.event_id,
                )

    # ------------------------------------------------------------------ session

    async def _update(self, session: SessionConfig) -> None:
        old, self.config = self.config, session
        self._listener.set_format(session.input_audio_format)
        if session.turn_detection.type != old.turn_detection.type:
            await self._res.blocking.run(self._listener.abort)
            self._speech_item = None
        await self._configure_vad()
        await self._send(ev.SessionUpdated(type="session.updated", session=self._info()))
        greeting = session.greeting_config
        if greeting is not None and greeting.enable and not self._greeted:
            self._greeted = True
            content = (greeting.content or "").strip() or GREETING
            await self._start_response(None, reply=Reply(content), replace=True)

    async def _configure_vad(self) -> None:
        td = self.config.turn_detection
        params: VadParams | None = None
        if td.type == "server_vad":
            params = (
                _VAD_DEFAULTS[0] if td.threshold is None else td.threshold,
                _VAD_DEFAULTS[1] if td.prefix_padding_ms is None else td.prefix_padding_ms,
                _VAD_DEFAULTS[2] if td.silence_duration_ms is None else td.silence_duration_ms,
            )
        if await self._res.blocking.run(self._listener.set_vad, params):
            self._speech_item = None

    # ------------------------------------------------------------------ input audio

    async def _append(self, audio: str, event_id: str) -> None:
        try:
            edges = await self._res.blocking.run(self._listener.feed, audio)
        except InvalidAudio as exc:
            await self._error("invalid_audio", f"input_audio_buffer.append: {exc}", event_id)
            return
        before = self.clock.max_lag_s
        lag = self.clock.handled(self._frame_at, self._listener.audio_s, time.monotonic())
        if lag > LAG_REPORT_S >= before:
            self._res.report_lag(self.id, lag)
        for edge in edges:
            if edge.started:
                self._speech_item = new_id("item")
                await self._send(
                    ev.InputAudioBufferSpeechStarted(
                        type="input_audio_buffer.speech_started",
                        audio_start_ms=edge.ms,
                        item_id=self._speech_item,
                    )
                )
                if self.config.turn_detection.interrupt_response:
                    await self._responder.abort()
            else:
                self.speech_stopped_at = time.monotonic()
                item_id = self._speech_item or new_id("item")
                self._speech_item = None
                await self._send(
                    ev.InputAudioBufferSpeechStopped(
                        type="input_audio_buffer.speech_stopped",
                        audio_end_ms=edge.ms,
                        item_id=item_id,
                    )
                )
                await self._finish_turn(item_id, respond=True)

    async def _commit(self, event_id: str) -> None:
        server_vad = self._listener.server_vad
        if not self._listener.has_audio:
            await self._error(
                "input_audio_buffer_commit_empty",
                "input_audio_buffer.commit: the buffer is empty "
                + ("(no speech in progress)" if server_vad else "(nothing appended)"),
                event_id,
            )
            return
        item_id = self._speech_item or new_id("item")
        if server_vad:  # the client ends the speech early
            self._listener.end_speech()
            self._speech_item = None
        await self._finish_turn(item_id, respond=server_vad)

    async def _clear(self) -> None:
        await self._res.blocking.run(self._listener.clear)
        self._speech_item = None
        await self._send(ev.InputAudioBufferCleared(type="input_audio_buffer.cleared"))

    async def _finish_turn(self, item_id: str, *, respond: bool) -> None:
        """Commit the utterance as a user item, transcribe it, maybe answer it."""
        for event in self._log.user_audio(item_id):
            await self._send(event)
        transcript = await self._res.blocking.run(self._listener.finish)
        await self._send(
            ev.InputAudioTranscriptionCompleted(
                type="conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=transcript,
            )
        )
        if transcript:
            self._log.remember("user", transcript)
        if respond and transcript and self.config.turn_detection.create_response is not False:
            await self._start_response(transcript, replace=True)
        else:  # answered by the next response.create
            self._log.pending_user = transcript

    # ------------------------------------------------------------------ items

    async def _create_item(self, item: ev.ItemParam, event_id: str) -> None:
        if item.type == "function_call_output":
            try:
                call_id, name, arguments = self._responder.take_call(item.call_id)
            except UnknownCall as exc:
                message = f"conversation.item.create: item.call_id: {exc}"
                await self._error("invalid_event", message, event_id)
                return
            item = item.model_copy(update={"call_id": call_id or None})
            self._log.tool_results.append(ToolResult(name, arguments, item.output or "", call_id))
        await self._send(self._log.add(item))

    # ------------------------------------------------------------------ responses

    async def _request_response(self, event_id: str) -> None:
        active = self._responder.active
        if active is not None:
            await self._error(
                "conversation_already_has_active_response",
                f"response.create: response {active.id} is still in progress",
                event_id,
            )
            return
        user_text, self._log.pending_user = self._log.pending_user, None
        await self._start_response(user_text)

    async def _start_response(
        self, input_text: str | None, *, reply: Reply | None = None, replace: bool = False
    ) -> None:
        request = self._log.request(input_text, self.config)
        await self._responder.start(
            request, audio="audio" in self.config.modalities, reply=reply, replace=replace
        )


def _split(text: str) -> list[str]:
    from glm_local.speech import split_text

    return split_text(text)
