"""Capped, jittered exponential backoff for reconnects."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


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
