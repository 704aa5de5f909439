"""The caller's voice: lines synthesised with the embedded backend's TTS, streamed as audio.

:class:`CallerVoice` renders a line with :mod:`glm_local.speech.tts` (cached, bounded in
bytes, rendered off the event loop). :class:`CallerNode` (addon ``gym_caller``) is the
caller's microphone in the graph: it joins the call (``on_user_joined``), then streams
``pcm_frame`` audio to the ``glm_v2v_python`` node, the path a real user's voice takes,
with silence between the lines it is given. There is no text shortcut.

Clock. On the virtual clock (``realtime=False``) time is the audio sent so far: a line
and the silence it is told to skip (:meth:`CallerNode.fast_forward`) go out as fast as
the graph takes them, while waiting for the assistant the silence is paced at wall-clock
speed (so compute time counts as it is), and between steps (``listening`` off) nothing
is sent and the clock stands still. In real time every frame is paced at 1x and the
microphone never stops; time is wall time since the call started.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from glm_realtime.host import Addon, AsyncTenEnv, AudioFrame, Cmd, Extension

__all__ = ["FRAME_MS", "RATE", "CallerNode", "CallerVoice", "Utterance"]

RATE = 24000
FRAME_MS = 100
_FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
_SILENCE = bytes(_FRAME_BYTES)


class CallerVoice:
    """Renders caller lines to 24 kHz s16le mono; shared by every env of a backend.

    Args:
        engine: ``"piper"``, ``"espeak"`` (see :func:`glm_local.speech.make_synthesizer`) or
            ``"auto"``: piper when the ``piper`` extra is installed, else espeak. The
            embedded backend's recogniser understands piper's natural voice far better
            than espeak's.
        voice: the engine's voice (its default if None).
        cache_bytes: rendered lines kept (least recently used dropped first).
    """

    def __init__(
        self,
        engine: Literal["auto", "piper", "espeak"] = "auto",
        voice: str | None = None,
        cache_bytes: int = 32 << 20,
    ) -> None:
        if engine not in ("auto", "piper", "espeak"):
            raise ValueError(f"caller voice engine must be auto, piper or espeak, got {engine!r}")
        if engine == "auto":
            engine = "piper" if importlib.util.find_spec("piper") is not None else "espeak"
        self.engine: Literal["piper", "espeak"] = engine
        self.voice = voice
        self.cache_bytes = cache_bytes
        self._synth: Any = None
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()

    async def render(self, text: str) -> bytes:
        """The audio of ``text`` (blocking synthesis runs in a worker thread)."""
        with self._lock:
            pcm = self._cache.get(text)
            if pcm is not None:
                self._cache.move_to_end(text)
                return pcm
        return await asyncio.to_thread(self._render, text)

    def _render(self, text: str) -> bytes:
        from glm_local.speech import make_synthesizer

        with self._lock:
            if self._synth is None:
                self._synth = make_synthesizer(self.engine, self.voice)
            synth = self._synth
        pcm = b"".join(synth.synthesize(text))
        with self._lock:
            if text not in self._cache and len(pcm) <= self.cache_bytes:
                self._cache[text] = pcm
                self._cached += len(pcm)
                while self._cached > self.cache_bytes:
                    _, dropped = self._cache.popitem(last=False)
                    self._cached -= len(dropped)
        return pcm


@dataclass(eq=False)
class Utterance:
    """One line on its way out; times are on the call's clock, set as it is sent."""

    duration_ms: float
    start_ms: float | None = None
    end_ms: float | None = None
    sent: asyncio.Event = field(default_factory=asyncio.Event)


MANIFEST: dict[str, Any] = {
    "type": "extension",
    "name": "gym_caller",
    "version": "0.1.0",
    "api": {
        "property": {},
        "cmd_out": [{"name": "on_user_joined"}, {"name": "on_user_left"}],
        "audio_frame_out": [{"name": "pcm_frame"}],
    },
}


