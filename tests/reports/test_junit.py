"""iter_junit: every flavour's fixture, hostile and broken files, streaming."""

from __future__ import annotations

import collections
import io
import time
import tracemalloc
from pathlib import Path

import pytest

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports import ParseIssue, iter_junit, sha256_file



FIXTURES = Path(__file__).parent / "fixtures"


def parse(path: Path | str, **kw) -> tuple[list[TestResult], list[ParseIssue]]:
    results, issues = [], []
    for item in iter_junit(path, **kw):
        (issues if isinstance(item, ParseIssue) else results).append(item)
    return results, issues


def statuses(results: list[TestResult]) -> dict[str, int]:
    return dict(collections.Counter(r.status for r in results))


def by_name(results: list[TestResult], name: str) -> list[TestResult]:
    return [r for r in results if r.name == name]


class TestFlavours:
    @pytest.mark.parametrize(
        ("fixture", "expected"),
        [
            ("pytest.xml", {"passed": 2, "failed": 1, "skipped": 1, "error": 1}),
            ("surefire.xml", {"passed": 2, "failed": 2, "skipped": 1}),
            ("go-junit-report.xml", {"passed": 1, "failed": 1, "skipped": 1}),
            ("gotestsum.xml", {"passed": 3, "failed": 1}),
            ("jest-junit.xml", {"passed": 1, "failed": 1, "skipped": 1}),
            ("node-test.xml", {"passed": 2, "failed": 1, "skipped": 1}),
            ("dotnet-junit.xml", {"passed": 1, "failed": 1, "skipped": 1}),
            ("nextest.xml", {"passed": 2, "failed": 3}),
        ],
    )
    def test_counts(self, fixture: str, expected: dict[str, int]) -> None:
        """Every flavour parses completely, without issues, to the statuses its file holds (attempts included)."""
        results, issues = parse(FIXTURES / fixture)
        assert [] == issues
        assert expected == statuses(results)

    def test_pytest_fields(self) -> None:
        """pytest: message, trace, file/line, setup errors with output, testcase properties."""
        results, _ = parse(FIXTURES / "pytest.xml")
        (divide,) = by_name(results, "test_divide")
        assert ("failed", "AssertionError: assert 2 == 3") == (divide.status, divide.message)
        assert "tests/test_math.py:11: AssertionError" in (divide.details or "")
        assert ("tests/test_math.py", 9, "tests.test_math", "pytest") == (
            divide.file, divide.line, divide.classname, divide.suite)
        assert 0.002 == divide.duration
        (conn,) = by_name(results, "test_connect")
        assert "error" == conn.status
        assert 'failed on setup with "ConnectionRefusedError' in (conn.message or "")
        assert ("connecting to 127.0.0.1:5432", "warning: retrying") == (conn.stdout, conn.stderr)
        (skip,) = by_name(results, "test_skip_me")
        assert ("skipped", "not on linux") == (skip.status, skip.message)
        (prop,) = by_name(results, "test_with_property")
        assert {"ticket": "ABC-1", "tag": ["slow", "db"]} == prop.properties

    def test_surefire_fields_and_flaky(self) -> None:
        """Surefire: type kept, CDATA trace, localized suite time ignored, flakyFailure → failed attempt 1."""
        results, _ = parse(FIXTURES / "surefire.xml")
        (div,) = by_name(results, "dividesByZero")
        assert "expected: <1> but was: <0>" == div.message
        assert {"junit.type": "org.opentest4j.AssertionFailedError"} == div.properties
        assert (div.details or "").startswith("org.opentest4j.AssertionFailedError")
        assert "dividing 1 by 0" == div.stdout
        flaky = by_name(results, "flakyNetwork")
        assert [(1, "failed"), (2, "passed")] == [(r.attempt, r.status) for r in flaky]
        assert (flaky[0].details or "").startswith("java.net.SocketTimeoutException: timeout")
        assert "attempt one output" == flaky[0].stdout
        assert 0.051 == flaky[1].duration

    def test_go_junit_report(self) -> None:
        """go-junit-report: subtest names, the failure text with the file:line Go prints, skip reasons."""
        results, _ = parse(FIXTURES / "go-junit-report.xml")
        (sub,) = by_name(results, "TestRender/empty_input")
        assert ("failed", "Failed") == (sub.status, sub.message)
        assert '    render_test.go:42: got "x", want ""' == sub.details
        assert "github.com/acme/widget" == sub.suite

    def test_gotestsum_rerun_is_second_attempt(self) -> None:
        """gotestsum --rerun-fails repeats a test case: the repeat is attempt 2 of the same test."""
        results, _ = parse(FIXTURES / "gotestsum.xml")
        race = by_name(results, "TestRace")
        assert [(None, "failed"), (2, "passed")] == [(r.attempt, r.status) for r in race]
        assert "lost update" in (race[0].details or "")

    def test_jest_message_from_text(self) -> None:
        """jest-junit writes no message attribute: the text's first line becomes the message; file kept."""
        results, _ = parse(FIXTURES / "jest-junit.xml")
        (sub,) = by_name(results, "Calculator subtracts")
        assert "Error: expect(received).toBe(expected) // Object.is equality" == sub.message
        assert "src/calc.test.js" == sub.file
        assert "Calculator" == sub.suite

    def test_node_nested_suites(self) -> None:
        """Node's reporter: cases directly under <testsuites> have no suite; nested suites join their names."""
        results, _ = parse(FIXTURES / "node-test.xml")
        assert [None, "outer", "outer > inner", "outer > inner"] == [r.suite for r in results]
        (breaks,) = by_name(results, "breaks")
        assert (breaks.message or "").startswith("Expected values to be strictly equal:")
        (later,) = by_name(results, "later")
        assert ("skipped", None) == (later.status, later.message)

    def test_dotnet(self) -> None:
        """.NET JUnit logger: parameterised names with quotes, CRLF messages, suite output ignored."""
        results, _ = parse(FIXTURES / "dotnet-junit.xml")
        (num,) = by_name(results, 'Parses_Number(input: "42")')
        assert "Assert.Equal() Failure\r\nExpected: 42\r\nActual:   0" == num.message
        assert "Acme.Tests.ParserTests" == num.classname
        assert all(r.stdout is None for r in results)

    def test_nextest_flaky_and_reruns(self) -> None:
        """nextest: flakyFailure attempts precede the pass; rerunFailure attempts follow the first failure."""
        results, _ = parse(FIXTURES / "nextest.xml")
        flaky = by_name(results, "test_flaky")
        assert [(1, "failed", 0.015), (2, "passed", 0.02)] == [(r.attempt, r.status, r.duration) for r in flaky]
        assert "running 1 test\ntest test_flaky ... FAILED" == flaky[0].stdout
        assert "Failed because attempt 1 % 2 != 0" in (flaky[0].stderr or "")
        broken = by_name(results, "test_broken")
        assert [(1, "failed"), (2, "failed")] == [(r.attempt, r.status) for r in broken]
        assert "running 1 test" == broken[0].stdout


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuites><testsuite name="s"><testcase name="t"><failure message="&lol9;"/></testcase></testsuite></testsuites>
"""


class TestHostile:
    def test_billion_laughs_refused(self, tmp_path: Path) -> None:
        """A billion-laughs file is refused at its DOCTYPE: one clear issue, no results, nothing expanded."""
        path = tmp_path / "lol.xml"
        path.write_bytes(BILLION_LAUGHS)
        start = time.perf_counter()
        results, issues = parse(path)
        assert [] == results
        (issue,) = issues
        assert "DTDs and entities are not allowed" in issue.message
        assert (str(path), 2) == (issue.file, issue.line)
        assert time.perf_counter() - start < 1.0

    def test_external_entity_refused(self, tmp_path: Path) -> None:
        """An external entity (XXE) is refused; the referenced file's content never shows up."""
        secret = tmp_path / "secret.txt"
        secret.write_text("TOP-SECRET-VALUE")
        path = tmp_path / "xxe.xml"
        path.write_text(
            f'<?xml version="1.0"?>\n<!DOCTYPE t [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
            '<testsuite name="s"><testcase name="t"><failure>&xxe;</failure></testcase></testsuite>\n'
        )
        items = list(iter_junit(path))
        assert 1 == len(items)
        assert isinstance(items[0], ParseIssue)
        assert "not allowed" in items[0].message
        assert "TOP-SECRET" not in repr(items)

    def test_undeclared_entity_is_malformed(self) -> None:
        """An entity reference without a DTD is a malformed-XML issue, with its line."""
        data = b'<testsuite name="s">\n<testcase name="ok"/>\n<testcase name="t">&xxe;</testcase></testsuite>'
        items = list(iter_junit(io.BytesIO(data), name="x.xml"))
        assert "ok" == items[0].name  # type: ignore[union-attr]
        issue = items[-1]
        assert isinstance(issue, ParseIssue)
        assert ("x.xml", 3) == (issue.file, issue.line)
        assert "undefined entity" in issue.message


