"""The GLM-Realtime wire protocol: typed events, audio packing, the connection.

This package knows nothing of graphs or sessions; it is what they are built on::

    from realtime import SessionConfig, SessionUpdate, connect

    async with connect(url, api_key=key) as conn:
        await conn.send(SessionUpdate(session=SessionConfig()))
        async for event in conn:
            print(event.type)
"""

from realtime.audio import DownlinkDecoder, UplinkPacker
from realtime.connection import DEFAULT_URL, Connection, connect
from realtime.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    Disposition,
    FrameTooLarge,
    HandshakeRejected,
    IdleTimeout,
    ProtocolViolation,
    RealtimeError,
    ServerError,
    classify,
)
from realtime.events import InvalidEvent, UnknownEvent, parse_client_event, parse_server_event
from realtime.session import SessionConfig

__all__ = [
    "DEFAULT_URL",
    "AuthenticationError",
    "ConfigError",
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Disposition",
    "DownlinkDecoder",
    "FrameTooLarge",
    "HandshakeRejected",
    "IdleTimeout",
    "InvalidEvent",
    "ProtocolViolation",
    "RealtimeError",
    "ServerError",
    "SessionConfig",
    "UnknownEvent",
    "UplinkPacker",
    "classify",
    "connect",
    "parse_client_event",
    "parse_server_event",
]
