"""Giving freed heap memory back to the operating system.

A pocketsphinx decoder is ~35-45 MB of small C allocations. When it is freed, glibc keeps
the pages in its heaps (one arena per thread that allocated, up to 8 per core), so a
process that made and freed decoders on many threads kept its peak RSS forever: measured,
12 sessions one after another grew the server from 100 to 690 MB with no decoder alive,
and ``malloc_trim(0)`` brought it back to 141 MB. A silero VAD (~9 MB of C memory) is
kept the same way. So what frees them calls :func:`return_freed_memory`: the recogniser's
and the VAD's ``close``, whoever owns them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["return_freed_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    return trim


def return_freed_memory() -> None:
    """Return the free pages of every malloc arena to the OS (glibc; elsewhere a no-op)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
