"""The GitLab provider against the spec-validating fake GitLab: commit statuses (state machine, MR source commit,
255-character limits), sticky MR notes, artifacts (package registry, staged), the job token's limits, doctor."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_sidecar.credentials import CredentialRef
from ci_sidecar.protocol.records import CIContext, Counts
from ci_sidecar.providers.base import Outcome, PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ci_sidecar.providers.base import UploadArtifact
from ci_sidecar.providers.gitlab import GitLabProvider
from ci_sidecar_client import RpcError
from fakes.gitlab import FakeGitLab, Token, World
from fakes.scenario import JobResult, Plan, assert_faults_change_nothing, assert_kill_9_changes_nothing, connect
from fakes.scenario import scenario
from fakes.spec import OpenApiSpec, require_spec
from helpers import DaemonProcess, scrubbed_env
from .contract import check_unkeyed_comment_once

SOURCE = "5e" * 20  # CI_MERGE_REQUEST_SOURCE_BRANCH_SHA: where statuses go
COMMIT = "c0" * 20  # CI_COMMIT_SHA (a merged-results pipeline's merge commit)
IID = 5
API, READ, JOB = "glpat-apitoken", "glpat-readonly", "job-token-123"
PLAN = Plan()
FAULTS = 0.3


@pytest.fixture
def gl_spec() -> OpenApiSpec:
    return require_spec("gitlab/openapi_v2.ci-subset.json")


@pytest.fixture
def fake(gl_spec: OpenApiSpec) -> Iterator[FakeGitLab]:
    with FakeGitLab(gl_spec) as gl:
        yield gl
    assert len(gl.violations) == gl.expected_violations, gl.violations


class Envs:
    """ProviderEnvs of a GitLab MR pipeline job against the fake; ``logs`` is what the user was told."""

    def __init__(self, fake: FakeGitLab, project_dir: Path) -> None:
        self.fake, self.project_dir = fake, project_dir
        self.logs: list[str] = []

    def __call__(self, token: str | None = API, *, head: str | None = SOURCE, iid: int | None = IID,
                  **config: Any) -> ProviderEnv:
        ci = CIContext(provider="gitlab", sources={}, repository="group/proj", commit_sha=COMMIT, head_sha=head,
                       branch="feature", pr_number=iid, build_id="321", job="test",
                       job_url="https://gitlab.example/group/proj/-/jobs/77")
        settings = {"trust_env": False, "project_id": "7", "project_url": "https://gitlab.example/group/proj",
                    "project_dir": str(self.project_dir), "job_id": "77", "job_name": "test", "pipeline_id": "321",
                    **config}
        source = "env:CI_JOB_TOKEN" if token == JOB else "env:GITLAB_TOKEN"
        cred = CredentialRef(provider="gitlab", base_url=self.fake.api_url, source=source, fingerprint="f") \
            if token else None
        return ProviderEnv.build(ci, settings, cred, token, log=self.logs.append)


@pytest.fixture
def envs(fake: FakeGitLab, tmp_path: Path) -> Envs:
    (tmp_path / "project").mkdir()
    return Envs(fake, tmp_path / "project")


def run_op(*, final: bool, passed: int = 3, failed: int = 0, name: str = "unit tests", **kw: Any) -> PublishRun:
    counts = Counts(total=passed + failed, passed=passed, failed=failed)
    run = RunSnapshot(id="run-1", name=name, status="finished" if final else "running", start_time="2026-01-01T00:00:00Z",
                      counts=counts, output_dir="/nonexistent", conclusion=("failure" if failed else "success")
                      if final else None, **kw)
    return PublishRun(run=run, final=final)


async def deliver(op: Any, env: ProviderEnv, remote: dict[str, Any] | None = None) -> Outcome:
    provider = GitLabProvider()
    try:
        return await provider.deliver(op, env, remote or {})
    finally:
        await provider.aclose()


def fresh(env: ProviderEnv) -> ProviderEnv:
    """``env`` for a write's first attempt in the daemon that took it (nothing can have reached GitLab)."""
    env.never_sent = True
    return env


# --- commit statuses ------------------------------------------------------------------------------


async def test_a_run_is_a_status_on_the_mr_source_commit_running_then_finished(fake: FakeGitLab, envs: Envs) -> None:
    """A run shows as one status named after it on the MR's source commit: running with counts, then failed."""
    provider = GitLabProvider()
    env = envs()
    first = await provider.deliver(run_op(final=False), env, {})
    again = await provider.deliver(run_op(final=False, passed=9), env, first.remote or {})
    done = await provider.deliver(run_op(final=True, passed=9, failed=1), env, again.remote or {})
    await provider.aclose()
    assert (first.kind, again.kind, done.kind) == ("delivered",) * 3
    assert again.action == "skipped"  # running → running is never sent
    posts = fake.calls("POST", "/statuses/")
    assert len(posts) == 2 and all(r.path.endswith(SOURCE) for r in posts)
    assert [r.body["state"] for r in posts] == ["running", "failed"]
    assert "pipeline_id" not in posts[0].body  # the job's pipeline is on CI_COMMIT_SHA, not the source commit
    (status,) = fake.statuses(SOURCE)
    assert (status["name"], status["status"], status["ref"]) == ("unit tests", "failed", "feature")
    assert status["description"] == "9 passed, 1 failed, 0 skipped"
    assert status["target_url"] == "https://gitlab.example/group/proj/-/jobs/77"


