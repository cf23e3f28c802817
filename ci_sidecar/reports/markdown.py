"""Markdown rendering of a run (PR comments, check summaries, job summaries), with every untrusted text escaped.

Test names, messages and CI fields come from the code under test, so names are backslash-escaped (``|`` cannot
break a table, ``<script>`` stays text, backticks cannot open code spans) and traces go into code fences
longer than any backtick run inside them. :mod:`ci_sidecar.reports.degrade` calls :func:`render_markdown`
with fewer sections to fit a size budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ci_sidecar.protocol.records import CIContext, TestResult

from ._text import trim_lines
from .delta import delta_markdown
from .model import (
    HistogramBucket,
    ReportArtifact,
    ReportData,
    bucket_label,
    display_name,
    format_coverage,
    format_duration,
)
from .shards import MAX_SHARD_ROWS, shards_markdown

__all__ = ["code_fence", "md_escape", "render_markdown"]

#: Passed tests listed at most (a PR comment is not the place for 50,000 names; the full report is).
MAX_PASSED_LISTED = 1000

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-!|~&])")
_BACKTICKS = re.compile(r"`+")
_TITLES = {
    "success": "✅ Tests passed",
    "failure": "❌ Tests failed",
    "cancelled": "⚪ Tests cancelled",
    "timed_out": "⏱️ Tests timed out",
    "neutral": "⚪ No test results",
}


def md_escape(text: str) -> str:
    """One line of literal text: newlines become spaces and Markdown/HTML punctuation is backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split("\n")).replace("\r", " "))


def code_fence(text: str, info: str = "text") -> str:
    """A fenced code block whose fence is longer than any backtick run in ``text`` (so it cannot be closed early)."""
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def _title(data: ReportData) -> str:
    run = data.run
    if run.status == "running":
        head = "⏳ Tests running"
    else:
        head = _TITLES.get(run.conclusion or "", "Test results")
    return f"## {head}: {md_escape(run.name)}"


def _counts_table(data: ReportData) -> str:
    c = data.run.counts
    # a coverage column only when a client reported coverage: most runs have none
    cov = data.run.coverage
    head, align, cell = (" Coverage |", "---:|", f" {format_coverage(cov)} |") if cov is not None else ("", "", "")
    return (
        f"| Total | Passed | Failed | Errors | Skipped | Flaky | Duration |{head}\n"
        f"|---:|---:|---:|---:|---:|---:|---:|{align}\n"
        f"| {c.total} | {c.passed} | {c.failed} | {c.errors} | {c.skipped} | {c.flaky} "
        f"| {format_duration(data.run.duration)} |{cell}"
    )


def _safe_url(url: str | None) -> str | None:
    """Only http(s) links, with characters that would end a Markdown link target percent-encoded."""
    if not url or not url.startswith(("https://", "http://")):
        return None
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def _context_line(ci: CIContext | None) -> str | None:
    if ci is None:
        return None
    parts = []
    if ci.repository:
        parts.append(md_escape(ci.repository))
    sha = ci.head_sha or ci.commit_sha
    if sha:
        parts.append(f"commit {md_escape(sha[:12])}")
    if ci.branch:
        parts.append(f"branch {md_escape(ci.branch)}")
    if ci.pr_number is not None:
        parts.append(f"PR \\#{ci.pr_number}")
    url = _safe_url(ci.job_url or ci.build_url)
    if url:
        parts.append(f"[build]({url})")
    return " · ".join(parts) if parts else None


def _location(result: TestResult) -> str | None:
    if not result.file:
        return None
    return md_escape(result.file + (f":{result.line}" if result.line is not None else ""))


def _failure(result: TestResult, trace_lines: int | None) -> str:
    icon = "💥" if result.status == "error" else "❌"
    out = [f"#### {icon} {md_escape(display_name(result))}"]
    where = _location(result)
    if where:
        out.append(f"In {where}")
    if result.message:
        out.append(code_fence(result.message))
    details = result.details
    if details and details.strip() != (result.message or "").strip() and trace_lines != 0:
        if trace_lines is not None:
            details = trim_lines(details, trace_lines)
        out.append(f"<details><summary>Details</summary>\n\n{code_fence(details)}\n\n</details>")
    return "\n\n".join(out)


