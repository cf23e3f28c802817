"""TeamCity service messages: every value survives the escaping, and a run renders as a valid flow."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports.teamcity import ServiceMessages, escape, message, single, test_name
from fakes.teamcity_messages import Message, ParseError, check_flows, parse_line, parse_stream

# any text: every plane, control characters, the grammar's own specials, lone line separators
_TEXT = st.text(st.characters(codec="utf-8"), max_size=200)


class TestEscaping:
    @settings(max_examples=400, deadline=None)
    @given(name=_TEXT, text=_TEXT)
    def test_any_value_round_trips(self, name: str, text: str) -> None:
        """Any test name and message comes back unchanged from an independent parser, on one line."""
        line = message("testFailed", name=name, message=text, flowId="f1")
        assert line.count("\n") == 1 and line.endswith("\n")
        assert Message("testFailed", None, {"name": name, "message": text, "flowId": "f1"}) == parse_line(line)

    @settings(max_examples=200, deadline=None)
    @given(value=_TEXT)
    def test_single_value_round_trips(self, value: str) -> None:
        """A one-value message (addBuildTag, publishArtifacts) round-trips too."""
        assert Message("addBuildTag", value, {}) == parse_line(single("addBuildTag", value))

    @pytest.mark.parametrize(("raw", "escaped"), [
        ("it's", "it|'s"), ("a\nb", "a|nb"), ("a\rb", "a|rb"), ("a|b", "a||b"), ("[x]", "|[x|]"),
        ("\u0085", "|0x0085"), ("\u2028", "|0x2028"), ("\u2029", "|0x2029"), ("\x00", "|0x0000"), ("\x1b", "|0x001B"),
        ("naïve ✓ 😀", "naïve ✓ 😀"),
    ])
    def test_grammar_examples(self, raw: str, escaped: str) -> None:
        """Each special character gets the escape TeamCity's grammar names; other text stays as it is."""
        assert escaped == escape(raw)

    def test_the_parser_refuses_broken_messages(self) -> None:
        """The test parser is strict: an unescaped bracket or quote is an error, not a guess."""
        for bad in ("##teamcity[testStarted name='a]b']", "##teamcity[testStarted name='a'b']",
                    "##teamcity[testStarted name='a|qb']", "##teamcity[testStarted name='ab'"):
            with pytest.raises(ParseError):
                parse_line(bad)


def _result(name: str, status: str, **kw: object) -> TestResult:
    return TestResult(name=name, status=status, classname="pkg.Case", **kw)  # type: ignore[arg-type]


class TestServiceMessages:
    def test_a_run_renders_as_one_valid_flow(self) -> None:
        """Every result is one test on the run's flow, in order, with its outcome and duration in ms."""
        sm = ServiceMessages(flow_id="run-1", suite="unit tests", artifact_root="ci-sidecar/run-1")
        text = sm.begin() + sm.results([
            _result("test_a", "passed", duration=0.0504),
            _result("test_b", "failed", message="assert 1 == 2", details="Traceback\n  line 3", stdout="out"),
            _result("test_c", "skipped", message="no db"),
            _result("test_d", "error", duration=2.0),
        ]) + sm.end({"name": "unit tests", "conclusion": "failure",
                     "counts": {"passed": 1, "failed": 1, "errors": 1, "skipped": 1}})
        messages = parse_stream(text)
        flows = check_flows(messages)
        assert ["unit tests"] == flows["run-1"].suites
        assert [("pkg.Case.test_a", "passed", 50), ("pkg.Case.test_b", "failed", 0),
                ("pkg.Case.test_c", "skipped", 0), ("pkg.Case.test_d", "failed", 2000)] == flows["run-1"].tests
        assert {"pkg.Case.test_b": "assert 1 == 2", "pkg.Case.test_d": "error"} == flows["run-1"].failures
        by_name = {m.name: m for m in messages}
        assert "Traceback\n  line 3" == next(m for m in messages if m.name == "testFailed").attrs["details"]
        assert "run-1" == by_name["buildProblem"].attrs["identity"].removeprefix("ci-sidecar-")
        assert by_name["buildStatus"].attrs["text"].startswith("{build.status.text}; unit tests: 1 passed, 2 failed")
        assert "ci-sidecar-failure" == by_name["addBuildTag"].value

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.tuples(_TEXT.filter(bool), st.sampled_from(["passed", "failed", "error", "skipped"]), _TEXT,
                              _TEXT, st.floats(0, 1e6)), max_size=8), _TEXT.filter(bool))
    def test_any_run_parses_back_as_one_valid_flow(self, rows: list, suite: str) -> None:
        """Whatever the names, messages, output and durations, the run is one valid flow with each result once."""
        results = [TestResult(name=name, status=status, message=text or None, stdout=out or None, duration=secs)
                   for name, status, text, out, secs in rows]
        sm = ServiceMessages(flow_id="f", suite=suite, artifact_root="ci-sidecar/f")
        text = sm.begin() + sm.results(results) + sm.end({"name": suite, "conclusion": "success", "counts": {}})
        report = check_flows(parse_stream(text))["f"]
        assert [suite] == report.suites
        outcome = {"passed": "passed", "failed": "failed", "error": "failed", "skipped": "skipped"}
        assert [(r.name, outcome[r.status], round(r.duration * 1000)) for r in results] == report.tests

    def test_a_passing_run_raises_no_build_problem(self) -> None:
        """A successful run sets the status text and a tag, and does not fail the build."""
        sm = ServiceMessages(flow_id="r", suite="s", artifact_root="ci-sidecar/r")
        names = [m.name for m in parse_stream(sm.end({"name": "s", "conclusion": "success",
                                                      "counts": {"passed": 3}}))]
        assert ["testSuiteFinished", "buildStatus", "addBuildTag"] == names

    def test_artifacts_are_published_and_linked_to_their_test(self) -> None:
        """Staged artifacts are published under the run's folder; one naming a test is linked from it."""
        sm = ServiceMessages(flow_id="r", suite="s", artifact_root="ci-sidecar/r")
        text = sm.end({"name": "s", "conclusion": "success", "counts": {}},
                      [{"name": "logs/a.log", "metadata": {"test": "pkg.Case.test_a"}},
                       {"name": "b.txt", "metadata": {}}, {"name": "not-staged.txt"}],
                      {"logs/a.log": "/w/ci-sidecar-staged/artifacts/r/logs/a.log", "b.txt": "/w/staged/b.txt"})
        messages = parse_stream(text)
        assert ["/w/ci-sidecar-staged/artifacts/r/logs/a.log => ci-sidecar/r/logs", "/w/staged/b.txt => ci-sidecar/r"] \
            == [m.value for m in messages if m.name == "publishArtifacts"]
        meta = next(m for m in messages if m.name == "testMetadata")
        assert {"testName": "pkg.Case.test_a", "name": "logs/a.log", "type": "artifact",
                "value": "ci-sidecar/r/logs/a.log", "flowId": "r"} == meta.attrs

    def test_test_names_are_qualified_once(self) -> None:
        """A test is named class.name, without doubling a prefix the name already has."""
        assert "pkg.Case.t" == test_name(_result("t", "passed"))
        assert "pkg.Case.t" == test_name(_result("pkg.Case.t", "passed"))
        assert "t" == test_name(TestResult(name="t", status="passed"))
