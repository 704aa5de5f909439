"""The conversation with GLM-Realtime, apart from any graph: one owner, one inbox.

* :mod:`.conversation`: the state machine (states and inbox drawn in its docstring); the
  only code that changes a conversation's state; no I/O.
* :mod:`.voice`: :class:`VoiceSession`, the shell running the owner task: sockets, tool
  tasks, timers, the outbox to the host.
* :mod:`.inbox`, :mod:`.effects`, :mod:`.outbox`: what goes in, what the core decides,
  what goes out to the host.
* the core's parts (the conversation calls them; no I/O): downlink, responses,
  response_requests (when to ask for a response), session_setup (what each
  session.update says), tool_calls, uplink, memory, transcript sentences, backoff; handler.
"""

from .handler import SessionHandler, SessionState, ToolOutcome
from .voice import VoiceSession

__all__ = ["SessionHandler", "SessionState", "ToolOutcome", "VoiceSession"]
