"""demo_tools, transcript_collector and chat_storage in the companions.json graph."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from glm_realtime.host import (
    AddonRegistry,
    Cmd,
    CmdResult,
    Data,
    GraphRunner,
    StatusCode,
    load_graph,
)
from glm_realtime.host.testing import Probe
from glm_realtime.nodes import DemoTools, TranscriptCollector
from glm_realtime.nodes.demo_tools import fake_weather

GRAPHS = Path(__file__).parent / "graphs"
REGISTRY = AddonRegistry()
REGISTRY.add(Probe.as_addon())


def companions(
    env: dict[str, str] | None = None, props: dict[str, dict[str, Any]] | None = None
) -> GraphRunner:
    """The companions.json graph, with per-node property overrides."""
    app = json.loads((GRAPHS / "companions.json").read_text())
    for node in app["_ten"]["predefined_graphs"][1]["nodes"]:
        node.setdefault("property", {}).update((props or {}).get(node["name"], {}))
    return GraphRunner(load_graph(app, registry=REGISTRY, environ=env or {}))


def probe_of(runner: GraphRunner) -> Probe:
    probe = runner.node("probe")
    assert isinstance(probe, Probe)
    return probe


async def call_tool(runner: GraphRunner, name: str, arguments: Any = None) -> CmdResult:
    cmd = Cmd.create("tool_call")
    cmd.set_property_string("name", name)
    if isinstance(arguments, str):
        cmd.set_property_string("arguments", arguments)
    elif arguments is not None:
        cmd.set_property_from_json("arguments", json.dumps(arguments))
    return await runner.env("probe").send_cmd(cmd)


def tool_text(result: CmdResult) -> str:
    assert result.get_status_code() == StatusCode.OK, result.get_property_to_json()
    payload = json.loads(result.get_property_to_json("tool_result"))
    assert payload["type"] == "llmresult"
    content: str = payload["content"]
    return content


async def test_demo_tools_register_each_tool_in_llm_tool_metadata_shape() -> None:
    async with companions() as runner:
        probe = probe_of(runner)
        await probe.wait_for(lambda p: len(p.cmds) == 2)
    tools = [json.loads(c.get_property_to_json("tool")) for c in probe.cmds]
    assert [c.get_name() for c in probe.cmds] == ["tool_register", "tool_register"]
    assert [t["name"] for t in tools] == ["get_current_time", "get_weather"]
    assert tools[0]["parameters"] == []
    assert tools[1]["parameters"] == [
        {
            "name": "location",
            "type": "string",
            "description": "City or place name, for example 'Paris'.",
            "required": True,
        }
    ]
    assert all(isinstance(t["description"], str) and t["description"] for t in tools)


async def test_tool_calls_return_llmresult_with_deterministic_content() -> None:
    async with companions() as runner:
        tools = runner.node("tools")
        assert isinstance(tools, DemoTools)
        tools.clock = lambda: datetime(2024, 5, 1, 9, 7)
        assert tool_text(await call_tool(runner, "get_current_time")) == "09:07"
        as_string = await call_tool(runner, "get_weather", '{"location": "Paris"}')
        as_object = await call_tool(runner, "get_weather", {"location": "Paris"})
    text = tool_text(as_string)
    assert text == tool_text(as_object) == fake_weather("Paris")
    assert re.fullmatch(r"[A-Z][a-z ]+, -?\d+°C in Paris", text)


@pytest.mark.parametrize(
    ("name", "arguments", "detail"),
    [
        ("get_stock", {}, "unknown tool 'get_stock' (known: get_current_time, get_weather)"),
        ("get_weather", {}, "get_weather needs a non-empty string argument 'location'"),
        ("get_weather", "{broken", "arguments are not valid JSON"),
        ("get_weather", [1, 2], "arguments must be a JSON object, got list"),
    ],
)
async def test_bad_tool_calls_answer_error_with_detail(
    name: str, arguments: Any, detail: str
) -> None:
    async with companions() as runner:
        result = await call_tool(runner, name, arguments)
    assert result.get_status_code() == StatusCode.ERROR
    assert detail in result.get_property_string("detail")


@pytest.mark.parametrize(("delay_ms", "answered"), [(0, True), (60_000, False)])
async def test_delay_ms_holds_the_answer_back(delay_ms: int, answered: bool) -> None:
    async with companions(props={"tools": {"delay_ms": delay_ms}}) as runner:
        pending = asyncio.create_task(call_tool(runner, "get_current_time"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert pending.done() is answered
        pending.cancel()


async def test_collector_keeps_text_metrics_errors_and_writes_jsonl(tmp_path: Path) -> None:
    jsonl = tmp_path / "logs" / "t.jsonl"
    runner = companions({"HOST_TEST_JSONL": str(jsonl)}, {"collector": {"print": True}})
    collector = runner.node("collector")
    assert isinstance(collector, TranscriptCollector)
    collector.out = out = io.StringIO()
    async with runner:
        env = runner.env("probe")
        for text, final, role, sid in [
            ("What time is it?", True, "user", 123),
            ("It is ", False, "assistant", 0),
            ("nine.", False, "assistant", 0),
            ("", True, "assistant", 0),
        ]:
            data = Data.create("text_data")
            data.set_property_string("text", text)
            data.set_property_bool("end_of_segment", final)
            data.set_property_string("role", role)
            data.set_property_int("stream_id", sid)
            await env.send_data(data)
        metrics = Data.create("metrics")
        metrics.set_property_from_json("ttfb_ms", "420")
        await env.send_data(metrics)
        error = Data.create("error")
        error.set_property_string("message", "rate limited")
        await env.send_data(error)
    assert [r["text"] for r in collector.records] == ["What time is it?", "It is ", "nine.", ""]
    assert [s["text"] for s in collector.segments] == ["What time is it?", "It is nine."]
    assert out.getvalue() == "[user] What time is it?\n[assistant] It is nine.\n"
    assert collector.metrics[0]["ttfb_ms"] == 420
    assert collector.errors[0]["message"] == "rate limited"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["text"] * 4 + ["metrics", "error"]
    assert lines[0]["role"] == "user" and lines[0]["stream_id"] == 123
    assert all(isinstance(line["ts"], float) for line in lines)


@pytest.mark.parametrize("suffix", [".json", ".sqlite"])
async def test_chat_storage_round_trip_survives_restart_and_trims(
    tmp_path: Path, suffix: str
) -> None:
    store = tmp_path / f"history{suffix}"
    env = {"HOST_TEST_STORE": str(store)}
    turns = [("user", "hi"), ("assistant", "hello"), ("user", "weather?"), ("assistant", "sunny")]
    async with companions(env) as runner:
        empty = await runner.env("probe").send_cmd(Cmd.create("retrieve"))
        assert json.loads(empty.get_property_string("response")) == []
        for role, text in turns:
            data = Data.create("append")
            data.set_property_string("text", text)
            data.set_property_string("role", role)
            data.set_property_int("stream_id", 123 if role == "user" else 0)
            await runner.env("probe").send_data(data)
    async with companions(env) as runner:  # a new graph reads what the first stored
        result = await runner.env("probe").send_cmd(Cmd.create("retrieve"))
    assert result.get_status_code() == StatusCode.OK
    history = json.loads(result.get_property_string("response"))
    assert history == [{"role": r, "content": t} for r, t in turns[1:]]  # max_items = 3
    if suffix == ".sqlite":
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT COUNT(*) FROM turns").fetchone() == (3,)
        db.close()
    else:
        assert len(json.loads(store.read_text())) == 3
