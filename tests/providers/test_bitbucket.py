"""The Bitbucket provider against the spec-validating fake Bitbucket: Code Insights report and annotations (limits,
retries without duplicates), build statuses, the Pipelines auth proxy tier, sticky PR comments, Downloads,
credentials (Bearer, Basic, none) and Bitbucket's errors (Data Center: test_bitbucket_dc.py)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ci_sidecar.credentials import CredentialRef, find_credentials
from ci_sidecar.protocol.records import CIContext, Counts, TestResult
from ci_sidecar.providers.base import Outcome, PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ci_sidecar.providers.base import UploadArtifact
from ci_sidecar.providers.bitbucket import BitbucketProvider
from ci_sidecar.providers.bitbucket._api import ident
from ci_sidecar.providers.bitbucket.comments import comment_marker
from fakes.bitbucket import PUBLIC_HOST, FakeBitbucket
from fakes.spec import OpenApiSpec, require_spec
from .contract import check_unkeyed_comment_once

SHA = "9f" * 20
PR = 14
TOKEN, READ, USER, PASSWORD = "bb-repo-token", "bb-read-token", "builder", "app-password-1"
RID = ident("unit tests", limit=64)  # the run's name, made an id


@pytest.fixture
def bb_spec() -> OpenApiSpec:
    return require_spec("bitbucket/bitbucket-cloud-openapi3.ci-subset.json")


@pytest.fixture
def fake(bb_spec: OpenApiSpec) -> Iterator[FakeBitbucket]:
    with FakeBitbucket(bb_spec, proxy=True) as bb:
        yield bb
    assert len(bb.violations) == bb.expected_violations, bb.violations


class Envs:
    """ProviderEnvs of a Bitbucket Pipelines PR step against the fake; ``logs`` is what the user was told."""

    def __init__(self, fake: FakeBitbucket) -> None:
        self.fake = fake
        self.logs: list[str] = []
        self.results: list[TestResult] = []

    def __call__(self, token: str | None = TOKEN, *, username: str | None = None, pr: int | None = PR,
                 pipelines: bool = True, **config: Any) -> ProviderEnv:
        ci = CIContext(provider="bitbucket", sources={}, repository="team/widgets", commit_sha=SHA, branch="feature",
                       pr_number=pr, build_number="210", build_id="{1234-abcd}",
                       build_url="https://bitbucket.org/team/widgets/pipelines/results/210")
        settings: dict[str, Any] = {"trust_env": False, "workspace": "team", "repo_slug": "widgets",
                                    "http_origin": "https://bitbucket.org/team/widgets", **config}
        if pipelines:
            settings.update(build_number="210", step_uuid="{5678efab-0000-4000-8000-000000000000}",
                            proxy_url=self.fake.origin)
        cred = None
        if token:
            source = "env:BITBUCKET_APP_PASSWORD" if username else "env:BITBUCKET_TOKEN"
            cred = CredentialRef(provider="bitbucket", base_url=self.fake.api_url, source=source, fingerprint="f",
                                 username=username)
        return ProviderEnv.build(ci, settings, cred, token, log=self.logs.append, read_results=self.read_results)

    async def read_results(self, run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        for result in self.results[start:end]:
            yield msgspec.msgpack.encode(result)


@pytest.fixture
def envs(fake: FakeBitbucket) -> Envs:
    return Envs(fake)


def failures(envs: Envs, n: int, passed: int = 0) -> None:
    envs.results += [TestResult(name=f"test_{i}", classname="pkg.mod", status="failed", file="src/mod.py", line=i + 1,
                                message=f"boom {i}", details=f"Traceback {i}") for i in range(n)]
    envs.results += [TestResult(name=f"ok_{i}", status="passed") for i in range(passed)]


def run_op(envs: Envs, *, final: bool, name: str = "unit tests", cancelled: bool = False) -> PublishRun:
    failed = sum(r.status == "failed" for r in envs.results)
    counts = Counts(total=len(envs.results), passed=len(envs.results) - failed, failed=failed)
    conclusion = ("cancelled" if cancelled else "failure" if failed else "success") if final else None
    run = RunSnapshot(id="run-0123456789abcdef", name=name, status="finished" if final else "running",
                      start_time="2026-01-01T00:00:00Z", end_time="2026-01-01T00:01:30Z" if final else None,
                      counts=counts, output_dir="/nonexistent", conclusion=conclusion, results_end=len(envs.results))
    return PublishRun(run=run, final=final)


async def deliver(op: Any, env: ProviderEnv, remote: dict[str, Any] | None = None) -> Outcome:
    provider = BitbucketProvider()
    try:
        return await provider.deliver(op, env, remote or {})
    finally:
        await provider.aclose()


# --- Code Insights ---------------------------------------------------------------------------------


async def test_a_failing_run_is_a_test_report_with_annotations_in_posts_of_100(fake: FakeBitbucket,
                                                                               envs: Envs) -> None:
    """250 failures: a FAILED TEST report with counts and duration, 250 annotations in three POSTs of ≤ 100."""
    failures(envs, 250, passed=50)
    out = await deliver(run_op(envs, final=True), envs())
    assert out.kind == "delivered", out.message
    assert out.url == f"https://bitbucket.org/team/widgets/commits/{SHA}"
    report = fake.report(SHA, RID)
    assert report is not None
    assert (report["report_type"], report["result"], report["external_id"]) == ("TEST", "FAILED", RID)
    data = {d["title"]: d["value"] for d in report["data"]}
    assert data == {"Total": 300, "Passed": 50, "Failed": 250, "Skipped": 0, "Duration": 90_000}
    posts = fake.calls("POST", "/annotations$")
    assert [len(p.body) for p in posts] == [100, 100, 50]
    notes = fake.annotations(SHA, RID)
    assert len(notes) == 250 and len({n["external_id"] for n in notes}) == 250
    first = min(notes, key=lambda n: n["external_id"])
    assert (first["path"], first["line"], first["summary"]) == ("src/mod.py", 1, "pkg.mod.test_0: boom 0")


async def test_a_reported_coverage_is_a_percentage_field_of_the_report(fake: FakeBitbucket, envs: Envs) -> None:
    """The run's coverage shows in the Code Insights report as a PERCENTAGE data field."""
    failures(envs, 0, passed=3)
    op = run_op(envs, final=True)
    op.run.coverage = 91.256
    assert (await deliver(op, envs())).kind == "delivered"
    report = fake.report(SHA, RID)
    assert report is not None
    assert {"title": "Coverage", "type": "PERCENTAGE", "value": 91.26} in report["data"]


