"""GraphRunner: routing, results, ordering, back-pressure, lifecycle, stop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import pytest

from glm_realtime.host import (
    Addon,
    AddonRegistry,
    AsyncTenEnv,
    AudioFrame,
    Cmd,
    CmdResult,
    Data,
    Extension,
    Graph,
    GraphRunner,
    NodeError,
    StatusCode,
    parse_graph,
    run_graph,
)
from glm_realtime.host.testing import Probe

Route = tuple[str, str, str, list[str]]


class Echo(Extension):
    """Answers every cmd OK with ``tag`` and the cmd's ``text``; records task names."""

    task_names: ClassVar[list[str]] = []

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        task = asyncio.current_task()
        assert task is not None
        Echo.task_names.append(task.get_name())
        result = CmdResult.create(StatusCode.OK)
        result.set_property_string("tag", env.get_property_string("tag"))
        if cmd.is_property_exist("text"):
            result.set_property_string("text", cmd.get_property_string("text"))
        await env.return_result(result, cmd)


class Relay(Extension):
    """On cmd ``ask`` sends cmd ``inner`` and answers with the inner result's ``text``."""

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        if cmd.get_name() != "ask":
            result = CmdResult.create(StatusCode.OK)
            result.set_property_string("text", f"{self.name} answered {cmd.get_name()}")
            await env.return_result(result, cmd)
            return
        inner = await env.send_cmd(Cmd.create("inner"))
        result = CmdResult.create(inner.get_status_code())
        result.set_property_string("text", inner.get_property_string("text"))
        await env.return_result(result, cmd)


class Silent(Extension):
    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        return None


class Faulty(Extension):
    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        raise ValueError("kaput")

    async def on_data(self, env: AsyncTenEnv, data: Data) -> None:
        if data.get_name() == "bad":
            raise ValueError("bad data")


