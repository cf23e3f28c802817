"""The "compared with <base>" section of a report: a finished run's delta against its base run.

Test names come from the code under test: escaped per format like every other name in a report.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator

from ci_sidecar.protocol.history import RunDelta

__all__ = ["FLAKY_SHOWN", "base_title", "delta_html", "delta_markdown"]

#: flaky tests shown in a report (the JSON report and get_test_run_status have the whole list)
FLAKY_SHOWN = 10

_CATEGORIES = (  # (field, heading, icon)
    ("new_failures", "New failures", "❌"),
    ("fixed", "Fixed", "✅"),
    ("still_failing", "Still failing", "🔁"),
    ("new_tests", "New tests", "🆕"),
    ("removed_tests", "Removed tests", "➖"),
)


def base_title(delta: RunDelta) -> str:
    """``main @ 1a2b3c4d5e6f (run abc…)``, or a note that there was nothing to compare with (plain text)."""
    base = delta.base
    if base is None:
        return "no earlier run (every test is new)"
    where = base.branch or "no branch"
    sha = f" @ {base.commit_sha[:12]}" if base.commit_sha else ""
    what = "target branch" if delta.base_kind == "target_branch" else "previous run"
    return f"{where}{sha} ({what}, run {base.test_run_id[:12]})"


def _lists(delta: RunDelta) -> Iterator[tuple[str, str, str, list[str], int, int]]:
    """(field, heading, icon, names, total, not listed) of each category worth showing."""
    for field, heading, icon in _CATEGORIES:
        names = getattr(delta, field)
        if names and not (field == "new_tests" and delta.base is None):  # a first run: all new, nothing to say
            total = getattr(delta.counts, field)
            yield field, heading, icon, names, total, total - len(names)


def delta_markdown(delta: RunDelta, escape: Callable[[str], str]) -> str:
    """The section in Markdown; ``escape`` makes one line of literal text safe (the renderer's own)."""
    c = delta.counts
    out = [f"### Compared with {escape(base_title(delta))}",
           f"{c.new_failures} new failure(s) · {c.fixed} fixed · {c.still_failing} still failing · "
           f"{c.new_tests} new test(s) · {c.removed_tests} removed"]
    for field, heading, icon, names, total, rest in _lists(delta):
        more = f"\n- … and {rest} more" if rest else ""
        lines = "\n".join(f"- {icon} {escape(n)}" for n in names)
        if field in ("new_tests", "removed_tests", "still_failing"):
            out.append(f"<details><summary>{heading} ({total})</summary>\n\n{lines}{more}\n\n</details>")
        else:
            out.append(f"**{heading} ({total})**\n\n{lines}{more}")
    if delta.flaky:
        rows = "\n".join(f"| {escape(f.test)} | {f.score:.2f} | {f.flips} / {f.runs} |"
                         for f in delta.flaky[:FLAKY_SHOWN])
        out.append(f"**Flipping tests (last {delta.window} runs)**\n\n| Test | Flaky score | Flips / runs |\n"
                   f"|---|---:|---:|\n{rows}")
    return "\n\n".join(out)


def delta_html(delta: RunDelta) -> str:
    """The section in HTML (every text escaped)."""
    e = html.escape
    c = delta.counts
    parts = [f'<section id="delta"><h2>Compared with {e(base_title(delta))}</h2><p>'
             f"{c.new_failures} new failure(s) · {c.fixed} fixed · {c.still_failing} still failing · "
             f"{c.new_tests} new test(s) · {c.removed_tests} removed</p>"]
    for field, heading, _icon, names, total, rest in _lists(delta):
        more = f"<li>… and {rest} more</li>" if rest else ""
        items = "".join(f'<li class="name">{e(n)}</li>' for n in names)
        parts.append(f'<details{" open" if field in ("new_failures", "fixed") else ""}><summary>{e(heading)} '
                     f"({total})</summary><ul>{items}{more}</ul></details>")
    if delta.flaky:
        rows = "".join(f'<tr><td class="name">{e(f.test)}</td><td class="num">{f.score:.2f}</td>'
                       f'<td class="num">{f.flips} / {f.runs}</td></tr>' for f in delta.flaky[:FLAKY_SHOWN])
        parts.append(f"<h3>Flipping tests (last {delta.window} runs)</h3><div class=\"scroll\"><table><tr><th>Test"
                     f'</th><th class="num">Flaky score</th><th class="num">Flips / runs</th></tr>{rows}</table></div>')
    return "".join(parts) + "</section>\n"
