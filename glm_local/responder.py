"""Speaking one reply: text deltas, TTS off the event loop, paced 24 kHz audio deltas.

:class:`Speaker` streams a reply the way GLM does: for each sentence (see
:func:`glm_local.speech.split_text`) a transcript delta, then that sentence's audio in
~100 ms base64 chunks. Audio is paced no faster than ``pace`` x real time after the
first chunk (``pace`` 0 sends as fast as it is synthesised); the next sentence is
synthesised in a worker thread while the current one is being sent, so pacing hides
the synthesis time. Cancelling the task that runs :meth:`Speaker.speak` stops it at
once; a sentence being synthesised finishes in its thread and is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pybase64

from glm_local.engine import Reply, ReplyEngine, ReplyRequest
from glm_local.threads import BlockingWork
from realtime import events as ev
from realtime.server_objects import InputTokenDetails, OutputTokenDetails

if TYPE_CHECKING:
    from glm_local.speech import Synthesizer

__all__ = [
    "CHUNK_MS",
    "ActiveResponse",
    "Responder",
    "Send",
    "Speaker",
    "UnknownCall",
    "estimate_tokens",
    "new_id",
    "usage",
]

CHUNK_MS = 100
_OUT_RATE = 24000
_CHUNK_BYTES = _OUT_RATE * CHUNK_MS // 1000 * 2
_AUDIO_TOKENS_PER_S = 12.5  # a token per 80 ms of speech, as audio LMs commonly count

Send = Callable[[ev.ServerEventBase], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]

logger = logging.getLogger(__name__)


def new_id(prefix: str) -> str:
    """A fresh id such as ``resp_3f2a...``."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def estimate_tokens(text: str) -> int:
    """A rough BPE token count: about four characters per token."""
    return math.ceil(len(text.strip()) / 4) if text.strip() else 0


def usage(input_text: str, output_text: str, audio_ms: float) -> ev.Usage:
    """Token usage estimated from the texts (and the length of the spoken audio)."""
    text_in = estimate_tokens(input_text)
    text_out = estimate_tokens(output_text)
    audio_out = math.ceil(audio_ms / 1000 * _AUDIO_TOKENS_PER_S)
    return ev.Usage(
        total_tokens=text_in + text_out + audio_out,
        input_tokens=text_in,
        output_tokens=text_out + audio_out,
        input_token_details=InputTokenDetails(text_tokens=text_in),
        output_token_details=OutputTokenDetails(text_tokens=text_out, audio_tokens=audio_out),
    )


def _render(synth: Synthesizer, text: str) -> bytes:
    return b"".join(synth.synthesize(text))


def _render_task(synth: Synthesizer, text: str, blocking: BlockingWork) -> asyncio.Task[bytes]:
    return asyncio.create_task(blocking.run(_render, synth, text), name="glm-local:tts")


