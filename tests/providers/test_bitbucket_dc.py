"""The Bitbucket provider against a fake Bitbucket Data Center/Server (validated against a description written from
Atlassian's public REST documentation): Code Insights report and annotations, build statuses (and the legacy
endpoint), sticky pull request comments through activities and versions, no Downloads, credentials, doctor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ci_sidecar.credentials import Credential, CredentialRef, Secret
from ci_sidecar.protocol.records import CIContext, Counts, TestResult
from ci_sidecar.providers.base import Outcome, PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ci_sidecar.providers.base import UploadArtifact
from ci_sidecar.providers.bitbucket import BitbucketProvider
from ci_sidecar.providers.bitbucket._api import data_center, ident
from ci_sidecar.providers.bitbucket.comments import comment_marker
from fakes.bitbucket_dc import FakeBitbucketDC
from .contract import check_unkeyed_comment_once

SHA = "ab" * 20
PR = 7
TOKEN, READ, USER, PASSWORD = "dc-http-token", "dc-read-token", "builder", "dc-password-1"
RID = ident("unit tests", limit=64)


@pytest.fixture
def fake() -> Iterator[FakeBitbucketDC]:
    with FakeBitbucketDC() as dc:
        yield dc
    assert len(dc.violations) == dc.expected_violations, dc.violations


class Envs:
    """ProviderEnvs of a pull-request build of PROJ/widgets against the fake; ``logs`` is what the user was told."""

    def __init__(self, fake: FakeBitbucketDC) -> None:
        self.fake = fake
        self.logs: list[str] = []
        self.results: list[TestResult] = []

    def __call__(self, token: str | None = TOKEN, *, username: str | None = None, pr: int | None = PR,
                 repository: str | None = None, **config: Any) -> ProviderEnv:
        ci = CIContext(provider="bitbucket", sources={}, repository=repository, commit_sha=SHA, branch="feature",
                       pr_number=pr, build_number="31")
        settings: dict[str, Any] = {"trust_env": False, "base_url": self.fake.rest_url, **config}
        if repository is None:
            settings.update(project_key="PROJ", repo_slug="widgets")
        cred = None
        if token:
            cred = CredentialRef(provider="bitbucket", base_url=self.fake.rest_url, source="env:BITBUCKET_TOKEN",
                                 fingerprint="f", username=username)
        env = ProviderEnv.build(ci, settings, cred, token, log=self.logs.append, read_results=self.read_results)
        env.base_url = self.fake.rest_url
        return env

    async def read_results(self, run_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        for result in self.results[start:end]:
            yield msgspec.msgpack.encode(result)


@pytest.fixture
def envs(fake: FakeBitbucketDC) -> Envs:
    return Envs(fake)


def failures(envs: Envs, n: int, passed: int = 0) -> None:
    envs.results += [TestResult(name=f"test_{i}", classname="pkg.mod", status="failed", file="src/mod.py", line=i + 1,
                                message=f"boom {i}", details=f"Traceback {i}") for i in range(n)]
    envs.results += [TestResult(name=f"ok_{i}", status="passed") for i in range(passed)]


def run_op(envs: Envs, *, final: bool, cancelled: bool = False) -> PublishRun:
    failed = sum(r.status == "failed" for r in envs.results)
    counts = Counts(total=len(envs.results), passed=len(envs.results) - failed, failed=failed, flaky=1)
    conclusion = ("cancelled" if cancelled else "failure" if failed else "success") if final else None
    run = RunSnapshot(id="run-0123456789abcdef", name="unit tests", status="finished" if final else "running",
                      start_time="2026-01-01T00:00:00Z", end_time="2026-01-01T00:01:30Z" if final else None,
                      counts=counts, output_dir="/nonexistent", conclusion=conclusion, results_end=len(envs.results),
                      coverage=81.5 if final else None, details_url="https://ci.example/job/31")
    return PublishRun(run=run, final=final)


async def deliver(op: Any, env: ProviderEnv, remote: dict[str, Any] | None = None) -> Outcome:
    provider = BitbucketProvider()
    try:
        return await provider.deliver(op, env, remote or {})
    finally:
        await provider.aclose()


def test_a_rest_base_url_is_data_center_and_its_rest_root_is_kept() -> None:
    """`…/rest`, `…/rest/api/1.0` and a context path all name one REST root; Cloud's API is not Data Center."""
    def root(url: str) -> str | None:
        ci = CIContext(provider="bitbucket", sources={})
        return data_center(ProviderEnv.build(ci, {"base_url": url}, None, None))

    assert root("https://bb.example.com/rest") == "https://bb.example.com/rest"
    assert root("https://bb.example.com/bitbucket/rest/api/1.0/") == "https://bb.example.com/bitbucket/rest"
    assert root("https://api.bitbucket.org/2.0") is None


