"""The embedded backend serves what Zhipu's own clients send, byte for byte.

The frames are the wire forms of the vendor's SDK (MetaGLM/glm-realtime-sdk), sent as
text over a plain websocket to a real LocalRealtimeServer on 127.0.0.1:

* Python ``rtclient`` 0.5.3 sends every event through pydantic's ``model_dump_json()``:
  unset fields are explicit ``null``, ``"event_id": ""``, ``client_timestamp`` is a
  monotonic clock; its samples send ``session.update`` without waiting for
  ``session.created``, a whole WAV file in one append, zero VAD tuning placeholders, a
  tool answer with ``"call_id": ""``, and ``{"type": "response.create"}`` by ``json.dumps``;
* the Go client's events all carry ``"delta": ""`` and its items ``object`` and
  ``status``; the vendor's recorded sessions say ``"input_audio_format": "pcm"``,
  ``"turn_detection": null`` (client VAD) and ``"voice": "default"``.

Each conversation must be answered with speech (audio deltas, ``response.done``) and no
``error`` event; what the spec forbids must still get an ``error`` naming the field.
"""

from __future__ import annotations

import base64
import io
import json
import time
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from realtime import events as ev
from tests.speech_utils import RATE, in_room, wer

try:
    from glm_local.server import LocalRealtimeServer
    from glm_local.speech import PocketSphinxModel
    from tests.local_utils import GOFORWARD, Client, goforward, silence, wav_file

    PocketSphinxModel.default()
except ImportError as exc:  # the [local] extra is missing
    pytest.skip(f"embedded backend unavailable: {exc}", allow_module_level=True)

pytestmark = pytest.mark.speech

TOKEN = "local-id.local-secret"
MOVE_TOOL = (
    '{"type":"function","name":"move_forward","description":"Move the robot forward",'
    '"parameters":{"type":"object","properties":{"meters":{"type":"number",'
    '"description":"How far"}},"required":["meters"]}}'
)
TOOL_OUTPUT = json.dumps({"status": "success", "message": "moved ten meters"})


def python_session(turn_detection: str, tools: str = "", chat_mode: str = "audio") -> str:
    """rtclient's SessionUpdateMessage(session=SessionUpdateParams(...)).model_dump_json()."""
    return (
        '{"event_id":"","client_timestamp":null,"type":"session.update","session":'
        '{"model":null,"modalities":["audio","text"],"voice":null,"instructions":null,'
        '"input_audio_format":"wav","output_audio_format":"pcm",'
        f'"input_audio_transcription":null,"turn_detection":{turn_detection},"tools":[{tools}],'
        '"tool_choice":null,"temperature":null,"max_output_tokens":null,"beta_fields":'
        f'{{"chat_mode":"{chat_mode}","tts_source":"e2e","auto_search":false}}}}}}'
    )


def python_event(event_type: str, timestamp: int | None, **fields: str) -> str:
    """An rtclient event: ``event_id`` "", its timestamp (or null), then its own fields."""
    stamp = "null" if timestamp is None else str(timestamp)
    body = "".join(f',"{name}":"{value}"' for name, value in fields.items())
    return f'{{"event_id":"","client_timestamp":{stamp},"type":"{event_type}"{body}}}'


def python_tool_answer(output: str) -> str:
    """rtclient's ItemCreateMessage(item=FunctionCallOutputItem(output=...)) on the wire."""
    return (
        '{"event_id":"","client_timestamp":null,"type":"conversation.item.create",'
        '"previous_item_id":null,"item":{"type":"function_call_output","id":"","call_id":"",'
        f'"output":{json.dumps(output)},"status":null}}}}'
    )


def go_event(event_type: str, body: str = "", timestamp: int | None = None) -> str:
    """The Go client's events.Event.ToJson(): omitempty fields, but always ``"delta": ""``."""
    stamp = "" if timestamp is None else f',"client_timestamp":{timestamp}'
    return f'{{"type":"{event_type}"{body},"delta":""{stamp}}}'


def monotonic_ms() -> int:
    """``int(asyncio.get_event_loop().time() * 1000)``, as the Python samples stamp events."""
    return int(time.monotonic() * 1000)


def speech() -> bytes:
    """'go forward ten meters' (a real recording) in a quiet room, 16 kHz s16le."""
    return in_room(goforward())


