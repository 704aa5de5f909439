"""Logging helpers shared by clients and servers of the protocol."""

from __future__ import annotations

import logging

__all__ = ["RedactAuthorization", "wire_logger"]


class RedactAuthorization(logging.Filter):
    """websockets logs handshake headers at debug level; keep keys and tokens out."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg) + " ".join(str(arg) for arg in record.args or ())
        if "authorization" in text.lower():
            record.msg, record.args = "Authorization: [redacted]", ()
        return True


def wire_logger(name: str) -> logging.Logger:
    """The logger to hand to websockets: its handshake lines pass through the redaction."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactAuthorization) for f in logger.filters):
        logger.addFilter(RedactAuthorization())
    return logger
