"""Joining (or starting) the Ray of ``glm-realtime eval --ray``, with errors that say what to do.

``ray.init`` given a ``host:port`` where no cluster listens retries for minutes, printing
its GCS client's warnings; ``auto`` with no cluster on the node names Ray's own
``--address`` flag. Both are answered here in one line instead: a ``host:port`` is first
tried with one TCP connect (a cluster's GCS port accepts one), ``auto`` finding nothing is
told how to start a cluster. ``ray://`` (Ray Client) addresses go to Ray as they are.

Only ``glm_gym.ray_eval`` imports this module (the ``ray`` extra).
"""

from __future__ import annotations

import logging
import socket

import ray

from glm_gym.evaluation import EvalError

__all__ = ["connect", "host_port", "reachable"]

CONNECT_TIMEOUT_S = 5.0
_START_ONE = (
    "start one with 'ray start --head --port 6379' (see the README), or give --ray alone "
    "to start a local Ray"
)


def host_port(address: str) -> tuple[str, int] | None:
    """The ``(host, port)`` of a cluster address; None for ``auto`` and ``ray://`` ones.

    Raises:
        EvalError: Neither of those nor ``host:port``.
    """
    if address == "auto" or address.startswith("ray://"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EvalError(
            f"--ray {address!r}: expected 'auto', HOST:PORT (a cluster's head, like "
            f"127.0.0.1:6379) or ray://HOST:PORT"
        )
    return host.strip("[]"), int(port)


def reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Check that something accepts a connection at ``address`` (``host:port``).

    Raises:
        EvalError: Not an address, or nothing accepts a connection there (the reason).
    """
    where = host_port(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise EvalError(
            f"--ray {address}: no Ray cluster answers there ({reason}); {_START_ONE}"
        ) from exc


def connect(address: str | None, *, num_cpus: int | None, namespace: str) -> bool:
    """Connect to (or, for ``address`` None, start) Ray; True when this call started it.

    Raises:
        EvalError: No cluster at ``address``, or none found on this node for ``auto``.
    """
    if ray.is_initialized():
        return False
    local = address is None
    if address is not None:
        reachable(address)
    try:
        ray.init(
            address=address,
            num_cpus=num_cpus if local else None,
            include_dashboard=False,
            namespace=namespace,
            log_to_driver=False,
            # A Ray of our own on loopback: its start-up notes ("started a local Ray", token
            # auth on) would only cut through the progress bar. A cluster's warnings stay.
            logging_level=logging.ERROR if local else logging.INFO,
        )
    except ConnectionError as exc:
        if address != "auto":
            raise
        raise EvalError(f"--ray auto: no running Ray cluster on this node; {_START_ONE}") from exc
    return True
