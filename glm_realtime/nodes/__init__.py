"""Bundled companion nodes, registered as built-in addons when imported.

* ``file_source``: plays a WAV/raw file as ``pcm_frame`` frames.
* ``wav_sink``: writes received frames to a WAV file; counts ``flush``.
* ``transcript_collector``: keeps ``text_data``, ``metrics`` and ``error``; JSONL.
* ``demo_tools``: deterministic ``get_current_time``/``get_weather`` tools.
* ``chat_storage``: ``retrieve``/``append`` history in JSON, SQLite or memory.
"""

from .chat_storage import ChatStorage
from .demo_tools import DemoTools
from .file_source import AudioSourceError, FileSource
from .transcript_collector import TranscriptCollector
from .wav_sink import WavSink

__all__ = [
    "AudioSourceError",
    "ChatStorage",
    "DemoTools",
    "FileSource",
    "TranscriptCollector",
    "WavSink",
]
