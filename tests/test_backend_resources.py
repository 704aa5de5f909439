"""What the embedded backend takes it gives back: recognisers, workers, connections, bytes.

Real servers on 127.0.0.1, real recordings; every wait is for an event or a state, under a
timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pydantic_core
import pytest

from realtime import events as ev
from realtime.compat import timeout
from realtime.connection import connect
from realtime.errors import ConfigError, ConnectionClosed, HandshakeRejected
from realtime.session import GreetingConfig, SessionConfig

try:
    from glm_local.inbox import Inbox
    from glm_local.server import LocalRealtimeServer
    from glm_local.speech import PocketSphinxModel
    from tests.local_utils import GOFORWARD, Client, goforward, silence, wav_packets

    PocketSphinxModel.default()
except ImportError as exc:  # the [local] extra is missing
    pytest.skip(f"embedded backend unavailable: {exc}", allow_module_level=True)

pytestmark = pytest.mark.speech

TOKEN = "res-id.res-secret"
TURN_TIMEOUT = 120.0  # a loaded 2-core machine has taken 40 s for three concurrent turns


async def open_session(server: LocalRealtimeServer) -> Client:
    client = Client(await connect(server.url, api_key=TOKEN))
    await client.until_type("session.created")
    await client.conn.send(ev.SessionUpdate(session=SessionConfig()))
    await client.until_type("session.updated")
    return client


async def spoken_turn(server: LocalRealtimeServer) -> str:
    """One session: 'go forward ten meters' with server VAD, the reply, then close."""
    client = await open_session(server)
    try:
        await client.send_audio(wav_packets(goforward() + silence(1000)))
        await client.until_done(TURN_TIMEOUT)
        said = client.of_type("conversation.item.input_audio_transcription.completed")
        return str(said[0].transcript)
    finally:
        await client.conn.close()


async def abandoned(server: LocalRealtimeServer) -> None:
    """A session that leaves mid-utterance, while its recogniser may still be loading."""
    client = Client(await connect(server.url, api_key=TOKEN))
    await client.send_audio(wav_packets(goforward()[: len(goforward()) // 2]))
    await client.conn.close()


async def rounds_of_sessions(server: LocalRealtimeServer, rounds: int, size: int) -> None:
    for _ in range(rounds):
        said = await asyncio.gather(
            *(spoken_turn(server) for _ in range(size)), *(abandoned(server) for _ in range(2))
        )
        assert [s for s in said if s is not None] == [GOFORWARD] * size
        async with timeout(TURN_TIMEOUT):
            await server.drained()


@pytest.mark.parametrize("asr_processes", [0, 2], ids=["in-process", "2-workers"])
async def test_ended_sessions_leave_no_recogniser_alive(asr_processes: int) -> None:
    """After rounds of concurrent sessions (some leaving mid-utterance, before their
    recogniser is ready), no recogniser they made is left: not in the server process
    (none is left to the garbage collector) and not in the ASR workers."""
    async with LocalRealtimeServer(
        port=0, token=TOKEN, pace=0, asr_processes=asr_processes
    ) as server:
        before = await server.live_recognizers()
        await rounds_of_sessions(server, rounds=2, size=3)
        assert server.sessions_served == 2 * 5
        assert await server.live_recognizers() == before


async def test_a_connection_that_says_nothing_is_closed_after_the_idle_timeout() -> None:
    """Nothing sent: an ``idle_timeout`` error, then a normal close; others still connect."""
    async with LocalRealtimeServer(port=0, token=TOKEN, pace=0, idle_timeout_s=0.3) as server:
        client = Client(await connect(server.url, api_key=TOKEN))
        error = await client.until_type("error")
        with pytest.raises(ConnectionClosed) as closed:
            await client.until(lambda e: False)
        again = Client(await connect(server.url, api_key=TOKEN))
        await again.until_type("session.created")
        await again.conn.close()
    assert error.error.code == "idle_timeout"
    assert "nothing received for 0.3 s" in error.error.message
    assert closed.value.code == 1000 and closed.value.reason == "idle timeout"


async def test_a_connection_listening_to_a_reply_is_not_idle() -> None:
    """The idle clock runs from the last event either side sent (heartbeats aside) and stops
    while a reply is being made: a reply longer than the timeout is heard to its end, and
    only then is the connection closed."""
    greeting = GreetingConfig(enable=True, content="Hello. This reply lasts a few seconds.")
    async with LocalRealtimeServer(
        port=0, token=TOKEN, pace=1.0, idle_timeout_s=0.5, heartbeat_s=0.1
    ) as server:
        client = Client(await connect(server.url, api_key=TOKEN))
        await client.conn.send(ev.SessionUpdate(session=SessionConfig(greeting_config=greeting)))
        done = await client.until_done()
        await client.until_type("error")
        with pytest.raises(ConnectionClosed):
            await client.until(lambda e: False)
    assert len(client.audio(done.response.id)) / 48 > 1500  # ms of reply, 3x the timeout
    assert client.of_type("error")[0].error.code == "idle_timeout"
    assert len(client.of_type("heartbeat")) > 5  # heartbeats did not keep it alive


def test_budgets_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="idle_timeout_s must be positive or None"):
        LocalRealtimeServer(port=0, idle_timeout_s=0)
    with pytest.raises(ConfigError, match="read_ahead_bytes must be positive"):
        LocalRealtimeServer(port=0, read_ahead_bytes=0)
    with pytest.raises(ConfigError, match="max_connections must be positive"):
        LocalRealtimeServer(port=0, max_connections=-1)


async def test_connections_beyond_the_cap_get_429_with_glm_busy_code() -> None:
    async with LocalRealtimeServer(port=0, token=TOKEN, pace=0, max_connections=2) as server:
        first, second = await open_session(server), await open_session(server)
        with pytest.raises(HandshakeRejected) as refused:
            await connect(server.url, api_key=TOKEN)
        await first.conn.close()
        await second.conn.close()
        async with timeout(TURN_TIMEOUT):
            await server.drained()
        third = await open_session(server)  # room again
        await third.conn.close()
    assert refused.value.status == 429
    assert json.loads(refused.value.body)["error"]["code"] == "1305"
    assert "max_connections" in refused.value.body and server.connections_refused == 1


async def test_read_ahead_is_bounded_in_bytes_and_loses_nothing() -> None:
    """A client that sends far faster than real time (here 30x the budget at once) is
    throttled at the socket: the session never holds more than ``read_ahead_bytes`` of
    frames it has not handled, and every frame is still handled, in order."""
    budget = 48_000
    packets = wav_packets(goforward() + silence(1000), packet_ms=100)
    assert sum(len(p) for p in packets) > 3 * budget
    async with LocalRealtimeServer(port=0, token=TOKEN, pace=0, read_ahead_bytes=budget) as server:
        client = await open_session(server)
        (session,) = server.sessions
        for _ in range(10):
            await client.send_audio(packets)
        for _ in range(10):
            await client.until_done(TURN_TIMEOUT)
        await client.conn.close()
    said = client.of_type("conversation.item.input_audio_transcription.completed")
    assert [s.transcript for s in said] == [GOFORWARD] * 10
    assert 0 < session.inbox.peak_bytes <= budget


async def test_inbox_put_waits_while_the_budget_is_used_and_a_large_frame_fits_alone() -> None:
    inbox = Inbox(max_bytes=100_000)
    await inbox.put("a" * 60_000)
    blocked = asyncio.create_task(inbox.put("b" * 60_000), name="test:put")
    for _ in range(5):
        await asyncio.sleep(0)  # let it run as far as it can
    assert not blocked.done() and len(inbox) == 1
    frame, _ = await inbox.get()
    await blocked
    assert frame.startswith("a") and len(inbox) == 1
    await inbox.get()
    await inbox.put("c" * 300_000)  # larger than the budget: taken when the inbox is empty
    assert inbox.peak_bytes > 300_000


async def test_inbox_gives_back_what_a_frame_took_though_its_size_grew_while_held() -> None:
    """A non-ASCII text frame parsed by pydantic while held grows by its cached UTF-8 form;
    taking it out gives back the size it was counted at, so the held bytes return to 0
    (they went negative, an ever larger budget, when the size was measured again)."""
    inbox = Inbox(max_bytes=100_000)
    frame = json.dumps(
        {"type": "conversation.item.create", "text": "你好" * 500}, ensure_ascii=False
    )
    await inbox.put(frame)
    pydantic_core.from_json(frame)
    assert inbox.held_bytes > 0
    assert (await inbox.get())[0] == frame
    assert inbox.held_bytes == 0


async def test_a_dead_asr_worker_is_replaced_and_new_sessions_all_succeed() -> None:
    """Kill one of two ASR workers: the session whose recogniser lived there gets an
    error event naming the failure and a 1011 close; five new sessions all get answers
    (none is sent to the dead worker); a replacement runs in its place."""
    async with LocalRealtimeServer(port=0, token=TOKEN, pace=0, asr_processes=2) as server:
        before = server.asr_worker_pids
        clients = [await open_session(server), await open_session(server)]  # one per worker
        os.kill(before[0], signal.SIGKILL)
        for client in clients:
            await client.send_audio(wav_packets(goforward() + silence(1000)))
        outcomes = await asyncio.gather(
            *(
                c.until(lambda e: e.type in ("error", "response.done"), TURN_TIMEOUT)
                for c in clients
            )
        )
        (orphan,) = (c for c, o in zip(clients, outcomes, strict=True) if o.type == "error")
        with pytest.raises(ConnectionClosed) as closed:
            await orphan.until(lambda e: False, TURN_TIMEOUT)
        said = await asyncio.gather(*(spoken_turn(server) for _ in range(5)))
        after = server.asr_worker_pids
        replaced = server.metrics().asr_workers_replaced
        for client in clients:
            await client.conn.close()
    errors = [o for o in outcomes if o.type == "error"]
    assert len(errors) == 1 and errors[0].error.code == "server_error"
    assert closed.value.code == 1011
    assert replaced == 1
    assert "ASR worker 0 is gone (exit code -9)" in errors[0].error.message
    assert said == [GOFORWARD] * 5
    assert len(after) == 2 and before[0] not in after and before[1] in after
