"""When the conversation asks GLM for a response (``response.create``) and commits a turn.

Part of the conversation core (no I/O; effects go out through ``emit``). GLM refuses a
``response.create`` while a response is live ("conversation already has an active
response"), so one asked for then is *due*: it goes out once that response is done, and a
barge-in drops it (never sent: nothing to cancel). A response that called tools gets one
follow-up create once every output is in: several would race into the same refusal. Under
client VAD the host's ``flush`` commits the user's turn; before a session is ready the
commit waits, so that it follows the held audio.
"""

from __future__ import annotations

from collections.abc import Callable

from realtime import events as ev

from .effects import Effect, Send
from .responses import ResponseState, ResponseTracker

__all__ = ["ResponseRequests"]


class ResponseRequests:
    """The ``response.create`` and ``input_audio_buffer.commit`` decisions of one conversation."""

    def __init__(self, responses: ResponseTracker, emit: Callable[[Effect], None]) -> None:
        self._responses = responses
        self._emit = emit
        self.create_due = False  # a response.create waits for the live response to end
        self.commit_due = False  # a turn ended while no session was ready

    def request(self) -> None:
        """Ask for a response: now, or once the live one is done."""
        self._responses.request()
        self._send_create()

    def commit_turn(self, ready: bool) -> None:
        """The user's turn ended (client VAD): commit it and ask for the answer."""
        if not ready:
            # The held audio goes out when a session is ready; its commit must follow it.
            self.commit_due = True
            return
        self.commit_due = False
        self._emit(Send(ev.InputAudioBufferCommit()))
        self.request()

    def session_ready(self) -> None:
        """A session is ready (its held audio sent): a turn that ended meanwhile is committed."""
        if self.commit_due:
            self.commit_turn(ready=True)

    def follow_up(self, response: ResponseState) -> None:
        """One of ``response``'s tool outputs is in: ask for the follow-up once all are."""
        if self._responses.follow_up_due(response):
            self._send_create()

    def response_done(self) -> None:
        """A response ended: a create that waited for it goes out now."""
        if self.create_due:
            self._send_create()

    def barged_in(self) -> None:
        """The user spoke over the assistant: a create never sent is dropped."""
        if self.create_due:
            self.create_due = self._responses.requested = False

    def connection_lost(self) -> None:
        """The socket is gone, and with it what a waiting create was for."""
        self.create_due = False

    def _send_create(self) -> None:
        if self._responses.active is not None:
            self.create_due = True
            return
        self.create_due = False
        self._emit(Send(ev.ResponseCreate()))
