"""Graph loading: selection, env substitution, defaults, validation errors."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest

from glm_realtime.host import AddonRegistry, Extension, GraphError, load_graph, register_addon
from glm_realtime.host.testing import Probe

GRAPHS = Path(__file__).parent / "graphs"

TYPED_MANIFEST = {
    "type": "extension",
    "name": "typed",
    "api": {
        "property": {
            "api_key": {"type": "string"},
            "greeting": {"type": "string"},
            "url": {"type": "string"},
            "max_tokens": {"type": "int32"},
            "small": {"type": "int8"},
            "count": {"type": "uint16"},
            "temperature": {"type": "float32"},
            "server_vad": {"type": "bool"},
            "tools": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            "extra": {"type": "object"},
        }
    },
}
TYPED_DEFAULTS = {"api_key": "${env:HOST_TEST_KEY}", "max_tokens": 1024, "temperature": 0.8}


@pytest.fixture
def registry() -> AddonRegistry:
    reg = AddonRegistry()
    reg.add(Probe.as_addon())

    @register_addon("typed", manifest=TYPED_MANIFEST, defaults=TYPED_DEFAULTS, registry=reg)
    class Typed(Extension):
        pass

    return reg


def app(props: dict[str, Any] | None = None, **graph: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "voice",
        "auto_start": True,
        "nodes": [
            {"type": "extension", "name": "v2v", "addon": "typed", "property": props or {}},
            {"type": "extension", "name": "probe", "addon": "probe"},
        ],
        "connections": [
            {"extension": "probe", "cmd": [{"name": "flush", "dest": [{"extension": "v2v"}]}]}
        ],
    }
    body.update(graph)
    return {"_ten": {"predefined_graphs": [body]}}


def test_env_substitution_with_value_default_and_embedding(registry: AddonRegistry) -> None:
    props = {
        "api_key": "${env:HOST_TEST_KEY}",
        "greeting": "${env:HOST_TEST_MISSING|Hello there}",
        "url": "wss://${env:HOST_TEST_HOST}/v4${env:HOST_TEST_SUFFIX|}",
        "tools": [{"name": "${env:HOST_TEST_TOOL|weather}"}],
    }
    env = {"HOST_TEST_KEY": "secret", "HOST_TEST_HOST": "example.org"}
    graph = load_graph(app(props), registry=registry, environ=env)
    got = graph.node("v2v").properties
    assert got["api_key"] == "secret"
    assert got["greeting"] == "Hello there"
    assert got["url"] == "wss://example.org/v4"
    assert got["tools"] == [{"name": "weather"}]


def test_whole_string_substitution_stays_a_string(registry: AddonRegistry) -> None:
    graph = load_graph(app({"greeting": "${env:N}"}), registry=registry, environ={"N": "42"})
    assert graph.node("v2v").properties["greeting"] == "42"


def test_missing_env_without_default_is_empty_and_warns_naming_node_and_property(
    registry: AddonRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="glm_realtime.host.graph")
    graph = load_graph(app(), registry=registry, environ={})
    assert graph.node("v2v").properties["api_key"] == ""
    (record,) = [r for r in caplog.records if "HOST_TEST_KEY" in r.getMessage()]
    assert "node 'v2v'" in record.getMessage()
    assert "property 'api_key'" in record.getMessage()


def test_graph_properties_override_addon_defaults(registry: AddonRegistry) -> None:
    graph = load_graph(app({"max_tokens": 99}), registry=registry, environ={})
    props = graph.node("v2v").properties
    assert props["max_tokens"] == 99
    assert props["temperature"] == 0.8  # default kept


def test_int_in_float_property_becomes_float(registry: AddonRegistry) -> None:
    graph = load_graph(app({"temperature": 1}), registry=registry, environ={})
    value = graph.node("v2v").properties["temperature"]
    assert isinstance(value, float) and value == 1.0


@pytest.mark.parametrize(
    ("props", "prop", "fragment"),
    [
        ({"max_tokens": "2048"}, "max_tokens", "expected int32, got string"),
        ({"max_tokens": 2.5}, "max_tokens", "expected int32, got float64"),
        ({"max_tokens": True}, "max_tokens", "expected int32, got bool"),
        ({"small": 200}, "small", "out of range for int8"),
        ({"count": -1}, "count", "out of range for uint16"),
        ({"temperature": "hot"}, "temperature", "expected float32"),
        ({"server_vad": 1}, "server_vad", "expected bool, got int64"),
        ({"greeting": 5}, "greeting", "expected string"),
        ({"extra": []}, "extra", "expected object, got array"),
        ({"tools": {}}, "tools", "expected array, got object"),
        ({"tools": [{"name": 3}]}, "tools[0].name", "expected string"),
    ],
)
def test_wrong_property_type_is_refused_naming_graph_node_and_property(
    registry: AddonRegistry, props: dict[str, Any], prop: str, fragment: str
) -> None:
    with pytest.raises(GraphError) as info:
        load_graph(app(props), registry=registry, environ={})
    message = str(info.value)
    assert "graph 'voice'" in message
    assert "node 'v2v'" in message
    assert f"property '{prop}'" in message
    assert fragment in message


def test_undeclared_property_is_refused_listing_declared_ones(registry: AddonRegistry) -> None:
    with pytest.raises(GraphError, match=r"node 'v2v' property 'voice' is not declared") as info:
        load_graph(app({"voice": "alloy"}), registry=registry, environ={})
    assert "max_tokens" in str(info.value)


def test_bad_addon_default_is_refused_naming_the_default(registry: AddonRegistry) -> None:
    @register_addon(
        "broken",
        manifest={"api": {"property": {"n": {"type": "int32"}}}},
        defaults={"n": "x"},
        registry=registry,
    )
    class Broken(Extension):
        pass

    graph = app()
    graph["_ten"]["predefined_graphs"][0]["nodes"][0]["addon"] = "broken"
    with pytest.raises(GraphError, match=r"node 'v2v' property 'n' \(addon 'broken' default\)"):
        load_graph(graph, registry=registry, environ={})


def test_unknown_addon_lists_known_addons(registry: AddonRegistry) -> None:
    graph = app()
    graph["_ten"]["predefined_graphs"][0]["nodes"][0]["addon"] = "nope_python"
    with pytest.raises(GraphError) as info:
        load_graph(graph, registry=registry, environ={})
    message = str(info.value)
    assert "node 'v2v'" in message and "unknown addon 'nope_python'" in message
    assert "file_source" in message and "typed" in message


def test_duplicate_node_names_are_refused(registry: AddonRegistry) -> None:
    graph = app()
    nodes = graph["_ten"]["predefined_graphs"][0]["nodes"]
    nodes.append(copy.deepcopy(nodes[1]))
    with pytest.raises(GraphError, match="graph 'voice': duplicate node name 'probe'"):
        load_graph(graph, registry=registry, environ={})


def test_connection_from_missing_node_is_refused(registry: AddonRegistry) -> None:
    conns = [{"extension": "ghost", "data": [{"name": "x", "dest": [{"extension": "v2v"}]}]}]
    with pytest.raises(GraphError, match="comes from missing node 'ghost'"):
        load_graph(app(connections=conns), registry=registry, environ={})


def test_connection_to_missing_node_is_refused(registry: AddonRegistry) -> None:
    conns = [
        {"extension": "v2v", "audio_frame": [{"name": "pcm_frame", "dest": [{"extension": "rtc"}]}]}
    ]
    with pytest.raises(
        GraphError, match=r"node 'v2v' audio_frame 'pcm_frame': destination node 'rtc' is missing"
    ):
        load_graph(app(connections=conns), registry=registry, environ={})


def test_graph_selection_defaults_to_auto_start_then_by_name(registry: AddonRegistry) -> None:
    path = GRAPHS / "companions.json"
    assert load_graph(path, registry=registry, environ={}).name == "companions"
    idle = load_graph(path, "idle", registry=registry, environ={})
    assert [n.name for n in idle.nodes] == ["probe"]
    with pytest.raises(GraphError, match=r"no graph named 'x' \(graphs: idle, companions\)"):
        load_graph(path, "x", registry=registry, environ={})


def test_first_graph_is_chosen_without_auto_start(registry: AddonRegistry) -> None:
    graph = app()
    graph["_ten"]["predefined_graphs"][0]["auto_start"] = False
    assert load_graph(graph, registry=registry, environ={}).name == "voice"


def test_routes_merge_and_ignore_app_and_group_keys(registry: AddonRegistry) -> None:
    graph = load_graph(GRAPHS / "audio_pipeline.json", registry=registry, environ={})
    assert graph.destinations("source", "audio_frame", "pcm_frame") == ("sink", "probe")
    assert graph.destinations("source", "cmd", "on_user_joined") == ("probe",)
    assert graph.destinations("source", "data", "pcm_frame") == ()
    assert graph.node("source").extension_group == "input"
    assert graph.node("source").properties["channel"] == "room-1"


def test_unreadable_graph_file_names_the_file(tmp_path: Path, registry: AddonRegistry) -> None:
    bad = tmp_path / "property.json"
    bad.write_text("{not json")
    with pytest.raises(GraphError, match="property.json"):
        load_graph(bad, registry=registry)
    with pytest.raises(GraphError, match="predefined_graphs"):
        load_graph({"_ten": {}}, registry=registry)


def test_ten_011_spelling_is_read(registry: AddonRegistry) -> None:
    body = app()["_ten"]["predefined_graphs"][0]
    nested = {
        "name": "voice",
        "auto_start": True,
        "graph": {k: body[k] for k in ("nodes", "connections")},
    }
    graph = load_graph({"ten": {"predefined_graphs": [nested]}}, registry=registry, environ={})
    assert graph.destinations("probe", "cmd", "flush") == ("v2v",)
