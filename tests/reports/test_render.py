"""Renderers: Markdown, HTML, JSON, merged JUnit and GitHub annotations, with hostile text everywhere."""

from __future__ import annotations

import html.parser
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ci_sidecar.protocol.records import CIContext, TestResult
from ci_sidecar.reports import (
    FORMATS,
    ParseIssue,
    escape_data,
    escape_property,
    iter_junit,
    render_annotations,
    render_html,
    render_json,
    render_junit,
    render_markdown,
    write_report,
)

from .reports_helpers import HOSTILE, make_data

FIXTURES = Path(__file__).parent / "fixtures"
_FENCED = re.compile(r"^(`{3,})[^\n]*\n.*?^\1$", re.S | re.M)


def sample() -> list[TestResult]:
    return [
        TestResult(name="test_ok", classname="pkg.mod", suite="pytest", status="passed", duration=0.004),
        TestResult(name="test_slow", classname="pkg.mod", suite="pytest", status="passed", duration=12.5),
        TestResult(
            name=HOSTILE, classname="pkg.evil", suite="pytest", status="failed", duration=0.2,
            file="tests/test_evil.py", line=3,
            message=f"assert {HOSTILE}\nsecond line", details="```\nTraceback with ``` fences\n```\nE  boom",
        ),
        TestResult(name="test_err", classname="pkg.mod", suite="other", status="error", message="setup failed",
                   details="Traceback\n  File x\nRuntimeError", stdout="out", stderr="err"),
        TestResult(name="test_skip", classname="pkg.mod", suite="other", status="skipped", message="reason"),
    ]


CI = CIContext(provider="github", repository="acme/<widget>", commit_sha="0123456789abcdef0123",
               branch="feature/`x`|y", pr_number=7, build_url="javascript:alert(1)", sources={})


class TestMarkdown:
    def test_hostile_name_cannot_break_structure(self) -> None:
        """A test name with <script>, |, backticks and ]]> is escaped: no raw tag, table rows keep their columns."""
        md = render_markdown(make_data(sample()))
        outside_code = _FENCED.sub("", md)
        assert "<script>" not in outside_code
        assert "\\<script\\>" in outside_code
        slow_rows = [line for line in md.splitlines() if line.startswith("| ") and "pkg.evil" in line]
        assert slow_rows, md
        for row in slow_rows:
            assert 3 == len(re.findall(r"(?<!\\)\|", row))  # | name | duration |
        assert "](javascript" not in outside_code

    def test_trace_fence_is_longer_than_backticks_inside(self) -> None:
        """A trace containing ``` sits in a longer fence, so it cannot end the block early."""
        md = render_markdown(make_data(sample()))
        assert "````text\n```\nTraceback with ``` fences\n```\nE  boom\n````" in md

    def test_sections(self) -> None:
        """Title by conclusion, counts table, failures first, slowest, distribution, passed list."""
        md = render_markdown(make_data(sample()), )
        assert md.startswith("## ❌ Tests failed: unit tests\n")
        assert "| 5 | 2 | 1 | 1 | 1 | 0 |" in md
        order = [md.index(h) for h in ("### Failures (2)", "### Slowest tests", "### Duration distribution",
                                        "Passed tests (2)")]
        assert sorted(order) == order
        assert md.index("test\\_slow") > md.index("### Slowest tests")

    def test_context_escaped_and_unsafe_link_dropped(self) -> None:
        """CI context is escaped and a javascript: build URL is not linked."""
        md = render_markdown(make_data(sample(), ci=CI))
        assert "acme/\\<widget\\>" in md
        assert "branch feature/\\`x\\`\\|y" in md
        assert "[build]" not in md

    def test_passed_list_toggle_and_cap(self) -> None:
        """The passed list can be left out, and is capped with a count of the rest."""
        results = [TestResult(name=f"t{i}", status="passed") for i in range(30)]
        assert "Passed tests" not in render_markdown(make_data(results), include_passed=False)
        md = render_markdown(make_data(results), max_passed=10)
        assert "- … and 20 more" in md
        assert "- t9\n" in md and "- t10\n" not in md


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.append(tag)
        self.hrefs += [v for k, v in attrs if k == "href"]

    def handle_data(self, data):  # noqa: ANN001
        self.text.append(data)


class TestHtml:
    def test_everything_escaped(self) -> None:
        """No script element or javascript: link comes out; the hostile name is visible as text."""
        page = render_html(make_data(sample(), ci=CI, full_report_url="https://ci.example.test/r/1"))
        parsed = _Collector()
        parsed.feed(page)
        assert "script" not in parsed.tags
        assert not any(h.lower().startswith("javascript") for h in parsed.hrefs)
        assert any(HOSTILE in t for t in parsed.text)
        assert "https://ci.example.test/r/1" in parsed.hrefs

    def test_phone_ready_and_self_contained(self) -> None:
        """Viewport meta, a CSP forbidding scripts and remote loads, inline CSS, no external URLs loaded."""
        page = render_html(make_data(sample()))
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
        assert "default-src 'none'" in page
        assert not re.search(r'(src|href)="(https?:)?//', page)

    def test_failures_first_then_slowest_then_chart(self) -> None:
        """Failures with messages come before the slowest tests and the SVG chart; every test is listed."""
        page = render_html(make_data(sample()))
        i_fail, i_slow, i_svg, i_all = (page.index(s) for s in
                                       ('id="failures"', 'id="slowest"', "<svg", 'id="tests"'))
        assert i_fail < i_slow < i_svg < i_all
        assert "setup failed" in page[i_fail:i_slow]
        assert 'role="img"' in page[i_svg:]
        ET.fromstring(page[i_svg : page.index("</svg>") + 6])  # the chart is well-formed XML
        assert 5 == page[i_all:].count("<tr><td class=\"s-")

    def test_row_cap(self) -> None:
        """max_rows caps the all-tests table and says how many are left out."""
        results = [TestResult(name=f"t{i}", status="passed") for i in range(12)]
        page = render_html(make_data(results), max_rows=5)
        assert "… and 7 more tests" in page