class Speaker:
    """Streams one reply of one response; see the module docstring.

    Attributes:
        spoken: the text whose deltas were sent so far.
        audio_ms: milliseconds of audio sent so far.
        first_audio_at: ``time.monotonic()`` when the first audio delta was sent.
    """

    def __init__(
        self,
        send: Send,
        *,
        response_id: str,
        item_id: str,
        synthesizer: Synthesizer | None,
        blocking: BlockingWork,
        pace: float,
        split: Callable[[str], list[str]],
    ) -> None:
        self._send = send
        self._blocking = blocking
        self._ids = {
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
        }
        self._synth = synthesizer
        self._pace = pace
        self._split = split
        self.spoken = ""
        self.audio_ms = 0.0
        self.first_audio_at: float | None = None
        self._t0 = 0.0
        self._sent_s = 0.0

    async def speak(self, text: str) -> None:
        """Send the deltas of ``text`` and its audio, then the ``.done`` events."""
        segments = self._split(text)
        if self._synth is None:
            for index, segment in enumerate(segments):
                delta = segment if index == 0 else " " + segment
                await self._send(
                    ev.ResponseTextDelta(type="response.text.delta", delta=delta, **self._ids)
                )
                self.spoken += delta
            await self._send(
                ev.ResponseTextDone(type="response.text.done", text=self.spoken, **self._ids)
            )
            return
        synth = self._synth
        pending: asyncio.Task[bytes] | None = None
        if segments:
            pending = _render_task(synth, segments[0], self._blocking)
        try:
            for index, segment in enumerate(segments):
                assert pending is not None
                audio = await pending
                pending = None
                if index + 1 < len(segments):
                    following = segments[index + 1]
                    pending = _render_task(synth, following, self._blocking)
                delta = segment if index == 0 else " " + segment
                await self._send(
                    ev.ResponseAudioTranscriptDelta(
                        type="response.audio_transcript.delta", delta=delta, **self._ids
                    )
                )
                self.spoken += delta
                await self._stream_audio(audio)
        finally:
            if pending is not None:
                pending.cancel()
        await self._send(ev.ResponseAudioDone(type="response.audio.done", **self._ids))
        await self._send(
            ev.ResponseAudioTranscriptDone(
                type="response.audio_transcript.done", transcript=self.spoken, **self._ids
            )
        )

    async def _stream_audio(self, pcm: bytes) -> None:
        for offset in range(0, len(pcm), _CHUNK_BYTES):
            chunk = pcm[offset : offset + _CHUNK_BYTES]
            now = time.monotonic()
            if self.first_audio_at is None:
                self.first_audio_at = self._t0 = now
            elif self._pace > 0:
                delay = self._t0 + self._sent_s / self._pace - now
                if delay > 0:
                    await asyncio.sleep(delay)
            await self._send(
                ev.ResponseAudioDelta(
                    type="response.audio.delta",
                    delta=pybase64.b64encode(chunk).decode("ascii"),
                    **self._ids,
                )
            )
            chunk_s = len(chunk) / 2 / _OUT_RATE
            self._sent_s += chunk_s
            self.audio_ms += chunk_s * 1000


class UnknownCall(LookupError):
    """A tool output that answers no pending call; the message says which are pending."""


@dataclass(eq=False)
class ActiveResponse:
    """The response in progress."""

    id: str
    item_id: str
    input_text: str
    task: asyncio.Task[None] | None = None
    speaker: Speaker | None = None
    done: bool = False  # response.done is being (or was) sent: too late to cancel
    output: list[ev.ConversationItem] = field(default_factory=list)


