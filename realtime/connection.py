"""One websocket to GLM-Realtime: typed events out, typed events in.

Usage::

    async with connect(url, api_key=key) as conn:
        await conn.send(SessionUpdate(session=SessionConfig()))
        async for event in conn:
            ...

Concurrency: one task may iterate/``recv`` while others ``send``. ``recv`` is cancel-safe
(cancelling it loses no frame), so it can sit under a timeout. Iteration ends quietly on a
normal close and raises :class:`~realtime.errors.ConnectionClosedError` on an abnormal
one. Nothing is opened until the ``connect`` object is awaited or entered.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from realtime.auth import make_jwt
from realtime.client_events import ClientEventBase, audio_append_json
from realtime.compat import TIMEOUT_ERRORS, timeout
from realtime.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    FrameTooLarge,
    HandshakeRejected,
    IdleTimeout,
)
from realtime.events import InvalidEvent, ServerEvent, describe, parse_server_event
from realtime.logs import wire_logger

__all__ = ["DEFAULT_URL", "Connection", "connect"]

DEFAULT_URL = "wss://open.bigmodel.cn/api/paas/v4/realtime"
DEFAULT_IDLE_TIMEOUT = 90.0  # GLM heartbeats every 30 s: three missed beats is dead.
DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
# What a connect that reached no websocket raises: a socket error (refused, reset, no route),
# or the handshake's open_timeout, which on 3.10 is asyncio.TimeoutError and no OSError.
_UNREACHED: tuple[type[BaseException], ...] = (OSError, *TIMEOUT_ERRORS)

logger = logging.getLogger("realtime.connection")


_wire_logger = wire_logger("realtime.websockets")


class Connection:
    """An open GLM-Realtime websocket. Made by :func:`connect`, not directly."""

    def __init__(
        self,
        ws: ClientConnection,
        *,
        url: str,
        idle_timeout: float | None,
        max_frame_bytes: int,
        handshake_s: float,
    ) -> None:
        self._ws = ws
        self.url = url
        self.idle_timeout = idle_timeout
        self.max_frame_bytes = max_frame_bytes
        self.handshake_s = handshake_s
        """Seconds the TCP + TLS + websocket handshake took."""

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Connection {self.url} {state}>"

    @property
    def closed(self) -> bool:
        """True once the websocket is closed or closing."""
        return self._ws.state.name in ("CLOSING", "CLOSED")

    @property
    def close_code(self) -> int | None:
        """The close code, once closed."""
        return self._ws.close_code

    async def send(self, event: ClientEventBase) -> None:
        """Send one event; raises FrameTooLarge (nothing sent) or ConnectionClosed."""
        await self._send_text(event.to_json().encode(), describe(event))

    async def send_audio(self, packet: bytes) -> None:
        """Send one ``input_audio_buffer.append`` carrying ``packet`` (same size budget).

        The same event as ``send(InputAudioBufferAppend(audio=b64encode(packet)))``, made
        without a model: this runs ten times a second per session.
        """
        await self._send_text(audio_append_json(packet), "input_audio_buffer.append")

    async def send_raw(self, payload: Mapping[str, Any]) -> None:
        """Send a JSON object the models do not cover (same size budget)."""
        await self._send_text(json.dumps(payload).encode(), str(payload.get("type", "raw")))

    async def _send_text(self, data: bytes, what: str) -> None:
        """Send UTF-8 JSON as a text frame (encoded once: websockets takes the bytes as is)."""
        size = len(data)
        if size > self.max_frame_bytes:
            raise FrameTooLarge(size, self.max_frame_bytes)
        try:
            await self._ws.send(data, text=True)
        except websockets.ConnectionClosed as exc:
            raise _closed(exc) from exc
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("> %s (%d bytes)", what, size)

    async def recv(self) -> ServerEvent:
        """The next server event. Cancel-safe.

        Raises:
            IdleTimeout: nothing arrived for ``idle_timeout`` seconds (the socket is closed).
            ConnectionClosedOK / ConnectionClosedError: the socket closed.
        """
        try:
            if self.idle_timeout is None:
                frame = await self._ws.recv()
            else:
                async with timeout(self.idle_timeout):
                    frame = await self._ws.recv()
        except TIMEOUT_ERRORS as exc:
            logger.warning("! no frame for %.1f s, closing", self.idle_timeout or 0)
            await self._ws.close(1011, "idle timeout")
            raise IdleTimeout(self.idle_timeout or 0.0) from exc
        except websockets.ConnectionClosed as exc:
            raise _closed(exc) from exc
        if isinstance(frame, bytes):
            # GLM speaks JSON text only; a binary frame is reported, not fatal.
            return InvalidEvent(
                type=None,
                raw=frame,
                reason=f"binary frame of {len(frame)} bytes; expected JSON text",
            )
        event = parse_server_event(frame)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("< %s (%d chars)", describe(event), len(frame))
        return event

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> ServerEvent:
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket and wait for the closing handshake."""
        await self._ws.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the socket is fully closed."""
        await self._ws.wait_closed()


def _closed(exc: websockets.ConnectionClosed) -> ConnectionClosed:
    frame = exc.rcvd or exc.sent
    code = frame.code if frame else None
    reason = frame.reason if frame else ""
    if isinstance(exc, websockets.ConnectionClosedOK):
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)


class connect:  # noqa: N801 - named like the websockets entry point it wraps
    """Open a GLM-Realtime connection; await it or use it as an async context manager.

    Args:
        url: ``wss://open.bigmodel.cn/api/paas/v4/realtime`` or a local ``ws://`` server.
        api_key: sent as ``Authorization: Bearer <api_key>``.
        jwt_secret: an ``{id}.{secret}`` API key used to sign a short-lived JWT instead.
        jwt_ttl: lifetime of that JWT in seconds.
        unauthenticated: send no ``Authorization`` header at all (a local server that
            checks none, like ``glm-realtime serve`` without ``--token``); then neither
            ``api_key`` nor ``jwt_secret`` may be given.
        idle_timeout: seconds without any inbound frame before the connection is declared
            dead (``None`` disables it).
        open_timeout: seconds allowed for the handshake.
        max_frame_bytes: size budget for one frame in either direction.
        ping_interval: websocket pings; off by default because GLM's heartbeat plus the
            idle timeout is the documented liveness signal, and strict pings closed healthy
            sessions in peer SDKs.
        close_timeout: seconds :meth:`Connection.close` waits for the peer's half of the
            closing handshake before dropping the TCP connection.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        jwt_secret: str | None = None,
        jwt_ttl: float = 3600.0,
        unauthenticated: bool = False,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        open_timeout: float = 10.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        ping_interval: float | None = None,
        close_timeout: float = 10.0,
    ) -> None:
        if unauthenticated:
            if api_key is not None or jwt_secret is not None:
                raise ConfigError("unauthenticated=True takes neither api_key nor jwt_secret")
        elif (api_key is None) == (jwt_secret is None):
            raise ConfigError(
                "pass exactly one of api_key or jwt_secret (or unauthenticated=True for a "
                "server that checks no credential)"
            )
        elif not (api_key or jwt_secret or "").strip():
            raise ConfigError("the API key is empty")
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ConfigError(f"url must be a ws:// or wss:// URL (got {parts.scheme!r} scheme)")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ConfigError(f"idle_timeout must be positive seconds or None (got {idle_timeout})")
        if max_frame_bytes <= 0:
            raise ConfigError(f"max_frame_bytes must be positive (got {max_frame_bytes})")
        self.url = url
        self._api_key = api_key
        self._jwt_secret = jwt_secret
        self._jwt_ttl = jwt_ttl
        self._idle_timeout = idle_timeout
        self._open_timeout = open_timeout
        self._max_frame_bytes = max_frame_bytes
        self._ping_interval = ping_interval
        self._close_timeout = close_timeout
        self._connection: Connection | None = None

    def __repr__(self) -> str:
        auth = "jwt" if self._jwt_secret is not None else "api_key" if self._api_key else "none"
        return f"<connect {self.url} auth={auth}>"

    def _headers(self) -> dict[str, str]:
        if self._jwt_secret is not None:
            return {"Authorization": f"Bearer {make_jwt(self._jwt_secret, self._jwt_ttl)}"}
        if self._api_key is not None:
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    async def _open(self) -> Connection:
        started = time.monotonic()
        logger.info("= connecting to %s", self.url)
        try:
            ws = await websockets.connect(
                self.url,
                additional_headers=self._headers(),
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                close_timeout=self._close_timeout,
                ping_timeout=None if self._ping_interval is None else self._ping_interval * 3,
                max_size=self._max_frame_bytes,
                logger=_wire_logger,
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode(errors="replace")[:200] if exc.response.body else ""
            error_cls = AuthenticationError if status in (401, 403) else HandshakeRejected
            raise error_cls(status, body) from exc
        except InvalidURI as exc:
            raise ConfigError(f"invalid url: {exc}") from exc
        except InvalidHandshake as exc:
            raise ConnectError(f"websocket handshake failed: {exc}") from exc
        except socket.gaierror as exc:
            host = urlsplit(self.url).hostname
            raise ConnectError(
                f"cannot resolve {host} ({exc.strerror}): no network, or a wrong host in {self.url}"
            ) from exc
        except _UNREACHED as exc:
            raise ConnectError(f"cannot reach {self.url}: {exc!r}") from exc
        handshake_s = time.monotonic() - started
        logger.info("= connected to %s in %.0f ms", self.url, handshake_s * 1000)
        return Connection(
            ws,
            url=self.url,
            idle_timeout=self._idle_timeout,
            max_frame_bytes=self._max_frame_bytes,
            handshake_s=handshake_s,
        )

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close(1000 if exc is None else 1011)
