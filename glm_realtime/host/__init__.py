"""A small host for TEN 0.8 style agent graphs.

The TEN runtime is not on PyPI, so this package loads an app ``property.json``
(:func:`load_graph`), instantiates its extension nodes from registered addons
(:func:`register_addon`, entry-point group ``glm_realtime.addons``) and runs them
(:class:`GraphRunner`), handing each an :class:`AsyncTenEnv` with the TEN 0.8 API
extension code uses. See :mod:`.runner` for the delivery semantics.
"""

from .env import AsyncTenEnv, MessageRouter, node_logger
from .errors import AddonError, GraphError, HostError, NodeError, PropertyError
from .extension import Extension
from .graph import (
    MSG_KINDS,
    Graph,
    MsgKind,
    NodeSpec,
    Route,
    graph_names,
    load_graph,
    parse_graph,
    read_app_property,
)
from .messages import AudioFrame, AudioFrameDataFmt, Cmd, CmdResult, Data, Msg, StatusCode
from .registry import (
    ENTRY_POINT_GROUP,
    Addon,
    AddonRegistry,
    default_registry,
    load_addon_dir,
    register_addon,
)
from .runner import GraphRunner, run_graph

__all__ = [
    "ENTRY_POINT_GROUP",
    "MSG_KINDS",
    "Addon",
    "AddonError",
    "AddonRegistry",
    "AsyncTenEnv",
    "AudioFrame",
    "AudioFrameDataFmt",
    "Cmd",
    "CmdResult",
    "Data",
    "Extension",
    "Graph",
    "GraphError",
    "GraphRunner",
    "HostError",
    "MessageRouter",
    "Msg",
    "MsgKind",
    "NodeError",
    "NodeSpec",
    "PropertyError",
    "Route",
    "StatusCode",
    "default_registry",
    "graph_names",
    "load_addon_dir",
    "load_graph",
    "node_logger",
    "parse_graph",
    "read_app_property",
    "register_addon",
    "run_graph",
]
