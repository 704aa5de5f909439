"""What the env registry raises; each error knows its HTTP status.

::

    GymServerError                 message for the {"error": ...} body, .status
    ├── BadRequest          422    a value the server cannot use (data_idx out of range, ...)
    ├── UnknownEnv          404    an id never created here, or closed (says why)
    ├── EnvBusy             409    a second step/reset on an env while one is in flight
    ├── EnvNotReady         409    no conversation yet, or the last one failed: reset first
    ├── AtCapacity          503    the live-env cap is reached, or the server is stopping
    └── EnvFailure          500    the environment raised; the reason is in the message
"""

from __future__ import annotations

__all__ = [
    "AtCapacity",
    "BadRequest",
    "EnvBusy",
    "EnvFailure",
    "EnvNotReady",
    "GymServerError",
    "UnknownEnv",
]


class GymServerError(Exception):
    """Base: ``str(exc)`` is the message a client sees."""

    status = 500


class BadRequest(GymServerError):
    status = 422


class UnknownEnv(GymServerError):
    status = 404


class EnvBusy(GymServerError):
    status = 409


class EnvNotReady(GymServerError):
    status = 409


class AtCapacity(GymServerError):
    status = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EnvFailure(GymServerError):
    status = 500
