"""Set-up, bad frames, flapping servers, per-response audio, tools across reconnects, stop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glm_realtime.config import ExtensionConfig
from glm_realtime.host.graph import Graph
from glm_realtime.host.messages import AudioFrame, Cmd
from glm_realtime.host.runner import GraphRunner
from glm_realtime.session import SessionState, ToolOutcome, VoiceSession
from glm_realtime.session.backoff import GiveUp, ReconnectPolicy
from realtime.audio import DownlinkDecoder
from realtime.compat import timeout
from realtime.connection import Connection, connect
from realtime.errors import ConnectError
from realtime.events import ClientEventBase
from tests.fake_glm import Call, Close, Expect, FakeConnection, FakeGLMServer, Send, Stall
from tests.glm_graph import (
    KEY,
    LOOKUP,
    build_graph,
    call_turn,
    data_named,
    delta_event,
    gate,
    gated_tools_graph,
    probe,
    response_metrics,
    send_cmd,
    turn,
    until_tools,
    waits_for,
    within,
)
from tests.net_utils import refused_port


async def test_tool_register_and_user_joined_during_session_set_up_still_reach_glm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow network holds the first session.update on its way out: the window between
    # session.created and a ready session stays open while the test sends its cmds.
    network = asyncio.Event()
    update_on_its_way = asyncio.Event()
    real_send = Connection.send

    async def slow_send(self: Connection, event: ClientEventBase) -> None:
        if getattr(event, "type", None) == "session.update" and not network.is_set():
            update_on_its_way.set()
            await network.wait()
        await real_send(self, event)

    monkeypatch.setattr(Connection, "send", slow_send)
    async with FakeGLMServer([[Stall()]]) as server:
        graph = build_graph(
            tmp_path, server.url, with_source=False, glm={"greeting": "Hello there!"}
        )
        async with GraphRunner(graph) as runner:
            await within(update_on_its_way.wait())
            await send_cmd(runner, "tool_register", tool=LOOKUP)
            await send_cmd(runner, "on_user_joined")
            network.set()
            fake = await server.connection(0)
            updates = [u.session for u in await within(fake.wait_received("session.update", 3))]
    assert [[t.name for t in u.tools] for u in updates] == [[], ["lookup"], ["lookup"]]
    greetings = [u.greeting_config.content if u.greeting_config else None for u in updates]
    assert greetings == [None, None, "Hello there!"]
    assert server.violations == []


async def test_malformed_audio_deltas_are_logged_and_skipped_without_a_reconnect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = [
        [
            Expect("session.update"),
            Send(
                {"type": "response.created", "response": {"id": "r1"}},
                delta_event("r1", "!!not base64!!"),
                delta_event("r1", "AAE"),  # a length no base64 string has
                delta_event("r1"),
                {"type": "response.done", "response": {"id": "r1", "status": "completed"}},
            ),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            p = probe(runner)
            await within(p.wait_for(lambda p: "r1" in response_metrics(p)))
    assert len(server.connections) == 1
    assert len(p.frames) == 1  # the good delta only
    assert caplog.text.count("skipping an audio delta of r1") == 2
    assert "!!not base64!!" not in caplog.text  # sizes are logged, never the payload
    assert data_named(p, "error") == []


async def test_flapping_server_is_bounded_and_only_a_proven_connection_resets_the_count(
    tmp_path: Path,
) -> None:
    async def answer(fake: FakeConnection) -> None:
        await fake.send(*turn(f"r{fake.index}", ["Hi."], user=None))

    proven = [Expect("session.update"), Call(answer), Close(1011)]
    # Each socket reaches session.created; only the third completes a response.
    scripts = [[Close(1011)], [Close(1011)], proven, [Close(1011)], [Close(1011)], [Stall()]]
    async with FakeGLMServer(scripts) as server:
        graph = build_graph(
            tmp_path, server.url, with_source=False, glm={"max_reconnect_attempts": 2}
        )
        error, state = await _first_error(graph)
    assert error["fatal"] is True
    assert "gave up after 3 failed connection(s)" in error["message"]
    assert len(server.connections) == 5  # 2 failures, a proven one, then 3 failures
    assert state is SessionState.FAILED


async def _first_error(graph: Graph) -> tuple[dict[str, Any], SessionState]:
    """Run ``graph`` until its glm node reports an error: that error, the session state."""
    async with GraphRunner(graph) as runner:
        p = probe(runner)
        await within(p.wait_for(lambda p: bool(data_named(p, "error"))))
        state = runner.node("glm").session.state  # type: ignore[attr-defined]
    (error,) = data_named(p, "error")
    return error, state


async def test_a_refused_first_connection_fails_at_once_with_the_cause(tmp_path: Path) -> None:
    """5 attempts 60 s apart are allowed; a URL nothing listens on is not retried."""
    delays = {"reconnect_base_delay_ms": 60_000, "reconnect_max_delay_ms": 60_000}
    with refused_port() as port:
        url = f"ws://127.0.0.1:{port}/api/paas/v4/realtime"
        graph = build_graph(tmp_path, url, with_source=False, glm=delays)
        error, state = await _first_error(graph)
    assert error["fatal"] is True
    assert "cannot reach ws://127.0.0.1:" in error["message"]
    assert "not retried" in error["message"]
    assert state is SessionState.FAILED


async def test_once_a_socket_opened_a_refused_connect_is_retried() -> None:
    with refused_port() as port, pytest.raises(ConnectError) as refused:
        await connect(f"ws://127.0.0.1:{port}/api/paas/v4/realtime", api_key=KEY)
    first = ReconnectPolicy(5, 0.5, 8.0)
    first.connecting()
    assert isinstance(first.lost(refused.value), GiveUp)
    worked = ReconnectPolicy(5, 0.5, 8.0)
    worked.connecting()
    worked.opened()
    for _ in range(5):
        worked.connecting()
        assert isinstance(worked.lost(refused.value), float)
    assert isinstance(worked.lost(refused.value), GiveUp)  # still bounded


def _sine(samples: int, freq: float) -> bytes:
    t = np.arange(samples) / 24000
    return (np.sin(2 * np.pi * freq * t) * 9000).astype("<i2").tobytes()


def _b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode()


def _audio_after_flush(received: list[Any]) -> bytes:
    flush = max(i for i, m in enumerate(received) if isinstance(m, Cmd))
    return b"".join(bytes(m.get_buf()) for m in received[flush:] if isinstance(m, AudioFrame))


async def test_downlink_state_is_per_response_and_each_tail_is_flushed_at_its_end(
    tmp_path: Path,
) -> None:
    old = _sine(960, 300.0)
    new_a, new_b = _sine(480, 500.0), _sine(480, 700.0)
    script = [
        [
            Expect("session.update"),
            Send(
                {"type": "response.created", "response": {"id": "r1"}},
                delta_event("r1", _b64(old)),
                delta_event("r1", _b64(old[:301])),  # an odd byte left in the decoder
                {"type": "input_audio_buffer.speech_started"},
                {"type": "response.done", "response": {"id": "r1", "status": "cancelled"}},
                {"type": "response.created", "response": {"id": "r2"}},
                delta_event("r2", _b64(new_a)),
                delta_event("r2", _b64(new_b)),
                {"type": "response.audio.done", "response_id": "r2", "item_id": "a"},
                {"type": "response.done", "response": {"id": "r2", "status": "completed"}},
            ),
        ]
    ]
    async with FakeGLMServer(script) as server:
        graph = build_graph(tmp_path, server.url, with_source=False, glm={"sample_rate": 16000})
        async with GraphRunner(graph) as runner:
            p = probe(runner)
            await within(p.wait_for(lambda p: "r2" in response_metrics(p)))
    fresh = DownlinkDecoder(16000)
    expected = fresh.decode(_b64(new_a)) + fresh.decode(_b64(new_b)) + fresh.flush()
    assert len(expected) == 2 * 640  # 40 ms at 16 kHz: the tail is in
    assert _audio_after_flush(p.received) == expected
    assert response_metrics(p)["r2"]["audio_out_ms"] == 40.0


async def test_tool_call_in_flight_across_a_reconnect_is_answered_from_memory(
    tmp_path: Path,
) -> None:
    call = {
        "type": "response.function_call_arguments.done",
        "response_id": "r1",
        "call_id": "c1",
        "name": "lookup",
        "arguments": '{"q": "meaning"}',
    }
    drop = asyncio.Event()
    first = [Call(until_tools(1)), call_turn(call), waits_for(drop), Close(1011)]
    second = [
        Expect("session.update"),
        Expect("response.create"),
        Send(*turn("r2", ["It is 42."], user=None)),
    ]
    async with FakeGLMServer([first, second]) as server:
        async with GraphRunner(gated_tools_graph(tmp_path, server.url)) as runner:
            p, tools, glm = probe(runner), gate(runner), runner.node("glm")
            await within(tools.arrived.wait())
            drop.set()
            again = await server.connection(1)
            await within(again.wait_received("session.update"))
            tools.gate.set()  # the tool answers after its socket is gone
            await within(p.wait_for(lambda p: "r2" in response_metrics(p)))
            memory = [t.content for t in glm.session.memory.turns]  # type: ignore[attr-defined]
    line = '[tool lookup({"q": "meaning"}) -> {"answer": "42"}]'
    assert line in memory
    assert again.of_type("conversation.item.create") == []  # c1 means nothing to this session
    assert line in (again.of_type("session.update")[-1].session.instructions or "")
    assert len(again.of_type("response.create")) == 1
    assert server.violations == []


class SilentPeer:
    """A websocket peer on 127.0.0.1 that completes the handshake, then never says a word.

    It reads and ignores everything, the closing handshake included (a real TCP peer;
    the websockets server would answer the close itself).
    """

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> SilentPeer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/api/paas/v4/realtime"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"(?i)sec-websocket-key: *(\S+)", request)
        assert match is not None
        accept = base64.b64encode(hashlib.sha1(match.group(1) + self.GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.connected.set()
        while await reader.read(65536):
            pass
        writer.close()


class Recorder:
    """A SessionHandler that keeps what it is given."""

    def __init__(self) -> None:
        self.errors: list[tuple[str | None, str, bool]] = []

    async def send_audio(self, pcm: bytes, sample_rate: int) -> None:
        pass

    async def send_transcript(self, text: str, role: Any, final: bool) -> None:
        pass

    async def send_flush(self) -> None:
        pass

    async def call_tool(self, name: str, arguments: str) -> ToolOutcome:
        return ToolOutcome(json.dumps({"name": name}))

    async def send_metrics(self, metrics: dict[str, object]) -> None:
        pass

    async def send_error(self, code: str | None, message: str, fatal: bool) -> None:
        self.errors.append((code, message, fatal))

    async def append_history(self, role: Any, text: str) -> None:
        pass


def session_config(url: str) -> ExtensionConfig:
    base, path = url.split("/api/", 1)
    props = {"base_uri": base, "path": "/api/" + path, "api_key": KEY}
    return ExtensionConfig.from_properties(props, node="glm")


async def test_stop_is_prompt_when_the_peer_never_answers_the_close_and_wakes_every_waiter() -> (
    None
):
    async with SilentPeer() as peer:
        session = VoiceSession(session_config(peer.url), Recorder())
        session.start()
        await within(peer.connected.wait())
        waiters = [
            asyncio.create_task(session.wait_ready(), name="test:wait_ready"),
            asyncio.create_task(session.wait_settled(1), name="test:wait_settled"),
            asyncio.create_task(session.wait_finished(), name="test:wait_finished"),
        ]
        async with timeout(3):  # the closing handshake alone used to take 10 s here
            await session.stop()
        await within(asyncio.gather(*waiters), 1)
    left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("glm-session")]
    assert left == []
    assert session.state is SessionState.STOPPED