async def test_a_running_run_is_pending_then_passed_and_its_build_status_is_one_key(fake: FakeBitbucket,
                                                                                    envs: Envs) -> None:
    """While running the report is PENDING and the build status INPROGRESS; at the end PASSED and SUCCESSFUL,
    still one status (the key upserts), associated with the PR's source branch."""
    provider = BitbucketProvider()
    env = envs()
    envs.results += [TestResult(name="a", status="passed")]
    first = await provider.deliver(run_op(envs, final=False), env, {})
    assert fake.report(SHA, RID)["result"] == "PENDING"  # type: ignore[index]
    assert [s["state"] for s in fake.statuses(SHA).values()] == ["INPROGRESS"]
    done = await provider.deliver(run_op(envs, final=True), env, first.remote or {})
    await provider.aclose()
    assert done.kind == "delivered" and fake.report(SHA, RID)["result"] == "PASSED"  # type: ignore[index]
    (status,) = fake.statuses(SHA).values()
    assert (status["state"], status["refname"], status["name"]) == ("SUCCESSFUL", "feature", "unit tests")
    assert status["url"] == "https://bitbucket.org/team/widgets/pipelines/results/210"


@pytest.mark.parametrize("journaled", [True, False], ids=["retry", "restart"])
async def test_a_lost_annotation_answer_is_posted_again_without_duplicates(fake: FakeBitbucket, envs: Envs,
                                                                          journaled: bool) -> None:
    """An annotation POST is made but its answer lost: the retry, or a restarted daemon that journaled nothing of
    the attempt, sends the same external_ids, Bitbucket updates them, the report holds each failure once."""
    failures(envs, 150)
    fake.inject("lost", "POST", "/annotations$")
    env = envs()
    out = await deliver(run_op(envs, final=True), env)
    assert out.kind == "retry"
    again = await deliver(run_op(envs, final=True), env, out.remote if journaled else {})
    assert again.kind == "delivered", again.message
    posts = fake.calls("POST", "/annotations$")
    assert [p.body[0]["external_id"] for p in posts][:2] == [f"{RID}-0001"] * 2
    assert len(fake.annotations(SHA, RID)) == 150


