"""The session's small parts: sentences, memory, backoff, uplink backlog, config, manifest."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from glm_realtime.config import ExtensionConfig
from glm_realtime.session.backoff import Backoff, GiveUp, ReconnectPolicy
from glm_realtime.session.memory import ChatMemory
from glm_realtime.session.responses import BoundedSet, ResponseState, ResponseTracker
from glm_realtime.session.transcript import SentenceSplitter
from glm_realtime.session.uplink import AudioDump, Uplink
from glm_realtime.tools import tool_from_metadata, tool_result_text
from realtime.audio import DownlinkDecoder, UplinkPacker
from realtime.errors import ConfigError

PACKAGE = Path(__file__).parents[1] / "glm_realtime"


def test_splitter_cuts_on_latin_and_cjk_punctuation_across_fragments() -> None:
    splitter = SentenceSplitter()
    out = []
    for fragment in [
        "It is ",
        "ten past ",
        "nine. Any",
        "thing else",
        "? 你好。今天",
        "天气很好！ok",
    ]:
        out += splitter.feed(fragment)
    assert out == ["It is ten past nine. ", "Anything else? ", "你好。", "今天天气很好！"]
    assert splitter.finish() == "ok"
    assert splitter.text == "It is ten past nine. Anything else? 你好。今天天气很好！ok"


def test_splitter_keeps_lone_punctuation_with_the_next_sentence() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("... ") == []
    assert splitter.feed("Well, yes.") == ["... Well, ", "yes."]


def test_splitter_tail_is_handed_out_once() -> None:
    splitter = SentenceSplitter()
    splitter.feed("no punctuation here")
    assert splitter.finish() == "no punctuation here"
    assert splitter.finish() == ""


def test_memory_keeps_both_roles_up_to_max_turns() -> None:
    memory = ChatMemory(3)
    for i in range(5):
        memory.put("user" if i % 2 == 0 else "assistant", f"turn {i}")
    assert [t.content for t in memory.turns] == ["turn 2", "turn 3", "turn 4"]
    assert memory.put("user", "   ") is None


def test_memory_render_is_a_paragraph_for_instructions() -> None:
    memory = ChatMemory(10)
    memory.load(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "tool", "content": "x"},
            {"bad": 1},
        ]
    )
    rendered = memory.render()
    assert rendered.endswith("user: Hi\nassistant: Hello!")
    assert ChatMemory(10).render() == ""


def test_memory_with_zero_turns_remembers_nothing() -> None:
    memory = ChatMemory(0)
    assert memory.put("user", "hi") is None
    assert len(memory) == 0


def test_backoff_grows_is_capped_jittered_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    for n, delay in enumerate(delays):
        raw = min(4.0, 0.5 * 2**n)
        assert raw / 2 <= delay <= raw
    assert max(delays) <= 4.0
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_reconnects_back_off_give_up_after_max_attempts_and_restart_once_proven() -> None:
    """Each failed socket is one backoff step; the one past ``max_attempts`` gives up
    (counted in the reason); a socket that proved itself starts the count and the delays
    again from the base."""
    policy = ReconnectPolicy(3, 0.5, 8.0, random.Random(1))
    policy.opened()
    for n in range(3):
        policy.connecting()
        delay = policy.lost(ConnectionResetError("reset"))
        assert isinstance(delay, float) and 0.5 * 2**n / 2 <= delay <= 0.5 * 2**n
    policy.connecting()
    gave_up = policy.lost(ConnectionResetError("reset"))
    assert isinstance(gave_up, GiveUp) and "after 4 failed connection(s)" in gave_up.reason
    policy.connecting()
    policy.proven()
    for _ in range(3):
        delay = policy.lost(ConnectionResetError("reset"))
        assert isinstance(delay, float) and delay <= 2.0
        policy.connecting()
    assert isinstance(policy.lost(ConnectionResetError("reset")), GiveUp)


def test_bounded_set_forgets_the_oldest() -> None:
    ids = BoundedSet(3)
    for i in range(5):
        ids.add(f"r{i}")
    assert len(ids) == 3
    assert "r0" not in ids and "r1" not in ids and "r4" in ids


def _packets(n: int) -> list[bytes]:
    return [bytes([i]) * 10 for i in range(n)]


def test_uplink_keep_policy_holds_the_most_recent_audio_only() -> None:
    uplink = Uplink(UplinkPacker("pcm16", packet_ms=100), "keep", 300)
    uplink.hold(_packets(5))
    assert uplink.take_backlog() == _packets(5)[2:]
    assert uplink.dropped_packets == 2
    assert uplink.take_backlog() == []


def test_uplink_drop_policy_holds_nothing() -> None:
    uplink = Uplink(UplinkPacker("pcm16", packet_ms=100), "drop", 2000)
    uplink.hold(_packets(4))
    assert uplink.take_backlog() == []
    assert uplink.dropped_packets == 4


def test_audio_dump_names_files_by_role_and_rate(tmp_path: Path) -> None:
    dump = AudioDump(tmp_path, tag="t")
    dump.write("user", b"\x01\x02", 16000)
    dump.write("user", b"\x03\x04", 16000)
    dump.write("assistant", b"\x05\x06", 24000)
    dump.close()
    assert (tmp_path / "user_t_16000hz.pcm").read_bytes() == b"\x01\x02\x03\x04"
    assert (tmp_path / "assistant_t_24000hz.pcm").read_bytes() == b"\x05\x06"


def test_every_config_field_reaches_the_session_or_documents_its_effect() -> None:
    config = ExtensionConfig(
        api_key="k",
        prompt="Be kind.",
        language="zh-CN",
        voice="lovely_girl",
        temperature=0.2,
        max_tokens=300,
        audio_out=False,
        auto_search=False,
        noise_reduction="far_field",
        input_audio_format="pcm24",
        vad_threshold=0.7,
        vad_silence_duration_ms=600,
        model="glm-realtime-air",
    )
    wire = config.session_config().to_wire()
    assert wire["instructions"] == "Be kind.\n\nAlways reply in Chinese."
    assert (wire["voice"], wire["temperature"], wire["max_response_output_tokens"]) == (
        "lovely_girl",
        0.2,
        "300",
    )
    assert wire["modalities"] == ["text"]
    assert wire["beta_fields"]["auto_search"] is False
    assert wire["input_audio_noise_reduction"] == {"type": "far_field"}
    assert wire["input_audio_format"] == "pcm24"
    assert wire["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.7,
        "silence_duration_ms": 600,
    }
    assert wire["model"] == "glm-realtime-air"
    undocumented = [
        name
        for name, field in ExtensionConfig.model_fields.items()
        if not field.description and name not in wire and name not in _WIRE_NAMED
    ]
    assert undocumented == [], "each property must reach the wire or document its effect"


_WIRE_NAMED = {
    # Property name differs from the session field it becomes, or it shapes the URL/socket.
    "base_uri",
    "path",
    "api_key",
    "max_tokens",
    "noise_reduction",
    "vad_threshold",
    "vad_prefix_padding_ms",
    "vad_silence_duration_ms",
    "temperature",
    "voice",
    "model",
    "auto_search",
    "chat_mode",
    "input_audio_format",
}


def test_greeting_goes_into_greeting_config_only_when_asked() -> None:
    config = ExtensionConfig(api_key="k", greeting="Welcome!")
    assert "greeting_config" not in config.session_config().to_wire()
    assert config.session_config(greet=True).to_wire()["greeting_config"] == {
        "enable": True,
        "content": "Welcome!",
    }


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"base_uri": "https://x"}, "base_uri: must be ws://host"),
        ({"path": "api"}, "path: must start with '/'"),
        ({"language": "english"}, "language: must be a language tag"),
        ({"input_sample_rate": 4000}, "input_sample_rate"),
        ({"disconnected_audio": "buffer"}, "'drop' or 'keep'"),
        (
            {"reconnect_base_delay_ms": 900, "reconnect_max_delay_ms": 100},
            "reconnect_max_delay_ms must be",
        ),
        ({"unknown_thing": 1}, "unknown_thing: Extra inputs are not permitted"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_bad_property_values_name_the_property(props: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ExtensionConfig.from_properties(props, node="v2v")
    assert "node 'v2v'" in str(info.value)
    assert message in str(info.value)


def test_manifest_and_property_json_declare_exactly_the_config_fields() -> None:
    manifest = json.loads((PACKAGE / "manifest.json").read_text())
    defaults = json.loads((PACKAGE / "property.json").read_text())
    fields = ExtensionConfig.model_fields
    assert set(manifest["api"]["property"]) == set(fields)
    for name, value in defaults.items():
        if name != "api_key":
            assert fields[name].default == value, name
    assert defaults["api_key"] == "${env:GLM_API_KEY|}"
    optional = {name for name, f in fields.items() if f.default is None}
    assert set(defaults) == set(fields) - optional


def test_top_level_manifest_and_property_are_the_package_files() -> None:
    root = PACKAGE.parent
    assert (root / "manifest.json").read_text() == (PACKAGE / "manifest.json").read_text()
    assert (root / "property.json").read_text() == (PACKAGE / "property.json").read_text()


def test_tool_metadata_in_ten_ai_base_shape_becomes_a_json_schema_tool() -> None:
    tool = tool_from_metadata(
        {
            "name": "get_weather",
            "description": "Weather",
            "parameters": [
                {"name": "location", "type": "string", "description": "City", "required": True}
            ],
        }
    )
    assert tool.parameters == {
        "type": "object",
        "properties": {"location": {"type": "string", "description": "City"}},
        "required": ["location"],
    }
    schema = {"type": "object", "properties": {}}
    assert (
        tool_from_metadata({"name": "t", "description": "d", "parameters": schema}).parameters
        == schema
    )


def test_tool_metadata_without_a_description_is_refused() -> None:
    with pytest.raises(ConfigError, match="tool.description"):
        tool_from_metadata({"name": "t"})


def test_tool_result_text_takes_string_or_text_parts() -> None:
    assert tool_result_text('{"type": "llmresult", "content": "Sunny"}') == "Sunny"
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": "x"},
        {"type": "text", "text": "b"},
    ]
    assert tool_result_text(json.dumps({"content": parts})) == "a\nb"
    with pytest.raises(ValueError, match="not JSON"):
        tool_result_text("{")


def test_readme_documents_every_property_and_cli_command() -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    missing = [name for name in ExtensionConfig.model_fields if f"| `{name}` |" not in readme]
    assert missing == []
    import click

    from glm_realtime.cli import cli

    commands = cli.list_commands(click.Context(cli))  # the lazily attached ones too
    assert {"run", "replay", "serve", "gym"} <= set(commands)
    for command in commands:
        assert f"glm-realtime {command}" in readme, command


def _tracker() -> ResponseTracker:
    ticks = iter(range(1000))
    return ResponseTracker(lambda: float(next(ticks)), DownlinkDecoder)


def _started(tracker: ResponseTracker, response_id: str) -> ResponseState:
    response, cancel_late = tracker.start(response_id)
    assert response is not None and not cancel_late
    return response


def test_tracker_ignores_events_of_interrupted_and_finished_responses() -> None:
    tracker = _tracker()
    _started(tracker, "r1")
    assert tracker.interrupt() is not None
    assert tracker.get("r1") == (None, False)
    assert tracker.start("r1") == (None, False)  # a late response.created never revives it
    _started(tracker, "r2")
    tracker.finish("r2")
    assert tracker.get("r2") == (None, False)
    assert tracker.interrupt() is None  # nothing active any more


def test_tracker_response_created_after_an_early_delta_keeps_the_same_state() -> None:
    tracker = _tracker()
    tracker.turn_ended()  # tick 0
    early = _started(tracker, "r1")  # an early delta starts tracking at tick 1
    early.splitter.feed("Hello")
    assert _started(tracker, "r1") is early  # response.created then finds it
    assert early.text == "Hello" and early.turn_end_at == 0.0 and early.created_at == 1.0


def test_tracker_barge_in_before_response_created_cancels_the_late_response() -> None:
    tracker = _tracker()
    tracker.request()
    assert tracker.interrupt() is None  # nothing playing yet
    assert tracker.start("late") == (None, True)  # the late answer: cancel it
    assert tracker.get("late") == (None, False)  # its deltas are stale
    assert _started(tracker, "next").id == "next"  # only that one response
    tracker.finish("next")
    assert tracker.settled()


def test_tracker_settles_only_after_the_tool_follow_up_response() -> None:
    tracker = _tracker()
    tracker.turn_ended()
    first = _started(tracker, "r1")
    first.called_tools = first.pending_tools = 1
    tracker.finish("r1")
    assert not tracker.settled()  # a tool is still running
    first.pending_tools = 0
    assert tracker.follow_up_due(first) is True
    assert tracker.follow_up_due(first) is False  # once only
    assert not tracker.settled()  # response.create sent, nothing started yet
    second = _started(tracker, "r2")
    assert second.turn_end_at == first.turn_end_at  # measured from the same end of turn
    tracker.finish("r2")
    assert tracker.settled() and tracker.done_count == 2


def test_tracker_connection_loss_returns_the_cut_response_and_forgets_the_rest() -> None:
    tracker = _tracker()
    _started(tracker, "r1").splitter.feed("Half a")
    tracker.request()
    cut = tracker.connection_lost()
    assert cut is not None and cut.interrupted and cut.text == "Half a"
    assert tracker.settled()
