"""One merged, valid JUnit XML file for a run (what Jenkins' ``junit`` step or CircleCI's test results read).

Results are grouped into ``<testsuite>`` elements by consecutive suite name, as the run's records come; a
suite's results are buffered only while its element is written (its counts go in the start tag). Attempts of
one test become one ``<testcase>`` in the Surefire/nextest rerun convention: earlier failures of a test that
then passed are ``<flakyFailure>``/``<flakyError>``; a test failing on every attempt has its first failure as
``<failure>`` and the others as ``<rerunFailure>``/``<rerunError>``. :func:`ci_sidecar.reports.junit.iter_junit`
reads this back to the same attempts. Attribute and text values are escaped and stripped of characters XML
cannot carry.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from typing import TextIO

from ci_sidecar.protocol.records import TestResult

from ._text import escape, quoteattr, xml_safe
from .model import ReportData

__all__ = ["render_junit", "write_junit"]

_ATTR_EXTRA = {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_ELEMENT = {"failed": "failure", "error": "error", "skipped": "skipped"}


def _a(value: object) -> str:
    """A quoted attribute value; newlines and tabs kept as character references (else parsers fold them)."""
    return quoteattr(xml_safe(str(value)), _ATTR_EXTRA)


def _t(value: str) -> str:
    return escape(xml_safe(value))


def _attempt_no(result: TestResult) -> int:
    return result.attempt or 1


def _outcome(result: TestResult, tag: str) -> str:
    attrs = ""
    if result.message:
        attrs += f" message={_a(result.message)}"
    junit_type = (result.properties or {}).get("junit.type")
    if junit_type:
        attrs += f" type={_a(junit_type)}"
    if tag.startswith(("flaky", "rerun")) and result.duration is not None:
        attrs += f' time="{result.duration:.6f}"'
    inner = _t(result.details) if result.details else ""
    if tag.startswith(("flaky", "rerun")):
        for out_tag, text in (("system-out", result.stdout), ("system-err", result.stderr)):
            if text:
                inner += f"<{out_tag}>{_t(text)}</{out_tag}>"
    return f"<{tag}{attrs}>{inner}</{tag}>" if inner else f"<{tag}{attrs}/>"


def _testcase(attempts: list[TestResult]) -> tuple[str, TestResult]:
    """The ``<testcase>`` for all attempts of one test, and the result that decides its status."""
    attempts.sort(key=_attempt_no)
    latest = attempts[-1]
    earlier = [a for a in attempts[:-1] if a.status in ("failed", "error")]
    if latest.status in ("failed", "error") and earlier:
        main, extra = earlier[0], [*earlier[1:], latest]
        extra_tags = ["rerunFailure" if a.status == "failed" else "rerunError" for a in extra]
    else:
        main, extra = latest, earlier
        extra_tags = ["flakyFailure" if a.status == "failed" else "flakyError" for a in extra]
    attrs = f"name={_a(main.name)}"
    if main.classname:
        attrs += f" classname={_a(main.classname)}"
    if main.file:
        attrs += f" file={_a(main.file)}"
    if main.line is not None:
        attrs += f' line="{main.line}"'
    if main.duration is not None:
        attrs += f' time="{main.duration:.6f}"'
    body = []
    props = {k: v for k, v in (main.properties or {}).items() if k != "junit.type"}
    if props:
        body.append("<properties>")
        for key, value in props.items():
            for v in value if isinstance(value, list) else [value]:
                body.append(f"<property name={_a(key)} value={_a('' if v is None else v)}/>")
        body.append("</properties>")
    if main.status in _ELEMENT:
        body.append(_outcome(main, _ELEMENT[main.status]))
    body.extend(_outcome(a, tag) for a, tag in zip(extra, extra_tags, strict=True))
    for tag, text in (("system-out", main.stdout), ("system-err", main.stderr)):
        if text:
            body.append(f"<{tag}>{_t(text)}</{tag}>")
    inner = "".join(body)
    xml = f"<testcase {attrs}>{inner}</testcase>" if inner else f"<testcase {attrs}/>"
    return xml, latest


def _suite(name: str | None, results: list[TestResult]) -> str:
    grouped: dict[tuple[str | None, str], list[TestResult]] = {}
    for r in results:
        grouped.setdefault((r.classname, r.name), []).append(r)
    cases = []
    counts = {"failed": 0, "error": 0, "skipped": 0}
    total_time = 0.0
    for attempts in grouped.values():
        xml, latest = _testcase(attempts)
        cases.append(xml)
        if latest.status in counts:
            counts[latest.status] += 1
        total_time += latest.duration or 0.0
    head = (
        f"<testsuite name={_a(name or '')} tests=\"{len(cases)}\" failures=\"{counts['failed']}\" "
        f"errors=\"{counts['error']}\" skipped=\"{counts['skipped']}\" time=\"{total_time:.6f}\">"
    )
    return head + "\n" + "\n".join(cases) + "\n</testsuite>\n"


def write_junit(data: ReportData, fp: TextIO) -> None:
    """Write the run as one ``<testsuites>`` document (UTF-8 declared; open ``fp`` with that encoding)."""
    run = data.run
    c = run.counts
    results: Iterable[TestResult] = data.iter_results() if data.results is not None else data.failures
    time_attr = f' time="{run.duration:.6f}"' if run.duration is not None else ""
    fp.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites name={_a(run.name)} tests="{c.total}" failures="{c.failed}" errors="{c.errors}" '
        f'skipped="{c.skipped}"{time_attr}>\n'
    )
    for suite, group in itertools.groupby(results, key=lambda r: r.suite):
        fp.write(_suite(suite, list(group)))
    fp.write("</testsuites>\n")


def render_junit(data: ReportData) -> str:
    """The JUnit document as one string."""
    buf = io.StringIO()
    write_junit(data, buf)
    return buf.getvalue()
