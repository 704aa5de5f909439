"""Tests for realtime.audio: uplink packing/resampling and downlink decoding."""

from __future__ import annotations

import base64
import io
import itertools
import logging
import wave
from collections.abc import Iterable, Sequence
from itertools import pairwise

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.audio import (
    INPUT_AUDIO_FORMATS,
    OUTPUT_SAMPLE_RATE,
    DownlinkDecoder,
    InputAudioFormat,
    UplinkPacker,
    input_sample_rate,
    wav_bytes,
)
from realtime.errors import ConfigError, ProtocolViolation
from realtime.resampler import release_model

SOURCE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
FORMATS: tuple[InputAudioFormat, ...] = ("wav", "pcm16", "pcm24")
FAST = settings(max_examples=60, deadline=None)


def signal(seconds: float, rate: int, seed: int = 0) -> bytes:
    """A deterministic speech-like s16le signal: two tones, a slow envelope and noise."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    x = env * (6000 * np.sin(2 * np.pi * 220 * t) + 3000 * np.sin(2 * np.pi * 1300 * t))
    x += 800 * rng.standard_normal(n)
    return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()


def payload(packet: bytes, fmt: InputAudioFormat, rate: int) -> bytes:
    """The PCM inside a packet; a WAV packet must parse as mono s16 at ``rate``."""
    if fmt != "wav":
        return packet
    with wave.open(io.BytesIO(packet), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, rate)
        frames = w.readframes(w.getnframes())
        assert len(frames) == w.getnframes() * 2
        return frames


def push_chunks(packer: UplinkPacker, data: bytes, rate: int, sizes: Iterable[int]) -> list[bytes]:
    """Push ``data`` cut into frames of ``sizes`` bytes (cycled), then flush."""
    sizes = list(sizes) or [len(data) or 1]
    packets: list[bytes] = []
    pos, k = 0, 0
    while pos < len(data):
        size = max(sizes[k % len(sizes)], 1)
        packets += packer.push(data[pos : pos + size], rate)
        pos += size
        k += 1
    return packets + packer.flush()


def joined(packets: Sequence[bytes], fmt: InputAudioFormat, rate: int) -> bytes:
    return b"".join(payload(p, fmt, rate) for p in packets)


def assert_full_packets(packets: Sequence[bytes], packer: UplinkPacker, fmt: InputAudioFormat):
    """Every packet but the last holds exactly packet_samples; the last holds 1..that many."""
    sizes = [len(payload(p, fmt, packer.sample_rate)) // 2 for p in packets]
    assert all(s == packer.packet_samples for s in sizes[:-1]), sizes
    if sizes:
        assert 0 < sizes[-1] <= packer.packet_samples


# --- module helpers -------------------------------------------------------------------------


def test_input_sample_rate_reads_the_kilohertz_suffix_and_wav_rate():
    assert input_sample_rate("pcm16") == 16000
    assert input_sample_rate("pcm24") == 24000
    assert input_sample_rate("wav") == 16000
    assert input_sample_rate("wav", wav_rate=24000) == 24000
    assert INPUT_AUDIO_FORMATS == ("wav", "pcm16", "pcm24")
    assert OUTPUT_SAMPLE_RATE == 24000


def test_input_sample_rate_rejects_unknown_format_and_names_allowed_values():
    with pytest.raises(ConfigError) as exc:
        input_sample_rate("mp3")  # type: ignore[arg-type]
    msg = str(exc.value)
    assert "input_audio_format" in msg and "'mp3'" in msg
    assert all(f"'{f}'" in msg for f in INPUT_AUDIO_FORMATS)


def test_wav_bytes_is_a_mono_s16_wav_that_stdlib_wave_parses():
    pcm = signal(0.05, 22050)
    wav = wav_bytes(pcm, 22050)
    assert wav.startswith(b"RIFF") and wav[8:12] == b"WAVE"
    assert len(wav) == 44 + len(pcm)
    assert payload(wav, "wav", 22050) == pcm


def test_wav_bytes_rejects_half_a_sample_and_bad_rate():
    with pytest.raises(ConfigError, match="3 bytes"):
        wav_bytes(b"\x00\x01\x02", 16000)
    with pytest.raises(ConfigError, match="sample_rate.*100"):
        wav_bytes(b"", 100)


# --- uplink: every rate, frame size and format ----------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("src_rate", SOURCE_RATES)
@pytest.mark.parametrize("frame", ["1 byte", "3 bytes", "10 ms", "1 s"])
def test_uplink_packs_any_rate_and_frame_size_into_full_packets(fmt, src_rate, frame):
    """Frames of 1 byte..1 s at 8-48 kHz come out as packet_ms packets at the session rate,
    WAV-wrapped only in wav mode, with n*out/in samples (+-1) after flush, and bit-exact
    when no resampling is needed."""
    packer = UplinkPacker(fmt, packet_ms=100)
    out_rate = packer.sample_rate
    # Tiny frames mean many pushes: keep those signals short so the test stays fast.
    size = {"1 byte": 1, "3 bytes": 3, "10 ms": src_rate // 100 * 2, "1 s": src_rate * 2}[frame]
    seconds = 0.23 if size < 4 else 2.37
    data = signal(seconds, src_rate)
    packets = push_chunks(packer, data, src_rate, [size])

    assert packets
    assert_full_packets(packets, packer, fmt)
    for p in packets:
        if fmt == "wav":
            assert p.startswith(b"RIFF")
        else:
            assert not p.startswith(b"RIFF")  # raw PCM, no header
    pcm = joined(packets, fmt, out_rate)
    n_in = len(data) // 2
    assert abs(len(pcm) // 2 - n_in * out_rate / src_rate) <= 1
    if src_rate == out_rate:
        assert pcm == data
    assert packer.buffered_ms == 0


def test_resampled_uplink_keeps_the_pitch():
    """A 1 kHz tone at 44.1 kHz is still a 1 kHz tone after resampling to 16 kHz."""
    rate = 44100
    t = np.arange(rate) / rate
    tone = (10000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
    packer = UplinkPacker("pcm16")
    out = np.frombuffer(joined(push_chunks(packer, tone, rate, [882]), "pcm16", 16000), "<i2")
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 16000 / len(out)
    assert abs(peak_hz - 1000) < 2
    # Amplitude survives too (no gain error or clipping).
    assert 9000 < np.abs(out[1000:-1000]).max() < 11000


def test_resampling_rounds_to_nearest_and_keeps_a_dc_level():
    """A constant level survives 44.1 -> 16 kHz exactly: samples are rounded, not truncated."""
    for level in (1000, -1000, 7):
        dc = np.full(44100 // 2, level, dtype="<i2").tobytes()
        packer = UplinkPacker("pcm16")
        out = np.frombuffer(b"".join(packer.push(dc, 44100) + packer.flush()), "<i2")
        assert set(out[500:-500].tolist()) == {level}


def test_resampling_clips_overshoot_instead_of_wrapping():
    """A full-scale square wave rings past +-32767 in the filter; the output must saturate,
    never wrap around to the opposite sign."""
    square = np.where(np.arange(16000) // 40 % 2 == 0, 32767, -32768).astype("<i2")
    packer = UplinkPacker("pcm24")
    out = np.frombuffer(b"".join(packer.push(square.tobytes(), 16000) + packer.flush()), "<i2")
    assert out.max() == 32767 and out.min() == -32768  # the ringing reached the rails
    # Mid-plateau samples (60 output samples per half period) keep the input's sign.
    mids = out[30 + 60 * np.arange(2, 390)]
    expected = np.where(np.arange(2, 390) % 2 == 0, 1, -1)
    assert np.array_equal(np.sign(mids), expected)


@pytest.mark.parametrize("packet_ms", [10, 20, 100, 128, 1000])
def test_every_packet_but_the_tail_is_exactly_packet_ms(packet_ms):
    packer = UplinkPacker("wav", wav_rate=16000, packet_ms=packet_ms)
    assert packer.packet_samples == 16000 * packet_ms // 1000
    data = signal(2.345, 16000)
    packets = push_chunks(packer, data, 16000, [320])
    for p in packets[:-1]:
        with wave.open(io.BytesIO(p), "rb") as w:
            assert w.getnframes() * 1000 == packet_ms * 16000
    assert joined(packets, "wav", 16000) == data


def test_push_returns_only_completed_packets_and_holds_the_rest():
    packer = UplinkPacker("pcm16", packet_ms=100)
    assert packer.push(signal(0.09, 16000), 16000) == []
    assert packer.buffered_ms == pytest.approx(90)
    packets = packer.push(signal(0.03, 16000), 16000)
    assert [len(p) for p in packets] == [3200]
    assert packer.buffered_ms == pytest.approx(20)


# --- uplink: properties over arbitrary chunkings ---------------------------------------------


@FAST
@given(
    fmt_rate=st.sampled_from([("pcm16", 16000), ("pcm24", 24000), ("wav", 8000), ("wav", 48000)]),
    sizes=st.lists(st.integers(0, 4001), min_size=1, max_size=40),
    total=st.integers(0, 30001),
    seed=st.integers(0, 2**32 - 1),
    packet_ms=st.sampled_from([10, 100, 128]),
)
def test_same_rate_uplink_is_lossless_for_any_frame_sizes(fmt_rate, sizes, total, seed, packet_ms):
    """Without resampling, the concatenated packet payloads equal the input bytes exactly,
    whatever the frame sizes (odd byte counts included): nothing lost, nothing duplicated.
    Only a final lone odd byte, half a sample, is dropped at flush."""
    fmt, rate = fmt_rate
    packer = UplinkPacker(fmt, wav_rate=rate if fmt == "wav" else 16000, packet_ms=packet_ms)
    data = np.random.default_rng(seed).integers(0, 256, total, dtype=np.uint8).tobytes()
    packets = push_chunks(packer, data, rate, sizes)
    assert joined(packets, fmt, rate) == data[: total - total % 2]
    assert_full_packets(packets, packer, fmt)


@FAST
@given(
    src_rate=st.sampled_from([8000, 22050, 44100, 48000, 16000, 24000]),
    fmt=st.sampled_from(FORMATS),
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=30),
    seconds=st.floats(0.0, 0.6),
    seed=st.integers(0, 2**16),
)
def test_resampled_uplink_is_invariant_to_chunking(src_rate, fmt, sizes, seconds, seed):
    """Pushing a signal in arbitrary frames gives the same samples as pushing it whole.

    The packer runs soxr in float32, which is bit-exact across chunkings (libsoxr's int16
    path dithers, differently per chunking, by up to 2 LSB), so this asserts equality.
    After flush the sample count is n*out/in within one sample."""
    data = signal(seconds, src_rate, seed)
    whole = UplinkPacker(fmt, wav_rate=24000)
    rate = whole.sample_rate
    reference = joined(whole.push(data, src_rate) + whole.flush(), fmt, rate)
    chunked = UplinkPacker(fmt, wav_rate=24000)
    packets = push_chunks(chunked, data, src_rate, sizes)
    assert joined(packets, fmt, rate) == reference
    assert_full_packets(packets, chunked, fmt)
    assert abs(len(reference) // 2 - (len(data) // 2) * rate / src_rate) <= 1


# --- uplink: rate changes, clear, flush, buffered_ms -----------------------------------------


def test_rate_change_mid_stream_drains_the_old_resampler_and_keeps_all_audio():
    """48 kHz then 16 kHz then 44.1 kHz into pcm16: each part comes out as if resampled on
    its own (the old filter's tail is drained at the switch), and the 16 kHz part is
    passed through byte for byte."""
    a, b, c = signal(0.5, 48000, 1), signal(0.37, 16000, 2), signal(0.41, 44100, 3)
    packer = UplinkPacker("pcm16")
    out: list[bytes] = []
    for part, rate in ((a, 48000), (b, 16000), (c, 44100)):
        for i in range(0, len(part), rate // 50):
            out += packer.push(part[i : i + rate // 50], rate)
    out += packer.flush()
    got = b"".join(out)

    def alone(part: bytes, rate: int) -> bytes:
        p = UplinkPacker("pcm16")
        return b"".join(p.push(part, rate) + p.flush())

    expected = alone(a, 48000) + b + alone(c, 44100)
    assert got == expected
    assert abs(len(got) // 2 - (8000 + len(b) // 2 + 0.41 * 16000)) <= 2


def test_rate_change_drops_a_half_sample_from_the_old_rate():
    packer = UplinkPacker("pcm16", packet_ms=10)
    packer.push(b"\x01\x02\x03", 16000)  # one sample plus a lone byte
    packer.push(b"", 24000)  # the lone byte cannot join 24 kHz audio
    packer.push(b"", 16000)
    out = b"".join(packer.push(b"\x05\x06", 16000) + packer.flush())
    assert out == b"\x01\x02\x05\x06"


def test_odd_trailing_byte_is_carried_into_the_next_frame():
    packer = UplinkPacker("pcm24", packet_ms=10)
    out = packer.push(b"\x01", 24000) + packer.push(b"\x02\x03", 24000)
    out += packer.push(b"\x04", 24000) + packer.flush()
    assert b"".join(out) == b"\x01\x02\x03\x04"


def test_clear_drops_buffered_audio_and_resampler_state():
    """After clear() nothing old comes out, and new audio is packed as by a fresh packer."""
    packer = UplinkPacker("wav", wav_rate=24000)
    packer.push(signal(0.07, 16000, 5) + b"\x7f", 16000)
    assert packer.buffered_ms > 60
    packer.clear()
    assert packer.buffered_ms == 0
    assert packer.flush() == []

    packer.push(signal(0.05, 16000, 6), 16000)
    packer.clear()
    fresh = UplinkPacker("wav", wav_rate=24000)
    new = signal(0.33, 16000, 7)
    assert push_chunks(packer, new, 16000, [320]) == push_chunks(fresh, new, 16000, [320])


def test_flush_emits_a_short_tail_and_leaves_the_packer_ready():
    packer = UplinkPacker("pcm16", packet_ms=100)
    first = packer.push(signal(0.25, 16000), 16000) + packer.flush()
    assert [len(p) for p in first] == [3200, 3200, 1600]
    assert packer.flush() == []  # empty packer: no empty tail packet
    again = packer.push(signal(0.25, 16000), 16000) + packer.flush()
    assert again == first


@pytest.mark.parametrize(("seconds", "packet_ms"), [(0.3, 1000), (0.33, 100), (0.01, 10)])
def test_buffered_ms_counts_everything_a_flush_would_emit(seconds, packet_ms):
    """buffered_ms covers pending packet audio, input waiting to be resampled and the
    resampler's delay: a flush emits that much audio (to within one sample)."""
    packer = UplinkPacker("pcm24", packet_ms=packet_ms)
    emitted = b"".join(packer.push(signal(seconds, 44100), 44100))
    held = packer.buffered_ms
    assert held > 0
    tail = b"".join(packer.flush())
    assert len(tail) // 2 == pytest.approx(held * 24000 / 1000, abs=1)
    assert abs((len(emitted) + len(tail)) // 2 - seconds * 24000) <= 1
    assert packer.buffered_ms == 0


@pytest.mark.parametrize("src_rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("frame_ms", [10, 20])
def test_block_resampling_emits_each_packet_as_early_as_per_frame_resampling(src_rate, frame_ms):
    """The packer resamples in blocks to save CPU, but a packet never leaves later than if
    every frame went through soxr at once: after each push, the packets emitted equal the
    full packets a per-frame soxr stream has produced by then."""
    packer = UplinkPacker("pcm24")
    per_frame = soxr.ResampleStream(src_rate, 24000, 1, dtype="float32")
    data = signal(1.7, src_rate)
    frame = src_rate * frame_ms // 1000 * 2
    emitted = produced = 0
    for i in range(0, len(data), frame):
        chunk = data[i : i + frame]
        emitted += len(packer.push(chunk, src_rate))
        x = np.frombuffer(chunk, "<i2").astype(np.float32) / 32768
        produced += len(per_frame.resample_chunk(x))
        assert emitted == produced // packer.packet_samples, f"late at byte {i}"


def test_push_accepts_bytearray_and_typed_memoryview():
    samples = np.arange(-800, 800, dtype="<i2")
    packer = UplinkPacker("pcm16", packet_ms=10)
    out = packer.push(memoryview(samples), 16000)  # format 'h': lengths count bytes, not items
    out += packer.push(bytearray(samples.tobytes()), 16000)
    out += packer.flush()
    assert b"".join(out) == samples.tobytes() * 2


# --- configuration errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"packet_ms": 9}, "packet_ms", "9"),
        ({"packet_ms": 1001}, "packet_ms", "1001"),
        ({"packet_ms": 100.0}, "packet_ms", "100.0"),
        ({"wav_rate": 7999}, "wav_rate", "7999"),
        ({"wav_rate": 48001}, "wav_rate", "48001"),
        ({"wav_rate": True}, "wav_rate", "True"),
        ({"input_format": "pcm"}, "input_audio_format", "'pcm'"),
        ({"wav_rate": 44100, "packet_ms": 15}, "packet_ms", "15"),
    ],
)
def test_packer_config_errors_name_the_field_and_value(kwargs, field, value):
    with pytest.raises(ConfigError) as exc:
        UplinkPacker(**kwargs)
    assert field in str(exc.value) and value in str(exc.value)


@pytest.mark.parametrize("rate", [7999, 192001, 0, 16000.0, True, "16000", None])
def test_push_rejects_a_bad_sample_rate_naming_it(rate):
    packer = UplinkPacker()
    with pytest.raises(ConfigError) as exc:
        packer.push(b"\x00\x00", rate)
    assert "sample_rate" in str(exc.value) and repr(rate) in str(exc.value)


# --- downlink -------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_downlink_at_24k_passes_pcm_through():
    pcm = signal(0.1, 24000)
    dec = DownlinkDecoder()
    assert dec.decode(b64(pcm)) == pcm
    assert dec.flush() == b""


@FAST
@given(cuts=st.lists(st.integers(0, 999), max_size=20), seed=st.integers(0, 1000))
def test_downlink_carries_odd_bytes_across_deltas(cuts, seed):
    """Deltas split anywhere (odd lengths included) decode to whole samples that join up
    to the original PCM."""
    pcm = signal(0.05, 24000, seed)
    bounds = sorted({min(c * 3, len(pcm)) for c in cuts} | {0, len(pcm)})
    dec = DownlinkDecoder()
    outs = [dec.decode(b64(pcm[x:y])) for x, y in pairwise(bounds)]
    assert all(len(o) % 2 == 0 for o in outs)
    assert b"".join(outs) == pcm


def test_downlink_carry_of_a_single_byte():
    dec = DownlinkDecoder()
    assert dec.decode(b64(b"\x01")) == b""
    assert dec.decode(b64(b"\x02\x03")) == b"\x01\x02"
    assert dec.decode(b64(b"\x04")) == b"\x03\x04"


@pytest.mark.parametrize("bad", ["not base64!", "AAA", "QUJD\u00e9", "QQ==QQ=="])
def test_downlink_bad_base64_is_a_protocol_violation(bad):
    with pytest.raises(ProtocolViolation, match="base64"):
        DownlinkDecoder().decode(bad)


def test_downlink_non_string_delta_is_a_protocol_violation():
    with pytest.raises(ProtocolViolation, match="NoneType"):
        DownlinkDecoder().decode(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("out_rate", [16000, 48000, 22050])
def test_resampled_downlink_has_the_right_length_and_ignores_chunking(out_rate):
    pcm = signal(1.0, 24000, 9)
    dec = DownlinkDecoder(output_rate=out_rate)
    chunked = b"".join(dec.decode(b64(pcm[i : i + 961])) for i in range(0, len(pcm), 961))
    chunked += dec.flush()
    whole = DownlinkDecoder(output_rate=out_rate)
    assert chunked == whole.decode(b64(pcm)) + whole.flush()
    assert abs(len(chunked) // 2 - out_rate) <= 1


def test_downlink_flush_drops_a_lone_byte_and_logs_at_debug(caplog):
    dec = DownlinkDecoder()
    with caplog.at_level(logging.DEBUG, logger="realtime.audio"):
        assert dec.decode(b64(b"\x01\x02\x03")) == b"\x01\x02"
        assert dec.flush() == b""
    assert any("odd byte" in r.getMessage() for r in caplog.records)
    assert dec.decode(b64(b"\x04\x05")) == b"\x04\x05"  # the dropped byte does not come back


def test_downlink_clear_forgets_carry_and_resampler_state():
    dec = DownlinkDecoder(output_rate=16000)
    dec.decode(b64(signal(0.1, 24000, 1) + b"\x09"))
    dec.clear()
    pcm = signal(0.2, 24000, 2)
    fresh = DownlinkDecoder(output_rate=16000)
    assert dec.decode(b64(pcm)) + dec.flush() == fresh.decode(b64(pcm)) + fresh.flush()


@pytest.mark.parametrize("rate", [7999, 192001, 24000.0])
def test_downlink_rejects_a_bad_output_rate_naming_it(rate):
    with pytest.raises(ConfigError) as exc:
        DownlinkDecoder(output_rate=rate)
    assert "output_rate" in str(exc.value) and repr(rate) in str(exc.value)


# --- uplink: the fast path, the cached WAV header, the s16 <-> float conversion ----------------


def wave_module_wav(pcm: bytes, rate: int) -> bytes:
    """The reference WAV: what the stdlib ``wave`` module writes for mono s16 ``pcm``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 24000, 44100, 48000, 96000, 192000])
@pytest.mark.parametrize("size", [0, 2, 320, 4800, 9600, 96000])
def test_wav_header_is_byte_for_byte_what_the_wave_module_writes(rate, size):
    """wav_bytes packs a cached header with struct; it must equal stdlib wave's output."""
    pcm = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert wav_bytes(pcm, rate) == wave_module_wav(pcm, rate)
    assert wav_bytes(pcm, rate) == wave_module_wav(pcm, rate)  # again, from the cache


@pytest.mark.parametrize(("src_rate", "wav_rate"), [(16000, 16000), (16000, 24000), (44100, 8000)])
def test_every_wav_packet_full_or_tail_equals_the_wave_module_output(src_rate, wav_rate):
    packer = UplinkPacker("wav", wav_rate=wav_rate, packet_ms=100)
    packets = push_chunks(packer, signal(0.77, src_rate), src_rate, [src_rate // 100 * 2])
    assert len(packets) == 8  # 7 full packets and a 70 ms tail
    for p in packets:
        assert p == wave_module_wav(p[44:], wav_rate)


def scaled_soxr_reference(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """Resample the obvious way: s16 scaled to [-1, 1), float32 soxr over the whole signal,
    scaled back, rounded to nearest and saturated."""
    x = np.frombuffer(pcm, "<i2").astype(np.float32) / np.float32(32768)
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
    y = np.concatenate([stream.resample_chunk(x), stream.resample_chunk(x[:0], last=True)])
    y = np.clip(np.rint(y * np.float32(32768)), -32768, 32767)
    out: bytes = y.astype("<i2").tobytes()
    return out


def loud_square(seconds: float, rate: int) -> bytes:
    n = round(seconds * rate)
    return np.where(np.arange(n) // 40 % 2 == 0, 32767, -32768).astype("<i2").tobytes()


@pytest.mark.parametrize(
    ("src_rate", "fmt"), [(16000, "pcm24"), (44100, "pcm16"), (48000, "pcm24"), (8000, "pcm16")]
)
@pytest.mark.parametrize("kind", ["speech-like", "full-scale square", "quiet"])
def test_resampled_samples_equal_the_scaled_float_reference_bit_for_bit(src_rate, fmt, kind):
    """The packer feeds soxr at s16 scale (no scaling passes) and clips only the blocks that
    overshoot; the samples must equal the straightforward scaled path exactly."""
    data = {
        "speech-like": signal(0.9, src_rate, 3),
        "full-scale square": loud_square(0.9, src_rate),
        "quiet": (np.frombuffer(signal(0.9, src_rate, 4), "<i2") // 2000).astype("<i2").tobytes(),
    }[kind]
    packer = UplinkPacker(fmt)
    out = b"".join(push_chunks(packer, data, src_rate, [src_rate // 100 * 2]))
    assert out == scaled_soxr_reference(data, src_rate, packer.sample_rate)


@pytest.mark.parametrize("out_rate", [16000, 44100])
def test_resampled_downlink_equals_the_scaled_float_reference(out_rate):
    pcm = signal(0.5, 24000, 8) + loud_square(0.2, 24000)
    dec = DownlinkDecoder(output_rate=out_rate)
    assert dec.decode(b64(pcm)) + dec.flush() == scaled_soxr_reference(pcm, 24000, out_rate)


def as_kind(frame: bytes, kind: str) -> bytes | bytearray | memoryview:
    """``frame`` as the buffer type a caller might push."""
    if kind == "bytearray":
        return bytearray(frame)
    if kind == "memoryview" and len(frame) % 2 == 0:
        return np.frombuffer(frame, "<i2").data  # typed 'h': len() counts samples
    if kind == "memoryview":
        return memoryview(frame)
    return frame


@FAST
@given(
    src_rate=st.sampled_from([16000, 24000, 44100, 8000]),
    fmt=st.sampled_from(FORMATS),
    frames=st.lists(
        st.tuples(st.integers(0, 2500), st.sampled_from(["bytes", "bytearray", "memoryview"])),
        min_size=1,
        max_size=40,
    ),
    seed=st.integers(0, 2**16),
)
def test_fast_path_emits_the_same_packets_as_early_as_per_frame_processing(
    src_rate, fmt, frames, seed
):
    """Whatever the frame sizes (odd ones included) and buffer types (bytes and bytearray
    take the fast path, memoryviews and frames around a half sample do not), after every
    push the packets emitted equal the full packets that resampling each frame at once
    would have produced by then, and the packets joined equal the whole-signal result."""
    data = signal(sum(size for size, _ in frames) / 2 / src_rate + 0.001, src_rate, seed)
    packer = UplinkPacker(fmt, wav_rate=24000)
    rate = packer.sample_rate
    per_frame = soxr.ResampleStream(src_rate, rate, 1, dtype="float32")
    carry, produced, pos = b"", 0, 0
    packets: list[bytes] = []
    for size, kind in frames:
        frame = data[pos : pos + size]
        pos += size
        packets += packer.push(as_kind(frame, kind), src_rate)
        joined_frame = carry + frame
        whole = len(joined_frame) // 2 * 2
        carry = joined_frame[whole:]
        if src_rate == rate:
            produced += whole // 2
        else:
            x = np.frombuffer(joined_frame[:whole], "<i2").astype(np.float32)
            produced += len(per_frame.resample_chunk(x))
        assert len(packets) == produced // packer.packet_samples
    packets += packer.flush()
    whole_packer = UplinkPacker(fmt, wav_rate=24000)
    fed = data[: pos - pos % 2]
    assert joined(packets, fmt, rate) == joined(
        whole_packer.push(fed, src_rate) + whole_packer.flush(), fmt, rate
    )
    assert_full_packets(packets, packer, fmt)


@settings(max_examples=40, deadline=None)
@given(
    rates=st.sampled_from(
        [
            (22050, 24000),
            (24000, 16000),
            (44100, 16000),
            (48000, 16000),
            (11025, 24000),
            (32000, 24000),
            (16000, 24000),
            (8000, 16000),
            (16000, 22050),
        ]
    ),
    frame_ms=st.lists(st.integers(1, 60), min_size=1, max_size=8),
    packet_ms=st.sampled_from([20, 100, 200]),
    seed=st.integers(0, 2**16),
)
def test_skipped_soxr_calls_never_delay_a_packet_over_seconds_of_audio(
    rates, frame_ms, packet_ms, seed
):
    """The packer skips soxr calls its learnt bound says cannot complete a packet. Over 4 s
    of frames of varied lengths, at ratios whose soxr blocks vary in size, every packet
    still leaves on the push where per-frame resampling would have completed it."""
    src_rate, wav_rate = rates
    data = signal(4.0, src_rate, seed)
    packer = UplinkPacker("wav", wav_rate=wav_rate, packet_ms=packet_ms)
    per_frame = soxr.ResampleStream(src_rate, wav_rate, 1, dtype="float32")
    emitted = produced = pos = 0
    for i in itertools.count():
        size = src_rate * frame_ms[i % len(frame_ms)] // 1000 * 2
        frame = data[pos : pos + size]
        if not frame:
            break
        pos += size
        emitted += len(packer.push(frame, src_rate))
        produced += len(per_frame.resample_chunk(np.frombuffer(frame, "<i2").astype(np.float32)))
        assert emitted == produced // packer.packet_samples, f"late at byte {pos}"


def test_resampler_runs_on_blocks_not_on_every_frame(monkeypatch):
    """On 10 ms frames at 16 kHz into 24 kHz packets, soxr is called about once per packet:
    only when the waiting audio can complete one (a few more calls while it learns soxr's
    block size and threshold)."""
    calls = 0
    original = soxr.ResampleStream.resample_chunk

    def counting(self, x, last=False):
        nonlocal calls
        calls += 1
        return original(self, x, last)

    monkeypatch.setattr(soxr.ResampleStream, "resample_chunk", counting)
    packer = UplinkPacker("wav", wav_rate=24000)
    frames = [signal(3.0, 16000)[i : i + 320] for i in range(0, 96000, 320)]
    packets = [p for f in frames for p in packer.push(f, 16000)]
    assert len(packets) == 29  # 3 s less the filter's delay
    assert len(packets) <= calls <= len(packets) * 1.3  # was 2.5 per packet with per-frame calls


def test_full_packets_drained_at_a_rate_change_leave_on_that_push():
    """A rate change drains the old filter into the pending audio; if that completes a
    packet, the push that changed the rate returns it, even when it brings no audio."""
    packer = UplinkPacker("pcm16", packet_ms=100)
    first = packer.push(signal(0.21, 48000), 48000)
    assert len(first) == 1 and packer.buffered_ms >= 100  # a packet waits in the filter
    second = packer.push(b"", 44100)
    assert len(second) == 1
    assert packer.buffered_ms < 100
    tail = packer.flush()
    reference = UplinkPacker("pcm16", packet_ms=100)
    expected = reference.push(signal(0.21, 48000), 48000) + reference.flush()
    assert first + second + tail == expected


@settings(max_examples=30, deadline=None)
@given(
    rates=st.sampled_from(
        [(16000, 24000), (48000, 24000), (44100, 16000), (8000, 16000), (22050, 24000)]
    ),
    sizes_ms=st.lists(st.floats(0.1, 300.0), min_size=5, max_size=60),
)
def test_release_model_never_undercounts_what_soxr_releases(rates, sizes_ms):
    """The packer skips a soxr call only when the model says it could not return enough;
    so on any chunking, no call may return more samples than the model's bound."""
    in_rate, out_rate = rates
    model = release_model(in_rate, out_rate)
    assert model is not None
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
    for ms in sizes_ms:
        chunk = np.ones(max(1, int(in_rate * ms / 1000)), dtype=np.float32)
        fill = stream.delay() + chunk.size * out_rate / in_rate
        assert stream.resample_chunk(chunk).size <= model.bound(fill)


def test_release_model_is_refused_for_multi_stage_ratios_and_measured_for_common_ones():
    """Beyond a ratio of 3 soxr runs several stages whose releases are not predictable: no
    model, so the packer falls back to the exact drain bound."""
    assert release_model(8000, 48000) is None
    assert release_model(44100, 8000) is None
    model = release_model(16000, 24000)
    assert model is not None and model.block == 734  # soxr HQ's block at 16 -> 24 kHz
    assert 700 < model.quiet_fill < 900
