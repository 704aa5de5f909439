"""The embedded backend's input side (decode, server VAD, recogniser) on a real recording."""

from __future__ import annotations

import functools

import pytest

from tests.speech_utils import energy_offset_ms, energy_onset_ms, in_room, wer

try:
    from glm_local.listener import Listener, SpeechEdge
    from glm_local.speech import PocketSphinxModel, PocketSphinxRecognizer
    from tests.local_utils import GOFORWARD, goforward, silence, wav_packets

    PocketSphinxModel.default()
except ImportError as exc:  # the [local] extra is missing
    pytest.skip(f"embedded backend unavailable: {exc}", allow_module_level=True)

pytestmark = pytest.mark.speech

VAD = (0.5, 300, 500)


def listener() -> Listener:
    new = functools.partial(
        PocketSphinxRecognizer, PocketSphinxModel.default(), partial_interval_ms=None
    )
    ears = Listener(new, "wav")
    ears.load()
    return ears


def feed_all(ears: Listener, pcm: bytes) -> list[SpeechEdge]:
    return [edge for packet in wav_packets(pcm) for edge in ears.feed(packet)]


def test_server_vad_reports_the_speech_edges_and_the_turn_is_transcribed() -> None:
    ears = listener()
    assert ears.set_vad(VAD)
    speech = in_room(goforward())
    edges = feed_all(ears, silence(1000) + speech + silence(1000))
    assert [e.started for e in edges] == [True, False]
    # On the stream's clock: a second of silence, then the clip's own speech, which the
    # VAD reports from its 300 ms of prefix padding before the onset.
    onset, offset = 1000 + energy_onset_ms(speech), 1000 + energy_offset_ms(speech)
    assert abs(edges[0].ms - (onset - 300)) <= 250, (edges[0].ms, onset)
    assert abs(edges[1].ms - offset) <= 600, (edges[1].ms, offset)
    assert wer([GOFORWARD], [ears.finish()]) <= 0.25
    assert not ears.has_audio


def test_the_clock_runs_on_across_a_vad_change() -> None:
    """A new VAD (new settings) starts its own clock; reported times stay on the stream's."""
    ears = listener()
    ears.set_vad(VAD)
    first = feed_all(ears, goforward() + silence(1000))
    ears.finish()
    assert ears.set_vad((0.5, 300, 700))  # replaced: settings changed
    assert not ears.set_vad((0.5, 300, 700))  # the same settings keep the VAD
    second = feed_all(ears, goforward() + silence(1000))
    assert [e.started for e in second] == [True, False]
    assert second[0].ms > first[-1].ms


def test_commit_under_server_vad_ends_the_speech_in_progress() -> None:
    ears = listener()
    ears.set_vad(VAD)
    feed_all(ears, silence(500) + goforward())  # no trailing silence: still speaking
    assert ears.has_audio
    ears.end_speech()
    assert not ears.has_audio
    assert wer([GOFORWARD], [ears.finish()]) <= 0.5


def test_clear_drops_the_utterance_in_progress() -> None:
    ears = listener()
    ears.set_vad(VAD)
    feed_all(ears, silence(500) + goforward())
    ears.clear()
    assert not ears.has_audio
    assert ears.finish() == ""


def test_client_vad_buffers_everything_until_the_turn_ends() -> None:
    ears = listener()
    assert ears.set_vad(None)
    assert not ears.server_vad and not ears.has_audio
    assert feed_all(ears, goforward()) == []  # no VAD, no edges
    assert ears.has_audio
    assert wer([GOFORWARD], [ears.finish()]) <= 0.25
    assert not ears.has_audio