async def test_past_1000_failures_the_report_says_how_many_are_not_annotated(fake: FakeBitbucket,
                                                                             envs: Envs) -> None:
    """1,200 failures: 1,000 annotations (Bitbucket's limit), the report's details count the other 200, the user
    is told; a later update sends nothing more."""
    failures(envs, 1200)
    env = envs()
    out = await deliver(run_op(envs, final=True), env)
    assert out.kind == "delivered", out.message
    assert len(fake.annotations(SHA, RID)) == 1000
    assert "200 more failure(s) are not annotated" in fake.report(SHA, RID)["details"]  # type: ignore[index]
    assert any("200 failure(s) past" in line for line in envs.logs)
    again = await deliver(run_op(envs, final=True), env, out.remote)
    assert again.kind == "delivered" and len(fake.calls("POST", "/annotations$")) == 10


async def test_long_failure_messages_fit_450_characters(fake: FakeBitbucket, envs: Envs) -> None:
    """A failure message of 5,000 characters becomes a 450-character summary; details keep 2,000."""
    envs.results.append(TestResult(name="t", status="failed", message="x" * 5000, details="y" * 5000))
    assert (await deliver(run_op(envs, final=True), envs())).kind == "delivered"
    (note,) = fake.annotations(SHA, RID)
    assert len(note["summary"]) == 450 and len(note["details"]) == 2000


async def test_read_run_reads_the_report_back(fake: FakeBitbucket, envs: Envs) -> None:
    """get_test_run_status reads the report: completed, failure."""
    failures(envs, 1)
    provider = BitbucketProvider()
    env = envs()
    out = await provider.deliver(run_op(envs, final=True), env, {})
    shown = await provider.read_run(run_op(envs, final=True).run, env, out.remote or {})
    await provider.aclose()
    assert shown is not None and (shown["status"], shown["conclusion"]) == ("completed", "failure")


# --- the Pipelines auth proxy ----------------------------------------------------------------------


async def test_without_a_token_inside_pipelines_the_report_goes_through_the_auth_proxy(fake: FakeBitbucket,
                                                                                      envs: Envs) -> None:
    """No credential in a Pipelines step: report and annotations go to http://api.bitbucket.org through the
    proxy with no Authorization; no build status is attempted and the user is told why."""
    failures(envs, 3)
    out = await deliver(run_op(envs, final=True), envs(None))
    assert out.kind == "delivered", out.message
    sent = fake.calls()
    assert sent and all(r.headers.get("host") == PUBLIC_HOST and "authorization" not in r.headers for r in sent)
    assert {r.operation for r in sent} == {"report-put", "annotations-post"}
    assert len(fake.annotations(SHA, RID)) == 3
    assert any("BITBUCKET_TOKEN" in line for line in envs.logs)