class CallerNode(Extension):
    """The caller's microphone; set :attr:`realtime` before the graph starts."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.realtime = False
        self.sent_ms = 0.0
        self._t0 = time.monotonic()
        self._chunks: deque[tuple[bytes, Utterance, bool, bool]] = deque()  # pcm, line, last, paced
        self._fast_until_ms = 0.0
        self._listening = asyncio.Event()
        self._progress = asyncio.Condition()
        self._env: AsyncTenEnv | None = None
        self._anchor: tuple[float, float] | None = None  # (wall, clock ms) while pacing

    @classmethod
    def as_addon(cls) -> Addon:
        """The ``gym_caller`` addon."""
        return Addon("gym_caller", cls, MANIFEST, {}, origin="glm_gym")

    def now_ms(self) -> float:
        """The call's clock: audio sent (virtual) or wall time since start (real time)."""
        if self.realtime:
            return (time.monotonic() - self._t0) * 1000
        anchor = self._anchor
        if anchor is None:
            return self.sent_ms
        # Paced: time runs with the wall clock through the frame last sent.
        elapsed = (time.monotonic() - anchor[0]) * 1000
        return min(max(anchor[1] + elapsed, self.sent_ms - FRAME_MS), self.sent_ms)

    async def on_start(self, env: AsyncTenEnv) -> None:
        self._env = env
        self._t0 = time.monotonic()
        if self.realtime:
            self._listening.set()
        env.create_task(self._microphone(env), "microphone")
        await env.send_cmd(Cmd.create("on_user_joined"))

    def listen(self, on: bool) -> None:
        """Virtual clock: stream (paced) while on, stand still while off. Real time: no-op."""
        if on or self.realtime:
            self._listening.set()
        else:
            self._listening.clear()

    def speak(self, pcm: bytes, *, tail_ms: float = 0.0, paced: bool = False) -> Utterance:
        """Queue a line; on the virtual clock it and ``tail_ms`` of silence go out fast,
        unless ``paced`` (a barge-in: how soon the assistant yields is measured while the
        line is being spoken, so it goes out at 1x)."""
        pcm = pcm[: len(pcm) // 2 * 2]
        utterance = Utterance(len(pcm) / 2 / RATE * 1000)
        pieces = [pcm[i : i + _FRAME_BYTES] for i in range(0, len(pcm), _FRAME_BYTES)] or [b""]
        for index, piece in enumerate(pieces):
            self._chunks.append((piece, utterance, index == len(pieces) - 1, paced))
        if not paced:
            queued = sum(len(c[0]) for c in self._chunks) / 2 / RATE * 1000
            self.fast_forward(self.sent_ms + queued + tail_ms)
        return utterance

    def fast_forward(self, to_ms: float) -> None:
        """Virtual clock: send silence without pacing until the clock reaches ``to_ms``."""
        self._fast_until_ms = max(self._fast_until_ms, to_ms)

    async def wait_until(self, ms: float) -> None:
        """Return once the clock reached ``ms``."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.now_ms() >= ms)

    def fall_silent(self) -> None:
        """Drop the lines not yet sent and stop skipping ahead (a cancelled step)."""
        self._chunks.clear()
        self._fast_until_ms = self.sent_ms
        self.listen(False)

    async def hang_up(self) -> None:
        """Leave the call: ``on_user_left``, and the microphone goes quiet."""
        self._chunks.clear()
        self._listening.clear()
        if self._env is not None:
            await self._env.send_cmd(Cmd.create("on_user_left"))

    async def _microphone(self, env: AsyncTenEnv) -> None:
        while True:
            if not self._listening.is_set():
                self._anchor = None
                await self._listening.wait()
            if self._chunks:
                fast = not self.realtime and not self._chunks[0][3]
            else:
                fast = not self.realtime and self.sent_ms < self._fast_until_ms
            if fast:
                self._anchor = None
                await asyncio.sleep(0)  # let the other conversations run
            else:
                if self._anchor is None:
                    self._anchor = (time.monotonic(), self.sent_ms)
                anchor = self._anchor
                delay = anchor[0] + (self.sent_ms - anchor[1]) / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self._chunks:
                chunk, utterance, last, _ = self._chunks.popleft()
            else:
                chunk, utterance, last = _SILENCE, None, False
            if utterance is not None and utterance.start_ms is None:
                utterance.start_ms = self.now_ms()
            if chunk:
                await env.send_audio_frame(AudioFrame.from_buffer("pcm_frame", chunk, RATE))
            self.sent_ms += len(chunk) / 2 / RATE * 1000
            if utterance is not None and last:
                utterance.end_ms = self.now_ms()
                utterance.sent.set()
            async with self._progress:
                self._progress.notify_all()
