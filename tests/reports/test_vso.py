"""Azure Pipelines logging commands (``azure-vso``): escaping as the agent decodes it, the publish line only for a
run without a native test run, and a byte limit that drops issues before the publish and the tag."""

from __future__ import annotations

import io

import msgspec

from ci_sidecar.protocol.records import Target, TestResult
from ci_sidecar.reports import write_report
from ci_sidecar.reports.vso import MAX_ISSUES, escape_vso_data, escape_vso_property, iter_vso

from .reports_helpers import make_data

FAILED = TestResult(name="bad", classname="m", status="failed", file="src/a;b].py", line=3,
                    message="100% wrong\r\nsee below", details="trace")


def test_escaping_follows_the_agents_rules() -> None:
    """``%`` becomes ``%AZP25``, line breaks ``%0D``/``%0A``; properties also escape ``;`` and ``]``."""
    assert "50%AZP25%0D%0Ax" == escape_vso_data("50%\r\nx")
    assert "a%3Bb%5Dc" == escape_vso_property("a;b]c")


def test_a_failure_is_an_issue_and_the_junit_file_is_published_without_a_native_run() -> None:
    """Without a native Azure target: the publish line, the failed tag, one issue with file and line."""
    lines = list(iter_vso(make_data([FAILED, TestResult(name="ok", status="passed")]), "/out/junit.xml"))
    assert lines[0] == ("##vso[results.publish type=JUnit;runTitle=unit tests;mergeResults=false;"
                        "publishRunAttachments=false;resultFiles=/out/junit.xml;]")
    assert lines[1] == "##vso[build.addbuildtag]tests-failed"
    assert lines[2] == ("##vso[task.logissue type=error;sourcepath=src/a%3Bb%5D.py;linenumber=3;]"
                        "m.bad: 100%AZP25 wrong%0D%0Asee below%0Atrace")


def test_a_run_published_natively_is_not_published_again() -> None:
    """A run whose Azure target is native (the REST test run exists) gets no publish line."""
    data = make_data([TestResult(name="ok", status="passed")])
    data.run = msgspec.structs.replace(data.run, targets=[Target(role="ci", provider="azure", kind="native")])
    assert ["##vso[build.addbuildtag]tests-passed"] == list(iter_vso(data, "/out/junit.xml"))


def test_many_failures_are_capped_and_a_byte_limit_keeps_the_publish_and_the_tag() -> None:
    """Past 50 failures one warning counts the rest; under a byte limit the issues go first."""
    many = [TestResult(name=f"t{i}", status="failed", message="x" * 50) for i in range(MAX_ISSUES + 5)]
    lines = list(iter_vso(make_data(many), "/j.xml"))
    assert len(lines) == 2 + MAX_ISSUES + 1 and lines[-1].endswith("5 more failed test(s): see the test run")
    buf = io.StringIO()
    assert write_report(make_data(many), "azure-vso", buf, max_bytes=300, junit_path="/j.xml") is True
    assert buf.getvalue().splitlines()[:2] == lines[:2]