def _slowest(results: list[TestResult]) -> str:
    rows = "\n".join(f"| {md_escape(display_name(r))} | {format_duration(r.duration)} |" for r in results)
    return f"### Slowest tests\n\n| Test | Duration |\n|---|---:|\n{rows}"


def _histogram(buckets: list[HistogramBucket]) -> str:
    peak = max((b.count for b in buckets), default=0) or 1
    rows = "\n".join(
        f"| {bucket_label(b)} | {b.count} | {'█' * round(20 * b.count / peak)} |" for b in buckets
    )
    return f"### Duration distribution\n\n| Duration | Tests | |\n|---|---:|---|\n{rows}"


def _flaky(results: list[TestResult]) -> str:
    rows = "\n".join(f"| {md_escape(display_name(r))} | {r.attempt or 1} |" for r in results)
    return f"### Flaky tests ({len(results)})\n\nFailed, then passed on a later attempt.\n\n| Test | Passed on attempt |\n|---|---:|\n{rows}"


def _artifacts(artifacts: list[ReportArtifact]) -> str:
    lines = []
    for a in artifacts:
        url = _safe_url(a.url)
        name = f"[{md_escape(a.name)}]({url})" if url else md_escape(a.name)
        lines.append(f"- {name} ({_size(a.size)})")
    return f"### Artifacts ({len(artifacts)})\n\n" + "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _passed(results: Iterable[TestResult], limit: int) -> str | None:
    names: list[str] = []
    total = 0
    for r in results:
        if r.status == "passed":
            total += 1
            if total <= limit:
                names.append(f"- {md_escape(display_name(r))}")
    if not total:
        return None
    more = f"\n- … and {total - limit} more" if total > limit else ""
    return f"<details><summary>Passed tests ({total})</summary>\n\n" + "\n".join(names) + more + "\n\n</details>"


def render_markdown(
    data: ReportData,
    *,
    include_passed: bool = True,
    trace_lines: int | None = None,
    note: str | None = None,
    max_passed: int = MAX_PASSED_LISTED,
    shard_rows: int | None = MAX_SHARD_ROWS,
) -> str:
    """Render a run as GitHub-flavoured Markdown.

    Args:
        data: the run to render.
        include_passed: list passed test names (at most ``max_passed``) in a collapsed section.
        trace_lines: ``None`` keeps traces whole, ``0`` drops them (messages stay), ``n`` keeps ``n`` lines each.
        note: an already-escaped Markdown line shown at the end (the degrade ladder says what it left out).
        max_passed: cap on listed passed names.
        shard_rows: shards listed one per row at most in a merged run's shards section (the rest summed up).

    Returns:
        The Markdown text, ending with a newline.
    """
    parts = [_title(data)]
    context = _context_line(data.ci)
    if context:
        parts.append(context)
    parts.append(_counts_table(data))
    if data.run.shards is not None:
        parts.append(shards_markdown(data.run.shards, md_escape, max_rows=shard_rows))
    if data.run.delta is not None:
        parts.append(delta_markdown(data.run.delta, md_escape))
    if data.failures:
        parts.append(f"### Failures ({len(data.failures)})")
        parts.extend(_failure(r, trace_lines) for r in data.failures)
    if data.flaky:
        parts.append(_flaky(data.flaky))
    if data.artifacts:
        parts.append(_artifacts(data.artifacts))
    if data.slowest:
        parts.append(_slowest(data.slowest))
    if data.histogram and any(b.count for b in data.histogram):
        parts.append(_histogram(data.histogram))
    if include_passed and data.results is not None:
        passed = _passed(data.iter_results(), max_passed)
        if passed:
            parts.append(passed)
    url = _safe_url(data.full_report_url)
    if note:
        parts.append(note + (f" [Full report]({url})" if url else ""))
    elif url:
        parts.append(f"[Full report]({url})")
    return "\n\n".join(parts) + "\n"