class RawSocket:
    """A plain websocket as a ``Client`` connection: frames go out exactly as given."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, *frames: str) -> None:
        for frame in frames:
            await self.ws.send(frame)

    async def recv(self) -> ev.ServerEvent:
        return ev.parse_server_event(await self.ws.recv())


@asynccontextmanager
async def sdk_client(server: LocalRealtimeServer) -> AsyncIterator[tuple[RawSocket, Client]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with ws_connect(server.url, additional_headers=headers, max_size=None) as ws:
        raw = RawSocket(ws)
        yield raw, Client(raw)  # type: ignore[arg-type]


def assert_spoken_without_errors(client: Client, done: ev.ResponseDone) -> None:
    assert not client.of_type("error"), [e.error.message for e in client.of_type("error")]
    assert done.response.status == "completed"
    assert len(client.audio(done.response.id)) > 24000  # over half a second of speech


async def test_python_sdk_client_vad_sample_is_configured_and_answered() -> None:
    """Its session.update (nulls, ``event_id`` "") goes out before session.created; one
    append carries the whole file; commit; response.create once committed."""
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        await raw.send(python_session('{"type":"client_vad"}'))
        updated = await client.until_type("session.updated")
        wav = base64.b64encode(wav_file(speech())).decode()
        await raw.send(
            python_event("input_audio_buffer.append", monotonic_ms(), audio=wav),
            python_event("input_audio_buffer.commit", monotonic_ms()),
        )
        await client.until_type("input_audio_buffer.committed")
        await raw.send('{"type": "response.create"}')
        done = await client.until_done()
    assert client.types()[:3] == ["heartbeat", "session.created", "session.updated"]
    assert updated.session.turn_detection == {"type": "client_vad"}
    assert updated.session.voice == "tongtong" and updated.session.model == "glm-realtime-flash"
    assert updated.session.beta_fields["auto_search"] is False
    assert not client.of_type("input_audio_buffer.speech_started")  # client VAD, as asked
    transcript = client.of_type("conversation.item.input_audio_transcription.completed")[0]
    assert wer([GOFORWARD], [transcript.transcript]) <= 0.25, transcript.transcript
    assert_spoken_without_errors(client, done)


def sdk_vad_frames(pcm: bytes) -> list[str]:
    """The server-VAD sample's uplink: a WAV of 1536 samples every 32 ms step (overlapping)."""
    step, size = RATE * 32 // 1000 * 2, 1536 * 2
    frames = []
    for pos in range(0, len(pcm), step):
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(pcm[pos : pos + size])
        audio = base64.b64encode(out.getvalue()).decode()
        frames.append(python_event("input_audio_buffer.append", monotonic_ms(), audio=audio))
    return frames


async def test_python_sdk_server_vad_zero_placeholders_mean_the_defaults() -> None:
    """threshold 0 taken literally makes every frame speech: the turn would never end."""
    vad = '{"type":"server_vad","threshold":0.0,"prefix_padding_ms":0,"silence_duration_ms":0}'
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        await raw.send(python_session(vad))
        updated = await client.until_type("session.updated")
        await raw.send(*sdk_vad_frames(speech() + silence(1500)))
        await client.until_type("input_audio_buffer.speech_stopped")
        done = await client.until_done()
    assert updated.session.turn_detection == {"type": "server_vad"}  # the defaults apply
    assert len(client.of_type("input_audio_buffer.speech_started")) == 1
    assert_spoken_without_errors(client, done)


async def test_python_sdk_tool_answer_with_empty_call_id_answers_the_pending_call() -> None:
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        await raw.send(python_session('{"type":"client_vad"}', tools=MOVE_TOOL))
        await client.until_type("session.updated")
        wav = base64.b64encode(wav_file(speech())).decode()
        await raw.send(
            python_event("input_audio_buffer.append", monotonic_ms(), audio=wav),
            python_event("input_audio_buffer.commit", monotonic_ms()),
            '{"type": "response.create"}',
        )
        call = await client.until_type("response.function_call_arguments.done")
        await client.until_done()
        await raw.send(python_tool_answer(TOOL_OUTPUT), '{"type": "response.create"}')
        created = await client.until_type("conversation.item.created")
        done = await client.until_done()
    assert call.name == "move_forward"
    assert created.item.type == "function_call_output" and created.item.object == "realtime.item"
    assert created.item.call_id == call.call_id  # "" answered the one pending call
    answer = client.of_type("response.audio_transcript.done")[-1].transcript
    assert "moved ten meters" in answer, answer
    assert_spoken_without_errors(client, done)


