"""The GLM node in a whole graph against the scripted fake GLM server."""

from __future__ import annotations

import asyncio
import base64
import json
import wave
from pathlib import Path
from typing import Any

import pytest

from glm_realtime.host.errors import NodeError
from glm_realtime.host.messages import StatusCode
from glm_realtime.host.runner import GraphRunner
from realtime.errors import ConfigError
from tests.fake_glm import Call, Close, Expect, FakeConnection, FakeGLMServer, Send, Stall
from tests.glm_graph import (
    AUDIO_MS,
    DELTA,
    build_graph,
    call_turn,
    data_named,
    dumped_turn,
    flushes,
    probe,
    send_cmd,
    send_data,
    texts,
    turn,
    until_tools,
)


def sink_ms(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() * 1000 / wav.getframerate()


async def test_normal_turn_streams_audio_transcripts_metrics_and_a_valid_session(
    tmp_path: Path,
) -> None:
    script = [
        [
            Expect("session.update"),
            Expect("input_audio_buffer.append", 5),
            Send(*turn("r1", ["It is ten ", "past nine. ", "Anything else"])),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(build_graph(tmp_path, server.url)) as runner:
            p = probe(runner)
            await p.wait_for(
                lambda p: any(m["metrics"]["kind"] == "response" for m in data_named(p, "metrics"))
            )
            fake = await server.connection(0)
        session = fake.of_type("session.update")[0].session
    assert server.violations == []
    assert session.turn_detection.type == "server_vad"
    assert session.beta_fields.chat_mode == "audio"
    assert "Always reply in English." in (session.instructions or "")
    appends = fake.of_type("input_audio_buffer.append")
    first = base64.b64decode(appends[0].audio)
    assert first[:4] == b"RIFF" and len(first) == 44 + 3200  # 100 ms of 16 kHz WAV
    assert all(a.client_timestamp > 0 for a in appends)
    assert texts(p, "user") == ["What time is it?"]
    assert texts(p, "assistant", final=False) == ["It is ten past nine. "]
    assert texts(p, "assistant", final=True) == ["Anything else"]  # the tail is never lost
    metrics = [m["metrics"] for m in data_named(p, "metrics")]
    assert metrics[0]["kind"] == "connect"
    response = next(m for m in metrics if m["kind"] == "response")
    assert response["ttfa_ms"] is not None and response["ttfa_ms"] >= 0
    assert response["usage"]["total_tokens"] == 9
    assert response["audio_out_ms"] == 2 * AUDIO_MS
    assert sink_ms(tmp_path / "out.wav") == pytest.approx(2 * AUDIO_MS)


async def test_tool_call_goes_to_the_tool_node_and_its_result_back_with_call_id(
    tmp_path: Path,
) -> None:
    call = {
        "type": "response.function_call_arguments.done",
        "response_id": "r1",
        "call_id": "call_7",
        "name": "get_weather",
        "arguments": '{"location": "Paris"}',
    }
    script = [
        [
            Call(until_tools(2)),  # the tools node may register before or after the first update
            call_turn(call),
            Expect("conversation.item.create"),
            Expect("response.create"),
            Send(*turn("r2", ["Sunny in Paris."], user=None)),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, tools={})) as runner:
            await probe(runner).wait_for(lambda p: "Sunny in Paris." in texts(p, "assistant"))
            fake = await server.connection(0)
    assert server.violations == []
    updates = fake.of_type("session.update")
    assert {t.name for t in updates[-1].session.tools} == {"get_current_time", "get_weather"}
    assert updates[-1].session.turn_detection.type == "server_vad"  # resent with tools
    item = fake.of_type("conversation.item.create")[0].item
    assert item.type == "function_call_output" and item.call_id == "call_7"
    assert "Paris" in (item.output or "")
    assert len(fake.of_type("response.create")) == 1


async def test_barge_in_flushes_once_cancels_and_drops_the_old_responses_audio(
    tmp_path: Path,
) -> None:
    rid = "r_long"
    late_delta = {
        "type": "response.audio.delta",
        "response_id": rid,
        "item_id": "a",
        "delta": DELTA,
    }
    first_frame_played = asyncio.Event()

    async def after_first_frame(fake: FakeConnection) -> None:
        await first_frame_played.wait()

    script = [
        [
            Expect("session.update"),
            Send(
                {"type": "response.created", "response": {"id": rid}},
                {
                    "type": "response.audio_transcript.delta",
                    "response_id": rid,
                    "delta": "Once upon a time, there",
                },
                late_delta,
            ),
            Call(after_first_frame),
            Send({"type": "input_audio_buffer.speech_started"}),
            Expect("response.cancel"),
            Send(
                {"type": "response.cancelled", "response": {"id": rid, "status": "cancelled"}},
                late_delta,
                {"type": "response.done", "response": {"id": rid, "status": "cancelled"}},
                *turn("r_next", ["Sure."], user="Stop, tell me the time"),
            ),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            p = probe(runner)
            await p.wait_for(lambda p: len(p.frames) == 1)
            first_frame_played.set()
            await p.wait_for(lambda p: "Sure." in texts(p, "assistant"))
    assert server.violations == []
    assert flushes(p) == 2  # one per speech_started: the barge-in and the next turn
    assert texts(p, "assistant", final=True)[0] == "there[interrupted]"
    assert texts(p, "assistant", final=False)[0] == "Once upon a time, "
    # One delta before the barge-in, none of the cancelled response after it, two of the next.
    assert sink_ms(tmp_path / "out.wav") == pytest.approx(3 * AUDIO_MS)
    metrics = [m["metrics"] for m in data_named(p, "metrics") if m["metrics"]["kind"] == "response"]
    assert metrics[0]["interrupted"] is True and metrics[1]["interrupted"] is False


async def test_reconnect_mid_response_replays_history_into_instructions(tmp_path: Path) -> None:
    first = [
        Expect("session.update"),
        Send(*turn("r1", ["It is nine o'clock."], user="What time is it?")),
        Send(
            {"type": "response.created", "response": {"id": "r2"}},
            {"type": "response.audio_transcript.delta", "response_id": "r2", "delta": "Half a"},
        ),
        Close(1011, "upstream hiccup"),
    ]
    second = [Expect("session.update"), Stall()]
    async with FakeGLMServer([first, second]) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            p = probe(runner)
            again = await server.connection(1)
            await again.wait_received("session.update")
            await p.wait_for(
                lambda p: (
                    len([m for m in data_named(p, "metrics") if m["metrics"]["kind"] == "connect"])
                    == 2
                )
            )
    assert server.violations == []
    instructions = again.of_type("session.update")[0].session.instructions or ""
    assert "user: What time is it?" in instructions
    assert "assistant: It is nine o'clock." in instructions
    assert "assistant: Half a" in instructions  # the cut reply, as far as it went
    assert texts(p, "assistant", final=True)[-1] == "Half a"  # its segment was closed


async def test_refused_key_is_fatal_reported_as_error_and_not_retried(tmp_path: Path) -> None:
    async with FakeGLMServer([[Stall()]], api_key="other-id.other-secret") as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            p = probe(runner)
            await p.wait_for(lambda p: bool(data_named(p, "error")))
            glm = runner.node("glm")
            await glm.session.wait_finished()  # type: ignore[attr-defined]
    error = data_named(p, "error")[0]
    assert error["fatal"] is True and error["code"] == "401"
    assert server.handshakes == 1


async def test_missing_tool_node_returns_a_failure_output_so_the_model_goes_on(
    tmp_path: Path,
) -> None:
    call = {
        "type": "response.function_call_arguments.done",
        "response_id": "r1",
        "name": "lookup",
        "arguments": "{}",
    }
    script = [
        [
            Call(until_tools(1)),
            call_turn(call),
            Expect("conversation.item.create"),
            Expect("response.create"),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            result = await send_cmd(
                runner,
                "tool_register",
                tool={"name": "lookup", "description": "Look up", "parameters": []},
            )
            assert result.get_status_code() == StatusCode.OK
            fake = await server.connection(0)
            await fake.wait_received("response.create")
    output = json.loads(fake.of_type("conversation.item.create")[0].item.output)
    assert output["success"] is False
    assert "no destination for cmd 'tool_call'" in output["error"]


async def test_slow_tool_times_out_into_a_failure_output(tmp_path: Path) -> None:
    call = {
        "type": "response.function_call_arguments.done",
        "response_id": "r1",
        "call_id": "c",
        "name": "get_current_time",
        "arguments": "{}",
    }
    script = [
        [
            Call(until_tools(2)),
            call_turn(call),
            Expect("response.create"),
        ]
    ]
    async with FakeGLMServer(script) as server:
        graph = build_graph(
            tmp_path,
            server.url,
            with_source=False,
            tools={"delay_ms": 5000},
            glm={"tool_timeout_ms": 200},
        )
        async with GraphRunner(graph):
            fake = await server.connection(0)
            await fake.wait_received("response.create")
    output = json.loads(fake.of_type("conversation.item.create")[0].item.output)
    assert "timed out" in output["error"]


async def test_late_tool_registration_updates_the_live_session_with_turn_detection(
    tmp_path: Path,
) -> None:
    async with FakeGLMServer([[Expect("session.update"), Stall()]]) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            fake = await server.connection(0)
            await fake.wait_received("session.update")
            tool = {
                "name": "lookup",
                "description": "Look things up",
                "parameters": [
                    {"name": "q", "type": "string", "description": "query", "required": True}
                ],
            }
            await send_cmd(runner, "tool_register", tool=tool)
            await send_cmd(runner, "tool_register", tool={**tool, "description": "Look up v2"})
            await fake.wait_received("session.update", 3)
    updates = [u.session for u in fake.of_type("session.update")]
    assert [len(u.tools) for u in updates] == [0, 1, 1]  # same name: replaced, not duplicated
    assert updates[2].tools[0].description == "Look up v2"
    assert updates[1].tools[0].parameters == {
        "type": "object",
        "properties": {"q": {"type": "string", "description": "query"}},
        "required": ["q"],
    }
    assert all(u.turn_detection.type == "server_vad" for u in updates)


async def test_bad_tool_metadata_is_refused_naming_the_problem(tmp_path: Path) -> None:
    async with FakeGLMServer([[Stall()]]) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            result = await send_cmd(
                runner,
                "tool_register",
                tool={
                    "name": "x",
                    "description": "d",
                    "parameters": [{"name": "p", "type": "str"}],
                },
            )
    assert result.get_status_code() == StatusCode.ERROR
    assert "parameter type 'str'" in result.get_property_string("detail")


async def test_client_vad_flush_commits_and_requests_a_response(tmp_path: Path) -> None:
    script = [
        [
            Expect("session.update"),
            Expect("input_audio_buffer.commit"),
            Expect("response.create"),
            Send(*turn("r1", ["Hello."], user=None)),
        ]
    ]
    async with FakeGLMServer(script) as server:
        graph = build_graph(tmp_path, server.url, glm={"server_vad": False})
        async with GraphRunner(graph) as runner:
            source = runner.node("source")
            await source.finished.wait()  # type: ignore[attr-defined]
            await send_cmd(runner, "flush")
            p = probe(runner)
            await p.wait_for(lambda p: "Hello." in texts(p, "assistant"))
            fake = await server.connection(0)
    assert fake.of_type("session.update")[0].session.turn_detection.type == "client_vad"
    types = [e.type for e in fake.received]
    assert types.index("input_audio_buffer.commit") > max(
        i for i, t in enumerate(types) if t == "input_audio_buffer.append"
    )
    metrics = next(
        m["metrics"] for m in data_named(p, "metrics") if m["metrics"]["kind"] == "response"
    )
    assert metrics["ttfa_ms"] is not None  # measured from the commit


async def test_greeting_is_sent_once_when_the_first_user_joins(tmp_path: Path) -> None:
    async with FakeGLMServer([[Expect("session.update"), Stall()]]) as server:
        graph = build_graph(
            tmp_path, server.url, with_source=False, glm={"greeting": "Hello there!"}
        )
        async with GraphRunner(graph) as runner:
            fake = await server.connection(0)
            await fake.wait_received("session.update")
            await send_cmd(runner, "on_user_joined")
            await send_cmd(runner, "on_user_joined")
            await send_cmd(runner, "tool_register", tool={"name": "t", "description": "d"})
            await fake.wait_received("session.update", 3)
    greetings = [u.session.greeting_config for u in fake.of_type("session.update")]
    assert greetings[0] is None
    assert greetings[1] is not None and greetings[1].content == "Hello there!"
    assert greetings[2] is None  # never repeated, not even with a tool update


async def test_silent_server_past_heartbeat_timeout_triggers_a_reconnect(tmp_path: Path) -> None:
    async with FakeGLMServer([[Stall()], [Expect("session.update"), Stall()]]) as server:
        graph = build_graph(
            tmp_path, server.url, with_source=False, glm={"heartbeat_timeout_ms": 300}
        )
        async with GraphRunner(graph):
            second = await server.connection(1)
            await second.wait_received("session.update")
    assert len(server.connections) >= 2


async def test_storage_history_is_retrieved_into_instructions_and_turns_appended(
    tmp_path: Path,
) -> None:
    store = tmp_path / "history.json"
    store.write_text(
        json.dumps(
            [
                {"role": "user", "content": "My name is Ada."},
                {"role": "assistant", "content": "Hello Ada."},
            ]
        )
    )
    script = [[Expect("session.update"), Send(*turn("r1", ["Noted."], user="Remember me"))]]
    async with FakeGLMServer(script) as server:
        graph = build_graph(
            tmp_path,
            server.url,
            with_source=False,
            storage={"path": str(store)},
            glm={"enable_storage": True},
        )
        async with GraphRunner(graph) as runner:
            await probe(runner).wait_for(lambda p: "" in texts(p, "assistant", final=True))
            fake = await server.connection(0)
    assert "user: My name is Ada." in (fake.of_type("session.update")[0].session.instructions or "")
    stored = json.loads(store.read_text())
    assert [(r["role"], r["content"]) for r in stored[-2:]] == [
        ("user", "Remember me"),
        ("assistant", "Noted."),
    ]


async def test_missing_storage_node_warns_and_start_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeGLMServer([[Expect("session.update"), Stall()]]) as server:
        graph = build_graph(tmp_path, server.url, with_source=False, glm={"enable_storage": True})
        async with GraphRunner(graph):
            fake = await server.connection(0)
            await fake.wait_received("session.update")
    assert "no history retrieved (no destination for cmd 'retrieve'" in caplog.text


@pytest.mark.parametrize(
    ("props", "named"),
    [
        ({"temperature": 2.0}, "temperature"),
        ({"voice": "alloy"}, "voice"),
        ({"server_vad": False, "vad_threshold": 0.5}, "vad_threshold"),
        ({"api_key": ""}, "api_key"),
    ],
)
async def test_wrong_property_value_stops_start_up_naming_the_property(
    tmp_path: Path, props: dict[str, Any], named: str
) -> None:
    graph = build_graph(
        tmp_path, "ws://127.0.0.1:9/api/paas/v4/realtime", with_source=False, glm=props
    )
    with pytest.raises(NodeError) as info:
        async with GraphRunner(graph):
            pass
    assert isinstance(info.value.__cause__, ConfigError)
    assert named in str(info.value) and "'glm'" in str(info.value)


async def test_frames_with_unsupported_sample_width_are_dropped_with_one_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from glm_realtime.host.messages import AudioFrame

    async with FakeGLMServer([[Expect("session.update"), Stall()]]) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            fake = await server.connection(0)
            await fake.wait_received("session.update")
            for _ in range(3):
                frame = AudioFrame.from_buffer("pcm_frame", b"\0" * 480, 16000, bytes_per_sample=3)
                await runner.env("probe").send_audio_frame(frame)
            ok = AudioFrame.from_buffer("pcm_frame", b"\0" * 3200, 16000)
            await runner.env("probe").send_audio_frame(ok)
            await fake.wait_received("input_audio_buffer.append")
    assert caplog.text.count("dropping pcm_frame with 3-byte samples") == 1


async def test_video_frames_are_forwarded_in_video_passive_mode(tmp_path: Path) -> None:
    async with FakeGLMServer([[Expect("session.update"), Stall()]]) as server:
        graph = build_graph(
            tmp_path, server.url, with_source=False, glm={"chat_mode": "video_passive"}
        )
        async with GraphRunner(graph) as runner:
            fake = await server.connection(0)
            await fake.wait_received("session.update")
            await send_data(runner, "video_frame", b"\xff\xd8jpeg")
            frames = await fake.wait_received("input_audio_buffer.append_video_frame")
    assert base64.b64decode(frames[0].video_frame) == b"\xff\xd8jpeg"
    assert fake.of_type("session.update")[0].session.beta_fields.chat_mode == "video_passive"


async def test_dump_writes_user_and_assistant_pcm(tmp_path: Path) -> None:
    await dumped_turn(tmp_path)
    dumps = {p.name.split("_")[0]: p for p in (tmp_path / "dump").iterdir()}
    assert dumps["user"].name.endswith("_22050hz.pcm")
    # 1 s of tone + 200 ms trailing silence at 22050 Hz, 2 bytes a sample.
    assert dumps["user"].stat().st_size == int(1.2 * 22050) * 2
    assert dumps["assistant"].stat().st_size == 2 * 24 * AUDIO_MS * 2


async def test_stop_closes_the_socket_normally(tmp_path: Path) -> None:
    async with FakeGLMServer([[Expect("session.update"), Stall()]]) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)):
            fake = await server.connection(0)
            await fake.wait_received("session.update")
        await fake.closed.wait()
    assert fake.ws.close_code == 1000
