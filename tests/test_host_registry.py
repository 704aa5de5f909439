"""Addon registry: built-ins, decorator, extension directories, entry points."""

from __future__ import annotations

import ast
import json
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from glm_realtime.host import (
    ENTRY_POINT_GROUP,
    Addon,
    AddonError,
    AddonRegistry,
    Extension,
    load_addon_dir,
    load_graph,
    register_addon,
)

BUNDLED = ("file_source", "wav_sink", "transcript_collector", "demo_tools", "chat_storage")
HOST = Path(__file__).parents[1] / "glm_realtime" / "host"


def _imports(module: Path) -> list[str]:
    """Modules ``module`` imports, statically or through importlib.import_module."""
    names: list[str] = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names += [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
    return names


def test_bundled_nodes_are_registered_by_name() -> None:
    names = AddonRegistry().names()
    for name in BUNDLED:
        assert name in names
    addon = AddonRegistry().get("file_source")
    assert addon.default_properties["trailing_silence_ms"] == 2000
    assert addon.property_schema is not None and "speed" in addon.property_schema


def test_host_imports_no_node_and_bundled_nodes_come_in_as_entry_points() -> None:
    for module in HOST.glob("*.py"):
        for imported in _imports(module):
            assert not imported.startswith(("glm_realtime.", "..")), f"{module.name}: {imported}"
    installed = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for name in BUNDLED:
        assert installed[name] == f"glm_realtime.nodes.{name}"


def test_unknown_addon_error_lists_known_names() -> None:
    with pytest.raises(AddonError, match=r"unknown addon 'x' \(known addons: .*wav_sink"):
        AddonRegistry().get("x")


def test_decorator_into_private_registry_sets_class_attributes() -> None:
    registry = AddonRegistry(include_decorated=False)

    @register_addon("mine", manifest={"api": {"property": {}}}, defaults={}, registry=registry)
    class Mine(Extension):
        pass

    assert registry.names() == ["mine"]
    assert Mine.addon_name == "mine"
    assert registry.get("mine").create("n1").name == "n1"
    assert "mine" not in AddonRegistry().names()  # nothing leaked into the global table


def test_name_clash_in_one_registry_is_refused() -> None:
    registry = AddonRegistry(include_decorated=False)

    class A(Extension):
        pass

    class B(Extension):
        pass

    registry.add(Addon("same", A))
    with pytest.raises(AddonError, match="already registered"):
        registry.add(Addon("same", B))
    registry.add(Addon("same", B), replace=True)
    assert registry.get("same").extension_class is B


def test_manifest_with_unknown_type_is_refused_naming_property() -> None:
    class A(Extension):
        pass

    with pytest.raises(AddonError, match=r"addon 'bad' manifest property 'x': unknown TEN type"):
        Addon("bad", A, {"api": {"property": {"x": {"type": "int128"}}}})


def write_extension_dir(base: Path) -> Path:
    base.mkdir()
    manifest = {
        "type": "extension",
        "name": "glm_v2v_python",
        "version": "0.1.0",
        "api": {"property": {"api_key": {"type": "string"}, "max_tokens": {"type": "int32"}}},
    }
    (base / "manifest.json").write_text(json.dumps(manifest))
    (base / "property.json").write_text(
        json.dumps({"api_key": "${env:GLM_API_KEY}", "max_tokens": 2048})
    )
    return base


def test_addon_from_extension_directory(tmp_path: Path) -> None:
    base = write_extension_dir(tmp_path / "glm_v2v_python")

    class V2V(Extension):
        pass

    addon = load_addon_dir(base, V2V)
    assert addon.name == "glm_v2v_python"
    assert addon.default_properties == {"api_key": "${env:GLM_API_KEY}", "max_tokens": 2048}
    registry = AddonRegistry(include_decorated=False)
    registry.add(addon)
    app = {
        "_ten": {
            "predefined_graphs": [
                {
                    "name": "g",
                    "nodes": [
                        {
                            "type": "extension",
                            "name": "v2v",
                            "addon": "glm_v2v_python",
                            "property": {"max_tokens": 10},
                        }
                    ],
                }
            ]
        }
    }
    graph = load_graph(app, registry=registry, environ={"GLM_API_KEY": "k"})
    assert graph.node("v2v").properties == {"api_key": "k", "max_tokens": 10}


def test_decorator_with_base_dir_reads_manifest_and_defaults(tmp_path: Path) -> None:
    base = write_extension_dir(tmp_path / "ext")
    registry = AddonRegistry(include_decorated=False)

    @register_addon("glm_v2v_python", base_dir=base, registry=registry)
    class V2V(Extension):
        pass

    assert registry.get("glm_v2v_python").default_properties["max_tokens"] == 2048
    assert V2V.default_properties is not None and V2V.default_properties["max_tokens"] == 2048


def test_missing_manifest_dir_is_an_addon_error(tmp_path: Path) -> None:
    class A(Extension):
        pass

    with pytest.raises(AddonError, match="manifest.json"):
        load_addon_dir(tmp_path, A)


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake installed distribution with three entry points in our group."""
    (tmp_path / "hostplug_demo.py").write_text(
        textwrap.dedent(
            """
            from glm_realtime.host import Extension

            class Echo(Extension):
                addon_name = "echo_plugin"
                manifest = {"type": "extension", "name": "echo_plugin",
                            "api": {"property": {"gain": {"type": "float64"}}}}
                default_properties = {"gain": 1.0}
            """
        )
    )
    (tmp_path / "hostplug_mod.py").write_text(
        textwrap.dedent(
            """
            from glm_realtime.host import Extension, register_addon

            @register_addon("hostplug_decorated", manifest={"api": {"property": {}}})
            class Decorated(Extension):
                pass
            """
        )
    )
    dist = tmp_path / "hostplug_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hostplug-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "echo = hostplug_demo:Echo\n"
        "mod = hostplug_mod\n"
        "broken = hostplug_missing_module:Thing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("hostplug_demo", None)
    sys.modules.pop("hostplug_mod", None)


def test_entry_point_addon_is_loaded_and_broken_plugin_recorded(
    plugin_dist: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = AddonRegistry()
    loaded = registry.load_entry_points()
    # This package's own entry points (the GLM node, the bundled nodes) load beside them.
    assert sorted(set(loaded) - {"glm_v2v_python", *BUNDLED}) == ["echo", "mod"]
    assert registry.get("hostplug_decorated").extension_class.__name__ == "Decorated"
    addon = registry.get("echo_plugin")
    assert addon.default_properties == {"gain": 1.0}
    assert addon.origin == "entry point hostplug_demo:Echo"
    assert "broken" in registry.load_errors
    assert "hostplug_missing_module" in registry.load_errors["broken"]
    assert "failed to load" in caplog.text
    with pytest.raises(AddonError, match="plugins that failed to load: broken"):
        registry.get("nope")
