"""Turn pydantic validation failures into one ConfigError that names each field."""

from __future__ import annotations

from pydantic import ValidationError

from realtime.errors import ConfigError

_MAX_INPUT_REPR = 60


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: ``prefix.field.path: message (got value)``."""
    lines = []
    for err in exc.errors(include_url=False):
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, ConfigError):  # a nested model already named its fields and values
            lines.append(str(inner))
            continue
        loc = ".".join(str(part) for part in err["loc"])
        where = ".".join(p for p in (prefix, loc) if p)
        given = repr(err.get("input"))
        if len(given) > _MAX_INPUT_REPR:
            given = given[:_MAX_INPUT_REPR] + "..."
        # A model-level check already names its fields; echoing the whole object is noise.
        whole = not err["loc"] or (err["type"] == "value_error" and isinstance(err["input"], dict))
        got = "" if err["type"] == "missing" or whole else f" (got {given})"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}{got}" if where else f"{message}{got}")
    return "; ".join(lines)


def config_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    """Build the ConfigError for ``exc``; callers raise it ``from exc``."""
    return ConfigError(describe_validation_error(exc, prefix))
