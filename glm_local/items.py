"""The conversation of one embedded session: its items in order, and what a reply is asked.

GLM chains a conversation's items: each ``conversation.item.created`` names the item before
it. :class:`ConversationLog` keeps that chain, the last turns of both roles (the engine's
history), the tool results no reply has used yet, and the user text the next
``response.create`` answers. It does no I/O: the session sends the events it returns.
"""

from __future__ import annotations

from glm_local.engine import ReplyRequest, ToolResult, Turn
from glm_local.responder import new_id
from realtime import events as ev
from realtime.session import SessionConfig

__all__ = ["ConversationLog"]

_HISTORY_TURNS = 20


class ConversationLog:
    """Items, remembered turns, unused tool results and the user text owed a reply."""

    def __init__(self) -> None:
        self.last_item: str | None = None
        self.pending_user: str | None = None
        """What the user said (or typed) that the next ``response.create`` answers."""
        self.tool_results: list[ToolResult] = []
        self.history: list[Turn] = []

    def remember(self, role: str, text: str) -> None:
        """Keep a turn for the engine's history (the last ``_HISTORY_TURNS``)."""
        self.history.append(Turn("user" if role == "user" else "assistant", text))
        del self.history[:-_HISTORY_TURNS]

    def user_audio(
        self, item_id: str
    ) -> tuple[ev.InputAudioBufferCommitted, ev.ConversationItemCreated]:
        """The committed utterance becomes user item ``item_id``: the two events saying so."""
        previous = self._link(item_id)
        item = ev.ConversationItem(
            id=item_id,
            type="message",
            object="realtime.item",
            status="completed",
            role="user",
            content=[ev.ContentPart(type="input_audio")],
        )
        return (
            ev.InputAudioBufferCommitted(
                type="input_audio_buffer.committed", item_id=item_id, previous_item_id=previous
            ),
            ev.ConversationItemCreated(
                type="conversation.item.created", item=item, previous_item_id=previous
            ),
        )

    def add(self, item: ev.ItemParam) -> ev.ConversationItemCreated:
        """A client's item (a tool output already checked): remembered, chained, confirmed."""
        item_id = item.id or new_id("item")
        if item.type == "message":
            text = " ".join(p.text or p.transcript or "" for p in item.content or ()).strip()
            if item.role == "user":
                self.pending_user = text
            if item.role in ("user", "assistant") and text:
                self.remember("user" if item.role == "user" else "assistant", text)
        previous = self._link(item_id)
        created = ev.ConversationItem(
            id=item_id,
            object="realtime.item",
            status="completed",
            **item.model_dump(exclude={"id", "object", "status"}),
        )
        return ev.ConversationItemCreated(
            type="conversation.item.created", item=created, previous_item_id=previous
        )

    def request(self, input_text: str | None, config: SessionConfig) -> ReplyRequest:
        """What the engine is asked for a reply to ``input_text``; uses up the tool results."""
        request = ReplyRequest(
            user_text=input_text,
            tools=config.tools,
            tool_results=tuple(self.tool_results),
            # input_text is the last remembered turn already: not twice.
            history=tuple(self.history[:-1] if input_text else self.history),
            instructions=config.instructions,
        )
        self.tool_results.clear()
        return request

    def _link(self, item_id: str) -> str | None:
        previous, self.last_item = self.last_item, item_id
        return previous
