"""Prometheus metrics of one gym server (``GET /metrics``).

Each server has its own :class:`~prometheus_client.CollectorRegistry`, so two apps in one
process (tests, benchmarks) never share counters.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "GymMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Steps last from tens of milliseconds (virtual clock) to a turn timeout (30 s default).
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GymMetrics:
    """Counters the registry updates, and gauges read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.created = Counter("glm_gym_envs_created", "Envs created.", registry=self.registry)
        self.closed = Counter(
            "glm_gym_envs_closed",
            "Envs closed, by reason (client, ttl, shutdown, failed).",
            ["reason"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "glm_gym_envs_rejected", "Creates refused at the live-env cap.", registry=self.registry
        )
        self.steps = Counter(
            "glm_gym_steps",
            "Steps and resets, by kind and outcome (ok, failed, cancelled).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "glm_gym_step_seconds",
            "Wall time of env.step (the voice turn).",
            buckets=_STEP_BUCKETS,
            registry=self.registry,
        )

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge whose value is ``read()`` at scrape time."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
