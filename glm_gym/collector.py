"""What the caller hears: the assistant's replies as the ``glm_v2v_python`` node sends them.

:class:`Collector` (addon ``gym_collector``) is the caller's loudspeaker. It receives the
node's ``pcm_frame`` audio, ``text_data``, ``metrics``, ``error`` and ``flush`` and keeps
one :class:`Reply` per response, stamped on the call's clock (the caller's, see
:mod:`glm_gym.caller`): when its first audio arrived, how much audio it had, when it was
done. Playback is modelled from the first audio at 1x, so a reply still "plays" after
its last frame arrived (the embedded backend sends audio faster than real time), and a
``flush`` (barge-in) cuts it there. Data and frames arrive in order through one inbox, so
a reply's text and audio always precede its ``metrics``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from glm_realtime.host import (
    Addon,
    AsyncTenEnv,
    AudioFrame,
    Cmd,
    CmdResult,
    Data,
    Extension,
    StatusCode,
)

__all__ = ["Collector", "Reply", "UserText"]

_INTERRUPTED_MARK = "[interrupted]"
_MAX_ERRORS = 32  # the latest backend errors kept


@dataclass(eq=False)
class Reply:
    """One response of the assistant."""

    seq: int
    started_ms: float
    text: str = ""
    first_audio_ms: float | None = None
    audio_ms: float = 0.0
    done_ms: float | None = None
    status: str | None = None
    interrupted: bool = False
    tool_calls: int = 0
    cut_ms: float | None = None
    """When a flush cut its playback, if it did."""

    @property
    def playback_end_ms(self) -> float | None:
        """When the caller stops hearing it (its audio at 1x from the first frame, or cut)."""
        if self.first_audio_ms is None:
            return None
        end = self.first_audio_ms + self.audio_ms
        return end if self.cut_ms is None else min(end, self.cut_ms)

    @property
    def final(self) -> bool:
        """Done, and not a tool call whose follow-up is still to come."""
        return self.done_ms is not None and (
            self.tool_calls == 0 or self.interrupted or self.status not in (None, "completed")
        )


@dataclass(frozen=True)
class UserText:
    """What the backend heard the caller say (its transcript of one user turn)."""

    seq: int
    at_ms: float
    text: str


MANIFEST: dict[str, Any] = {
    "type": "extension",
    "name": "gym_collector",
    "version": "0.1.0",
    "api": {
        "property": {},
        "cmd_in": [{"name": "flush"}],
        "data_in": [{"name": "text_data"}, {"name": "metrics"}, {"name": "error"}],
        "audio_frame_in": [{"name": "pcm_frame"}],
    },
}


class Collector(Extension):
    """Records the assistant's side of the call; set :attr:`clock` before starting."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.clock: Callable[[], float] = lambda: 0.0
        self.replies: list[Reply] = []
        self.current: Reply | None = None
        self.user_texts: list[UserText] = []
        self.flushes: list[float] = []
        self.errors: deque[str] = deque(maxlen=_MAX_ERRORS)
        self.fatal = False
        self.connected = False
        self._seq = 0
        self._changed = asyncio.Condition()

    @classmethod
    def as_addon(cls) -> Addon:
        """The ``gym_collector`` addon."""
        return Addon("gym_collector", cls, MANIFEST, {}, origin="glm_gym")

    @property
    def last_seq(self) -> int:
        """Sequence number of the latest event recorded."""
        return self._seq

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked after every event."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _changed_now(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _reply(self) -> Reply:
        if self.current is None:
            self.current = Reply(self._next(), self.clock())
        return self.current

    async def on_audio_frame(self, env: AsyncTenEnv, audio_frame: AudioFrame) -> None:
        reply = self._reply()
        if reply.first_audio_ms is None:
            reply.first_audio_ms = self.clock()
        samples = len(audio_frame.get_buf()) // 2 // max(1, audio_frame.get_number_of_channels())
        reply.audio_ms += samples * 1000 / audio_frame.get_sample_rate()
        await self._changed_now()

    async def on_data(self, env: AsyncTenEnv, data: Data) -> None:
        name = data.get_name()
        if name == "text_data":
            self._text(data)
        elif name == "metrics":
            self._metrics(json.loads(data.get_property_to_json("metrics")))
        elif name == "error":
            message = (
                data.get_property_string("message") if data.is_property_exist("message") else ""
            )
            self.errors.append(message)
            self.fatal = self.fatal or (
                data.is_property_exist("fatal") and data.get_property_bool("fatal")
            )
            self._next()
        await self._changed_now()

    def _text(self, data: Data) -> None:
        text = data.get_property_string("text") if data.is_property_exist("text") else ""
        role = data.get_property_string("role") if data.is_property_exist("role") else ""
        if role == "user":
            if text.strip():
                self.user_texts.append(UserText(self._next(), self.clock(), text.strip()))
            return
        text = text.replace(_INTERRUPTED_MARK, "").strip()
        if text:
            reply = self._reply()
            reply.text = f"{reply.text} {text}".strip()

    def _metrics(self, metrics: dict[str, Any]) -> None:
        kind = metrics.get("kind")
        if kind == "connect":
            self.connected = True
            self._next()
        elif kind == "response":
            reply = self._reply()
            self.current = None
            reply.seq = self._next()
            reply.done_ms = self.clock()
            reply.status = metrics.get("status")
            reply.interrupted = bool(metrics.get("interrupted"))
            reply.tool_calls = int(metrics.get("tool_calls") or 0)
            self.replies.append(reply)

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        if cmd.get_name() == "flush":
            now = self.clock()
            self.flushes.append(now)
            for reply in (*self.replies[-2:], self.current):
                end = None if reply is None else reply.playback_end_ms
                if reply is not None and end is not None and end > now:
                    reply.cut_ms = now
            self._next()
            await self._changed_now()
        await env.return_result(CmdResult.create(StatusCode.OK), cmd)
