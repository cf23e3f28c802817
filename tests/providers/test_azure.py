"""The Azure DevOps provider against the spec-validating fake Azure DevOps: test runs (results in batches of
≤ 1,000, exactly once across lost answers and restarts, a rerun test as one result with its attempts, completion,
webAccessUrl), attachments, commit and PR statuses, sticky PR threads, credentials (Bearer, PAT, none, a 203
sign-in page), TF400733 rate limits, the read-back and ``doctor --check``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ci_sidecar.credentials import Credential, CredentialRef, Secret
from ci_sidecar.protocol.records import CIContext, Counts, TestResult
from ci_sidecar.providers.azure import AzureProvider
from ci_sidecar.providers.base import Outcome, PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ci_sidecar.providers.base import UploadArtifact
from fakes.azure import ORG, PROJECT, FakeAzure
from fakes.spec import OpenApiSpec, require_spec
from .contract import check_unkeyed_comment_once

SHA = "c4" * 20
PR = 42
REPO = "a5c6f0de-0000-4000-8000-00000000ad0e"
TOKEN, PAT = "azure-pipeline-token", "azure-pat"


@pytest.fixture(scope="module")
def specs() -> tuple[OpenApiSpec, OpenApiSpec]:
    return require_spec("azure-devops/test_7.1_test.json"), require_spec("azure-devops/git_7.1_git.json")


@pytest.fixture
def fake(specs: tuple[OpenApiSpec, OpenApiSpec]) -> Iterator[FakeAzure]:
    with FakeAzure(*specs, repository=REPO, pull_requests=(PR,)) as az:
        yield az
    assert len(az.violations) == az.expected_violations, az.violations
    assert all(r.query.get("api-version") == ["7.1"] for r in az.calls() if r.status != 203)


class Envs:
    """ProviderEnvs of an Azure Pipelines PR build against the fake; ``logs`` is what the user was told."""

    def __init__(self, fake: FakeAzure) -> None:
        self.fake = fake
        self.logs: list[str] = []
        self.results: list[TestResult] = []

    def __call__(self, token: str | None = TOKEN, *, source: str = "env:SYSTEM_ACCESSTOKEN", pr: int | None = PR,
                 **config: Any) -> ProviderEnv:
        ci = CIContext(provider="azure", sources={}, repository="widgets", commit_sha=SHA, branch="feature",
                       pr_number=pr, build_id="77", build_number="20260101.1")
        settings: dict[str, Any] = {
            "trust_env": False, "collection_uri": self.fake.collection_url, "project": PROJECT, "build_id": "77",
            "repository_id": REPO, "repository_name": "widgets", "repository_provider": "TfsGit", "tf_build": "True",
            **({"pull_request_id": str(pr)} if pr else {}), **config}
        cred = CredentialRef(provider="azure", base_url=self.fake.collection_url, source=source,
                             fingerprint="f") if token else None
        return ProviderEnv.build(ci, settings, cred, token, log=self.logs.append, read_results=self.read_results)

    async def read_results(self, run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        for result in self.results[start:end]:
            yield msgspec.msgpack.encode(result)


@pytest.fixture
def envs(fake: FakeAzure) -> Envs:
    return Envs(fake)


def add_results(envs: Envs, passed: int, failed: int = 0) -> None:
    envs.results += [TestResult(name=f"ok_{i}", classname="pkg.Mod", status="passed", duration=0.25, file="t.py")
                     for i in range(passed)]
    envs.results += [TestResult(name=f"bad_{i}", classname="pkg.Mod", status="failed", message=f"boom {i}",
                                details="Traceback\n" + "x" * 2000) for i in range(failed)]


def run_op(envs: Envs, *, final: bool, name: str = "unit tests", cancelled: bool = False) -> PublishRun:
    failed = sum(r.status == "failed" for r in envs.results)
    counts = Counts(total=len(envs.results), passed=len(envs.results) - failed, failed=failed)
    conclusion = ("cancelled" if cancelled else "failure" if failed else "success") if final else None
    run = RunSnapshot(id="run-0123456789abcdef", name=name, status="finished" if final else "running",
                      start_time="2026-01-01T00:00:00Z", end_time="2026-01-01T00:01:30Z" if final else None,
                      counts=counts, output_dir="/nonexistent", conclusion=conclusion, results_end=len(envs.results))
    return PublishRun(run=run, final=final)


async def deliver(op: Any, env: ProviderEnv, remote: dict[str, Any] | None = None,
                  provider: AzureProvider | None = None) -> Outcome:
    own = provider is None
    provider = provider or AzureProvider()
    try:
        return await provider.deliver(op, env, remote or {})
    finally:
        if own:
            await provider.aclose()


# --- test runs -------------------------------------------------------------------------------------


async def test_a_run_is_a_test_run_with_results_in_batches_of_1000_then_completed(fake: FakeAzure,
                                                                                  envs: Envs) -> None:
    """2,500 results go in three POSTs (1000, 1000, 500) to an automated InProgress run on the build, which is
    then completed; its webAccessUrl is the details URL and the Tests tab counts what was sent."""
    add_results(envs, 2450, failed=50)
    out = await deliver(run_op(envs, final=True), envs())
    assert out.kind == "delivered", out.message
    (run,) = fake.runs()
    assert (run["name"], run["isAutomated"], run["state"], run["build"]) == ("unit tests", True, "Completed",
                                                                              {"id": "77"})
    assert out.url == run["webAccessUrl"] and out.tier == "test run"
    assert [len(c.body) for c in fake.calls("POST", "/results$")] == [1000, 1000, 500]
    assert (run["totalTests"], run["passedTests"], run["unanalyzedTests"]) == (2500, 2450, 50)
    bad = next(r for r in fake.results(run["id"]) if r["outcome"] == "Failed")
    assert bad["automatedTestName"] == "pkg.Mod.bad_0" and bad["errorMessage"] == "boom 0"
    assert len(bad["stackTrace"]) == 1000  # Azure's documented limit


async def test_results_stream_into_one_run_across_live_updates_and_a_restart(fake: FakeAzure, envs: Envs) -> None:
    """Live updates add only the new results to the same run; a new provider (a restarted daemon) continues from
    the remembered count; the run is created once."""
    add_results(envs, 30)
    first = await deliver(run_op(envs, final=False), envs())
    assert fake.runs()[0]["state"] == "InProgress"
    add_results(envs, 20, failed=1)
    done = await deliver(run_op(envs, final=True), envs(), first.remote)
    assert done.kind == "delivered" and len(fake.runs()) == 1
    assert [len(c.body) for c in fake.calls("POST", "/results$")] == [30, 21]
    assert fake.runs()[0]["totalTests"] == 51 and done.remote["results_sent"] == 51  # type: ignore[index]


async def test_lost_answers_duplicate_nothing(fake: FakeAzure, envs: Envs) -> None:
    """A run create and a results POST whose answers were lost are found again, not sent twice."""
    add_results(envs, 1500)
    fake.inject("lost", "POST", "/test/runs$")
    first = await deliver(run_op(envs, final=True), envs())
    assert first.kind == "retry" and first.remote == {"creating": True}
    fake.inject("lost", "POST", "/results$")
    second = await deliver(run_op(envs, final=True), envs(), first.remote)
    assert second.kind == "retry"
    assert second.remote["inflight"] == {"start": 0, "end": 1000, "at": 0, "n": 1000}  # type: ignore[index]
    third = await deliver(run_op(envs, final=True), envs(), second.remote)
    assert third.kind == "delivered", third.message
    (run,) = fake.runs()
    assert run["totalTests"] == 1500 and len(fake.results(run["id"])) == 1500
    assert len(fake.calls("POST", "/test/runs$")) == 1 and len(fake.calls("POST", "/results$")) == 2


def attempt(name: str, n: int, status: str, message: str | None = None) -> TestResult:
    return TestResult(name=name, classname="pkg.Mod", file="t.py", status=status, attempt=n, duration=0.5,
                      message=message, details=f"Traceback: {message}" if message else None)


def the_tests_tab(fake: FakeAzure) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The run and its results by test name, as the build's Tests tab lists them (sub-results included)."""
    (run,) = fake.runs()
    return run, {r["testCaseTitle"]: r for r in fake.results(run["id"])}


