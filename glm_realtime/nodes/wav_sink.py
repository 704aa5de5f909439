"""``wav_sink``: write received audio frames to a mono s16 WAV file.

The file is opened at the first frame, at that frame's rate; a frame at another rate
is dropped (logged once). Multi-channel s16 frames are downmixed. Cmd ``flush`` is
counted (:attr:`WavSink.flush_count`) and answered OK. The file is closed on stop;
without any frame an empty WAV at ``sample_rate`` is written.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from ..host import AsyncTenEnv, AudioFrame, Cmd, CmdResult, Extension, StatusCode, register_addon
from .pcm import to_mono_s16

__all__ = ["WavSink"]

MANIFEST = {
    "type": "extension",
    "name": "wav_sink",
    "version": "0.1.0",
    "api": {
        "property": {"path": {"type": "string"}, "sample_rate": {"type": "int32"}},
        "cmd_in": [{"name": "flush"}],
        "audio_frame_in": [{"name": "pcm_frame"}],
    },
}
DEFAULTS = {"path": "", "sample_rate": 24000}


@register_addon("wav_sink", manifest=MANIFEST, defaults=DEFAULTS)
class WavSink(Extension):
    """Writes every received frame to ``path``.

    Attributes:
        flush_count: ``flush`` commands received.
        frames_written: Frames written.
        samples_written: Mono samples written.
        sample_rate: Rate of the file (0 until the first frame).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.flush_count = 0
        self.frames_written = 0
        self.samples_written = 0
        self.sample_rate = 0
        self._path = Path()
        self._wav: wave.Wave_write | None = None
        self._closed = False
        self._complained: set[str] = set()

    async def on_init(self, env: AsyncTenEnv) -> None:
        path = env.get_property_string("path")
        if not path:
            raise ValueError("wav_sink needs a 'path'")
        self._path = Path(path)

    def _open(self, rate: int) -> wave.Wave_write:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        wav = wave.open(str(self._path), "wb")  # noqa: SIM115 - open for the run, see _close
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        self.sample_rate = rate
        return wav

    def _complain_once(self, env: AsyncTenEnv, key: str, text: str) -> None:
        if key not in self._complained:
            self._complained.add(key)
            env.log_error(text)

    async def on_audio_frame(self, env: AsyncTenEnv, audio_frame: AudioFrame) -> None:
        rate = audio_frame.get_sample_rate()
        width = audio_frame.get_bytes_per_sample()
        channels = max(1, audio_frame.get_number_of_channels())
        if self._closed:
            return
        if width != 2:
            self._complain_once(env, "width", f"dropping {width}-byte frames: only s16 is written")
            return
        if self._wav is None:
            self._wav = self._open(rate)
        elif rate != self.sample_rate:
            self._complain_once(
                env,
                "rate",
                f"dropping frames at {rate} Hz: '{self._path}' is being written at "
                f"{self.sample_rate} Hz",
            )
            return
        buf = audio_frame.get_buf()
        samples = np.frombuffer(buf[: len(buf) - len(buf) % 2], "<i2").astype(np.int64)
        mono = to_mono_s16(samples, channels)
        self._wav.writeframes(mono.astype("<i2").tobytes())
        self.frames_written += 1
        self.samples_written += len(mono)

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        if cmd.get_name() == "flush":
            self.flush_count += 1
        result = CmdResult.create(StatusCode.OK)
        result.set_property_string("detail", "success")
        await env.return_result(result, cmd)

    async def on_stop(self, env: AsyncTenEnv) -> None:
        self._close(env)

    async def on_deinit(self, env: AsyncTenEnv) -> None:
        self._close(env)  # when the graph failed to start, on_stop is not called

    def _close(self, env: AsyncTenEnv) -> None:
        if self._closed or not self._path.name:
            return
        self._closed = True
        wav = self._wav or self._open(env.get_property_int("sample_rate"))
        wav.close()
        self._wav = None
        env.log_info(f"wrote {self.samples_written} samples to '{self._path}'")
