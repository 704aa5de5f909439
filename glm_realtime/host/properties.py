"""Property trees: the typed, path-addressed key/value store of messages and nodes.

A TEN property path names a value inside a JSON-like tree: ``"a"``, ``"a.b"``,
``"items[0].name"``. The empty path (or ``None`` where allowed) is the whole tree.

Getters raise :class:`~glm_realtime.host.errors.PropertyError` (a ``RuntimeError``,
as in TEN) naming the property and its owner when the value is missing or has another
type. ``get_property_float`` widens an int; ``get_property_int`` never accepts a bool
or a float.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import PropertyError

__all__ = ["PropertyAccessors", "PropertyStore", "parse_path", "ten_type_name"]

_PART = re.compile(r"^([^.\[\]]+)((?:\[\d+\])*)$")
_INDEX = re.compile(r"\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """Split a TEN property path into keys and list indices.

    Args:
        path: A path such as ``"tool.parameters[0].name"``; ``""`` is the root.

    Returns:
        The steps, for example ``["tool", "parameters", 0, "name"]``.

    Raises:
        PropertyError: The path is malformed.
    """
    if path == "":
        return []
    steps: list[str | int] = []
    for part in path.split("."):
        match = _PART.match(part)
        if match is None:
            raise PropertyError(f"malformed property path '{path}'")
        steps.append(match.group(1))
        steps.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return steps


def ten_type_name(value: object) -> str:
    """Name the TEN type of a Python value (``"string"``, ``"int64"``, ``"object"``, ...)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "buf"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return type(value).__name__


def _json_default(value: object) -> object:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class PropertyStore:
    """A JSON-like tree addressed by TEN property paths.

    Args:
        owner: How errors name the holder, for example ``"cmd 'flush'"``.
        initial: Initial tree; deep-copied.
    """

    def __init__(self, owner: str, initial: Mapping[str, Any] | None = None) -> None:
        self.owner = owner
        self._root: dict[str, Any] = copy.deepcopy(dict(initial)) if initial else {}

    def _missing(self, path: str) -> PropertyError:
        return PropertyError(f"property '{path}' of {self.owner} does not exist")

    def _lookup(self, path: str) -> tuple[bool, Any]:
        node: Any = self._root
        for step in parse_path(path):
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return False, None
            elif not isinstance(node, dict) or step not in node:
                return False, None
            node = node[step]
        return True, node

    def exists(self, path: str) -> bool:
        """Tell whether ``path`` names a value."""
        return self._lookup(path)[0]

    def get(self, path: str) -> Any:
        """Return the value at ``path`` (not a copy).

        Raises:
            PropertyError: Nothing is stored there.
        """
        found, value = self._lookup(path)
        if not found:
            raise self._missing(path)
        return value

    def set(self, path: str, value: Any) -> None:
        """Store ``value`` at ``path``, creating intermediate objects.

        Raises:
            PropertyError: The path is empty and ``value`` is not an object, or it
                crosses a value that is not an object or indexes past a list's end.
        """
        steps = parse_path(path)
        if not steps:
            if not isinstance(value, dict):
                raise PropertyError(f"the root of {self.owner} must be an object")
            self._root = value
            return
        node: Any = self._root
        for here, step in enumerate(steps):
            last = here == len(steps) - 1
            following: Any = [] if not last and isinstance(steps[here + 1], int) else {}
            if isinstance(step, int):
                if not isinstance(node, list) or step > len(node):
                    raise PropertyError(f"cannot set '{path}' of {self.owner}: bad index {step}")
                if step == len(node):
                    node.append(value if last else following)
                elif last:
                    node[step] = value
            else:
                if not isinstance(node, dict):
                    raise PropertyError(f"cannot set '{path}' of {self.owner}: not an object")
                if last:
                    node[step] = value
                elif step not in node or not isinstance(node[step], (dict, list)):
                    node[step] = following
            node = node[step]

    def typed(self, path: str, kind: type, ten_kind: str) -> Any:
        """Return the value at ``path`` if it is of Python type ``kind``.

        Raises:
            PropertyError: Missing, or of another type (bool never counts as int).
        """
        value = self.get(path)
        if isinstance(value, bool):
            ok = kind is bool
        elif kind is float and isinstance(value, int):
            return float(value)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise PropertyError(
                f"property '{path}' of {self.owner} is {ten_type_name(value)}, not {ten_kind}"
            )
        return value

    def to_json(self, path: str | None = None) -> str:
        """Serialise the value at ``path`` (the whole tree when empty or ``None``)."""
        value = self._root if not path else self.get(path)
        return json.dumps(value, ensure_ascii=False, default=_json_default)

    def set_from_json(self, path: str, text: str) -> None:
        """Parse ``text`` as JSON and store it at ``path``.

        Raises:
            PropertyError: ``text`` is not valid JSON.
        """
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise PropertyError(
                f"invalid JSON for property '{path}' of {self.owner}: {exc}"
            ) from exc
        self.set(path, value)

    def snapshot(self) -> dict[str, Any]:
        """Return a deep copy of the whole tree."""
        return copy.deepcopy(self._root)