def sub_results(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(s["sequenceId"], s["displayName"], s["outcome"], s["durationInMs"], s.get("errorMessage"))
            for s in result.get("subResults") or []]


async def test_a_flaky_test_is_one_passed_result_with_both_attempts_as_reruns(fake: FakeAzure, envs: Envs) -> None:
    """A test that failed, then passed on attempt 2 is one result, Passed, grouped as a rerun with both attempts as
    sub-results; the Tests tab counts it once and not as a failure."""
    envs.results += [attempt("flaky", 1, "failed", "timeout"), attempt("steady", 1, "failed", "boom"),
                     attempt("flaky", 2, "passed")]
    assert (await deliver(run_op(envs, final=True), envs())).kind == "delivered"
    run, results = the_tests_tab(fake)
    assert (run["totalTests"], run["passedTests"], run["unanalyzedTests"]) == (2, 1, 1)
    flaky = results["flaky"]
    assert (flaky["outcome"], flaky["resultGroupType"], flaky["durationInMs"]) == ("Passed", "rerun", 1000)
    assert sub_results(flaky) == [(1, "attempt 1", "Failed", 500, "timeout"), (2, "attempt 2", "Passed", 500, None)]
    assert not flaky["errorMessage"] and "subResults" not in results["steady"]
    (post,) = fake.calls("POST", "/results$")
    assert len(post.body) == 2 and not fake.calls("PATCH", "/results$")