class Gate(Probe):
    """A probe whose audio handler waits for ``gate`` after announcing ``entered``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def on_audio_frame(self, env: AsyncTenEnv, audio_frame: AudioFrame) -> None:
        self.entered.set()
        await self.gate.wait()
        await super().on_audio_frame(env, audio_frame)


class Stopper(Extension):
    async def on_start(self, env: AsyncTenEnv) -> None:
        env.stop_graph()


class Tracer(Extension):
    """Logs lifecycle calls to a shared list; ``fail_in`` names a phase that raises."""

    log: ClassVar[list[str]] = []

    async def _trace(self, env: AsyncTenEnv, phase: str) -> None:
        Tracer.log.append(f"{self.name}.{phase}")
        if env.is_property_exist("fail_in") and env.get_property_string("fail_in") == phase:
            raise RuntimeError(f"{self.name} refuses {phase}")

    async def on_init(self, env: AsyncTenEnv) -> None:
        await self._trace(env, "on_init")

    async def on_start(self, env: AsyncTenEnv) -> None:
        await self._trace(env, "on_start")

    async def on_stop(self, env: AsyncTenEnv) -> None:
        await self._trace(env, "on_stop")

    async def on_deinit(self, env: AsyncTenEnv) -> None:
        await self._trace(env, "on_deinit")


REGISTRY = AddonRegistry(include_decorated=False)
for _name, _cls in [
    ("probe", Probe),
    ("echo", Echo),
    ("relay", Relay),
    ("silent", Silent),
    ("faulty", Faulty),
    ("gate", Gate),
    ("tracer", Tracer),
    ("stopper", Stopper),
]:
    REGISTRY.add(Addon(_name, _cls, {"type": "extension", "name": _name}))


def make_graph(nodes: list[tuple[str, str, dict[str, Any]]], routes: list[Route]) -> Graph:
    conns: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for src, kind, msg, dests in routes:
        flows = conns.setdefault(src, {}).setdefault(kind, [])
        flows.append({"name": msg, "dest": [{"extension": d} for d in dests]})
    return parse_graph(
        {
            "name": "test",
            "nodes": [
                {"type": "extension", "name": n, "addon": a, "property": p} for n, a, p in nodes
            ],
            "connections": [{"extension": src, **kinds} for src, kinds in conns.items()],
        },
        registry=REGISTRY,
        environ={},
    )


def probe_of(runner: GraphRunner, name: str = "probe") -> Probe:
    node = runner.node(name)
    assert isinstance(node, Probe)
    return node


@pytest.fixture(autouse=True)
def _reset_class_logs() -> None:
    Tracer.log.clear()
    Echo.task_names.clear()


async def test_cmd_is_routed_and_the_destination_result_returned() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("echo", "echo", {"tag": "e1"})],
        [("probe", "cmd", "hello", ["echo"])],
    )
    async with GraphRunner(graph) as runner:
        cmd = Cmd.create("hello")
        cmd.set_property_string("text", "hi")
        result = await runner.env("probe").send_cmd(cmd)
    assert result.get_status_code() == StatusCode.OK
    assert result.get_property_string("text") == "hi"
    assert result.get_name() == "hello"
    assert Echo.task_names[0].startswith("graph:echo:cmd:hello#")


async def test_send_cmd_without_destination_returns_error_with_detail() -> None:
    graph = make_graph([("probe", "probe", {})], [])
    async with GraphRunner(graph) as runner:
        result = await runner.env("probe").send_cmd(Cmd.create("retrieve"))
    assert result is not None
    assert result.get_status_code() == StatusCode.ERROR
    assert result.get_property_string("detail") == "no destination for cmd 'retrieve' from 'probe'"


async def test_handler_returning_without_result_yields_error() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("quiet", "silent", {})], [("probe", "cmd", "x", ["quiet"])]
    )
    async with GraphRunner(graph) as runner:
        result = await runner.env("probe").send_cmd(Cmd.create("x"))
    assert result.get_status_code() == StatusCode.ERROR
    assert "node 'quiet' returned from on_cmd('x') without return_result" in (
        result.get_property_string("detail")
    )


async def test_handler_raising_yields_error_with_exception_text_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("bad", "faulty", {})], [("probe", "cmd", "x", ["bad"])]
    )
    async with GraphRunner(graph) as runner:
        result = await runner.env("probe").send_cmd(Cmd.create("x"))
    assert result.get_status_code() == StatusCode.ERROR
    assert "ValueError: kaput" in result.get_property_string("detail")
    logged = [r for r in caplog.records if r.name == "glm_realtime.graph.bad"]
    assert logged and logged[0].exc_info is not None and "on_cmd('x')" in logged[0].getMessage()


async def test_handler_awaiting_another_cmd_does_not_deadlock() -> None:
    # a.ask -> b (relay) sends inner -> a (relay) answers inner while a's ask is pending.
    graph = make_graph(
        [("probe", "probe", {}), ("a", "relay", {}), ("b", "relay", {})],
        [
            ("probe", "cmd", "ask", ["a"]),
            ("a", "cmd", "inner", ["b"]),
            ("b", "cmd", "inner", ["a"]),
        ],
    )
    async with GraphRunner(graph) as runner:
        result = await runner.env("probe").send_cmd(Cmd.create("ask"))
    assert result.get_property_string("text") == "b answered inner"


async def test_cmd_with_several_destinations_returns_the_first_result() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("e1", "echo", {"tag": "one"}), ("e2", "echo", {"tag": "two"})],
        [("probe", "cmd", "hello", ["e1", "e2"])],
    )
    async with GraphRunner(graph) as runner:
        result = await runner.env("probe").send_cmd(Cmd.create("hello"))
    assert result.get_property_string("tag") == "one"
    assert sorted(name.split(":")[1] for name in Echo.task_names) == ["e1", "e2"]


async def test_data_and_audio_are_delivered_in_send_order() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("sink", "probe", {})],
        [("probe", "data", "d", ["sink"]), ("probe", "audio_frame", "pcm_frame", ["sink"])],
    )
    async with GraphRunner(graph, queue_size=4) as runner:
        env = runner.env("probe")
        for i in range(50):
            if i % 3:
                data = Data.create("d")
                data.set_property_int("seq", i)
                await env.send_data(data)
            else:
                frame = AudioFrame.from_buffer("pcm_frame", b"\x00\x00", 16000)
                frame.set_property_int("seq", i)
                await env.send_audio_frame(frame)
        sink = probe_of(runner, "sink")
        await sink.wait_for(lambda p: len(p.received) == 50)
    assert [m.get_property_int("seq") for m in sink.received] == list(range(50))
    assert [isinstance(m, AudioFrame) for m in sink.received] == [i % 3 == 0 for i in range(50)]


async def test_data_to_several_nodes_is_cloned() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("s1", "probe", {}), ("s2", "probe", {})],
        [("probe", "data", "d", ["s1", "s2"])],
    )
    async with GraphRunner(graph) as runner:
        await runner.env("probe").send_data(Data.create("d"))
        s1, s2 = probe_of(runner, "s1"), probe_of(runner, "s2")
        await s1.wait_for(lambda p: len(p.data) == 1)
        await s2.wait_for(lambda p: len(p.data) == 1)
    assert s1.data[0] is not s2.data[0]


async def test_leaving_normally_delivers_queued_data_before_stopping_nodes() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("sink", "probe", {})], [("probe", "data", "d", ["sink"])]
    )
    async with GraphRunner(graph) as runner:
        for _ in range(3):  # queued without yielding to the sink's consumer
            await runner.env("probe").send_data(Data.create("d"))
        assert runner.queue_depth("sink") == 3
    assert len(probe_of(runner, "sink").data) == 3


async def test_leaving_on_an_exception_does_not_wait_for_queued_data() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("sink", "probe", {})], [("probe", "data", "d", ["sink"])]
    )
    runner = GraphRunner(graph)
    with pytest.raises(KeyError):
        async with runner:
            await runner.env("probe").send_data(Data.create("d"))
            raise KeyError("boom")
    assert probe_of(runner, "sink").data == []
    assert probe_of(runner, "sink").lifecycle[-2:] == ["on_stop", "on_deinit"]


async def test_exception_in_on_data_is_logged_and_node_keeps_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("bad", "faulty", {}), ("after", "probe", {})],
        [("probe", "data", "bad", ["bad"]), ("probe", "data", "ok", ["bad", "after"])],
    )
    async with GraphRunner(graph) as runner:
        env = runner.env("probe")
        await env.send_data(Data.create("bad"))
        await env.send_data(Data.create("ok"))
        await probe_of(runner, "after").wait_for(lambda p: len(p.data) == 1)
    (record,) = [r for r in caplog.records if "on_data('bad')" in r.getMessage()]
    assert record.name == "glm_realtime.graph.bad"
    assert "node 'bad'" in record.getMessage()


async def test_a_node_failing_on_every_message_logs_bounded_one_line_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One line per failure naming the node and the error, a traceback only with the
    first, and after ten only every 10x: 150 failures leave 11 lines, not 150 tracebacks."""
    graph = make_graph(
        [("probe", "probe", {}), ("bad", "faulty", {}), ("after", "probe", {})],
        [("probe", "data", "bad", ["bad"]), ("probe", "data", "ok", ["bad", "after"])],
    )
    caplog.set_level(logging.INFO, logger="glm_realtime.graph.bad")
    async with GraphRunner(graph) as runner:
        env = runner.env("probe")
        for _ in range(150):
            await env.send_data(Data.create("bad"))
        await env.send_data(Data.create("ok"))
        await probe_of(runner, "after").wait_for(lambda p: len(p.data) == 1)
    logged = [r for r in caplog.records if r.name == "glm_realtime.graph.bad"]
    assert len(logged) == 11
    assert all(
        r.getMessage().startswith("node 'bad' failed in on_data('bad'): ValueError: bad data")
        for r in logged
    )
    assert [r.exc_info is not None for r in logged] == [True] + [False] * 10
    assert "(100 failures of this node so far" in logged[-1].getMessage()


