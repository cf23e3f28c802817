"""The shards section of a report: one row per shard, missing shards, the slowest shard and the balance hint.

One renderer per format over :class:`~ci_sidecar.protocol.shards.ShardReport`, used by every report of a merged
run (Markdown: check run and job summaries, the sticky comment, ``render_report``; HTML; the ``merge`` command's
lines). Machine names come from the shards' environment: escaped per format like every name in a report. With
many shards the table keeps the missing, running and slowest ones and sums up the rest in one line.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from ci_sidecar.protocol.shards import ShardBalance, ShardReport, ShardRow

from .model import format_duration

__all__ = ["MAX_SHARD_ROWS", "balance_text", "shards_html", "shards_markdown", "shards_text", "shown_rows"]

#: shards listed one per row at most (the JSON report has every row)
MAX_SHARD_ROWS = 50
#: tests-per-shard figures a balance hint spells out one by one; above, it gives their range
_SIZES_LISTED = 16


def shown_rows(report: ShardReport, limit: int | None) -> tuple[list[ShardRow], list[ShardRow]]:
    """(rows to show, rows summed up): every row when ``limit`` is None or enough, else the shards that are not
    finished first, then the slowest finished ones, shown in shard order."""
    rows = report.rows
    if limit is None or len(rows) <= limit:
        return list(rows), []
    ranked = sorted(rows, key=lambda r: (r.status == "finished", -(r.duration or 0.0), r.shard))
    keep = {r.shard for r in ranked[:max(1, limit)]}
    return [r for r in rows if r.shard in keep], [r for r in rows if r.shard not in keep]


def _headline(report: ShardReport) -> str:
    states: dict[str, int] = {}
    for r in report.rows:
        states[r.status] = states.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return f"Shards ({len(report.rows)}: {parts})"


def _rest(rest: list[ShardRow]) -> str:
    timed = [r.duration for r in rest if r.duration is not None]
    took = f", {format_duration(min(timed))} to {format_duration(max(timed))} each" if timed else ""
    return f"… and {len(rest)} more shard(s), {sum(r.total for r in rest)} tests{took}"


def _slowest(report: ShardReport) -> str | None:
    row = next((r for r in report.rows if r.shard == report.slowest), None)
    if row is None:
        return None
    return f"Slowest shard: {row.shard} ({format_duration(row.duration)})"


def balance_text(b: ShardBalance) -> str:
    """The hint in words (plain text, numbers only): the slowest shard's time with a split by test durations,
    the tests per shard, and where the durations came from."""
    slowest = max(b.predicted, default=0.0)
    now = f" instead of {format_duration(b.slowest_s)}" if b.slowest_s is not None else ""
    if len(b.sizes) <= _SIZES_LISTED:
        sizes = ", ".join(map(str, b.sizes))
    else:
        sizes = f"{min(b.sizes)} to {max(b.sizes)} each"
    if b.source == "history":
        rest = ", the rest from this run" if b.known < b.tests else ""
        where = f"durations of {b.known} of {b.tests} tests from the last {b.runs} recorded run(s){rest}"
    else:
        where = "durations from this run: no history yet"
    return (f"split by test duration, the slowest shard would take {format_duration(slowest)}{now}; "
            f"tests per shard: {sizes} ({where})")


def shards_markdown(report: ShardReport, escape: Callable[[str], str], *, max_rows: int | None = MAX_SHARD_ROWS) -> str:
    """The section as Markdown; ``escape`` makes a machine name literal text."""
    shown, rest = shown_rows(report, max_rows)
    lines = [f"### {_headline(report)}", "",
             "| Shard | Status | Duration | Tests | Passed | Failed | Skipped | Machine |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in shown:
        took = format_duration(r.duration) if r.duration is not None else ""
        counts = (r.total, r.passed, r.failed, r.skipped) if r.status != "missing" or r.total else ("",) * 4
        cells = " | ".join(str(c) for c in (r.shard, r.status, took, *counts, escape(r.machine or "")))
        lines.append(f"| {cells} |")
    if rest:
        lines += ["", _rest(rest)]
    if report.missing:
        lines += ["", f"**Missing shard(s):** {', '.join(map(str, report.missing))} (not counted as passed)"]
    slowest = _slowest(report)
    if slowest:
        lines += ["", slowest]
    if report.balance is not None:
        lines += ["", f"Balance: {balance_text(report.balance)}"]
    return "\n".join(lines)


def shards_html(report: ShardReport, *, max_rows: int | None = MAX_SHARD_ROWS) -> str:
    """The section as an HTML fragment (every text escaped)."""
    e = html.escape
    shown, rest = shown_rows(report, max_rows)
    out = [f"<h2>{e(_headline(report))}</h2><div class=\"scroll\"><table><tr><th class=\"num\">Shard</th>"
           "<th>Status</th><th class=\"num\">Duration</th><th class=\"num\">Tests</th><th class=\"num\">Passed</th>"
           "<th class=\"num\">Failed</th><th class=\"num\">Skipped</th><th>Machine</th></tr>"]
    for r in shown:
        took = format_duration(r.duration) if r.duration is not None else ""
        cells = "".join(f"<td class=\"num\">{v}</td>" for v in (r.total, r.passed, r.failed, r.skipped))
        out.append(f"<tr><td class=\"num\">{r.shard}</td><td>{e(r.status)}</td><td class=\"num\">{e(took)}</td>"
                   f"{cells}<td class=\"name\">{e(r.machine or '')}</td></tr>")
    out.append("</table></div>")
    notes = [_rest(rest)] if rest else []
    if report.missing:
        notes.append(f"Missing shard(s): {', '.join(map(str, report.missing))} (not counted as passed)")
    slowest = _slowest(report)
    if slowest:
        notes.append(slowest)
    if report.balance is not None:
        notes.append(f"Balance: {balance_text(report.balance)}")
    out += [f"<p>{e(n)}</p>" for n in notes]
    return "\n".join(out) + "\n"


def shards_text(report: ShardReport) -> list[str]:
    """The section as plain lines (a terminal): one per shard, then the missing, slowest and balance lines."""
    lines = []
    for r in report.rows:
        if r.status == "missing" and not r.total:
            lines.append(f"shard {r.shard}: missing")
            continue
        took = format_duration(r.duration) if r.duration is not None else "?"
        where = f" on {r.machine}" if r.machine else ""
        lines.append(f"shard {r.shard}: {r.status}, {took}, {r.total} tests ({r.passed} passed, {r.failed} failed, "
                     f"{r.skipped} skipped){where}")
    if report.missing:
        lines.append(f"missing shard(s): {', '.join(map(str, report.missing))} (not counted as passed)")
    slowest = _slowest(report)
    if slowest:
        lines.append(slowest[0].lower() + slowest[1:])
    if report.balance is not None:
        lines.append(f"balance: {balance_text(report.balance)}")
    return lines
