"""The original extension's uplink, reproduced for the uplink benchmark.

As ``../shared/seeds/000_*.txt`` and ``../shared/research/ten_agent.md`` (1.2, 1.3) record
it: each 10 ms frame becomes a WAV through pydub (``convert_to_wav_in_memory``, its header
claiming 24 kHz whatever the source rate), then ``send_audio_data`` base64-encodes it into an
``InputAudioBufferAppend`` dataclass with a uuid4 ``event_id``, ``to_json`` serialises
``asdict`` minus ``None`` values with ``json.dumps``, and aiohttp's ``send_str`` sends it.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import aiohttp
import numpy as np

from benchmarks._sink import END, Result

with warnings.catch_warnings():
    # pydub warns at import when ffmpeg is absent; WAV export does not need it.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment


def convert_to_wav_in_memory(buff: bytes) -> bytes:
    """The seed's converter: numpy round trip, a pydub segment, a header claiming 24 kHz."""
    pcm_data = np.frombuffer(buff, dtype=np.int16)
    audio_segment = AudioSegment(pcm_data.tobytes(), frame_rate=24000, sample_width=2, channels=1)
    memory_stream = io.BytesIO()
    audio_segment.export(memory_stream, format="wav")
    return memory_stream.getvalue()


@dataclass
class InputAudioBufferAppend:
    """The seed's event (``struct.py``): every client event has a uuid4 ``event_id``."""

    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    audio: str | None = None
    type: str = "input_audio_buffer.append"


def to_json(message: InputAudioBufferAppend) -> str:
    """The seed's serialiser: ``asdict`` minus ``None`` values, ``json.dumps``."""
    return json.dumps({k: v for k, v in asdict(message).items() if v is not None})


def seed_message(frame: bytes) -> str:
    """One frame through the seed's uplink, up to the text ``send_str`` sends."""
    wav = convert_to_wav_in_memory(frame)
    return to_json(InputAudioBufferAppend(audio=base64.b64encode(wav).decode("utf-8")))


def run_seed(frames: Sequence[bytes]) -> Result:
    """Compute only: every frame up to its JSON text."""
    result = Result()
    for frame in frames:
        result.json_bytes += len(seed_message(frame))  # json.dumps escapes to ASCII
        result.messages += 1
    return result


class SeedSender:
    """The seed's connection: an aiohttp websocket, one ``send_str`` per frame."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None

    async def open(self, url: str) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(url, headers={"Authorization": "Bearer x"})

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def send(self, frames: Sequence[bytes]) -> Result:
        """Whole uplink: every frame through ``seed_message`` and ``send_str``."""
        assert self._ws is not None
        result = Result()
        for frame in frames:
            await self._ws.send_str(seed_message(frame))
            result.messages += 1
        return result

    async def end_run(self, result: Result) -> None:
        """Wait until the sink has every message of the run; take its counts."""
        assert self._ws is not None
        await self._ws.send_str(json.dumps(END))
        result.take_counts(json.loads(await self._ws.receive_str()))
