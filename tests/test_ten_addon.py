"""The TEN runtime shim, driven through a stand-in ``ten`` module.

The TEN runtime is not on PyPI. The stand-in follows its documented 0.8 Python API:
the host's message classes already have TEN's shape, and the env returns TEN's
``(result, error)`` tuples, with ``None`` when nothing is connected.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from glm_realtime.host import messages as host_messages
from tests.fake_glm import Expect, FakeGLMServer, Stall
from tests.glm_graph import KEY


class _StubTenEnv:
    def __init__(self, props: dict[str, Any]) -> None:
        self.props = props
        self.sent: list[Any] = []
        self.results: list[tuple[Any, Any]] = []
        self.logs: list[str] = []

    def get_property_to_json(self, path: str) -> str:
        return json.dumps(self.props[path] if path else self.props)

    async def send_cmd(self, cmd: Any) -> tuple[Any, Any]:
        self.sent.append(cmd)
        return None, "no destination"

    async def send_data(self, data: Any) -> None:
        self.sent.append(data)

    async def send_audio_frame(self, frame: Any) -> None:
        self.sent.append(frame)

    async def return_result(self, result: Any, cmd: Any) -> None:
        self.results.append((result, cmd))

    def log_debug(self, msg: str) -> None:
        self.logs.append(msg)

    log_info = log_warn = log_error = log_debug


@pytest.fixture
def ten_module() -> Iterator[types.ModuleType]:
    module = types.ModuleType("ten")
    registered: dict[str, type] = {}

    class AsyncExtension:
        def __init__(self, name: str) -> None:
            self.name = name

    def register_addon_as_extension(name: str) -> Any:
        def decorate(cls: type) -> type:
            registered[name] = cls
            return cls

        return decorate

    for attr in ("Cmd", "CmdResult", "Data", "AudioFrame", "StatusCode", "AudioFrameDataFmt"):
        setattr(module, attr, getattr(host_messages, attr))
    module.AsyncExtension = AsyncExtension  # type: ignore[attr-defined]
    module.Addon = object  # type: ignore[attr-defined]
    module.register_addon_as_extension = register_addon_as_extension  # type: ignore[attr-defined]
    module.registered = registered  # type: ignore[attr-defined]
    sys.modules["ten"] = module
    import glm_realtime.ten_addon as shim

    importlib.reload(shim)
    yield module
    del sys.modules["ten"]
    importlib.reload(shim)


async def test_addon_registers_and_runs_the_extension_under_ten(ten_module: Any) -> None:
    created: list[Any] = []

    class _CreateEnv:
        def on_create_instance_done(self, instance: Any, context: Any) -> None:
            created.append(instance)

    addon = ten_module.registered["glm_v2v_python"]()
    addon.on_create_instance(_CreateEnv(), "v2v", None)
    (extension,) = created

    script = [[Expect("session.update"), Expect("input_audio_buffer.append"), Stall()]]
    async with FakeGLMServer(script) as server:
        base, path = server.url.split("/api/", 1)
        env = _StubTenEnv({"base_uri": base, "path": "/api/" + path, "api_key": KEY})
        await extension.on_start(env)
        register = ten_module.Cmd.create("tool_register")
        register.set_property_from_json("tool", json.dumps({"name": "t", "description": "d"}))
        await extension.on_cmd(env, register)
        frame = ten_module.AudioFrame.from_buffer("pcm_frame", b"\x01\x00" * 1600, 16000)
        frame.set_property_int("stream_id", 42)
        await extension.on_audio_frame(env, frame)
        fake = await server.connection(0)
        await fake.wait_received("input_audio_buffer.append")
        await extension.on_stop(env)
    ((result, answered),) = env.results
    assert answered is register  # the result goes back to TEN's own cmd object
    assert result.get_status_code() == ten_module.StatusCode.OK
    assert "tool 't' registered" in result.get_property_string("detail")
    assert extension.inner.remote_stream_id == 42
    assert server.violations == []


async def test_send_cmd_with_nothing_connected_becomes_an_error_result(ten_module: Any) -> None:
    from glm_realtime.ten_addon import TenEnvAdapter

    adapter = TenEnvAdapter(ten_module, _StubTenEnv({}))
    result = await adapter.send_cmd(host_messages.Cmd.create("retrieve"))
    assert result.get_status_code() == host_messages.StatusCode.ERROR
    assert "no result for cmd 'retrieve': no destination" in result.get_property_string("detail")
