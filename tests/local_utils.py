"""Helpers for the embedded-backend tests: a recording client and real audio to send.

No sleeps: every wait reads events until one matches, under a timeout.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Callable
from typing import Any

import numpy as np

from realtime import events as ev
from realtime.audio import UplinkPacker
from realtime.compat import timeout as _timeout
from realtime.connection import Connection
from tests.speech_utils import AUDIO, RATE, in_room, load_wav

STEP_TIMEOUT = 30.0
GOFORWARD = "go forward ten meters"


def goforward() -> bytes:
    """'go forward ten meters' (a real recording), 16 kHz s16le."""
    return (AUDIO / "pocketsphinx-misc" / "goforward.raw").read_bytes()


def cards(index: int) -> tuple[str, bytes]:
    """One cards recording and its transcript."""
    from tests.speech_utils import read_transcription

    texts = read_transcription(AUDIO / "cards" / "cards.transcription")
    key = f"{index:03d}"
    return texts[key], load_wav(AUDIO / "cards" / f"{key}.wav")


def silence(ms: int, rate: int = RATE) -> bytes:
    return b"\x00\x00" * (rate * ms // 1000)


def wav_packets(pcm: bytes, rate: int = RATE, packet_ms: int = 100) -> list[str]:
    """Base64 WAV packets of ``packet_ms``, as the uplink sends them."""
    packer = UplinkPacker("wav", wav_rate=rate, packet_ms=packet_ms)
    packets = packer.push(pcm, rate) + packer.flush()
    return [base64.b64encode(p).decode() for p in packets]


def wav_file(pcm: bytes, rate: int = RATE, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def pcm24_to_16k(pcm24: bytes) -> bytes:
    """Downlink audio (24 kHz) to the recogniser's 16 kHz, in a quiet room."""
    import soxr

    audio = np.frombuffer(pcm24, "<i2").astype(np.float32) / 32768
    resampled = soxr.resample(audio, 24000, RATE)
    return in_room((np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes())


class Client:
    """A connection that records every event it reads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.events: list[ev.ServerEvent] = []

    async def until(self, predicate: Callable[[Any], bool], timeout: float = STEP_TIMEOUT) -> Any:
        """Read events until one satisfies ``predicate``; return it."""
        async with _timeout(timeout):
            while True:
                event = await self.conn.recv()
                self.events.append(event)
                if predicate(event):
                    return event

    async def until_type(self, event_type: str, timeout: float = STEP_TIMEOUT) -> Any:
        return await self.until(lambda e: getattr(e, "type", None) == event_type, timeout)

    async def until_done(self, timeout: float = STEP_TIMEOUT) -> ev.ResponseDone:
        done: ev.ResponseDone = await self.until_type("response.done", timeout)
        return done

    def of_type(self, event_type: str) -> list[Any]:
        return [e for e in self.events if getattr(e, "type", None) == event_type]

    def types(self) -> list[str]:
        return [str(getattr(e, "type", "?")) for e in self.events]

    def audio(self, response_id: str) -> bytes:
        return b"".join(
            base64.b64decode(e.delta)
            for e in self.of_type("response.audio.delta")
            if e.response_id == response_id
        )

    async def send_audio(self, packets: list[str]) -> None:
        for packet in packets:
            await self.conn.send(ev.InputAudioBufferAppend(audio=packet))
