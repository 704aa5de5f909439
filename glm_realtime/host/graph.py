"""Load and validate TEN 0.8 graphs from an app ``property.json``.

Shape::

    {"_ten": {"predefined_graphs": [{
        "name": "voice", "auto_start": true,
        "nodes": [{"type": "extension", "name": "v2v", "addon": "glm_v2v_python",
                   "extension_group": "llm", "property": {...}}],
        "connections": [{"extension": "rtc",
                         "cmd": [{"name": "on_user_joined", "dest": [{"extension": "v2v"}]}],
                         "audio_frame": [{"name": "pcm_frame", "dest": [...]}]}]}]}}

The 0.11 spelling (``"ten"`` and the nodes under ``"graph"``) is read too. ``app`` and
``extension_group`` keys of a destination are ignored: there is one app.

A node's properties are its addon's defaults overlaid by the graph's (top-level keys,
graph wins), then ``${env:NAME}``/``${env:NAME|default}`` is substituted in every
string, then each value is checked against the addon's manifest.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from .errors import GraphError
from .registry import Addon, AddonRegistry, default_registry
from .schema import SchemaMismatch, check_value, substitute_env

__all__ = [
    "MSG_KINDS",
    "Graph",
    "MsgKind",
    "NodeSpec",
    "Route",
    "choose_graph",
    "graph_names",
    "load_graph",
    "parse_graph",
    "read_app_property",
]

MsgKind = Literal["cmd", "data", "audio_frame", "video_frame"]
MSG_KINDS: tuple[MsgKind, ...] = ("cmd", "data", "audio_frame", "video_frame")
_log = logging.getLogger("glm_realtime.host.graph")
# The keys of a TEN node; anything else (a "proprety" typo) would be silently ignored.
NODE_KEYS = frozenset({"type", "name", "addon", "extension_group", "app", "property"})


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss among ``choices``, else ``""``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class NodeSpec:
    """One extension node of a graph, with its resolved properties."""

    name: str
    addon: str
    extension_group: str | None
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class Route:
    """Messages of ``kind`` named ``name`` from ``source`` go to ``destinations``."""

    source: str
    kind: MsgKind
    name: str
    destinations: tuple[str, ...]


@dataclass(frozen=True)
class Graph:
    """A validated graph, ready for ``GraphRunner``.

    Attributes:
        name: Graph name.
        nodes: Nodes in declaration order (the start order).
        routes: Connections, one per source, kind and message name.
        addons: The addon of every node, by addon name.
        auto_start: The graph's ``auto_start`` flag.
    """

    name: str
    nodes: tuple[NodeSpec, ...]
    routes: tuple[Route, ...]
    addons: Mapping[str, Addon]
    auto_start: bool = False
    _index: dict[tuple[str, str, str], tuple[str, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index = {(r.source, r.kind, r.name): r.destinations for r in self.routes}
        object.__setattr__(self, "_index", index)

    def node(self, name: str) -> NodeSpec:
        """Return the node called ``name`` (``KeyError`` if none)."""
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def destinations(self, source: str, kind: MsgKind, name: str) -> tuple[str, ...]:
        """Return the nodes a message goes to, in connection order (maybe none)."""
        return self._index.get((source, kind, name), ())


def read_app_property(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an app ``property.json``.

    Raises:
        GraphError: The file is unreadable or not a JSON object.
    """
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GraphError(f"cannot read graph file {os.fspath(path)}: {exc}") from exc
    if not isinstance(value, dict):
        raise GraphError(f"graph file {os.fspath(path)} must hold a JSON object")
    return value


def _addon_property_owner(value: Mapping[str, Any]) -> str | None:
    """The addon whose declared properties include every key of ``value``, if one does."""
    registry = default_registry()
    for name in registry.names():
        addon = registry.find(name)
        schema = addon.property_schema if addon is not None else None
        if value and schema and set(value) <= set(schema):
            return name
    return None


