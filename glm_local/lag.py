"""How far a session's processing runs behind its client's audio clock.

A client streaming at real time sends each packet as its audio ends, so a frame that arrives
while the session is idle tells where the client's clock is: the end of that frame's audio is
"now". While frames keep arriving before the previous one is handled, the server is the one
holding them up, so the clock is not moved: it keeps running from the last idle arrival. The
lag of a frame is then the time it was handled minus the time its audio ended on that clock.

* A client at real time on a server that keeps up: every frame arrives while the session is
  idle, the lag is the time to handle one frame (a few ms).
* The same client on an overloaded server: frames queue, then wait at the socket; the lag
  grows with every second of audio the server cannot keep up with.
* A client faster than real time (``pace=0`` tests and evaluation): frames queue from the
  start, the clock stays where the first frame put it, and the audio's end runs ahead of
  the wall clock, so the lag is negative.
* A client that pauses (between turns) finds the session idle: the clock moves on.
"""

from __future__ import annotations

__all__ = ["LAG_REPORT_S", "AudioClock"]

LAG_REPORT_S = 1.0
"""A session this far behind its audio is reported (log and server metric)."""


class AudioClock:
    """Lag of one session's handled audio behind its client's clock (monotonic seconds)."""

    def __init__(self) -> None:
        self._origin: float | None = None  # client clock time of stream position 0
        self._idle_since = float("-inf")  # when the last frame was handled
        self.lag_s = 0.0
        """The lag of the last frame handled."""
        self.max_lag_s = 0.0

    def handled(self, arrived_at: float, audio_end_s: float, now: float) -> float:
        """Record a frame that arrived at ``arrived_at``, whose audio ends at ``audio_end_s``
        into the stream, handled by ``now``; returns its lag in seconds."""
        if self._origin is None or arrived_at >= self._idle_since:
            self._origin = arrived_at - audio_end_s
        self._idle_since = now
        self.lag_s = now - (self._origin + audio_end_s)
        self.max_lag_s = max(self.max_lag_s, self.lag_s)
        return self.lag_s
