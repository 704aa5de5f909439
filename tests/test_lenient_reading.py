"""One set of client event models: lenient to read what real clients send, strict to write.

The frames are the wire forms of Zhipu's Python SDK (``rtclient`` 0.5.3: pydantic's
``model_dump_json()``, so unset fields are explicit ``null``) and Go client (``"delta": ""``
on every event), as sent. What we send is checked against the vendor's AsyncAPI schemas.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from glm_realtime.config import ExtensionConfig
from realtime import events as ev
from realtime.errors import ConfigError
from realtime.events import InvalidEvent, parse_client_event
from realtime.session import SessionConfig, TurnDetection
from tests.test_events import _every_client_event

SPEC = Path(__file__).parent / "fixtures" / "spec" / "glm-realtime-asyncapi-2026-07-11.json"

SDK_SESSION = (
    '{"event_id":"","client_timestamp":null,"type":"session.update","session":{"model":null,'
    '"modalities":["audio","text"],"voice":null,"instructions":null,"input_audio_format":"wav",'
    '"output_audio_format":"pcm","input_audio_transcription":null,'
    '"turn_detection":{"type":"client_vad"},"tools":[],"tool_choice":null,"temperature":null,'
    '"max_output_tokens":null,"beta_fields":{"chat_mode":"audio","tts_source":"e2e",'
    '"auto_search":false}}}'
)


def _session_update(frame: str | dict[str, Any]) -> ev.SessionUpdate:
    event = parse_client_event(frame)
    assert isinstance(event, ev.SessionUpdate), event
    return event


def test_python_sdk_session_update_with_nulls_reads_as_the_defaults() -> None:
    event = _session_update(SDK_SESSION)
    session = event.session
    assert event.event_id.startswith("evt_")  # "" is a fresh id
    assert session.model == "glm-realtime-flash" and session.voice == "tongtong"
    assert session.instructions is None and session.temperature is None
    assert session.turn_detection == TurnDetection(type="client_vad")
    assert session.beta_fields.auto_search is False
    assert set(session.modalities) == {"audio", "text"}


def test_the_same_frame_read_strictly_names_every_null_and_foreign_field() -> None:
    event = parse_client_event(SDK_SESSION, strict=True)
    assert isinstance(event, InvalidEvent)
    for name in ("client_timestamp", "session.model", "session.voice", "tool_choice"):
        assert name in event.reason, event.reason


@pytest.mark.parametrize("event", _every_client_event(), ids=lambda e: e.type)
def test_our_events_dumped_the_sdks_way_with_every_null_read_back_the_same(
    event: ev.ClientEventBase,
) -> None:
    sdk_style = event.model_dump_json()  # no exclude_none: unset fields are explicit null
    assert parse_client_event(sdk_style) == event


def test_unknown_fields_are_ignored_and_logged_by_name_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="realtime.wire")
    frame = {
        "type": "input_audio_buffer.append",
        "audio": "UklGRg==",
        "delta": "",
        "secret_field": "c2VjcmV0IHZhbHVl",
    }
    event = parse_client_event(frame)
    assert isinstance(event, ev.InputAudioBufferAppend) and event.audio == "UklGRg=="
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("delta" in m and "secret_field" in m for m in logged), logged
    assert not any("c2VjcmV0" in m for m in logged)  # names, never values


@pytest.mark.parametrize(
    "turn_detection",
    [None, {}, "missing"],
    ids=["null", "no-type", "missing"],
)
def test_no_turn_detection_reads_as_client_vad_as_the_spec_says(turn_detection: Any) -> None:
    session: dict[str, Any] = {"input_audio_format": "wav", "output_audio_format": "pcm"}
    if turn_detection != "missing":
        session["turn_detection"] = turn_detection
    event = _session_update({"type": "session.update", "session": session})
    assert event.session.turn_detection.type == "client_vad"


def test_we_still_write_server_vad_unless_told_and_always_send_turn_detection() -> None:
    assert SessionConfig().to_wire()["turn_detection"] == {"type": "server_vad"}
    for server_vad in (True, False):
        wire = ExtensionConfig(server_vad=server_vad).session_config().to_wire()
        assert wire["turn_detection"]["type"] == ("server_vad" if server_vad else "client_vad")


def test_sdk_zero_vad_tuning_means_the_server_default() -> None:
    event = _session_update(
        {
            "type": "session.update",
            "session": {
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.0,
                    "prefix_padding_ms": 0,
                    "silence_duration_ms": 0,
                }
            },
        }
    )
    assert event.session.turn_detection == TurnDetection(type="server_vad")


def test_vad_tuning_under_client_vad_is_ignored_when_read_and_refused_when_built() -> None:
    tuned = {"type": "client_vad", "silence_duration_ms": 500}
    event = _session_update({"type": "session.update", "session": {"turn_detection": tuned}})
    assert event.session.turn_detection == TurnDetection(type="client_vad")
    with pytest.raises(ConfigError, match="silence_duration_ms"):
        SessionConfig(turn_detection=tuned)


def test_vendor_spellings_read_as_ours_but_are_refused_when_built() -> None:
    event = _session_update(
        {"type": "session.update", "session": {"input_audio_format": "pcm", "voice": "default"}}
    )
    assert event.session.input_audio_format == "pcm16"
    assert event.session.voice == "tongtong"
    with pytest.raises(ConfigError, match="session.voice"):
        SessionConfig(voice="default")
    with pytest.raises(ConfigError, match="session.input_audio_format"):
        SessionConfig(input_audio_format="pcm")


def test_the_original_extensions_session_and_go_token_limit_are_read() -> None:
    """The TEN extension this project grew from sends wav24 and input_audio_transcription;
    the Go client's max_response_output_tokens may be "inf" (no limit)."""
    event = _session_update(
        {
            "type": "session.update",
            "session": {
                "instructions": "Be brief.",
                "input_audio_format": "wav24",
                "output_audio_format": "pcm",
                "input_audio_transcription": {"model": "whisper-1"},
                "max_response_output_tokens": "inf",
            },
        }
    )
    assert event.session.input_audio_format == "wav"
    assert event.session.max_response_output_tokens is None


