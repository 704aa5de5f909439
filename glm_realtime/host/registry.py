"""Addons: node classes found by name, each with a TEN manifest and default properties.

Three ways in:

* ``@register_addon("name", manifest=..., defaults=...)`` on an :class:`Extension`
  subclass, or ``@register_addon("name", base_dir=dir)`` to read ``manifest.json`` and
  ``property.json`` from an extension directory, as TEN's
  ``register_addon_as_extension(name, base_dir)`` does;
* an entry point in the group ``glm_realtime.addons`` whose value is ``module:Class``
  (the class carries ``addon_name``, ``manifest`` and ``default_properties``; a class
  decorated with ``register_addon`` works too) or a bare ``module`` whose import
  registers addons with the decorator. The bundled nodes (``glm_realtime.nodes``) and
  the GLM node come in this way too, like any third-party addon: the host imports no
  node package;
* :meth:`AddonRegistry.add` with an :class:`Addon` built by hand or by
  :func:`load_addon_dir`.
"""

from __future__ import annotations

import functools
import json
import logging
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from .errors import AddonError
from .extension import Extension
from .schema import SchemaMismatch, check_schema

__all__ = [
    "ENTRY_POINT_GROUP",
    "Addon",
    "AddonRegistry",
    "default_registry",
    "load_addon_dir",
    "register_addon",
]

ENTRY_POINT_GROUP = "glm_realtime.addons"
_log = logging.getLogger("glm_realtime.host.registry")
_E = TypeVar("_E", bound=type[Extension])

# Filled by @register_addon without an explicit registry, at import time.
_DECORATED: dict[str, Addon] = {}


@dataclass(frozen=True)
class Addon:
    """A named node factory with its manifest and default properties.

    Attributes:
        name: Addon name graphs refer to (``"addon"`` of a node).
        extension_class: The :class:`Extension` subclass instantiated per node.
        manifest: TEN manifest dict; ``api.property`` maps each declared property to
            its schema. Without ``api.property`` every property is accepted unchecked.
        default_properties: Properties a graph node starts from.
        origin: Where the addon came from, for messages.
    """

    name: str
    extension_class: type[Extension]
    manifest: Mapping[str, Any] = field(default_factory=dict)
    default_properties: Mapping[str, Any] = field(default_factory=dict)
    origin: str = "builtin"

    def __post_init__(self) -> None:
        if not isinstance(self.extension_class, type) or not issubclass(
            self.extension_class, Extension
        ):
            raise AddonError(f"addon '{self.name}': {self.extension_class!r} is not an Extension")
        if not isinstance(self.manifest, Mapping):
            raise AddonError(f"addon '{self.name}': manifest must be an object")
        if not isinstance(self.default_properties, Mapping):
            raise AddonError(f"addon '{self.name}': default properties must be an object")
        schema = self.property_schema
        if schema is None:
            return
        if not isinstance(schema, Mapping):
            raise AddonError(f"addon '{self.name}': manifest api.property must be an object")
        for prop, sub in schema.items():
            try:
                check_schema(sub, prop)
            except SchemaMismatch as exc:
                raise AddonError(
                    f"addon '{self.name}' manifest property '{exc.path}': {exc}"
                ) from exc

    @property
    def property_schema(self) -> Mapping[str, Any] | None:
        """The ``api.property`` map, or ``None`` when the manifest declares none."""
        api = self.manifest.get("api")
        if not isinstance(api, Mapping):
            return None
        schema: Mapping[str, Any] | None = api.get("property")
        return schema

    def create(self, node_name: str) -> Extension:
        """Instantiate the extension for the node ``node_name``."""
        return self.extension_class(node_name)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AddonError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise AddonError(f"{path} must hold a JSON object")
    return value


def load_addon_dir(
    directory: str | Path, extension_class: type[Extension], *, name: str | None = None
) -> Addon:
    """Build an addon from an extension directory holding ``manifest.json``.

    ``property.json`` (optional) gives the default properties.

    Args:
        directory: The extension directory.
        extension_class: The node class.
        name: Addon name; defaults to the manifest's ``name``.

    Raises:
        AddonError: A file is unreadable or not a JSON object, or no name is known.
    """
    base = Path(directory)
    manifest = _read_json_object(base / "manifest.json")
    prop_file = base / "property.json"
    defaults = _read_json_object(prop_file) if prop_file.exists() else {}
    addon_name = name or manifest.get("name")
    if not isinstance(addon_name, str) or not addon_name:
        raise AddonError(f"{base / 'manifest.json'} has no 'name' and none was given")
    return Addon(addon_name, extension_class, manifest, defaults, origin=str(base))


def _addon_from_class(cls: type[Extension], name: str | None, origin: str) -> Addon:
    addon_name = cls.addon_name or name
    if not addon_name:
        raise AddonError(f"{cls.__module__}.{cls.__qualname__} has no addon_name")
    manifest = cls.manifest or {"type": "extension", "name": addon_name}
    return Addon(addon_name, cls, manifest, dict(cls.default_properties or {}), origin)


