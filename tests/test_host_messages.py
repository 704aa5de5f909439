"""Message types: TEN 0.8 accessors, typed getters, buffers, results."""

from __future__ import annotations

import json

import pytest

from glm_realtime.host import (
    AudioFrame,
    AudioFrameDataFmt,
    Cmd,
    CmdResult,
    Data,
    PropertyError,
    StatusCode,
)


def test_typed_properties_round_trip_by_path() -> None:
    cmd = Cmd.create("tool_call")
    cmd.set_property_string("name", "get_weather")
    cmd.set_property_int("n", 3)
    cmd.set_property_bool("flag", True)
    cmd.set_property_float("temperature", 0.5)
    cmd.set_property_from_json("arguments", '{"location": "Paris", "days": [1, 2]}')
    assert cmd.get_name() == "tool_call"
    assert cmd.get_property_string("name") == "get_weather"
    assert cmd.get_property_int("n") == 3
    assert cmd.get_property_bool("flag") is True
    assert cmd.get_property_float("temperature") == 0.5
    assert cmd.get_property_string("arguments.location") == "Paris"
    assert cmd.get_property_int("arguments.days[1]") == 2
    assert json.loads(cmd.get_property_to_json("arguments")) == {
        "location": "Paris",
        "days": [1, 2],
    }
    assert json.loads(cmd.get_property_to_json())["n"] == 3
    assert cmd.is_property_exist("arguments.days[0]")
    assert not cmd.is_property_exist("arguments.days[5]")


def test_nested_set_creates_intermediate_objects() -> None:
    data = Data.create("d")
    data.set_property_string("a.b.c", "x")
    assert json.loads(data.get_property_to_json("a")) == {"b": {"c": "x"}}


def test_missing_property_raises_runtime_error_naming_it() -> None:
    data = Data.create("text_data")
    with pytest.raises(RuntimeError, match=r"property 'text' of data 'text_data' does not exist"):
        data.get_property_string("text")
    with pytest.raises(PropertyError, match="'nope'"):
        data.get_property_to_json("nope")


@pytest.mark.parametrize(
    ("setter", "value", "getter", "expected_message"),
    [
        ("set_property_string", "7", "get_property_int", "is string, not int"),
        ("set_property_bool", True, "get_property_int", "is bool, not int"),
        ("set_property_float", 1.5, "get_property_int", "is float64, not int"),
        ("set_property_int", 1, "get_property_bool", "is int64, not bool"),
        ("set_property_int", 1, "get_property_string", "is int64, not string"),
    ],
)
def test_wrong_type_getter_raises_naming_property(
    setter: str, value: object, getter: str, expected_message: str
) -> None:
    cmd = Cmd.create("c")
    getattr(cmd, setter)("p", value)
    with pytest.raises(PropertyError, match=rf"property 'p' of cmd 'c' {expected_message}"):
        getattr(cmd, getter)("p")


def test_float_getter_widens_int() -> None:
    cmd = Cmd.create("c")
    cmd.set_property_int("p", 2)
    assert cmd.get_property_float("p") == 2.0


def test_invalid_json_raises_property_error() -> None:
    with pytest.raises(PropertyError, match="invalid JSON for property 'x'"):
        Cmd.create("c").set_property_from_json("x", "{nope")


def test_property_buf_is_copied_both_ways() -> None:
    data = Data.create("d")
    raw = bytearray(b"\x01\x02")
    data.set_property_buf("blob", raw)
    raw[0] = 9
    out = data.get_property_buf("blob")
    assert out == bytearray(b"\x01\x02")
    out[0] = 7
    assert data.get_property_buf("blob") == bytearray(b"\x01\x02")


def test_cmd_result_status_detail_and_finality() -> None:
    ok = CmdResult.create(StatusCode.OK)
    assert ok.get_status_code() is StatusCode.OK
    assert ok.is_final() and ok.is_completed()
    err = CmdResult.error("boom")
    assert err.get_status_code() == StatusCode.ERROR
    assert err.get_property_string("detail") == "boom"


def test_audio_frame_alloc_lock_unlock_like_ten() -> None:
    pcm = bytes(range(8))
    frame = AudioFrame.create("pcm_frame")
    frame.set_sample_rate(24000)
    frame.set_bytes_per_sample(2)
    frame.set_number_of_channels(1)
    frame.set_data_fmt(AudioFrameDataFmt.INTERLEAVE)
    frame.set_samples_per_channel(len(pcm) // 2)
    frame.set_timestamp(40)
    frame.alloc_buf(len(pcm))
    buf = frame.lock_buf()
    buf[:] = pcm
    frame.unlock_buf(buf)
    copy = frame.get_buf()
    assert copy == bytearray(pcm)
    copy[0] = 99
    assert frame.get_buf()[0] == 0
    assert (frame.get_sample_rate(), frame.get_bytes_per_sample()) == (24000, 2)
    assert (frame.get_number_of_channels(), frame.get_samples_per_channel()) == (1, 4)
    assert frame.get_data_fmt() is AudioFrameDataFmt.INTERLEAVE
    assert int(AudioFrameDataFmt.INTERLEAVE) == 1
    assert frame.get_timestamp() == 40


def test_locked_buffer_refuses_realloc_and_foreign_unlock() -> None:
    frame = AudioFrame.create("pcm_frame")
    frame.alloc_buf(4)
    view = frame.lock_buf()
    with pytest.raises(PropertyError, match="locked"):
        frame.alloc_buf(8)
    with pytest.raises(PropertyError, match="did not lend"):
        frame.unlock_buf(memoryview(bytearray(4)))
    frame.unlock_buf(view)
    frame.alloc_buf(8)


def test_audio_frame_from_buffer_sets_format() -> None:
    frame = AudioFrame.from_buffer("pcm_frame", b"\x00" * 8, 16000, channels=2)
    assert frame.get_samples_per_channel() == 2
    assert frame.get_number_of_channels() == 2
    assert frame.get_sample_rate() == 16000
    with pytest.raises(ValueError, match="whole number"):
        AudioFrame.from_buffer("pcm_frame", b"\x00" * 3, 16000)


def test_clone_is_deep_and_cmd_clone_gets_new_id() -> None:
    cmd = Cmd.create("c")
    cmd.set_property_from_json("o", '{"k": [1]}')
    twin = cmd.clone()
    twin.set_property_int("o.k[0]", 5)
    assert cmd.get_property_int("o.k[0]") == 1
    assert twin.cmd_id != cmd.cmd_id
    frame = AudioFrame.from_buffer("pcm_frame", b"\x01\x00", 8000)
    frame_twin = frame.clone()
    frame_twin.set_buf(b"\x02\x00")
    assert frame.get_buf() == bytearray(b"\x01\x00")
    assert frame_twin.get_sample_rate() == 8000