def _predefined(app: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    ten = app.get("_ten", app.get("ten"))
    if not isinstance(ten, Mapping) or not isinstance(ten.get("predefined_graphs"), list):
        owner = None if ten is not None else _addon_property_owner(app)
        if owner is not None:
            raise GraphError(
                f"this is the property file of addon '{owner}' (its default properties), "
                "not an app graph"
            )
        raise GraphError("no '_ten.predefined_graphs' list in the app property")
    graphs = ten["predefined_graphs"]
    for i, graph in enumerate(graphs):
        if not isinstance(graph, Mapping) or not isinstance(graph.get("name"), str):
            raise GraphError(f"predefined graph #{i} is not an object with a 'name'")
    return cast("list[Mapping[str, Any]]", graphs)


def graph_names(app: Mapping[str, Any]) -> list[str]:
    """Return the names of the predefined graphs of an app property, in order."""
    return [str(g["name"]) for g in _predefined(app)]


def load_graph(
    source: str | os.PathLike[str] | Mapping[str, Any],
    name: str | None = None,
    *,
    registry: AddonRegistry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Graph:
    """Load one predefined graph from an app property file or dict.

    Args:
        source: Path of a ``property.json`` or its parsed content.
        name: Graph to load; by default the first with ``auto_start`` true, else
            the first.
        registry: Where addons are looked up; :func:`default_registry` by default.
        environ: Environment for ``${env:...}``; ``os.environ`` by default.

    Raises:
        GraphError: Unreadable file, unknown graph name, or an invalid graph.
    """
    app = source if isinstance(source, Mapping) else read_app_property(source)
    return parse_graph(choose_graph(app, name), registry=registry, environ=environ)


def choose_graph(app: Mapping[str, Any], name: str | None = None) -> Mapping[str, Any]:
    """The predefined graph called ``name``; by default the first ``auto_start`` one, else the
    first (the object inside ``app``, not a copy).

    Raises:
        GraphError: No graphs, or none called ``name``.
    """
    graphs = _predefined(app)
    if not graphs:
        raise GraphError("the app property defines no graphs")
    if name is None:
        return next((g for g in graphs if g.get("auto_start") is True), graphs[0])
    for graph in graphs:
        if graph["name"] == name:
            return graph
    known = graph_names(app)
    raise GraphError(
        f"no graph named '{name}'{did_you_mean(name, known)} (graphs: {', '.join(known)})"
    )


def parse_graph(
    graph: Mapping[str, Any],
    *,
    registry: AddonRegistry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Graph:
    """Validate one predefined-graph object and build a :class:`Graph`.

    Raises:
        GraphError: Unknown addon, duplicate node, bad connection, undeclared or
            mistyped property. The message names the graph, node and property.
    """
    registry = registry if registry is not None else default_registry()
    gname = str(graph.get("name", "<unnamed>"))
    body = graph["graph"] if isinstance(graph.get("graph"), Mapping) else graph
    raw_nodes = body.get("nodes", [])
    if not isinstance(raw_nodes, list):
        raise GraphError(f"graph '{gname}': 'nodes' must be a list")
    nodes: list[NodeSpec] = []
    addons: dict[str, Addon] = {}
    for i, raw in enumerate(raw_nodes):
        spec = _parse_node(gname, i, raw, registry, environ, addons)
        if spec is None:
            continue
        if any(n.name == spec.name for n in nodes):
            raise GraphError(f"graph '{gname}': duplicate node name '{spec.name}'")
        nodes.append(spec)
    routes = _parse_connections(gname, body.get("connections", []), {n.name for n in nodes})
    return Graph(gname, tuple(nodes), routes, addons, graph.get("auto_start") is True)


def _parse_node(
    gname: str,
    index: int,
    raw: Any,
    registry: AddonRegistry,
    environ: Mapping[str, str] | None,
    addons: dict[str, Addon],
) -> NodeSpec | None:
    if not isinstance(raw, Mapping):
        raise GraphError(f"graph '{gname}': node #{index} is not an object")
    if raw.get("type", "extension") != "extension":
        _log.warning("graph '%s': skipping node #%d of type %r", gname, index, raw.get("type"))
        return None
    name, addon_name = raw.get("name"), raw.get("addon")
    if not isinstance(name, str) or not name:
        raise GraphError(f"graph '{gname}': node #{index} has no 'name'")
    if not isinstance(addon_name, str) or not addon_name:
        raise GraphError(f"graph '{gname}' node '{name}': no 'addon'")
    where = f"graph '{gname}' node '{name}'"
    unknown = sorted(set(raw) - NODE_KEYS)
    if unknown:
        hints = "".join(did_you_mean(key, NODE_KEYS) for key in unknown)
        raise GraphError(
            f"{where}: unknown key {', '.join(repr(k) for k in unknown)}{hints}; "
            f"a node has: {', '.join(sorted(NODE_KEYS))}"
        )
    addon = registry.find(addon_name)
    if addon is None:
        hint = did_you_mean(addon_name, registry.names())
        raise GraphError(
            f"{where}: unknown addon '{addon_name}'{hint} ({registry.describe_known()})"
        )
    addons[addon_name] = addon
    given = raw.get("property") or {}
    if not isinstance(given, Mapping):
        raise GraphError(f"{where}: 'property' must be an object")
    merged = {**addon.default_properties, **given}

    def missing_env(path: str, variable: str) -> None:
        _log.warning(
            "%s property '%s': environment variable %s is not set; using an empty string",
            where,
            path,
            variable,
        )

    resolved = {k: substitute_env(v, k, missing_env, environ) for k, v in merged.items()}
    schema = addon.property_schema
    if schema is not None:
        for key in list(resolved):
            if key not in schema:
                declared = ", ".join(sorted(schema)) or "none"
                raise GraphError(
                    f"{where} property '{key}' is not declared by addon '{addon_name}'"
                    f"{did_you_mean(key, list(schema))} (declared: {declared})"
                )
            try:
                resolved[key] = check_value(resolved[key], schema[key], key)
            except SchemaMismatch as exc:
                origin = "graph" if key in given else f"addon '{addon_name}' default"
                raise GraphError(f"{where} property '{exc.path}' ({origin}): {exc}") from exc
    group = raw.get("extension_group")
    return NodeSpec(name, addon_name, group if isinstance(group, str) else None, resolved)


def _parse_connections(gname: str, raw: Any, known: set[str]) -> tuple[Route, ...]:
    if not isinstance(raw, list):
        raise GraphError(f"graph '{gname}': 'connections' must be a list")
    table: dict[tuple[str, MsgKind, str], list[str]] = {}
    for i, conn in enumerate(raw):
        if not isinstance(conn, Mapping) or not isinstance(conn.get("extension"), str):
            raise GraphError(f"graph '{gname}': connection #{i} has no source 'extension'")
        source = conn["extension"]
        if source not in known:
            raise GraphError(f"graph '{gname}': connection #{i} comes from missing node '{source}'")
        for kind in MSG_KINDS:
            flows = conn.get(kind, [])
            if not isinstance(flows, list):
                raise GraphError(f"graph '{gname}' node '{source}': '{kind}' must be a list")
            for flow in flows:
                msg = flow.get("name") if isinstance(flow, Mapping) else None
                where = f"graph '{gname}' node '{source}' {kind} '{msg}'"
                if not isinstance(msg, str) or not isinstance(flow.get("dest"), list):
                    raise GraphError(f"{where}: each entry needs a 'name' and a 'dest' list")
                dests = table.setdefault((source, kind, msg), [])
                for dest in flow["dest"]:
                    target = dest.get("extension") if isinstance(dest, Mapping) else None
                    if not isinstance(target, str):
                        raise GraphError(f"{where}: a destination has no 'extension'")
                    if target not in known:
                        raise GraphError(f"{where}: destination node '{target}' is missing")
                    if target not in dests:
                        dests.append(target)
    return tuple(Route(s, k, n, tuple(d)) for (s, k, n), d in table.items())
