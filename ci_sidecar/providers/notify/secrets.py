"""A channel's secrets travel as one credential: a small JSON object (``url``, ``key``, ``password``), so the
outbox journals one reference and resolves one secret; its parts are never logged or stored."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["pack", "unpack", "url_secrets"]

_DATE_OR_VERSION = re.compile(r"[\d.-]+")


def pack(**parts: str | None) -> str:
    """The credential string of a channel's secret parts (``None`` parts left out)."""
    return json.dumps({k: v for k, v in sorted(parts.items()) if v}, separators=(",", ":"))


def unpack(token: str | None) -> dict[str, str]:
    """The parts of a packed credential (empty when there is none or it is not one)."""
    if not token:
        return {}
    try:
        value = json.loads(token)
    except ValueError:
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def _token_like(part: str) -> bool:
    """A path segment or query value that can be a token: long, or mixing letters and digits (not a word such as
    ``services`` or ``workflows``, not an API version such as ``2016-06-01``)."""
    if len(part) < 8 or _DATE_OR_VERSION.fullmatch(part):
        return False
    return len(part) >= 16 or (any(c.isalpha() for c in part) and any(c.isdigit() for c in part))


def url_secrets(url: str) -> list[str]:
    """What of a webhook URL must never be shown: the URL, its path and query, and each part of them that can
    carry the token on its own (Slack's and Teams' tokens are a path segment and the ``sig`` query value), as
    written and percent-decoded. A receiver that echoes the path or the token in its error answer is then
    redacted as well as one that echoes the URL."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return [url]
    found = [url, parts.path + (f"?{parts.query}" if parts.query else ""), password or ""]
    pieces = parts.path.split("/") + [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    for piece in pieces:
        if _token_like(piece) or _token_like(unquote(piece)):
            found += [piece, unquote(piece)]
    return [s for s in dict.fromkeys(found) if len(s) >= 6]
