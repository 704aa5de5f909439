"""The connection against a real local websocket server playing GLM."""

from __future__ import annotations

import asyncio
import base64
import logging

import jwt
import pytest

from realtime import events as ev
from realtime.compat import TIMEOUT_ERRORS
from realtime.connection import connect
from realtime.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosedError,
    Disposition,
    FrameTooLarge,
    HandshakeRejected,
    IdleTimeout,
    classify,
    unreachable,
)
from realtime.session import SessionConfig
from tests.fake_glm import Call, Close, Expect, FakeConnection, FakeGLMServer, Send, SendRaw, Stall
from tests.net_utils import refused_port

KEY = "test-id.test-secret"


async def test_connects_with_bearer_key_and_receives_heartbeat_then_session_created() -> None:
    async with (
        FakeGLMServer([[Stall()]], api_key=KEY) as server,
        connect(server.url, api_key=KEY) as conn,
    ):
        first, second = await conn.recv(), await conn.recv()
        assert isinstance(first, ev.Heartbeat)
        assert isinstance(second, ev.SessionCreated)
        assert second.session.id == "sess_0"
        fake = await server.connection(0)
        assert fake.authorization == f"Bearer {KEY}"


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # the test key is short
async def test_connects_with_zhipu_jwt_signed_by_the_key_secret() -> None:
    async with (
        FakeGLMServer([[Stall()]], api_key=KEY) as server,
        connect(server.url, jwt_secret=KEY, jwt_ttl=60) as conn,
    ):
        assert isinstance(await conn.recv(), ev.Heartbeat)
        fake = await server.connection(0)
    token = (fake.authorization or "").removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, "test-secret", algorithms=["HS256"], options={"verify_exp": False})
    assert header["alg"] == "HS256" and header["sign_type"] == "SIGN"
    assert claims["api_key"] == "test-id"
    # Both in milliseconds, as Zhipu's SDK does; exp is the timestamp plus the TTL.
    assert claims["exp"] - claims["timestamp"] == 60_000
    assert len(str(claims["timestamp"])) == 13


async def test_refused_key_raises_authentication_error_classified_fatal() -> None:
    async with FakeGLMServer(api_key=KEY) as server:
        with pytest.raises(AuthenticationError) as info:
            await connect(server.url, api_key="test-id.wrong")
    assert info.value.status == 401
    assert classify(info.value) is Disposition.FATAL
    assert server.connections == []


@pytest.mark.parametrize(
    ("status", "disposition"), [(503, Disposition.RETRY), (404, Disposition.FATAL)]
)
async def test_other_handshake_refusals_are_classified_by_status(
    status: int, disposition: Disposition
) -> None:
    async with FakeGLMServer(refuse_status=status) as server:
        with pytest.raises(HandshakeRejected) as info:
            await connect(server.url, api_key=KEY)
    assert info.value.status == status
    assert classify(info.value) is disposition


async def test_unreachable_server_raises_connect_error_classified_retry() -> None:
    with refused_port() as port, pytest.raises(ConnectError) as info:
        await connect(f"ws://127.0.0.1:{port}/api/paas/v4/realtime", api_key=KEY, open_timeout=2)
    assert classify(info.value) is Disposition.RETRY