async def test_a_rerun_after_its_failure_was_sent_updates_that_result_once(fake: FakeAzure, envs: Envs) -> None:
    """An attempt arriving after its test's failure was added updates that result by id (PATCH, no new result),
    through lost answers and a restarted daemon: every test once, the sent count right, reruns grouped."""
    envs.results += [attempt("flaky", 1, "failed", "timeout"), attempt("twice", 1, "failed", "boom 1"),
                     attempt("ok", 1, "passed")]
    first = await deliver(run_op(envs, final=False), envs())
    assert first.remote["reruns"] and first.remote["posted"] == 3  # type: ignore[index]
    envs.results += [attempt("flaky", 2, "passed"), attempt("twice", 2, "failed", "boom 2"),
                     attempt("new", 1, "failed")]
    fake.inject("lost", "PATCH", "/results$")
    lost_patch = await deliver(run_op(envs, final=False), envs(), first.remote)
    assert lost_patch.kind == "retry" and lost_patch.remote["results_sent"] == 3  # type: ignore[index]
    fake.inject("lost", "POST", "/results$")
    lost_post = await deliver(run_op(envs, final=False), envs(), lost_patch.remote)
    assert lost_post.kind == "retry" and lost_post.remote["inflight"]["n"] == 1  # type: ignore[index]
    second = await deliver(run_op(envs, final=False), envs(), lost_post.remote)
    assert second.kind == "delivered" and second.remote["results_sent"] == 6  # type: ignore[index]
    envs.results += [attempt("twice", 3, "passed")]
    done = await deliver(run_op(envs, final=True), envs(), second.remote)  # a restarted daemon
    assert done.kind == "delivered" and done.remote["posted"] == 4  # type: ignore[index]
    run, results = the_tests_tab(fake)
    assert (run["totalTests"], run["passedTests"], run["unanalyzedTests"]) == (4, 3, 1)
    assert sorted(results) == ["flaky", "new", "ok", "twice"]
    assert sub_results(results["flaky"]) == [(1, "attempt 1", "Failed", 500, "timeout"),
                                             (2, "attempt 2", "Passed", 500, None)]
    assert sub_results(results["twice"]) == [(1, "attempt 1", "Failed", 500, "boom 1"),
                                             (2, "attempt 2", "Failed", 500, "boom 2"),
                                             (3, "attempt 3", "Passed", 500, None)]
    assert results["twice"]["outcome"] == "Passed" and results["new"]["outcome"] == "Failed"
    patches = fake.calls("PATCH", "/results$")
    # once lost, once again; the lost POST after it landed and is only counted; then the third attempt
    assert [sorted(i["id"] for i in c.body) for c in patches] == [sorted([results["flaky"]["id"],
                                                                          results["twice"]["id"]])] * 2 + \
        [[results["twice"]["id"]]]
    assert len(fake.calls("POST", "/results$")) == 2
    assert list(done.remote["reruns"].values()) == [results["new"]["id"]]  # type: ignore[index]  # still failing


