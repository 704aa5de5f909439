"""A scripted GLM-Realtime server for tests: a real websockets server on 127.0.0.1.

It checks the ``Authorization`` header (a key, or a JWT signed with the key's secret),
greets like GLM (``heartbeat`` then ``session.created``), validates every client event
against the protocol models (``violations`` lists what failed), and follows one script
per connection: a list of steps such as ``Expect("session.update")``, ``Send(...)``,
``Close(1011)``, ``Stall()`` or ``SendRaw(b"...")``. After its script a connection stays
open, reading, until the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime.auth import verify_jwt
from realtime.compat import timeout
from realtime.events import InvalidEvent, UnknownEvent, parse_client_event

FIXTURES = Path(__file__).parent / "fixtures" / "conversations"
PATH = "/api/paas/v4/realtime"
STEP_TIMEOUT = 10.0  # generous: a test fails on its own assertion long before this


def heartbeat() -> dict[str, Any]:
    return {"type": "heartbeat"}


def session_created(session_id: str = "sess_1") -> dict[str, Any]:
    return {
        "type": "session.created",
        "event_id": f"evt_{session_id}",
        "session": {"id": session_id, "model": "glm-realtime", "input_audio_format": "wav"},
    }


@dataclass
class Expect:
    """Wait for the next client event of ``type`` (events of other types are skipped)."""

    type: str
    count: int = 1


@dataclass
class Send:
    """Send these events (dicts, sent as JSON as they are)."""

    events: Sequence[dict[str, Any]]

    def __init__(self, *events: dict[str, Any]) -> None:
        self.events = events


@dataclass
class SendRaw:
    """Send one frame as is: text, or bytes as a binary frame."""

    data: str | bytes


@dataclass
class Close:
    """Close the websocket with ``code``."""

    code: int = 1000
    reason: str = ""


@dataclass
class Stall:
    """Send nothing more (no heartbeats either); keep reading."""


@dataclass
class Call:
    """Run ``fn(conn)`` for anything the other steps cannot say."""

    fn: Callable[[FakeConnection], Awaitable[None]]


Step = Expect | Send | SendRaw | Close | Stall | Call


@dataclass
class FakeConnection:
    """One accepted connection: what it received and what broke the protocol."""

    ws: ServerConnection
    index: int
    authorization: str | None
    received: list[Any] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    inbox: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def of_type(self, event_type: str) -> list[Any]:
        return [e for e in self.received if getattr(e, "type", None) == event_type]

    async def send(self, *events: dict[str, Any]) -> None:
        for event in events:
            await self.ws.send(json.dumps(event))

    async def wait_received(self, event_type: str, count: int = 1) -> list[Any]:
        """For tests: wait until ``count`` events of ``event_type`` arrived in total.

        Unlike :meth:`expect` this consumes nothing, so it can run beside a script.
        """
        async with timeout(STEP_TIMEOUT), self.arrived:
            await self.arrived.wait_for(
                lambda: len(self.of_type(event_type)) >= count or self.closed.is_set()
            )
        got = self.of_type(event_type)
        if len(got) < count:
            raise AssertionError(f"client left after {len(got)}/{count} {event_type} events")
        return got

    async def expect(self, event_type: str, count: int = 1) -> list[Any]:
        """Script step: wait for ``count`` more client events of ``event_type``."""
        got: list[Any] = []
        async with timeout(STEP_TIMEOUT):
            while len(got) < count:
                event = await self.inbox.get()
                if event is None:
                    raise AssertionError(f"client left while server expected {event_type}")
                if getattr(event, "type", None) == event_type:
                    got.append(event)
        return got


Script = Sequence[Step]


class FakeGLMServer:
    """Serve ``scripts[i]`` to the i-th connection (the last script repeats).

    Args:
        scripts: one list of steps per connection attempt.
        api_key: the key clients must present (as is, or as a JWT signed with it); None:
            any client, with or without ``Authorization`` (a ``serve`` without a token).
        greet: send ``heartbeat`` then ``session.created`` on connect, as GLM does.
        refuse_status: answer every handshake with this HTTP status instead.
        max_size: inbound frame limit (the server closes with 1009 above it).
    """

    def __init__(
        self,
        scripts: Sequence[Script] | None = None,
        *,
        api_key: str | None = "test-id.test-secret",
        greet: bool = True,
        refuse_status: int | None = None,
        max_size: int = 8 * 1024 * 1024,
    ) -> None:
        self.scripts: list[Script] = list(scripts or [[]])
        self.api_key = api_key
        self.greet = greet
        self.refuse_status = refuse_status
        self.max_size = max_size
        self.connections: list[FakeConnection] = []
        self.handshakes = 0
        self._new_connection = asyncio.Condition()
        self._server: Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.url = ""

    @property
    def violations(self) -> list[str]:
        return [v for c in self.connections for v in c.violations]

    async def __aenter__(self) -> FakeGLMServer:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._check_request,
            max_size=self.max_size,
            compression=None,
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}{PATH}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def connection(self, index: int) -> FakeConnection:
        """Wait until the ``index``-th connection (0-based) has been accepted."""
        async with timeout(STEP_TIMEOUT), self._new_connection:
            await self._new_connection.wait_for(lambda: len(self.connections) > index)
        return self.connections[index]

    def _authorized(self, header: str | None) -> bool:
        if self.api_key is None:
            return True
        if header is None or not header.startswith("Bearer "):
            return False
        token = header.removeprefix("Bearer ")
        if token == self.api_key:
            return True
        return verify_jwt(token, self.api_key)

    def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        if request.path.split("?")[0] != PATH:
            return conn.respond(HTTPStatus.NOT_FOUND, "no such path\n")
        if self.refuse_status is not None:
            return Response(self.refuse_status, "refused", Headers(), b"refused by script\n")
        if not self._authorized(request.headers.get("Authorization")):
            body = b'{"error":{"code":"1000","message":"authentication failed"}}'
            return Response(401, "Unauthorized", Headers(), body)
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        fake = FakeConnection(ws, len(self.connections), ws.request.headers.get("Authorization"))
        reader = asyncio.create_task(self._read(fake), name=f"fake-glm:read:{fake.index}")
        self._handlers.add(reader)
        async with self._new_connection:
            self.connections.append(fake)
            self._new_connection.notify_all()
        script = self.scripts[min(fake.index, len(self.scripts) - 1)]
        try:
            if self.greet:
                await fake.send(heartbeat(), session_created(f"sess_{fake.index}"))
            for step in script:
                if await self._run(fake, step):
                    break
            await fake.closed.wait()
        except Exception as exc:  # noqa: BLE001 - report, don't crash the server
            fake.violations.append(f"script step failed: {exc!r}")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._handlers.discard(reader)

    async def _run(self, fake: FakeConnection, step: Step) -> bool:
        """Run one step; True ends the script."""
        match step:
            case Expect(type=event_type, count=count):
                await fake.expect(event_type, count)
            case Send(events=events):
                await fake.send(*events)
            case SendRaw(data=data):
                await fake.ws.send(data)
            case Close(code=code, reason=reason):
                await fake.ws.close(code, reason)
                return True
            case Stall():
                return True
            case Call(fn=fn):
                await fn(fake)
        return False

    async def _read(self, fake: FakeConnection) -> None:
        try:
            async for frame in fake.ws:
                if isinstance(frame, bytes):
                    fake.violations.append(f"binary frame of {len(frame)} bytes")
                    continue
                event = parse_client_event(frame, strict=True)  # our client must be exact
                if isinstance(event, (InvalidEvent, UnknownEvent)):
                    fake.violations.append(repr(event))
                async with fake.arrived:
                    fake.received.append(event)
                    fake.arrived.notify_all()
                fake.inbox.put_nowait(event)
        except ConnectionClosed:
            pass  # either side may close, cleanly or not: the read just ends
        finally:
            fake.inbox.put_nowait(None)
            fake.closed.set()
            async with fake.arrived:
                fake.arrived.notify_all()


def load_conversation(name: str) -> list[dict[str, Any]]:
    """The lines of ``fixtures/conversations/<name>.jsonl``: {"from": ..., "event": ...}."""
    path = FIXTURES / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def conversation_script(name: str) -> list[Step]:
    """A fixture as a script: client lines become Expect, server lines Send.

    The recorded greeting (``heartbeat``, ``session.created``) is left out: the fake
    server sends its own on every connection.
    """
    lines = load_conversation(name)
    greeting = {"heartbeat", "session.created"}
    while lines and lines[0]["from"] == "server" and lines[0]["event"]["type"] in greeting:
        greeting.discard(lines.pop(0)["event"]["type"])
    steps: list[Step] = []
    for line in lines:
        event = line["event"]
        if line["from"] == "client":
            steps.append(Expect(event["type"]))
        else:
            steps.append(Send(event))
    return steps


def server_events(names: Iterable[str]) -> list[dict[str, Any]]:
    """Every server event in the named fixtures."""
    return [
        line["event"]
        for name in names
        for line in load_conversation(name)
        if line["from"] == "server"
    ]
