"""A whole test graph around the GLM node: source -> glm -> sink/collector (+tools, storage).

A ``probe`` node receives copies of what the GLM node sends (``flush``, ``pcm_frame``,
``text_data``, ``metrics``, ``error``), in the order sent, so tests wait on real messages
instead of sleeping, and can send cmds to the GLM node as if it were another node.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import glm_realtime.extension  # noqa: F401 - registers the glm_v2v_python addon
from glm_realtime.host.env import AsyncTenEnv
from glm_realtime.host.extension import Extension
from glm_realtime.host.graph import Graph, load_graph
from glm_realtime.host.messages import AudioFrame, Cmd, CmdResult, Data, StatusCode
from glm_realtime.host.registry import Addon, AddonRegistry
from glm_realtime.host.runner import GraphRunner
from glm_realtime.host.testing import Probe
from realtime.compat import timeout
from tests.fake_glm import STEP_TIMEOUT, Call, Expect, FakeConnection, FakeGLMServer, Send, Step

KEY = "test-id.test-secret"
_T = TypeVar("_T")


def tone_wav(path: Path, seconds: float = 1.0, rate: int = 22050, freq: float = 440.0) -> Path:
    """A mono 16-bit WAV of a tone (odd rate on purpose: the uplink must resample)."""
    n = int(seconds * rate)
    samples = (int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


class GateTools(Extension):
    """A tool node that holds every ``tool_call`` until the test opens ``gate``.

    It registers ``lookup`` at start, as tool nodes do; ``calls`` counts the calls that
    arrived (tests wait on it), and the answer is ``{"answer": "42"}``.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = asyncio.Event()
        self.calls = 0
        self.arrived = asyncio.Event()

    async def on_start(self, env: AsyncTenEnv) -> None:
        cmd = Cmd.create("tool_register")
        cmd.set_property_from_json("tool", json.dumps(LOOKUP))
        await env.send_cmd(cmd)

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        self.calls += 1
        self.arrived.set()
        await self.gate.wait()
        result = CmdResult.create(StatusCode.OK)
        content = json.dumps({"answer": "42"})
        result.set_property_from_json("tool_result", json.dumps({"content": content}))
        await env.return_result(result, cmd)


LOOKUP = {"name": "lookup", "description": "Look things up"}
GATE_TOOLS = Addon("gate_tools", GateTools, {"type": "extension", "name": "gate_tools"})


