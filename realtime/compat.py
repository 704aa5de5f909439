"""What differs between Python 3.10 (TEN's runtime) and 3.11, in one place.

* ``timeout``: ``asyncio.timeout`` on 3.11, ``async_timeout.timeout`` on 3.10 (same use).
* ``TIMEOUT_ERRORS``: catch this, not ``TimeoutError``. On 3.10 ``asyncio.wait_for`` and
  ``async_timeout`` raise ``asyncio.TimeoutError``, which is not the builtin there (from
  3.11 on they are one class).
"""

from __future__ import annotations

import asyncio
import sys

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # pragma: no cover - exercised on 3.10 only
    from async_timeout import timeout

__all__ = ["TIMEOUT_ERRORS", "timeout"]

TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, asyncio.TimeoutError)
