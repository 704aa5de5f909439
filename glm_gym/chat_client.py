"""A small client of an OpenAI-compatible chat completions endpoint (the caller model).

``POST {base_url}/chat/completions`` with ``{model, messages, temperature, seed}``; the
answer's ``choices[0].message.content`` is the reply and ``usage`` is counted. httpx only
(the gym extra already has it), not the openai package.

Errors: the ``CallerError`` tree of ``glm_gym.callers`` (config errors are never retried;
connection errors, timeouts, 408/409/429 and 5xx are, with backoff and Retry-After).

The key (``OPENAI_API_KEY``) goes only into the Authorization header; it is never logged,
never in a message, never in a report.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import httpx

from glm_gym.callers import CallerConfigError, CallerUnavailable
from glm_gym.http_retry import retry_after_s
from realtime.lifecycle import StartClose

__all__ = ["ChatClient", "Usage"]

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_S = 0.5  # first retry; doubles each time, with jitter
MAX_DELAY_S = 30.0  # longest wait before a retry, Retry-After included
MESSAGE_CHARS = 200  # of the endpoint's own error message, quoted in ours


@dataclass
class Usage:
    """Tokens and requests spent, summed over every answer (``usage`` of each)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0


def _error_message(response: httpx.Response) -> tuple[str, str]:
    """The endpoint's own error ``(message, code)`` from an OpenAI-style error body."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:MESSAGE_CHARS], ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message, code = str(error.get("message") or ""), str(error.get("code") or "")
    elif isinstance(body, dict) and "detail" in body:  # FastAPI-style servers
        message, code = str(body["detail"]), ""
    else:
        message, code = str(error or body), ""
    return " ".join(message.split())[:MESSAGE_CHARS], code


class ChatClient(StartClose):
    """One connection pool to ``base_url``, shared by every conversation of a run.

    An async context manager; ``complete`` is safe to call concurrently. ``retries`` is
    how many times a failed request is sent again (0: once only).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        temperature: float = 0.0,
        retries: int = 4,
        timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature = temperature
        self.retries = retries
        self.usage = Usage()
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._http: httpx.AsyncClient | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    async def start(self) -> None:
        """Open the connection pool (``async with`` calls it)."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self._timeout_s, connect=min(10.0, self._timeout_s)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    async def close(self) -> None:
        """Close the pool; idempotent."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def check(self) -> None:
        """One tiny completion: the URL, the key and the model work (else CallerError)."""
        await self.complete(
            [{"role": "user", "content": "Connection check: answer with the word ready."}]
        )

    async def complete(self, messages: list[dict[str, str]], *, seed: int | None = None) -> str:
        """The model's reply to ``messages`` ("" when it sent no text)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
        }
        if seed is not None:
            body["seed"] = seed
        response = await self._post(body)
        return self._content(response)

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        if self._http is None:
            raise RuntimeError("ChatClient is not open: use it as an async context manager")
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self._http.post(self.endpoint, json=body)
            except httpx.InvalidURL as exc:
                message = f"caller URL {self.base_url!r} is not valid: {exc}"
                raise CallerConfigError(message) from None
            except httpx.TransportError as exc:
                if last:
                    raise CallerUnavailable(
                        f"cannot reach the caller model at {self.endpoint} after "
                        f"{attempt + 1} tries ({type(exc).__name__}: {exc or 'no detail'})"
                    ) from None
                await self._backoff(attempt, None, f"{type(exc).__name__}")
                continue
            if response.status_code < 300:
                return response
            if response.status_code not in RETRY_STATUSES:
                raise self._refusal(response)
            if last:
                message, _ = _error_message(response)
                raise CallerUnavailable(
                    f"the caller model at {self.endpoint} answered {response.status_code} "
                    f"{attempt + 1} times ({message or response.reason_phrase})"
                )
            await self._backoff(
                attempt, retry_after_s(response, MAX_DELAY_S), str(response.status_code)
            )
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _backoff(self, attempt: int, retry_after_s: float | None, why: str) -> None:
        self.usage.retries += 1
        delay = retry_after_s
        if delay is None:
            delay = min(BACKOFF_S * 2**attempt, MAX_DELAY_S) * random.uniform(0.8, 1.2)
        logger.warning(
            "caller model at %s: %s; try %d of %d in %.1f s",
            self.base_url, why, attempt + 2, self.retries + 1, delay,
        )  # fmt: skip
        await asyncio.sleep(delay)

    def _refusal(self, response: httpx.Response) -> CallerConfigError:
        status = response.status_code
        message, code = _error_message(response)
        said = f"{status}: {message}" if message else str(status)
        if status in (401, 403):
            return CallerConfigError(
                f"the caller model's endpoint {self.base_url} refused the key ({said}); "
                "set OPENAI_API_KEY to a key it accepts"
            )
        if code == "model_not_found" or (status == 404 and "model" in message.casefold()):
            return CallerConfigError(
                f"the endpoint {self.base_url} has no model {self.model!r} ({said}); "
                "pass one it serves with --caller-model"
            )
        if status in (404, 405):
            return CallerConfigError(
                f"{self.endpoint} is not a chat completions endpoint ({said}); --caller-url "
                "is the API's base URL, for example https://api.openai.com/v1"
            )
        return CallerConfigError(f"the caller model's endpoint refused the request ({said})")

    def _content(self, response: httpx.Response) -> str:
        try:
            body = response.json()
            message = body["choices"][0]["message"]
            content = message.get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            text = " ".join(response.text.split())[:80]
            raise CallerConfigError(
                f"{self.endpoint} answered {response.status_code} with a body that is not a "
                f"chat completion (no choices[0].message): {text!r}"
            ) from None
        usage = body.get("usage") if isinstance(body, dict) else None
        self.usage.requests += 1
        if isinstance(usage, dict):
            self.usage.prompt_tokens += _int(usage.get("prompt_tokens"))
            self.usage.completion_tokens += _int(usage.get("completion_tokens"))
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