@pytest.mark.parametrize("op", [
    PostComment(body="hi", mode="upsert", key="k"),
    SetStatus(state="success", context="lint"),
    UploadArtifact(run_id="r", name="a.txt", stored_path="/nonexistent", sha256="0", size=1, mime_type="text/plain"),
])
async def test_through_the_proxy_comments_statuses_and_downloads_say_they_need_a_token(
        fake: FakeBitbucket, envs: Envs, op: Any) -> None:
    """The proxy only carries Code Insights: the other writes answer unsupported naming the token, send nothing."""
    out = await deliver(op, envs(None))
    assert out.kind == "unsupported" and "BITBUCKET_TOKEN" in out.message
    assert fake.calls() == []


async def test_outside_pipelines_without_credentials_nothing_is_pretended(fake: FakeBitbucket, envs: Envs) -> None:
    """No token and no Pipelines: the run answers unsupported, capabilities say none."""
    env = envs(None, pipelines=False)
    out = await deliver(run_op(envs, final=True), env)
    assert out.kind == "unsupported" and fake.calls() == []
    assert BitbucketProvider().capabilities(env).test_run.kind == "none"


# --- credentials and errors ------------------------------------------------------------------------


async def test_an_app_password_goes_as_basic_auth(fake: FakeBitbucket, envs: Envs) -> None:
    """BITBUCKET_USERNAME + BITBUCKET_APP_PASSWORD: Basic auth, accepted."""
    out = await deliver(SetStatus(state="success", context="lint", description="ok"), envs(PASSWORD, username=USER))
    assert out.kind == "delivered", out.message
    (call,) = fake.calls("POST")
    assert call.headers["authorization"].startswith("Basic ")
    assert fake.statuses(SHA)["ci-sidecar-lint"]["state"] == "SUCCESSFUL"


async def test_a_read_only_token_is_refused_in_bitbuckets_words_without_the_token(fake: FakeBitbucket,
                                                                                 envs: Envs) -> None:
    """A read token's write: refused with Bitbucket's error message, the token never in it."""
    out = await deliver(SetStatus(state="success", context="lint"), envs(READ))
    assert out.kind == "refused" and out.status == 403
    assert "privilege scopes" in out.message and READ not in out.message


async def test_a_429_is_a_retry_with_bitbuckets_wait(fake: FakeBitbucket, envs: Envs) -> None:
    """429 with Retry-After: retry, not before the server's wait."""
    fake.inject("429", "PUT", retry_after=42)
    out = await deliver(run_op(envs, final=True), envs())
    assert (out.kind, out.retry_after) == ("retry", 42)


def test_credentials_bearer_token_or_user_and_app_password() -> None:
    """BITBUCKET_TOKEN alone is found (no user); an app password needs BITBUCKET_USERNAME and carries it."""
    from ci_sidecar.config import Config

    found = find_credentials("bitbucket", {"BITBUCKET_TOKEN": "t"}, Config(), None)
    assert [(c.source, c.username) for c in found] == [("env:BITBUCKET_TOKEN", None)]
    assert find_credentials("bitbucket", {"BITBUCKET_APP_PASSWORD": "p"}, Config(), None) == []
    found = find_credentials("bitbucket", {"BITBUCKET_APP_PASSWORD": "p", "BITBUCKET_USERNAME": "me"}, Config(), None)
    assert [(c.source, c.username) for c in found] == [("env:BITBUCKET_APP_PASSWORD", "me")]


def test_credential_files_token_alone_app_password_with_its_user(tmp_path: Path) -> None:
    """$CREDENTIALS_DIRECTORY: bitbucket-token is used alone; bitbucket-app-password only with bitbucket-username."""
    from ci_sidecar.config import Config

    (tmp_path / "bitbucket-app-password").write_text("p")
    assert find_credentials("bitbucket", {}, Config(), str(tmp_path)) == []
    (tmp_path / "bitbucket-token").write_text("t")
    (tmp_path / "bitbucket-username").write_text("me")
    found = find_credentials("bitbucket", {}, Config(), str(tmp_path))
    assert [(c.source, c.username) for c in found] == [("credentials:bitbucket-token", None),
                                                       ("credentials:bitbucket-app-password", "me")]


# --- build statuses --------------------------------------------------------------------------------