class TestBroken:
    def test_truncated_keeps_what_parsed(self, tmp_path: Path) -> None:
        """A file cut mid-test yields every complete test before the cut, then an issue with the line."""
        lines = ['<?xml version="1.0"?>', "<testsuites>", '<testsuite name="s">']
        lines += [f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(2000)]
        lines += ["</testsuite>", "</testsuites>"]
        text = "\n".join(lines)
        cut = text.index('name="t1500"') + 3
        path = tmp_path / "cut.xml"
        path.write_text(text[:cut])
        results, issues = parse(path)
        assert [f"t{i}" for i in range(1500)] == [r.name for r in results]
        (issue,) = issues
        assert 1504 == issue.line
        assert "line 1504" in issue.message

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty file is an issue at line 1, not a crash."""
        path = tmp_path / "empty.xml"
        path.write_bytes(b"")
        assert ([], 1) == (parse(path)[0], parse(path)[1][0].line)

    def test_not_junit(self, tmp_path: Path) -> None:
        """Another XML document is named as such."""
        path = tmp_path / "pom.xml"
        path.write_text("<project><testcase name='x'/></project>")
        results, (issue,) = parse(path)
        assert [] == results
        assert "not a JUnit file: root element is <project>" in issue.message

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be opened is an issue naming the file."""
        results, (issue,) = parse(tmp_path / "nope.xml")
        assert [] == results
        assert (str(tmp_path / "nope.xml"), None) == (issue.file, issue.line)
        assert "cannot read file" in issue.message

    def test_text_is_capped(self) -> None:
        """A 5 MB system-out is cut to max_text characters with a note."""
        big = "x" * 5_000_000
        data = f'<testsuite name="s"><testcase name="t"><system-out>{big}</system-out></testcase></testsuite>'
        (result,) = iter_junit(io.BytesIO(data.encode()), max_text=1000)
        assert isinstance(result, TestResult)
        assert (result.stdout or "").startswith("x" * 1000)
        assert "4999000 characters cut" in (result.stdout or "")

    def test_odd_attributes(self) -> None:
        """Bad time and line values are dropped, ``1,234.5`` is read, a missing name falls back to classname."""
        data = (b'<testsuite><testcase classname="C" time="1,234.5" line="x"/>'
                b'<testcase name="n" time="-3" line="7"/><testcase name="m" time="nan"/></testsuite>')
        a, b, c = iter_junit(io.BytesIO(data))
        assert ("C", 1234.5, None) == (a.name, a.duration, a.line)  # type: ignore[union-attr]
        assert (None, 7) == (b.duration, b.line)  # type: ignore[union-attr]
        assert c.duration is None  # type: ignore[union-attr]

    def test_utf16_file(self) -> None:
        """Encodings declared by the file are honoured."""
        data = '<?xml version="1.0" encoding="UTF-16"?><testsuite><testcase name="ünï"/></testsuite>'
        (r,) = iter_junit(io.BytesIO(data.encode("utf-16")))
        assert "ünï" == r.name  # type: ignore[union-attr]