def test_python_sdk_tool_answer_and_go_item_read_with_placeholders() -> None:
    python = (
        '{"event_id":"","client_timestamp":null,"type":"conversation.item.create",'
        '"previous_item_id":null,"item":{"type":"function_call_output","id":"","call_id":"",'
        '"output":"{\\"ok\\": true}","status":null}}'
    )
    go = (
        '{"type":"conversation.item.create","delta":"","item":{"id":"","object":"realtime.item",'
        '"type":"function_call_output","status":"completed","role":"","content":null,'
        '"output":"{\\"ok\\": true}","call_id":"call_1"}}'
    )
    items = []
    for frame in (python, go):
        event = parse_client_event(frame)
        assert isinstance(event, ev.ConversationItemCreate), event
        items.append(event.item)
    assert items[0].call_id is None and items[0].id is None and items[0].status is None
    assert items[1].call_id == "call_1" and items[1].status == "completed"
    assert items[1].role is None and items[1].object == "realtime.item"
    assert items[0].output == items[1].output == '{"ok": true}'


def test_response_create_with_sdk_params_and_video_frames_are_read() -> None:
    create = parse_client_event(
        '{"event_id":"","client_timestamp":12345,"type":"response.create","response":null}'
    )
    assert isinstance(create, ev.ResponseCreate)
    frame = parse_client_event(
        {"type": "input_audio_buffer.append_video_frame", "video_frame": "/9j/2Q==", "delta": ""}
    )
    assert isinstance(frame, ev.InputAudioBufferAppendVideoFrame)


@pytest.mark.parametrize(
    ("session", "field"),
    [
        ({"voice": "robot"}, "session.voice"),
        ({"input_audio_format": "mp3"}, "session.input_audio_format"),
        ({"turn_detection": {"type": "none"}}, "session.turn_detection.type"),
        ({"temperature": 1.2}, "session.temperature"),
        ({"beta_fields": {"chat_mode": "video_proactive"}}, "session.beta_fields.chat_mode"),
        ({"chat_mode": "audio"}, "chat_mode belongs inside beta_fields"),
    ],
)
def test_what_the_spec_forbids_is_still_refused_naming_the_field(
    session: dict[str, Any], field: str
) -> None:
    event = parse_client_event({"type": "session.update", "event_id": "", "session": session})
    assert isinstance(event, InvalidEvent)
    assert field in event.reason, event.reason
    assert "event_id" not in event.reason  # the placeholder is not a problem


def test_a_reason_naming_many_fields_is_whole() -> None:
    session = {
        "model": "glm-realtime-ultra",
        "voice": "robot",
        "input_audio_format": "mp3",
        "output_audio_format": "mp3",
        "temperature": 5,
        "modalities": ["video"],
        "turn_detection": {"type": "semantic_vad"},
        "beta_fields": {"chat_mode": "video_proactive"},
    }
    event = parse_client_event({"type": "session.update", "session": session})
    assert isinstance(event, InvalidEvent)
    assert len(event.reason) > 300
    for name in ("model", "voice", "input_audio_format", "output_audio_format", "temperature"):
        assert f"session.{name}" in event.reason
    assert "session.beta_fields.chat_mode" in event.reason


def test_items_refuse_a_wrong_object_or_status() -> None:
    for field, value in (("object", "realtime.thing"), ("status", "in_progress")):
        item = {"type": "function_call_output", "output": "x", field: value}
        event = parse_client_event({"type": "conversation.item.create", "item": item})
        assert isinstance(event, InvalidEvent)
        assert f"item.{field}" in event.reason, event.reason


def _spec_validators() -> dict[str, Draft202012Validator]:
    """Event type -> a validator for the spec's schema of that client event."""
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(
        "urn:glm", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    validators = {}
    for name, schema in spec["components"]["schemas"].items():
        for part in schema.get("allOf", ()):
            const = part.get("properties", {}).get("type", {}).get("const")
            if const:
                ref = {"$ref": f"urn:glm#/components/schemas/{name}"}
                validators[const] = Draft202012Validator(ref, registry=registry)
    return validators


def test_every_event_we_send_is_valid_by_the_vendors_schema() -> None:
    validators = _spec_validators()
    ours = [*_every_client_event(), ev.SessionUpdate(session=ExtensionConfig().session_config())]
    checked = set()
    for event in ours:
        validator = validators.get(event.type)  # type: ignore[attr-defined]
        if validator is None:  # input_audio_buffer.pre_commit: the web demo's, not the spec's
            continue
        errors = [e.message for e in validator.iter_errors(event.to_dict())]
        assert not errors, (event.type, errors)  # type: ignore[attr-defined]
        checked.add(event.type)  # type: ignore[attr-defined]
    assert checked == set(validators) and len(checked) == 10  # every one the spec describes