async def test_a_write_resumed_after_kill_9_adopts_what_the_lost_attempt_added(fake: FakeAzure, envs: Envs) -> None:
    """The journal never heard of an attempt that created the test run or added results (a daemon killed -9
    mid-attempt): the resumed write finds them on Azure — whole chunks, a shorter last one, their reruns — and
    sends only the rest: every test once, a flaky one with both attempts."""
    envs.results += [attempt(f"ok_{i}", 1, "passed") for i in range(600)]
    envs.results += [attempt(f"bad_{i}", 1, "failed", f"boom {i}") for i in range(100)]
    journaled = (await deliver(run_op(envs, final=False), envs())).remote
    envs.results += [attempt(f"bad_{i}", 2, "passed") for i in range(10)]
    envs.results += [attempt(f"more_{i}", 1, "passed") for i in range(1500)]
    envs.results += [attempt("fl", 1, "failed", "timeout"), attempt("fl", 2, "passed")]
    lost = await deliver(run_op(envs, final=False), envs(), journaled)  # its outcome never reaches the journal
    assert lost.kind == "delivered" and [len(c.body) for c in fake.calls("POST", "/results$")] == [700, 990, 511]
    envs.results += [attempt(f"late_{i}", 1, "passed") for i in range(100)] + [attempt("bad_10", 2, "passed")]
    done = await deliver(run_op(envs, final=True), envs(), journaled)
    assert done.kind == "delivered" and done.remote["results_sent"] == len(envs.results)  # type: ignore[index]
    run, results = the_tests_tab(fake)
    assert len(fake.results(run["id"])) == len(results) == 600 + 100 + 1500 + 1 + 100
    assert (run["passedTests"], run["unanalyzedTests"]) == (600 + 11 + 1500 + 1 + 100, 89)
    assert [s[2] for s in sub_results(results["fl"])] == ["Failed", "Passed"]
    assert [s[2] for s in sub_results(results["bad_10"])] == ["Failed", "Passed"]
    assert [len(c.body) for c in fake.calls("POST", "/results$")][3:] == [100]
    again = await deliver(run_op(envs, final=True), envs(), {})  # the journal lost even the test run's id
    assert again.kind == "delivered", again.message
    assert len(fake.runs()) == 1 and len(fake.calls("POST", "/results$")) == 4
    assert again.remote["reruns"] == done.remote["reruns"]  # type: ignore[index]


async def test_a_write_this_daemon_began_reads_nothing_back(fake: FakeAzure, envs: Envs) -> None:
    """The first attempt of a write the daemon itself recorded looks for nothing: create, add, complete."""
    add_results(envs, 10, failed=1)
    env = envs()
    env.never_sent = True
    assert (await deliver(run_op(envs, final=True), env)).kind == "delivered"
    assert [(c.method, c.operation) for c in fake.calls() if "/test/" in c.path] == [
        ("POST", "run-create"), ("POST", "results-add"), ("PATCH", "run-update")]


