"""The Jenkins provider against the fake Jenkins: the build addressed through folders and multibranch jobs, Basic
auth, the crumb bound to its session cookie, the build description as a board of lines, the JUnit report and
artifacts staged for ``junit``/``archiveArtifacts`` and found again through the build's API, doctor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from ci_sidecar.credentials import Credential, CredentialRef, Secret
from ci_sidecar.protocol.records import CIContext, Counts, TestResult
from ci_sidecar.providers.base import PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus, UploadArtifact
from ci_sidecar.providers.jenkins import JenkinsProvider
from ci_sidecar.providers.jenkins._api import build_path, error_message
from ci_sidecar.providers._http import Response
from fakes.jenkins import FakeJenkins

USER, TOKEN = "ci-bot", "11aa22bb33cc44dd55ee66ff77889900aa"
JOB = "org/widgets/feature%2Fdark mode"  # a multibranch branch job in a folder, as JOB_NAME holds it
NUMBER = 12


@pytest.fixture
def fake() -> Iterator[FakeJenkins]:
    with FakeJenkins(users={USER: TOKEN}) as jenkins:
        jenkins.add_build(JOB, NUMBER)
        yield jenkins
    assert len(jenkins.violations) == jenkins.expected_violations, jenkins.violations


class Envs:
    """ProviderEnvs of one Jenkins build against the fake; ``results`` are the run's per-test records."""

    def __init__(self, fake: FakeJenkins, workspace: Path) -> None:
        self.fake, self.workspace = fake, workspace
        self.logs: list[str] = []
        self.results: list[TestResult] = []

    def __call__(self, token: str | None = TOKEN, *, user: str = USER, **config: Any) -> ProviderEnv:
        ci = CIContext(provider="jenkins", sources={}, job=JOB, build_number=str(NUMBER),
                       build_url=self.fake.build_url(JOB, NUMBER))
        settings = {"trust_env": False, "jenkins_url": self.fake.url, "build_url": self.fake.build_url(JOB, NUMBER),
                    "job_name": JOB, "build_number": str(NUMBER), "workspace": str(self.workspace), **config}
        cred = CredentialRef(provider="jenkins", base_url=self.fake.url, source="env:JENKINS_TOKEN", fingerprint="f",
                             username=user) if token else None
        return ProviderEnv.build(ci, settings, cred, token, log=self.logs.append, read_results=self.read_results)

    async def read_results(self, run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        for result in self.results[start:end]:
            yield msgspec.msgpack.encode(result)


@pytest.fixture
def envs(fake: FakeJenkins, tmp_path: Path) -> Envs:
    (tmp_path / "ws").mkdir()
    return Envs(fake, tmp_path / "ws")


@pytest.fixture
async def provider() -> AsyncIterator[JenkinsProvider]:
    jenkins = JenkinsProvider()
    yield jenkins
    await jenkins.aclose()


def run_op(*, final: bool, passed: int = 3, failed: int = 0, name: str = "unit tests",
           coverage: float | None = None) -> PublishRun:
    counts = Counts(total=passed + failed, passed=passed, failed=failed)
    run = RunSnapshot(id="run-1", name=name, status="finished" if final else "running",
                      start_time="2026-01-01T00:00:00Z", counts=counts, output_dir="/nonexistent",
                      conclusion=("failure" if failed else "success") if final else None,
                      results_end=passed + failed, coverage=coverage)
    return PublishRun(run=run, final=final)


def results(passed: int, failed: int) -> list[TestResult]:
    return [TestResult(name=f"t{i}", status="failed" if i < failed else "passed", suite="pkg.suite",
                       classname="pkg.Case", message="boom" if i < failed else None) for i in range(passed + failed)]


def test_folders_and_multibranch_names_are_one_url_segment_each(envs: Envs) -> None:
    """``org/widgets/feature%2Fdark mode`` #12 is ``/job/org/job/widgets/job/feature%252Fdark%20mode/12``."""
    assert build_path(envs()) == "/job/org/job/widgets/job/feature%252Fdark%20mode/12"


async def test_a_run_is_a_line_in_the_description_and_its_junit_is_staged_for_the_junit_step(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """The run's line goes live then final beside the pipeline's own text; the JUnit file appears where the
    documented ``junit 'ci-sidecar-out/junit/*.xml'`` collects it, and the test report reads back after that step."""
    build = fake.build(JOB, NUMBER)
    build.description = "Deployed to staging"
    envs.results = results(passed=8, failed=2)
    live = await provider.deliver(run_op(final=False, passed=5), envs(), {})
    assert live.kind == "delivered" and live.tier == "build description", live
    assert build.description == "Deployed to staging\nci-sidecar | unit tests | running: 5 passed, 0 failed, " \
                                "0 skipped of 5"
    done = await provider.deliver(run_op(final=True, passed=8, failed=2, coverage=85.46), envs(), live.remote or {})
    assert done.kind == "delivered" and done.action == "completed" and done.url == fake.build_url(JOB, NUMBER)
    staged = sorted((envs.workspace / "ci-sidecar-out" / "junit").glob("*.xml"))
    assert [p.name for p in staged] == ["unit-tests-run-1.xml"]
    assert build.description.splitlines() == [
        "Deployed to staging",
        f"ci-sidecar | unit tests | failure: 8 passed, 2 failed, 0 skipped of 10, coverage 85.5% | report: "
        f"{fake.build_url(JOB, NUMBER)}testReport/ (after the junit step)"]
    before = await provider.read_run(run_op(final=True).run, envs(), {})
    assert before is not None and before["status"] == "in_progress" and "tests" not in before
    fake.record_junit(build, envs.workspace, "ci-sidecar-out/junit/*.xml")
    build.building, build.result = False, "UNSTABLE"
    seen = await provider.read_run(run_op(final=True).run, envs(), {})
    assert seen == {"status": "completed", "conclusion": "failure", "url": fake.build_url(JOB, NUMBER),
                    "result": "UNSTABLE", "tests": {"passCount": 8, "failCount": 2, "skipCount": 0}}


async def test_an_unchanged_line_is_read_but_not_written(fake: FakeJenkins, envs: Envs,
                                                          provider: JenkinsProvider) -> None:
    """Debounced: a live update whose line did not change costs one read and no write."""
    first = await provider.deliver(run_op(final=False), envs(), {})
    again = await provider.deliver(run_op(final=False), envs(), first.remote or {})
    assert (first.action, again.action) == ("updated", "skipped")
    assert len(fake.calls("POST", "submitDescription")) == 1


async def test_statuses_without_a_code_host_are_description_lines_sorted_with_the_runs(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """``set_build_status`` on Jenkins alone: one line per context, replaced in place, in a stable order."""
    for context, state, text in (("lint", "pending", "linting"), ("coverage", "failure", "85% < 90%"),
                                 ("lint", "success", "no findings")):
        out = await provider.deliver(SetStatus(state=state, context=context, sha=None, description=text,
                                               output_dir="/x"), envs(), {})
        assert out.kind == "delivered" and out.tier == "build description"
    await provider.deliver(run_op(final=False), envs(), {})
    assert fake.build(JOB, NUMBER).description.splitlines() == [
        "ci-sidecar | status coverage | failure: 85% < 90%",
        "ci-sidecar | status lint | success: no findings",
        "ci-sidecar | unit tests | running: 3 passed, 0 failed, 0 skipped of 3"]


async def test_the_crumb_goes_with_its_session_cookie_and_is_renewed_once_after_a_restart(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """One crumb (and its cookie) serves every write; after Jenkins restarts, a 403 leads to one new crumb and one
    resend; reads never fetch a crumb."""
    for passed in (1, 2):
        assert (await provider.deliver(run_op(final=False, passed=passed), envs(), {})).kind == "delivered"
    assert len(fake.calls("GET", "crumbIssuer")) == 1
    fake.restart()
    assert (await provider.deliver(run_op(final=False, passed=3), envs(), {})).kind == "delivered"
    assert len(fake.calls("GET", "crumbIssuer")) == 2
    assert [c.status for c in fake.calls("POST")] == [302, 302, 403, 302]


async def test_a_write_refused_even_with_a_fresh_crumb_is_refused_not_looped(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """A server that never accepts the crumb: the write is sent twice (one refresh), then refused with Jenkins'
    own words; the token is in no message."""
    original = fake._crumb_ok
    fake._crumb_ok = lambda rec: False  # type: ignore[method-assign]
    out = await provider.deliver(run_op(final=False), envs(), {})
    fake._crumb_ok = original  # type: ignore[method-assign]
    assert out.kind == "refused" and out.status == 403 and "No valid crumb" in out.message
    assert len(fake.calls("POST")) == 2 and TOKEN not in out.message


async def test_a_wrong_token_is_refused_with_jenkins_words_and_never_shown(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """Jenkins' HTML error page becomes a readable refusal; the token is never in it."""
    out = await provider.deliver(run_op(final=False), envs("0000wrong0000token"), {})
    assert out.kind == "refused" and out.status == 401
    assert "Invalid password/token for user: ci-bot" in out.message and "<html" not in out.message
    assert "0000wrong0000token" not in out.message


def test_error_pages_read_as_their_title_and_heading() -> None:
    """An HTML page gives its title (else its first heading), a JSON body its message."""
    page = Response(status=404, headers=httpx.Headers({"content-type": "text/html"}), url="http://x/",
                    body=b"<html><head><title>Error 404 Not &amp; Found</title></head><body><h2>HTTP ERROR 404</h2>")
    assert error_message(page) == "Error 404 Not & Found"
    heading = Response(status=500, headers=httpx.Headers(), url="http://x/", body=b"<body><h1>Oops</h1><p>x</p>")
    assert error_message(heading) == "Oops"
    plain = Response(status=500, headers=httpx.Headers(), url="http://x/", body=b'{"message": "boom"}')
    assert error_message(plain) == "boom"


async def test_faults_retry_and_a_lost_answer_writes_the_description_once(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """A 503 is retried; a write whose answer was lost is found done on the next attempt and not sent again."""
    fake.inject("503", "GET", "/api/json", retry_after=0)
    assert (await provider.deliver(run_op(final=False), envs(), {})).kind == "retry"
    fake.inject("lost", "POST", "submitDescription")
    lost = await provider.deliver(run_op(final=False), envs(), {})
    assert lost.kind == "retry"
    again = await provider.deliver(run_op(final=False), envs(), lost.remote or {})
    assert again.kind == "delivered" and again.action == "skipped"
    assert len(fake.calls("POST", "submitDescription")) == 1


async def test_artifacts_are_staged_and_get_a_url_only_once_archived(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider, tmp_path: Path) -> None:
    """An artifact is copied for ``archiveArtifacts 'ci-sidecar-out/artifacts/**'``; its URL is given only once the
    build's artifact list holds it, and that URL serves the content."""
    blob = tmp_path / "blob"
    blob.write_bytes(b"log line\n")
    op = UploadArtifact(name="logs/app log.txt", run_id="run-1", stored_path=str(blob), size=9, sha256="s",
                        mime_type="text/plain")
    out = await provider.deliver(op, envs(), {})
    assert out.kind == "delivered" and out.tier == "staged" and out.url is None
    assert "its URL exists after archiving" in out.message
    assert await provider.lookup_artifact(op, envs(), out.remote or {}) is None  # not archived yet
    build = fake.build(JOB, NUMBER)
    assert fake.archive(build, envs.workspace, "ci-sidecar-out/artifacts/**") == [
        "ci-sidecar-out/artifacts/run-1/logs/app log.txt"]
    found = await provider.lookup_artifact(op, envs(), out.remote or {})
    assert found is not None and found.url == f"{fake.build_url(JOB, NUMBER)}artifact/ci-sidecar-out/artifacts/" \
                                              "run-1/logs/app%20log.txt"
    got = httpx.get(found.url, auth=(USER, TOKEN), trust_env=False)
    assert got.status_code == 200 and got.content == b"log line\n"


async def test_comments_need_the_code_host(envs: Envs, provider: JenkinsProvider) -> None:
    """A PR comment routed to Jenkins says where comments go instead; nothing is pretended."""
    out = await provider.deliver(PostComment(body="hi", mode="create", key=None, pr_number=7, output_dir="/x"),
                                 envs(), {})
    assert out.kind == "unsupported" and "code host" in out.message


async def test_without_a_token_the_junit_report_and_artifacts_are_still_staged(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """No credential: the tiers say staged, the final run stages its JUnit file and nothing reaches Jenkins."""
    caps = provider.capabilities(envs(None))
    assert (caps.test_run.kind, caps.test_run.via, caps.build_status.kind, caps.artifacts.kind) == \
        ("staged", "junit step", "none", "staged")
    envs.results = results(passed=2, failed=0)
    live = await provider.deliver(run_op(final=False, passed=2), envs(None), {})
    done = await provider.deliver(run_op(final=True, passed=2), envs(None), live.remote or {})
    assert (live.action, done.action, done.tier) == ("deferred", "staged", "junit step")
    assert fake.calls() == []


async def test_doctor_proves_the_token_can_edit_the_build_through_the_crumb(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """Read-only: the user, the build and the crumb are proven, editing is not tried; ``--write`` submits the
    description back unchanged."""
    build = fake.build(JOB, NUMBER)
    build.description = "keep me"
    env = {"JENKINS_URL": fake.url, "JOB_NAME": JOB, "BUILD_NUMBER": str(NUMBER)}
    ci = CIContext(provider="jenkins", sources={})
    cred = Credential(provider="jenkins", base_url=fake.url, source="env:JENKINS_TOKEN", fingerprint="f",
                      secret=Secret(TOKEN), username=USER)
    read = await provider.probe_access(ci, env, cred, write=False, trust_env=False)
    assert [(i.name, i.result) for i in read.items] == [("credential", "proven"), ("build", "proven"),
                                                        ("crumb", "proven"), ("description", "unproven")]
    assert fake.calls("POST") == []
    wrote = await provider.probe_access(ci, env, cred, write=True, trust_env=False)
    assert wrote.ok and wrote.items[-1].result == "proven" and build.description == "keep me"
    bad = Credential(provider="jenkins", base_url=fake.url, source="env:JENKINS_TOKEN", fingerprint="f",
                     secret=Secret("nope"), username=USER)
    refused = await provider.probe_access(ci, env, bad, write=False, trust_env=False)
    assert not refused.ok and "Invalid password/token" in refused.items[0].detail


# --- the example pipeline ------------------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jenkins" / "Jenkinsfile"


def test_the_example_jenkinsfile_runs_real_commands_and_collects_what_is_staged() -> None:
    """examples/jenkins: a declarative pipeline whose ci-sidecar commands parse with the real CLI, whose exec JUnit
    glob matches what the suite writes, which hands the provider the credentials it reads, and whose junit and
    archiveArtifacts steps collect exactly where the provider stages."""
    import fnmatch
    import re
    import shlex

    from ci_sidecar.cli import build_parser
    from ci_sidecar.providers.catalog import by_name
    from ci_sidecar.providers.jenkins.settings import JenkinsSettings

    text = EXAMPLE.read_text()
    code = re.sub(r"//[^\n]*", "", text)
    assert code.strip().startswith("pipeline {") and code.count("{") == code.count("}")
    assert re.findall(r"stage\('([^']+)'\)", code) == ["Install ci-sidecar", "Test"]
    scripts = re.findall(r"sh '''(.*?)'''", code, re.S)
    lines = [line.strip() for script in scripts for line in script.splitlines() if "ci-sidecar " in line]
    commands = [shlex.split(line) for line in lines if line.split()[0].endswith("/ci-sidecar")]
    assert [c[1] for c in commands] == ["doctor", "exec"]
    for command in commands:
        build_parser().parse_args(command[1:])  # SystemExit on an unknown command or option
    exec_args = build_parser().parse_args(commands[-1][1:])
    wrapped = exec_args.cmd[1:] if exec_args.cmd[:1] == ["--"] else exec_args.cmd
    assert wrapped[:2] == ["go", "run"]  # a suite in another language than the daemon's
    assert any(fnmatch.fnmatch(wrapped[wrapped.index("--junitfile") + 1], glob) for glob in exec_args.junit)
    assert commands[0][0].rsplit("/", 1)[0] + "/pip" in " ".join(lines + scripts)  # the venv it installed into
    jenkins = by_name("jenkins")
    assert jenkins is not None
    assert {f"usernameVariable: '{jenkins.credentials.username_env}'",
            f"passwordVariable: '{jenkins.credentials.env[0]}'", "passwordVariable: 'GITHUB_TOKEN'"} <= \
        {m for m in re.findall(r"(?:username|password)Variable: '[A-Z_]+'", code)}
    post = code[code.index("post {"):]
    assert "always {" in post
    junit = re.search(r"junit testResults: '([^']+)'", post)
    archive = re.search(r"archiveArtifacts artifacts: '([^']+)'", post)
    assert junit is not None and archive is not None
    staged = JenkinsSettings().staged_dir
    assert fnmatch.fnmatch(f"{staged}/junit/go-test-0123abcd.xml", junit.group(1))
    assert fnmatch.fnmatch(f"{staged}/artifacts/0123abcd/logs/shard 1.log", archive.group(1))
    assert not fnmatch.fnmatch("test-results/junit.xml", junit.group(1))  # the suite's own file is not counted twice


async def test_doctor_without_a_credential_says_what_to_set(provider: JenkinsProvider) -> None:
    """No JENKINS_TOKEN: doctor names the variables and sends nothing."""
    report = await provider.probe_access(CIContext(provider="jenkins", sources={}), {"JENKINS_URL": "http://x/"},
                                         None, write=False, trust_env=False)
    assert not report.ok and "JENKINS_USER and JENKINS_TOKEN" in report.items[0].detail


async def test_without_a_jenkins_url_nothing_is_sent_and_the_reason_is_given(
        fake: FakeJenkins, envs: Envs, provider: JenkinsProvider) -> None:
    """A token but no JENKINS_URL or job: statuses answer why, the run's JUnit is still staged, no request."""
    env = envs(jenkins_url=None, job_name=None, build_url=None)
    env.base_url = None
    status = await provider.deliver(SetStatus(state="success", context="lint", sha=None, output_dir="/x"), env, {})
    assert status.kind == "unsupported" and "no Jenkins URL" in status.message
    envs.results = results(passed=1, failed=0)
    done = await provider.deliver(run_op(final=True, passed=1), env, {})
    assert (done.kind, done.tier) == ("delivered", "junit step") and fake.calls() == []


def test_cli_doctor_check_write_proves_the_crumb_dance(fake: FakeJenkins, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``ci-sidecar doctor --check --write`` inside a build: every probe proven, the description unchanged, the
    token nowhere in the output; a wrong token fails the check."""
    from ci_sidecar.cli import build_parser
    from ci_sidecar.env_cmd import run_doctor
    from helpers import scrubbed_env

    fake.build(JOB, NUMBER).description = "as it was"
    env = scrubbed_env(tmp_path, JENKINS_URL=fake.url + "/", BUILD_ID=str(NUMBER), BUILD_NUMBER=str(NUMBER),
                       JOB_NAME=JOB, BUILD_URL=fake.build_url(JOB, NUMBER), WORKSPACE=str(tmp_path),
                       JENKINS_USER=USER, JENKINS_TOKEN=TOKEN, NO_PROXY="127.0.0.1,localhost",
                       no_proxy="127.0.0.1,localhost")
    assert run_doctor(build_parser().parse_args(["doctor", "--check", "--write", "--json"]), env=env,
                      cwd=str(tmp_path)) == 0
    out = capsys.readouterr().out
    [report] = json.loads(out)["check"]["reports"]
    assert {i["name"]: i["result"] for i in report["items"]} == {
        "credential": "proven", "build": "proven", "crumb": "proven", "description": "proven"}
    assert fake.build(JOB, NUMBER).description == "as it was" and TOKEN not in out
    assert [r.status for r in fake.calls("POST")] == [302]
    bad = {**env, "JENKINS_TOKEN": "0000wrong0000"}
    assert run_doctor(build_parser().parse_args(["doctor", "--check"]), env=bad, cwd=str(tmp_path)) == 1
    assert "0000wrong0000" not in capsys.readouterr().out
