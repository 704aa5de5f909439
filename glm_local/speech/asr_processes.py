"""Recognisers in worker processes, so concurrent sessions decode on every core.

pocketsphinx holds the GIL while it decodes, so the recognisers of concurrent sessions in one
process share one core however many threads call them. :class:`RecognizerProcesses` starts
``processes`` workers, each loading the model once, and hands out :class:`RemoteRecognizer`
objects that implement :class:`~glm_local.speech.asr_protocol.Recognizer` by forwarding every
call to a worker over a socket. The calling thread waits on the socket without the GIL, so sessions
on different workers decode at the same time. A new recogniser goes to the ready worker
holding the fewest. Whisper works the same way (``asr="whisper"``), but gains little from it:
it computes without the GIL, on every core, in the server process too, and each worker
holds its own copy of the model (~300 MB more).

A worker that dies (crash, OOM kill) is taken out of rotation when it is next chosen or
its socket fails: a replacement process starts in its place, and a new recogniser whose
worker turns out dead is made on another one, so new sessions do not see the failure.
Recognisers that lived in the dead worker raise :class:`WorkerDied` on their next call.

Workers are ``python -m glm_local.speech.asr_processes FD ENGINE`` subprocesses talking pickled
messages over a socket pair, not ``multiprocessing`` processes: spawning those re-imports the
caller's ``__main__``, which breaks scripts without an ``if __name__ == "__main__"`` guard.
A worker exits when its socket closes, so it never outlives the server.

Usage::

    with RecognizerProcesses(2) as workers:       # spawns and loads (blocking, ~1 s)
        asr = workers.recognizer()                # blocking: the decoder is built there
        asr.start(); asr.feed(pcm16k); text = asr.finish()
        asr.close()
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from glm_local.speech.recognizers import RecognizerName, check_recognizer_name, recognizer_factory
from realtime.errors import ConfigError

if TYPE_CHECKING:
    from glm_local.speech.asr_protocol import Recognizer

__all__ = ["MAX_PROCESSES", "RecognizerProcesses", "RemoteRecognizer", "WorkerDied"]

logger = logging.getLogger(__name__)

MAX_PROCESSES = 64
"""The most ASR workers one server may start."""
_START_TIMEOUT_S = 60.0  # importing pocketsphinx and loading the LM, on a slow machine
_EXIT_TIMEOUT_S = 5.0
_REAP_TIMEOUT_S = 1.0  # a worker whose socket failed, for its exit code


class WorkerDied(RuntimeError):
    """A recogniser's worker process is gone (crashed or closed); the recogniser is dead."""


def _serve(conn: Connection, asr: RecognizerName) -> None:
    """A worker's main loop: one model, many recognisers, one request at a time."""
    from glm_local.speech.asr_protocol import live_recognizers

    new_recognizer = recognizer_factory(asr)
    recognizers: dict[int, Recognizer] = {}
    conn.send(("ready", None))
    while True:
        try:
            op, rid, arg = conn.recv()
        except (EOFError, OSError):
            return  # the server closed the socket, or is gone
        result: Any = None
        try:
            if op == "new":
                recognizers[rid] = new_recognizer()
            elif op == "close":
                recognizer = recognizers.pop(rid, None)
                if recognizer is not None:
                    recognizer.close()
            elif op == "live":
                result = live_recognizers()
            elif op == "feed":
                result = recognizers[rid].feed(arg)
            else:  # start, finish, reset
                result = getattr(recognizers[rid], op)()
        except Exception as exc:  # noqa: BLE001 - reported to the caller, who raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("ok", result))


def _start_worker(index: int, asr: RecognizerName) -> _Worker:
    ours, theirs = socket.socketpair()
    # The worker imports this package from wherever this process found it.
    root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    try:
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", "glm_local.speech.asr_processes", str(theirs.fileno()), asr],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
            )
    except BaseException:
        ours.close()
        raise
    return _Worker(index, process, Connection(ours.detach()))