# --- Code Insights and build statuses --------------------------------------------------------------


async def test_a_failing_run_is_a_fail_report_with_annotations_and_a_failed_build(fake: FakeBitbucketDC,
                                                                                   envs: Envs) -> None:
    """The report says FAIL with six data fields at most; each failure is an annotation at its file and line;
    the build status is FAILED with the test counts and links the run."""
    failures(envs, 150, passed=20)
    out = await deliver(run_op(envs, final=True), envs())
    assert out.kind == "delivered" and out.url == f"{fake.origin}/projects/PROJ/repos/widgets/commits/{SHA}"
    report = fake.report(SHA, RID)
    assert report is not None and report["result"] == "FAIL" and report["title"] == "unit tests"
    fields = {d["title"]: d for d in report["data"]}
    assert len(report["data"]) == 6 and fields["Failed"]["value"] == 150 and fields["Coverage"]["value"] == 81.5
    assert fields["Full report"]["value"] == {"linktext": "full report", "href": "https://ci.example/job/31"}
    notes = fake.annotations(SHA, RID)
    assert len(notes) == 150 and {n["severity"] for n in notes} == {"HIGH"}
    first = next(n for n in notes if n["externalId"] == f"{RID}-0001")
    assert (first["path"], first["line"]) == ("src/mod.py", 1) and first["message"].startswith("pkg.mod.test_0: boom 0")
    assert len(fake.calls("POST", "/annotations$")) == 2  # posts of 100
    (build,) = fake.builds(SHA).values()
    assert build["state"] == "FAILED" and build["testResults"] == {"successful": 20, "failed": 150, "skipped": 0}
    assert build["url"] == "https://ci.example/job/31" and build["ref"] == "refs/heads/feature"


async def test_a_running_run_has_no_result_yet_and_annotations_wait_for_the_end(fake: FakeBitbucketDC,
                                                                                  envs: Envs) -> None:
    """While running the report has no result (Data Center shows it as running) and the build is INPROGRESS;
    the annotations come with the final report."""
    failures(envs, 3)
    out = await deliver(run_op(envs, final=False), envs())
    assert out.kind == "delivered"
    assert "result" not in (fake.report(SHA, RID) or {}) and fake.annotations(SHA, RID) == []
    assert [b["state"] for b in fake.builds(SHA).values()] == ["INPROGRESS"]
    out = await deliver(run_op(envs, final=True), envs(), out.remote)
    assert (fake.report(SHA, RID) or {})["result"] == "FAIL" and len(fake.annotations(SHA, RID)) == 3
    assert [b["state"] for b in fake.builds(SHA).values()] == ["FAILED"]


