"""``file_source``: play an audio file into the graph as ``pcm_frame`` audio frames.

On start it sends cmd ``on_user_joined``, then streams the file as mono s16 frames of
``frame_ms`` at the file's own rate (preceded by ``leading_silence_ms`` and followed
by ``trailing_silence_ms`` of silence, so a server VAD can end the turn), then
optionally sends cmd ``on_user_left``, then sets :attr:`FileSource.finished`.

Pacing follows a monotonic-clock schedule: frame ``k`` is due at
``t0 + start_k / rate / speed``, so sleep overshoot never accumulates. ``speed`` 0
sends as fast as the destinations' queues accept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..host import AsyncTenEnv, AudioFrame, AudioFrameDataFmt, Cmd, Extension, register_addon
from .pcm import frame_bounds, read_audio

__all__ = ["AudioSourceError", "FileSource"]

MANIFEST = {
    "type": "extension",
    "name": "file_source",
    "version": "0.1.0",
    "api": {
        "property": {
            "path": {"type": "string"},
            "sample_rate": {"type": "int32"},
            "frame_ms": {"type": "int32"},
            "speed": {"type": "float64"},
            "leading_silence_ms": {"type": "int32"},
            "trailing_silence_ms": {"type": "int32"},
            "stream_id": {"type": "int64"},
            "channel": {"type": "string"},
            "user_left_at_end": {"type": "bool"},
        },
        "cmd_out": [{"name": "on_user_joined"}, {"name": "on_user_left"}],
        "audio_frame_out": [
            {
                "name": "pcm_frame",
                "property": {"stream_id": {"type": "int64"}, "channel": {"type": "string"}},
            }
        ],
    },
}
DEFAULTS = {
    "path": "",
    "sample_rate": 24000,
    "frame_ms": 10,
    "speed": 1.0,
    "leading_silence_ms": 0,
    "trailing_silence_ms": 2000,
    "stream_id": 123,
    "channel": "",
    "user_left_at_end": False,
}


class AudioSourceError(RuntimeError):
    """The audio file cannot be used; the message names the path."""


@register_addon("file_source", manifest=MANIFEST, defaults=DEFAULTS)
class FileSource(Extension):
    """Streams an audio file as ``pcm_frame`` frames.

    Attributes:
        finished: Set once every frame (and ``on_user_left``, if asked) was sent.
        frames_sent: Number of frames sent so far.
        seconds_sent: Audio sent so far, in seconds (the silence around the file included).
        sample_rate: Rate of the stream (the file's), known after ``on_start``.
        clock: Monotonic clock in seconds; replace before start to test pacing.
        sleep: Coroutine sleeping a number of seconds; replaced with ``clock``.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.finished = asyncio.Event()
        self.frames_sent = 0
        self.seconds_sent = 0.0
        self.sample_rate = 0
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def on_start(self, env: AsyncTenEnv) -> None:
        given_path = env.get_property_string("path")
        if not given_path:
            raise AudioSourceError("property 'path' is empty: set it to the audio file to play")
        path = Path(given_path)
        frame_ms = env.get_property_int("frame_ms")
        speed = env.get_property_float("speed")
        if frame_ms <= 0 or speed < 0:
            raise AudioSourceError(f"frame_ms must be > 0 and speed >= 0 (got {frame_ms}, {speed})")
        try:
            samples, rate = await asyncio.to_thread(
                read_audio, path, env.get_property_int("sample_rate")
            )
        except (OSError, ValueError) as exc:
            raise AudioSourceError(f"cannot read audio file '{path}': {exc}") from exc
        self.sample_rate = rate
        lead = np.zeros(rate * env.get_property_int("leading_silence_ms") // 1000, np.int16)
        trail = np.zeros(rate * env.get_property_int("trailing_silence_ms") // 1000, np.int16)
        stream = np.concatenate([lead, samples, trail])
        env.log_info(
            f"streaming '{path}': {len(samples) / rate:.2f} s at {rate} Hz, speed {speed:g}"
        )
        env.create_task(self._stream(env, stream, rate, frame_ms, speed), "stream")

    async def _stream(
        self,
        env: AsyncTenEnv,
        stream: npt.NDArray[np.int16],
        rate: int,
        frame_ms: int,
        speed: float,
    ) -> None:
        stream_id = env.get_property_int("stream_id")
        channel = env.get_property_string("channel")
        joined = await env.send_cmd(Cmd.create("on_user_joined"))
        env.log_debug(f"on_user_joined -> {joined.get_status_code().name}")
        t0 = self.clock()
        for start, end in frame_bounds(len(stream), rate, frame_ms):
            if speed > 0:
                delay = t0 + start / rate / speed - self.clock()
                if delay > 0:
                    await self.sleep(delay)
            elif self.frames_sent % 50 == 0:
                await asyncio.sleep(0)  # let others run even when nothing pushes back
            frame = AudioFrame.from_buffer("pcm_frame", stream[start:end].tobytes(), rate)
            frame.set_data_fmt(AudioFrameDataFmt.INTERLEAVE)
            frame.set_timestamp(round(start * 1000 / rate))
            frame.set_property_int("stream_id", stream_id)
            frame.set_property_string("channel", channel)
            await env.send_audio_frame(frame)
            self.frames_sent += 1
            self.seconds_sent = end / rate
        if env.get_property_bool("user_left_at_end"):
            await env.send_cmd(Cmd.create("on_user_left"))
        env.log_info(f"finished after {self.frames_sent} frames")
        self.finished.set()