async def test_send_audio_frame_waits_when_destination_queue_is_full() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("gate", "gate", {})],
        [("probe", "audio_frame", "pcm_frame", ["gate"])],
    )
    queue_size = 3
    async with GraphRunner(graph, queue_size=queue_size) as runner:
        env, gate = runner.env("probe"), runner.node("gate")
        assert isinstance(gate, Gate)

        def frame() -> AudioFrame:
            return AudioFrame.from_buffer("pcm_frame", b"\x00\x00", 16000)

        await env.send_audio_frame(frame())
        await gate.entered.wait()  # the consumer holds frame 1
        for _ in range(queue_size):
            await env.send_audio_frame(frame())  # fills the queue without waiting
        assert runner.queue_depth("gate") == queue_size
        blocked = asyncio.create_task(env.send_audio_frame(frame()))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not blocked.done()  # back-pressure: the sender waits
        gate.gate.set()
        await blocked
        await gate.wait_for(lambda p: len(p.frames) == queue_size + 2)


async def test_lifecycle_order_and_every_node_stops_when_one_stop_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = make_graph(
        [("a", "tracer", {}), ("b", "tracer", {"fail_in": "on_stop"}), ("c", "tracer", {})], []
    )
    async with GraphRunner(graph):
        assert Tracer.log == ["a.on_init", "b.on_init", "c.on_init"] + [
            "a.on_start",
            "b.on_start",
            "c.on_start",
        ]
    assert Tracer.log[6:] == [
        "c.on_stop",
        "b.on_stop",
        "a.on_stop",
        "c.on_deinit",
        "b.on_deinit",
        "a.on_deinit",
    ]
    assert "node 'b' failed in on_stop: RuntimeError: b refuses on_stop" in caplog.text


