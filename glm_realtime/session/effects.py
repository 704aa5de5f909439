"""What the conversation core asks its shell to do, in order, after each inbox item.

The core (:class:`~glm_realtime.session.conversation.Conversation`) decides; the shell
(:class:`~glm_realtime.session.voice.VoiceSession`) does the I/O. Outputs to the host
(:data:`~glm_realtime.session.outbox.Output`) are effects too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from realtime import events as ev

from .outbox import Output

__all__ = ["CallTool", "CloseSocket", "Connect", "Effect", "Schedule", "Send", "SendAudio"]


@dataclass(frozen=True)
class Send:
    """Send one client event on the live socket (dropped when there is none)."""

    event: ev.ClientEventBase


@dataclass(frozen=True)
class SendAudio:
    """Send uplink packets; what cannot be sent goes back to the uplink backlog."""

    packets: list[bytes]


@dataclass(frozen=True)
class CallTool:
    """Run tool call ``seq`` through the host; its outcome comes back as a ToolResult."""

    seq: int
    name: str
    arguments: str


@dataclass(frozen=True)
class Connect:
    """Open socket ``gen`` (a reader task posts Connected, events, Disconnected)."""

    gen: int


@dataclass(frozen=True)
class CloseSocket:
    """Close the current socket now; the core has already let it go."""

    code: int
    reason: str


@dataclass(frozen=True)
class Schedule:
    """Post ``TimerFired(kind, gen)`` after ``delay_s``."""

    kind: Literal["proven", "reconnect"]
    gen: int
    delay_s: float


Effect = Send | SendAudio | CallTool | Connect | CloseSocket | Schedule | Output
