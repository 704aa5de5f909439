"""Load ``glm_v2v_python`` under the real TEN runtime (0.8 Python API).

Importing this module registers the addon with TEN; it needs TEN's ``ten`` module,
which comes with the runtime, not from PyPI. A TEN extension folder for the node is
``manifest.json`` and ``property.json`` from this package plus an ``__init__.py``
holding ``from glm_realtime import ten_addon``.

The shim only translates: TEN messages to the host's message types and back, and
TEN's ``send_cmd`` (a ``(result, error)`` tuple, ``None`` when nothing is connected)
to the host contract (always a result; ERROR with a ``detail`` when there is none).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, cast

from glm_realtime.extension import GLMRealtimeExtension
from glm_realtime.host.env import AsyncTenEnv
from glm_realtime.host.messages import AudioFrame, Cmd, CmdResult, Data, Msg, StatusCode

__all__ = ["TenEnvAdapter", "from_ten", "to_ten"]


def _properties(msg: Any) -> dict[str, Any]:
    try:
        value = json.loads(msg.get_property_to_json(""))
    except Exception:  # noqa: BLE001 - a message without properties
        return {}
    return value if isinstance(value, dict) else {}


def _copy_properties(source: dict[str, Any], target: Any) -> None:
    for key, value in source.items():
        target.set_property_from_json(key, json.dumps(value))


def from_ten(msg: Any, kind: str) -> Msg:
    """A host message with the name, properties and payload of TEN message ``msg``."""
    name = msg.get_name()
    if kind == "audio_frame":
        frame = AudioFrame.from_buffer(
            name,
            bytes(msg.get_buf()),
            msg.get_sample_rate(),
            msg.get_number_of_channels(),
            msg.get_bytes_per_sample(),
        )
        _copy_properties(_properties(msg), frame)
        return frame
    ours: Msg = {"cmd": Cmd, "data": Data}[kind].create(name)
    _copy_properties(_properties(msg), ours)
    if kind == "data":
        with contextlib.suppress(Exception):  # data without a buffer
            cast(Data, ours).set_buf(bytes(msg.get_buf()))
    return ours


def to_ten(ten: Any, msg: Msg) -> Any:
    """The TEN message for host message ``msg`` (``ten`` is TEN's module)."""
    props = json.loads(msg.get_property_to_json())
    if isinstance(msg, AudioFrame):
        frame = ten.AudioFrame.create(msg.get_name())
        frame.set_sample_rate(msg.get_sample_rate())
        frame.set_bytes_per_sample(msg.get_bytes_per_sample())
        frame.set_number_of_channels(msg.get_number_of_channels())
        frame.set_samples_per_channel(msg.get_samples_per_channel())
        frame.set_data_fmt(ten.AudioFrameDataFmt.INTERLEAVE)
        payload = msg.get_buf()
        frame.alloc_buf(len(payload))
        buf = frame.lock_buf()
        buf[:] = payload
        frame.unlock_buf(buf)
        _copy_properties(props, frame)
        return frame
    out = (ten.Cmd if isinstance(msg, Cmd) else ten.Data).create(msg.get_name())
    _copy_properties(props, out)
    return out


class TenEnvAdapter:
    """The host's ``AsyncTenEnv`` contract over TEN's ``AsyncTenEnv``."""

    def __init__(self, ten: Any, ten_env: Any) -> None:
        self._ten = ten
        self._env = ten_env
        self._incoming: dict[int, Any] = {}  # our cmd id -> TEN cmd, for return_result

    def remember(self, ours: Cmd, theirs: Any) -> None:
        """Map a received cmd to TEN's original so its result goes back to it."""
        self._incoming[ours.cmd_id] = theirs

    async def send_cmd(self, cmd: Cmd) -> CmdResult:
        result, error = await self._env.send_cmd(to_ten(self._ten, cmd))
        if result is None:
            return CmdResult.error(f"no result for cmd '{cmd.get_name()}': {error}")
        status = (
            StatusCode.OK
            if result.get_status_code() == self._ten.StatusCode.OK
            else StatusCode.ERROR
        )
        ours = CmdResult.create(status)
        _copy_properties(_properties(result), ours)
        return ours

    async def send_data(self, data: Data) -> None:
        await self._env.send_data(to_ten(self._ten, data))

    async def send_audio_frame(self, audio_frame: AudioFrame) -> None:
        await self._env.send_audio_frame(to_ten(self._ten, audio_frame))

    async def return_result(self, result: CmdResult, target_cmd: Cmd) -> None:
        theirs = self._incoming.pop(target_cmd.cmd_id)
        code = (
            self._ten.StatusCode.OK
            if result.get_status_code() == StatusCode.OK
            else self._ten.StatusCode.ERROR
        )
        ten_result = self._ten.CmdResult.create(code)
        _copy_properties(_properties(result), ten_result)
        await self._env.return_result(ten_result, theirs)

    def get_property_to_json(self, path: str | None = None) -> str:
        return str(self._env.get_property_to_json(path or ""))

    def log_debug(self, msg: str) -> None:
        self._env.log_debug(msg)

    def log_info(self, msg: str) -> None:
        self._env.log_info(msg)

    def log_warn(self, msg: str) -> None:
        self._env.log_warn(msg)

    def log_error(self, msg: str) -> None:
        self._env.log_error(msg)


def _register(ten: Any) -> None:
    class GLMRealtimeTenExtension(ten.AsyncExtension):  # type: ignore[misc]
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.inner = GLMRealtimeExtension(name)
            self.adapter: TenEnvAdapter | None = None

        def _env(self, ten_env: Any) -> AsyncTenEnv:
            if self.adapter is None:
                self.adapter = TenEnvAdapter(ten, ten_env)
            return cast(AsyncTenEnv, self.adapter)

        async def on_start(self, ten_env: Any) -> None:
            await self.inner.on_start(self._env(ten_env))

        async def on_stop(self, ten_env: Any) -> None:
            await self.inner.on_stop(self._env(ten_env))

        async def on_cmd(self, ten_env: Any, cmd: Any) -> None:
            env = self._env(ten_env)
            ours = cast(Cmd, from_ten(cmd, "cmd"))
            assert self.adapter is not None
            self.adapter.remember(ours, cmd)
            await self.inner.on_cmd(env, ours)

        async def on_data(self, ten_env: Any, data: Any) -> None:
            await self.inner.on_data(self._env(ten_env), cast(Data, from_ten(data, "data")))

        async def on_audio_frame(self, ten_env: Any, audio_frame: Any) -> None:
            frame = cast(AudioFrame, from_ten(audio_frame, "audio_frame"))
            await self.inner.on_audio_frame(self._env(ten_env), frame)

    @ten.register_addon_as_extension("glm_v2v_python")
    class GLMRealtimeExtensionAddon(ten.Addon):  # type: ignore[misc]
        def on_create_instance(self, ten_env: Any, name: str, context: Any) -> None:
            ten_env.on_create_instance_done(GLMRealtimeTenExtension(name), context)


try:
    import ten as _ten_module
except ImportError:  # pragma: no cover - without the runtime there is nothing to register
    _ten_module = None
else:
    _register(_ten_module)
