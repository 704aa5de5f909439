"""file_source and wav_sink on real files, in real graphs."""

from __future__ import annotations

import asyncio
import json
import logging
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from glm_realtime.host import (
    AddonRegistry,
    AudioFrame,
    Cmd,
    GraphRunner,
    NodeError,
    StatusCode,
    load_graph,
    parse_graph,
)
from glm_realtime.host.testing import Probe
from glm_realtime.nodes import FileSource, WavSink
from glm_realtime.nodes.pcm import frame_bounds, read_audio

GRAPHS = Path(__file__).parent / "graphs"
REGISTRY = AddonRegistry()
REGISTRY.add(Probe.as_addon())


def write_wav(path: Path, samples: npt.NDArray[Any], rate: int, width: int = 2) -> Path:
    """Write ``samples`` shaped (n, channels) as little-endian PCM of ``width`` bytes."""
    frames = samples if samples.ndim == 2 else samples[:, None]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(frames.shape[1])
        wav.setsampwidth(width)
        wav.setframerate(rate)
        if width == 1:
            raw = (frames.astype(np.int64) + 128).astype(np.uint8).tobytes()
        elif width == 3:
            flat = frames.astype("<i4").reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3]
            raw = flat.tobytes()
        else:
            raw = frames.astype(f"<i{width}").tobytes()
        wav.writeframes(raw)
    return path


def read_wav(path: Path) -> tuple[npt.NDArray[np.int16], int, int]:
    with wave.open(str(path), "rb") as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        return data, wav.getframerate(), wav.getnchannels()


def pipeline(tmp_path: Path, source: Path, **source_props: Any) -> GraphRunner:
    """The audio_pipeline.json graph reading ``source``, with extra source properties."""
    app = json.loads((GRAPHS / "audio_pipeline.json").read_text())
    app["_ten"]["predefined_graphs"][0]["nodes"][0]["property"].update(source_props)
    env = {"HOST_TEST_INPUT": str(source), "HOST_TEST_OUTPUT": str(tmp_path / "out" / "o.wav")}
    return GraphRunner(load_graph(app, registry=REGISTRY, environ=env), queue_size=4)


def nodes(runner: GraphRunner) -> tuple[FileSource, WavSink, Probe]:
    source, sink, probe = runner.node("source"), runner.node("sink"), runner.node("probe")
    assert isinstance(source, FileSource) and isinstance(sink, WavSink)
    assert isinstance(probe, Probe)
    return source, sink, probe


async def test_file_source_streams_odd_rate_file_with_trailing_silence_to_sink(
    tmp_path: Path,
) -> None:
    rate = 22050
    tone = (np.arange(rate // 2) % 200 - 100).astype(np.int16) * 50  # 0.5 s, never all-zero
    runner = pipeline(tmp_path, write_wav(tmp_path / "in.wav", tone, rate))
    async with runner:
        source, sink, probe = nodes(runner)
        await source.finished.wait()
        runner.stop()  # leaving drains the queues: the sink still gets every frame
    trailing = rate * 300 // 1000
    total = len(tone) + trailing
    assert source.frames_sent == len(frame_bounds(total, rate, 10)) == 80
    assert len(probe.frames) == 80
    sizes = [f.get_samples_per_channel() for f in probe.frames]
    assert set(sizes) == {220, 221} and sum(sizes) == total  # 10 ms at 22050 Hz, no drift
    first = probe.frames[0]
    assert first.get_sample_rate() == rate
    assert first.get_property_int("stream_id") == 123
    assert first.get_property_string("channel") == "room-1"  # from ${env:...|room-1}
    assert [f.get_timestamp() for f in probe.frames[:3]] == [0, 10, 20]
    assert [c.get_name() for c in probe.cmds] == ["on_user_joined", "on_user_left"]
    assert isinstance(probe.received[0], Cmd)  # joined before the first frame
    written, out_rate, channels = read_wav(tmp_path / "out" / "o.wav")
    assert (out_rate, channels, sink.samples_written) == (rate, 1, total)
    assert np.array_equal(written[: len(tone)], tone)
    assert not written[len(tone) :].any() and len(written) - len(tone) == trailing


async def test_file_source_downmixes_44100_stereo_and_adds_leading_silence(
    tmp_path: Path,
) -> None:
    rate = 44100
    left = np.full(4410, 1000, np.int16)
    right = np.full(4410, 3001, np.int16)
    source_file = write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1), rate)
    runner = pipeline(tmp_path, source_file, leading_silence_ms=20, trailing_silence_ms=0)
    async with runner:
        source, _, probe = nodes(runner)
        await source.finished.wait()
    written, out_rate, _ = read_wav(tmp_path / "out" / "o.wav")
    lead = rate * 20 // 1000
    assert out_rate == rate and len(written) == lead + 4410
    assert not written[:lead].any()
    assert set(written[lead:].tolist()) == {2000}  # mean 2000.5 rounds to even
    assert all(f.get_number_of_channels() == 1 for f in probe.frames)


