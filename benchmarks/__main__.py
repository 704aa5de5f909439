"""Run one benchmark: ``python -m benchmarks <name> [args...]``.

Any module of this package that defines ``main(argv: list[str]) -> int | None`` is a
benchmark; it is found by name, so adding one needs no change here.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from typing import cast

import benchmarks

Main = Callable[[list[str]], "int | None"]


def available() -> dict[str, str]:
    """Map each benchmark name to the first line of its module docstring."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        if callable(getattr(module, "main", None)):
            doc_lines = (module.__doc__ or "").strip().splitlines()
            found[info.name] = doc_lines[0] if doc_lines else ""
    return found


def usage(names: dict[str, str]) -> str:
    lines = ["usage: python -m benchmarks <name> [args...]", "", "available benchmarks:"]
    width = max((len(n) for n in names), default=0)
    lines += [f"  {name.ljust(width)}  {summary}" for name, summary in sorted(names.items())]
    if not names:
        lines.append("  (none)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    names = available()
    if not args or args[0] not in names:
        if args and args[0] not in ("-h", "--help"):
            print(f"unknown benchmark: {args[0]!r}\n", file=sys.stderr)
        print(usage(names), file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"benchmarks.{args[0]}")
    result = cast(Main, module.main)(args[1:])
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