class _Worker:
    """The server's end of one worker: its process, its socket, a lock for the round trip."""

    def __init__(self, index: int, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.lock = threading.Lock()  # one round trip at a time on the socket
        self._count_lock = threading.Lock()
        self.recognizers = 0  # held here; new recognisers go to the worker with fewest
        self.ready = False  # its "ready" message has been read
        self.failed = False  # its socket failed: gone, whatever poll() says yet

    @property
    def alive(self) -> bool:
        return not self.failed and self.process.poll() is None

    def count(self, delta: int) -> None:
        with self._count_lock:
            self.recognizers += delta

    def _gone(self) -> WorkerDied:
        self.failed = True
        with contextlib.suppress(subprocess.TimeoutExpired):  # its socket closed as it died
            self.process.wait(_REAP_TIMEOUT_S)
        return WorkerDied(f"ASR worker {self.index} is gone (exit code {self.process.poll()})")

    def wait_ready(self, timeout: float) -> bool:
        """Read the worker's "ready" message if it comes within ``timeout`` s.

        Raises:
            WorkerDied: the worker exited or failed to load.
        """
        with self.lock:
            return self._read_ready(timeout)

    def _read_ready(self, timeout: float) -> bool:
        """:meth:`wait_ready` with ``lock`` held."""
        if self.ready:
            return True
        try:
            if not self.conn.poll(timeout):
                return False
            status, _ = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise self._gone() from exc
        if status != "ready":
            raise self._gone()
        self.ready = True
        return True

    def call(self, op: str, rid: int, arg: bytes | None = None) -> Any:
        """One round trip, ``lock`` held throughout (after the "ready" message, if unread)."""
        with self.lock:
            if not self._read_ready(_START_TIMEOUT_S):
                raise WorkerDied(f"ASR worker {self.index} did not start in time")
            if self.failed:
                raise self._gone()
            try:
                self.conn.send((op, rid, arg))
                status, value = self.conn.recv()
            except (EOFError, OSError) as exc:
                raise self._gone() from exc
        if status == "error":
            raise RuntimeError(f"ASR worker {self.index}: {value}")
        return value


class RemoteRecognizer:
    """A pocketsphinx recogniser living in a worker process (implements ``Recognizer``).

    Each call is one round trip to the worker; it blocks the calling thread (run it in a
    worker thread, as the embedded backend does) but not the GIL.
    """

    def __init__(self, worker: _Worker, rid: int) -> None:
        self._worker = worker
        self._rid = rid
        self._closed = False

    @property
    def worker(self) -> int:
        """The index of the worker process holding this recogniser."""
        return self._worker.index

    def start(self) -> None:
        """Begin an utterance, discarding an unfinished one."""
        self._worker.call("start", self._rid)

    def feed(self, pcm16k: bytes) -> str | None:
        """Add audio to the utterance; partials are off, so this returns None."""
        result: str | None = self._worker.call("feed", self._rid, bytes(pcm16k))
        return result

    def finish(self) -> str:
        """End the utterance and return its final transcript ("" if none)."""
        text: str = self._worker.call("finish", self._rid)
        return text

    def reset(self) -> None:
        """Drop the utterance and any adaptation."""
        self._worker.call("reset", self._rid)

    def close(self) -> None:
        """Free the recogniser in its worker; idempotent, quiet if the worker is gone."""
        if self._closed:
            return
        self._closed = True
        self._worker.count(-1)
        with contextlib.suppress(WorkerDied):
            self._worker.call("close", self._rid)


class RecognizerProcesses:
    """A fixed set of ASR worker processes; a context manager (``close`` on exit).

    Args:
        processes: How many workers (1..64); each holds the LM and its recognisers'
            decoders (~35-45 MB each).
        asr: The engine the workers run (see :mod:`glm_local.speech.recognizers`).
    """

    def __init__(self, processes: int, asr: RecognizerName = "pocketsphinx") -> None:
        if isinstance(processes, bool) or not isinstance(processes, int):
            raise ConfigError(f"asr_processes must be an int, got {processes!r}")
        if not 1 <= processes <= MAX_PROCESSES:
            raise ConfigError(f"asr_processes must be in 1..{MAX_PROCESSES}, got {processes}")
        self.processes = processes
        self.asr = check_recognizer_name(asr)
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
        self._assign = threading.Lock()
        self.replaced = 0
        """Workers found dead and replaced."""

    def __repr__(self) -> str:
        return f"<RecognizerProcesses {len(self._workers)}/{self.processes} running>"

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return [worker.process.pid for worker in self._workers]

    def start(self) -> None:
        """Start the workers and wait until each has loaded the model (blocking)."""
        if self._workers:
            raise RuntimeError("the ASR workers are already started")
        try:
            for index in range(self.processes):
                self._workers.append(_start_worker(index, self.asr))
            for worker in self._workers:
                if not worker.wait_ready(_START_TIMEOUT_S):
                    raise WorkerDied(f"ASR worker {worker.index} did not start in time")
        except BaseException as exc:
            self.close()  # the workers started so far
            if isinstance(exc, (EOFError, OSError, ValueError)):  # ValueError: no pass_fds
                raise WorkerDied(f"an ASR worker failed to start: {exc!r}") from exc
            raise
        logger.info("%d ASR worker process(es) ready", self.processes)

    def recognizer(self) -> RemoteRecognizer:
        """A new recogniser on the ready worker holding the fewest (blocking: ~0.25 s
        there); a worker found dead is replaced and the recogniser made on another.

        Raises:
            WorkerDied: no worker could make it (each one tried died, or none starts).
        """
        if not self._workers:
            raise RuntimeError("the ASR workers are not started")
        for _ in range(self.processes + 1):
            with self._assign:
                self._replace_dead()
                worker = min(self._workers, key=_preference)
                worker.count(+1)
                rid = next(self._ids)
            try:
                worker.call("new", rid)
            except WorkerDied:
                worker.count(-1)
                continue  # replaced on the next round
            except BaseException:
                worker.count(-1)
                raise
            return RemoteRecognizer(worker, rid)
        raise WorkerDied(f"no ASR worker could make a recogniser ({self.replaced} replaced)")

    def _replace_dead(self) -> None:
        """Start a new process for each worker that is gone (under ``_assign``)."""
        for position, worker in enumerate(self._workers):
            if worker.alive:
                continue
            logger.warning(
                "ASR worker %d (pid %d) is gone (exit code %s); starting a replacement",
                worker.index,
                worker.process.pid,
                worker.process.poll(),
            )
            _stop(worker)
            self._workers[position] = _start_worker(worker.index, self.asr)
            self.replaced += 1

    def live_recognizers(self) -> int:
        """How many recognisers the live workers hold, as each counts them (blocking)."""
        total = 0
        for worker in list(self._workers):
            with contextlib.suppress(WorkerDied):
                total += int(worker.call("live", -1))
        return total

    def close(self) -> None:
        """Stop every worker (closing its socket ends it; terminated if it lingers)."""
        with self._assign:
            workers, self._workers = self._workers, []
        for worker in workers:  # all sockets first, so that the workers exit together
            with worker.lock:
                worker.conn.close()
        for worker in workers:
            _stop(worker)

    def __enter__(self) -> RecognizerProcesses:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _preference(worker: _Worker) -> tuple[bool, int]:
    """Ready workers first (a replacement still loading would keep a session waiting),
    then the fewest recognisers."""
    if not worker.ready:
        with contextlib.suppress(WorkerDied):
            worker.wait_ready(0)
    return (not worker.ready, worker.recognizers)


def _stop(worker: _Worker) -> None:
    """Close the worker's socket and wait for it to exit (killed if it lingers)."""
    with worker.lock:
        worker.conn.close()
    try:
        worker.process.wait(_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.warning("ASR worker %d did not exit; killing it", worker.index)
        worker.process.kill()
        worker.process.wait(_EXIT_TIMEOUT_S)


if __name__ == "__main__":  # a worker: python -m glm_local.speech.asr_processes FD ENGINE
    _serve(Connection(int(sys.argv[1])), check_recognizer_name(sys.argv[2]))
