"""Errors raised by the GLM-Realtime protocol package.

The tree::

    RealtimeError
    ├── ConfigError                 a value the protocol cannot accept (names the field)
    ├── ConnectError                the socket could not be opened (DNS, TCP, TLS, timeout)
    │   └── HandshakeRejected       the server answered the upgrade with an HTTP error
    │       └── AuthenticationError 401/403: bad or expired key
    ├── ConnectionClosed            the socket is closed; ``code`` and ``reason`` say how
    │   ├── ConnectionClosedOK      a normal close (1000/1001)
    │   └── ConnectionClosedError   an abnormal close
    │       └── IdleTimeout         nothing received for ``idle_timeout`` seconds
    ├── ServerError                 an ``error`` event the caller chose to raise (``code``)
    └── ProtocolViolation           a frame we refuse to send or cannot accept
        └── FrameTooLarge           an outbound event over the size budget

:func:`classify` tells a reconnect loop whether trying again can help; :func:`unreachable`
whether a connect failed because nothing answers at the address (its name does not resolve,
or nothing listens there): worth retrying on a socket that once worked, not on a first one.
"""

from __future__ import annotations

import enum
import errno
import socket

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Disposition",
    "FrameTooLarge",
    "HandshakeRejected",
    "IdleTimeout",
    "ProtocolViolation",
    "RealtimeError",
    "ServerError",
    "classify",
    "unreachable",
    "FATAL_SERVER_CODES",
    "FATAL_CLOSE_CODES",
]

# Platform codes (spec/glm-api-errors): 1000-1005 authentication, 1113 in arrears,
# 1220 no access to the API. `downstream_reconnect_exceeded` is the realtime gateway
# giving up on a session it cannot serve (no realtime permission or a malformed session):
# a retry with the same key and session meets the same answer.
FATAL_SERVER_CODES: frozenset[str] = frozenset(
    {
        "1000",
        "1001",
        "1002",
        "1003",
        "1004",
        "1005",
        "1113",
        "1220",
        "downstream_reconnect_exceeded",
    }
)
# 1003 "unsupported data": the gateway's answer to a model name it does not serve.
FATAL_CLOSE_CODES: frozenset[int] = frozenset({1003})


class RealtimeError(Exception):
    """Base class of every error this package raises."""


class ConfigError(RealtimeError, ValueError):
    """A configuration value is invalid; the message names the field and what is allowed."""


class ConnectError(RealtimeError):
    """The websocket could not be opened."""


class HandshakeRejected(ConnectError):
    """The server refused the websocket upgrade with an HTTP status."""

    def __init__(self, status: int, body: str = "") -> None:
        self.status = status
        self.body = body
        detail = f": {body}" if body else ""
        super().__init__(f"server refused the websocket handshake with HTTP {status}{detail}")


class AuthenticationError(HandshakeRejected):
    """HTTP 401/403 at the handshake: the key or token is wrong, expired or not allowed."""


class ConnectionClosed(RealtimeError):
    """The connection is closed."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.code is None:
            return "connection closed without a close frame"
        return f"connection closed with code {self.code}" + (
            f" ({self.reason})" if self.reason else ""
        )


class ConnectionClosedOK(ConnectionClosed):
    """The peer closed normally."""


class ConnectionClosedError(ConnectionClosed):
    """The connection ended abnormally."""


class IdleTimeout(ConnectionClosedError):
    """Nothing arrived within the inbound idle timeout (GLM heartbeats every 30 s)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(None, f"no frame received for {seconds:g} s")

    def _describe(self) -> str:
        return f"connection idle: {self.reason}"


class ServerError(RealtimeError):
    """An ``error`` event from the server, raised by a caller that cannot go on."""

    def __init__(self, code: str | None, message: str, error_type: str | None = None) -> None:
        self.code = code
        self.message = message
        self.error_type = error_type
        super().__init__(f"server error {code or '(no code)'}: {message}")


class ProtocolViolation(RealtimeError):
    """A frame breaks the protocol or its limits."""


class FrameTooLarge(ProtocolViolation):
    """An outbound event is larger than the connection's size budget; nothing was sent."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"event of {size} bytes exceeds the {limit}-byte frame budget")


class Disposition(enum.Enum):
    """What a reconnect loop should do after an error."""

    RETRY = "retry"
    FATAL = "fatal"


def classify(exc: BaseException) -> Disposition:
    """Say whether reconnecting can help after ``exc``.

    Authentication and permission failures, invalid configuration and the fatal GLM codes
    are final; network trouble, abnormal closes, idle timeouts and server hiccups are not.
    """
    match exc:
        case AuthenticationError() | ConfigError():
            return Disposition.FATAL
        case HandshakeRejected(status=status):
            # 4xx other than rate limits means the request itself is wrong.
            if 400 <= status < 500 and status not in (408, 429):
                return Disposition.FATAL
            return Disposition.RETRY
        case ServerError(code=code):
            return Disposition.FATAL if code in FATAL_SERVER_CODES else Disposition.RETRY
        case ConnectionClosed(code=code) if code in FATAL_CLOSE_CODES:
            return Disposition.FATAL
        case _:
            return Disposition.RETRY


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is a connect that found nothing at the address: the host name does
    not resolve (no network, or a wrong host), or the connection was refused (nothing
    listens on that port). A timeout or a reset is not: the peer may just be slow.
    """
    if not isinstance(exc, ConnectError) or isinstance(exc, HandshakeRejected):
        return False
    cause = exc.__cause__
    if isinstance(cause, socket.gaierror):
        return True
    return isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
