"""``ci-sidecar exec`` and ``ci-sidecar demo`` end to end: the real CLI as a subprocess, scrubbed environment.

What a user wrapping a test command sees: the command's output, its exit status, a run that counts what
the command reported itself (over ``$CI_SIDECAR_SOCKET``/``$CI_SIDECAR_RUN_ID``) and what its JUnit files
say, a summary naming the report, and on GitHub Actions ``::error`` workflow commands.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import run_on_terminal

PY = sys.executable
SHA = "0123456789abcdef0123456789abcdef01234567"


def cli(*args: str, cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "ci_sidecar", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def report_path(stderr: str) -> Path:
    """The report the summary names (``ci-sidecar: report: PATH``)."""
    lines = [line for line in stderr.splitlines() if line.startswith("ci-sidecar: report: ")]
    assert len(lines) == 1, stderr
    path = Path(lines[0].removeprefix("ci-sidecar: report: "))
    assert path.name == "report.html" and path.is_file(), stderr
    return path


def run_record(stderr: str) -> dict:
    """The finished run as the local provider wrote it (run.json beside the report)."""
    return json.loads((report_path(stderr).parent / "run.json").read_text())


@pytest.fixture
def job(tmp_path: Path) -> Path:
    d = tmp_path / "job"
    d.mkdir()
    return d


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """conftest's scrubbed environment, but local output in the job's cwd as a user would have it (the
    commands run in a temp dir, so nothing lands in the checkout)."""
    env.pop("CI_SIDECAR_OUTPUT_DIR", None)
    return env


def junit(path: Path, cases: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="s">{cases}</testsuite>\n')


def test_the_command_joins_the_run_and_its_output_passes_through(job: Path, env: dict[str, str]) -> None:
    script = job / "tests.sh"
    script.write_text(textwrap.dedent(f"""\
        echo "stdout of the command: socket=${{CI_SIDECAR_SOCKET:+set}}"
        echo "stderr of the command" >&2
        {PY} -m ci_sidecar call report_results - <<EOF
        {{"test_run_id": "$CI_SIDECAR_RUN_ID", "results": [
          {{"name": "boots", "status": "passed"}}, {{"name": "blinks", "status": "passed"}},
          {{"name": "needs_board", "status": "skipped", "message": "no board"}}]}}
        EOF
        """))
    done = cli("exec", "--name", "self-reporting", "--", "sh", str(script), cwd=job, env=env)
    assert done.returncode == 0, done.stderr
    assert "stdout of the command: socket=set" in done.stdout
    assert "stderr of the command" in done.stderr
    assert "ci-sidecar: run 'self-reporting': success: 2 passed, 0 failed, 1 skipped" in done.stderr
    run = run_record(done.stderr)
    assert run["conclusion"] == "success" and run["counts"]["total"] == 3 and run["counts"]["skipped"] == 1
    assert report_path(done.stderr).is_relative_to(job / "ci-sidecar-out")
    assert "needs_board" in report_path(done.stderr).read_text()


def test_junit_files_are_ingested_and_the_exit_status_is_the_commands(job: Path, env: dict[str, str]) -> None:
    # every test passes, but the command exits 3 (a crash after the tests): the run is a failure
    junit(job / "build" / "a" / "TEST-a.xml", '<testcase classname="a" name="one" time="0.1"/>'
                                               '<testcase classname="a" name="two" time="0.2"/>')
    junit(job / "build" / "b" / "TEST-b.xml", '<testcase classname="b" name="three"><skipped/></testcase>')
    (job / "build" / "notes.txt").write_text("not JUnit, not matched")
    done = cli("exec", "--junit", "build/**/*.xml", "--", "sh", "-c", "echo ran; exit 3", cwd=job, env=env)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines()[0] == "ran"
    assert "failure: 2 passed, 0 failed, 1 skipped" in done.stderr
    run = run_record(done.stderr)
    assert run["conclusion"] == "failure" and run["counts"]["total"] == 3


def test_failures_in_junit_conclude_failure_but_exit_with_the_commands_status(job: Path, env: dict[str, str]) -> None:
    junit(job / "out.xml", '<testcase classname="m" name="ok"/>'
                           '<testcase classname="m" name="bad"><failure message="expected 2, got 3">trace'
                           '</failure></testcase>')
    done = cli("exec", "--junit", "out.xml", "--junit", "missing/*.xml", "--", "true", cwd=job, env=env)
    assert done.returncode == 0, done.stderr  # the command's status, not the tests'
    assert "failure: 1 passed, 1 failed, 0 skipped" in done.stderr
    assert "no JUnit files match missing/*.xml" in done.stderr
    assert "expected 2, got 3" in report_path(done.stderr).read_text()
    assert "::error" not in done.stdout  # workflow commands only on GitHub Actions


def test_a_missing_command_exits_127_and_fails_the_run(job: Path, env: dict[str, str]) -> None:
    done = cli("exec", "--", "no-such-command-for-ci-sidecar", cwd=job, env=env)
    assert done.returncode == 127
    assert "command not found: no-such-command-for-ci-sidecar" in done.stderr
    assert run_record(done.stderr)["conclusion"] == "failure"


def test_usage_without_a_command(job: Path, env: dict[str, str]) -> None:
    done = cli("exec", "--", cwd=job, env=env)
    assert done.returncode == 2 and "usage: ci-sidecar exec" in done.stderr


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections: bound, never listening, for the whole test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def github_env(env: dict[str, str], port: int) -> dict[str, str]:
    return dict(env, CI="true", GITHUB_ACTIONS="true", GITHUB_REPOSITORY="octo/widgets", GITHUB_SHA=SHA,
                GITHUB_REF="refs/heads/main", GITHUB_EVENT_NAME="push", GITHUB_RUN_ID="42",
                GITHUB_RUN_ATTEMPT="1", GITHUB_SERVER_URL="https://github.com",
                GITHUB_API_URL=f"http://127.0.0.1:{port}", GITHUB_TOKEN="ghs_exectestnotarealtoken0000")


def test_on_github_actions_failures_become_error_commands_and_undelivered_writes_can_fail_the_job(
        job: Path, env: dict[str, str], closed_port: int) -> None:
    junit(job / "out.xml", '<testcase classname="m" name="ok"/>'
                           '<testcase classname="m" name="bad" file="src/m.py" line="12">'
                           '<failure message="expected 2, got 3">trace</failure></testcase>')
    gh = github_env(env, closed_port)
    argv = ["--junit", "out.xml", "--wait-s", "2", "--", "true"]
    # both at once: each waits its 2 s for a GitHub that never answers
    strict = subprocess.Popen([PY, "-m", "ci_sidecar", "exec", "--fail-on-undelivered", *argv], cwd=job,
                              env=dict(gh, CI_SIDECAR_STATE_DIR=str(job / "state-strict")),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lenient = subprocess.Popen([PY, "-m", "ci_sidecar", "exec", *argv], cwd=job,
                               env=dict(gh, CI_SIDECAR_STATE_DIR=str(job / "state-lenient")),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    out, err = strict.communicate(timeout=60)
    lenient_out, lenient_err = lenient.communicate(timeout=60)
    took = time.monotonic() - started
    assert strict.returncode == 1, err
    assert lenient.returncode == 0, lenient_err  # the command's status when undelivered writes are allowed
    for stdout, stderr, state in ((out, err, "state-strict"), (lenient_out, lenient_err, "state-lenient")):
        assert "::error file=src/m.py,line=12" in stdout and "expected 2, got 3" in stdout, stdout
        assert "github: native (via check run), pending" in stderr, stderr
        # the exact list of what is missing on the PR, and where it waits for the next daemon
        assert (f"not delivered in time: 1 write(s); kept in {job / state}; the next ci-sidecar daemon "
                f"started under {job / state} delivers them") in stderr, stderr
        assert re.search(r"pending: github run:\w+ \(PublishRun, \d+ attempts?.*connection failed", stderr), stderr
        assert run_record(stderr)["conclusion"] == "failure"
    assert "ghs_exectestnotarealtoken0000" not in out + err
    assert took < 12, f"--wait-s 2 but exec took {took:.1f} s"


def test_a_chatty_command_does_not_wedge_the_private_daemon(job: Path, env: dict[str, str]) -> None:
    """The daemon logs every session; a command opening many sessions must not fill a pipe nobody reads."""
    script = job / "chatty.py"
    script.write_text(textwrap.dedent("""\
        import os
        from ci_sidecar_client import Client
        for i in range(16):  # each session logs its (long) client name: well past a 64 KiB pipe
            with Client.connect(client_name="plugin-" + "x" * 8000, timeout=10) as c:
                c.request("get_test_run_status", {"test_run_id": os.environ["CI_SIDECAR_RUN_ID"]}, timeout=10)
        with Client.connect(timeout=10) as c:
            c.request("report_results", {"test_run_id": os.environ["CI_SIDECAR_RUN_ID"],
                                         "results": [{"name": f"t{i}", "status": "passed"} for i in range(16)]},
                      timeout=10)
        print("all sessions done")
        """))
    done = cli("exec", "--", PY, str(script), cwd=job, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "all sessions done" in done.stdout
    assert "success: 16 passed" in done.stderr


def test_live_progress_on_a_terminal(job: Path, env: dict[str, str]) -> None:
    script = job / "slow.py"
    script.write_text(textwrap.dedent("""\
        import os, time
        from ci_sidecar_client import Client
        run = os.environ["CI_SIDECAR_RUN_ID"]
        with Client.connect() as c:
            c.request("report_results", {"test_run_id": run, "results": [
                {"name": "a", "status": "passed"}, {"name": "b", "status": "passed"}]})
            time.sleep(1.3)
            c.request("report_results", {"test_run_id": run, "results": [{"name": "c", "status": "failed"}]})
            time.sleep(1.3)
        """))
    code, text = run_on_terminal([PY, "-m", "ci_sidecar", "exec", "--", PY, str(script)], job, env)
    assert code == 0, text
    assert "2 passed, 0 failed, 0 skipped so far" in text, text
    assert "2 passed, 1 failed, 0 skipped so far" in text, text
    assert "\r\x1b[2K" in text  # redrawn in place, and the line is cleared before the summary
    assert "failure: 2 passed, 1 failed, 0 skipped" in text


def test_demo_leaves_a_report_in_the_current_directory(job: Path, env: dict[str, str]) -> None:
    done = cli("demo", cwd=job, env=env)
    assert done.returncode == 0, done.stderr
    assert "FAIL math::test_rounding" in done.stdout
    report = report_path(done.stderr)
    assert report.parent.parent == job / "ci-sidecar-out"
    html = report.read_text()
    assert "0.1 + 0.2 != 0.3 in binary floating point" in html and "test_needs_network" in html
    assert run_record(done.stderr)["counts"] == {"total": 6, "passed": 4, "failed": 1, "errors": 0, "skipped": 1,
                                                 "flaky": 0}
    assert "fails on purpose" in done.stderr


def test_when_no_daemon_can_start_the_command_still_runs_and_demo_does_not_claim_success(
        job: Path, env: dict[str, str]) -> None:
    """An unusable state root and no socket: the command runs anyway, stderr says why, the exit status is the
    command's; --strict makes that a failure, and demo (which is strict) says it failed."""
    (job / "not-a-dir").write_text("")
    broken = dict(env, CI_SIDECAR_STATE_DIR=str(job / "not-a-dir" / "state"))
    script = "import pathlib, sys; pathlib.Path('ran').write_text('yes'); sys.exit(3)"
    done = cli("exec", "--", PY, "-c", script, cwd=job, env=broken)
    assert done.returncode == 3, done.stderr  # the command's own status
    assert (job / "ran").read_text() == "yes"
    assert "no ci-sidecar daemon could be started or reached" in done.stderr and "Not a directory" in done.stderr
    assert "running the command without it" in done.stderr, done.stderr
    passing = cli("exec", "--", "true", cwd=job, env=broken)
    assert passing.returncode == 0, passing.stderr
    strict = cli("exec", "--strict", "--", "true", cwd=job, env=broken)
    assert strict.returncode == 1 and "--strict" in strict.stderr, strict.stderr
    demo = cli("demo", cwd=job, env=broken)
    assert demo.returncode != 0 and "demo failed" in demo.stderr, demo.stderr
    assert "demo done" not in demo.stderr and not (job / "ci-sidecar-out").exists()
