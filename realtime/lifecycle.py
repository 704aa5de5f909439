"""``async with`` over a ``start()``/``close()`` pair, for the servers and backends above.

:class:`StartClose` gives a class whose work begins in ``start()`` and ends in an
idempotent ``close()`` the async context manager both need: entering starts it, leaving
closes it, on success, error or cancellation alike. Nothing starts in ``__init__``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["StartClose"]

_S = TypeVar("_S", bound="StartClose")


class StartClose:
    """``async with x:`` awaits ``x.start()``, and ``x.close()`` on the way out."""

    async def start(self) -> None:
        """Begin the work (open sockets, start tasks)."""
        raise NotImplementedError

    async def close(self) -> None:
        """End it and give back what it took; safe to call more than once."""
        raise NotImplementedError

    async def __aenter__(self: _S) -> _S:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
