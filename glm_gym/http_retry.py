"""The one reading of an HTTP ``Retry-After`` the gym's clients share."""

from __future__ import annotations

import httpx

__all__ = ["retry_after_s"]


def retry_after_s(response: httpx.Response, cap_s: float) -> float | None:
    """Seconds ``response`` asks to wait, within 0..``cap_s``; None without the header or
    with an HTTP date (the caller's own backoff then)."""
    value = response.headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), cap_s) if value is not None else None
    except ValueError:
        return None