async def test_python_sdk_video_sample_frames_are_counted_and_the_turn_answered() -> None:
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(64) + b"\xff\xd9").decode()
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        await raw.send(python_session('{"type":"client_vad"}', chat_mode="video_passive"))
        updated = await client.until_type("session.updated")
        base = time.time_ns() // 1_000_000
        wav = base64.b64encode(wav_file(speech())).decode()
        await raw.send(
            python_event("input_audio_buffer.append", base, audio=wav),
            python_event("input_audio_buffer.append_video_frame", base, video_frame=jpeg),
            python_event("input_audio_buffer.append_video_frame", base + 500, video_frame=jpeg),
            python_event("input_audio_buffer.commit", time.time_ns() // 1_000_000),
        )
        await client.until_type("input_audio_buffer.committed")
        (session,) = server.sessions
        frames = session.video_frames
        await raw.send('{"type": "response.create"}')
        done = await client.until_done()
    assert updated.session.beta_fields["chat_mode"] == "video_passive"
    assert frames == 2
    assert_spoken_without_errors(client, done)


GO_SESSION = (
    ',"event_id":"evt_fakeId","session":{"voice":"default","input_audio_format":"pcm",'
    '"output_audio_format":"pcm","beta_fields":{"chat_mode":"audio","fps":2,'
    '"tts_source":"e2e"}}'
)
RECORDED_SESSION = (
    '{"type":"session.update","event_id":"evt_fakeId","session":{"turn_detection":null,'
    '"instructions":"","output_audio_format":"pcm","input_audio_format":"pcm",'
    '"voice":"default","tools":null,"beta_fields":{"chat_mode":"audio","tts_source":"e2e"}}}'
)


@pytest.mark.parametrize("shape", ["go-client", "recorded-session"])
async def test_go_shapes_pcm_no_turn_detection_and_default_voice_are_answered(shape: str) -> None:
    """``pcm`` is read as 16 kHz (the transcript proves the rate); no turn_detection, or
    null, is client VAD; the Go client's ``"delta": ""`` on every event is ignored."""
    pcm = speech()
    chunks = [base64.b64encode(pcm[i : i + 3200]).decode() for i in range(0, len(pcm), 3200)]
    now = time.time_ns() // 1_000_000
    if shape == "go-client":
        frames = [go_event("session.update", GO_SESSION)]
        frames += [go_event("input_audio_buffer.append", f',"audio":"{c}"', now) for c in chunks]
        frames += [go_event("input_audio_buffer.commit", "", now), go_event("response.create")]
    else:
        frames = [RECORDED_SESSION]
        frames += [
            f'{{"type":"input_audio_buffer.append","audio":"{c}","client_timestamp":{now}}}'
            for c in chunks
        ]
        frames += [
            f'{{"type":"input_audio_buffer.commit","client_timestamp":{now}}}',
            f'{{"type":"response.create","client_timestamp":{now}}}',
        ]
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        await raw.send(*frames)
        done = await client.until_done()
    updated = client.of_type("session.updated")[0]
    assert updated.session.turn_detection == {"type": "client_vad"}
    assert updated.session.input_audio_format == "pcm16" and updated.session.voice == "tongtong"
    transcript = client.of_type("conversation.item.input_audio_transcription.completed")[0]
    assert wer([GOFORWARD], [transcript.transcript]) <= 0.25, transcript.transcript
    assert_spoken_without_errors(client, done)


async def test_go_client_tool_item_with_object_and_status_is_answered() -> None:
    session = (
        ',"session":{"input_audio_format":"pcm","output_audio_format":"pcm",'
        f'"turn_detection":{{"type":"client_vad"}},"tools":[{MOVE_TOOL}],'
        '"beta_fields":{"chat_mode":"audio","tts_source":"e2e"}}'
    )
    pcm = speech()
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        await raw.send(
            go_event("session.update", session),
            go_event("input_audio_buffer.append", f',"audio":"{base64.b64encode(pcm).decode()}"'),
            go_event("input_audio_buffer.commit"),
            go_event("response.create"),
        )
        call = await client.until_type("response.function_call_arguments.done")
        await client.until_done()
        item = (
            ',"item":{"id":"","object":"realtime.item","type":"function_call_output",'
            f'"status":"completed","role":"","content":null,"output":{json.dumps(TOOL_OUTPUT)},'
            f'"call_id":"{call.call_id}"}}'
        )
        await raw.send(go_event("conversation.item.create", item), go_event("response.create"))
        done = await client.until_done()
    answer = client.of_type("response.audio_transcript.done")[-1].transcript
    assert "moved ten meters" in answer, answer
    assert_spoken_without_errors(client, done)


async def test_what_the_spec_forbids_gets_an_error_naming_the_field_and_the_session_lives() -> None:
    """In SDK shapes (nulls and placeholders are not the problem); the whole message,
    however long, with the client's event_id; the session is served afterwards."""
    bad_session = python_session('{"type":"none"}').replace('"voice":null', '"voice":"robot"')
    many = (
        '{"type":"session.update","event_id":"evt_many","session":{"model":"glm-realtime-ultra",'
        '"voice":"robot","input_audio_format":"mp3","output_audio_format":"mp3",'
        '"temperature":5,"modalities":["video"],"beta_fields":{"chat_mode":"video_proactive"}}}'
    )
    item = (
        '{"type":"conversation.item.create","delta":"","item":{"id":"","object":"realtime.thing",'
        '"type":"function_call_output","status":"in_progress","output":"x"}}'
    )
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        errors = []
        for frame in (bad_session, many, item):
            await raw.send(frame)
            errors.append((await client.until_type("error")).error)
        await raw.send(python_session('{"type":"client_vad"}'))
        await client.until_type("session.updated")
    session_error, many_error, item_error = errors
    assert "session.voice" in session_error.message
    assert "session.turn_detection.type" in session_error.message
    assert "null" not in session_error.message and "client_timestamp" not in session_error.message
    assert many_error.event_id == "evt_many" and len(many_error.message) > 300
    for name in ("model", "voice", "input_audio_format", "output_audio_format", "temperature"):
        assert f"session.{name}" in many_error.message, many_error.message
    assert "session.beta_fields.chat_mode" in many_error.message
    assert "item.object" in item_error.message and "item.status" in item_error.message
    assert {e.code for e in errors} == {"invalid_event"}


async def test_session_update_sent_before_session_created_is_applied() -> None:
    """Nothing is read before the update goes out, as the SDK samples do."""
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        await raw.send(
            python_session('{"type":"client_vad"}').replace(
                '"voice":null', '"voice":"female-tianmei"'
            )
        )
        created = await client.until_type("session.created")
        updated = await client.until_type("session.updated")
    assert created.session.voice == "tongtong"
    assert updated.session.voice == "female-tianmei"
    assert created.session.turn_detection == {"type": "client_vad"}  # the spec's default
    assert not client.of_type("error")


def python_user_text(text: str) -> str:
    """rtclient's ItemCreateMessage(item=UserMessageItem(content=[InputTextContentPart]))."""
    return (
        '{"event_id":"","client_timestamp":null,"type":"conversation.item.create",'
        '"previous_item_id":null,"item":{"type":"message","role":"user","id":"","content":'
        f'[{{"type":"input_text","text":"{text}"}}],"status":null}}}}'
    )


async def test_a_tool_answer_naming_no_pending_call_is_refused_naming_call_id() -> None:
    """With two calls pending, ``"call_id": ""`` is ambiguous; an unknown id is wrong;
    both get an error listing the pending calls, and a right id is still taken."""
    async with (
        LocalRealtimeServer(port=0, token=TOKEN, pace=0) as server,
        sdk_client(server) as (raw, client),
    ):
        await raw.send(python_session('{"type":"client_vad"}', tools=MOVE_TOOL))
        calls = []
        for _ in range(2):
            await raw.send(
                python_user_text("move forward ten meters"), '{"type":"response.create"}'
            )
            calls.append(await client.until_type("response.function_call_arguments.done"))
            await client.until_done()
        errors = []
        for answer in (
            python_tool_answer(TOOL_OUTPUT),
            python_tool_answer(TOOL_OUTPUT).replace('"call_id":""', '"call_id":"call_nope"'),
        ):
            await raw.send(answer)
            errors.append((await client.until_type("error")).error)
        right = python_tool_answer(TOOL_OUTPUT).replace(
            '"call_id":""', f'"call_id":"{calls[1].call_id}"'
        )
        await raw.send(right)
        created = await client.until(
            lambda e: (
                getattr(e, "type", None) == "conversation.item.created"
                and e.item.type == "function_call_output"
            )
        )
    ambiguous, unknown = errors
    for error in errors:
        assert "item.call_id" in error.message
        assert calls[0].call_id in error.message and calls[1].call_id in error.message
    assert "2 tool calls are pending" in ambiguous.message
    assert "call_nope" in unknown.message
    assert created.item.call_id == calls[1].call_id