async def test_live_counts_go_out_on_real_transitions_and_coverage_on_the_status(fake: FakeGitLab,
                                                                                envs: Envs) -> None:
    """A run without results is pending ("waiting for results"); its first results move it to running with their
    counts; later live counts send nothing; the final status carries the end counts and the reported coverage."""
    provider = GitLabProvider()
    env = envs()
    ops = [run_op(final=False, passed=0), run_op(final=False, passed=4), run_op(final=False, passed=8),
           run_op(final=True, passed=9, failed=1, coverage=87.254)]
    remote: dict[str, Any] = {}
    seen = []
    for op in ops:
        out = await provider.deliver(op, env, remote)
        assert out.kind == "delivered", out.message
        remote = out.remote or {}
        seen.append([(s["status"], s["description"]) for s in fake.statuses(SOURCE)])
    await provider.aclose()
    assert seen[:3] == [[("pending", "waiting for results")], [("running", "running: 4 passed, 0 failed, 0 skipped")],
                        [("running", "running: 4 passed, 0 failed, 0 skipped")]]
    assert [r.body["state"] for r in fake.calls("POST", "/statuses/")] == ["pending", "running", "failed"]
    (status,) = fake.statuses(SOURCE)
    assert (status["status"], status["description"], status["coverage"]) == ("failed", "9 passed, 1 failed, 0 skipped",
                                                                            87.25)
    assert fake.violations == []


async def test_a_branch_pipeline_names_its_pipeline(fake: FakeGitLab, envs: Envs) -> None:
    """Without an MR the status goes on CI_COMMIT_SHA and names CI_PIPELINE_ID."""
    out = await deliver(run_op(final=True), envs(head=None, iid=None))
    assert out.kind == "delivered"
    (post,) = fake.calls("POST", "/statuses/")
    assert post.path.endswith(COMMIT) and post.body["pipeline_id"] == 321


async def test_a_repeated_transition_answered_400_is_success_not_a_retry(fake: FakeGitLab, envs: Envs) -> None:
    """A running status whose answer was lost is sent again, GitLab answers 400 "Cannot transition": delivered."""
    fake.inject("lost", "POST", "/statuses/")
    env = envs()
    lost = await deliver(run_op(final=False), env)
    assert lost.kind == "retry"
    again = await deliver(run_op(final=False), env, lost.remote)
    assert again.kind == "delivered", again.message
    assert [r.status for r in fake.calls("POST", "/statuses/")] == [-1, 400]
    assert [s["status"] for s in fake.statuses(SOURCE)] == ["running"]


async def test_a_final_status_whose_answer_was_lost_is_read_back_not_doubled(fake: FakeGitLab, envs: Envs) -> None:
    """GitLab adds a second status when a finished one is posted again: the lost final is read back instead."""
    fake.inject("lost", "POST", "/statuses/")
    lost = await deliver(run_op(final=True), fresh(envs()))
    assert lost.kind == "retry"
    again = await deliver(run_op(final=True), envs(), lost.remote)
    assert again.kind == "delivered"
    assert len(fake.calls("POST", "/statuses/")) == 1 and len(fake.calls("GET", "/statuses$")) == 1
    assert [s["status"] for s in fake.statuses(SOURCE)] == ["success"]


@pytest.mark.parametrize("op", [run_op(final=True), SetStatus(state="success", context="lint")])
async def test_a_final_status_stored_before_a_restart_is_read_back_not_doubled(fake: FakeGitLab, envs: Envs,
                                                                               op: Any) -> None:
    """GitLab stored a final status, the answer was lost and the daemon restarted with nothing journaled about the
    attempt: the resumed write finds it on the commit instead of adding a second status."""
    fake.inject("lost", "POST", "/statuses/")
    assert (await deliver(op, fresh(envs()))).kind == "retry"
    resumed = await deliver(op, envs(), {})  # a new daemon: no remote state, the write not known unsent
    assert resumed.kind == "delivered", resumed.message
    assert len(fake.calls("POST", "/statuses/")) == 1 and len(fake.statuses(SOURCE)) == 1


