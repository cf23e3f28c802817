"""A channel's secrets travel as one credential: a small JSON object (``url``, ``key``, ``password``), so the
outbox journals one reference and resolves one secret; its parts are never logged or stored."""

from __future__ import annotations

import json

__all__ = ["pack", "unpack"]


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
