"""How a VoiceSession talks to its host, and the states it goes through."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Protocol

from glm_realtime.session.memory import Role

__all__ = ["SessionHandler", "SessionState", "ToolOutcome"]


class SessionState(enum.Enum):
    """Where the session is in its life."""

    IDLE = "idle"
    CONNECTING = "connecting"
    READY = "ready"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class ToolOutcome:
    """What goes back to GLM as ``function_call_output``."""

    output: str
    ok: bool = True

    @classmethod
    def failure(cls, reason: str) -> ToolOutcome:
        """A failure the model can read, so it never waits for a result forever."""
        return cls(json.dumps({"success": False, "error": reason}), ok=False)


class SessionHandler(Protocol):
    """Where the session's output goes (the extension node implements it)."""

    async def send_audio(self, pcm: bytes, sample_rate: int) -> None:
        """Assistant audio, s16le mono."""

    async def send_transcript(self, text: str, role: Role, final: bool) -> None:
        """A transcript piece; ``final`` ends the segment."""

    async def send_flush(self) -> None:
        """Stop playing queued assistant audio (barge-in)."""

    async def call_tool(self, name: str, arguments: str) -> ToolOutcome:
        """Run a tool; may raise (the session turns that into a failure output)."""

    async def send_metrics(self, metrics: dict[str, object]) -> None:
        """Timing and usage figures."""

    async def send_error(self, code: str | None, message: str, fatal: bool) -> None:
        """A server or connection error; ``fatal`` means the session has given up."""

    async def append_history(self, role: Role, text: str) -> None:
        """A turn for the storage node."""