async def test_a_resumed_final_status_is_not_taken_for_another_jobs(fake: FakeGitLab, envs: Envs) -> None:
    """The commit's newest status of that name is an earlier job's (same state, other link): a resumed write
    still posts its own."""
    earlier = SetStatus(state="success", context="lint", target_url="https://gitlab.example/group/proj/-/jobs/70")
    assert (await deliver(earlier, fresh(envs()))).kind == "delivered"
    ours = SetStatus(state="success", context="lint", target_url="https://gitlab.example/group/proj/-/jobs/77")
    assert (await deliver(ours, envs(), {})).kind == "delivered"
    assert [s["target_url"] for s in fake.statuses(SOURCE)] == [earlier.target_url, ours.target_url]


async def test_texts_stay_within_255_characters(fake: FakeGitLab, envs: Envs) -> None:
    """A long description is clipped to 255 characters and a URL too long for GitLab is left out (not cut)."""
    long_url = "https://gitlab.example/" + "x" * 300
    out = await deliver(SetStatus(state="success", context="lint" * 100, description="d" * 400,
                                  target_url=long_url), envs())
    assert out.kind == "delivered", out.message
    (status,) = fake.statuses(SOURCE)
    assert len(status["description"]) == 255 and status["description"].endswith("…")
    assert len(status["name"]) == 255 and status["target_url"] is None


async def test_build_status_pending_then_success(fake: FakeGitLab, envs: Envs) -> None:
    """``set_build_status`` pending then success leaves one status named by the context, successful."""
    env = envs()
    first = await deliver(SetStatus(state="pending", context="lint", description="linting"), env)
    second = await deliver(SetStatus(state="success", context="lint", description="clean"), env, first.remote)
    assert (first.kind, second.kind) == ("delivered", "delivered")
    assert [(s["name"], s["status"], s["description"]) for s in fake.statuses(SOURCE)] == [("lint", "success", "clean")]


async def test_a_read_only_token_is_refused_with_the_missing_scope(fake: FakeGitLab, envs: Envs) -> None:
    """A read_api token's write is refused (final, not retried), naming the api scope."""
    out = await deliver(SetStatus(state="success", context="lint"), envs(READ))
    assert out.kind == "refused" and out.status == 403 and "api" in out.message
    assert READ not in out.message


async def test_429_is_retried_after_gitlabs_wait(fake: FakeGitLab, envs: Envs) -> None:
    """GitLab's 429 with RateLimit-* and Retry-After is a retry after the server's wait."""
    fake.inject("429", "POST", "/statuses/", retry_after=9)
    out = await deliver(run_op(final=True), envs())
    assert out.kind == "retry" and out.retry_after == 9 and "too many times" in out.message


async def test_the_project_path_is_url_encoded_when_there_is_no_id(fake: FakeGitLab, envs: Envs) -> None:
    """Without CI_PROJECT_ID the project is addressed by its URL-encoded path."""
    out = await deliver(run_op(final=True), envs(project_id=None, project_path="group/proj"))
    assert out.kind == "delivered", out.message
    assert fake.calls("POST")[0].path.startswith("/api/v4/projects/group%2Fproj/statuses/")


async def test_the_status_reads_back(fake: FakeGitLab, envs: Envs) -> None:
    """``get_test_run_status`` reads the run's status back as GitLab shows it."""
    provider = GitLabProvider()
    env = envs()
    done = await provider.deliver(run_op(final=True, failed=2), env, {})
    seen = await provider.read_run(run_op(final=True).run, env, done.remote or {})
    await provider.aclose()
    assert seen is not None and (seen["state"], seen["conclusion"]) == ("failed", "failure")


# --- the job token, no token: said once, staged -----------------------------------------------------


async def test_the_job_token_cannot_write_statuses_or_notes_and_says_so_once(fake: FakeGitLab, envs: Envs) -> None:
    """With only CI_JOB_TOKEN statuses and notes answer unsupported without a request, explained once."""
    provider = GitLabProvider()
    env = envs(JOB)
    caps = provider.capabilities(env)
    outs = [await provider.deliver(SetStatus(state="success", context=f"c{i}"), env, {}) for i in range(3)]
    outs.append(await provider.deliver(PostComment(body="hi", mode="upsert", key="k"), env, {}))
    await provider.aclose()
    assert {o.kind for o in outs} == {"unsupported"} and all("api scope" in o.message for o in outs)
    assert fake.calls() == []  # no 401 loop: nothing was sent
    assert len([m for m in envs.logs if "CI_JOB_TOKEN" in m]) == 1
    assert caps.build_status.kind == "none" and "CI_JOB_TOKEN" in (caps.build_status.note or "")
    assert caps.test_run.kind == "staged" and caps.artifacts.via == "generic package registry"