async def test_a_repeat_of_a_test_sent_as_passed_is_a_result_of_its_own(fake: FakeAzure, envs: Envs) -> None:
    """A later attempt of a test already added as passed (nothing to rerun) is added as its own result, its comment
    saying which attempt it is; nothing is updated."""
    envs.results += [attempt("repeat", 1, "passed")]
    first = await deliver(run_op(envs, final=False), envs())
    envs.results += [attempt("repeat", 2, "passed")]
    assert (await deliver(run_op(envs, final=True), envs(), first.remote)).kind == "delivered"
    results = fake.results(fake.runs()[0]["id"])
    assert [(r["outcome"], r.get("comment")) for r in results] == [("Passed", None), ("Passed", "attempt 2 (rerun)")]
    assert not fake.calls("PATCH", "/results$")


async def test_a_cancelled_run_is_aborted_and_read_back(fake: FakeAzure, envs: Envs) -> None:
    """A cancelled run ends Aborted; ``read_run`` shows the test run as Azure does."""
    add_results(envs, 3)
    provider = AzureProvider()
    env = envs()
    out = await deliver(run_op(envs, final=True, cancelled=True), env, provider=provider)
    seen = await provider.read_run(run_op(envs, final=True).run, env, out.remote or {})
    await provider.aclose()
    assert fake.runs()[0]["state"] == "Aborted"
    assert seen is not None and (seen["status"], seen["conclusion"], seen["state"]) == ("completed", "cancelled",
                                                                                        "Aborted")
    assert seen["url"] == fake.runs()[0]["webAccessUrl"]


async def test_the_run_status_goes_on_the_commit_and_the_pull_request(fake: FakeAzure, envs: Envs) -> None:
    """A run's status is posted pending once while it runs, then failed with its counts, on the commit and the
    PR, linking the test run."""
    add_results(envs, 5)
    first = await deliver(run_op(envs, final=False), envs())
    add_results(envs, 5)
    again = await deliver(run_op(envs, final=False), envs(), first.remote)
    add_results(envs, 0, failed=2)
    await deliver(run_op(envs, final=True), envs(), again.remote)
    states = [(s["state"], s["description"]) for s in fake.commit_statuses(SHA)]
    assert states == [("pending", "running"), ("failed", "10 passed, 2 failed, 0 skipped")]
    assert [s["state"] for s in fake.pr_statuses(PR)] == ["pending", "failed"]
    last = fake.pr_statuses(PR)[-1]
    assert last["context"] == {"name": "unit tests", "genre": "ci-sidecar"}
    assert last["targetUrl"] == fake.runs()[0]["webAccessUrl"]


# --- statuses --------------------------------------------------------------------------------------


async def test_set_build_status_is_a_commit_and_pr_status_sent_once(fake: FakeAzure, envs: Envs) -> None:
    """``set_build_status`` posts a commit and a PR status; the same status again is not posted twice."""
    op = SetStatus(state="success", context="lint", description="no findings", target_url="https://ci.example/1")
    out = await deliver(op, envs())
    again = await deliver(op, envs(), out.remote)
    assert (out.kind, again.action) == ("delivered", "skipped")
    (status,) = fake.commit_statuses(SHA)
    assert (status["state"], status["context"]["name"], status["targetUrl"]) == ("succeeded", "lint",
                                                                                  "https://ci.example/1")
    assert len(fake.pr_statuses(PR)) == 1


async def test_statuses_need_an_azure_repos_repository(fake: FakeAzure, envs: Envs) -> None:
    """On a GitHub-hosted repository statuses are refused with why (the GitHub provider takes them)."""
    out = await deliver(SetStatus(state="success", context="lint"), envs(repository_provider="GitHub"))
    assert out.kind == "refused" and "Azure Repos" in out.message and fake.calls("POST") == []


# --- threads -------------------------------------------------------------------------------------


async def test_a_sticky_comment_is_one_thread_edited_in_place(fake: FakeAzure, envs: Envs) -> None:
    """The first comment creates a thread carrying the key as a property; the next edits its comment 1."""
    first = await deliver(PostComment(body="Coverage 80%", mode="upsert", key="coverage"), envs())
    second = await deliver(PostComment(body="Coverage 85%", mode="upsert", key="coverage"), envs(), first.remote)
    assert (first.action, second.action) == ("created", "updated")
    (thread,) = fake.threads(PR)
    assert thread["comments"][0]["content"] == "Coverage 85%" and thread["status"] == "active"
    assert thread["properties"]["ci-sidecar.key"]["$value"] == "coverage"
    assert second.url == (f"{fake.collection_url}{PROJECT.replace(' ', '%20')}/_git/widgets/pullrequest/{PR}"
                          f"?discussionId={thread['id']}")
    assert fake.calls("PATCH", "/comments/1$")


