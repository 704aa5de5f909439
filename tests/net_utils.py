"""A port on 127.0.0.1 where a connection is refused, for the tests of unreachable peers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["refused_port"]


@contextmanager
def refused_port() -> Iterator[int]:
    """A port bound and never listening while the block runs: a connect to it is refused,
    and no other process can take the port meanwhile (as it could once a probe closed)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]
