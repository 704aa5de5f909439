"""What the embedded backend takes it gives back: recognisers, workers, connections, bytes.

Real servers on 127.0.0.1, real recordings; every wait is for an event or a state, under a
timeout.
"""

from __future__ import annotations

import asyncio

import pytest

from realtime import events as ev
from realtime.connection import connect
from realtime.session import SessionConfig

try:
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
        async with asyncio.timeout(TURN_TIMEOUT):
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