async def test_an_unkeyed_comment_stored_before_a_restart_is_not_posted_twice(fake: FakeAzure, envs: Envs) -> None:
    """A comment without a key: Azure DevOps stored it, the answer was lost and the daemon restarted with nothing journaled
    about the attempt: the resumed write finds it by its write's hidden mark (one comment); another write of the
    same text still posts its own."""
    fake.inject("lost", "POST", "/threads$")
    await check_unkeyed_comment_once(deliver, envs, lambda: fake.threads(PR), "thread_id")


async def test_threads_are_found_across_continuation_pages_and_duplicates_closed(fake: FakeAzure,
                                                                               envs: Envs) -> None:
    """Without a known id the threads are listed page by page (continuation tokens); the newest keyed thread is
    edited, an older duplicate closed, other threads left alone."""
    for i in range(3):
        fake.add_thread(PR, f"review remark {i}")
    old = fake.add_thread(PR, "Coverage 70%", key="coverage")
    fake.add_thread(PR, "someone else's", key="other")
    new = fake.add_thread(PR, "Coverage 75%", key="coverage")
    out = await deliver(PostComment(body="Coverage 90%", mode="upsert", key="coverage"), envs())
    assert out.action == "updated" and out.remote["thread_id"] == new["id"]  # type: ignore[index]
    assert len(fake.calls("GET", "/threads$")) == 3  # 6 threads, 2 a page
    by_id = {t["id"]: t for t in fake.threads(PR)}
    assert by_id[old["id"]]["status"] == "closed" and by_id[new["id"]]["comments"][0]["content"] == "Coverage 90%"
    assert sum(t["status"] == "active" for t in by_id.values()) == 5
    assert any("duplicate" in line for line in envs.logs)


async def test_a_comment_past_150000_characters_is_cut_with_a_link(fake: FakeAzure, envs: Envs) -> None:
    """A body over Azure's 150,000 characters is shortened (linking the full report) instead of refused."""
    body = "## Report\n\n" + "a line of the report\n" * 10_000
    out = await deliver(PostComment(body=body, mode="upsert", key="big", full_report_url="https://r.example/x"),
                        envs())
    assert out.kind == "delivered" and out.remote["truncated"] is True  # type: ignore[index]
    text = fake.threads(PR)[0]["comments"][0]["content"]
    assert len(text) <= 150_000 and "https://r.example/x" in text


async def test_comments_need_a_pull_request(fake: FakeAzure, envs: Envs) -> None:
    """Outside a PR build the comment is refused with why."""
    out = await deliver(PostComment(body="x", mode="upsert", key="k"), envs(pr=None))
    assert out.kind == "refused" and "SYSTEM_PULLREQUEST_PULLREQUESTID" in out.message


# --- attachments ---------------------------------------------------------------------------------


def artifact(tmp_path: Path, name: str = "logs/out.txt", data: bytes = b"hello\n" * 10,
             size: int | None = None) -> UploadArtifact:
    import hashlib

    path = tmp_path / "blob"
    path.write_bytes(data)
    return UploadArtifact(run_id="run-0123456789abcdef", name=name, stored_path=str(path),
                          sha256=hashlib.sha256(data).hexdigest(), size=size or len(data), mime_type="text/plain")


