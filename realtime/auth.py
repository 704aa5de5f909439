"""Credentials for the GLM-Realtime handshake.

GLM takes ``Authorization: Bearer <token>`` where the token is either the API key
``{id}.{secret}`` itself (servers) or a short-lived HS256 JWT signed with the secret
(header ``{"alg": "HS256", "sign_type": "SIGN"}``, payload ``api_key``, ``exp`` and
``timestamp``, both in milliseconds as Zhipu's own SDK does).
"""

from __future__ import annotations

import time
import warnings

import jwt

from realtime.errors import ConfigError

__all__ = ["make_jwt", "split_api_key", "verify_jwt"]


def split_api_key(api_key: str) -> tuple[str, str]:
    """Split ``{id}.{secret}``; the error never repeats the key."""
    key_id, sep, secret = api_key.strip().partition(".")
    if not sep or not key_id or not secret:
        raise ConfigError(
            f"api key must look like '<id>.<secret>' to sign a JWT (got {len(api_key)} characters)"
        )
    return key_id, secret


def make_jwt(api_key: str, ttl_s: float = 3600.0, now_s: float | None = None) -> str:
    """A token valid for ``ttl_s`` seconds from ``now_s`` (default: now)."""
    if ttl_s <= 0:
        raise ConfigError(f"jwt_ttl must be positive seconds (got {ttl_s})")
    key_id, secret = split_api_key(api_key)
    now_ms = int((time.time() if now_s is None else now_s) * 1000)
    payload = {"api_key": key_id, "exp": now_ms + int(ttl_s * 1000), "timestamp": now_ms}
    with warnings.catch_warnings():
        # Zhipu issues the secret; its length is not the caller's choice to fix.
        warnings.filterwarnings("ignore", message="The HMAC key is")
        return jwt.encode(payload, secret, algorithm="HS256", headers={"sign_type": "SIGN"})


def verify_jwt(token: str, api_key: str, now_s: float | None = None) -> bool:
    """For servers: was ``token`` made by :func:`make_jwt` from ``api_key``, and is it valid?

    Checks the HS256 signature, the ``sign_type`` header, the key id and the expiry (in
    milliseconds, which PyJWT's own ``exp`` check would read as seconds).
    """
    try:
        key_id, secret = split_api_key(api_key)
    except ConfigError:
        return False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The HMAC key is")
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_exp": False})
            header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return False
    now_ms = int((time.time() if now_s is None else now_s) * 1000)
    expires = claims.get("exp")
    return (
        header.get("sign_type") == "SIGN"
        and claims.get("api_key") == key_id
        and isinstance(expires, int)
        and expires > now_ms
    )
