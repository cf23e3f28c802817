"""One test = one record: versions of the same (test, attempt) merge, the richest source wins
(``ci_sidecar/service/result_versions.py``), in the run's reports and what providers read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import msgspec

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.service.result_versions import iter_merged, merge_versions
from ci_sidecar.service.tally import Tally

PLUGIN = TestResult(name="test_c", suite="pytest", classname="test_six", status="failed", file="test_six.py",
                    line=4, duration=0.0012, message="AssertionError: one is not two", details="trace",
                    stdout="captured")
JUNIT = TestResult(name="test_c", suite="pytest", classname="test_six", status="failed", duration=0.001,
                   message="AssertionError: one is not two\nassert 1 == 2", details="junit trace")

_enc = msgspec.msgpack.Encoder().encode
_dec = msgspec.msgpack.Decoder(TestResult).decode


def merged(records: list[TestResult], **kw: object) -> list[TestResult]:
    raw = [_enc(r) for r in records]
    return [_dec(b) for b in iter_merged(lambda: iter(raw), kw.pop("end", len(raw)), **kw)]  # type: ignore[arg-type]


class TestMergeVersions:
    def test_a_poorer_copy_arriving_later_keeps_the_richer_record(self) -> None:
        """A JUnit copy after the plugin's record keeps file, line and captured output."""
        got = merge_versions(PLUGIN, JUNIT)
        assert ("test_six.py", 4, "captured", "AssertionError: one is not two") == (
            got.file, got.line, got.stdout, got.message)

    def test_the_richer_record_wins_in_either_order(self) -> None:
        """The plugin's record arriving after the JUnit copy is kept as well."""
        assert merge_versions(JUNIT, PLUGIN) == PLUGIN

    def test_the_poorer_copy_fills_what_the_richer_lacks(self) -> None:
        """Fields only the poorer version has are not lost."""
        richer = msgspec.structs.replace(PLUGIN, properties=None)
        poorer = msgspec.structs.replace(JUNIT, properties={"junit": "yes"})
        assert {"junit": "yes"} == merge_versions(richer, poorer).properties

    def test_another_outcome_is_a_resend_that_replaces(self) -> None:
        """A resend with another status replaces the earlier version entirely (no stale message)."""
        passed = TestResult(name="test_c", suite="pytest", classname="test_six", status="passed")
        assert passed == merge_versions(PLUGIN, passed)


class TestIterMerged:
    def test_each_test_and_attempt_appears_once_merged_at_its_first_place(self) -> None:
        """Repeated versions come out once, merged, where the first was; the rest pass unchanged, in order."""
        other = TestResult(name="test_a", suite="pytest", classname="test_six", status="passed")
        retry = msgspec.structs.replace(PLUGIN, attempt=2, status="passed", message=None)
        got = merged([JUNIT, other, retry, PLUGIN])
        assert [(None, "failed"), (None, "passed"), (2, "passed")] == [(r.attempt, r.status) for r in got]
        assert ("test_six.py", 4, "captured") == (got[0].file, got[0].line, got[0].stdout)
        assert "test_a" == got[1].name and 2 == got[2].attempt  # the retry is another attempt, kept

    def test_a_range_yields_only_records_whose_first_version_is_in_it(self) -> None:
        """``start`` skips what lies before it; ``end`` bounds what is read."""
        other = TestResult(name="test_a", status="passed")
        assert ["test_c"] == [r.name for r in merged([other, PLUGIN, JUNIT], start=1)]
        assert [] == [r.name for r in merged([PLUGIN, JUNIT, other], start=1, end=2)]
        assert ["test_a", "test_c"] == [r.name for r in merged([other, PLUGIN, JUNIT], end=2)]

    def test_unique_records_pass_through_untouched(self) -> None:
        """A run with as many records as tests is read as is."""
        assert [PLUGIN, JUNIT] == merged([PLUGIN, JUNIT], unique=True)


def test_live_failures_keep_the_richer_version() -> None:
    """The failures kept in memory for live summaries keep file and line when a JUnit copy arrives."""
    tally = Tally()
    tally.add(PLUGIN)
    tally.add(JUNIT)
    (kept,) = tally.failures.values()
    assert ("test_six.py", 4, 1, 1) == (kept.file, kept.line, tally.total, tally.failed)


SIX = """
import pytest
def test_a(): pass
def test_b(): pass
def test_c(): assert 1 == 2, "one is not two"
@pytest.mark.skip(reason="later")
def test_d(): pass
class TestK:
    def test_e(self): pass
    def test_f(self): raise ValueError("boom")
"""


def test_pytest_plugin_and_its_junit_under_exec_store_one_record_per_test(tmp_path: Path,
                                                                         env: dict[str, str]) -> None:
    """``exec --junit`` over pytest with the plugin: 6 tests are 6 records, with the plugin's file/line."""
    (tmp_path / "test_six.py").write_text(textwrap.dedent(SIX))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    argv = [sys.executable, "-m", "ci_sidecar", "exec", "--junit", "junit.xml", "--", sys.executable, "-m", "pytest",
            "-p", "ci_sidecar_client.pytest_plugin", "-p", "no:cacheprovider", "-q", "--junitxml", "junit.xml"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert 1 == done.returncode, done.stdout + done.stderr
    assert "reported 6 results" in done.stdout, done.stdout
    report = next(line.split(": ", 2)[2] for line in done.stderr.splitlines() if line.startswith("ci-sidecar: report: "))
    out = Path(report).parent
    rows = json.loads((out / "results.json").read_text())["results"]
    assert 6 == len(rows), [(r["classname"], r["name"]) for r in rows]
    assert all(r["file"] == "test_six.py" and r["line"] for r in rows), rows
    reported = json.loads((out / "report.json").read_text())["results"]
    assert {("test_six.py", 5)} == {(r["file"], r["line"]) for r in reported if r["name"] == "test_c"}
