"""A self-contained HTML report: no scripts, no external resources, every text escaped, readable on a phone.

Failures come first with their messages and (collapsed) traces, then the slowest tests, the duration
distribution as an inline SVG bar chart, and every test. A Content-Security-Policy meta tag forbids scripts
and remote loads, so even a missed escape could not run code. Results are streamed to the output file, so a
huge run never has to be held as one string.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from html import escape
from typing import TextIO

from ci_sidecar.protocol.records import CIContext, TestResult

from .delta import delta_html
from .model import HistogramBucket, ReportData, bucket_label, display_name, format_coverage, format_duration
from .shards import shards_html

__all__ = ["histogram_svg", "render_html", "write_html"]

_CSS = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--mute:#6e7781;--line:#d0d7de}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:12px;max-width:1100px}
h1{font-size:1.35rem;margin:.2em 0;overflow-wrap:anywhere}h2{font-size:1.1rem;margin-top:1.6em}
.status{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600;font-size:.85rem}
.success{background:var(--ok)}.failure,.timed_out{background:var(--bad)}.running,.cancelled,.neutral{background:var(--mute)}
.ctx{color:var(--mute);overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}
.card{flex:1 1 90px;border:1px solid var(--line);border-radius:8px;padding:6px 10px}
.card b{display:block;font-size:1.3rem}
.failure-item{border-left:4px solid var(--bad);padding:4px 10px;margin:12px 0}
.failure-item.error{border-color:var(--warn)}
.failure-item h3{font-size:1rem;margin:.2em 0;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:rgba(127,127,127,.12);padding:8px;border-radius:6px;
font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin:6px 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
td.name{overflow-wrap:anywhere}td.num,th.num{text-align:right;white-space:nowrap}
.s-passed{color:var(--ok)}.s-failed{color:var(--bad)}.s-error{color:var(--warn)}.s-skipped{color:var(--mute)}
svg.chart{width:100%;max-width:640px;height:auto}
svg.chart rect{fill:#0969da}svg.chart text{font:15px system-ui,sans-serif;fill:currentColor}
footer{color:var(--mute);font-size:.8rem;margin-top:2em}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STATUS_LABEL = {"passed": "passed", "failed": "failed", "error": "error", "skipped": "skipped"}


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _safe_href(url: str | None) -> str | None:
    """Only http(s) links; anything else (``javascript:``, ``data:``) is shown as text, not linked."""
    if url and url.startswith(("https://", "http://")):
        return _e(url)
    return None


def _context(ci: CIContext | None) -> str:
    if ci is None:
        return ""
    parts = []
    if ci.repository:
        parts.append(_e(ci.repository))
    sha = ci.head_sha or ci.commit_sha
    if sha:
        parts.append(f"commit <code>{_e(sha[:12])}</code>")
    if ci.branch:
        parts.append(f"branch <code>{_e(ci.branch)}</code>")
    if ci.pr_number is not None:
        parts.append(f"PR #{ci.pr_number}")
    href = _safe_href(ci.job_url or ci.build_url)
    if href:
        parts.append(f'<a href="{href}">build</a>')
    return f'<p class="ctx">{" · ".join(parts)}</p>' if parts else ""


def _location(result: TestResult) -> str:
    if not result.file:
        return ""
    where = result.file + (f":{result.line}" if result.line is not None else "")
    return f'<p class="ctx">{_e(where)}</p>'


def _failure(result: TestResult) -> str:
    kind = "error" if result.status == "error" else "failed"
    out = [f'<article class="failure-item {kind}"><h3>{_e(display_name(result))}</h3>', _location(result)]
    if result.message:
        out.append(f"<pre>{_e(result.message)}</pre>")
    for label, text in (("Details", result.details), ("Standard output", result.stdout), ("Standard error", result.stderr)):
        if text:
            out.append(f"<details><summary>{label}</summary><pre>{_e(text)}</pre></details>")
    out.append("</article>")
    return "".join(out)


def histogram_svg(buckets: list[HistogramBucket]) -> str:
    """An accessible inline SVG bar chart of the duration buckets (no script, scales with the page)."""
    width, height, top, bottom = 640, 220, 24, 40
    n = max(len(buckets), 1)
    slot = width / n
    peak = max((b.count for b in buckets), default=0) or 1
    desc = ", ".join(f"{bucket_label(b)}: {b.count}" for b in buckets)
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="hist-title" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="hist-title">Test durations: {_e(desc)}</title>'
    ]
    plot = height - top - bottom
    for i, b in enumerate(buckets):
        h = plot * b.count / peak
        x = i * slot + slot * 0.15
        y = top + plot - h
        cx = i * slot + slot / 2
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}"/>')
        out.append(f'<text x="{cx:.1f}" y="{y - 6:.1f}" text-anchor="middle">{b.count}</text>')
        out.append(f'<text x="{cx:.1f}" y="{height - bottom + 18}" text-anchor="middle">{_e(bucket_label(b))}</text>')
    out.append("</svg>")
    return "".join(out)


def _rows(results: Iterable[TestResult], fp: TextIO, limit: int | None) -> int:
    written = 0
    for r in results:
        if limit is not None and written >= limit:
            written += 1
            continue
        status = _STATUS_LABEL.get(r.status, r.status)
        fp.write(
            f'<tr><td class="s-{_e(status)}">{_e(status)}</td><td class="name">{_e(display_name(r))}</td>'
            f'<td class="name">{_e(r.suite or "")}</td><td class="num">{_e(format_duration(r.duration))}</td></tr>\n'
        )
        written += 1
    return written


def write_html(data: ReportData, fp: TextIO, *, max_rows: int | None = None) -> None:
    """Write the report to a text file object, streaming the list of every test.

    Args:
        data: the run.
        fp: where to write (opened with ``encoding="utf-8"``).
        max_rows: cap on rows in the all-tests table (``None``: every result).
    """
    run = data.run
    state = "running" if run.status == "running" else (run.conclusion or "neutral")
    c = run.counts
    fp.write(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{_e(run.name)}: {_e(state)}</title><style>{_CSS}</style></head><body>\n"
        f'<header><h1>{_e(run.name)} <span class="status {_e(state)}">{_e(state.replace("_", " "))}</span></h1>'
        f"{_context(data.ci)}</header>\n"
    )
    cards = (("Total", c.total), ("Passed", c.passed), ("Failed", c.failed), ("Errors", c.errors),
             ("Skipped", c.skipped), ("Flaky", c.flaky), ("Duration", format_duration(run.duration)))
    if run.coverage is not None:
        cards += (("Coverage", format_coverage(run.coverage)),)
    fp.write('<section class="cards">' + "".join(
        f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards) + "</section>\n")
    if run.shards is not None:
        fp.write(f'<section id="shards">{shards_html(run.shards)}</section>\n')
    if run.delta is not None:
        fp.write(delta_html(run.delta))
    if data.failures:
        fp.write(f'<section id="failures"><h2>Failures ({len(data.failures)})</h2>\n')
        for r in data.failures:
            fp.write(_failure(r) + "\n")
        fp.write("</section>\n")
    if data.flaky:
        fp.write(f'<section id="flaky"><h2>Flaky tests ({len(data.flaky)})</h2><p>Failed, then passed on a later '
                 'attempt.</p><div class="scroll"><table><tr><th>Test</th><th class="num">Passed on attempt</th></tr>')
        for r in data.flaky:
            fp.write(f'<tr><td class="name">{_e(display_name(r))}</td><td class="num">{_e(r.attempt or 1)}</td></tr>')
        fp.write("</table></div></section>\n")
    if data.artifacts:
        fp.write(f'<section id="artifacts"><h2>Artifacts ({len(data.artifacts)})</h2><ul>')
        for a in data.artifacts:
            # a local report links the local copy too: file:// is fine for a file opened from disk
            href = _safe_href(a.url) or (_e(a.url) if a.url and a.url.startswith("file://") else None)
            name = f'<a href="{href}">{_e(a.name)}</a>' if href else _e(a.name)
            fp.write(f"<li>{name} <span>({_e(a.size)} bytes)</span></li>")
        fp.write("</ul></section>\n")
    if data.slowest:
        fp.write('<section id="slowest"><h2>Slowest tests</h2><div class="scroll"><table>'
                 '<tr><th>Test</th><th class="num">Duration</th></tr>')
        for r in data.slowest:
            fp.write(f'<tr><td class="name">{_e(display_name(r))}</td>'
                     f'<td class="num">{_e(format_duration(r.duration))}</td></tr>')
        fp.write("</table></div></section>\n")
    if data.histogram:
        fp.write(f'<section id="durations"><h2>Duration distribution</h2>{histogram_svg(data.histogram)}</section>\n')
    if data.results is not None:
        fp.write('<section id="tests"><h2>All tests</h2><div class="scroll"><table>'
                 '<tr><th>Status</th><th>Test</th><th>Suite</th><th class="num">Duration</th></tr>\n')
        total = _rows(data.iter_results(), fp, max_rows)
        fp.write("</table></div>")
        if max_rows is not None and total > max_rows:
            fp.write(f"<p>… and {total - max_rows} more tests (see the JSON or JUnit report).</p>")
        fp.write("</section>\n")
    href = _safe_href(data.full_report_url)
    link = f' · <a href="{href}">full report</a>' if href else ""
    fp.write(f"<footer>Generated by ci-sidecar for run {_e(run.id)}{link}</footer>\n</body></html>\n")


def render_html(data: ReportData, *, max_rows: int | None = None) -> str:
    """The report as one string (small runs and tests; use :func:`write_html` for files)."""
    buf = io.StringIO()
    write_html(data, buf, max_rows=max_rows)
    return buf.getvalue()