def build_graph(
    tmp: Path,
    url: str,
    *,
    glm: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    tools: dict[str, Any] | None = None,
    storage: dict[str, Any] | None = None,
    with_source: bool = True,
    tools_addon: str = "demo_tools",
    collector_addon: str = "transcript_collector",
    addons: tuple[Addon, ...] = (),
) -> Graph:
    """The graph; ``tools``/``storage`` None leaves that node out.

    ``tools_addon`` picks the tool node (``gate_tools`` for :class:`GateTools`),
    ``collector_addon`` the node taking ``text_data``/``metrics``/``error`` beside the
    probe; ``addons`` adds test addons to the registry.
    """
    base, path = url.split("/api/", 1)
    glm_props = {
        "base_uri": base,
        "path": "/api/" + path,
        "api_key": KEY,
        "reconnect_base_delay_ms": 10,
        "reconnect_max_delay_ms": 50,
        **(glm or {}),
    }
    nodes: list[dict[str, Any]] = [
        {"type": "extension", "name": "glm", "addon": "glm_v2v_python", "property": glm_props},
        {
            "type": "extension",
            "name": "sink",
            "addon": "wav_sink",
            "property": {"path": str(tmp / "out.wav")},
        },
        {
            "type": "extension",
            "name": "collector",
            "addon": collector_addon,
            "property": {"path": str(tmp / "transcript.jsonl")},
        },
        {"type": "extension", "name": "probe", "addon": "probe"},
    ]
    if with_source:
        source_props = {
            "path": str(tone_wav(tmp / "in.wav")),
            "speed": 0.0,
            "trailing_silence_ms": 200,
            **(source or {}),
        }
        nodes.insert(
            0,
            {
                "type": "extension",
                "name": "source",
                "addon": "file_source",
                "property": source_props,
            },
        )
    if tools is not None:
        nodes.append(
            {"type": "extension", "name": "tools", "addon": tools_addon, "property": tools}
        )
    if storage is not None:
        nodes.append(
            {"type": "extension", "name": "storage", "addon": "chat_storage", "property": storage}
        )
    glm_cmds = [
        {"name": "flush", "dest": [{"extension": "sink"}, {"extension": "probe"}]},
    ]
    if tools is not None:
        glm_cmds.append({"name": "tool_call", "dest": [{"extension": "tools"}]})
    if storage is not None:
        glm_cmds.append({"name": "retrieve", "dest": [{"extension": "storage"}]})
    glm_data = [
        {"name": name, "dest": [{"extension": "collector"}, {"extension": "probe"}]}
        for name in ("text_data", "metrics", "error")
    ]
    if storage is not None:
        glm_data.append({"name": "append", "dest": [{"extension": "storage"}]})
    connections: list[dict[str, Any]] = [
        {
            "extension": "glm",
            "cmd": glm_cmds,
            "data": glm_data,
            "audio_frame": [
                {"name": "pcm_frame", "dest": [{"extension": "sink"}, {"extension": "probe"}]}
            ],
        },
        {
            "extension": "probe",
            "cmd": [
                {"name": n, "dest": [{"extension": "glm"}]}
                for n in ("tool_register", "flush", "on_user_joined", "on_user_left")
            ],
            "data": [{"name": "video_frame", "dest": [{"extension": "glm"}]}],
            "audio_frame": [{"name": "pcm_frame", "dest": [{"extension": "glm"}]}],
        },
    ]
    if with_source:
        connections.append(
            {
                "extension": "source",
                "cmd": [{"name": "on_user_joined", "dest": [{"extension": "glm"}]}],
                "audio_frame": [{"name": "pcm_frame", "dest": [{"extension": "glm"}]}],
            }
        )
    if tools is not None:
        connections.append(
            {
                "extension": "tools",
                "cmd": [{"name": "tool_register", "dest": [{"extension": "glm"}]}],
            }
        )
    registry = AddonRegistry()
    registry.add(Probe.as_addon())
    registry.add(GATE_TOOLS)
    for addon in addons:
        registry.add(addon)
    app = {
        "_ten": {
            "predefined_graphs": [
                {"name": "e2e", "auto_start": True, "nodes": nodes, "connections": connections}
            ]
        }
    }
    return load_graph(app, registry=registry, environ={})


def texts(probe: Probe, role: str | None = None, *, final: bool | None = None) -> list[str]:
    """The ``text_data`` texts the probe saw, optionally by role and finality."""
    out = []
    for data in probe.data:
        if data.get_name() != "text_data":
            continue
        if role is not None and data.get_property_string("role") != role:
            continue
        if final is not None and data.get_property_bool("end_of_segment") != final:
            continue
        out.append(data.get_property_string("text"))
    return out


def data_named(probe: Probe, name: str) -> list[dict[str, Any]]:
    """Every data message ``name`` the probe saw, as its property dict."""
    return [json.loads(d.get_property_to_json()) for d in probe.data if d.get_name() == name]


def response_metrics(probe: Probe) -> dict[str, dict[str, Any]]:
    """The per-response ``metrics`` the probe saw, by response id."""
    out = {}
    for data in data_named(probe, "metrics"):
        metrics = data["metrics"]
        if metrics["kind"] == "response":
            out[metrics["response_id"]] = metrics
    return out


async def within(awaitable: Awaitable[_T], seconds: float = STEP_TIMEOUT) -> _T:
    """Await with a hang guard, so a broken behaviour fails fast instead of hanging."""
    async with timeout(seconds):
        return await awaitable


def flushes(probe: Probe) -> int:
    """How many ``flush`` cmds reached the probe."""
    return sum(1 for c in probe.cmds if c.get_name() == "flush")


async def send_cmd(runner: GraphRunner, name: str, **props: Any) -> CmdResult:
    """Send a cmd to the GLM node as the probe."""
    cmd = Cmd.create(name)
    for key, value in props.items():
        cmd.set_property_from_json(key, json.dumps(value))
    return await runner.env("probe").send_cmd(cmd)


async def send_data(runner: GraphRunner, name: str, buf: bytes) -> None:
    """Send data with a buffer to the GLM node as the probe."""
    data = Data.create(name)
    data.set_buf(buf)
    await runner.env("probe").send_data(data)


AUDIO_MS = 40


def pcm_delta(sample: int) -> str:
    """40 ms of 24 kHz audio, every sample ``sample``: frames tell whose audio they are."""
    return base64.b64encode(sample.to_bytes(2, "little", signed=True) * (24 * AUDIO_MS)).decode()


