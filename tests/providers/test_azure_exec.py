"""``ci-sidecar exec`` in an Azure Pipelines job, end to end (the real CLI and daemon): without a token it prints
``##vso`` logging commands — the staged JUnit file for the agent to publish as the test run, an issue per failure,
a build tag — and sends nothing; with a token the test run goes through the REST API (the fake Azure DevOps) and
the log gets the issues and the tag but no second test run."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.azure import PROJECT, FakeAzure
from fakes.azure_scenario import GIT_SPEC, REPO, TEST_SPEC, TOKEN
from fakes.spec import require_spec
from helpers import scrubbed_env

SHA = "ab" * 20
CASES = ('<testcase classname="m" name="ok" time="0.1"/>'
         '<testcase classname="m" name="bad" file="src/m.py" line="12">'
         '<failure message="expected 2; got [3]">trace</failure></testcase>')


@pytest.fixture
def job() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="csz", dir="/tmp") as d:
        job = Path(d) / "job"
        job.mkdir()
        (job / "out.xml").write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="s">{CASES}'
                                     '</testsuite>\n')
        yield job


def pipeline_env(job: Path, collection: str, token: str | None) -> dict[str, str]:
    env = scrubbed_env(job.parent, TF_BUILD="True", SYSTEM_COLLECTIONURI=collection, SYSTEM_TEAMPROJECT=PROJECT,
                       BUILD_BUILDID="77", BUILD_BUILDURI="vstfs:///Build/Build/77", BUILD_REPOSITORY_ID=REPO,
                       BUILD_REPOSITORY_NAME="widgets", BUILD_REPOSITORY_PROVIDER="TfsGit",
                       BUILD_SOURCEVERSION=SHA, BUILD_SOURCEBRANCH="refs/heads/main", BUILD_REASON="IndividualCI")
    env.pop("CI_SIDECAR_OUTPUT_DIR", None)
    if token:
        env["SYSTEM_ACCESSTOKEN"] = token
    return env


def exec_tests(job: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ci_sidecar", "exec", "--name", "unit tests", "--junit", "out.xml",
                           "--wait-s", "30", "--", "true"], cwd=job, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_without_a_token_exec_prints_logging_commands_for_the_agent(job: Path) -> None:
    """No token: the JUnit file to publish (it exists and holds the run), an issue with file and line (``;`` and
    ``]`` escaped), the build tag; nothing is sent to Azure DevOps."""
    with FakeAzure(require_spec(TEST_SPEC), require_spec(GIT_SPEC), repository=REPO) as fake:
        done = exec_tests(job, pipeline_env(job, fake.collection_url, None))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("##vso[")]
    publish = next(line for line in lines if line.startswith("##vso[results.publish "))
    assert "type=JUnit;runTitle=unit tests;" in publish
    junit = Path(publish.split("resultFiles=", 1)[1].removesuffix(";]"))
    assert junit.is_file() and 'name="bad"' in junit.read_text()
    assert ("##vso[task.logissue type=error;sourcepath=src/m.py;linenumber=12;]m.bad: expected 2; got [3]%0Atrace"
            in lines)
    assert "##vso[build.addbuildtag]tests-failed" in lines
    assert fake.calls() == []


def test_with_a_token_the_test_run_is_published_once_and_the_log_gets_the_issues(job: Path) -> None:
    """With ``SYSTEM_ACCESSTOKEN`` the run is a test run through the API; the log has the issue and the tag and
    no results.publish (which would make a second test run)."""
    with FakeAzure(require_spec(TEST_SPEC), require_spec(GIT_SPEC), tokens=(TOKEN,), repository=REPO) as fake:
        done = exec_tests(job, pipeline_env(job, fake.collection_url, TOKEN))
        runs = fake.runs()
        assert fake.violations == []
    assert done.returncode == 0, done.stderr
    assert "results.publish" not in done.stdout and "##vso[build.addbuildtag]tests-failed" in done.stdout
    assert "sourcepath=src/m.py;linenumber=12" in done.stdout
    ((run),) = runs
    assert (run["name"], run["state"], run["totalTests"], run["unanalyzedTests"]) == ("unit tests", "Completed", 2, 1)
    assert TOKEN not in done.stdout + done.stderr


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "azure" / "azure-pipelines.yml"


def test_the_example_pipeline_runs_real_commands_with_the_token_mapped() -> None:
    """examples/azure: every ci-sidecar command parses with the real CLI, exec's JUnit glob matches what the suite
    writes, and the exec step maps System.AccessToken (secrets are not in a step's environment otherwise)."""
    import fnmatch
    import shlex

    yaml = pytest.importorskip("yaml")
    from ci_sidecar.cli import build_parser

    steps = yaml.safe_load(EXAMPLE.read_text())["steps"]
    lines = [(step, line.strip()) for step in steps for line in str(step.get("script", "")).splitlines()
             if line.strip().startswith("ci-sidecar ")]
    assert [shlex.split(line)[1] for _, line in lines] == ["doctor", "exec"]
    for _, line in lines:
        build_parser().parse_args(shlex.split(line)[1:])  # SystemExit on an unknown command or option
    step, line = lines[-1]
    exec_args = build_parser().parse_args(shlex.split(line)[1:])
    wrapped = exec_args.cmd[1:] if exec_args.cmd[:1] == ["--"] else exec_args.cmd
    written = next(a.split("=", 1)[1] for a in wrapped if a.startswith("--junitxml="))
    assert any(fnmatch.fnmatch(written, glob) for glob in exec_args.junit), (written, exec_args.junit)
    assert step["env"] == {"SYSTEM_ACCESSTOKEN": "$(System.AccessToken)"}