async def test_without_a_write_token_the_junit_report_is_staged(fake: FakeGitLab, envs: Envs) -> None:
    """A finished run's JUnit file is copied for artifacts:reports:junit when no token can set statuses."""
    env = envs(JOB)
    live = await deliver(run_op(final=False), env)
    done = await deliver(run_op(final=True), env, live.remote)
    assert live.action == "deferred" and done.kind == "delivered" and done.tier == "artifacts:reports:junit"
    staged = envs.project_dir / "ci-sidecar-staged" / "junit" / "unit-tests-run-1.xml"
    assert "<testsuites" in staged.read_text()
    assert fake.calls() == []


async def test_with_a_token_the_junit_report_is_staged_too(fake: FakeGitLab, envs: Envs) -> None:
    """GitLab's own MR test widget gets the JUnit file even when the status is written."""
    out = await deliver(run_op(final=True), envs())
    assert out.kind == "delivered" and out.tier == "commit status"
    assert (envs.project_dir / "ci-sidecar-staged" / "junit" / "unit-tests-run-1.xml").is_file()


# --- sticky notes -----------------------------------------------------------------------------------


def note(body: str, mode: str = "upsert", key: str | None = "coverage") -> PostComment:
    return PostComment(body=body, mode=mode, key=key, pr_number=IID)  # type: ignore[arg-type]


async def test_a_sticky_note_is_created_then_edited_in_place(fake: FakeGitLab, envs: Envs) -> None:
    """The second body edits the first note (PUT), found by its id; the MR has one note of ours."""
    env = envs()
    first = await deliver(note("one"), env)
    second = await deliver(note("two"), env, first.remote)
    assert (first.action, second.action) == ("created", "updated")
    assert [n["body"] for n in fake.notes(IID)] == ["<!-- ci-sidecar:key=coverage -->\ntwo"]
    assert len(fake.calls("PUT", "/notes/")) == 1
    assert first.url == f"https://gitlab.example/group/proj/-/merge_requests/{IID}#note_{first.remote['note_id']}"


async def test_a_note_is_found_among_many_pages_and_others_notes_are_left_alone(fake: FakeGitLab, envs: Envs) -> None:
    """Without a known id our note is found across X-Next-Page pages; system notes and others' marker notes stay."""
    marker = "<!-- ci-sidecar:key=coverage -->\n"
    fake.add_note(IID, marker + "someone quoting us", user_id=99)
    fake.add_note(IID, marker + "system", system=True)
    ours = fake.add_note(IID, marker + "old", user_id=11, username="project_7_bot")
    for i in range(150):
        fake.add_note(IID, f"review comment {i}")
    dup = fake.add_note(IID, marker + "duplicate", user_id=11, username="project_7_bot")
    out = await deliver(note("new"), envs())
    assert out.action == "updated" and out.remote and out.remote["note_id"] == dup["id"]
    bodies = {n["id"]: n["body"] for n in fake.notes(IID)}
    assert ours["id"] not in bodies  # the older duplicate of ours was deleted
    assert bodies[dup["id"]] == marker + "new"
    assert sum(marker in b for b in bodies.values()) == 3  # others' and the system note untouched
    assert len(fake.calls("GET", "/notes$")) == 2  # 154 notes, 100 per page


async def test_a_created_note_whose_answer_was_lost_is_not_created_twice(fake: FakeGitLab, envs: Envs) -> None:
    """A retry after a lost create finds the note and edits it instead of adding a second one."""
    fake.inject("lost", "POST", "/notes$")
    env = envs()
    lost = await deliver(note("body"), env)
    again = await deliver(note("body"), env, lost.remote)
    assert lost.kind == "retry" and again.kind == "delivered" and again.action == "skipped"
    assert len(fake.notes(IID)) == 1


async def test_an_unkeyed_comment_stored_before_a_restart_is_not_posted_twice(fake: FakeGitLab, envs: Envs) -> None:
    """A comment without a key: GitLab stored it, the answer was lost and the daemon restarted with nothing journaled
    about the attempt: the resumed write finds it by its write's hidden mark (one comment); another write of the
    same text still posts its own."""
    fake.inject("lost", "POST", "/notes$")
    await check_unkeyed_comment_once(deliver, envs, lambda: fake.notes(IID), "note_id")


async def test_a_note_over_a_million_characters_is_shortened_to_fit(fake: FakeGitLab, envs: Envs) -> None:
    """A 1.2M-character body is cut (with a link to the full report) to GitLab's 1,000,000 characters."""
    body = "".join(f"| test_{i} | failed |\n" for i in range(60_000))
    op = PostComment(body=body, mode="upsert", key="big", pr_number=IID, full_report_url="https://r.example/full")
    out = await deliver(op, envs())
    assert out.kind == "delivered" and out.remote and out.remote["truncated"]
    (made,) = fake.notes(IID)
    assert len(made["body"]) <= 1_000_000 and "https://r.example/full" in made["body"]


