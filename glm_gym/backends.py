"""Where the conversations run: the embedded backend, or GLM with a key.

A :class:`Backend` is an async context manager shared by every environment of a process.
It gives each conversation the ``glm_v2v_python`` properties that reach it
(:meth:`Backend.node_properties`), a session slot (:meth:`Backend.session`; GLM accounts
cap concurrent sessions per key, so :class:`GlmBackend` queues beyond its cap) and the
caller's voice (:attr:`Backend.voice`, one TTS and cache for all).

* :class:`LocalBackend` starts one :class:`~glm_local.server.LocalRealtimeServer` on
  127.0.0.1 for all its environments. Unless ``realtime``, the server's output pacing
  is off (``pace=0``) and the conversations run on the virtual clock.
* :class:`GlmBackend` talks to GLM-Realtime at ``url`` with ``api_key``, always in real
  time. The key is never logged or put in ``info``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any, Literal

from glm_gym.caller import CallerVoice
from glm_gym.records import Clock
from realtime.errors import ConfigError
from realtime.lifecycle import StartClose

__all__ = ["Backend", "GlmBackend", "LocalBackend"]

GLM_URL = "wss://open.bigmodel.cn/api/paas/v4/realtime"


class Backend(StartClose):
    """Base of the backends; see the module docstring."""

    name: str = "base"
    virtual_clock: bool = False

    def __init__(self, max_sessions: int | None, voice: CallerVoice | None) -> None:
        if max_sessions is not None and max_sessions < 1:
            raise ConfigError(f"max_sessions must be at least 1, got {max_sessions}")
        self.max_sessions = max_sessions
        self.voice = voice or CallerVoice()
        self._slots = asyncio.Semaphore(max_sessions) if max_sessions else None
        self.live_sessions = 0
        self.waiting_sessions = 0
        self.sessions_opened = 0

    @property
    def clock(self) -> Clock:
        """What the conversations' times are measured on: the audio timeline when
        ``virtual_clock`` (faster than real time), else the wall clock."""
        return "virtual" if self.virtual_clock else "wall"

    def node_properties(self) -> dict[str, Any]:
        """Properties of the ``glm_v2v_python`` node that point it at this backend."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the backend is, for ``info`` and reports (never the key)."""
        return {
            "backend": self.name,
            "clock": self.clock,
            "caller_voice": self.voice.engine,
        }

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """Hold one session slot (waits in line while the cap is reached)."""
        self.waiting_sessions += 1
        try:
            if self._slots is not None:
                await self._slots.acquire()
        finally:
            self.waiting_sessions -= 1
        self.live_sessions += 1
        self.sessions_opened += 1
        try:
            yield
        finally:
            self.live_sessions -= 1
            if self._slots is not None:
                self._slots.release()

    async def start(self) -> None:
        """Start what the backend needs."""

    async def close(self) -> None:
        """Stop it; idempotent."""


class LocalBackend(Backend):
    """One embedded server on 127.0.0.1 shared by every environment of the process.

    The server is configured for the gym: no idle timeout (a call waits silently between
    steps on the virtual clock) and room for every session the backend admits.

    Args:
        realtime: pace the server's audio at 1x and the caller at wall-clock speed.
        tts: the server's synthesizer (``espeak`` or ``piper``).
        asr_processes: the server's ASR worker processes (0: in this process).
        engine: the server's reply engine (default: the deterministic engine).
        voice: the caller's voice (default: piper if installed, else espeak).
        max_sessions: cap on live conversations (None: no cap).
    """

    name = "local"

    def __init__(
        self,
        *,
        realtime: bool = False,
        tts: Literal["espeak", "piper"] = "espeak",
        asr_processes: int = 0,
        engine: Any = None,
        voice: CallerVoice | None = None,
        max_sessions: int | None = None,
    ) -> None:
        super().__init__(max_sessions, voice)
        self.realtime = realtime
        self.virtual_clock = not realtime
        self._token = secrets.token_urlsafe(16)
        self._options: dict[str, Any] = {
            "tts": tts,
            "asr_processes": asr_processes,
            "engine": engine,
        }
        self.server: Any = None

    async def start(self) -> None:
        from glm_local.server import DEFAULT_MAX_CONNECTIONS, LocalRealtimeServer

        if self.server is not None:
            raise RuntimeError("the local backend is already started")
        if self.realtime and self.max_sessions is None:
            # At real-time pace the server admits only what it serves in real time; envs
            # beyond that wait in line here instead of being refused there.
            from glm_local.admission import real_time_capacity

            self.max_sessions = real_time_capacity(self._options["asr_processes"])
            self._slots = asyncio.Semaphore(self.max_sessions)
        server = LocalRealtimeServer(
            "127.0.0.1",
            0,
            self._token,
            pace=1.0 if self.realtime else 0.0,
            heartbeat_s=30.0,
            # On the virtual clock a call is silent between steps for as long as the agent
            # thinks; abandoned calls are closed by their owner (the gym server's TTL).
            idle_timeout_s=None,
            # Every env of the process is admitted: the cap is max_sessions, queued above.
            max_connections=max(DEFAULT_MAX_CONNECTIONS, self.max_sessions or 0),
            max_sessions=self.max_sessions,
            **self._options,
        )
        await server.start()
        self.server = server

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.close()

    def node_properties(self) -> dict[str, Any]:
        if self.server is None:
            raise RuntimeError("the local backend is not started (use 'async with')")
        return {"base_uri": self.server.base_uri, "path": self.server.path, "api_key": self._token}

    def describe(self) -> dict[str, Any]:
        engine = self.server.engine if self.server is not None else self._options["engine"]
        return {
            **super().describe(),
            "engine": type(engine).__name__ if engine is not None else "DeterministicEngine",
        }


class GlmBackend(Backend):
    """GLM-Realtime with a key; at most ``max_sessions`` at once, the rest wait in line.

    Args:
        api_key: the account's key (``id.secret``).
        url: the websocket URL.
        max_sessions: the account's concurrent-session cap (GLM accounts allow 5-20).
        auth: ``api_key`` sends the key, ``jwt`` signs short-lived tokens with it.
        voice: the caller's voice (default: piper if installed, else espeak).
    """

    name = "glm"
    virtual_clock = False

    def __init__(
        self,
        *,
        api_key: str,
        url: str = GLM_URL,
        max_sessions: int = 5,
        auth: Literal["api_key", "jwt"] = "api_key",
        voice: CallerVoice | None = None,
    ) -> None:
        if not api_key.strip():
            raise ConfigError("GlmBackend needs an api_key (set GLM_API_KEY)")
        if "/api/" not in url or not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"url must be ws[s]://host/api/..., got {url!r}")
        super().__init__(max_sessions, voice)
        self._api_key = api_key
        self.url = url
        self.auth = auth

    def __repr__(self) -> str:
        return f"<GlmBackend {self.url} max_sessions={self.max_sessions}>"

    def node_properties(self) -> dict[str, Any]:
        base, path = self.url.split("/api/", 1)
        return {
            "base_uri": base,
            "path": "/api/" + path,
            "api_key": self._api_key,
            "auth": self.auth,
        }
