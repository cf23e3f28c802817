"""Text helpers shared by the renderers: UTF-8-safe clipping, trace trimming, XML-safe characters."""

from __future__ import annotations

import re

__all__ = ["clip_utf8", "trim_lines", "utf8_len", "xml_safe", "escape", "quoteattr"]

# Characters XML 1.0 cannot carry at all, even escaped (C0 controls except tab/LF/CR, surrogates, U+FFFE/F).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def utf8_len(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes (lone surrogates count as the replacement they become)."""
    return len(text.encode("utf-8", "replace"))


def clip_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits ``max_bytes``, never splitting a character."""
    if max_bytes <= 0:
        return ""
    # Lone surrogates (possible in str, impossible in UTF-8) become "?" so the result always encodes.
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8")
    # "ignore" drops the partial trailing sequence left by the byte cut.
    return data[:max_bytes].decode("utf-8", "ignore")


def trim_lines(text: str, keep: int) -> str:
    """Keep the first and last ``keep // 2`` lines of a long trace, saying how many were left out."""
    lines = text.splitlines()
    if keep <= 0:
        return ""
    if len(lines) <= keep:
        return text
    head = max(keep // 2, 1)
    tail = keep - head
    cut = len(lines) - head - tail
    kept = [*lines[:head], f"… {cut} lines trimmed …", *(lines[-tail:] if tail else [])]
    return "\n".join(kept)


def xml_safe(text: str) -> str:
    """Replace characters XML 1.0 cannot represent with U+FFFD so any output stays well-formed."""
    return _XML_INVALID.sub("\ufffd", text)


# xml.sax.saxutils imports urllib.request (and with it http.client and email): ~10 ms the daemon's start-up
# does not need, so the renderers import it when they first escape something.
def escape(text: str, entities: dict[str, str] | None = None) -> str:
    """``xml.sax.saxutils.escape``: ``&``, ``<`` and ``>`` (plus ``entities``) as XML entities."""
    from xml.sax.saxutils import escape as _escape

    return _escape(text, entities or {})


def quoteattr(text: str, entities: dict[str, str] | None = None) -> str:
    """``xml.sax.saxutils.quoteattr``: ``text`` escaped and quoted as an XML attribute value."""
    from xml.sax.saxutils import quoteattr as _quoteattr

    return _quoteattr(text, entities or {})
