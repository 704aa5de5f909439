"""TEN property types and ``${env:...}`` substitution.

A manifest declares each property as ``{"type": T}`` with ``T`` one of ``string``,
``bool``, ``int8``..``int64``, ``uint8``..``uint64``, ``float32``, ``float64``,
``object`` (optionally with ``properties``) or ``array`` (optionally with ``items``).
Integers must be JSON integers in range (a bool is not an int); a float accepts an
integer and stores it as float, as TEN does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from .properties import ten_type_name

__all__ = [
    "ENV_PATTERN",
    "TEN_TYPES",
    "SchemaMismatch",
    "check_schema",
    "check_value",
    "substitute_env",
]

_INT_RANGES: dict[str, tuple[int, int]] = {
    **{f"int{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)},
    **{f"uint{bits}": (0, 2**bits - 1) for bits in (8, 16, 32, 64)},
}
TEN_TYPES: frozenset[str] = frozenset(
    {"string", "bool", "float32", "float64", "object", "array", *_INT_RANGES}
)
ENV_PATTERN = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?:\|([^}]*))?\}")


class SchemaMismatch(ValueError):
    """A value or a schema is wrong at ``path`` (``str(exc)`` says how)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


def check_schema(schema: Any, path: str) -> None:
    """Check that ``schema`` is a TEN property schema.

    Raises:
        SchemaMismatch: Not an object with a known ``type`` (recursively).
    """
    if not isinstance(schema, Mapping) or "type" not in schema:
        raise SchemaMismatch(path, "schema must be an object with a 'type'")
    kind = schema["type"]
    if kind not in TEN_TYPES:
        raise SchemaMismatch(
            path, f"unknown TEN type {kind!r} (known: {', '.join(sorted(TEN_TYPES))})"
        )
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{path}.{name}")
    if "items" in schema:
        check_schema(schema["items"], f"{path}[]")


def check_value(value: Any, schema: Mapping[str, Any], path: str) -> Any:
    """Check ``value`` against a TEN property schema.

    Args:
        value: JSON value.
        schema: ``{"type": ..., "properties"?: ..., "items"?: ...}``.
        path: Property path used in messages.

    Returns:
        The value, with integers in float properties turned into floats.

    Raises:
        SchemaMismatch: The value does not fit.
    """
    kind = schema["type"]
    got = ten_type_name(value)

    def wrong() -> SchemaMismatch:
        return SchemaMismatch(path, f"expected {kind}, got {got} {value!r}")

    if kind == "string":
        if not isinstance(value, str):
            raise wrong()
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong()
        return value
    if kind in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong()
        low, high = _INT_RANGES[kind]
        if not low <= value <= high:
            raise SchemaMismatch(path, f"{value} is out of range for {kind} [{low}, {high}]")
        return value
    if kind in ("float32", "float64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong()
        return float(value)
    if kind == "object":
        if not isinstance(value, Mapping):
            raise wrong()
        fields: Mapping[str, Any] = schema.get("properties") or {}
        return {
            key: check_value(item, fields[key], f"{path}.{key}") if key in fields else item
            for key, item in value.items()
        }
    if not isinstance(value, list):  # "array"
        raise wrong()
    items = schema.get("items")
    if items is None:
        return value
    return [check_value(item, items, f"{path}[{i}]") for i, item in enumerate(value)]


def substitute_env(
    value: Any,
    path: str,
    on_missing: Callable[[str, str], None],
    environ: Mapping[str, str] | None = None,
) -> Any:
    """Replace ``${env:NAME}`` and ``${env:NAME|default}`` in every string of ``value``.

    The result of a substitution stays a string, even when the whole string was one
    placeholder. A variable that is unset and has no default becomes ``""``.

    Args:
        value: A JSON value; objects and arrays are walked.
        path: Property path of ``value``, given to ``on_missing``.
        on_missing: Called as ``on_missing(path, variable)`` for each unset variable
            without a default.
        environ: Variables to read; ``os.environ`` when ``None``.

    Returns:
        A new value with substitutions made.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is None:
                on_missing(path, name)
                return ""
            return default

        return ENV_PATTERN.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: substitute_env(v, f"{path}.{k}", on_missing, env) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, f"{path}[{i}]", on_missing, env) for i, v in enumerate(value)]
    return value