async def test_an_artifact_is_an_attachment_of_the_test_run_once(fake: FakeAzure, envs: Envs,
                                                               tmp_path: Path) -> None:
    """An artifact waits for its test run, then is attached (base64) once even when the answer was lost; its URL
    is the attachment's, and ``get_artifact_url`` finds it again."""
    op = artifact(tmp_path)
    provider = AzureProvider()
    early = await deliver(op, envs(), provider=provider)
    assert early.kind == "retry" and "not created yet" in early.message
    await deliver(run_op(envs, final=False), envs(), provider=provider)
    fake.inject("lost", "POST", "/attachments$")
    lost = await deliver(op, envs(), early.remote, provider=provider)
    assert lost.kind == "retry"
    done = await deliver(op, envs(), lost.remote, provider=AzureProvider())  # a restarted daemon finds the run
    found = await provider.lookup_artifact(op, envs(), {})
    await provider.aclose()
    (attachment,) = fake.attachments(fake.runs()[0]["id"])
    assert (attachment["fileName"], attachment["size"]) == ("logs_out.txt", 60)
    assert done.kind == "delivered" and done.url == attachment["url"]
    assert found is not None and found.url == attachment["url"]


async def test_an_attachment_stored_before_a_restart_is_adopted_not_attached_again(fake: FakeAzure, envs: Envs,
                                                                                     tmp_path: Path) -> None:
    """Azure stored an attachment, the answer was lost and the daemon restarted with nothing journaled about the
    attempt: the resumed upload finds it in the run's attachments (one attachment, its URL); a new upload's first
    attempt sent only the POST."""
    op = artifact(tmp_path)
    await deliver(run_op(envs, final=False), envs())
    fake.inject("lost", "POST", "/attachments$")
    first = envs()
    first.never_sent = True  # the write's first attempt in the daemon that took it
    assert (await deliver(op, first)).kind == "retry"
    assert fake.calls("GET", "/attachments$") == []
    resumed = await deliver(op, envs(), {})  # a new daemon: no remote state, the write not known unsent
    (attachment,) = fake.attachments(fake.runs()[0]["id"])
    assert resumed.kind == "delivered" and resumed.url == attachment["url"], resumed.message
    assert len(fake.calls("POST", "/attachments$")) == 1


