"""What each ``session.update`` says: the configured session, the tools registered, the
remembered history and, once per conversation, the greeting.

Part of the conversation core (no I/O). The greeting is said once, when the first user joins
(``greeting`` configured): in the next ``session.update``, and never again, across reconnects
too.
"""

from __future__ import annotations

from realtime import events as ev
from realtime.session import FunctionTool

from ..config import ExtensionConfig

__all__ = ["SessionSetup"]


class SessionSetup:
    """The session GLM is given, and the users and tools that shape it."""

    def __init__(self, config: ExtensionConfig) -> None:
        self._config = config
        self.tools: dict[str, FunctionTool] = {}
        self.users = 0
        self.history_text = ""  # the memory as the session's instructions quote it
        self._greet_pending = self._greeted = False

    def update(self) -> ev.SessionUpdate:
        """The next ``session.update`` (with the greeting, if it is due)."""
        greet = self._greet_pending and not self._greeted
        tools = tuple(self.tools.values())
        session = self._config.session_config(tools, self.history_text, greet=greet)
        if greet:
            self._greeted, self._greet_pending = True, False
        return ev.SessionUpdate(session=session)

    def user_joined(self) -> bool:
        """Count a user in; True when that made the greeting due (the first user)."""
        self.users += 1
        if self.users == 1 and self._config.greeting and not self._greeted:
            self._greet_pending = True
            return True
        return False

    def user_left(self) -> None:
        """Count a user out."""
        self.users = max(0, self.users - 1)