@pytest.mark.parametrize("journaled", [True, False], ids=["retry", "restart"])
async def test_a_lost_annotation_answer_is_replaced_not_doubled(fake: FakeBitbucketDC, envs: Envs,
                                                                journaled: bool) -> None:
    """An annotation POST whose answer was lost is sent again after deleting its external ids — by the retry, or by
    a restarted daemon that journaled nothing of the attempt: no duplicates."""
    failures(envs, 120)
    fake.inject("lost", "POST", "/annotations$")
    first = await deliver(run_op(envs, final=True), envs())
    assert first.kind == "retry"
    second = await deliver(run_op(envs, final=True), envs(), first.remote if journaled else {})
    assert second.kind == "delivered"
    ids = [n["externalId"] for n in fake.annotations(SHA, RID)]
    assert len(ids) == len(set(ids)) == 120


async def test_past_1000_failures_the_report_counts_what_is_not_annotated(fake: FakeBitbucketDC,
                                                                          envs: Envs) -> None:
    """Data Center keeps 1,000 annotations per report: the rest are counted in the details and said once."""
    failures(envs, 1005)
    out = await deliver(run_op(envs, final=True), envs())
    assert out.kind == "delivered" and len(fake.annotations(SHA, RID)) == 1000
    assert "5 more failure(s) are not annotated" in (fake.report(SHA, RID) or {})["details"]
    assert sum("not annotated" in line for line in envs.logs) == 1


async def test_read_run_reads_the_report_back(fake: FakeBitbucketDC, envs: Envs) -> None:
    """get_test_run_status reads the report as the server shows it."""
    failures(envs, 2)
    out = await deliver(run_op(envs, final=True), envs())
    provider = BitbucketProvider()
    try:
        seen = await provider.read_run(run_op(envs, final=True).run, envs(), out.remote or {})
    finally:
        await provider.aclose()
    assert seen is not None and seen["conclusion"] == "failure" and seen["final"] and seen["annotations"] == 2


async def test_an_old_server_gets_the_legacy_build_status_and_cancelled_is_failed(envs: Envs) -> None:
    """A server without /api/latest builds (before 7.4) gets /build-status/1.0; it has no CANCELLED state."""
    with FakeBitbucketDC(legacy=True) as old:
        env = Envs(old)
        out = await deliver(run_op(env, final=True, cancelled=True), env())
        assert out.kind == "delivered"
        (build,) = old.builds(SHA).values()
        assert build["legacy"] and build["state"] == "FAILED" and build["description"].startswith("cancelled")
        assert any("/build-status/1.0" in line for line in env.logs)
        assert old.violations == []


async def test_set_build_status_upserts_by_key_and_links_the_commit(fake: FakeBitbucketDC, envs: Envs) -> None:
    """A context posted twice is one build status with the later state; without a URL it links the commit page."""
    for state in ("pending", "success"):
        out = await deliver(SetStatus(state=state, context="lint", description="no findings"), envs())
        assert out.kind == "delivered"
    assert {k: b["state"] for k, b in fake.builds(SHA).items()} == {"ci-sidecar-lint": "SUCCESSFUL"}
    assert fake.builds(SHA)["ci-sidecar-lint"]["url"].endswith(f"/projects/PROJ/repos/widgets/commits/{SHA}")


# --- comments ------------------------------------------------------------------------------------


async def test_a_sticky_comment_is_found_through_activity_pages_and_edited(fake: FakeBitbucketDC,
                                                                           envs: Envs) -> None:
    """The marked comment is found past several activity pages (inline and deleted ones skipped), edited in place
    with its version, and an older duplicate is deleted."""
    marker = comment_marker("coverage")
    older = fake.add_comment(PR, f"{marker}\n\nold duplicate", user="ci-bot")
    mine = fake.add_comment(PR, f"{marker}\n\nfirst", user="ci-bot")
    fake.add_comment(PR, f"{marker}\n\ninline, not ours", inline=True)
    for i in range(120):
        fake.add_comment(PR, f"review remark {i}")
    out = await deliver(PostComment(mode="upsert", body="second", key="coverage"), envs())
    assert out.kind == "delivered" and out.action == "updated"
    assert out.url == f"{fake.origin}/projects/PROJ/repos/widgets/pull-requests/{PR}/overview?commentId={mine['id']}"
    texts = {c["id"]: c["text"] for c in fake.comments(PR)}
    assert texts[mine["id"]] == f"{marker}\n\nsecond" and older["id"] not in texts
    assert len(fake.calls("GET", "/activities$")) >= 3  # pages of at most 50