async def test_raw_pcm_uses_sample_rate_property(tmp_path: Path) -> None:
    raw = tmp_path / "in.pcm"
    raw.write_bytes(np.arange(1600, dtype="<i2").tobytes())
    runner = pipeline(tmp_path, raw, sample_rate=16000, trailing_silence_ms=0)
    async with runner:
        source, _, probe = nodes(runner)
        await source.finished.wait()
    assert source.frames_sent == 10
    assert probe.frames[0].get_sample_rate() == 16000


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wav_of_any_integer_width_decodes_to_s16(tmp_path: Path, width: int) -> None:
    s16 = np.array([0, 256, -256, 32512, -32768], np.int16)
    scaled = s16.astype(np.int64) >> 8 if width == 1 else s16.astype(np.int64) << (8 * (width - 2))
    samples, rate = read_audio(write_wav(tmp_path / "w.wav", scaled, 8000, width), 0)
    assert rate == 8000
    assert samples.tolist() == s16.tolist()


class FakeClock:
    """A monotonic clock whose sleeps always overshoot by ``overshoot`` seconds."""

    def __init__(self, overshoot: float) -> None:
        self.now = 100.0
        self.overshoot = overshoot
        self.requested: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)
        self.now += seconds + self.overshoot
        await asyncio.sleep(0)


async def test_pacing_follows_a_clock_schedule_so_overshoot_does_not_accumulate(
    tmp_path: Path,
) -> None:
    rate = 16000
    silence = np.zeros(rate, np.int16)  # 1 s -> 100 frames of 10 ms
    runner = pipeline(
        tmp_path, write_wav(tmp_path / "s.wav", silence, rate), speed=2.0, trailing_silence_ms=0
    )
    source, _, _ = nodes(runner)
    clock = FakeClock(overshoot=0.003)
    source.clock, source.sleep = clock, clock.sleep
    async with runner:
        await source.finished.wait()
    assert source.frames_sent == 100
    # The last frame is due 0.495 s after the first at double speed; cumulative
    # sleeps would end near 99 * (0.005 + 0.003) = 0.79 s.
    assert clock.now - 100.0 == pytest.approx(0.495 + 0.003, abs=1e-6)
    assert clock.requested[1] == pytest.approx(0.005 - 0.003)  # compensates overshoot


async def test_missing_file_fails_start_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(NodeError, match=r"node 'source' failed in on_start") as info:
        async with pipeline(tmp_path, missing):
            pytest.fail("must not start")
    assert str(missing) in str(info.value)


async def test_not_a_wav_fails_start_naming_the_path(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.wav"
    bogus.write_text("hello")
    with pytest.raises(NodeError, match="cannot read audio file .*bogus.wav"):
        async with pipeline(tmp_path, bogus):
            pytest.fail("must not start")


async def test_wav_sink_counts_flush_and_drops_rate_changes_logging_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    silent = write_wav(tmp_path / "in.wav", np.zeros(160, np.int16), 16000)
    runner = pipeline(tmp_path, silent, trailing_silence_ms=0)
    async with runner:
        source, sink, _ = nodes(runner)
        await source.finished.wait()
        probe_env = runner.env("probe")
        for _ in range(2):
            result = await probe_env.send_cmd(Cmd.create("flush"))
            assert result.get_status_code() == StatusCode.OK
        for _ in range(3):  # 24 kHz frames into a 16 kHz file, and a stereo frame
            await sink.on_audio_frame(
                runner.env("sink"), AudioFrame.from_buffer("pcm_frame", b"\x01\x00" * 240, 24000)
            )
        stereo = np.array([[100, 300]] * 160, "<i2").tobytes()
        await sink.on_audio_frame(
            runner.env("sink"), AudioFrame.from_buffer("pcm_frame", stereo, 16000, channels=2)
        )
    assert sink.flush_count == 2
    complaints = [r for r in caplog.records if "24000 Hz" in r.getMessage()]
    assert len(complaints) == 1 and complaints[0].levelno == logging.ERROR
    written, rate, _ = read_wav(tmp_path / "out" / "o.wav")
    assert rate == 16000 and len(written) == 320
    assert set(written[160:].tolist()) == {200}


async def test_wav_sink_without_frames_writes_an_empty_valid_wav(tmp_path: Path) -> None:
    graph = parse_graph(
        {
            "name": "g",
            "nodes": [
                {"name": "sink", "addon": "wav_sink", "property": {"path": str(tmp_path / "e.wav")}}
            ],
        },
        registry=REGISTRY,
    )
    async with GraphRunner(graph):
        pass
    written, rate, channels = read_wav(tmp_path / "e.wav")
    assert (len(written), rate, channels) == (0, 24000, 1)