async def test_start_failure_tears_down_started_nodes_and_raises_node_error() -> None:
    graph = make_graph(
        [("a", "tracer", {}), ("b", "tracer", {"fail_in": "on_start"}), ("c", "tracer", {})], []
    )
    with pytest.raises(NodeError, match="node 'b' failed in on_start") as info:
        async with GraphRunner(graph):
            pytest.fail("the body must not run")
    assert (info.value.node, info.value.phase) == ("b", "on_start")
    assert "c.on_start" not in Tracer.log
    assert Tracer.log[-5:] == [
        "b.on_stop",
        "a.on_stop",
        "c.on_deinit",
        "b.on_deinit",
        "a.on_deinit",
    ]


async def test_stop_graph_from_a_node_ends_wait_stopped() -> None:
    graph = make_graph([("probe", "probe", {}), ("t", "tracer", {})], [])
    async with GraphRunner(graph) as runner:
        runner.env("probe").stop_graph()
        await runner.wait_stopped()
        assert runner.stopped_by == "probe"
    assert Tracer.log[-2:] == ["t.on_stop", "t.on_deinit"]


async def test_run_graph_returns_after_a_node_stops_the_graph() -> None:
    graph = make_graph([("t", "tracer", {}), ("stopper", "stopper", {})], [])
    runner = await run_graph(graph)
    assert runner.stopped_by == "stopper"
    assert Tracer.log[-2:] == ["t.on_stop", "t.on_deinit"]


async def test_runner_stop_ends_wait_stopped() -> None:
    graph = make_graph([("probe", "probe", {})], [])
    async with GraphRunner(graph) as runner:
        runner.stop()
        await runner.wait_stopped()
    assert runner.stopped_by == "runner"
    assert probe_of(runner).lifecycle[-2:] == ["on_stop", "on_deinit"]


async def test_cancellation_stops_every_node_and_cancels_every_task() -> None:
    graph = make_graph([("a", "tracer", {}), ("probe", "probe", {})], [])
    runner = GraphRunner(graph)
    probe = probe_of(runner)

    async def main() -> None:
        async with runner:
            await runner.wait_stopped()

    task = asyncio.create_task(main())
    await probe.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.lifecycle == ["on_init", "on_start", "on_stop", "on_deinit"]
    assert Tracer.log[-2:] == ["a.on_stop", "a.on_deinit"]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("graph:")]


async def test_node_tasks_are_named_and_cancelled_after_its_stop() -> None:
    graph = make_graph([("probe", "probe", {})], [])
    forever = asyncio.Event()
    async with GraphRunner(graph) as runner:
        task = runner.env("probe").create_task(forever.wait(), "waiter")
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {"graph:probe:inbox", "graph:probe:waiter"} <= names
    assert task.cancelled()


async def test_env_reads_node_properties_and_logs_under_node_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph = make_graph([("probe", "probe", {"n": 3, "s": "x", "f": 0.5, "b": True})], [])
    caplog.set_level(logging.DEBUG, logger="glm_realtime.graph.probe")
    async with GraphRunner(graph) as runner:
        env = runner.env("probe")
        assert env.get_property_int("n") == 3
        assert env.get_property_string("s") == "x"
        assert env.get_property_float("f") == 0.5
        assert env.get_property_bool("b") is True
        assert env.is_property_exist("n") and not env.is_property_exist("zz")
        with pytest.raises(RuntimeError, match="property 'zz' of node 'probe' does not exist"):
            env.get_property_int("zz")
        env.log_warn("careful")
    assert any(
        r.name == "glm_realtime.graph.probe" and r.getMessage() == "careful" for r in caplog.records
    )
