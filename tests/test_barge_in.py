"""Barge-in and event-order quirks, at the graph level against the scripted GLM server.

The probe receives the GLM node's ``flush`` cmds and ``pcm_frame``s in the order they were
sent; each test's audio carries a sample value naming its response (``audio:1`` is the
old response, ``audio:2`` the new one).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from glm_realtime.host.runner import GraphRunner
from tests.fake_glm import Call, Expect, FakeGLMServer, Send
from tests.glm_graph import (
    AUDIO_MS,
    build_graph,
    call_turn,
    delta_event,
    flushes,
    gate,
    gated_tools_graph,
    order,
    pcm_delta,
    probe,
    response_metrics,
    send_cmd,
    texts,
    turn,
    until_tools,
    waits_for,
    within,
)

OLD, NEW = pcm_delta(1), pcm_delta(2)


def created(rid: str) -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}


def done(rid: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "response.done", "response": {"id": rid, "status": status}}


def text(rid: str, delta: str) -> dict[str, Any]:
    return {"type": "response.audio_transcript.delta", "response_id": rid, "delta": delta}


def after_flush(seen: list[str]) -> list[str]:
    assert seen.count("flush") == 1, seen
    return seen[seen.index("flush") + 1 :]


async def test_barge_in_from_an_upstream_flush_plays_no_old_audio_after_it_and_cancels_once(
    tmp_path: Path,
) -> None:
    # GLM is still streaming when the flush arrives: 300 deltas are on their way.
    script = [
        [
            Expect("session.update"),
            Send(created("r1"), *[delta_event("r1", OLD)] * 300),
            Expect("response.cancel"),
            Send(*[delta_event("r1", OLD)] * 3, done("r1", "cancelled")),
            Send(*turn("r2", ["Yes."], user=None, delta=NEW)),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            p = probe(runner)
            await within(p.wait_for(lambda p: len(p.frames) >= 2))
            await send_cmd(runner, "flush")
            await within(p.wait_for(lambda p: "r2" in response_metrics(p)))
            fake = await server.connection(0)
    seen = order(p)
    assert after_flush(seen) == ["audio:2", "audio:2"]  # the next response only
    assert set(seen[: seen.index("flush")]) == {"audio:1"}
    assert len(fake.of_type("response.cancel")) == 1
    assert server.violations == []


async def test_barge_in_during_a_tool_call_cancels_the_follow_up_and_remembers_the_result(
    tmp_path: Path,
) -> None:
    call = {
        "type": "response.function_call_arguments.done",
        "response_id": "r1",
        "call_id": "c1",
        "name": "lookup",
        "arguments": "{}",
    }
    barge, next_turn = asyncio.Event(), asyncio.Event()
    script = [
        [
            Call(until_tools(1)),
            call_turn(call),
            waits_for(barge),
            Send({"type": "input_audio_buffer.speech_started"}),
            waits_for(next_turn),
            Send(*turn("r2", ["Okay."], user="Never mind", delta=NEW)),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(gated_tools_graph(tmp_path, server.url)) as runner:
            p, tools, glm = probe(runner), gate(runner), runner.node("glm")
            await within(tools.arrived.wait())
            barge.set()
            await within(p.wait_for(lambda p: flushes(p) == 1))  # the barge-in is handled
            tools.gate.set()
            await within(glm.session.wait_settled(1))  # type: ignore[attr-defined]
            next_turn.set()
            await within(p.wait_for(lambda p: "r2" in response_metrics(p)))
            memory = [t.content for t in glm.session.memory.turns]  # type: ignore[attr-defined]
            fake = await server.connection(0)
    assert fake.of_type("conversation.item.create") == []  # no answer to the old question
    assert fake.of_type("response.create") == []
    assert '[tool lookup({}) -> {"answer": "42"}]' in memory
    assert "Okay." in texts(p, "assistant")
    assert server.violations == []


async def test_barge_in_before_our_response_is_created_cancels_the_late_one_and_drops_its_audio(
    tmp_path: Path,
) -> None:
    script = [
        [
            Expect("session.update"),
            Expect("response.create"),
            Expect("response.create"),  # the second flush: a new turn over the first
            Send(*turn("r_late", ["Old answer."], user=None, delta=OLD)),
            Expect("response.cancel"),
            Send(*turn("r_new", ["New answer."], user=None, delta=NEW)),
        ]
    ]
    async with FakeGLMServer(script) as server:
        graph = build_graph(tmp_path, server.url, with_source=False, glm={"server_vad": False})
        async with GraphRunner(graph) as runner:
            p, glm = probe(runner), runner.node("glm")
            await within(glm.session.wait_ready())  # type: ignore[attr-defined]
            await send_cmd(runner, "flush")
            await send_cmd(runner, "flush")
            await within(p.wait_for(lambda p: "r_new" in response_metrics(p)))
            fake = await server.connection(0)
    assert [s for s in order(p) if s != "flush"] == ["audio:2", "audio:2"]
    assert "Old answer." not in texts(p, "assistant")
    assert len(fake.of_type("response.cancel")) == 1
    assert response_metrics(p)["r_late"]["interrupted"] is True
    assert server.violations == []


async def test_response_created_after_an_early_delta_keeps_its_text_audio_and_timing(
    tmp_path: Path,
) -> None:
    script = [
        [
            Expect("session.update"),
            Send(
                {"type": "input_audio_buffer.speech_stopped"},
                text("r1", "Hello there. "),
                delta_event("r1"),
                created("r1"),
                text("r1", "Bye"),
                delta_event("r1"),
                {"type": "response.audio.done", "response_id": "r1", "item_id": "a"},
                done("r1"),
            ),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            p, glm = probe(runner), runner.node("glm")
            await within(p.wait_for(lambda p: "r1" in response_metrics(p)))
            memory = [t.content for t in glm.session.memory.turns]  # type: ignore[attr-defined]
    assert texts(p, "assistant", final=False) == ["Hello there. "]
    assert texts(p, "assistant", final=True) == ["Bye"]
    assert memory == ["Hello there. Bye"]
    metrics = response_metrics(p)["r1"]
    assert metrics["audio_out_ms"] == 2 * AUDIO_MS  # the early delta counts
    assert metrics["interrupted"] is False
    assert 0 <= metrics["ttft_ms"] <= metrics["ttfa_ms"]  # text came first, same turn end


async def test_interrupted_response_is_never_revived_and_metrics_stay_with_their_response(
    tmp_path: Path,
) -> None:
    script = [
        [
            Expect("session.update"),
            Send(
                created("r1"),
                delta_event("r1", OLD),
                {"type": "input_audio_buffer.speech_started"},
                {"type": "input_audio_buffer.speech_stopped"},
                created("r1"),  # a late duplicate of the interrupted response
                delta_event("r1", OLD),
                done("r1", "cancelled"),
                created("r2"),
                delta_event("r2", NEW),
                delta_event("r2", NEW),
                done("r2"),
            ),
        ]
    ]
    async with FakeGLMServer(script) as server:
        async with GraphRunner(build_graph(tmp_path, server.url, with_source=False)) as runner:
            p = probe(runner)
            await within(p.wait_for(lambda p: "r2" in response_metrics(p)))
    assert after_flush(order(p)) == ["audio:2", "audio:2"]
    metrics = response_metrics(p)
    assert metrics["r1"]["interrupted"] is True and metrics["r1"]["status"] == "cancelled"
    assert metrics["r1"]["audio_out_ms"] == AUDIO_MS and metrics["r1"]["ttfa_ms"] is None
    assert metrics["r2"]["interrupted"] is False and metrics["r2"]["audio_out_ms"] == 2 * AUDIO_MS
    assert metrics["r2"]["ttfa_ms"] is not None  # the turn end went to the response answering it
