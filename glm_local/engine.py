"""What the embedded backend says: the reply engine behind a small protocol.

A :class:`ReplyEngine` turns a :class:`ReplyRequest` (what the user said, or the output of
a tool the engine called, plus the session's tools and history) into a :class:`Reply`:
either text to speak or one tool call. Two engines ship:

* :class:`DeterministicEngine` (the default): rules, no model. It greets back, tells the
  time, calls a registered tool whose name or description matches the request, speaks a
  sentence built from a tool's output, and otherwise repeats what it heard.
* :class:`OpenAIChatEngine`: any OpenAI-compatible ``/chat/completions`` endpoint over
  aiohttp (text only). Failures become a spoken apology and a log line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import aiohttp

from realtime.session import FunctionTool

__all__ = [
    "DeterministicEngine",
    "OpenAIChatEngine",
    "Reply",
    "ReplyEngine",
    "ReplyRequest",
    "ToolCall",
    "ToolResult",
    "Turn",
]

logger = logging.getLogger(__name__)

GREETING = "Hello! How can I help you?"
APOLOGY = "Sorry, I cannot answer right now. Please try again."


@dataclass(frozen=True)
class ToolCall:
    """The engine asks the client to run a tool."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """A tool the engine called, and what the client sent back for it."""

    name: str
    arguments: dict[str, Any]
    output: str
    call_id: str = ""


@dataclass(frozen=True)
class Turn:
    """One earlier turn of the conversation."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class ReplyRequest:
    """Everything an engine may use to answer.

    ``user_text`` is the latest user transcript (None when the response is for tool
    outputs or there was no user input); ``tool_results`` the outputs received since the
    engine's tool call.
    """

    user_text: str | None
    tools: tuple[FunctionTool, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    history: tuple[Turn, ...] = ()
    instructions: str | None = None


@dataclass(frozen=True)
class Reply:
    """Text to speak, or a tool to call (then ``text`` is empty)."""

    text: str = ""
    tool_call: ToolCall | None = None


class ReplyEngine(Protocol):
    """Produces the assistant's next reply."""

    async def reply(self, request: ReplyRequest) -> Reply:
        """Answer ``request``; must not raise for ordinary failures (speak an apology)."""
        ...


# --------------------------------------------------------------------- deterministic

_WORD = re.compile(r"[a-z0-9']+")
_GREETINGS = frozenset({"hello", "hi", "hey", "hallo", "greetings"})
_STOPWORD_TEXT = """a an and are as at be by can current do does for from get give how i in is it
its me my now of on or please set show tell that the this to what what's whats when where which
who will with you your like about local"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_PLACE = re.compile(r"\b(?:in|at|for)\s+([a-z][a-z' -]*)$")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _keywords(tool: FunctionTool) -> tuple[set[str], set[str]]:
    """(words of the name, words of the description), without stop words."""
    name = {w for w in re.split(r"[_\-\s]+", tool.name.lower()) if w and w not in _STOPWORDS}
    description = {w for w in _words(tool.description) if len(w) > 2 and w not in _STOPWORDS}
    return name, description


def _match_tool(text: str, tools: Sequence[FunctionTool]) -> FunctionTool | None:
    """The tool whose name (best) or description shares a content word with ``text``."""
    words = {w for w in _words(text) if w not in _STOPWORDS}
    best: tuple[int, FunctionTool] | None = None
    for tool in tools:
        name, description = _keywords(tool)
        score = 2 * len(words & name) + len(words & description)
        if score and (best is None or score > best[0]):
            best = (score, tool)
    return None if best is None else best[1]


def _place(text: str) -> str | None:
    """ "Paris" from "what's the weather in paris" (title-cased)."""
    cleaned = " ".join(_words(text))
    match = _PLACE.search(cleaned)
    if not match:
        return None
    place = match.group(1).strip()
    return place.title() if place else None


def tool_arguments(tool: FunctionTool, text: str) -> dict[str, Any]:
    """Arguments for ``tool`` taken from the request ``text``.

    A schema with one required string parameter (or one string property) gets the place
    named after "in"/"at"/"for", else the whole request; other schemas get nothing.
    """
    schema = tool.parameters or {}
    properties = schema.get("properties") or {}
    required = [p for p in schema.get("required") or [] if p in properties]
    strings = [p for p, spec in properties.items() if (spec or {}).get("type") == "string"]
    if len(required) == 1 and (properties[required[0]] or {}).get("type") == "string":
        target = required[0]
    elif not required and len(strings) == 1:
        target = strings[0]
    else:
        return {}
    return {target: _place(text) or text.strip()}


def _output_text(output: str) -> str:
    """The readable part of a tool output (JSON or plain text)."""
    try:
        value: Any = json.loads(output)
    except ValueError:
        return output.strip()
    if isinstance(value, dict):
        if value.get("success") is False:
            return f"the tool failed: {value.get('error', 'no reason given')}"
        for key in ("content", "result", "output", "text"):
            inner = value.get(key)
            if isinstance(inner, str):
                return inner.strip()
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, ensure_ascii=False)


def _speakable(text: str) -> str:
    return text.replace("_", " ").strip().rstrip(".")


class DeterministicEngine:
    """Rule-based replies; the same input always gives the same output."""

    def __init__(self, clock: Callable[[], datetime] = datetime.now) -> None:
        self.clock = clock

    async def reply(self, request: ReplyRequest) -> Reply:
        if request.tool_results:
            parts = [
                f"{_speakable(r.name)} says: {_speakable(_output_text(r.output))}."
                for r in request.tool_results
            ]
            return Reply(" ".join(parts))
        text = (request.user_text or "").strip()
        if not text:
            return Reply(GREETING if request.user_text is None else "Sorry, I did not hear you.")
        words = _words(text)
        if "time" in words and ("what" in words or "tell" in words):
            return Reply(f"It is {self.clock():%H:%M}.")
        if words and words[0] in _GREETINGS or (set(words[:2]) & _GREETINGS and len(words) <= 4):
            return Reply(GREETING)
        tool = _match_tool(text, request.tools)
        if tool is not None:
            return Reply(tool_call=ToolCall(tool.name, tool_arguments(tool, text)))
        return Reply(f"You said: {text.rstrip('.?! ')}.")


# ------------------------------------------------------------------------ openai


@dataclass
class OpenAIChatEngine:
    """Replies from an OpenAI-compatible ``/chat/completions`` endpoint (text only).

    Args:
        base_url: e.g. ``http://127.0.0.1:8080/v1`` (``/chat/completions`` is appended).
        model: the model name the endpoint expects.
        api_key: sent as ``Authorization: Bearer``; optional for local endpoints.
        timeout_s: total time allowed for one request.
    """

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 20.0
    max_tokens: int = 200

    async def reply(self, request: ReplyRequest) -> Reply:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(request),
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        if request.tools and not request.tool_results:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = self.base_url.rstrip("/") + "/chat/completions"
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, json=body, headers=headers) as resp,
            ):
                if resp.status != 200:
                    detail = (await resp.text())[:200]
                    raise RuntimeError(f"HTTP {resp.status}: {detail}")
                data = await resp.json(content_type=None)
            return self._parse(data)
        except (aiohttp.ClientError, TimeoutError, RuntimeError, ValueError, KeyError) as exc:
            logger.warning("chat engine at %s failed: %r", url, exc)
            return Reply(APOLOGY)

    def _messages(self, request: ReplyRequest) -> list[dict[str, Any]]:
        system = request.instructions or "You are a helpful voice assistant. Answer briefly."
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        messages += [{"role": t.role, "content": t.text} for t in request.history]
        if request.user_text:
            messages.append({"role": "user", "content": request.user_text})
        if request.tool_results:
            calls = [
                {
                    "id": r.call_id or f"call_{i}",
                    "type": "function",
                    "function": {"name": r.name, "arguments": json.dumps(r.arguments)},
                }
                for i, r in enumerate(request.tool_results)
            ]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            messages += [
                {"role": "tool", "tool_call_id": c["id"], "content": r.output}
                for c, r in zip(calls, request.tool_results, strict=True)
            ]
        return messages

    @staticmethod
    def _parse(data: Any) -> Reply:
        message = data["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        if calls:
            function = calls[0]["function"]
            raw = function.get("arguments") or "{}"
            arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
            if not isinstance(arguments, dict):
                raise ValueError("tool arguments are not a JSON object")
            return Reply(tool_call=ToolCall(str(function["name"]), arguments))
        content = message.get("content") or ""
        return Reply(str(content).strip() or APOLOGY)
