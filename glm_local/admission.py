"""What the embedded backend can serve, what it reports, and how it says no (GLM's way).

* :func:`real_time_capacity`: simultaneous real-time speakers this machine serves, from the
  cores and the ASR layout, at :data:`SPEAKERS_PER_ASR_CORE` per core of recognition (as
  measured by ``python -m benchmarks local_backend``; see BENCHMARKS.md).
* :func:`default_asr_processes`: the layout ``serve`` picks.
* :func:`refuse_session`: over ``max_sessions``, what GLM sends over its concurrency limit:
  an ``error`` event with code 1302, then close code 1013 (try again later).
* :func:`glm_http_refusal`: an HTTP answer to the upgrade with GLM's error body.
* :class:`ServerMetrics`: the counters :meth:`LocalRealtimeServer.metrics` returns.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from glm_local.responder import new_id
from glm_local.speech.asr_processes import MAX_PROCESSES
from realtime import events as ev

__all__ = [
    "SPEAKERS_PER_ASR_CORE",
    "WHISPER_SPEAKERS_PER_CORE",
    "ServerMetrics",
    "default_asr_processes",
    "glm_http_refusal",
    "real_time_capacity",
    "refuse_session",
]

SPEAKERS_PER_ASR_CORE = 4
"""Real-time pocketsphinx speakers one core of recognition serves with voice-to-voice p95
under 1.5 s (``python -m benchmarks local_backend``, 2 cores: p95 0.76 s at 8 speakers on
2 workers, 1.46-1.49 s at 12 and 16; see BENCHMARKS.md)."""
WHISPER_SPEAKERS_PER_CORE = 1
"""The same for whisper, which transcribes each utterance as a whole when it ends
(measured on 2 cores, in-process: p95 1.37 s at 2 speakers, 1.77 s at 4)."""


def default_asr_processes(asr: str = "pocketsphinx") -> int:
    """The ASR layout ``serve`` picks for recogniser ``asr``: for pocketsphinx one worker
    process per core (in-process on one core), for whisper in-process.

    Measured: from 4 simultaneous speakers up, pocketsphinx workers serve more and faster;
    in-process, pocketsphinx holds the GIL, so all recognition shares one core. whisper
    computes without the GIL, so a worker would only add a copy of its model.
    """
    if asr == "whisper":
        return 0
    cores = os.cpu_count() or 1
    return min(cores, MAX_PROCESSES) if cores > 1 else 0


def real_time_capacity(asr_processes: int, asr: str = "pocketsphinx") -> int:
    """How many simultaneous real-time speakers this machine serves with recogniser
    ``asr`` on ``asr_processes`` workers (0: in-process).

    In-process pocketsphinx recognises on one core whatever the count of cores (it
    holds the GIL); whisper's inference runs on every core without it, in-process or not.
    """
    cores = os.cpu_count() or 1
    if asr == "whisper":
        return WHISPER_SPEAKERS_PER_CORE * cores
    return SPEAKERS_PER_ASR_CORE * (min(asr_processes, cores) if asr_processes else 1)


@dataclass(frozen=True)
class ServerMetrics:
    """What the server has done so far (:meth:`LocalRealtimeServer.metrics`)."""

    sessions: int
    """Sessions being served now."""
    peak_sessions: int
    """Most sessions served at once so far."""
    sessions_served: int
    sessions_refused: int
    """Refused over ``max_sessions`` (error 1302, close 1013)."""
    connections_refused: int
    """Refused at the handshake over ``max_connections`` (HTTP 429)."""
    lagging_sessions: int
    """Sessions that ran more than a second behind their audio at some point."""
    max_lag_s: float
    """The worst lag behind real time of any session so far."""
    max_sessions: int | None
    capacity: int
    """Real-time speakers this machine serves (:func:`real_time_capacity`)."""
    asr_workers_replaced: int


async def refuse_session(ws: ServerConnection, max_sessions: int | None) -> None:
    """Over ``max_sessions``: GLM's concurrency error, then "try again later"."""
    detail = ev.ErrorDetail(
        type="rate_limit_error",
        code="1302",
        message=f"too many concurrent sessions: this server serves {max_sessions} "
        "at once (max_sessions); try again later",
    )
    error = ev.ErrorEvent(type="error", event_id=new_id("event"), error=detail)
    with contextlib.suppress(ConnectionClosed):
        await ws.send(error.model_dump_json(exclude_none=True))
    await ws.close(1013, "too many sessions; try again later")


def glm_http_refusal(status: HTTPStatus, code: str, message: str) -> Response:
    """An HTTP answer to the upgrade with GLM's error body."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = Headers([("Content-Type", "application/json")])
    headers["Content-Length"] = str(len(body))
    return Response(status.value, status.phrase, headers, body)