DELTA = pcm_delta(1)


def delta_event(rid: str, delta: str = DELTA) -> dict[str, Any]:
    """One ``response.audio.delta`` of response ``rid``."""
    return {"type": "response.audio.delta", "response_id": rid, "item_id": "a", "delta": delta}


def order(probe: Probe) -> list[str]:
    """What the probe received, in order: ``flush`` for the cmd, ``audio:<sample>`` per frame."""
    out = []
    for msg in probe.received:
        if isinstance(msg, Cmd) and msg.get_name() == "flush":
            out.append("flush")
        elif isinstance(msg, AudioFrame):
            out.append(f"audio:{int.from_bytes(bytes(msg.get_buf()[:2]), 'little', signed=True)}")
    return out


def turn(
    rid: str,
    words: list[str],
    *,
    user: str | None = "What time is it?",
    audio: int = 2,
    delta: str = DELTA,
) -> list[dict[str, Any]]:
    """A server VAD turn: the user speaks, GLM answers with text and audio."""
    events: list[dict[str, Any]] = []
    if user is not None:
        events += [
            {"type": "input_audio_buffer.speech_started"},
            {"type": "input_audio_buffer.speech_stopped"},
            {"type": "input_audio_buffer.committed", "item_id": f"u_{rid}"},
            {"type": "conversation.item.input_audio_transcription.completed", "transcript": user},
        ]
    events.append({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
    events += [
        {"type": "response.audio_transcript.delta", "response_id": rid, "delta": w} for w in words
    ]
    events += [
        {"type": "response.audio.delta", "response_id": rid, "item_id": "a", "delta": delta}
    ] * audio
    events += [
        {"type": "response.audio.done", "response_id": rid, "item_id": "a"},
        {
            "type": "response.done",
            "response": {
                "id": rid,
                "status": "completed",
                "usage": {"total_tokens": 9, "input_tokens": 5, "output_tokens": 4},
            },
        },
    ]
    return events


def until_tools(count: int) -> Callable[[FakeConnection], Awaitable[None]]:
    """A script step: wait for a session.update that carries ``count`` tools."""

    async def wait(fake: FakeConnection) -> None:
        while True:
            (update,) = await fake.expect("session.update")
            if len(update.session.tools) == count:
                return

    return wait


def waits_for(event: asyncio.Event) -> Step:
    """A script step that holds the server until the test sets ``event``."""

    async def wait(fake: FakeConnection) -> None:
        await event.wait()

    return Call(wait)


def gated_tools_graph(tmp: Path, url: str) -> Graph:
    """The test graph with :class:`GateTools` as its tool node (no file source)."""
    return build_graph(tmp, url, with_source=False, tools={}, tools_addon="gate_tools")


def gate(runner: GraphRunner) -> GateTools:
    """The :class:`GateTools` node of a :func:`gated_tools_graph`."""
    node = runner.node("tools")
    assert isinstance(node, GateTools)
    return node


def probe(runner: GraphRunner) -> Probe:
    node = runner.node("probe")
    assert isinstance(node, Probe)
    return node


def call_turn(call: dict[str, Any]) -> Send:
    """A response that only calls a tool: created, the call, done."""
    rid = call["response_id"]
    return Send(
        {"type": "response.created", "response": {"id": rid}},
        call,
        {"type": "response.done", "response": {"id": rid, "status": "completed"}},
    )


async def dumped_turn(tmp: Path) -> tuple[bytes, Path]:
    """Run one turn with ``dump`` on; the uplink audio the server got and the user dump."""
    script: list[list[Step]] = [
        [
            Expect("session.update"),
            Expect("input_audio_buffer.append", 3),
            Send(*turn("r1", ["Hi."])),
        ]
    ]
    async with FakeGLMServer(script) as server:
        graph = build_graph(tmp, server.url, glm={"dump": True, "dump_path": str(tmp / "dump")})
        async with GraphRunner(graph) as runner:
            await probe(runner).wait_for(lambda p: "Hi." in texts(p, "assistant"))
            await runner.node("source").finished.wait()  # type: ignore[attr-defined]
        fake = await server.connection(0)
    (dump,) = (tmp / "dump").glob("user_*.pcm")
    return uplink_audio(fake), dump


def uplink_audio(fake: FakeConnection) -> bytes:
    """Every appended packet's PCM, WAV headers stripped."""
    return b"".join(
        base64.b64decode(e.audio)[44:] for e in fake.of_type("input_audio_buffer.append")
    )
