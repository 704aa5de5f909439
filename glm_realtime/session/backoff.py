"""Reconnects: capped, jittered exponential backoff, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass

from realtime.errors import Disposition, classify, unreachable

__all__ = ["Backoff", "GiveUp", "ReconnectPolicy"]


class Backoff:
    """Delays ``base * 2**n`` capped at ``cap``, each scaled by a random 0.5-1.0.

    ``reset()`` after a good session so a later failure starts from ``base`` again.
    """

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Count a failure and return how long to wait before the next attempt."""
        raw = min(self.cap_s, self.base_s * 2.0**self.failures)
        self.failures += 1
        # Full jitter would allow 0 s; keep at least half so a storm stays spread out.
        return raw * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Forget past failures."""
        self.failures = 0


@dataclass(frozen=True)
class GiveUp:
    """Reconnecting cannot help, or was tried too often: ``reason`` says which."""

    reason: str


class ReconnectPolicy:
    """Counts consecutive failed sockets; only a socket that proved itself resets the count.

    The count is its :class:`Backoff`'s (each retried failure is one delay there), so the two
    cannot disagree.

    A socket proves itself by serving the user (a completed response, or staying up for a
    while: the caller says when). One that reaches ``session.created`` and dies at once is
    a failure like one that never opened, so a flapping server is bounded by
    ``max_attempts``.

    Until a socket has opened once, a connect that finds nothing at the address (the
    name does not resolve, the connection is refused) gives up at once with that cause:
    the URL is wrong or there is no network, and retrying only delays saying so. Once one
    has opened, the same failures are retried (the server restarts, the network returns).
    """

    def __init__(
        self, max_attempts: int, base_s: float, cap_s: float, rng: random.Random | None = None
    ) -> None:
        self.max_attempts = max_attempts
        self._backoff = Backoff(base_s, cap_s, rng)
        self._proven = False
        self._ever_opened = False

    def connecting(self) -> None:
        """A new socket starts unproven."""
        self._proven = False

    def opened(self) -> None:
        """A socket opened: the address is right, later connect failures are retried."""
        self._ever_opened = True

    def proven(self) -> None:
        """The current socket served the user: later failures start from scratch."""
        if not self._proven:
            self._proven = True
            self._backoff.reset()

    def lost(self, error: BaseException | None) -> float | GiveUp:
        """The socket ended: the delay before the next attempt, or why to give up."""
        if error is not None and classify(error) is Disposition.FATAL:
            return GiveUp(f"fatal: {error}")
        if error is not None and not self._ever_opened and unreachable(error):
            return GiveUp(f"{error} (the first connection: not retried)")
        failures = self._backoff.failures + 1  # this one included
        if failures > self.max_attempts:
            return GiveUp(f"gave up after {failures} failed connection(s); last: {error}")
        return self._backoff.next_delay()  # counts it