async def test_a_handshake_that_never_completes_is_a_connect_error_after_open_timeout() -> None:
    """A server that accepts the TCP connection and never answers the upgrade: the
    handshake's timeout (asyncio.TimeoutError on 3.10, not the builtin) is a ConnectError."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectError, match="cannot reach") as info:
            await connect(f"ws://127.0.0.1:{port}/api/x", api_key=KEY, open_timeout=0.2)
        assert isinstance(info.value.__cause__, TIMEOUT_ERRORS)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_unauthenticated_connect_sends_no_authorization_header() -> None:
    async with (
        FakeGLMServer([[Stall()]], api_key=None) as server,
        connect(server.url, unauthenticated=True) as conn,
    ):
        assert isinstance(await conn.recv(), ev.Heartbeat)
        fake = await server.connection(0)
    assert fake.authorization is None
    with pytest.raises(ConfigError, match="neither api_key nor jwt_secret"):
        connect(server.url, api_key=KEY, unauthenticated=True)


async def test_a_refused_port_or_a_name_that_does_not_resolve_is_unreachable() -> None:
    failures = []
    with refused_port() as port:
        for url in (f"ws://127.0.0.1:{port}/api/x", "wss://glm.invalid/api/x"):
            with pytest.raises(ConnectError) as info:
                await connect(url, api_key=KEY, open_timeout=5)
            failures.append(info.value)
    assert [unreachable(exc) for exc in failures] == [True, True]
    async with FakeGLMServer(refuse_status=503) as server:
        with pytest.raises(HandshakeRejected) as refused:
            await connect(server.url, api_key=KEY)
    assert not unreachable(refused.value)  # something answered


async def test_sent_events_reach_the_server_valid_and_in_order() -> None:
    async with (
        FakeGLMServer([[Expect("response.create")]]) as server,
        connect(server.url, api_key=KEY) as conn,
    ):
        await conn.send(ev.SessionUpdate(session=SessionConfig()))
        await conn.send(ev.InputAudioBufferAppend(audio="AAAA"))
        await conn.send(ev.ResponseCreate())
        fake = await server.connection(0)
        await fake.wait_received("response.create")
    assert [e.type for e in fake.received] == [
        "session.update",
        "input_audio_buffer.append",
        "response.create",
    ]
    assert server.violations == []


async def test_idle_connection_raises_idle_timeout_and_closes_the_socket() -> None:
    async with FakeGLMServer([[Stall()]], greet=False) as server:
        conn = await connect(server.url, api_key=KEY, idle_timeout=0.2)
        with pytest.raises(IdleTimeout) as info:
            await conn.recv()
        fake = await server.connection(0)
        await fake.closed.wait()
    assert classify(info.value) is Disposition.RETRY
    assert conn.closed
    assert conn.close_code == 1011


async def test_heartbeats_keep_an_otherwise_quiet_connection_alive() -> None:
    async def beat(fake: FakeConnection) -> None:
        for _ in range(4):
            await fake.send({"type": "heartbeat"})
            await asyncio.sleep(0.1)  # the server's beat interval, not synchronisation

    async with (
        FakeGLMServer([[Call(beat), Stall()]], greet=False) as server,
        connect(server.url, api_key=KEY, idle_timeout=0.3) as conn,
    ):
        beats = [await conn.recv() for _ in range(4)]
    assert all(isinstance(b, ev.Heartbeat) for b in beats)


async def test_normal_close_ends_iteration_quietly() -> None:
    script = [[Send({"type": "heartbeat"}), Close(1000, "bye")]]
    async with (
        FakeGLMServer(script, greet=False) as server,
        connect(server.url, api_key=KEY) as conn,
    ):
        received = [event async for event in conn]
    assert [e.type for e in received] == ["heartbeat"]


async def test_abnormal_close_raises_with_code_from_iteration() -> None:
    async with (
        FakeGLMServer([[Close(1011, "internal")]], greet=False) as server,
        connect(server.url, api_key=KEY) as conn,
    ):
        with pytest.raises(ConnectionClosedError) as info:
            async for _ in conn:
                pass
    assert info.value.code == 1011
    assert classify(info.value) is Disposition.RETRY


async def test_close_1003_is_classified_fatal() -> None:
    async with (
        FakeGLMServer([[Close(1003, "model not allowed")]], greet=False) as server,
        connect(server.url, api_key=KEY) as conn,
    ):
        with pytest.raises(ConnectionClosedError) as info:
            await conn.recv()
    assert classify(info.value) is Disposition.FATAL


async def test_malformed_and_binary_frames_become_invalid_events_and_the_connection_lives() -> None:
    script = [[SendRaw("{not json"), SendRaw(b"\x00\x01binary"), Send({"type": "heartbeat"})]]
    async with (
        FakeGLMServer(script, greet=False) as server,
        connect(server.url, api_key=KEY) as conn,
    ):
        first, second, third = await conn.recv(), await conn.recv(), await conn.recv()
        await conn.send(ev.ResponseCreate())
        fake = await server.connection(0)
        await fake.wait_received("response.create")
    assert isinstance(first, ev.InvalidEvent) and "not JSON" in first.reason
    assert isinstance(second, ev.InvalidEvent) and "binary frame of 8 bytes" in second.reason
    assert isinstance(third, ev.Heartbeat)


async def test_inbound_frame_over_budget_closes_with_1009() -> None:
    big = {"type": "response.audio.delta", "delta": "A" * 5000}
    async with (
        FakeGLMServer([[Send(big)]], greet=False) as server,
        connect(server.url, api_key=KEY, max_frame_bytes=4096) as conn,
    ):
        with pytest.raises(ConnectionClosedError) as info:
            await conn.recv()
    assert info.value.code == 1009


async def test_send_audio_arrives_as_a_valid_append_text_frame_with_the_packet() -> None:
    """send_audio builds the append event without a model; the server must still receive a
    text frame that validates as input_audio_buffer.append and decodes to the packet."""
    packet = bytes(range(256)) * 4
    async with (
        FakeGLMServer([[Expect("input_audio_buffer.commit")]]) as server,
        connect(server.url, api_key=KEY) as conn,
    ):
        await conn.send_audio(packet)
        await conn.send(ev.InputAudioBufferCommit())
        fake = await server.connection(0)
        await fake.wait_received("input_audio_buffer.commit")
    append = fake.received[0]
    assert isinstance(append, ev.InputAudioBufferAppend)
    assert base64.b64decode(append.audio) == packet
    assert server.violations == []


async def test_send_audio_over_budget_is_refused_and_nothing_is_sent() -> None:
    async with (
        FakeGLMServer([[Stall()]], greet=False) as server,
        connect(server.url, api_key=KEY, max_frame_bytes=2048) as conn,
    ):
        with pytest.raises(FrameTooLarge) as info:
            await conn.send_audio(b"\x01" * 2048)
        await conn.send(ev.InputAudioBufferClear())
        fake = await server.connection(0)
        await fake.wait_received("input_audio_buffer.clear")
    assert info.value.size > 2048
    assert [e.type for e in fake.received] == ["input_audio_buffer.clear"]


async def test_outbound_event_over_budget_is_refused_and_nothing_is_sent() -> None:
    async with (
        FakeGLMServer([[Stall()]], greet=False) as server,
        connect(server.url, api_key=KEY, max_frame_bytes=2048) as conn,
    ):
        with pytest.raises(FrameTooLarge) as info:
            await conn.send(ev.InputAudioBufferAppend(audio="A" * 4096))
        await conn.send(ev.InputAudioBufferClear())
        fake = await server.connection(0)
        await fake.wait_received("input_audio_buffer.clear")
    assert info.value.limit == 2048
    assert [e.type for e in fake.received] == ["input_audio_buffer.clear"]


async def test_cancelled_recv_loses_no_event() -> None:
    async def send_later(fake: FakeConnection) -> None:
        await fake.expect("input_audio_buffer.clear")
        await fake.send({"type": "heartbeat"})

    async with (
        FakeGLMServer([[Call(send_later)]], greet=False) as server,
        connect(server.url, api_key=KEY) as conn,
    ):
        pending = asyncio.ensure_future(conn.recv())
        await asyncio.sleep(0)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        await conn.send(ev.InputAudioBufferClear())
        assert isinstance(await conn.recv(), ev.Heartbeat)


async def test_api_key_never_appears_in_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "secret-id.SUPERSECRETVALUE"
    caplog.set_level(logging.DEBUG)
    async with FakeGLMServer([[Expect("response.create")]], api_key=secret) as server:
        connector = connect(server.url, api_key=secret)
        async with connector as conn:
            await conn.send(ev.ResponseCreate())
            texts = [repr(connector), repr(conn), str(await conn.recv())]
        with pytest.raises(AuthenticationError) as info:
            await connect(server.url, api_key="secret-id.OTHERSECRETVALUE")
        texts.append(str(info.value))
        with pytest.raises(AuthenticationError):
            await connect(server.url, jwt_secret="secret-id.THIRDSECRETVALUE")
    # Only the client's loggers: the fake server's own websockets logger is the test peer.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets.")]
    assert any("Authorization" in line for line in ours), "handshake headers were not logged"
    logged = "\n".join([*ours, *texts])
    for part in ("SUPERSECRETVALUE", "OTHERSECRETVALUE", "THIRDSECRETVALUE"):
        assert part not in logged


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of api_key or jwt_secret"),
        ({"api_key": "a.b", "jwt_secret": "a.b"}, "exactly one of api_key or jwt_secret"),
        ({"api_key": "  "}, "API key is empty"),
        ({"api_key": "k", "idle_timeout": 0}, "idle_timeout must be positive"),
    ],
)
def test_bad_connect_arguments_raise_config_error_naming_them(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        connect("ws://127.0.0.1:1/x", **kwargs)  # type: ignore[arg-type]


def test_http_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="ws:// or wss://"):
        connect("https://open.bigmodel.cn/api/paas/v4/realtime", api_key=KEY)


def test_jwt_needs_an_id_dot_secret_key() -> None:
    from realtime.auth import make_jwt

    with pytest.raises(ConfigError, match="'<id>.<secret>'"):
        make_jwt("nodot")


def test_verify_jwt_accepts_a_fresh_token_and_refuses_expired_or_foreign_ones() -> None:
    from realtime.auth import make_jwt, verify_jwt

    token = make_jwt(KEY, ttl_s=60, now_s=1000.0)
    assert verify_jwt(token, KEY, now_s=1030.0)
    assert not verify_jwt(token, KEY, now_s=1061.0)  # exp is in milliseconds
    assert not verify_jwt(token, "test-id.other-secret", now_s=1030.0)
    assert not verify_jwt(make_jwt("other-id.test-secret", now_s=1000.0), KEY, now_s=1030.0)
    assert not verify_jwt("not.a.jwt", KEY)
