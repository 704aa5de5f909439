"""The conversation state machine: the only code that changes a session's state.

One owner task (in :class:`~glm_realtime.session.voice.VoiceSession`) takes items from one
ordered inbox and hands each to :meth:`Conversation.handle`, which changes state and
returns effects (client events, uplink packets, outputs to the host, tool calls, socket
and timer requests) that the owner then carries out in order. Nothing here awaits, so
the order of effects is the order of the inbox, whatever the scheduling.

Inbox (one FIFO; see :mod:`.inbox`)::

    socket reader  Connected / ServerEventIn / Disconnected (tagged gen) --+
    host cmds      FlushCmd / UserJoined / UserLeft / RegisterTool ---------+
    host audio     AudioIn / VideoIn ---------------------------------------+--> [FIFO] --> owner
    tool tasks     ToolResult(seq) -----------------------------------------+
    timers         TimerFired(proven | reconnect) --------------------------+
    stop()         StopCmd -------------------------------------------------+

States::

    IDLE --start--> CONNECTING --session.created--> READY
                       ^   |                          |
                       |   +------ socket lost -------+--> BACKOFF --timer--> CONNECTING
                       |                                     |
                       +-------------------------------------+
    any --stop--> STOPPED          any --fatal error / too many failures--> FAILED

A socket lost before it *proved itself* (a completed response, or ``GOOD_AFTER_S`` up)
counts as a failure, so a server that accepts and drops every socket is bounded by
``max_reconnect_attempts``. Items of an older socket (a stale ``gen``) are ignored.

Barge-in (server VAD ``speech_started``, or the host's ``flush``): a ``flush`` goes to the
host first (the outbox drops audio queued before it), the live response becomes stale
(its later deltas are dropped) and gets one ``response.cancel``; a ``response.create``
still unanswered is cancelled when its response starts; tool calls in flight are
*superseded*: their results go into memory, not to GLM, so no answer to the old question
plays over the new turn.

A tool call whose socket died before it answered (decided, see the README): its call and
result go into memory, which the next session receives in its instructions, and once that
session is ready the session asks for a response, so the request is still answered.
"""

from __future__ import annotations

import base64
import itertools
import logging
import time
from collections.abc import Callable

from realtime import events as ev
from realtime.audio import DownlinkDecoder, UplinkPacker
from realtime.errors import FATAL_SERVER_CODES, ServerError

from ..config import ExtensionConfig
from .backoff import GiveUp, ReconnectPolicy
from .downlink import Downlink
from .effects import CallTool, CloseSocket, Connect, Effect, Schedule, Send, SendAudio
from .handler import SessionState, ToolOutcome
from .inbox import (
    AudioIn,
    Connected,
    Disconnected,
    FlushCmd,
    InboxItem,
    RegisterTool,
    ServerEventIn,
    StopCmd,
    TimerFired,
    ToolResult,
    UserJoined,
    UserLeft,
    VideoIn,
)
from .memory import ChatMemory, Role
from .outbox import ErrorOut, FlushOut, HistoryOut, MetricsOut, TranscriptOut
from .response_requests import ResponseRequests
from .responses import ResponseTracker
from .session_setup import SessionSetup
from .tool_calls import PendingCall, ToolCallBook
from .uplink import Uplink

__all__ = ["GOOD_AFTER_S", "Conversation"]

logger = logging.getLogger(__name__)

# A socket that stayed up this long served the user; one that dies sooner is a failure.
GOOD_AFTER_S = 5.0


