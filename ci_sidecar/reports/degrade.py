"""The one degrade ladder every provider uses to fit a Markdown report into its size limit (UTF-8 bytes).

Steps, stopping at the first that fits: everything; without the passed list; traces trimmed; traces dropped
(messages stay) and a merged run's shards table kept to its 10 most telling rows; finally a cut at a clean
boundary — at a line end, never inside a UTF-8 character, with an open code fence and open ``<details>``
closed — followed by a link to the full report.
:func:`cut_markdown` is the last step on its own, for bodies that are not reports (a user's PR comment).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from ._text import clip_utf8, utf8_len
from .markdown import _safe_url, render_markdown
from .model import ReportData

__all__ = ["Fitted", "TRIMMED_TRACE_LINES", "cut_markdown", "fit_markdown"]

#: Lines kept per trace at the "trim traces" step (half from the top, half from the bottom).
TRIMMED_TRACE_LINES = 20
#: Shards listed one per row from the "no traces" step on (the missing, running and slowest ones).
COMPACT_SHARD_ROWS = 10

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


class Fitted(msgspec.Struct, kw_only=True, frozen=True):
    """A rendering that fits its budget: the text, whether anything was left out, and the step that fit."""

    text: str
    shortened: bool
    step: str  # "full" | "no-passed" | "trimmed-traces" | "no-traces" | "cut"


def _notice(url: str | None, what: str) -> str:
    link = _safe_url(url)
    return f"_{what}; see the [full report]({link})._" if link else f"_{what}._"


def fit_markdown(data: ReportData, budget: int) -> Fitted:
    """Render ``data`` as Markdown in at most ``budget`` UTF-8 bytes, degrading step by step.

    Args:
        data: the run; ``data.full_report_url`` is linked whenever something is left out.
        budget: the provider's limit in UTF-8 bytes.
    """
    full = render_markdown(data)
    if utf8_len(full) <= budget:
        return Fitted(text=full, shortened=False, step="full")
    url = data.full_report_url
    steps = (
        ("no-passed", {"include_passed": False}, "Passed tests omitted to fit"),
        ("trimmed-traces", {"include_passed": False, "trace_lines": TRIMMED_TRACE_LINES}, "Traces trimmed to fit"),
        ("no-traces", {"include_passed": False, "trace_lines": 0, "shard_rows": COMPACT_SHARD_ROWS},
         "Traces omitted to fit"),
    )
    text = full
    for step, options, what in steps:
        note = _notice(url, what) if url else f"_{what}._"
        # The note carries its own link, so render_markdown must not add a second one.
        text = render_markdown(msgspec.structs.replace(data, full_report_url=None), note=note, **options)
        if utf8_len(text) <= budget:
            return Fitted(text=text, shortened=True, step=step)
    return Fitted(text=cut_markdown(text, budget, full_report_url=url), shortened=True, step="cut")


class _State:
    """Block structure at a point in a document: the open fence, if any, and open ``<details>`` depth."""

    __slots__ = ("fence", "details")

    def __init__(self) -> None:
        self.fence: str | None = None
        self.details = 0

    def feed(self, line: str) -> None:
        m = _FENCE.match(line)
        if self.fence is not None:
            if m and m.group(1)[0] == self.fence[0] and len(m.group(1)) >= len(self.fence) and not m.group(2).strip():
                self.fence = None
            return
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            self.fence = m.group(1)
            return
        stripped = line.strip()
        if stripped.startswith("<details"):
            self.details += 1
        if "</details>" in stripped and self.details:
            self.details -= 1

    def closers(self) -> str:
        out = f"\n{self.fence}" if self.fence is not None else ""
        return out + "\n\n</details>" * self.details


def _lines(text: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start : end + 1]
        start = end + 1


def cut_markdown(text: str, budget: int, *, full_report_url: str | None = None) -> str:
    """Shorten Markdown to ``budget`` UTF-8 bytes at a line boundary, closing open blocks, then link the full report.

    Returns ``text`` unchanged when it fits. When even the notice does not fit, the notice alone is clipped.
    """
    if utf8_len(text) <= budget:
        return text
    notice = "\n\n" + _notice(full_report_url, "Truncated to fit") + "\n"
    notice_len = utf8_len(notice)
    state = _State()
    used = 0
    prefix: list[str] = []
    best_lines, best_closers = 0, ""  # the last line boundary where prefix + closers + notice fit
    for line in _lines(text):
        line_len = utf8_len(line)
        if used + line_len > budget:
            break
        prefix.append(line)
        used += line_len
        state.feed(line.rstrip("\n"))
        closers = state.closers()
        if used + utf8_len(closers) + notice_len <= budget:
            best_lines, best_closers = len(prefix), closers
    best = "".join(prefix[:best_lines]).rstrip("\n") + best_closers if best_lines else ""
    if not best:
        first = next(_lines(text), "")
        if not _FENCE.match(first) and "details>" not in first:
            best = clip_utf8(first.rstrip("\n"), budget - notice_len)
    if not best and notice_len > budget:
        return clip_utf8(notice.strip(), budget)
    return clip_utf8(best + notice, budget) if best else clip_utf8(notice.lstrip("\n"), budget)