async def test_a_stale_version_is_read_again_and_the_edit_lands(fake: FakeBitbucketDC, envs: Envs) -> None:
    """Someone edited our comment meanwhile: the 409 makes the provider re-read its version and edit again."""
    first = await deliver(PostComment(mode="upsert", body="one", key="coverage"), envs())
    cid = (first.remote or {})["comment_id"]
    fake.edit_behind_our_back(PR, cid, "edited by a person")
    out = await deliver(PostComment(mode="upsert", body="two", key="coverage"), envs(), first.remote)
    assert out.kind == "delivered" and out.action == "updated"
    assert [c["text"] for c in fake.comments(PR)] == [f"{comment_marker('coverage')}\n\ntwo"]


@pytest.mark.parametrize("journaled", [True, False], ids=["retry", "restart"])
async def test_a_lost_comment_answer_is_not_posted_twice(fake: FakeBitbucketDC, envs: Envs, journaled: bool) -> None:
    """A create whose answer was lost is found by its marker on the retry (or by a restarted daemon that journaled
    nothing of the attempt) and edited, not posted again."""
    fake.inject("lost", "POST", "/comments$")
    first = await deliver(PostComment(mode="upsert", body="hello", key="k"), envs())
    assert first.kind == "retry"
    second = await deliver(PostComment(mode="upsert", body="hello again", key="k"), envs(),
                           first.remote if journaled else {})
    assert second.kind == "delivered" and len(fake.comments(PR)) == 1


async def test_an_unkeyed_comment_stored_before_a_restart_is_not_posted_twice(fake: FakeBitbucketDC, envs: Envs) -> None:
    """A comment without a key: Bitbucket Data Center stored it, the answer was lost and the daemon restarted with nothing journaled
    about the attempt: the resumed write finds it by its write's hidden mark (one comment); another write of the
    same text still posts its own."""
    fake.inject("lost", "POST", "/comments$")
    await check_unkeyed_comment_once(deliver, envs, lambda: fake.comments(PR), "comment_id")


async def test_a_huge_comment_is_cut_to_32768_characters(fake: FakeBitbucketDC, envs: Envs) -> None:
    """A body past Data Center's 32,768 characters is cut at a line and links the full report."""
    body = "\n".join(f"| row {i} | {'x' * 60} |" for i in range(2000))
    op = PostComment(mode="upsert", body=body, key="big", full_report_url="https://ci.example/r")
    out = await deliver(op, envs())
    assert out.kind == "delivered" and (out.remote or {})["truncated"]
    (comment,) = fake.comments(PR)
    assert len(comment["text"]) <= 32768 and "https://ci.example/r" in comment["text"]


# --- artifacts, credentials, repository ------------------------------------------------------------


async def test_artifacts_say_data_center_has_no_downloads(fake: FakeBitbucketDC, envs: Envs, tmp_path: Path) -> None:
    """No Downloads API on Data Center: the artifact tier is none, an upload is unsupported with where they go."""
    assert BitbucketProvider().capabilities(envs()).artifacts.kind == "none"
    path = tmp_path / "a.txt"
    path.write_bytes(b"x")
    op = UploadArtifact(run_id="run-1", name="a.txt", stored_path=str(path), size=1, sha256="0" * 64,
                        mime_type="text/plain")
    out = await deliver(op, envs())
    assert out.kind == "unsupported" and "Downloads" in out.message and "[artifact_store]" in out.message
    assert out.url is None and fake.calls() == []