class Conversation:
    """State and decisions of one conversation; no I/O (see the module docstring)."""

    def __init__(self, config: ExtensionConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self.state = SessionState.IDLE
        self.failure: BaseException | None = None  # what ended it FAILED, if an error did
        self.memory = ChatMemory(config.max_history)
        packer = UplinkPacker(
            config.input_audio_format, wav_rate=config.input_sample_rate, packet_ms=config.packet_ms
        )
        self.uplink = Uplink(packer, config.disconnected_audio, config.disconnected_keep_ms)
        self.responses = ResponseTracker(clock, lambda: DownlinkDecoder(config.sample_rate))
        self.downlink = Downlink(config, clock, self.responses, self._emit)
        self.requests = ResponseRequests(self.responses, self._emit)
        self.setup = SessionSetup(config)
        self.calls = ToolCallBook()
        self.session_id: str | None = None
        self.connections = 0
        self.live_gen: int | None = None
        self.ready = False
        self.reconnects = ReconnectPolicy(
            config.max_reconnect_attempts,
            config.reconnect_base_delay_ms / 1000,
            config.reconnect_max_delay_ms / 1000,
        )
        self._gens = itertools.count(1)
        self._answer_due = False
        self._out: list[Effect] = []

    # ------------------------------------------------------------------- queries

    @property
    def ended(self) -> bool:
        """Stopped or failed: nothing changes any more."""
        return self.state in (SessionState.STOPPED, SessionState.FAILED)

    def settled(self) -> bool:
        """No response in progress, no tool call or answer owed."""
        return self.responses.settled() and not self.calls and not self._answer_due

    # ------------------------------------------------------------------ handling

    def start(self) -> list[Effect]:
        """The first effects: open a socket."""
        self._out = []
        self._connect()
        return self._out

    def handle(self, item: InboxItem) -> list[Effect]:
        """Take one inbox item; return what to do, in order."""
        self._out = []
        if self.ended:
            return self._out
        match item:
            case Connected(gen=gen, handshake_ms=handshake_ms) if gen == self.live_gen:
                self.connections += 1
                self.reconnects.opened()
                metrics = {"kind": "connect", "connect_ms": round(handshake_ms, 1)}
                self._emit(MetricsOut({**metrics, "connection": self.connections}))
            case ServerEventIn(gen=gen, event=event) if gen == self.live_gen:
                self._dispatch(event)
            case Disconnected(gen=gen, error=error) if gen == self.live_gen:
                self._lost(error)
            case AudioIn(pcm=pcm, sample_rate=rate):
                self._send_packets(self.uplink.pack(pcm, rate))
            case VideoIn(jpeg=jpeg) if self.ready:
                frame = base64.b64encode(jpeg).decode()
                self._emit(Send(ev.InputAudioBufferAppendVideoFrame(video_frame=frame)))
            case FlushCmd():
                self._end_user_turn()
            case UserJoined():
                if self.setup.user_joined() and self.ready:
                    self._update_session()
            case UserLeft():
                self.setup.user_left()
            case RegisterTool(tool=tool):
                self.setup.tools[tool.name] = tool
                if self.ready:
                    self._update_session()
            case ToolResult(seq=seq, outcome=outcome):
                self._tool_answered(seq, outcome)
            case TimerFired(kind="proven", gen=gen) if gen == self.live_gen and self.ready:
                self.reconnects.proven()
            case TimerFired(kind="reconnect") if self.state is SessionState.BACKOFF:
                self._connect()
            case StopCmd():
                self._stop()
        return self._out

    def hold_audio(self, packets: list[bytes]) -> None:
        """Packets the socket refused: keep them for the next session (uplink policy)."""
        self.uplink.hold(packets)

    def _emit(self, effect: Effect) -> None:
        self._out.append(effect)

    def _set_state(self, state: SessionState) -> None:
        if state is not self.state:
            logger.info("= session %s -> %s", self.state.value, state.value)
            self.state = state

    # ---------------------------------------------------------------- connection

    def _connect(self) -> None:
        self.live_gen = next(self._gens)
        self.ready = False
        self.reconnects.connecting()
        self._set_state(SessionState.CONNECTING)
        self._emit(Connect(self.live_gen))

    def _lost(self, error: BaseException | None) -> None:
        self.live_gen = None
        self.ready = False
        self.requests.connection_lost()
        cut = self.responses.connection_lost()
        if cut is not None:
            # The reply was cut by the network: close its segment, keep what was said.
            self._emit(TranscriptOut(cut.splitter.finish(), "assistant", True))
            self._remember("assistant", cut.text)
        delay = self.reconnects.lost(error)
        if isinstance(delay, GiveUp):
            self._fail(error, delay.reason)
            return
        cause = str(error) if error else "server closed the connection"
        logger.warning("! connection lost (%s); reconnecting in %.2f s", cause, delay)
        self._set_state(SessionState.BACKOFF)
        self._emit(Schedule("reconnect", 0, delay))

    def _fail(self, error: BaseException | None, reason: str) -> None:
        self._set_state(SessionState.FAILED)
        self.failure = error
        self.calls.clear()
        code = getattr(error, "code", None) or getattr(error, "status", None)
        logger.error("! %s", reason)
        self._emit(ErrorOut(None if code is None else str(code), reason, True))

    def _stop(self) -> None:
        self._set_state(SessionState.STOPPED)
        self.calls.clear()
        if self.live_gen is not None:
            self._emit(CloseSocket(1000, "client stopped"))
        self.live_gen = None
        self.ready = False

    # --------------------------------------------------------------- dispatching

    def _dispatch(self, event: ev.ServerEvent) -> None:
        match event:
            case ev.Heartbeat() | ev.SessionUpdated() | ev.ConversationCreated():
                pass
            case ev.SessionCreated():
                self._session_created(event)
            case ev.ErrorEvent(error=error) if error.code in FATAL_SERVER_CODES:
                self._emit(CloseSocket(1000, "fatal server error"))
                self._lost(ServerError(error.code, error.message, error.type))
            case ev.ErrorEvent(error=error):
                logger.warning("! server error %s: %s", error.code, error.message)
                self._emit(ErrorOut(error.code, error.message, False))
            case ev.InputAudioBufferSpeechStarted() if self.config.server_vad:
                self._barge_in()
            case ev.InputAudioBufferSpeechStopped():
                self.responses.turn_ended()
            case ev.InputAudioTranscriptionCompleted():
                self._user_transcript(event.transcript)
            case ev.InputAudioTranscriptionFailed():
                logger.warning("! user transcription failed: %s", event.error)
            case (
                ev.ResponseCreated()
                | ev.ResponseAudioDelta()
                | ev.ResponseAudioDone()
                | ev.ResponseAudioTranscriptDelta()
                | ev.ResponseTextDelta()
                | ev.ResponseAudioTranscriptDone()
                | ev.ResponseTextDone()
            ):
                self.downlink.take(event)
            case ev.ResponseFunctionCallArgumentsDone():
                self._function_call(event)
            case ev.ResponseDone():
                self._response_done(event.response)
            case ev.ResponseFunctionCallSimpleBrowser():
                logger.info("= GLM searches the web (%s)", event.filler or "no filler line")
            case ev.InvalidEvent():
                logger.warning("! ignoring malformed server frame: %s", event.reason)
            case _:
                logger.debug("= not handled: %s", ev.describe(event))

    def _session_created(self, event: ev.SessionCreated) -> None:
        self.session_id = event.session.id
        self.setup.history_text = self.memory.render()
        self.ready = True
        self._update_session()
        self._set_state(SessionState.READY)
        self._send_packets(self.uplink.take_backlog())  # after the update: audio in its format
        self._emit(Schedule("proven", self.live_gen or 0, GOOD_AFTER_S))
        self.requests.session_ready()
        if self._answer_due:
            self._answer_due = False
            self.requests.request()

    def _update_session(self) -> None:
        self._emit(Send(self.setup.update()))

    def _user_transcript(self, text: str) -> None:
        if not text.strip():
            return
        if self.config.input_transcript:
            self._emit(TranscriptOut(text, "user", True))
        self._remember("user", text)

    # ----------------------------------------------------------------- responses

    def _response_done(self, info: ev.ResponseInfo) -> None:
        response = self.responses.finish(info.id)
        if not response.interrupted:
            self.downlink.finish(response)
            self._remember("assistant", response.text)
            if info.status == "completed":
                self.reconnects.proven()
        rate = self.config.sample_rate
        self._emit(MetricsOut(response.metrics(self.clock(), info.status, info.usage, rate)))
        self.requests.follow_up(response)
        self.requests.response_done()
        if self._answer_due:
            self._answer_from_memory()

    def _barge_in(self) -> None:
        self._emit(FlushOut())
        self.calls.supersede_all()
        self._answer_due = False
        self.requests.barged_in()
        response = self.responses.interrupt()
        if response is None:
            return
        self._emit(Send(ev.ResponseCancel()))
        partial = response.splitter.finish()
        self._emit(TranscriptOut(f"{partial}[interrupted]", "assistant", True))
        self._remember("assistant", f"{response.text} [interrupted]")

    def _end_user_turn(self) -> None:
        """The host's ``flush``: barge-in; under client VAD also the end of the turn."""
        self._barge_in()
        if self.config.server_vad:
            return
        self._send_packets(self.uplink.packer.flush())
        self.responses.turn_ended()
        self.requests.commit_turn(self.ready)

    # --------------------------------------------------------------------- tools

    def _function_call(self, event: ev.ResponseFunctionCallArgumentsDone) -> None:
        response = self.downlink.response(event.response_id)
        if response is None:
            logger.info("= dropping tool call %s of an interrupted response", event.name)
            return
        response.called_tools += 1
        response.pending_tools += 1
        call = self.calls.add(event, response, self.live_gen)
        self._emit(CallTool(call.seq, event.name, event.arguments))

    def _tool_answered(self, seq: int, outcome: ToolOutcome) -> None:
        call = self.calls.pop(seq)
        if call is None:
            return
        call.response.pending_tools -= 1
        if call.superseded:
            logger.info("= tool %s answered after a barge-in: remembered, not sent", call.name)
            self._remember_tool(call, outcome)
            return
        if call.gen != self.live_gen:
            logger.info("= tool %s answered after a reconnect: answering from memory", call.name)
            self._remember_tool(call, outcome)
            self._answer_from_memory()
            return
        item = ev.ItemParam.function_call_output(outcome.output, call.call_id)
        self._emit(Send(ev.ConversationItemCreate(item=item)))
        self.requests.follow_up(call.response)

    def _answer_from_memory(self) -> None:
        """Answer a request whose tool result outlived its socket, once GLM is free."""
        if not self.ready or not self.responses.settled():
            self._answer_due = True
            return
        self._answer_due = False
        self.setup.history_text = self.memory.render()
        self._update_session()
        self.requests.request()

    def _remember_tool(self, call: PendingCall, outcome: ToolOutcome) -> None:
        self._remember("assistant", f"[tool {call.name}({call.arguments}) -> {outcome.output}]")

    # ------------------------------------------------------------------- helpers

    def _remember(self, role: Role, text: str) -> None:
        turn = self.memory.put(role, text)
        if turn is not None and self.config.enable_storage:
            self._emit(HistoryOut(turn.role, turn.content))

    def _send_packets(self, packets: list[bytes]) -> None:
        if not packets:
            return
        if self.ready:
            self._emit(SendAudio(packets))
        else:
            self.uplink.hold(packets)
