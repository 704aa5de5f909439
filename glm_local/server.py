"""The embedded backend: a local websocket server that speaks GLM-Realtime.

Usage::

    async with LocalRealtimeServer(port=0, token="secret") as server:
        print(server.url)  # ws://127.0.0.1:PORT/api/paas/v4/realtime
        ...

Each connection is a :class:`~glm_local.session.LocalSession` with its own VAD, recogniser
and conversation; the pocketsphinx language model, the synthesizer and the reply engine
are loaded once and shared. A wrong path gets HTTP 404, a missing or wrong
``Authorization: Bearer`` token 401 (the token, or a GLM-style JWT signed with its
secret, is accepted), a frame over ``max_frame_bytes`` closes the socket with 1009.

Admission: the server serves at most ``max_sessions`` sessions at once; by default, at
real-time pace, :func:`real_time_capacity` (what this machine was measured to serve with
voice-to-voice p95 under 1.5 s), and no limit at ``pace=0`` (tests and evaluation runs, where
nobody waits in real time). One more is refused the way GLM answers over its concurrency
limit: an ``error`` event with code 1302, then close code 1013 (try again later). A session
whose processing runs more than a second behind its audio is logged and counted
(:meth:`LocalRealtimeServer.metrics`).

Budgets: a connection beyond ``max_connections`` gets HTTP 429 with GLM's "too busy"
body (code 1305); one that sends nothing (and is sent nothing but heartbeats) for
``idle_timeout_s`` gets an ``idle_timeout`` error event and a 1000 close; a session reads
at most ``read_ahead_bytes`` ahead of what it has handled (:mod:`glm_local.inbox`).
Nothing starts in ``__init__``; leaving the context closes every socket (1001) and
waits for every session to end.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Literal

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from glm_local.admission import (
    ServerMetrics,
    glm_http_refusal,
    real_time_capacity,
    refuse_session,
)
from glm_local.engine import DeterministicEngine, ReplyEngine
from glm_local.inbox import DEFAULT_READ_AHEAD_BYTES
from glm_local.lag import LAG_REPORT_S
from glm_local.session import LocalSession, SessionResources
from glm_local.speech.asr_processes import MAX_PROCESSES, RecognizerProcesses
from glm_local.speech.recognizers import (
    RecognizerName,
    check_recognizer_installed,
    check_recognizer_name,
    recognizer_factory,
)
from glm_local.threads import BlockingWork
from realtime.auth import verify_jwt
from realtime.errors import ConfigError
from realtime.lifecycle import StartClose
from realtime.logs import wire_logger

if TYPE_CHECKING:
    from glm_local.speech import Recognizer

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_FRAME_BYTES",
    "PATH",
    "LocalRealtimeServer",
]

PATH = "/api/paas/v4/realtime"
DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT_S = 60.0
"""GLM closes a connection that streams nothing after ~8 s; local clients (tests, agents
thinking between turns) pause longer, so the default is more patient."""
DEFAULT_MAX_CONNECTIONS = 256
logger = logging.getLogger(__name__)


_wire_logger = wire_logger("glm_local.websockets")


class LocalRealtimeServer(StartClose):
    """A GLM-Realtime server on offline speech parts; an async context manager.

    Args:
        host: interface to listen on.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        token: when set, clients must send ``Authorization: Bearer <token>`` (or a JWT
            signed with the secret of a ``{id}.{secret}`` token).
        heartbeat_s: seconds between ``heartbeat`` events.
        pace: audio is streamed no faster than ``pace`` x real time; 0 disables pacing.
        tts: ``"espeak"`` (fast, robotic) or ``"piper"`` (natural, needs the piper extra).
        engine: what to answer; default :class:`~glm_local.engine.DeterministicEngine`.
        max_frame_bytes: largest accepted frame; a larger one closes the socket (1009).
        asr_processes: recognise speech in this many worker processes (0: in this process,
            on threads). pocketsphinx holds the GIL, so in-process recognition of concurrent
            sessions shares one core; with workers it uses as many cores as there are
            workers, at ~140 MB (with one recogniser) and ~0.3 s of start-up each.
        asr: the recogniser: ``"pocketsphinx"`` (streaming, light, weak on open speech and
            synthetic voices) or ``"whisper"`` (the whisper extra: 5-10x fewer errors, but
            ~1 s of decoding after each utterance and ~450 MB installed); see
            :mod:`glm_local.speech.recognizers`.
        idle_timeout_s: close a connection after this long with nothing received and
            nothing but heartbeats sent (None: never).
        read_ahead_bytes: most bytes of frames a session holds before it has handled them.
        max_connections: most open websockets; more get HTTP 429 at the handshake.
        max_sessions: most sessions served at once; one more gets error 1302 and close 1013.
            Default: :attr:`capacity` at real-time pace, no limit at ``pace=0``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        *,
        heartbeat_s: float = 30.0,
        pace: float = 1.0,
        tts: Literal["espeak", "piper"] = "espeak",
        engine: ReplyEngine | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        asr_processes: int = 0,
        asr: RecognizerName = "pocketsphinx",
        idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
        read_ahead_bytes: int = DEFAULT_READ_AHEAD_BYTES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_sessions: int | None = None,
    ) -> None:
        if heartbeat_s <= 0:
            raise ConfigError(f"heartbeat_s must be positive, got {heartbeat_s}")
        if idle_timeout_s is not None and not idle_timeout_s > 0:
            raise ConfigError(
                f"idle_timeout_s must be positive or None (never), got {idle_timeout_s}"
            )
        if read_ahead_bytes <= 0:
            raise ConfigError(f"read_ahead_bytes must be positive, got {read_ahead_bytes}")
        if max_connections <= 0:
            raise ConfigError(f"max_connections must be positive, got {max_connections}")
        if max_sessions is not None and (
            not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1
        ):
            raise ConfigError(f"max_sessions must be an int >= 1 or None, got {max_sessions!r}")
        if pace < 0:
            raise ConfigError(f"pace must be >= 0, got {pace}")
        if max_frame_bytes <= 0:
            raise ConfigError(f"max_frame_bytes must be positive, got {max_frame_bytes}")
        if (
            not isinstance(asr_processes, int)
            or isinstance(asr_processes, bool)
            or not 0 <= asr_processes <= MAX_PROCESSES
        ):
            raise ConfigError(
                f"asr_processes must be an int in 0..{MAX_PROCESSES} (0: in this process), "
                f"got {asr_processes!r}"
            )
        self.asr = check_recognizer_name(asr)
        self._asr_workers = RecognizerProcesses(asr_processes, asr) if asr_processes else None
        self.host = host
        self._requested_port = port
        self._token = token
        self.heartbeat_s = heartbeat_s
        self.pace = pace
        self.tts: Literal["espeak", "piper"] = tts
        self.engine: ReplyEngine = engine or DeterministicEngine()
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout_s = idle_timeout_s
        self.read_ahead_bytes = read_ahead_bytes
        self.max_connections = max_connections
        self.connections_refused = 0
        self.capacity = real_time_capacity(asr_processes, self.asr)
        """Simultaneous real-time speakers this machine serves with this ASR layout."""
        if max_sessions is None and pace > 0:  # real time: serve no one late
            max_sessions = self.capacity
        self.max_sessions = max_sessions
        self.sessions_refused = 0
        self._lagging = 0
        self._max_lag_ended = 0.0
        self.path = PATH
        self.sessions: set[LocalSession] = set()
        """The sessions currently connected (what admission counts)."""
        self.sessions_served = 0
        self._peak_sessions = 0
        self._unreleased = 0  # sessions connected, or closed and still freeing what they held
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()
        self._server: Server | None = None
        self._resources: SessionResources | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<LocalRealtimeServer {where} sessions={len(self.sessions)}>"

    @property
    def port(self) -> int:
        """The port listened on (known once started)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def asr_worker_pids(self) -> list[int]:
        """Process ids of the running ASR workers (none when ASR runs in this process)."""
        return [] if self._asr_workers is None else self._asr_workers.pids

    @property
    def base_uri(self) -> str:
        """``ws://HOST:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The full websocket URL clients connect to."""
        return self.base_uri + self.path

    def metrics(self) -> ServerMetrics:
        """Counters of what the server has done, and the worst lag so far."""
        lags = [self._max_lag_ended, *(s.clock.max_lag_s for s in self.sessions)]
        return ServerMetrics(
            sessions=len(self.sessions),
            peak_sessions=self._peak_sessions,
            sessions_served=self.sessions_served,
            sessions_refused=self.sessions_refused,
            connections_refused=self.connections_refused,
            lagging_sessions=self._lagging,
            max_lag_s=max(lags),
            max_sessions=self.max_sessions,
            capacity=self.capacity,
            asr_workers_replaced=0 if self._asr_workers is None else self._asr_workers.replaced,
        )

    def _report_lag(self, session_id: str, lag_s: float) -> None:
        self._lagging += 1
        # At pace 0 (tests, the gym's virtual clock) nobody listens in real time and
        # clients send faster than it: counted, but no warning for every such session.
        logger.log(
            logging.WARNING if self.pace > 0 else logging.INFO,
            "session %s is %.1f s behind its audio (over %g s): the server has more speakers "
            "than it can serve at real time (%d sessions, capacity %d)",
            session_id,
            lag_s,
            LAG_REPORT_S,
            len(self.sessions),
            self.capacity,
        )

    async def drained(self) -> None:
        """Wait until no session is connected; each one that ended has freed what it held."""
        await self._no_sessions.wait()

    async def live_recognizers(self) -> int:
        """Recognisers alive now: the ASR workers' and this process's (tests included)."""
        from glm_local.speech import live_recognizers

        here = live_recognizers()
        if self._asr_workers is None:
            return here
        return here + await asyncio.to_thread(self._asr_workers.live_recognizers)

    async def start(self) -> None:
        """Load the shared speech parts and start listening."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        try:
            self._resources = await asyncio.to_thread(self._load_resources)
            self._server = await serve(
                self._handle,
                self.host,
                self._requested_port,
                process_request=self._check_request,
                max_size=self.max_frame_bytes,
                max_queue=1,  # frames wait in the session's byte-bounded inbox instead
                compression=None,
                ping_interval=None,
                logger=_wire_logger,
            )
        except BaseException:
            await self._release()  # what started before the failure
            raise
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])
        logger.info("local GLM-Realtime server listening at %s", self.url)

    def _load_resources(self) -> SessionResources:
        from glm_local.speech import make_synthesizer

        check_recognizer_installed(self.asr)  # before starting workers that would need it
        new_recognizer: Callable[[], Recognizer]
        if self._asr_workers is None:
            new_recognizer = recognizer_factory(self.asr)
        else:
            self._asr_workers.start()
            new_recognizer = self._asr_workers.recognizer
        return SessionResources(
            new_recognizer=new_recognizer,
            blocking=BlockingWork(),
            synthesizer=make_synthesizer(self.tts),
            engine=self.engine,
            pace=self.pace,
            heartbeat_s=self.heartbeat_s,
            idle_timeout_s=self.idle_timeout_s,
            read_ahead_bytes=self.read_ahead_bytes,
            report_lag=self._report_lag,
        )

    async def close(self) -> None:
        """Close every connection (1001), wait until every session has ended, then stop
        the threads and the ASR workers."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
            logger.info("local GLM-Realtime server at %s closed", self.url)
        await self._release()

    async def _release(self) -> None:
        resources, self._resources = self._resources, None
        if resources is not None:  # calls still in flight end normally first
            await asyncio.to_thread(resources.blocking.shutdown)
        if self._asr_workers is not None:
            await asyncio.to_thread(self._asr_workers.close)

    async def serve_forever(self) -> None:
        """Run until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    # ------------------------------------------------------------------ handshake

    def _authorized(self, header: str | None) -> bool:
        if self._token is None:
            return True
        if header is None or not header.startswith("Bearer "):
            return False
        given = header.removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), self._token.encode()):
            return True
        # A token of the key's shape may also be presented as a Zhipu JWT signed with it.
        return verify_jwt(given, self._token)

    def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != self.path:
            return conn.respond(HTTPStatus.NOT_FOUND, f"no such path; use {self.path}\n")
        if not self._authorized(request.headers.get("Authorization")):
            return glm_http_refusal(HTTPStatus.UNAUTHORIZED, "1000", "authentication failed")
        if self._server is not None and len(self._server.connections) >= self.max_connections:
            self.connections_refused += 1
            return glm_http_refusal(
                HTTPStatus.TOO_MANY_REQUESTS,
                "1305",
                f"too many connections: {self.max_connections} open (max_connections)",
            )
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert self._resources is not None  # set before the server listens
        if self.max_sessions is not None and len(self.sessions) >= self.max_sessions:
            self.sessions_refused += 1
            logger.warning(
                "refused a session from %s: %d in progress (max_sessions %d)",
                ws.remote_address,
                len(self.sessions),
                self.max_sessions,
            )
            await refuse_session(ws, self.max_sessions)
            return
        session = LocalSession(ws, self._resources)
        self.sessions.add(session)
        self._peak_sessions = max(self._peak_sessions, len(self.sessions))
        self._unreleased += 1
        self._no_sessions.clear()
        self.sessions_served += 1
        logger.info("session %s connected from %s", session.id, ws.remote_address)
        try:
            await session.serve()
        except Exception:
            logger.exception("session %s crashed; closing it", session.id)
            await ws.close(1011, "internal error")
        finally:
            # Over for admission once its socket is closed: a client that closes a session
            # and opens the next (a session cap of its own) is not refused for our clean-up.
            self.sessions.discard(session)
            self._max_lag_ended = max(self._max_lag_ended, session.clock.max_lag_s)
            try:
                await session.release()
            finally:
                self._unreleased -= 1
                if not self._unreleased:
                    self._no_sessions.set()
            logger.info("session %s ended (close code %s)", session.id, ws.close_code)
