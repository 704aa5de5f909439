"""Who plays the caller in an eval: the scenario's script, or a model given the brief.

A :class:`Caller` is shared by a whole run; ``begin(scenario, seed)`` gives one
conversation's :class:`CallerTurns`, whose ``next_action(observation, info)`` is the ReAct
answer (``Thought: ...`` / ``Action: ...``) to what the environment last said (its
observation and ``info``), or None when the caller has nothing more to do. Both callers
drive the same environment the same way::

    CallerOptions ──open_caller──> ScriptedCaller            the scenario's own lines
                                   ModelCaller(ChatClient)   an OpenAI-compatible model
                                                             playing the brief (simulator.py)

``CallerOptions`` is picklable and never holds a key: the model's key is read from
``OPENAI_API_KEY`` where the caller is opened (a Ray runner gets the driver's in its
environment: :meth:`CallerOptions.key_env`).

Errors of a model caller, drawn as a tree::

    CallerError                  (ValueError: one line naming the cause and the fix)
    ├── CallerConfigError        never retried; the eval stops: bad options, a wrong key
    │                            (401/403), a model the endpoint does not serve, a URL that
    │                            is not a chat completions endpoint, a request it refuses,
    │                            a body that is not a chat completion
    └── CallerUnavailable        still failing after the bounded retries: no connection,
                                 a timeout, 408/409/429 or a 5xx; that conversation's error

This module imports only the standard library (the CLI reads its defaults at import).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from glm_gym.scenarios import Scenario

__all__ = [
    "DEFAULT_MODEL",
    "OPENAI_URL",
    "Caller",
    "CallerConfigError",
    "CallerError",
    "CallerOptions",
    "CallerTurns",
    "CallerUnavailable",
    "ScriptedCaller",
    "open_caller",
]

OPENAI_URL = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_API_KEY"
DEFAULT_MODEL = "gpt-4.1"  # tau2's user simulator
CallerKind = Literal["scripted", "openai"]


class CallerError(ValueError):
    """The caller model could not be used; the message says why and what to change."""


class CallerConfigError(CallerError):
    """Bad options, a wrong key, model, URL or request: retrying would not help."""


class CallerUnavailable(CallerError):
    """The endpoint kept failing (connection, timeout, 429, 5xx) after the retries."""


@dataclass(frozen=True)
class CallerOptions:
    """The caller of a run. ``url`` is the API's base URL (``.../v1``); ``retries`` how
    often a failed request is sent again; ``timeout_s`` per request."""

    kind: CallerKind = "scripted"
    model: str = DEFAULT_MODEL
    url: str = OPENAI_URL
    temperature: float = 0.0
    retries: int = 4
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in ("scripted", "openai"):
            raise CallerConfigError(f"caller must be 'scripted' or 'openai', got {self.kind!r}")
        if not self.model.strip():
            raise CallerConfigError("--caller-model must name a model, got an empty string")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CallerConfigError(
                f"--caller-url must be an http(s) base URL such as {OPENAI_URL}, got {self.url!r}"
            )
        if parts.username or parts.password:
            raise CallerConfigError(
                "--caller-url must not hold credentials: set OPENAI_API_KEY instead"
            )
        if not 0.0 <= self.temperature <= 2.0:
            raise CallerConfigError(f"caller temperature must be 0..2, got {self.temperature}")
        if not 0 <= self.retries <= 10:
            raise CallerConfigError(f"caller retries must be 0..10, got {self.retries}")
        if not self.timeout_s > 0:
            raise CallerConfigError(f"caller timeout must be > 0 s, got {self.timeout_s}")

    @property
    def label(self) -> str:
        """What the report names the caller by: ``scripted`` or ``openai:<model>``."""
        return "scripted" if self.kind == "scripted" else f"openai:{self.model}"

    def key_env(self) -> dict[str, str]:
        """What a process that opens this caller elsewhere (a Ray runner) needs in its
        environment from this one: the model's key, when set (never in the options)."""
        key = os.environ.get(KEY_ENV) if self.kind == "openai" else None
        return {KEY_ENV: key} if key else {}

    def describe(self) -> dict[str, Any]:
        """The report's view of the caller (never a key)."""
        if self.kind == "scripted":
            return {"caller": self.label}
        return {"caller": self.label, "caller_model": self.model, "caller_url": self.url}


class CallerTurns(Protocol):
    """One conversation's caller."""

    async def next_action(self, observation: str, info: dict[str, Any]) -> str | None: ...


class Caller(Protocol):
    """The caller of a run, shared by its conversations."""

    label: str

    def begin(self, scenario: Scenario, seed: int) -> CallerTurns: ...

    def usage(self) -> dict[str, int] | None: ...


class _ScriptTurns:
    def __init__(self, actions: Iterator[str]) -> None:
        self._actions = actions

    async def next_action(self, observation: str, info: dict[str, Any]) -> str | None:
        return next(self._actions, None)


class ScriptedCaller:
    """The scenario's own lines, whatever the assistant says (no model, no network)."""

    label = "scripted"

    def begin(self, scenario: Scenario, seed: int) -> CallerTurns:
        from glm_gym.scripted import scripted_actions

        return _ScriptTurns(iter(scripted_actions(scenario)))

    def usage(self) -> dict[str, int] | None:
        return None


@asynccontextmanager
async def open_caller(
    options: CallerOptions, *, api_key: str | None = None
) -> AsyncIterator[Caller]:
    """The caller ``options`` describe, ready: a model is checked with one tiny request
    (URL, key and model) before any conversation starts, and its client closed after."""
    if options.kind == "scripted":
        yield ScriptedCaller()
        return
    from glm_gym.chat_client import ChatClient
    from glm_gym.simulator import ModelCaller

    client = ChatClient(
        options.url,
        options.model,
        api_key=api_key or os.environ.get(KEY_ENV) or None,
        temperature=options.temperature,
        retries=options.retries,
        timeout_s=options.timeout_s,
    )
    async with client:
        await client.check()
        yield ModelCaller(client, label=options.label)
