"""``transcript_collector``: keep the conversation text, metrics and errors.

Receives data ``text_data{text, end_of_segment, role, stream_id}``, ``metrics`` and
``error``. Every message is kept in memory (:attr:`TranscriptCollector.records`,
``metrics``, ``errors``) and, with a ``path``, appended to a JSONL file as one
object per line carrying ``kind`` (``text``, ``metrics``, ``error``) and ``ts``
(Unix time). Text pieces of one role and stream are joined until
``end_of_segment``; each finished segment lands in ``segments`` and, with ``print``
on, is written to stdout as ``[role] text``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..host import AsyncTenEnv, Data, Extension, register_addon

__all__ = ["TranscriptCollector"]

MANIFEST = {
    "type": "extension",
    "name": "transcript_collector",
    "version": "0.1.0",
    "api": {
        "property": {"path": {"type": "string"}, "print": {"type": "bool"}},
        "data_in": [
            {
                "name": "text_data",
                "property": {
                    "text": {"type": "string"},
                    "end_of_segment": {"type": "bool"},
                    "role": {"type": "string"},
                    "stream_id": {"type": "int64"},
                },
            },
            {"name": "metrics"},
            {"name": "error"},
        ],
    },
}
DEFAULTS = {"path": "", "print": False}


def _open_append(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")  # kept open for the run; closed in on_deinit


def _get(data: Data, key: str, default: Any) -> Any:
    if not data.is_property_exist(key):
        return default
    return json.loads(data.get_property_to_json(key))


@register_addon("transcript_collector", manifest=MANIFEST, defaults=DEFAULTS)
class TranscriptCollector(Extension):
    """Collects transcripts, metrics and errors.

    Attributes:
        records: One dict per ``text_data``: ``text``, ``end_of_segment``, ``role``,
            ``stream_id``, ``ts``.
        segments: Finished segments: ``role``, ``stream_id``, ``text`` (joined pieces).
        metrics: Properties of each ``metrics`` message, plus ``ts``.
        errors: Properties of each ``error`` message, plus ``ts``.
        on_text: Called with each ``text_data`` record as it arrives (live progress).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.records: list[dict[str, Any]] = []
        self.segments: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.out: IO[str] = sys.stdout
        self.on_text: Callable[[dict[str, Any]], None] | None = None
        self._partial: dict[tuple[str, int], str] = {}
        self._file: IO[str] | None = None
        self._print = False

    async def on_init(self, env: AsyncTenEnv) -> None:
        self._print = env.get_property_bool("print")
        path = env.get_property_string("path")
        if path:
            self._file = await asyncio.to_thread(_open_append, Path(path))

    async def on_deinit(self, env: AsyncTenEnv) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, kind: str, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps({"kind": kind, **record}, ensure_ascii=False) + "\n")
            self._file.flush()

    async def on_data(self, env: AsyncTenEnv, data: Data) -> None:
        name = data.get_name()
        if name in ("metrics", "error"):
            record = {**json.loads(data.get_property_to_json()), "ts": time.time()}
            (self.metrics if name == "metrics" else self.errors).append(record)
            self._write(name, record)
            return
        if name != "text_data":
            env.log_debug(f"ignoring data '{name}'")
            return
        record = {
            "text": str(_get(data, "text", "")),
            "end_of_segment": bool(_get(data, "end_of_segment", False)),
            "role": str(_get(data, "role", "")),
            "stream_id": int(_get(data, "stream_id", 0)),
            "ts": time.time(),
        }
        self.records.append(record)
        self._write("text", record)
        if self.on_text is not None:
            self.on_text(record)
        key = (record["role"], record["stream_id"])
        text = self._partial.pop(key, "") + record["text"]
        if not record["end_of_segment"]:
            self._partial[key] = text
            return
        segment = {"role": record["role"], "stream_id": record["stream_id"], "text": text}
        self.segments.append(segment)
        if self._print and text.strip():
            self.out.write(f"[{record['role']}] {text.strip()}\n")
            self.out.flush()
