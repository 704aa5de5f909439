"""Typed events: every fixture parses, every quirk is accepted, nothing ever raises."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime import events as ev
from realtime.events import (
    CLIENT_EVENT_TYPES,
    SERVER_EVENT_TYPES,
    InvalidEvent,
    ItemParam,
    UnknownEvent,
    parse_client_event,
    parse_server_event,
)
from realtime.session import FunctionTool, SessionConfig
from tests.fake_glm import FIXTURES, server_events

ALL_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.jsonl"))


@pytest.mark.parametrize("event", server_events(ALL_FIXTURES), ids=lambda e: e["type"])
def test_every_fixture_server_event_parses_to_its_typed_model(event: dict[str, object]) -> None:
    parsed = parse_server_event(json.dumps(event))
    assert not isinstance(parsed, (InvalidEvent, UnknownEvent)), parsed
    assert parsed.type == event["type"]


def test_fixtures_cover_every_known_server_event_family() -> None:
    seen = {e["type"] for e in server_events(ALL_FIXTURES)}
    must_cover = {
        "heartbeat",
        "session.created",
        "session.updated",
        "conversation.created",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "conversation.item.input_audio_transcription.completed",
        "response.cancelled",
        "response.function_call_arguments.done",
        "response.function_call.simple_browser",
        "error",
    }
    assert must_cover <= seen


def test_heartbeat_is_a_typed_event_not_an_unknown_one() -> None:
    assert isinstance(parse_server_event('{"type":"heartbeat"}'), ev.Heartbeat)


def test_speech_events_parse_without_audio_ms_fields() -> None:
    started = parse_server_event({"type": "input_audio_buffer.speech_started"})
    stopped = parse_server_event({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900})
    assert isinstance(started, ev.InputAudioBufferSpeechStarted)
    assert started.audio_start_ms is None
    assert isinstance(stopped, ev.InputAudioBufferSpeechStopped)
    assert stopped.audio_end_ms == 900


def test_transcription_parses_without_content_index_or_item_id() -> None:
    event = parse_server_event(
        {"type": "conversation.item.input_audio_transcription.completed", "transcript": "hi"}
    )
    assert isinstance(event, ev.InputAudioTranscriptionCompleted)
    assert (event.transcript, event.content_index, event.item_id) == ("hi", None, None)


def test_error_without_type_and_with_numeric_code_keeps_the_code_as_text() -> None:
    event = parse_server_event({"type": "error", "error": {"code": 1113, "message": "arrears"}})
    assert isinstance(event, ev.ErrorEvent)
    assert event.error.type is None
    assert event.error.code == "1113"
    assert event.error.message == "arrears"


@pytest.mark.parametrize("call_id", [None, "call_1"])
def test_function_call_done_parses_with_or_without_call_id(call_id: str | None) -> None:
    raw = {
        "type": "response.function_call_arguments.done",
        "response_id": "r1",
        "name": "get_weather",
        "arguments": '{"location":"Paris"}',
    }
    if call_id:
        raw["call_id"] = call_id
    event = parse_server_event(raw)
    assert isinstance(event, ev.ResponseFunctionCallArgumentsDone)
    assert event.call_id == call_id
    assert json.loads(event.arguments) == {"location": "Paris"}


def test_simple_browser_exposes_its_spoken_filler_line() -> None:
    event = parse_server_event(
        {
            "type": "response.function_call.simple_browser",
            "name": "simple_browser",
            "session": {"beta_fields": {"simple_browser": {"description": "One moment."}}},
        }
    )
    assert isinstance(event, ev.ResponseFunctionCallSimpleBrowser)
    assert event.filler == "One moment."


def test_response_cancelled_and_conversation_created_are_known_events() -> None:
    cancelled = parse_server_event({"type": "response.cancelled", "response": {"id": "r"}})
    created = parse_server_event({"type": "conversation.created", "conversation": {"id": "c"}})
    assert isinstance(cancelled, ev.ResponseCancelled)
    assert isinstance(created, ev.ConversationCreated)


def test_unknown_type_becomes_unknown_event_with_raw_data() -> None:
    event = parse_server_event({"type": "rate_limits.updated", "rate_limits": []})
    assert isinstance(event, UnknownEvent)
    assert event.type == "rate_limits.updated"
    assert event.raw == {"type": "rate_limits.updated", "rate_limits": []}


@pytest.mark.parametrize(
    ("frame", "reason_part"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"no_type": 1}', "no 'type'"),
        ('{"type": "response.audio.delta", "response_id": "r"}', "delta"),
        ('{"type": "error"}', "error"),
        ('{"type": "response.created", "response": {"status": "x"}}', "response.id"),
    ],
)
def test_malformed_frames_become_invalid_events_naming_the_problem(
    frame: str, reason_part: str
) -> None:
    event = parse_server_event(frame)
    assert isinstance(event, InvalidEvent)
    assert reason_part in event.reason
    assert event.raw is not None


def test_invalid_event_repr_shows_size_not_audio_content() -> None:
    secret_audio = "QUFB" * 1000
    event = parse_server_event({"type": "response.audio.delta", "delta": 5, "x": secret_audio})
    assert isinstance(event, InvalidEvent)
    assert secret_audio not in repr(event)
    assert "raw_size=" in repr(event)


def test_unknown_fields_are_kept_on_known_events() -> None:
    event = parse_server_event({"type": "heartbeat", "server_time": 123})
    assert isinstance(event, ev.Heartbeat)
    assert event.model_extra == {"server_time": 123}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    event_type=st.sampled_from(sorted(SERVER_EVENT_TYPES)) | st.text(max_size=20),
    body=st.dictionaries(st.text(max_size=12), json_values, max_size=5),
)
def test_parse_server_event_never_raises_on_arbitrary_json(
    event_type: str, body: dict[str, object]
) -> None:
    event = parse_server_event({**body, "type": event_type})
    assert event.type in (event_type, None)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_parse_server_event_never_raises_on_arbitrary_frames(frame: bytes | str) -> None:
    parse_server_event(frame)


def _every_client_event() -> list[ev.ClientEventBase]:
    session = SessionConfig(
        instructions="Be brief.",
        tools=[FunctionTool(name="get_weather", description="Weather for a city")],
        temperature=0.3,
        max_response_output_tokens=256,
        greeting_config={"enable": True, "content": "Hello!"},
        input_audio_noise_reduction={"type": "far_field"},
    )
    return [
        ev.SessionUpdate(session=session),
        ev.InputAudioBufferAppend(audio="UklGRg=="),
        ev.InputAudioBufferAppendVideoFrame(video_frame="/9j/4AAQ"),
        ev.InputAudioBufferCommit(),
        ev.InputAudioBufferPreCommit(),
        ev.InputAudioBufferClear(),
        ev.ConversationItemCreate(item=ItemParam.function_call_output('{"ok":1}', "call_1")),
        ev.ConversationItemCreate(item=ItemParam.text_message("user", "hello")),
        ev.ConversationItemDelete(item_id="item_1"),
        ev.ConversationItemRetrieve(item_id="item_1"),
        ev.ResponseCreate(),
        ev.ResponseCancel(),
    ]


def test_client_events_cover_every_client_type() -> None:
    assert {e.type for e in _every_client_event()} == CLIENT_EVENT_TYPES  # type: ignore[attr-defined]


@pytest.mark.parametrize("event", _every_client_event(), ids=lambda e: e.type)
def test_client_event_round_trips_through_json(event: ev.ClientEventBase) -> None:
    parsed = parse_client_event(event.to_json())
    assert parsed == event


def test_client_events_default_event_id_and_millisecond_timestamp() -> None:
    first, second = ev.ResponseCreate(), ev.ResponseCreate()
    assert first.event_id != second.event_id
    assert first.event_id.startswith("evt_")
    # Milliseconds since the epoch: 13 digits until the year 2286.
    assert len(str(first.client_timestamp)) == 13


def test_client_events_serialise_without_none_fields() -> None:
    wire = json.loads(ev.ConversationItemCreate(item=ItemParam.function_call_output("x")).to_json())
    # ``object`` is required by the spec, so it is always sent.
    assert wire["item"] == {
        "type": "function_call_output",
        "object": "realtime.item",
        "output": "x",
    }
    assert "previous_item_id" not in wire


def test_client_parser_rejects_flat_beta_fields_that_glm_drops() -> None:
    event = parse_client_event(
        {"type": "session.update", "session": {"chat_mode": "audio", "input_audio_format": "wav"}}
    )
    assert isinstance(event, InvalidEvent)
    assert "chat_mode" in event.reason


def test_item_param_requires_the_fields_of_its_type() -> None:
    with pytest.raises(ValueError, match="function_call_output item needs output"):
        ItemParam(type="function_call_output")
    with pytest.raises(ValueError, match="message item needs a role"):
        ItemParam(type="message", role="user")


def test_hand_built_audio_append_is_the_models_wire_form_byte_for_byte() -> None:
    """audio_append_json skips pydantic on the hot path; it must still send exactly what the
    model would (same keys in the same order, same escaping) and parse back as the event."""
    packet = bytes(range(256)) * 19 + b"\x00"
    data = ev.audio_append_json(packet)
    parsed = parse_client_event(data.decode())
    assert isinstance(parsed, ev.InputAudioBufferAppend)
    assert base64.b64decode(parsed.audio) == packet
    assert parsed.event_id.startswith("evt_") and len(str(parsed.client_timestamp)) == 13
    same = ev.InputAudioBufferAppend(
        audio=parsed.audio, event_id=parsed.event_id, client_timestamp=parsed.client_timestamp
    )
    assert data == same.to_json().encode()
    assert ev.audio_append_json(packet) != data  # a fresh event id every time
