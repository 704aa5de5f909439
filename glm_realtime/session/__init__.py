"""The conversation with GLM-Realtime, apart from any graph: one owner, one inbox.

* :mod:`.conversation`: the state machine (states and inbox drawn in its docstring); the
  only code that changes a conversation's state; no I/O.
* :mod:`.voice`: :class:`VoiceSession`, the shell running the owner task: sockets, tool
  tasks, timers, the outbox to the host.
* :mod:`.inbox`, :mod:`.effects`, :mod:`.outbox`: what goes in, what the core decides,
  what goes out to the host.
* parts: responses, uplink, memory, transcript sentences, backoff, tool calls, handler.
"""

from .handler import SessionHandler, SessionState, ToolOutcome
from .voice import VoiceSession

__all__ = ["SessionHandler", "SessionState", "ToolOutcome", "VoiceSession"]