async def test_without_a_credential_nothing_is_pretended(fake: FakeBitbucketDC, envs: Envs) -> None:
    """No token: every tier is none and each write answers why, with nothing sent."""
    caps = BitbucketProvider().capabilities(envs(None))
    assert caps.test_run.kind == caps.build_status.kind == caps.pr_comment.kind == "none"
    out = await deliver(SetStatus(state="success", context="lint"), envs(None))
    assert out.kind == "unsupported" and "BITBUCKET_TOKEN" in out.message and fake.calls() == []


async def test_basic_auth_and_a_clone_url_repository(fake: FakeBitbucketDC, envs: Envs) -> None:
    """A user and password go as Basic; the repository may come from the clone URL's PROJ/widgets."""
    out = await deliver(SetStatus(state="success", context="lint"), envs(PASSWORD, username=USER,
                                                                         repository="PROJ/widgets"))
    assert out.kind == "delivered" and fake.calls()[0].headers["authorization"].startswith("Basic ")


async def test_a_read_only_token_is_refused_in_the_servers_words(fake: FakeBitbucketDC, envs: Envs) -> None:
    """A 403 is a refusal quoting Data Center's message, never the token."""
    out = await deliver(SetStatus(state="success", context="lint"), envs(READ))
    assert out.kind == "refused" and "not permitted" in out.message and READ not in out.message


# --- doctor --------------------------------------------------------------------------------------


def _credential(fake: FakeBitbucketDC, secret: str) -> Any:
    return Credential(provider="bitbucket", base_url=fake.rest_url, source="env:BITBUCKET_TOKEN", fingerprint="f",
                      secret=Secret(secret))


async def _doctor(fake: FakeBitbucketDC, secret: str | None, *, write: bool) -> Any:
    ci = CIContext(provider="bitbucket", sources={}, commit_sha=SHA, pr_number=PR, build_url="https://ci.example/31")
    env = {"BITBUCKET_PROJECT_KEY": "PROJ", "BITBUCKET_REPO_SLUG": "widgets",
           "CI_SIDECAR_BITBUCKET_BASE_URL": fake.rest_url}
    provider = BitbucketProvider()
    try:
        cred = _credential(fake, secret) if secret else None
        return await provider.probe_access(ci, env, cred, write=write, trust_env=False)
    finally:
        await provider.aclose()


async def test_doctor_reads_then_proves_each_tier_with_write(fake: FakeBitbucketDC) -> None:
    """Read-only: the repository is proven, writes unproven, nothing written; --write proves report, status and
    comment and cleans up what the server lets it; Downloads are said not to exist."""
    report = await _doctor(fake, TOKEN, write=False)
    assert [(i.name, i.result) for i in report.items] == [
        ("repository", "proven"), ("code insights report", "unproven"), ("build status", "unproven"),
        ("PR comment", "unproven"), ("downloads", "skipped")]
    assert all(r.method == "GET" for r in fake.calls())
    report = await _doctor(fake, TOKEN, write=True)
    assert {i.name: i.result for i in report.items} == {
        "repository": "proven", "code insights report": "proven", "build status": "proven", "PR comment": "proven",
        "downloads": "skipped"}
    assert fake.report(SHA, "ci-sidecar-doctor") is None and fake.comments(PR) == []
    assert (await _doctor(fake, None, write=False)).items[0].name == "credential"


async def test_doctor_proves_the_build_status_through_the_legacy_api_on_an_old_server() -> None:
    """A server before 7.4 has no /api/latest builds: doctor --write proves the tier through /build-status/1.0."""
    with FakeBitbucketDC(legacy=True) as old:
        report = await _doctor(old, TOKEN, write=True)
        item = next(i for i in report.items if i.name == "build status")
        assert item.result == "proven" and "/build-status/1.0" in item.detail
        assert old.builds(SHA)["ci-sidecar-doctor"]["legacy"] and old.violations == []