async def test_a_failed_attachment_lookup_answers_no_url_and_logs_why(fake: FakeAzure, envs: Envs, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Azure fails while an artifact's URL is looked up: no URL (not an error), one log line without the token."""
    op = artifact(tmp_path)
    provider = AzureProvider()
    await deliver(run_op(envs, final=False), envs(), provider=provider)
    assert (await deliver(op, envs(), provider=provider)).kind == "delivered"
    fake.inject("503", "GET", "/attachments$")
    with caplog.at_level("INFO", logger="ci_sidecar.providers.azure"):
        found = await provider.lookup_artifact(op, envs(), {})
    await provider.aclose()
    assert found is None
    (line,) = [r.getMessage() for r in caplog.records if "attachment lookup" in r.getMessage()]
    assert line.startswith("azure: attachment lookup of logs/out.txt failed: ") and TOKEN not in caplog.text


async def test_an_artifact_past_100_mb_is_refused_with_the_limit(fake: FakeAzure, envs: Envs,
                                                                 tmp_path: Path) -> None:
    """Past 100 MB nothing is sent: the answer names the limit and the object store."""
    await deliver(run_op(envs, final=False), envs())
    out = await deliver(artifact(tmp_path, size=100 * 1024 * 1024 + 1), envs())
    assert out.kind == "refused" and "104,857,600" in out.message and "object store" in out.message
    assert fake.calls("POST", "/attachments$") == []


# --- credentials, errors, limits -----------------------------------------------------------------


async def test_a_pat_goes_as_basic_with_an_empty_user(fake: FakeAzure, envs: Envs) -> None:
    """AZURE_DEVOPS_TOKEN is a PAT: Basic ``:<pat>``; the run is published with it."""
    add_results(envs, 1)
    out = await deliver(run_op(envs, final=True), envs(PAT, source="env:AZURE_DEVOPS_TOKEN"))
    assert out.kind == "delivered"
    assert fake.calls()[0].headers["authorization"].startswith("Basic ")


async def test_a_203_sign_in_page_is_a_refused_credential_not_success(fake: FakeAzure, envs: Envs) -> None:
    """Azure answers a bad token with 203 and its sign-in page: refused, saying the credential was not accepted,
    the token never in the message."""
    add_results(envs, 1)
    out = await deliver(run_op(envs, final=True), envs("expired-token-value"))
    assert (out.kind, out.status) == ("refused", 203)
    assert "credential was not accepted" in out.message and "expired-token-value" not in out.message
    assert fake.runs() == []


async def test_tf400733_is_retried_after_the_servers_wait(fake: FakeAzure, envs: Envs) -> None:
    """A 429 TF400733 is a retry after ``Retry-After`` seconds, with Azure's words."""
    add_results(envs, 1)
    fake.inject("429", "POST", "/test/runs$", retry_after=12)
    out = await deliver(run_op(envs, final=True), envs())
    assert (out.kind, out.retry_after) == ("retry", 12.0) and "TF400733" in out.message
    assert fake.rate_limited == 1


async def test_without_a_token_nothing_is_sent_and_the_logging_tier_is_named(fake: FakeAzure, envs: Envs) -> None:
    """No token: every write is unsupported with what to map; inside Pipelines the tiers name the logging
    commands ``exec`` prints."""
    provider = AzureProvider()
    caps = provider.capabilities(envs(None))
    out = await deliver(run_op(envs, final=True), envs(None))
    await provider.aclose()
    assert caps.test_run.kind == "fallback" and caps.test_run.via == "logging commands"
    assert caps.pr_comment.kind == "none" and "SYSTEM_ACCESSTOKEN" in (caps.pr_comment.note or "")
    assert out.kind == "unsupported" and "##vso" in out.message and fake.calls() == []


async def test_no_organization_is_refused_with_what_to_set(fake: FakeAzure, envs: Envs) -> None:
    """``https://dev.azure.com`` alone names no organization: refused before any request."""
    env = envs(collection_uri=None)
    env.base_url = "https://dev.azure.com"
    out = await deliver(SetStatus(state="success", context="lint"), env)
    assert out.kind == "refused" and "SYSTEM_COLLECTIONURI" in out.message


# --- doctor --------------------------------------------------------------------------------------


def _job_env(fake: FakeAzure) -> dict[str, str]:
    return {"SYSTEM_COLLECTIONURI": fake.collection_url, "SYSTEM_TEAMPROJECT": PROJECT, "BUILD_REPOSITORY_ID": REPO,
            "BUILD_REPOSITORY_PROVIDER": "TfsGit"}


async def test_doctor_check_proves_reads_and_with_write_a_visible_run(fake: FakeAzure) -> None:
    """Read-only: test runs and statuses are read, nothing written; ``--write`` creates and completes a test run
    and sets a commit status named "ci-sidecar doctor"."""
    ci = CIContext(provider="azure", sources={}, commit_sha=SHA)
    cred = Credential(provider="azure", base_url=fake.collection_url, source="env:SYSTEM_ACCESSTOKEN",
                      fingerprint="f", secret=Secret(TOKEN))
    provider = AzureProvider()
    read = await provider.probe_access(ci, _job_env(fake), cred, write=False, trust_env=False)
    assert read.ok and fake.calls("POST") == [] and read.items[0].result == "proven"
    wrote = await provider.probe_access(ci, _job_env(fake), cred, write=True, trust_env=False)
    bad = await provider.probe_access(ci, _job_env(fake), Credential(
        provider="azure", base_url=fake.collection_url, source="env:SYSTEM_ACCESSTOKEN", fingerprint="g",
        secret=Secret("wrong")), write=False, trust_env=False)
    await provider.aclose()
    assert wrote.ok and [r["name"] for r in fake.runs()] == ["ci-sidecar doctor"]
    assert fake.runs()[0]["state"] == "Completed" and fake.commit_statuses(SHA)[0]["state"] == "succeeded"
    assert not bad.ok and "not accepted" in bad.items[0].detail and "wrong" not in bad.items[0].detail
    assert ORG in fake.collection_url
