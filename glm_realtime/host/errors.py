"""Errors raised by the graph host.

The tree::

    HostError
    ├── PropertyError   a property is missing or has another type (also a RuntimeError,
    │                   as in the TEN runtime, whose getters raise RuntimeError)
    ├── GraphError      a graph that cannot be loaded (names graph, node and property)
    ├── AddonError      an addon that cannot be registered or loaded
    └── NodeError       a node failed in a lifecycle step (``node`` and ``phase`` say where)
"""

from __future__ import annotations

__all__ = ["AddonError", "GraphError", "HostError", "NodeError", "PropertyError"]


class HostError(Exception):
    """Base class of every error the graph host raises."""


class PropertyError(HostError, RuntimeError):
    """A property is missing, has another type, or its path or JSON is malformed."""


class GraphError(HostError, ValueError):
    """A graph is invalid; the message names the graph, the node and the property."""


class AddonError(HostError):
    """An addon cannot be registered: a name clash, a bad manifest or a broken plugin."""


class NodeError(HostError):
    """A node raised in ``on_init``, ``on_start`` or another lifecycle step.

    Attributes:
        node: Name of the node that failed.
        phase: The lifecycle method that raised, for example ``"on_start"``.
    """

    def __init__(self, node: str, phase: str, cause: BaseException) -> None:
        self.node = node
        self.phase = phase
        super().__init__(f"node '{node}' failed in {phase}: {type(cause).__name__}: {cause}")
