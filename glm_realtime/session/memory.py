"""Chat memory: the last turns of both roles, for storage and for reconnects.

GLM ignores ``message`` items replayed with ``conversation.item.create`` (field reports),
so after a reconnect the history goes into the new session's ``instructions`` instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["ChatMemory", "Turn"]

Role = Literal["user", "assistant"]
# A long history would crowd out the prompt; GLM's own memory is about 2 minutes.
MAX_HISTORY_CHARS = 4000


@dataclass(frozen=True)
class Turn:
    """One utterance."""

    role: Role
    content: str


class ChatMemory:
    """The last ``max_turns`` turns, oldest first."""

    def __init__(self, max_turns: int) -> None:
        self._turns: deque[Turn] = deque(maxlen=max_turns) if max_turns > 0 else deque(maxlen=0)

    def __len__(self) -> int:
        return len(self._turns)

    @property
    def turns(self) -> list[Turn]:
        """The remembered turns, oldest first."""
        return list(self._turns)

    def put(self, role: Role, content: str) -> Turn | None:
        """Remember a turn; empty text is not a turn."""
        content = content.strip()
        if not content or self._turns.maxlen == 0:
            return None
        turn = Turn(role, content)
        self._turns.append(turn)
        return turn

    def load(self, records: Iterable[Mapping[str, object]]) -> int:
        """Add stored ``{role, content}`` records; returns how many were usable."""
        loaded = 0
        for record in records:
            role, content = record.get("role"), record.get("content")
            if role in ("user", "assistant") and isinstance(content, str) and content.strip():
                self.put(role, content)
                loaded += 1
        return loaded

    def render(self) -> str:
        """The history as an instructions paragraph (empty when there is none)."""
        lines: list[str] = []
        size = 0
        for turn in reversed(self._turns):
            line = f"{turn.role}: {turn.content}"
            size += len(line) + 1
            if size > MAX_HISTORY_CHARS:
                break
            lines.append(line)
        if not lines:
            return ""
        lines.reverse()
        return "Conversation so far (continue it; do not repeat it):\n" + "\n".join(lines)