async def test_set_build_status_upserts_by_key(fake: FakeBitbucket, envs: Envs) -> None:
    """pending → failure on one context: one status, FAILED, linking the pipeline; a repeat sends nothing."""
    provider = BitbucketProvider()
    env = envs()
    first = await provider.deliver(SetStatus(state="pending", context="lint"), env, {})
    done = await provider.deliver(SetStatus(state="failure", context="lint", description="3 errors"), env,
                                  first.remote or {})
    same = await provider.deliver(SetStatus(state="failure", context="lint", description="3 errors"), env,
                                  done.remote or {})
    await provider.aclose()
    assert same.action == "skipped" and len(fake.calls("POST")) == 2
    (status,) = fake.statuses(SHA).values()
    assert (status["key"], status["state"], status["description"]) == ("ci-sidecar-lint", "FAILED", "3 errors")


# --- sticky comments -------------------------------------------------------------------------------


async def test_a_sticky_comment_is_found_across_pages_and_edited(fake: FakeBitbucket, envs: Envs) -> None:
    """Our comment is the 25th of the PR (pages of 10 unless asked): found by its marker, edited with PUT, the
    deleted copy and somebody's inline quote left alone."""
    marker = comment_marker("summary")
    for i in range(24):
        fake.add_comment(PR, f"review {i}")
    ours = fake.add_comment(PR, f"{marker}\n\nold", user="ci-bot")
    fake.add_comment(PR, f"{marker}\n\ninline quote", inline=True)
    env = envs()
    out = await deliver(PostComment(body="**2 failed**", mode="upsert", key="summary"), env)
    assert (out.kind, out.action) == ("delivered", "updated"), out.message
    assert out.url and out.url.endswith(f"#comment-{ours['id']}")
    assert [c["content"]["raw"] for c in fake.comments(PR) if c["id"] == ours["id"]] == [
        f"{marker}\n\n**2 failed**"]
    assert fake.calls("POST") == []


@pytest.mark.parametrize("journaled", [True, False], ids=["retry", "restart"])
async def test_a_comment_whose_answer_was_lost_is_not_posted_twice(fake: FakeBitbucket, envs: Envs,
                                                                   journaled: bool) -> None:
    """The create's answer is lost; the retry (or a restarted daemon that journaled nothing of the attempt) finds
    it by marker and edits it; a duplicate left behind by someone is deleted."""
    fake.inject("lost", "POST", "/comments$")
    env = envs()
    lost = await deliver(PostComment(body="v1", mode="upsert", key="k"), env)
    assert lost.kind == "retry"
    fake.add_comment(PR, f"{comment_marker('k')}\n\nstray copy", user="ci-bot")
    again = await deliver(PostComment(body="v2", mode="upsert", key="k"), env, lost.remote if journaled else {})
    assert again.kind == "delivered", again.message
    assert [c["content"]["raw"] for c in fake.comments(PR)] == [f"{comment_marker('k')}\n\nv2"]


async def test_an_unkeyed_comment_stored_before_a_restart_is_not_posted_twice(fake: FakeBitbucket, envs: Envs) -> None:
    """A comment without a key: Bitbucket stored it, the answer was lost and the daemon restarted with nothing journaled
    about the attempt: the resumed write finds it by its write's hidden mark (one comment); another write of the
    same text still posts its own."""
    fake.inject("lost", "POST", "/comments$")
    await check_unkeyed_comment_once(deliver, envs, lambda: fake.comments(PR), "comment_id")


async def test_a_huge_comment_is_cut_to_32768_characters_with_a_link(fake: FakeBitbucket, envs: Envs) -> None:
    """A 100,000-character body fits 32,768 characters, ends with a link to the full report."""
    body = "\n".join(f"- line {i} " + "z" * 40 for i in range(2000))
    out = await deliver(PostComment(body=body, mode="upsert", key="k", full_report_url="https://ci.example/r"),
                        envs())
    assert out.kind == "delivered" and (out.remote or {}).get("truncated")
    (comment,) = fake.comments(PR)
    assert len(comment["content"]["raw"]) <= 32_768 and "https://ci.example/r" in comment["content"]["raw"]


