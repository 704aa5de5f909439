"""Admission control and lag reports of the embedded backend, on real sockets and audio."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import pytest

from realtime import events as ev
from realtime.compat import timeout
from realtime.connection import connect
from realtime.errors import ConfigError, ConnectionClosed
from realtime.session import SessionConfig, TurnDetection

try:
    from glm_local.admission import (
        SPEAKERS_PER_ASR_CORE,
        WHISPER_SPEAKERS_PER_CORE,
        default_asr_processes,
        real_time_capacity,
    )
    from glm_local.server import LocalRealtimeServer
    from glm_local.speech import PocketSphinxModel
    from tests.local_utils import Client, goforward, silence, wav_file

    PocketSphinxModel.default()
except ImportError as exc:  # the [local] extra is missing
    pytest.skip(f"embedded backend unavailable: {exc}", allow_module_level=True)

pytestmark = pytest.mark.speech

TOKEN = "adm-id.adm-secret"
TIMEOUT = 120.0


async def admitted(server: LocalRealtimeServer) -> Client:
    client = Client(await connect(server.url, api_key=TOKEN))
    await client.until_type("session.created", TIMEOUT)
    return client


async def test_a_session_over_max_sessions_gets_glm_concurrency_error_and_1013() -> None:
    """The third of max_sessions=2 gets error 1302 naming the limit and close 1013, with no
    session.created; once the others have ended, a new one is served."""
    async with LocalRealtimeServer(port=0, token=TOKEN, pace=0, max_sessions=2) as server:
        first, second = await admitted(server), await admitted(server)
        third = Client(await connect(server.url, api_key=TOKEN))
        error = await third.until_type("error", TIMEOUT)
        with pytest.raises(ConnectionClosed) as closed:
            await third.until(lambda e: False, TIMEOUT)
        for client in (first, second):
            await client.conn.close()
        async with timeout(TIMEOUT):
            await server.drained()
        again = await admitted(server)
        await again.conn.close()
        metrics = server.metrics()
    assert error.error.code == "1302" and "max_sessions" in error.error.message
    assert "session.created" not in third.types()
    assert closed.value.code == 1013
    assert (metrics.sessions_served, metrics.sessions_refused) == (3, 1)


def test_admission_defaults_to_the_measured_capacity_at_real_time_and_is_off_at_pace_0() -> None:
    cores = os.cpu_count() or 1
    assert real_time_capacity(0) == SPEAKERS_PER_ASR_CORE  # the GIL: one core
    assert real_time_capacity(cores) == SPEAKERS_PER_ASR_CORE * cores
    assert real_time_capacity(cores + 4) == SPEAKERS_PER_ASR_CORE * cores
    real_time = LocalRealtimeServer(port=0, asr_processes=0)
    assert real_time.max_sessions == real_time.capacity == real_time_capacity(0)
    assert LocalRealtimeServer(port=0, pace=0).max_sessions is None  # the gym's many sessions
    assert LocalRealtimeServer(port=0, pace=0, max_sessions=3).max_sessions == 3
    assert default_asr_processes() == (min(cores, 64) if cores > 1 else 0)


def test_whisper_capacity_is_its_own_measured_figure_on_every_core() -> None:
    cores = os.cpu_count() or 1
    assert real_time_capacity(0, "whisper") == WHISPER_SPEAKERS_PER_CORE * cores
    assert real_time_capacity(2, "whisper") == WHISPER_SPEAKERS_PER_CORE * cores
    server = LocalRealtimeServer(port=0, asr="whisper", asr_processes=0)
    assert server.max_sessions == server.capacity == WHISPER_SPEAKERS_PER_CORE * cores
    assert default_asr_processes("whisper") == 0  # its inference needs no GIL


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_max_sessions_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_sessions must be an int >= 1 or None"):
        LocalRealtimeServer(port=0, max_sessions=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("pace", "level"), [(1.0, logging.WARNING), (0.0, logging.INFO)])
async def test_a_session_far_behind_its_audio_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture, pace: float, level: int
) -> None:
    """After a first turn (the recogniser calibrates on it, decoding it once when it ends),
    24 s of speech arrive in one append (as the vendor's SDK sends a file): the client's
    clock says it all ended on arrival, and recognising it as it streams in takes seconds,
    so the session is reported behind, once: a warning at real-time pace, an info line at
    pace 0 (tests and the gym's virtual clock send faster than real time on purpose)."""
    import base64

    async with LocalRealtimeServer(port=0, token=TOKEN, pace=pace) as server:
        client = await admitted(server)
        update = SessionConfig(turn_detection=TurnDetection(type="client_vad"))
        await client.conn.send(ev.SessionUpdate(session=update))
        await client.until_type("session.updated", TIMEOUT)
        for speech in (goforward(), (goforward() + silence(200)) * 8):
            with caplog.at_level(logging.INFO, logger="glm_local.server"):
                audio = base64.b64encode(wav_file(speech)).decode()
                await client.conn.send(ev.InputAudioBufferAppend(audio=audio))
                await client.conn.send(ev.InputAudioBufferCommit())
                await client.until_type("input_audio_buffer.committed", TIMEOUT)
        metrics = server.metrics()
        (session,) = server.sessions
        await client.conn.close()
    assert metrics.lagging_sessions == 1 and metrics.max_lag_s > 1.0
    behind = [r for r in caplog.records if "behind its audio" in r.getMessage()]
    assert [r.levelno for r in behind] == [level] and session.id in behind[0].getMessage()


async def test_a_session_whose_socket_closed_frees_its_admission_before_its_clean_up_ends() -> None:
    """With max_sessions=1, a caller who connects while the previous session is still
    freeing its recogniser (its socket closed) is served, not refused: a client that
    closes one session and opens the next keeps within the cap (the gym's and Ray's
    session caps rely on it), and drained() still waits for the clean-up."""
    async with LocalRealtimeServer(port=0, token=TOKEN, pace=0, max_sessions=1) as server:
        first = await admitted(server)
        (session,) = server.sessions
        cleaning, release = threading.Event(), threading.Event()
        close_listener = session._listener.close

        def slow_close() -> None:
            cleaning.set()
            release.wait(TIMEOUT)
            close_listener()

        session._listener.close = slow_close  # type: ignore[method-assign]
        try:
            await first.conn.close()
            assert await asyncio.to_thread(cleaning.wait, TIMEOUT)
            second = await admitted(server)  # refused with 1302 when clean-up held the slot
            assert server.metrics().sessions == 1
            await second.conn.close()
        finally:
            release.set()
        async with timeout(TIMEOUT):
            await server.drained()
        metrics = server.metrics()
    assert (metrics.sessions_served, metrics.sessions_refused) == (2, 0)