class PropertyAccessors:
    """The TEN property methods shared by messages and node environments.

    Subclasses set ``self._props`` to a :class:`PropertyStore`.
    """

    _props: PropertyStore

    def is_property_exist(self, path: str) -> bool:
        """Tell whether the property at ``path`` exists."""
        return self._props.exists(path)

    def get_property_string(self, path: str) -> str:
        """Return a string property; raises :class:`PropertyError` otherwise."""
        value: str = self._props.typed(path, str, "string")
        return value

    def get_property_int(self, path: str) -> int:
        """Return an integer property (never a bool or a float)."""
        value: int = self._props.typed(path, int, "int")
        return value

    def get_property_bool(self, path: str) -> bool:
        """Return a bool property."""
        value: bool = self._props.typed(path, bool, "bool")
        return value

    def get_property_float(self, path: str) -> float:
        """Return a float property; an int property is widened to float."""
        value: float = self._props.typed(path, float, "float")
        return value

    def get_property_buf(self, path: str) -> bytearray:
        """Return a copy of a buffer property."""
        value = self._props.get(path)
        if not isinstance(value, (bytes, bytearray)):
            raise PropertyError(
                f"property '{path}' of {self._props.owner} is {ten_type_name(value)}, not buf"
            )
        return bytearray(value)

    def get_property_to_json(self, path: str | None = None) -> str:
        """Return the property at ``path`` (all properties when ``None`` or ``""``) as JSON."""
        return self._props.to_json(path)

    def set_property_string(self, path: str, value: str) -> None:
        """Store a string property."""
        self._check(path, value, str, "string")
        self._props.set(path, value)

    def set_property_int(self, path: str, value: int) -> None:
        """Store an integer property."""
        self._check(path, value, int, "int")
        self._props.set(path, value)

    def set_property_bool(self, path: str, value: bool) -> None:
        """Store a bool property."""
        self._check(path, value, bool, "bool")
        self._props.set(path, value)

    def set_property_float(self, path: str, value: float) -> None:
        """Store a float property (an int is stored as float)."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        self._check(path, value, float, "float")
        self._props.set(path, value)

    def set_property_buf(self, path: str, value: bytes | bytearray | memoryview) -> None:
        """Store a copy of a byte buffer."""
        self._props.set(path, bytes(value))

    def set_property_from_json(self, path: str, json_str: str) -> None:
        """Parse ``json_str`` and store the value at ``path``."""
        self._props.set_from_json(path, json_str)

    def _check(self, path: str, value: object, kind: type, ten_kind: str) -> None:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise PropertyError(
                f"cannot set property '{path}' of {self._props.owner} to "
                f"{ten_type_name(value)}: expected {ten_kind}"
            )
