"""Lazy imports of the optional speech libraries, with errors that name the pip extra."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingSpeechDependency", "require"]


class MissingSpeechDependency(ImportError):
    """An optional library that a speech component needs is not installed.

    It is an :class:`ImportError`, so ``except ImportError`` and
    ``pytest.importorskip``-style guards keep working.
    """

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{module!r} is not installed; the offline speech components need it. "
            f"Install it with: pip install 'glm-realtime[{extra}]'",
            name=module,
        )


def require(module: str, extra: str = "local") -> ModuleType:
    """Import ``module`` or raise :class:`MissingSpeechDependency` naming ``extra``.

    Args:
        module: Dotted module name, e.g. ``"pocketsphinx"``.
        extra: The pip extra of glm-realtime that installs it.

    Returns:
        The imported module.

    Raises:
        MissingSpeechDependency: If the import fails.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingSpeechDependency(module, extra) from exc