async def test_a_note_outside_a_merge_request_pipeline_is_refused(fake: FakeGitLab, envs: Envs) -> None:
    """Without CI_MERGE_REQUEST_IID a note is refused, saying why."""
    out = await deliver(PostComment(body="x", mode="upsert", key="k"), envs(iid=None))
    assert out.kind == "refused" and "CI_MERGE_REQUEST_IID" in out.message


# --- artifacts --------------------------------------------------------------------------------------


def artifact(tmp_path: Path, data: bytes = b"log line\n" * 100, name: str = "logs/shard-1.log") -> UploadArtifact:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return UploadArtifact(run_id="run-1", name=name, stored_path=str(path), sha256=hashlib.sha256(data).hexdigest(),
                          size=len(data), mime_type="text/plain")


async def test_an_artifact_goes_to_the_pipelines_generic_package(fake: FakeGitLab, envs: Envs, tmp_path: Path) -> None:
    """With a token the file is uploaded to the pipeline's package; its URL is the registry's, verified later."""
    op = artifact(tmp_path)
    provider = GitLabProvider()
    env = envs()
    out = await provider.deliver(op, env, {})
    found = await provider.lookup_artifact(op, env, out.remote or {})
    other = await provider.lookup_artifact(artifact(tmp_path, b"other"), env, {})
    await provider.aclose()
    assert out.kind == "delivered" and out.tier == "package", out.message
    (made,) = fake.package_files()
    assert (made["version"], made["file_name"], made["size"]) == ("pipeline-321", "test-logs_shard-1.log", 900)
    assert out.url == f"{fake.api_url}/projects/7/packages/generic/ci-sidecar/pipeline-321/test-logs_shard-1.log"
    assert found is not None and found.url == out.url
    assert other is None  # never a URL for content the registry does not hold