async def test_a_comment_without_a_pull_request_is_refused(fake: FakeBitbucket, envs: Envs) -> None:
    """A branch pipeline has no BITBUCKET_PR_ID: refused, saying so."""
    out = await deliver(PostComment(body="x", mode="upsert", key="k"), envs(pr=None))
    assert out.kind == "refused" and "BITBUCKET_PR_ID" in out.message


# --- Downloads -------------------------------------------------------------------------------------


def artifact(tmp_path: Path, data: bytes = b"hello artifact\n", name: str = "logs/out.txt") -> UploadArtifact:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return UploadArtifact(run_id="run-0123456789abcdef", name=name, stored_path=str(path),
                          sha256=hashlib.sha256(data).hexdigest(), size=len(data), mime_type="text/plain")


async def test_an_artifact_goes_to_downloads_under_a_build_prefix_with_the_listed_url(
        fake: FakeBitbucket, envs: Envs, tmp_path: Path) -> None:
    """Multipart upload named <build>-<step>-<name>; the URL is the one the downloads list gives."""
    op = artifact(tmp_path)
    out = await deliver(op, envs())
    assert out.kind == "delivered", out.message
    name = "210-5678efab-logs_out.txt"
    assert fake.downloads() == {name: b"hello artifact\n"}
    assert out.url == f"https://{PUBLIC_HOST}/2.0/repositories/team/widgets/downloads/{name}"
    provider = BitbucketProvider()
    found = await provider.lookup_artifact(op, envs(), {})
    await provider.aclose()
    assert found is not None and found.url == out.url


async def test_a_large_artifact_is_streamed_byte_exact_with_a_content_length(fake: FakeBitbucket, envs: Envs,
                                                                             tmp_path: Path) -> None:
    """A multi-MiB artifact goes up as one multipart body streamed from the store (Content-Length, not chunked)
    and arrives byte for byte, with a name that needs no escaping kept as is."""
    data = bytes(range(256)) * (12 * 1024 + 3) + b"\r\n--tail"  # ~3 MiB, with CRLF and dashes in the content
    out = await deliver(artifact(tmp_path, data, name="big.bin"), envs())
    assert out.kind == "delivered", out.message
    assert fake.downloads() == {"210-5678efab-big.bin": data}
    (post,) = fake.calls("POST", "/downloads$")
    assert not post.chunked and post.headers["content-type"].startswith("multipart/form-data; boundary=")


@pytest.mark.parametrize("journaled", [True, False], ids=["retry", "restart"])
async def test_a_lost_upload_answer_replaces_the_same_file(fake: FakeBitbucket, envs: Envs, tmp_path: Path,
                                                           journaled: bool) -> None:
    """The upload's answer is lost: the retry (or a restarted daemon that journaled nothing of the attempt)
    uploads under the same name, Bitbucket replaces it: one file."""
    fake.inject("lost", "POST", "/downloads$")
    env = envs()
    lost = await deliver(artifact(tmp_path), env)
    assert lost.kind == "retry"
    again = await deliver(artifact(tmp_path), env, lost.remote if journaled else {})
    assert again.kind == "delivered" and len(fake.downloads()) == 1


async def test_an_artifact_not_listed_with_its_size_is_not_reported_delivered(fake: FakeBitbucket, envs: Envs,
                                                                              tmp_path: Path) -> None:
    """The list shows another file of that name (replaced meanwhile): no URL is claimed, the write retries."""
    op = artifact(tmp_path)
    env = envs()
    assert (await deliver(op, env)).kind == "delivered"
    fake.repo.downloads["210-5678efab-logs_out.txt"] = b"other"
    provider = BitbucketProvider()
    assert await provider.lookup_artifact(op, env, {}) is None
    await provider.aclose()


# --- doctor --check ----------------------------------------------------------------------------------


