"""Pocketsphinx recognisers in worker processes, so concurrent sessions decode on every core.

pocketsphinx holds the GIL while it decodes, so the recognisers of concurrent sessions in one
process share one core however many threads call them. :class:`RecognizerProcesses` starts
``processes`` workers, each loading the model once, and hands out :class:`RemoteRecognizer`
objects that implement :class:`~glm_local.speech.asr.Recognizer` by forwarding every call to
a worker over a socket. The calling thread waits on the socket without the GIL, so sessions
on different workers decode at the same time. A new recogniser goes to the worker holding
the fewest.

Workers are ``python -m glm_local.speech.asr_processes FD`` subprocesses talking pickled
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
from typing import Any

from realtime.errors import ConfigError

__all__ = ["MAX_PROCESSES", "RecognizerProcesses", "RemoteRecognizer", "WorkerDied"]

logger = logging.getLogger(__name__)

MAX_PROCESSES = 64
"""The most ASR workers one server may start."""
_START_TIMEOUT_S = 60.0  # importing pocketsphinx and loading the LM, on a slow machine
_EXIT_TIMEOUT_S = 5.0


class WorkerDied(RuntimeError):
    """A recogniser's worker process is gone (crashed or closed); the recogniser is dead."""


def _serve(conn: Connection) -> None:
    """A worker's main loop: one model, many recognisers, one request at a time."""
    from glm_local.speech._memory import return_freed_memory
    from glm_local.speech.asr import PocketSphinxModel, PocketSphinxRecognizer, live_recognizers

    model = PocketSphinxModel.default()
    recognizers: dict[int, PocketSphinxRecognizer] = {}
    conn.send(("ready", None))
    while True:
        try:
            op, rid, arg = conn.recv()
        except (EOFError, OSError):
            return  # the server closed the socket, or is gone
        result: Any = None
        try:
            if op == "new":
                # No partial hypotheses: nothing sends them, and each costs a backtrace.
                recognizers[rid] = PocketSphinxRecognizer(model, partial_interval_ms=None)
            elif op == "close":
                recognizer = recognizers.pop(rid, None)
                if recognizer is not None:
                    recognizer.close()
                    return_freed_memory()
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


def _start_worker(index: int) -> _Worker:
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
                [sys.executable, "-m", "glm_local.speech.asr_processes", str(theirs.fileno())],
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

    def count(self, delta: int) -> None:
        with self._count_lock:
            self.recognizers += delta

    def call(self, op: str, rid: int, arg: bytes | None = None) -> Any:
        with self.lock:
            try:
                self.conn.send((op, rid, arg))
                status, value = self.conn.recv()
            except (EOFError, OSError) as exc:
                code = self.process.poll()
                raise WorkerDied(f"ASR worker {self.index} is gone (exit code {code})") from exc
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
    """

    def __init__(self, processes: int) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int):
            raise ConfigError(f"asr_processes must be an int, got {processes!r}")
        if not 1 <= processes <= MAX_PROCESSES:
            raise ConfigError(f"asr_processes must be in 1..{MAX_PROCESSES}, got {processes}")
        self.processes = processes
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
        self._assign = threading.Lock()

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
                self._workers.append(_start_worker(index))
            for worker in self._workers:
                if not worker.conn.poll(_START_TIMEOUT_S):
                    raise WorkerDied(f"ASR worker {worker.index} did not start in time")
                status, _ = worker.conn.recv()
                if status != "ready":
                    raise WorkerDied(f"ASR worker {worker.index} failed to start")
        except BaseException as exc:
            self.close()  # the workers started so far
            if isinstance(exc, (EOFError, OSError, ValueError)):  # ValueError: no pass_fds
                raise WorkerDied(f"an ASR worker failed to start: {exc!r}") from exc
            raise
        logger.info("%d ASR worker process(es) ready", self.processes)

    def recognizer(self) -> RemoteRecognizer:
        """A new recogniser on the worker holding the fewest (blocking: ~0.25 s there)."""
        if not self._workers:
            raise RuntimeError("the ASR workers are not started")
        with self._assign:
            worker = min(self._workers, key=lambda w: w.recognizers)
            worker.count(+1)
            rid = next(self._ids)
        try:
            worker.call("new", rid)
        except BaseException:
            worker.count(-1)
            raise
        return RemoteRecognizer(worker, rid)

    def live_recognizers(self) -> int:
        """How many recognisers the workers hold, as each counts them (blocking)."""
        return sum(int(worker.call("live", -1)) for worker in list(self._workers))

    def close(self) -> None:
        """Stop every worker (closing its socket ends it; terminated if it lingers)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            with worker.lock:
                worker.conn.close()
        for worker in workers:
            try:
                worker.process.wait(_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning("ASR worker %d did not exit; killing it", worker.index)
                worker.process.kill()
                worker.process.wait(_EXIT_TIMEOUT_S)

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


if __name__ == "__main__":  # a worker: python -m glm_local.speech.asr_processes FD
    _serve(Connection(int(sys.argv[1])))