def _same_class(a: type[Extension], b: type[Extension]) -> bool:
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def register_addon(
    name: str,
    *,
    manifest: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    base_dir: str | Path | None = None,
    registry: AddonRegistry | None = None,
) -> Callable[[_E], _E]:
    """Class decorator registering an :class:`Extension` subclass as addon ``name``.

    Args:
        name: Addon name.
        manifest: TEN manifest dict (``api.property`` declares the properties).
        defaults: Default properties.
        base_dir: Read manifest and defaults from ``manifest.json``/``property.json``
            there instead (explicit ``manifest``/``defaults`` still win).
        registry: Register there instead of the process-wide table every
            :class:`AddonRegistry` sees.

    Raises:
        AddonError: Another class already holds ``name``, or the manifest is invalid.
    """

    def decorate(cls: _E) -> _E:
        addon_manifest: Mapping[str, Any] = {"type": "extension", "name": name, "api": {}}
        addon_defaults: Mapping[str, Any] = {}
        origin = f"{cls.__module__}.{cls.__qualname__}"
        if base_dir is not None:
            loaded = load_addon_dir(base_dir, cls, name=name)
            addon_manifest, addon_defaults, origin = (
                loaded.manifest,
                loaded.default_properties,
                loaded.origin,
            )
        addon = Addon(
            name,
            cls,
            manifest if manifest is not None else addon_manifest,
            defaults if defaults is not None else addon_defaults,
            origin,
        )
        cls.addon_name = name
        cls.manifest = types.MappingProxyType(dict(addon.manifest))
        cls.default_properties = types.MappingProxyType(dict(addon.default_properties))
        if registry is not None:
            registry.add(addon)
            return cls
        held = _DECORATED.get(name)
        if held is not None and not _same_class(held.extension_class, cls):
            raise AddonError(f"addon '{name}' is already registered by {held.origin}")
        _DECORATED[name] = addon
        return cls

    return decorate


class AddonRegistry:
    """Addons by name.

    Args:
        include_decorated: Also see every installed addon (the entry-point group, the
            bundled nodes among them; loaded on first lookup) and every addon registered
            with ``@register_addon`` without an explicit registry.
    """

    def __init__(self, *, include_decorated: bool = True) -> None:
        self._own: dict[str, Addon] = {}
        self._include_decorated = include_decorated
        self._entry_points_loaded = False
        self.load_errors: dict[str, str] = {}
        """Entry points that failed to load: entry-point name -> reason."""

    def add(self, addon: Addon, *, replace: bool = False) -> None:
        """Register ``addon``.

        Raises:
            AddonError: The name is taken in this registry and ``replace`` is false.
        """
        held = self._own.get(addon.name)
        if held is not None and not replace and held.extension_class is not addon.extension_class:
            raise AddonError(f"addon '{addon.name}' is already registered by {held.origin}")
        self._own[addon.name] = addon

    def _table(self) -> dict[str, Addon]:
        if not self._include_decorated:
            return dict(self._own)
        if not self._entry_points_loaded:
            self.load_entry_points()
        return {**_DECORATED, **self._own}

    def find(self, name: str) -> Addon | None:
        """Return the addon called ``name``, or ``None``."""
        return self._table().get(name)

    def get(self, name: str) -> Addon:
        """Return the addon called ``name``.

        Raises:
            AddonError: No such addon; the message lists the known ones.
        """
        addon = self.find(name)
        if addon is None:
            raise AddonError(f"unknown addon '{name}' ({self.describe_known()})")
        return addon

    def names(self) -> list[str]:
        """Return the sorted names of every known addon."""
        return sorted(self._table())

    def describe_known(self) -> str:
        """Describe the known addons (and broken plugins) for error messages."""
        text = f"known addons: {', '.join(self.names()) or 'none'}"
        if self.load_errors:
            text += f"; plugins that failed to load: {', '.join(sorted(self.load_errors))}"
        return text

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Load third-party addons from installed packages' entry points.

        A plugin that fails to import is logged and recorded in :attr:`load_errors`
        rather than raised, so one broken package does not stop the others.

        Returns:
            Names of the entry points that loaded.
        """
        if group == ENTRY_POINT_GROUP:
            self._entry_points_loaded = True
        loaded: list[str] = []
        for ep in metadata.entry_points(group=group):
            try:
                target = ep.load()
                if isinstance(target, type) and issubclass(target, Extension):
                    self.add(_addon_from_class(target, ep.name, f"entry point {ep.value}"))
                elif not isinstance(target, types.ModuleType):
                    raise AddonError(f"{ep.value} is neither an Extension subclass nor a module")
            except Exception as exc:
                self.load_errors[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
                _log.warning("addon plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)
                continue
            loaded.append(ep.name)
        return loaded


@functools.cache
def default_registry() -> AddonRegistry:
    """Return the process-wide registry: installed addons (built-ins too) and decorated ones."""
    return AddonRegistry()