class Responder:
    """The responses of one session, one at a time, each in its own task.

    A response is ``response.created``, then either one tool call
    (``response.function_call_arguments.done``) or the spoken reply (see
    :class:`Speaker`), then ``response.done`` with estimated usage. :meth:`abort`
    cancels it: ``response.cancelled``, then ``response.done`` with status cancelled.
    """

    def __init__(
        self,
        send: Send,
        spawn: Spawn,
        *,
        engine: ReplyEngine,
        synthesizer: Synthesizer,
        blocking: BlockingWork,
        pace: float,
        remember: Callable[[str, str], None],
        split: Callable[[str], list[str]],
    ) -> None:
        self._send = send
        self._spawn = spawn
        self._engine = engine
        self._synth = synthesizer
        self._blocking = blocking
        self._pace = pace
        self._remember = remember
        self._split = split
        self._current: ActiveResponse | None = None
        self._calls: dict[str, tuple[str, dict[str, Any]]] = {}

    @property
    def active(self) -> ActiveResponse | None:
        """The response in progress, None if there is none (or it is finishing)."""
        current = self._current
        return current if current is not None and not current.done else None

    def take_call(self, call_id: str | None) -> tuple[str, str, dict[str, Any]]:
        """(call id, name, arguments) of the pending tool call ``call_id``, or of the one
        pending call when no id is given (Zhipu's SDK sends ``"call_id": ""``).

        Raises:
            UnknownCall: ``call_id`` is not pending, or none is given while several are.
        """
        pending = ", ".join(self._calls) or "none"
        if call_id:
            if call_id not in self._calls:
                raise UnknownCall(f"no tool call {call_id!r} is pending (pending: {pending})")
        elif len(self._calls) > 1:
            raise UnknownCall(f"{len(self._calls)} tool calls are pending ({pending}); name one")
        elif not self._calls:
            return "", "tool", {}
        else:
            call_id = next(iter(self._calls))
        return (call_id, *self._calls.pop(call_id))

    async def start(
        self,
        request: ReplyRequest,
        *,
        audio: bool,
        reply: Reply | None = None,
        replace: bool = False,
    ) -> None:
        """Start a response for ``request`` (or speak ``reply`` as it is).

        ``replace`` aborts a response in progress first; otherwise the caller checks
        :attr:`active`.
        """
        if replace:
            await self.abort()
        response = ActiveResponse(new_id("resp"), new_id("item"), request.user_text or "")
        self._current = response
        response.task = self._spawn(self._run(response, request, reply, audio), "response")

    async def _run(
        self, r: ActiveResponse, request: ReplyRequest, reply: Reply | None, audio: bool
    ) -> None:
        info = ev.ResponseInfo(id=r.id, object="realtime.response", status="in_progress")
        await self._send(ev.ResponseCreated(type="response.created", response=info))
        status, spoken, audio_ms = "completed", "", 0.0
        try:
            if reply is None:
                reply = await self._engine.reply(request)
            if reply.tool_call is not None:
                await self._call_tool(r, reply)
            else:
                r.speaker = Speaker(
                    self._send,
                    response_id=r.id,
                    item_id=r.item_id,
                    synthesizer=self._synth if audio else None,
                    blocking=self._blocking,
                    pace=self._pace,
                    split=self._split,
                )
                await r.speaker.speak(reply.text)
                spoken, audio_ms = r.speaker.spoken, r.speaker.audio_ms
                self._remember("assistant", spoken)
        except Exception:
            logger.exception("response %s failed", r.id)
            status = "failed"
        r.done = True
        done = ev.ResponseInfo(
            id=r.id,
            object="realtime.response",
            status=status,
            output=r.output,
            usage=usage(r.input_text, spoken, audio_ms),
        )
        await self._send(ev.ResponseDone(type="response.done", response=done))
        if self._current is r:
            self._current = None

    async def _call_tool(self, r: ActiveResponse, reply: Reply) -> None:
        assert reply.tool_call is not None
        call_id = new_id("call")
        name, arguments = reply.tool_call.name, reply.tool_call.arguments
        text = json.dumps(arguments, ensure_ascii=False)
        self._calls[call_id] = (name, arguments)
        await self._send(
            ev.ResponseFunctionCallArgumentsDone(
                type="response.function_call_arguments.done",
                response_id=r.id,
                item_id=r.item_id,
                output_index=0,
                call_id=call_id,
                name=name,
                arguments=text,
            )
        )
        r.output.append(
            ev.ConversationItem(
                id=r.item_id,
                type="function_call",
                object="realtime.item",
                status="completed",
                name=name,
                arguments=text,
                call_id=call_id,
            )
        )

    async def abort(self) -> bool:
        """Stop the response in progress now; False if there was none."""
        r = self.active
        if r is None:
            return False
        r.done = True
        if r.task is not None:
            r.task.cancel()
            await asyncio.wait([r.task])
        spoken = r.speaker.spoken if r.speaker else ""
        audio_ms = r.speaker.audio_ms if r.speaker else 0.0
        if spoken:
            self._remember("assistant", spoken)  # what was generated stays, as on GLM
        info = ev.ResponseInfo(
            id=r.id,
            object="realtime.response",
            status="cancelled",
            status_details={"type": "cancelled", "reason": "client_cancelled"},
            usage=usage(r.input_text, spoken, audio_ms),
        )
        await self._send(ev.ResponseCancelled(type="response.cancelled", response=info))
        await self._send(ev.ResponseDone(type="response.done", response=info))
        if self._current is r:
            self._current = None
        return True
