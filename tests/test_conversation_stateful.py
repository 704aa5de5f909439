"""The conversation state machine under random interleavings (hypothesis stateful test).

Server events (parsed from JSON as the socket reader would), host commands, user audio,
tool results, disconnects, timers and stop arrive in any order; after every step the
invariants hold:

* no assistant audio after a flush until a response that started after it;
* at most one ``response.create`` per step, only for a reason (a client-VAD turn end, a
  tool follow-up, an answer owed after a reconnect) and never over a live response;
* every tool call is answered (``function_call_output``), remembered (after a barge-in or
  a reconnect) or still pending; none is left once the session stopped;
* items of an old socket change nothing; after stop nothing changes at all;
* memory, response bookkeeping and the uplink backlog stay bounded.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from glm_realtime.config import ExtensionConfig
from glm_realtime.session.conversation import Conversation
from glm_realtime.session.effects import CallTool, Connect, Effect, Send
from glm_realtime.session.handler import SessionState, ToolOutcome
from glm_realtime.session.inbox import (
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
)
from glm_realtime.session.outbox import AudioOut, FlushOut
from realtime import events as ev
from realtime.errors import ConnectionClosedError
from realtime.session import FunctionTool
from tests.glm_graph import KEY

MAX_HISTORY = 6
GOOD = base64.b64encode(b"\x10\x00" * 480).decode()
DELTAS = [GOOD, base64.b64encode(b"\x01\x02\x03").decode(), "!!bad!!", "AAE"]


def config(server_vad: bool) -> ExtensionConfig:
    props = {
        "api_key": KEY,
        "server_vad": server_vad,
        "sample_rate": 16000,  # the resampler's tail is in play
        "max_history": MAX_HISTORY,
        "max_reconnect_attempts": 3,
        "disconnected_keep_ms": 300,
        "greeting": "Hi!",
    }
    return ExtensionConfig.from_properties(props, node="glm")


class ConversationMachine(RuleBasedStateMachine):
    server_vad = True
    responses = Bundle("responses")
    calls = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.core = Conversation(config(self.server_vad), clock=lambda: self.now)
        self.gen = 0  # the socket the server side is on (0: none)
        self.rids = 0
        self.step = 0
        self.last_flush = -1
        self.first_seen: dict[str, int] = {}
        self.started: dict[int, CallTool] = {}
        self.resolved: set[int] = set()
        self._effects(self.core.start())

    # ------------------------------------------------------------------ driving

    def _effects(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            match effect:
                case Connect(gen=gen):
                    self.gen = gen
                case CallTool(seq=seq):
                    self.started[seq] = effect
                case FlushOut():
                    self.last_flush = self.step
        return effects

    def feed(self, item: InboxItem) -> list[Effect]:
        self.step += 1
        self.now += 0.01
        stopped = self.core.ended
        effects = self._effects(self.core.handle(item))
        if stopped:
            assert effects == []  # after stop or failure nothing changes
        creates = [e for e in effects if isinstance(e, Send) and e.event.type == "response.create"]
        assert len(creates) <= 1
        if creates:
            assert self.core.responses.active is None  # never over a live response
            reason = isinstance(item, (ToolResult, FlushCmd)) or (
                isinstance(item, ServerEventIn)
                and isinstance(item.event, (ev.ResponseDone, ev.SessionCreated))
            )
            assert reason, item
            if isinstance(item, FlushCmd):
                assert not self.server_vad
        return effects

    def server(self, **event: Any) -> list[Effect]:
        return self.feed(ServerEventIn(self.gen, ev.parse_server_event(json.dumps(event))))

    def response_event(self, rid: str, **event: Any) -> None:
        self.first_seen.setdefault(rid, self.step + 1)
        effects = self.server(**event)
        if self.first_seen[rid] <= self.last_flush:  # an old response: it must stay silent
            assert not any(isinstance(e, AudioOut) for e in effects), effects

    # -------------------------------------------------------------- the socket

    @rule()
    def connected(self) -> None:
        self.feed(Connected(self.gen, None, 1.0))

    @rule()
    def session_created(self) -> None:
        self.server(type="session.created", session={"id": f"s{self.gen}"})

    @rule(error=st.booleans())
    def disconnect(self, error: bool) -> None:
        self.feed(Disconnected(self.gen, ConnectionClosedError(1011, "gone") if error else None))

    @rule()
    def stale_socket_event(self) -> None:
        effects = self.feed(ServerEventIn(self.gen - 1, ev.parse_server_event('{"type": "x"}')))
        assert effects == []

    @rule(kind=st.sampled_from(["proven", "reconnect"]))
    def timer(self, kind: str) -> None:
        self.feed(TimerFired(kind, self.gen if kind == "proven" else 0))  # type: ignore[arg-type]

    # --------------------------------------------------------- server events

    @rule(target=responses)
    def response_created(self) -> str:
        self.rids += 1
        rid = f"r{self.rids}"
        self.response_event(rid, type="response.created", response={"id": rid})
        return rid

    @rule(rid=responses, delta=st.sampled_from(DELTAS))
    def audio_delta(self, rid: str, delta: str) -> None:
        self.response_event(rid, type="response.audio.delta", response_id=rid, delta=delta)

    @rule(rid=responses, words=st.sampled_from(["Hello. ", "there", "好。"]))
    def text_delta(self, rid: str, words: str) -> None:
        event = {"type": "response.audio_transcript.delta", "response_id": rid, "delta": words}
        self.response_event(rid, **event)

    @rule(rid=responses)
    def audio_done(self, rid: str) -> None:
        self.response_event(rid, type="response.audio.done", response_id=rid)

    @rule(rid=responses, status=st.sampled_from(["completed", "cancelled"]))
    def response_done(self, rid: str, status: str) -> None:
        self.response_event(rid, type="response.done", response={"id": rid, "status": status})

    @rule(rid=responses, name=st.sampled_from(["lookup", "weather"]))
    def function_call(self, rid: str, name: str) -> None:
        event = {
            "type": "response.function_call_arguments.done",
            "response_id": rid,
            "call_id": f"c_{rid}",
            "name": name,
            "arguments": "{}",
        }
        self.response_event(rid, **event)

    @rule()
    def speech_started(self) -> None:
        self.server(type="input_audio_buffer.speech_started")

    @rule()
    def speech_stopped(self) -> None:
        self.server(type="input_audio_buffer.speech_stopped")

    @rule(text=st.sampled_from(["What time is it?", "  "]))
    def user_transcript(self, text: str) -> None:
        self.server(type="conversation.item.input_audio_transcription.completed", transcript=text)

    # ------------------------------------------------------------------ host

    @rule()
    def host_flush(self) -> None:
        self.feed(FlushCmd())

    @rule(join=st.booleans())
    def users(self, join: bool) -> None:
        self.feed(UserJoined() if join else UserLeft())

    @rule(name=st.sampled_from(["lookup", "weather"]))
    def register_tool(self, name: str) -> None:
        self.feed(RegisterTool(FunctionTool(name=name, description="d")))

    @rule(size=st.sampled_from([320, 3200, 16000]))
    def user_audio(self, size: int) -> None:
        self.feed(AudioIn(b"\x00\x01" * (size // 2), 16000))

    @precondition(lambda self: any(s not in self.resolved for s in self.started))
    @rule(data=st.data())
    def tool_answers(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(s for s in self.started if s not in self.resolved)))
        call = self.core.calls.get(seq)
        old_question = call is not None and (call.superseded or call.gen != self.core.live_gen)
        remembered = len(self.core.memory)
        effects = self.feed(ToolResult(seq, ToolOutcome('{"ok": true}')))
        self.resolved.add(seq)
        if call is None:
            return  # the session ended meanwhile: the call was cancelled
        outputs = [
            e
            for e in effects
            if isinstance(e, Send) and isinstance(e.event, ev.ConversationItemCreate)
        ]
        memory = [t.content for t in self.core.memory.turns]
        answered = len(outputs) == 1 and outputs[0].event.item.call_id == call.call_id
        reported = any(line.startswith(f"[tool {call.name}(") for line in memory) and (
            len(self.core.memory) > remembered or remembered == MAX_HISTORY
        )
        # After a barge-in or a reconnect the result goes to memory, else to GLM.
        assert (answered, reported) == (not old_question, old_question), (effects, memory)

    @precondition(lambda self: not self.core.ended)
    @rule()
    def stop(self) -> None:
        self.feed(StopCmd())
        assert self.core.state is SessionState.STOPPED
        assert len(self.core.calls) == 0  # every call in flight is cancelled

    # ------------------------------------------------------------ invariants

    @invariant()
    def bounded(self) -> None:
        assert len(self.core.memory) <= MAX_HISTORY
        assert self.core.responses.live_count() <= 64
        assert self.core.uplink.held_packets <= 3  # 300 ms of 100 ms packets

    @invariant()
    def calls_pending_or_resolved(self) -> None:
        pending = set(self.core.calls)
        assert pending <= set(self.started)
        if self.core.ended:
            assert not pending

    @initialize()
    def begin(self) -> None:
        assert self.core.state is SessionState.CONNECTING


class ClientVadMachine(ConversationMachine):
    server_vad = False


SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestServerVadConversation = ConversationMachine.TestCase
TestServerVadConversation.settings = SETTINGS
TestClientVadConversation = ClientVadMachine.TestCase
TestClientVadConversation.settings = SETTINGS