class TestJson:
    def test_round_trip(self) -> None:
        """The JSON report decodes and holds every result, the failures and the counts."""
        doc = json.loads(render_json(make_data(sample(), ci=CI)))
        assert 5 == len(doc["results"])
        assert HOSTILE == doc["failures"][0]["name"]
        assert {"total": 5, "passed": 2, "failed": 1, "errors": 1, "skipped": 1, "flaky": 0} == doc["run"]["counts"]
        assert "acme/<widget>" == doc["ci"]["repository"]


class TestJunitOut:
    def _reparse(self, text: str) -> list[TestResult]:
        items = list(iter_junit(io.BytesIO(text.encode("utf-8")), name="out.xml"))
        assert not [i for i in items if isinstance(i, ParseIssue)]
        return items  # type: ignore[return-value]

    def test_hostile_text_reparses(self) -> None:
        """Names/messages with <, &, ]]>, quotes, newlines and control characters round-trip through valid XML."""
        weird = TestResult(name='a"b\nc\x01', status="failed", message="m ]]> <x> & \r\n y",
                           details="d\x00e", suite="s")
        text = render_junit(make_data([*sample(), weird]))
        ET.fromstring(text.encode())
        back = {r.name: r for r in self._reparse(text)}
        assert "assert " + HOSTILE + "\nsecond line" == back[HOSTILE].message
        assert ("m ]]> <x> & \r\n y", "d\ufffde") == (back['a"b\nc\ufffd'].message, back['a"b\nc\ufffd'].details)

    def test_fixture_round_trip_keeps_attempts(self) -> None:
        """Every flavour fixture, parsed and written back, re-parses to the same results (attempts included)."""
        for fixture in sorted(FIXTURES.glob("*.xml")):
            original = [r for r in iter_junit(fixture) if isinstance(r, TestResult)]
            again = self._reparse(render_junit(make_data(original)))
            key = lambda r: (r.suite or "", r.classname or "", r.name, r.attempt or 1)  # noqa: E731
            assert sorted(map(key, original)) == sorted(map(key, again)), fixture.name
            old = {key(r): r for r in original}
            for r in again:
                o = old[key(r)]
                assert (o.status, o.message, o.details, o.stdout, o.duration) == (
                    r.status, r.message, r.details, r.stdout, r.duration), (fixture.name, r.name)

    def test_suite_counts(self) -> None:
        """Suite elements carry their own counts; the root carries the run's."""
        root = ET.fromstring(render_junit(make_data(sample())).encode())
        assert ("5", "1", "1", "1") == tuple(root.get(k) for k in ("tests", "failures", "errors", "skipped"))
        suites = {s.get("name"): s for s in root.iter("testsuite")}
        assert ("3", "1", "0") == tuple(suites["pytest"].get(k) for k in ("tests", "failures", "errors"))


class TestAnnotations:
    def test_escaping(self) -> None:
        """% CR LF are escaped in messages; : and , too in properties (GitHub's workflow command rules)."""
        assert "100%25 a%0D%0Ab" == escape_data("100% a\r\nb")
        assert "a%3Ab%2Cc%25%0A" == escape_property("a:b,c%\n")

    def test_lines(self) -> None:
        """One ::error line per failed/errored test, with file, line and title; nothing else on the line."""
        results = sample()
        results[2] = TestResult(name="t,1:x", classname="C", status="failed", file="src/a,b.py", line=3,
                                message="50% off\nnext")
        out = render_annotations(make_data(results))
        lines = out.splitlines()
        assert 2 == len(lines)
        assert "::error file=src/a%2Cb.py,line=3,title=C.t%2C1%3Ax::50%25 off%0Anext" == lines[0]
        assert lines[1].startswith("::error title=pkg.mod.test_err::setup failed%0A%0ATraceback")


class TestWriteReport:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_every_format_writes(self, fmt: str) -> None:
        """Every wire format name renders something non-empty."""
        buf = io.StringIO()
        assert write_report(make_data(sample()), fmt, buf) is False  # type: ignore[arg-type]
        assert buf.getvalue()

    def test_markdown_budget(self) -> None:
        """max_bytes shortens Markdown through the degrade ladder and says so."""
        buf = io.StringIO()
        assert write_report(make_data(sample()), "markdown", buf, max_bytes=400) is True
        assert len(buf.getvalue().encode()) <= 400

    def test_unknown_format(self) -> None:
        """An unknown format is a ValueError naming the valid ones."""
        with pytest.raises(ValueError, match="markdown, html"):
            write_report(make_data(sample()), "pdf", io.StringIO())  # type: ignore[arg-type]


def test_empty_run_in_every_format() -> None:
    """A run without results (Summary only) still renders valid documents in every format."""
    data = make_data([])
    data.results = None
    assert render_markdown(data).startswith("## ⚪ No test results: unit tests")
    assert "" == render_annotations(data)
    root = ET.fromstring(render_junit(data).encode())
    assert ("testsuites", "0") == (root.tag, root.get("tests"))
    assert "results" not in json.loads(render_json(data))
    assert 'id="tests"' not in render_html(data)