async def test_a_failed_package_lookup_answers_no_url_and_logs_why(fake: FakeGitLab, envs: Envs, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The registry fails while an artifact's URL is looked up: no URL (not an error), one log line without the token."""
    op = artifact(tmp_path)
    provider = GitLabProvider()
    env = envs()
    assert (await provider.deliver(op, env, {})).kind == "delivered"
    fake.inject("503", "GET", "/packages$")
    with caplog.at_level("INFO", logger="ci_sidecar.providers.gitlab"):
        found = await provider.lookup_artifact(op, env, {})
    await provider.aclose()
    assert found is None
    (line,) = [r.getMessage() for r in caplog.records if "package lookup" in r.getMessage()]
    assert line.startswith("gitlab: package lookup of logs/shard-1.log failed: ") and API not in caplog.text


async def test_the_job_token_uploads_packages_with_its_own_header(fake: FakeGitLab, envs: Envs, tmp_path: Path) -> None:
    """The job token goes as JOB-TOKEN (never PRIVATE-TOKEN), which GitLab accepts for packages."""
    out = await deliver(artifact(tmp_path), envs(JOB))
    assert out.kind == "delivered", out.message
    (put,) = fake.calls("PUT")
    assert put.headers.get("job-token") == JOB and "private-token" not in put.headers


LOG_URL = "/projects/7/packages/generic/ci-sidecar/pipeline-321/test-logs_shard-1.log"


async def test_a_new_upload_is_one_put_and_a_retried_one_looks_first(fake: FakeGitLab, envs: Envs,
                                                                      tmp_path: Path) -> None:
    """A write's first attempt sends only the PUT; after its answer was lost, the retry finds the stored file in
    the package's file list (name and SHA-256) instead of uploading it again: one package file, delivered."""
    fake.inject("lost", "PUT")
    op = artifact(tmp_path)
    lost = await deliver(op, fresh(envs()))
    again = await deliver(op, envs(), lost.remote)
    assert lost.kind == "retry" and again.kind == "delivered", again.message
    assert [r.operation for r in fake.calls()] == ["package-put", "package-list", "package-files"]
    assert len(fake.package_files()) == 1


async def test_an_upload_stored_before_a_restart_is_adopted_not_uploaded_again(fake: FakeGitLab, envs: Envs,
                                                                                tmp_path: Path) -> None:
    """GitLab stored the PUT, the answer was lost and the daemon restarted with nothing journaled about the attempt:
    the resumed upload adopts the stored file — exactly one package file, the URL and file id from the API."""
    fake.inject("lost", "PUT")
    op = artifact(tmp_path)
    assert (await deliver(op, fresh(envs()))).kind == "retry"
    resumed = await deliver(op, envs(), {})  # a new daemon: no remote state, the write not known unsent
    assert resumed.kind == "delivered" and resumed.tier == "package", resumed.message
    (stored,) = fake.package_files()
    assert resumed.url == fake.api_url + LOG_URL
    assert resumed.remote is not None and resumed.remote["file_id"] == stored["id"]
    assert len(fake.calls("PUT")) == 1


async def test_the_lookup_pages_through_the_files_and_takes_no_look_alike(fake: FakeGitLab, envs: Envs,
                                                                          tmp_path: Path) -> None:
    """A resumed upload finds its file past the first page of the package's files; a file of the same name in a
    package GitLab's fuzzy name search also lists, or with other content, is not taken for it."""
    data = b"log line\n" * 100
    op = artifact(tmp_path, data)
    fake.add_package_file("ci-sidecar-nightly", "pipeline-321", "test-logs_shard-1.log", data)
    fake.add_package_file("ci-sidecar", "pipeline-321", "test-logs_shard-1.log", b"an earlier try's log\n")
    assert (await deliver(op, envs())).kind == "delivered"
    assert len(fake.calls("PUT")) == 1 and len(fake.package_files()) == 2  # uploaded: nothing was its copy
    for n in range(150):
        fake.add_package_file("ci-sidecar", "pipeline-321", f"other-{n}.log", b"x")
    again = await deliver(op, envs(), {})
    assert again.kind == "delivered" and again.url == fake.api_url + LOG_URL
    assert len(fake.calls("PUT")) == 1 and len(fake.package_files()) == 152
    assert [r.query.get("page") for r in fake.calls(operation="package-files")][-2:] == [None, ["2"]]


async def test_a_job_token_that_cannot_list_packages_reads_the_file_back(gl_spec: OpenApiSpec,
                                                                         tmp_path: Path) -> None:
    """On a GitLab before 15.11 the job token may not list package files: a resumed upload downloads the file
    instead and adopts it when its SHA-256 matches (one package file)."""
    (tmp_path / "project").mkdir()
    with FakeGitLab(gl_spec, job_token_lists=False) as old:
        envs = Envs(old, tmp_path / "project")
        old.inject("lost", "PUT")
        op = artifact(tmp_path)
        assert (await deliver(op, fresh(envs(JOB)))).kind == "retry"
        resumed = await deliver(op, envs(JOB), {})
    assert resumed.kind == "delivered" and resumed.url == old.api_url + LOG_URL, resumed.message
    assert [(r.operation, r.status) for r in old.calls()] == [
        ("package-put", -1), ("package-list", 401), ("package-get", 200)]
    assert len(old.package_files()) == 1 and old.violations == []


async def test_without_a_token_an_artifact_is_staged_for_the_jobs_artifacts(fake: FakeGitLab, envs: Envs,
                                                                             tmp_path: Path) -> None:
    """No token: the file is copied under the staged folder, its job-artifact URL said to work when the job ends."""
    out = await deliver(artifact(tmp_path), envs(None))
    assert out.kind == "delivered" and out.tier == "staged" and "when the job ends" in out.message
    staged = envs.project_dir / "ci-sidecar-staged" / "artifacts" / "run-1" / "logs" / "shard-1.log"
    assert staged.read_bytes() == b"log line\n" * 100
    assert out.url == ("https://gitlab.example/group/proj/-/jobs/77/artifacts/file/"
                       "ci-sidecar-staged/artifacts/run-1/logs/shard-1.log")
    assert fake.calls() == []


async def test_outside_a_gitlab_job_without_a_token_nothing_is_pretended(fake: FakeGitLab, envs: Envs,
                                                                          tmp_path: Path) -> None:
    """No token and no CI_PROJECT_DIR: the artifact is unsupported, with no URL."""
    out = await deliver(artifact(tmp_path), envs(None, project_dir=None))
    assert out.kind == "unsupported" and out.url is None and "CI_PROJECT_DIR" in out.message


async def test_a_staged_name_cannot_leave_the_folder(fake: FakeGitLab, envs: Envs, tmp_path: Path) -> None:
    """An artifact named ../../x is not written outside the staged folder."""
    out = await deliver(artifact(tmp_path, name="../../escape"), envs(None))
    assert out.kind == "unsupported" and not (envs.project_dir.parent / "escape").exists()


# --- doctor -----------------------------------------------------------------------------------------


class _Cred:
    def __init__(self, token: str, url: str, source: str = "env:GITLAB_TOKEN") -> None:
        self.base_url, self.source = url, source
        self.secret = type("S", (), {"reveal": lambda _self: token})()


@pytest.mark.parametrize(("token", "write", "expected"), [
    (API, False, {"project": "proven", "commit status": "proven"}),
    (API, True, {"project": "proven", "commit status": "proven"}),
    (READ, False, {"project": "proven", "commit status": "failed"}),
])
async def test_doctor_proves_what_the_token_can_do(fake: FakeGitLab, token: str, write: bool,
                                                   expected: dict[str, str]) -> None:
    """``doctor --check`` reads the project and the token's scopes, names a missing api scope, writes once."""
    provider = GitLabProvider()
    ci = CIContext(provider="gitlab", sources={}, repository="group/proj", commit_sha=COMMIT)
    report = await provider.probe_access(ci, {"CI_PROJECT_ID": "7"}, _Cred(token, fake.api_url), write=write,
                                         trust_env=False)
    await provider.aclose()
    assert {i.name: i.result for i in report.items} == expected
    if token == READ:
        assert "lack api" in report.items[-1].detail
    assert len(fake.calls("POST")) == (1 if write else 0)


# --- end to end: the real daemon, the Python client, a GitLab MR pipeline job -------------------------


def gitlab_scenario(spec: OpenApiSpec, base: Path, rate: float, seed: int = 1, *, plan: Plan = PLAN,
                    kill: bool = False) -> tuple[JobResult, World]:
    """One job against its own fake GitLab and its own daemon (the provider-neutral harness)."""
    return scenario(lambda r, s: World(spec, fault_rate=r, seed=s), base, rate, seed, plan=plan, kill=kill)


def clean_view_is_right(out: JobResult, world: World, plan: Plan) -> None:
    """The fault-free MR is right in itself, and cheap in calls."""
    fails = plan.failures
    marker = "<!-- ci-sidecar:key=coverage -->\n"
    assert out.view.statuses == (
        ("coverage", "failed", "85.5% < 90%"), ("lint", "success", "no findings"),
        ("unit tests", "failed", f"{plan.results - fails} passed, {fails} failed, 0 skipped"))
    assert out.view.status_count == 3 and out.view.notes == (marker + plan.comments[-1],)
    assert out.view.packages == tuple(sorted((f"test-logs_shard-{i:02d}.log", len(plan.artifact(i)[1]))
                                             for i in range(plan.artifacts)))
    assert out.run["delivery"] == {"pending": 0, "failed": 0}
    assert len(world.rest_calls()) <= 25, [(r.method, r.path) for r in world.rest_calls()]
    assert len(world.artifact_calls()) == plan.artifacts  # one PUT per artifact


def test_an_mr_pipeline_job_end_to_end(gl_spec: OpenApiSpec, short_tmp: Path) -> None:
    """Through the daemon: statuses on the MR source commit, one sticky note, package files, the run read back."""
    plan = Plan(results=400, failures=12, artifacts=4)
    out, world = gitlab_scenario(gl_spec, short_tmp, 0.0, plan=plan)
    clean_view_is_right(out, world, plan)
    gitlab = next(t for t in out.run["targets"] if t["provider"] == "gitlab")
    assert gitlab["kind"] == "native" and gitlab["delivery"]["state"] == "delivered"
    assert all(r.path.endswith(World.SOURCE) for r in world.gitlab.calls("POST", "/statuses/"))
    assert list(Path(short_tmp, "job", "project", "ci-sidecar-staged", "junit").glob(f"*-{out.run['id']}.xml"))


def test_a_job_token_only_job_stages_and_says_why_once(gl_spec: OpenApiSpec, short_tmp: Path,
                                                         tmp_path: Path) -> None:
    """With only CI_JOB_TOKEN: capabilities say why, the job is told once, each status answers -31007 once without
    a request (no 401 loop), and the JUnit report is staged."""
    with World(gl_spec) as world:
        world.gitlab.tokens["job-token-e2e"] = Token("job")
        env = {k: v for k, v in world.job_env(tmp_path).items() if k != "GITLAB_TOKEN"}
        env["CI_JOB_TOKEN"] = "job-token-e2e"
        daemon = DaemonProcess.start(short_tmp / "d.sock", scrubbed_env(short_tmp))
        try:
            c = connect(daemon, env)
            assert c.initialize_result is not None
            caps = c.initialize_result["capabilities"]["roles"]["ci"]
            assert caps["build_status"]["kind"] == "none" and "CI_JOB_TOKEN" in caps["build_status"]["note"]
            assert caps["test_run"]["kind"] == "staged"
            run_id = c.request("create_test_run", {"name": "unit tests"})["id"]
            c.request("report_results", {"test_run_id": run_id, "results": Plan(results=5, failures=1).batches()[0]})
            c.request("complete_test_run", {"test_run_id": run_id})
            errors = []
            for context in ("lint", "coverage"):
                try:
                    c.request("set_build_status", {"state": "success", "context": context, "wait": True})
                except RpcError as exc:
                    errors.append(exc.code)
            deadline = time.monotonic() + 30  # the two statuses failed for good (-31007): wait for the rest
            while c.request("sidecar/status", {})["outbox"]["pending"] and time.monotonic() < deadline:
                time.sleep(0.05)
            run = c.request("get_test_run_status", {"test_run_id": run_id})
            said = [n for n in list(c.notifications) if n.get("method") == "window/logMessage"
                    and "CI_JOB_TOKEN" in n["params"]["message"]]
        finally:
            daemon.stop()
        assert errors == [-31007, -31007]
        said = [n["params"]["message"] for n in said]
        assert len([m for m in said if m.startswith("CI_JOB_TOKEN")]) == 1, said  # explained once
        assert len([m for m in said if m.startswith("gitlab: commit statuses")]) == 2, said  # each write failed once
        assert list((tmp_path / "project" / "ci-sidecar-staged" / "junit").glob(f"*-{run_id}.xml"))
        gitlab = next(t for t in run["targets"] if t["provider"] == "gitlab")
        assert gitlab["kind"] == "staged", gitlab
        assert world.gitlab.calls() == []  # never a 401 loop
        assert "job-token-e2e" not in daemon.log()


# --- the scenario: 10,000 results, 30% faults, kill -9 halfway ----------------------------------------

SEED_FAULTS = 3
SEED_KILL = 4


def faults_really_happened(world: World) -> None:
    calls = world.gitlab.calls()
    bad = [r for r in calls if r.status in (-1, 429, 502, 503)]
    assert len(bad) >= 0.2 * len(calls), (len(bad), len(calls))
    assert {-1, 429} <= {r.status for r in bad} and {r.status for r in bad} & {502, 503}
    assert any(r.status == -1 and r.method == "POST" for r in bad)  # a create made but its answer lost


@pytest.fixture
def make_world(gl_spec: OpenApiSpec) -> Callable[[float, int], World]:
    """The fake GitLab of one MR pipeline job: what the harness needs from this provider."""
    return lambda rate, seed: World(gl_spec, fault_rate=rate, seed=seed)


def test_thirty_percent_faults_change_nothing_on_the_mr(make_world: Callable[[float, int], World],
                                                         scenario_dirs: Callable[[], Path]) -> None:
    """With 30% of requests failing the MR shows what a fault-free run shows: no loss, no duplicates."""
    clean, clean_world, _faulty, world = assert_faults_change_nothing(make_world, scenario_dirs, rate=FAULTS,
                                                                      seed=SEED_FAULTS, plan=PLAN)
    clean_view_is_right(clean, clean_world, PLAN)
    faults_really_happened(world)


def test_kill_9_halfway_changes_nothing_on_the_mr(make_world: Callable[[float, int], World],
                                                  scenario_dirs: Callable[[], Path]) -> None:
    """A daemon killed right after GitLab stored a package file, before it could journal that, finishes the job's
    writes once its session is back, and only once: one package file per artifact, as in the fault-free run."""
    _clean, _killed, world = assert_kill_9_changes_nothing(make_world, scenario_dirs, rate=FAULTS, seed=SEED_KILL,
                                                           plan=PLAN)
    faults_really_happened(world)
    assert [r.status for r in world.gitlab.calls("POST", "/notes$")].count(201) <= 1
    (held,) = world.gitlab.held  # the kill landed in the window: the file stored, its answer never received
    name = held.path.rsplit("/", 1)[1]
    assert [f["file_name"] for f in world.gitlab.package_files()].count(name) == 1
    assert [r.status for r in world.gitlab.calls("PUT", "/" + name + "$")].count(201) == 0  # never PUT again


# --- the example pipeline ---------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitlab" / ".gitlab-ci.yml"


def test_the_example_pipeline_runs_real_commands_and_collects_what_is_staged() -> None:
    """examples/gitlab: every ci-sidecar command parses with the real CLI, exec's JUnit glob matches what the
    suite writes, and the job collects the staged folder and the JUnit report where the provider puts them."""
    import fnmatch
    import shlex

    import yaml

    from ci_sidecar.cli import build_parser
    from ci_sidecar.providers.gitlab.settings import GitLabSettings

    job = yaml.safe_load(EXAMPLE.read_text())["test"]
    lines = [line for line in job["before_script"] + job["script"] if "ci-sidecar" in line.split()[0:1]]
    assert [shlex.split(line)[1] for line in lines] == ["doctor", "exec"]
    for line in lines:
        build_parser().parse_args(shlex.split(line)[1:])  # SystemExit on an unknown command or option
    exec_args = build_parser().parse_args(shlex.split(lines[-1])[1:])
    wrapped = exec_args.cmd[1:] if exec_args.cmd[:1] == ["--"] else exec_args.cmd
    written = wrapped[wrapped.index("--junitfile") + 1]
    assert any(fnmatch.fnmatch(written, glob) for glob in exec_args.junit), (written, exec_args.junit)
    staged = GitLabSettings().staged_dir
    assert f"{staged}/" in job["artifacts"]["paths"] and job["artifacts"]["when"] == "always"
    assert fnmatch.fnmatch(f"{staged}/junit/unit-tests-run-1.xml", job["artifacts"]["reports"]["junit"])
    assert "/opt/ci-sidecar/bin/pip install" in " ".join(job["before_script"])  # the venv the PATH points to