def _credential(fake: FakeBitbucket, secret: str, username: str | None = None) -> Any:
    from ci_sidecar.credentials import Credential, Secret

    source = "env:BITBUCKET_APP_PASSWORD" if username else "env:BITBUCKET_TOKEN"
    return Credential(provider="bitbucket", base_url=fake.api_url, source=source, fingerprint="f",
                      secret=Secret(secret), username=username)


async def _doctor(credential: Any, *, write: bool, pr: int | None = PR, env: dict[str, str] | None = None) -> Any:
    ci = CIContext(provider="bitbucket", sources={}, repository="team/widgets", commit_sha=SHA, pr_number=pr)
    job = {"BITBUCKET_WORKSPACE": "team", "BITBUCKET_REPO_SLUG": "widgets", **(env or {})}
    provider = BitbucketProvider()
    try:
        return await provider.probe_access(ci, job, credential, write=write, trust_env=False)
    finally:
        await provider.aclose()


async def test_doctor_reads_without_a_trace_and_proves_each_tier_with_write(fake: FakeBitbucket) -> None:
    """``doctor --check`` reads the commit's reports and writes nothing; ``--write`` tries every tier once and
    leaves only the visibly named build status (the report, comment and download are deleted again)."""
    quiet = await _doctor(_credential(fake, TOKEN), write=False)
    assert {i.name: i.result for i in quiet.items} == {
        "repository": "proven", "code insights report": "unproven", "build status": "unproven",
        "PR comment": "unproven", "downloads": "unproven"}
    assert quiet.ok and [r.method for r in fake.calls() if r.method != "GET"] == []
    loud = await _doctor(_credential(fake, USER and PASSWORD, username=USER), write=True)
    assert {i.name: i.result for i in loud.items} == {
        "repository": "proven", "code insights report": "proven", "build status": "proven", "PR comment": "proven",
        "downloads": "proven"}, loud.items
    assert fake.report(SHA, "ci-sidecar-doctor") is None and fake.comments(PR) == [] and fake.downloads() == {}
    assert fake.statuses(SHA)["ci-sidecar-doctor"]["name"] == "ci-sidecar doctor"
    assert PASSWORD not in repr(loud)


async def test_doctor_names_the_scope_a_read_only_token_lacks(fake: FakeBitbucket) -> None:
    """A read-only access token is proven to read, and each write fails naming the scope it needs."""
    report = await _doctor(_credential(fake, READ), write=True, pr=None)
    results = {i.name: (i.result, i.detail) for i in report.items}
    assert results["repository"][0] == "proven" and not report.ok
    assert results["code insights report"][0] == "failed" and "repository:write" in results["code insights report"][1]
    assert results["PR comment"][0] == "skipped"
    assert fake.statuses(SHA) == {} and fake.report(SHA, "ci-sidecar-doctor") is None


async def test_doctor_through_the_pipelines_proxy_and_without_any_credential(fake: FakeBitbucket,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside Pipelines without a token the auth proxy's Code Insights tier is proven and the rest is named as
    needing a token; outside Pipelines without one the check fails saying what to set."""
    from ci_sidecar.providers.bitbucket import doctor

    real = doctor.session_settings
    monkeypatch.setattr(doctor, "session_settings", lambda *a, **kw: {**real(*a, **kw), "proxy_url": fake.origin})
    proxied = await _doctor(None, write=True, env={"BITBUCKET_BUILD_NUMBER": "210"})
    results = {i.name: i.result for i in proxied.items}
    assert results == {"repository": "proven", "build status": "failed", "PR comment": "failed",
                       "downloads": "failed", "code insights report": "proven"}, proxied.items
    assert proxied.tier == "code insights report (pipelines auth proxy)"
    assert fake.report(SHA, "ci-sidecar-doctor") is None
    nothing = await _doctor(None, write=False)
    assert [(i.name, i.result) for i in nothing.items] == [("credential", "failed")]
    assert "BITBUCKET_TOKEN" in nothing.items[0].detail
