"""An OpenAI-compatible chat completions server for tests: FastAPI on 127.0.0.1.

The real OpenAI service is out of reach here, so this speaks its documented protocol:
``POST /v1/chat/completions`` with a Bearer key, a body of ``model``, ``messages``
(``{role, content}``) and ``temperature``; the answer's ``choices[0].message.content``
and ``usage``; errors as ``{"error": {message, type, code}}`` with the real statuses
(401 ``invalid_api_key``, 404 ``model_not_found``, 400 a malformed body). ``fail_next``
answers the next requests with the given statuses (``Retry-After: 0``) before serving.

Its user is deterministic: ``policy(messages)`` gives the reply from the messages it
receives (the brief in the system message, the observations so far), or an HTTP status
to fail that request with (``Retry-After: 0``). Every request is
kept in ``requests`` (headers and body) for the test to read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.gym_utils import serving

Policy = Callable[[list[dict[str, str]]], "str | int"]
ROLES = frozenset({"system", "user", "assistant"})


def _error(status: int, message: str, code: str, kind: str = "invalid_request_error") -> Any:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


def _overloaded(status: int) -> Any:
    response = _error(status, "The server is overloaded.", "", "server_error")
    response.headers["Retry-After"] = "0"
    return response


def _shape_problem(body: Any) -> str | None:
    """What is wrong with a chat completions request body (None: it is well formed)."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' must be a non-empty string"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"messages[{i}].role must be system, user or assistant"
        if not isinstance(message.get("content"), str):
            return f"messages[{i}].content must be a string"
    temperature = body.get("temperature", 1)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        return "'temperature' must be a number in 0..2"
    return None


@dataclass
class FakeChat:
    """The server's state: its key, its models, its user, what it received."""

    policy: Policy
    key: str = "test-key"
    models: tuple[str, ...] = ("sim-user-1",)
    fail_next: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    answered: int = 0
    """Requests answered with a completion (200)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> Any:
            try:
                body = await request.json()
            except ValueError:
                body = None
            with self._lock:
                self.requests.append({"headers": dict(request.headers), "body": body})
                failure = self.fail_next.pop(0) if self.fail_next else None
            if failure is not None:
                return _overloaded(failure)
            if request.headers.get("authorization") != f"Bearer {self.key}":
                return _error(401, "Incorrect API key provided.", "invalid_api_key")
            problem = _shape_problem(body)
            if problem is not None:
                return _error(400, problem, "invalid_request")
            if body["model"] not in self.models:
                message = f"The model `{body['model']}` does not exist or you do not have access."
                return _error(404, message, "model_not_found")
            content = self.policy(body["messages"])
            if isinstance(content, int):
                return _overloaded(content)
            with self._lock:
                self.answered += 1
            prompt = sum(len(m["content"].split()) for m in body["messages"])
            completion = len(content.split())
            return {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }

        @app.post("/not-chat/v1/chat/completions")
        async def not_a_chat_completion() -> Any:
            return {"status": "ok"}  # a 200 from some other service

        return app

    def conversations(self) -> list[list[dict[str, str]]]:
        """The messages of every well-formed request that carried a brief (not the check)."""
        with self._lock:
            bodies = [r["body"] for r in self.requests if _shape_problem(r["body"]) is None]
        return [b["messages"] for b in bodies if b["messages"][0]["role"] == "system"]


@contextmanager
def chat_server(chat: FakeChat) -> Iterator[str]:
    """``chat`` under uvicorn on 127.0.0.1; yields the API's base URL (``.../v1``)."""
    with serving(chat.app()) as url:
        yield f"{url}/v1"
