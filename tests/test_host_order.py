"""The host keeps order between two nodes, and a slow node never stalls the GLM node."""

from __future__ import annotations

import asyncio
from pathlib import Path

from glm_realtime.host import Addon, AsyncTenEnv, AudioFrame, Cmd, Data, Extension, GraphRunner
from tests.fake_glm import Expect, FakeGLMServer, Send
from tests.glm_graph import build_graph, within
from tests.test_host_runner import Gate, make_graph


def _frame(seq: int) -> AudioFrame:
    frame = AudioFrame.from_buffer("pcm_frame", b"\x00\x00", 16000)
    frame.set_property_int("seq", seq)
    return frame


async def test_flush_is_never_overtaken_by_audio_queued_before_it() -> None:
    graph = make_graph(
        [("probe", "probe", {}), ("gate", "gate", {})],
        [("probe", "audio_frame", "pcm_frame", ["gate"]), ("probe", "cmd", "flush", ["gate"])],
    )
    async with GraphRunner(graph) as runner:
        env, gate = runner.env("probe"), runner.node("gate")
        assert isinstance(gate, Gate)
        for seq in range(5):
            await env.send_audio_frame(_frame(seq))
        flush = asyncio.create_task(env.send_cmd(Cmd.create("flush")), name="test:flush")
        await within(gate.entered.wait())  # the player is busy with frame 0
        gate.gate.set()
        await within(flush)
        for seq in range(5, 8):
            await env.send_audio_frame(_frame(seq))
        await within(gate.wait_for(lambda p: len(p.received) == 9))
    seen = [
        m.get_name() if isinstance(m, Cmd) else m.get_property_int("seq") for m in gate.received
    ]
    assert seen == [0, 1, 2, 3, 4, "flush", 5, 6, 7]


class SlowWriter(Extension):
    """A transcript writer on a disk that does not answer until ``disk`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.disk = asyncio.Event()
        self.written = 0

    async def on_data(self, env: AsyncTenEnv, data: Data) -> None:
        await self.disk.wait()
        self.written += 1


SLOW = Addon("slow_writer", SlowWriter, {"type": "extension", "name": "slow_writer"})


async def test_a_slow_node_never_stalls_the_glm_receive_loop(tmp_path: Path) -> None:
    sentences = [
        {"type": "response.audio_transcript.delta", "response_id": "r1", "delta": f"Word {i}. "}
        for i in range(300)  # far more text_data than a node queue holds
    ]
    script = [
        [
            Expect("session.update"),
            Send({"type": "response.created", "response": {"id": "r1"}}, *sentences),
            Send({"type": "input_audio_buffer.speech_started"}),
        ]
    ]
    async with FakeGLMServer(script) as server:
        graph = build_graph(
            tmp_path,
            server.url,
            with_source=False,
            collector_addon="slow_writer",
            addons=(SLOW,),
        )
        async with GraphRunner(graph) as runner:
            writer, glm = runner.node("collector"), runner.node("glm")
            assert isinstance(writer, SlowWriter)
            fake = await server.connection(0)
            # The barge-in after the 300 sentences is handled while the writer is stuck.
            await within(fake.wait_received("response.cancel"))
            outbox = glm.session.outbox  # type: ignore[attr-defined]
            assert writer.written == 0
            assert len(outbox) <= outbox.item_limit
            writer.disk.set()
            await within(outbox.wait_idle())
    assert writer.written == 1 + 300 + 1  # connect metrics, the sentences, the [interrupted] tail
    assert server.violations == []
