"""The ``glm_v2v_python`` graph node: TEN messages in and out of a VoiceSession.

This module is glue only. Protocol lives in :mod:`realtime`, conversation state in
:class:`~glm_realtime.session.VoiceSession`; here messages are translated:

* in: ``pcm_frame`` audio, cmds ``flush``, ``on_user_joined``, ``on_user_left``,
  ``tool_register``; data ``video_frame`` (JPEG in ``buf``, ``video_passive`` mode);
* out: ``pcm_frame`` audio, cmds ``flush``, ``tool_call``, ``retrieve``; data
  ``text_data``, ``append``, ``metrics``, ``error``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from glm_realtime.config import ADDON_NAME, ExtensionConfig
from glm_realtime.host.env import AsyncTenEnv
from glm_realtime.host.extension import Extension
from glm_realtime.host.messages import AudioFrame, Cmd, CmdResult, Data, StatusCode
from glm_realtime.host.registry import register_addon
from glm_realtime.session import ToolOutcome, VoiceSession
from glm_realtime.session.memory import Role
from glm_realtime.tools import tool_from_metadata, tool_result_text
from realtime.errors import ConfigError

__all__ = ["GLMRealtimeExtension"]

ADDON_DIR = Path(__file__).parent


class ToolCallFailed(RuntimeError):
    """The tool node answered with an error."""


@register_addon(ADDON_NAME, base_dir=ADDON_DIR)
class GLMRealtimeExtension(Extension):
    """Voice-to-voice with GLM-Realtime as a graph node."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.session: VoiceSession | None = None
        self.config: ExtensionConfig | None = None
        self._env: AsyncTenEnv | None = None
        self.remote_stream_id = 0
        self._frame_problems: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self, env: AsyncTenEnv) -> None:
        self._env = env
        properties = json.loads(env.get_property_to_json())
        config = ExtensionConfig.from_properties(properties, node=self.name)
        if config.auth != "none" and not config.api_key.strip():
            raise ConfigError(
                f"property 'api_key' of node '{self.name}' is empty: set GLM_API_KEY, "
                "or run the embedded backend (glm-realtime run without a key)"
            )
        self.config = config
        self.session = VoiceSession(config, self)
        if config.enable_storage:
            await self._retrieve_history(env)
        self.session.start()
        env.log_info(
            f"started: {config.url}, model {config.model}, key of {len(config.api_key)} chars"
        )

    async def on_stop(self, env: AsyncTenEnv) -> None:
        if self.session is not None:
            await self.session.stop()

    async def _retrieve_history(self, env: AsyncTenEnv) -> None:
        assert self.session is not None
        result = await env.send_cmd(Cmd.create("retrieve"))
        if result.get_status_code() != StatusCode.OK:
            detail = _detail(result)
            env.log_warn(f"no history retrieved ({detail}); starting with an empty memory")
            return
        try:
            records = json.loads(result.get_property_string("response"))
            if not isinstance(records, list):
                raise ValueError("'response' is not a JSON array")
        except (ValueError, RuntimeError) as exc:
            env.log_warn(f"history from storage ignored: {exc}")
            return
        loaded = self.session.load_history(records)
        env.log_info(f"retrieved {loaded} turns of history")

    # --------------------------------------------------------------------- inputs

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        session = self.session
        result = CmdResult.create(StatusCode.OK)
        name = cmd.get_name()
        if session is None:
            result = _error(f"'{self.name}' is not started")
        else:
            match name:
                case "flush":
                    session.end_user_turn()
                case "on_user_joined":
                    session.user_joined()
                case "on_user_left":
                    session.user_left()
                case "tool_register":
                    result = await self._register_tool(session, cmd)
                case _:
                    result = _error(f"'{self.name}' does not handle cmd '{name}'")
        await env.return_result(result, cmd)

    async def _register_tool(self, session: VoiceSession, cmd: Cmd) -> CmdResult:
        try:
            tool = tool_from_metadata(json.loads(cmd.get_property_to_json("tool")))
        except (ConfigError, ValueError, RuntimeError) as exc:
            return _error(f"tool_register refused: {exc}")
        if session.config.chat_mode != "audio":
            return _error("tool_register refused: GLM supports tools only in chat_mode 'audio'")
        session.register_tool(tool)
        result = CmdResult.create(StatusCode.OK)
        result.set_property_string("detail", f"tool '{tool.name}' registered")
        return result

    async def on_audio_frame(self, env: AsyncTenEnv, audio_frame: AudioFrame) -> None:
        if self.session is None:
            return
        if audio_frame.is_property_exist("stream_id"):
            self.remote_stream_id = audio_frame.get_property_int("stream_id")
        pcm = self._mono_s16(env, audio_frame)
        if pcm is not None:
            await self.session.push_audio(pcm, audio_frame.get_sample_rate())

    def _mono_s16(self, env: AsyncTenEnv, frame: AudioFrame) -> bytes | None:
        width, channels = frame.get_bytes_per_sample(), frame.get_number_of_channels()
        problem = None
        if width != 2:
            problem = f"{width}-byte samples (expected 16-bit)"
        elif channels not in (1, 2):
            problem = f"{channels} channels (expected 1 or 2)"
        if problem is not None:
            if problem not in self._frame_problems:  # once per kind, not per frame
                self._frame_problems.add(problem)
                env.log_error(f"dropping pcm_frame with {problem}")
            return None
        buf = bytes(frame.get_buf())
        if channels == 2:
            stereo = np.frombuffer(buf[: len(buf) // 4 * 4], dtype="<i2").reshape(-1, 2)
            buf = stereo.mean(axis=1).astype("<i2").tobytes()
        return buf

    async def on_data(self, env: AsyncTenEnv, data: Data) -> None:
        if self.session is not None and data.get_name() == "video_frame":
            await self.session.push_video_frame(bytes(data.get_buf()))

    # ------------------------------------------------- SessionHandler: outputs

    @property
    def env(self) -> AsyncTenEnv:
        """The node's environment (set at start)."""
        assert self._env is not None, "extension not started"
        return self._env

    async def send_audio(self, pcm: bytes, sample_rate: int) -> None:
        await self.env.send_audio_frame(AudioFrame.from_buffer("pcm_frame", pcm, sample_rate))

    async def send_transcript(self, text: str, role: Role, final: bool) -> None:
        assert self.config is not None
        data = Data.create("text_data")
        data.set_property_string("text", text)
        data.set_property_bool("is_final", final)
        data.set_property_bool("end_of_segment", final)
        data.set_property_string("role", role)
        stream_id = self.remote_stream_id if role == "user" else self.config.stream_id
        data.set_property_int("stream_id", stream_id)
        await self.env.send_data(data)

    async def send_flush(self) -> None:
        result = await self.env.send_cmd(Cmd.create("flush"))
        if result.get_status_code() != StatusCode.OK:
            self.env.log_debug(f"flush not acknowledged: {_detail(result)}")

    async def call_tool(self, name: str, arguments: str) -> ToolOutcome:
        cmd = Cmd.create("tool_call")
        cmd.set_property_string("name", name)
        try:
            cmd.set_property_from_json("arguments", arguments)
        except (ValueError, RuntimeError):
            cmd.set_property_string("arguments", arguments)  # not JSON: pass it as text
        result = await self.env.send_cmd(cmd)
        if result.get_status_code() != StatusCode.OK:
            raise ToolCallFailed(_detail(result))
        return ToolOutcome(tool_result_text(result.get_property_to_json("tool_result")))

    async def send_metrics(self, metrics: dict[str, object]) -> None:
        data = Data.create("metrics")
        data.set_property_string("module", ADDON_NAME)
        data.set_property_from_json("metrics", json.dumps(metrics))
        await self.env.send_data(data)

    async def send_error(self, code: str | None, message: str, fatal: bool) -> None:
        data = Data.create("error")
        data.set_property_string("module", ADDON_NAME)
        data.set_property_string("code", code or "")
        data.set_property_string("message", message)
        data.set_property_bool("fatal", fatal)
        await self.env.send_data(data)

    async def append_history(self, role: Role, text: str) -> None:
        data = Data.create("append")
        data.set_property_string("text", text)
        data.set_property_string("role", role)
        data.set_property_int("stream_id", self.remote_stream_id if role == "user" else 0)
        await self.env.send_data(data)


def _error(detail: str) -> CmdResult:
    result = CmdResult.create(StatusCode.ERROR)
    result.set_property_string("detail", detail)
    return result


def _detail(result: CmdResult) -> str:
    if result.is_property_exist("detail"):
        return result.get_property_string("detail")
    return "no detail"
