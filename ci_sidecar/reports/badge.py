"""Shields-style status badges (SVG, styles ``flat``, ``flat-square``, ``for-the-badge``) and shields endpoint JSON.

Widths: shields.io measures text in Verdana 11px. Verdana is not free to ship, so the table below holds the
advance widths of **DejaVu Sans** (regular and bold) at 11px for printable ASCII, read from DejaVuSans.ttf /
DejaVuSans-Bold.ttf (Debian's fonts-dejavu-core; ``tests/reports/test_badge.py`` re-derives them from the font
when it is installed). DejaVu Sans descends from Bitstream Vera, whose proportions are close to Verdana's, and
every ``<text>`` carries ``textLength`` so viewers fit the text to the computed width whatever font they use.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import msgspec

from ci_sidecar.protocol.records import TestRun

from ._text import escape, quoteattr

__all__ = [
    "BadgeStyle",
    "COLORS",
    "badge_svg",
    "run_badge_message",
    "shields_endpoint_json",
    "status_color",
    "text_width",
]

BadgeStyle = Literal["flat", "flat-square", "for-the-badge"]

# Advance widths in px at 11px for code points 32..126 (space … tilde), DejaVu Sans Book and Bold.
_REGULAR = (
    3.497, 4.41, 5.06, 9.217, 6.999, 10.452, 8.578, 3.024, 4.292, 4.292, 5.5, 9.217, 3.497, 3.969, 3.497, 3.706,
    6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 3.706, 3.706, 9.217, 9.217, 9.217, 5.838,
    11.0, 7.525, 7.546, 7.681, 8.47, 6.95, 6.327, 8.524, 8.271, 3.244, 3.244, 7.213, 6.128, 9.491, 8.229, 8.658,
    6.633, 8.658, 7.643, 6.982, 6.719, 8.051, 7.525, 10.876, 7.536, 6.719, 7.536, 4.292, 3.706, 4.292, 9.217, 5.5,
    5.5, 6.741, 6.982, 6.048, 6.982, 6.768, 3.873, 6.982, 6.972, 3.056, 3.056, 6.37, 3.056, 10.715, 6.972, 6.73,
    6.982, 6.982, 4.522, 5.731, 4.313, 6.972, 6.51, 8.997, 6.51, 6.51, 5.774, 6.999, 3.706, 6.999, 9.217,
)
_BOLD = (
    3.83, 5.017, 5.731, 9.217, 7.654, 11.021, 9.593, 3.368, 5.027, 5.027, 5.752, 9.217, 4.179, 4.565, 4.179, 4.018,
    7.654, 7.654, 7.654, 7.654, 7.654, 7.654, 7.654, 7.654, 7.654, 7.654, 4.399, 4.399, 9.217, 9.217, 9.217, 6.381,
    11.0, 8.513, 8.384, 8.073, 9.131, 7.514, 7.514, 9.029, 9.206, 4.093, 4.093, 8.524, 7.009, 10.946, 9.206, 9.351,
    8.062, 9.351, 8.47, 7.922, 7.503, 8.932, 8.513, 12.133, 8.481, 7.965, 7.976, 5.027, 4.018, 5.027, 9.217, 5.5,
    5.5, 7.423, 7.874, 6.521, 7.874, 7.46, 4.786, 7.874, 7.831, 3.771, 3.771, 7.315, 3.771, 11.462, 7.831, 7.557,
    7.874, 7.874, 5.425, 6.547, 5.258, 7.831, 7.17, 10.162, 7.095, 7.17, 6.402, 7.831, 4.018, 7.831, 9.217,
)
_WIDE_EM = 1.0  # CJK and other East Asian wide characters take a full em
_OTHER_EM = 0.8  # a conservative guess for other non-ASCII letters (wider than most Latin glyphs)

#: The shields.io palette names the colours use.
COLORS = {
    "brightgreen": "#4c1",
    "green": "#97ca00",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "lightgrey": "#9f9f9f",
}
_STATUS = {
    "passing": "brightgreen", "passed": "brightgreen", "success": "brightgreen",
    "failing": "red", "failed": "red", "failure": "red", "timed out": "red", "timed_out": "red",
    "error": "orange", "errored": "orange",
    "running": "yellow", "pending": "yellow",
}
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


def text_width(text: str, *, size: float = 11.0, bold: bool = False) -> float:
    """Width in px of ``text`` at ``size`` px from the DejaVu Sans advance table (see the module docstring)."""
    table = _BOLD if bold else _REGULAR
    total = 0.0
    for ch in text:
        code = ord(ch)
        if 32 <= code <= 126:
            total += table[code - 32]
        elif unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            total += 11.0 * _WIDE_EM
        else:
            total += 11.0 * _OTHER_EM
    return total * size / 11.0


def status_color(status: str) -> str:
    """A hex colour for a status word (``passing``, ``failing``, ``error``, ``running``…), grey when unknown."""
    return COLORS[_STATUS.get(status.strip().lower(), "lightgrey")]


def _color(color: str) -> str:
    if color in COLORS:
        return COLORS[color]
    return color if _HEX.match(color) else COLORS["lightgrey"]


def run_badge_message(run: TestRun | None) -> tuple[str, str]:
    """``(message, colour)`` for a run: ``"42 passed"`` green, ``"3 failed, 39 passed"`` red, ``"running"``…"""
    if run is None:
        return "unknown", COLORS["lightgrey"]
    c = run.counts
    if run.status == "running":
        return "running", COLORS["yellow"]
    match run.conclusion:
        case "cancelled":
            return "cancelled", COLORS["lightgrey"]
        case "timed_out":
            return "timed out", COLORS["red"]
        case "neutral" if c.total == 0:
            return "no tests", COLORS["lightgrey"]
    bad = c.failed + c.errors
    if bad or run.conclusion == "failure":
        return f"{bad} failed, {c.passed} passed", COLORS["red"]
    message = f"{c.passed} passed"
    if c.skipped:
        message += f", {c.skipped} skipped"
    return message, COLORS["brightgreen"]


def _text(x: float, y: float, width: float, content: str, *, shadow: bool, extra: str = "") -> str:
    body = escape(content)
    out = ""
    if shadow:
        out += (f'<text x="{x:.1f}" y="{y + 1}" fill="#010101" fill-opacity=".3" textLength="{width:.1f}"'
                f'{extra}>{body}</text>')
    return out + f'<text x="{x:.1f}" y="{y}" textLength="{width:.1f}"{extra}>{body}</text>'


def badge_svg(label: str, message: str, color: str = "lightgrey", style: BadgeStyle = "flat") -> str:
    """An accessible SVG badge ``label | message``.

    Args:
        label: left text (escaped).
        message: right text (escaped).
        color: a shields palette name (``brightgreen``, ``red``…) or ``#hex``; anything else is grey.
        style: ``flat`` (rounded, gradient), ``flat-square`` (square corners) or ``for-the-badge`` (28px, caps).
    """
    fill = _color(color)
    big = style == "for-the-badge"
    if big:
        label, message = label.upper(), message.upper()
        size, height, pad, y, spacing = 10.0, 28, 12, 18, 1.2
        lw = text_width(label, size=size) + spacing * len(label)
        mw = text_width(message, size=size, bold=True) + spacing * len(message)
    else:
        size, height, pad, y = 11.0, 20, 6, 14
        lw, mw = text_width(label), text_width(message)
    left = round(lw + 2 * pad) if label else 0
    right = round(mw + 2 * pad)
    total = left + right
    title = f"{label}: {message}" if label else message
    rx = 3 if style == "flat" else 0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height}" role="img" '
        f"aria-label={quoteattr(title)}>",
        f"<title>{escape(title)}</title>",
    ]
    if style == "flat":
        parts.append('<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
                     '<stop offset="1" stop-opacity=".1"/></linearGradient>')
    parts.append(f'<clipPath id="r"><rect width="{total}" height="{height}" rx="{rx}" fill="#fff"/></clipPath>')
    crisp = ' shape-rendering="crispEdges"' if style != "flat" else ""
    parts.append(f'<g clip-path="url(#r)"{crisp}>')
    if left:
        parts.append(f'<rect width="{left}" height="{height}" fill="#555"/>')
    parts.append(f'<rect x="{left}" width="{right}" height="{height}" fill="{fill}"/>')
    if style == "flat":
        parts.append(f'<rect width="{total}" height="{height}" fill="url(#s)"/>')
    parts.append("</g>")
    parts.append(
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        f'text-rendering="geometricPrecision" font-size="{size:g}">'
    )
    shadow = style == "flat"
    if label:
        parts.append(_text(left / 2, y, lw, label, shadow=shadow))
    bold = ' font-weight="bold"' if big else ""
    parts.append(_text(left + right / 2, y, mw, message, shadow=shadow, extra=bold))
    parts.append("</g></svg>")
    return "".join(parts)


class _Endpoint(msgspec.Struct, kw_only=True):
    schemaVersion: int  # noqa: N815 - shields' field name
    label: str
    message: str
    color: str
    isError: bool = False  # noqa: N815 - shields' field name


def shields_endpoint_json(label: str, message: str, color: str, *, is_error: bool = False) -> str:
    """The shields.io endpoint badge document (``schemaVersion`` 1) for the same badge, as JSON text."""
    doc = _Endpoint(schemaVersion=1, label=label, message=message, color=_color(color), isError=is_error)
    return msgspec.json.encode(doc).decode("utf-8")
