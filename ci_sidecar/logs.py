"""Logging: to stderr or a file (never stdout, which carries the protocol), with secret redaction.

Every known secret (tokens a session or the config supplied) is registered here and replaced by
``***`` in every log record, whatever logger or exception text it came through.
"""

from __future__ import annotations

import logging
import sys
import threading

__all__ = ["setup_logging", "register_secret", "redact"]

_secrets: set[str] = set()
_lock = threading.Lock()
_MIN_SECRET_LEN = 6  # shorter values would redact ordinary words


def register_secret(value: str | None) -> None:
    """Make sure ``value`` never appears in a log line."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text``."""
    if not _secrets:
        return text
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO", log_file: str | None = None) -> None:
    """Configure the root logger once: stderr (or ``log_file``), redacted."""
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # third-party chatter at INFO would flood stderr (and never carries anything the user needs)
    for noisy in ("httpx", "httpcore", "jsonrpcserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
