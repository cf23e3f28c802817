"""GitHub Actions workflow commands (``::error file=…,line=…,title=…::message``) for failed tests.

Escaping follows GitHub's documented rules (actions/toolkit ``command.ts``): in the message ``%``, ``\\r``
and ``\\n`` become ``%25``, ``%0D``, ``%0A``; in property values ``:`` and ``,`` also become ``%3A``, ``%2C``.
Sizes are capped conservatively (title 255 bytes, message 64 KiB, see ARCHITECTURE.md limits).
"""

from __future__ import annotations

from collections.abc import Iterator

from ci_sidecar.protocol.records import TestResult

from ._text import clip_utf8, trim_lines
from .model import ReportData, display_name

__all__ = ["escape_data", "escape_property", "iter_annotations", "render_annotations"]

MAX_TITLE_BYTES = 255
MAX_MESSAGE_BYTES = 64 * 1024 - 1024  # room for the escaping that follows the cut
TRACE_LINES = 40


def escape_data(text: str) -> str:
    """Escape a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(result: TestResult) -> str:
    """The ``::error``/``::warning`` line for one failed or errored test."""
    props = []
    if result.file:
        props.append(f"file={escape_property(result.file)}")
        if result.line is not None and result.line > 0:
            props.append(f"line={result.line}")
    props.append(f"title={escape_property(clip_utf8(display_name(result), MAX_TITLE_BYTES))}")
    body = result.message or f"{result.status}"
    if result.details and result.details.strip() != body.strip():
        body += "\n\n" + trim_lines(result.details, TRACE_LINES)
    message = escape_data(clip_utf8(body, MAX_MESSAGE_BYTES))
    return f"::error {','.join(props)}::{message}"


def iter_annotations(data: ReportData) -> Iterator[str]:
    """One workflow command line per failed or errored test, in the order of ``data.failures``."""
    for result in data.failures:
        if result.status in ("failed", "error"):
            yield annotation(result)


def render_annotations(data: ReportData) -> str:
    """All annotation lines, newline-terminated (what a step prints to stdout for the runner to pick up)."""
    return "".join(line + "\n" for line in iter_annotations(data))