class TestStreaming:
    def test_results_arrive_before_the_end(self) -> None:
        """The first results are yielded while most of the file is still unread."""
        body = b"".join(b'<testcase name="t%d"/>' % i for i in range(50_000))
        stream = io.BytesIO(b"<testsuite>" + body + b"</testsuite>")
        it = iter_junit(stream)
        first = next(it)
        assert "t0" == first.name  # type: ignore[union-attr]
        assert stream.tell() < len(stream.getvalue()) / 4

    def test_memory_stays_small(self) -> None:
        """Parsing an 8 MB file (1% failures) peaks far below the file's size (no tree is kept)."""
        ok = b'<testcase classname="pkg.mod" name="test_%d" time="0.01"><system-out>' + b"o" * 200 + b"</system-out></testcase>\n"
        bad = b'<testcase classname="pkg.mod" name="test_%d" time="0.01"><failure message="m">' + b"t" * 200 + b"</failure></testcase>\n"
        cases = b"".join((bad if i % 100 == 0 else ok) % i for i in range(30_000))
        data = b"<testsuites><testsuite name='s'>" + cases + b"</testsuite></testsuites>"
        assert len(data) > 8_000_000
        tracemalloc.start()
        try:
            n = sum(1 for _ in iter_junit(io.BytesIO(data)))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert 30_000 == n
        assert peak < 2_000_000


def test_sha256_file(tmp_path: Path) -> None:
    """sha256_file gives the hex digest (same bytes, same digest; one byte changed, different digest)."""
    a = tmp_path / "a.xml"
    a.write_bytes(b"abc")
    assert "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" == sha256_file(a)
    b = tmp_path / "b.xml"
    b.write_bytes(b"abd")
    assert sha256_file(a) != sha256_file(b)
