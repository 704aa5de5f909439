"""``chat_storage``: a chat history store for the ``retrieve``/``append`` contract.

Cmd ``retrieve`` answers OK with ``response`` = a JSON *string* of
``[{"role", "content"}]``, oldest first. Data ``append{text, role, stream_id}`` adds
one turn; the history keeps the newest ``max_items``. ``path`` selects the backend:
``*.json`` (a JSON list, rewritten atomically), ``*.sqlite``/``*.db`` (stdlib
sqlite3) or empty for memory only. File I/O runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..host import AsyncTenEnv, Cmd, CmdResult, Data, Extension, StatusCode, register_addon

__all__ = ["ChatStorage", "JsonStore", "MemoryStore", "SqliteStore"]

MANIFEST = {
    "type": "extension",
    "name": "chat_storage",
    "version": "0.1.0",
    "api": {
        "property": {"path": {"type": "string"}, "max_items": {"type": "int32"}},
        "cmd_in": [{"name": "retrieve", "result": {"property": {"response": {"type": "string"}}}}],
        "data_in": [
            {
                "name": "append",
                "property": {
                    "text": {"type": "string"},
                    "role": {"type": "string"},
                    "stream_id": {"type": "int64"},
                },
            }
        ],
    },
}
DEFAULTS = {"path": "", "max_items": 100}
Turn = dict[str, Any]


class MemoryStore:
    """History kept in memory only."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._turns: list[Turn] = []

    def load(self) -> list[Turn]:
        """Return the stored turns, oldest first."""
        return list(self._turns)

    def append(self, turn: Turn) -> None:
        """Store ``turn`` and drop the oldest beyond ``max_items``."""
        self._turns = [*self._turns, turn][-self.max_items :]


class JsonStore(MemoryStore):
    """History in a JSON file holding a list of turns."""

    def __init__(self, path: Path, max_items: int) -> None:
        super().__init__(max_items)
        self.path = path

    def load(self) -> list[Turn]:
        if not self.path.exists():
            return []
        value = json.loads(self.path.read_text(encoding="utf-8") or "[]")
        if not isinstance(value, list):
            raise ValueError(f"{self.path} does not hold a JSON list")
        return value

    def append(self, turn: Turn) -> None:
        turns = [*self.load(), turn][-self.max_items :]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(turns, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


class SqliteStore(MemoryStore):
    """History in an SQLite table ``turns``; one connection per operation (thread-safe)."""

    def __init__(self, path: Path, max_items: int) -> None:
        super().__init__(max_items)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS turns (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " role TEXT NOT NULL, content TEXT NOT NULL, stream_id INTEGER, ts REAL)"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path)
        try:
            with db:  # commit on success, roll back on error
                yield db
        finally:
            db.close()

    def load(self) -> list[Turn]:
        with self._connect() as db:
            rows = db.execute("SELECT role, content FROM turns ORDER BY id").fetchall()
        return [{"role": role, "content": content} for role, content in rows]

    def append(self, turn: Turn) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO turns (role, content, stream_id, ts) VALUES (?, ?, ?, ?)",
                (turn["role"], turn["content"], turn.get("stream_id"), time.time()),
            )
            db.execute(
                "DELETE FROM turns WHERE id NOT IN (SELECT id FROM turns ORDER BY id DESC LIMIT ?)",
                (self.max_items,),
            )


def open_store(path: str, max_items: int) -> MemoryStore:
    """Pick the backend for ``path`` by suffix.

    Raises:
        ValueError: Unknown suffix or ``max_items`` below 1.
    """
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    if not path:
        return MemoryStore(max_items)
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return JsonStore(Path(path), max_items)
    if suffix in (".sqlite", ".db", ".sqlite3"):
        return SqliteStore(Path(path), max_items)
    raise ValueError(f"chat_storage path '{path}' must end in .json, .sqlite or .db")


@register_addon("chat_storage", manifest=MANIFEST, defaults=DEFAULTS)
class ChatStorage(Extension):
    """Serves ``retrieve`` and stores ``append``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.store: MemoryStore = MemoryStore(1)
        self._lock = asyncio.Lock()

    async def on_init(self, env: AsyncTenEnv) -> None:
        path, max_items = env.get_property_string("path"), env.get_property_int("max_items")
        self.store = await asyncio.to_thread(open_store, path, max_items)

    async def on_cmd(self, env: AsyncTenEnv, cmd: Cmd) -> None:
        if cmd.get_name() != "retrieve":
            await super().on_cmd(env, cmd)
            return
        try:
            async with self._lock:
                turns = await asyncio.to_thread(self.store.load)
        except (OSError, ValueError, sqlite3.Error) as exc:
            await env.return_result(CmdResult.error(f"cannot read history: {exc}"), cmd)
            return
        history = [{"role": t.get("role", ""), "content": t.get("content", "")} for t in turns]
        result = CmdResult.create(StatusCode.OK)
        result.set_property_string("response", json.dumps(history, ensure_ascii=False))
        await env.return_result(result, cmd)

    async def on_data(self, env: AsyncTenEnv, data: Data) -> None:
        if data.get_name() != "append":
            return
        turn: Turn = {
            "role": data.get_property_string("role"),
            "content": data.get_property_string("text"),
        }
        if data.is_property_exist("stream_id"):
            turn["stream_id"] = data.get_property_int("stream_id")
        async with self._lock:
            await asyncio.to_thread(self.store.append, turn)
