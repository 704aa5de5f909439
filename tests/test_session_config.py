"""The session object: every field serialised, invalid values named with what is allowed."""

from __future__ import annotations

import pytest

from realtime.errors import ConfigError
from realtime.session import KNOWN_MODELS, VOICES, SessionConfig


def test_default_session_serialises_every_field_glm_resets() -> None:
    wire = SessionConfig().to_wire()
    # GLM's session.update is a full reset: these must always be present.
    assert wire["input_audio_format"] == "wav"
    assert wire["output_audio_format"] == "pcm"
    assert wire["turn_detection"] == {"type": "server_vad"}
    assert wire["beta_fields"] == {"chat_mode": "audio", "tts_source": "e2e", "auto_search": True}
    assert wire["model"] == "glm-realtime-flash"
    assert wire["voice"] == "tongtong"
    assert wire["tools"] == []
    assert "instructions" not in wire  # None means "server default", the only omission


def test_beta_fields_are_nested_inside_session_never_flat() -> None:
    wire = SessionConfig(beta_fields={"chat_mode": "audio", "auto_search": False}).to_wire()
    assert "chat_mode" not in wire
    assert wire["beta_fields"]["auto_search"] is False


def test_max_response_output_tokens_is_sent_as_a_string() -> None:
    assert (
        SessionConfig(max_response_output_tokens=512).to_wire()["max_response_output_tokens"]
        == "512"
    )
    assert SessionConfig(max_response_output_tokens="64").max_response_output_tokens == "64"


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        (
            {"input_audio_format": "mp3"},
            ["session.input_audio_format", "'wav', 'pcm16' or 'pcm24'"],
        ),
        ({"voice": "alloy"}, ["session.voice", "tongtong", "female-shaonv"]),
        ({"model": "gpt-4o"}, ["session.model", *KNOWN_MODELS]),
        ({"temperature": 1.5}, ["session.temperature", "less than or equal to 1"]),
        ({"temperature": -0.1}, ["session.temperature", "greater than or equal to 0"]),
        ({"max_response_output_tokens": 0}, ["session.max_response_output_tokens", "1-1024"]),
        ({"max_response_output_tokens": "inf"}, ["session.max_response_output_tokens", "1-1024"]),
        ({"max_response_output_tokens": 2048}, ["1-1024"]),
        ({"output_audio_format": "mp3"}, ["session.output_audio_format", "'pcm'"]),
        (
            {"turn_detection": {"type": "semantic_vad"}},
            ["session.turn_detection.type", "server_vad"],
        ),
        ({"modalities": []}, ["session.modalities", "at least one"]),
        (
            {"beta_fields": {"chat_mode": "video"}},
            ["session.beta_fields.chat_mode", "video_passive"],
        ),
        ({"beta_fields": {"tts_source": "cosy"}}, ["session.beta_fields.tts_source", "e2e"]),
        ({"input_audio_noise_reduction": {"type": "mid"}}, ["near_field", "far_field"]),
        ({"tools": [{"name": "bad name!", "description": "x"}]}, ["session.tools.0.name"]),
        ({"tools": [{"name": "t"}]}, ["session.tools.0.description", "Field required"]),
        ({"chat_mode": "audio"}, ["session.chat_mode", "Extra inputs are not permitted"]),
    ],
)
def test_invalid_session_value_names_the_field_and_what_is_allowed(
    fields: dict[str, object], names: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig(**fields)
    for name in names:
        assert name in str(info.value)


def test_vad_tuning_is_refused_under_client_vad() -> None:
    with pytest.raises(ConfigError, match="silence_duration_ms: only valid with type 'server_vad'"):
        SessionConfig(turn_detection={"type": "client_vad", "silence_duration_ms": 500})


def test_vad_tuning_is_sent_under_server_vad() -> None:
    session = SessionConfig(
        turn_detection={"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 700}
    )
    assert session.to_wire()["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.6,
        "silence_duration_ms": 700,
    }


def test_tools_are_refused_outside_audio_chat_mode() -> None:
    with pytest.raises(ConfigError, match="tools work only with beta_fields.chat_mode 'audio'"):
        SessionConfig(
            beta_fields={"chat_mode": "video_passive"},
            tools=[{"name": "t", "description": "d"}],
        )


def test_duplicate_tool_names_are_refused() -> None:
    tool = {"name": "t", "description": "d"}
    with pytest.raises(ConfigError, match="repeated: t"):
        SessionConfig(tools=[tool, tool])


def test_replace_revalidates_the_changed_copy() -> None:
    base = SessionConfig(instructions="hi")
    changed = base.replace(voice="lovely_girl")
    assert (changed.voice, changed.instructions, base.voice) == ("lovely_girl", "hi", "tongtong")
    with pytest.raises(ConfigError, match="session.voice"):
        base.replace(voice="nobody")


def test_every_documented_voice_is_accepted() -> None:
    assert len(VOICES) == 6
    for voice in VOICES:
        assert SessionConfig(voice=voice).voice == voice
