"""The GitHub provider against the fake GitHub (a real HTTP server validating every request against the spec)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from ci_sidecar.config import Config
from ci_sidecar.protocol.records import CIContext, Counts, TestResult
from ci_sidecar.providers import REGISTRY, make_provider
from ci_sidecar.providers.base import PostComment, PublishRun, RunSnapshot, SetStatus, UploadArtifact
from ci_sidecar.providers.github import GitHubProvider, comment_marker
from ci_sidecar.service.session_context import SessionContext

from fakes.github import FakeGitHub

from .conftest import HEAD, EnvBuilder
from .contract import check_unkeyed_comment_once


def snapshot(results: list[TestResult], *, final: bool = False, run_id: str = "run-1", name: str = "unit tests",
             details_url: str | None = "https://ci.example/report/run-1") -> RunSnapshot:
    c = Counts(total=len(results))
    for r in results:
        setattr(c, {"passed": "passed", "failed": "failed", "error": "errors", "skipped": "skipped"}[r.status],
                getattr(c, {"passed": "passed", "failed": "failed", "error": "errors", "skipped": "skipped"}[r.status])
                + 1)
    return RunSnapshot(
        id=run_id, name=name, status="finished" if final else "running",
        conclusion=("failure" if c.failed or c.errors else "success") if final else None,
        start_time="2025-01-02T03:04:05.123456+00:00", end_time="2025-01-02T03:06:05Z" if final else None,
        counts=c, output_dir="/tmp/unused", results_end=len(results), details_url=details_url,
    )


def failures(n: int, **kw: Any) -> list[TestResult]:
    return [TestResult(name=f"test_{i}", classname="pkg.mod", status="failed", file=f"tests/test_{i % 7}.py",
                       line=10 + i, message=f"assert {i} == 0", details=kw.get("details", f"trace {i}"))
            for i in range(n)]


@pytest.fixture
async def gh() -> Any:
    provider = GitHubProvider()
    yield provider
    await provider.aclose()


async def test_registered() -> None:
    assert "github" in REGISTRY and isinstance(make_provider("github"), GitHubProvider)


async def test_fake_rejects_a_spec_invalid_body(fake_github: FakeGitHub) -> None:
    """The fake is not a rubber stamp: a body the spec forbids gets 422 and is recorded."""
    fake_github.expect_violations(2)
    async with httpx.AsyncClient(trust_env=False) as client:
        headers = {"Authorization": "Bearer app-token"}
        bad = await client.post(f"{fake_github.url}/repos/octo/repo/check-runs", headers=headers,
                                json={"name": "x", "head_sha": HEAD, "status": "finished"})
        no_summary = await client.patch(f"{fake_github.url}/repos/octo/repo/check-runs/1", headers=headers,
                                        json={"status": "completed", "conclusion": "success", "output": {"title": "t"}})
    assert bad.status_code == 422 and "status" in bad.json()["message"]
    assert no_summary.status_code == 422 and "summary" in no_summary.json()["message"]
    assert fake_github.check_runs() == []


async def test_bad_token_is_refused_with_githubs_message(gh: GitHubProvider, make_env: EnvBuilder) -> None:
    out = await gh.deliver(SetStatus(state="success", context="ci"), make_env(token="nope-secret"), {})
    assert out.kind == "refused" and out.status == 401 and "Bad credentials" in out.message


async def test_check_run_lifecycle_on_head_sha(gh: GitHubProvider, make_env: EnvBuilder,
                                               fake_github: FakeGitHub) -> None:
    env = make_env()
    make_env.results = [TestResult(name="ok", status="passed"), *failures(2)]
    first = await gh.deliver(PublishRun(run=snapshot(make_env.results)), env, {})
    assert first.kind == "delivered" and first.tier == "check run", first
    (check,) = fake_github.check_runs()
    assert check["status"] == "in_progress" and check["head_sha"] == HEAD and check["external_id"] == "run-1"
    assert "Tests running" in check["output"]["summary"]
    assert check["started_at"] == "2025-01-02T03:04:05Z"
    assert first.url == check["html_url"]

    done = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, first.remote)
    assert done.kind == "delivered"
    (check,) = fake_github.check_runs()
    assert check["status"] == "completed" and check["conclusion"] == "failure"
    assert "Tests failed" in check["output"]["summary"] and check["output"]["title"] == "1 passed, 2 failed, 0 skipped"
    assert len(fake_github.annotations(check["id"])) == 2  # sent once, not again on the final update
    assert len(fake_github.calls("POST", "check-runs")) == 1


async def test_120_failures_become_annotations_in_three_patches(gh: GitHubProvider, make_env: EnvBuilder,
                                                                fake_github: FakeGitHub) -> None:
    env = make_env()
    started = await gh.deliver(PublishRun(run=snapshot([])), env, {})
    make_env.results = failures(120)
    done = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, started.remote)
    assert done.kind == "delivered", done
    patches = fake_github.calls("PATCH", "check-runs")
    assert [len(p.body["output"].get("annotations", [])) for p in patches] == [50, 50, 20]
    assert [p.body["status"] for p in patches] == ["in_progress", "in_progress", "completed"]
    (check,) = fake_github.check_runs()
    anns = fake_github.annotations(check["id"])
    assert len(anns) == 120 and check["conclusion"] == "failure"
    assert anns[5]["path"] == "tests/test_5.py" and anns[5]["start_line"] == 15
    assert anns[5]["annotation_level"] == "failure" and anns[5]["message"] == "assert 5 == 0"
    assert done.remote["annotations_sent"] == 120


async def test_annotations_are_capped_with_a_note(gh: GitHubProvider, make_env: EnvBuilder,
                                                  fake_github: FakeGitHub) -> None:
    env = make_env(config={"max_annotations": 60})
    make_env.results = failures(80)
    out = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, {})
    (check,) = fake_github.check_runs()
    assert len(fake_github.annotations(check["id"])) == 60 and out.remote["annotations_capped"] is True
    assert "Showing 60 of 80 failure annotations" in check["output"]["summary"]


async def test_lost_create_is_found_by_external_id_not_duplicated(gh: GitHubProvider, make_env: EnvBuilder,
                                                                  fake_github: FakeGitHub) -> None:
    env = make_env()
    make_env.results = failures(30)
    fake_github.inject("lost", "POST", r"/check-runs$")
    lost = await gh.deliver(PublishRun(run=snapshot(make_env.results)), env, {})
    assert lost.kind == "retry" and "check_run_id" not in (lost.remote or {})
    assert len(fake_github.check_runs()) == 1  # GitHub made it; we never heard back

    again = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env,
                             lost.remote or {})
    assert again.kind == "delivered", again
    (check,) = fake_github.check_runs()
    assert check["status"] == "completed" and again.remote["check_run_id"] == check["id"]
    assert len(fake_github.annotations(check["id"])) == 30  # not 60
    assert any("found check run" in m for m in make_env.logs)


async def test_a_check_run_another_daemon_made_is_found_under_its_name(gh: GitHubProvider, make_env: EnvBuilder,
                                                                      fake_github: FakeGitHub) -> None:
    """A sharded group's publisher taking over from one killed before it recorded its check run finds that check
    run by its external id although the dead one named it after its own matrix values, and completes it under
    that name with each annotation once."""
    make_env.results = failures(30)
    theirs, mine = (make_env(config={"artifact_matrix": f'{{"shard": "{n}"}}'}) for n in (0, 1))
    fake_github.inject("lost", "POST", r"/check-runs$")
    lost = await gh.deliver(PublishRun(run=snapshot(make_env.results)), theirs, {})
    assert lost.kind == "retry"
    (made,) = fake_github.check_runs()
    again = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), mine,
                             gh.unrecorded({}))
    assert again.kind == "delivered", again
    (check,) = fake_github.check_runs()
    assert check["id"] == made["id"] and check["name"] == made["name"] == "unit tests (0)"
    assert check["status"] == "completed" and len(fake_github.annotations(check["id"])) == 30


async def test_lost_patch_does_not_duplicate_annotations(gh: GitHubProvider, make_env: EnvBuilder,
                                                         fake_github: FakeGitHub) -> None:
    env = make_env()
    started = await gh.deliver(PublishRun(run=snapshot([])), env, {})
    make_env.results = failures(70)
    fake_github.inject("lost", "PATCH", r"/check-runs/\d+$")
    lost = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, started.remote)
    assert lost.kind == "retry" and lost.remote["inflight"] is True
    done = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, lost.remote)
    assert done.kind == "delivered"
    (check,) = fake_github.check_runs()
    assert len(fake_github.annotations(check["id"])) == 70


async def test_annotations_stored_before_a_restart_are_counted_not_sent_again(gh: GitHubProvider,
                                                                             make_env: EnvBuilder,
                                                                             fake_github: FakeGitHub) -> None:
    """GitHub stored a PATCH's annotations, the answer was lost and the daemon restarted with only the state from
    before that attempt: the resumed write reads the check run's annotation count and sends none twice. A write's
    first attempt reads nothing back."""
    env = make_env()
    started = await gh.deliver(PublishRun(run=snapshot([])), env, {})
    make_env.results = failures(70)
    fake_github.inject("lost", "PATCH", r"/check-runs/\d+$")
    first = make_env()
    first.never_sent = True  # the write's first attempt in the daemon that took it
    op = PublishRun(run=snapshot(make_env.results, final=True), final=True)
    assert (await gh.deliver(op, first, started.remote)).kind == "retry"
    assert fake_github.calls("GET", r"/check-runs/\d+$") == []
    done = await gh.deliver(op, make_env(), started.remote)  # the journal never heard of the lost attempt
    assert done.kind == "delivered", done.message
    (check,) = fake_github.check_runs()
    assert len(fake_github.annotations(check["id"])) == 70 and check["status"] == "completed"


async def test_summary_fits_65535_bytes_and_links_the_full_report(gh: GitHubProvider, make_env: EnvBuilder,
                                                                  fake_github: FakeGitHub) -> None:
    env = make_env()
    make_env.results = [TestResult(name=f"test_{i}", status="failed", message="ü" * 150, details="frame\n" * 50)
                        for i in range(600)]
    out = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, {})
    assert out.kind == "delivered", out  # the fake answers 422 beyond 65535 bytes
    (check,) = fake_github.check_runs()
    summary = check["output"]["summary"]
    assert 60000 < len(summary.encode()) <= 65535
    assert "Truncated to fit; see the [full report](https://ci.example/report/run-1)" in summary
    assert summary.count("```") % 2 == 0  # no code fence left open
    assert len(fake_github.annotations(check["id"])) == 600


async def test_characters_above_u_ffff_are_made_safe(gh: GitHubProvider, make_env: EnvBuilder,
                                                     fake_github: FakeGitHub) -> None:
    env = make_env()
    make_env.results = [TestResult(name="test_emoji_😀", status="error", message="boom 🔥", file="t.py", line=1)]
    out = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, {})
    assert out.kind == "delivered", out  # the fake answers 422 for astral characters in check output
    (check,) = fake_github.check_runs()
    (ann,) = fake_github.annotations(check["id"])
    assert ann["message"] == "boom \\U0001F525" and "\\U0001F600" in ann["title"]


async def test_classic_pat_falls_back_to_commit_status_and_remembers(gh: GitHubProvider, make_env: EnvBuilder,
                                                                     fake_github: FakeGitHub) -> None:
    env = make_env(token="ghp_classicpat")
    make_env.results = failures(3)
    first = await gh.deliver(PublishRun(run=snapshot(make_env.results)), env, {})
    assert first.kind == "delivered" and first.tier == "commit status" and first.remote["tier"] == "commit_status"
    assert fake_github.check_runs() == []
    (status,) = fake_github.statuses(HEAD)
    assert status["state"] == "pending" and status["context"] == "unit tests" and len(status["description"]) <= 140
    posts_before = len(fake_github.calls("POST", "check-runs"))
    done = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, first.remote)
    assert done.tier == "commit status"
    assert len(fake_github.calls("POST", "check-runs")) == posts_before  # straight to the fallback
    assert fake_github.statuses(HEAD)[0]["state"] == "failure"
    assert gh.capabilities(env).test_run.via == "commit status"
    assert any("commit statuses instead" in m for m in make_env.logs)


async def test_read_only_token_ends_in_the_job_summary(gh: GitHubProvider, make_env: EnvBuilder,
                                                       fake_github: FakeGitHub, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    env = make_env(token="readonly-token", config={"step_summary_path": str(summary)})
    make_env.results = failures(2)
    running = await gh.deliver(PublishRun(run=snapshot(make_env.results)), env, {})
    assert running.kind == "delivered" and running.tier == "job summary" and running.action == "deferred"
    assert running.remote["tier"] == "job_summary" and not summary.exists()
    calls = len(fake_github.requests)
    done = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, running.remote)
    assert done.kind == "delivered" and done.tier == "job summary"
    assert len(fake_github.requests) == calls  # the API is not tried again
    text = summary.read_text()
    assert "Tests failed" in text and "test\\_1" in text


async def test_job_summary_is_appended_once_next_to_the_check_run(gh: GitHubProvider, make_env: EnvBuilder,
                                                                  fake_github: FakeGitHub, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    env = make_env(config={"step_summary_path": str(summary)})
    make_env.results = failures(1)
    fake_github.inject("503", "POST", "check-runs")
    run = snapshot(make_env.results, final=True)
    failed = await gh.deliver(PublishRun(run=run, final=True), env, {})
    assert failed.kind == "retry" and failed.status == 503
    done = await gh.deliver(PublishRun(run=run, final=True), env, failed.remote)
    assert done.tier == "check run"
    text = summary.read_text()
    assert text.startswith("earlier step\n") and text.count("Tests failed") == 1


async def test_set_status_with_context(gh: GitHubProvider, make_env: EnvBuilder, fake_github: FakeGitHub) -> None:
    env = make_env()
    out = await gh.deliver(SetStatus(state="running", context="build/lint", description="x" * 300,
                                     target_url="https://ci.example/1"), env, {})
    assert out.kind == "delivered" and out.tier == "commit status"
    (status,) = fake_github.statuses(HEAD)
    assert status["state"] == "pending" and status["context"] == "build/lint"
    assert len(status["description"]) == 140 and status["target_url"] == "https://ci.example/1"
    await gh.deliver(SetStatus(state="success", context="build/lint", sha="b" * 40), env, {})
    assert fake_github.statuses("b" * 40)[0]["state"] == "success"


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [("429", 429, 7.0), ("502", 502, None), ("503", 503, None), ("secondary", 403, 7.0),
     ("secondary-no-header", 403, 60.0)],
)
async def test_transient_answers_are_retries(gh: GitHubProvider, make_env: EnvBuilder, fake_github: FakeGitHub,
                                             kind: str, status: int, retry_after: float | None) -> None:
    fake_github.inject(kind, "POST", "statuses")
    out = await gh.deliver(SetStatus(state="success", context="ci"), make_env(), {})
    assert out.kind == "retry" and out.status == status and out.retry_after == retry_after, out


async def test_an_unkeyed_comment_stored_before_a_restart_is_not_posted_twice(gh: GitHubProvider, make_env: EnvBuilder,
                                                                 fake_github: FakeGitHub) -> None:
    """A comment without a key: GitHub stored it, the answer was lost and the daemon restarted with nothing journaled
    about the attempt: the resumed write finds it by its write's hidden mark (one comment); another write of the
    same text still posts its own."""
    fake_github.inject("lost", "POST", "comments$")
    await check_unkeyed_comment_once(lambda op, env: gh.deliver(op, env, {}), make_env, lambda: fake_github.comments(7), "comment_id")


async def test_primary_limit_waits_for_reset(gh: GitHubProvider, make_env: EnvBuilder,
                                             fake_github: FakeGitHub) -> None:
    fake_github.inject("primary", "POST", "comments", retry_after=120)
    out = await gh.deliver(PostComment(body="hi", mode="create"), make_env(), {})
    assert out.kind == "retry" and 100 <= (out.retry_after or 0) <= 121
    assert any("rate limit" in m for m in make_env.logs)
    assert gh.status()["rate_limit"]["limit"] == 5000


async def test_connection_reset_is_a_retry(gh: GitHubProvider, make_env: EnvBuilder, fake_github: FakeGitHub) -> None:
    fake_github.inject("reset", "POST", "statuses")
    out = await gh.deliver(SetStatus(state="success", context="ci"), make_env(), {})
    assert out.kind == "retry" and "connection" in out.message
    assert fake_github.statuses(HEAD) == []


async def test_sticky_comment_found_across_pages_and_edited(gh: GitHubProvider, make_env: EnvBuilder,
                                                            fake_github: FakeGitHub) -> None:
    marker = comment_marker("results")
    for i in range(230):
        fake_github.add_comment(7, f"chatter {i}")
    mine = fake_github.add_comment(7, f"{marker}\nold body", login="github-actions[bot]")
    for i in range(20):
        fake_github.add_comment(7, f"more {i}")
    out = await gh.deliver(PostComment(body="new body", mode="upsert", key="results"), make_env(), {})
    assert out.kind == "delivered" and out.action == "updated" and out.remote["comment_id"] == mine["id"]
    pages = fake_github.calls("GET", "/comments$")
    assert len(pages) == 3 and all(p.query["per_page"] == ["100"] for p in pages)
    (body,) = [c["body"] for c in fake_github.comments(7) if c["id"] == mine["id"]]
    assert body == f"{marker}\nnew body"
    # the next update goes straight to the known comment: one call
    before = len(fake_github.requests)
    again = await gh.deliver(PostComment(body="newer", mode="upsert", key="results"), make_env(), out.remote)
    assert again.action == "updated" and len(fake_github.requests) == before + 1


async def test_duplicate_sticky_comments_are_cleaned(gh: GitHubProvider, make_env: EnvBuilder,
                                                     fake_github: FakeGitHub) -> None:
    marker = comment_marker("k")
    old = [fake_github.add_comment(7, f"{marker}\nv{i}") for i in range(3)]
    quoted = fake_github.add_comment(7, f"> {marker}\nsomeone quoting us")
    out = await gh.deliver(PostComment(body="v4", mode="upsert", key="k"), make_env(), {})
    assert out.action == "updated" and out.remote["comment_id"] == old[-1]["id"]
    remaining = {c["id"]: c["body"] for c in fake_github.comments(7)}
    assert remaining == {old[-1]["id"]: f"{marker}\nv4", quoted["id"]: quoted["body"]}
    assert len(fake_github.calls("DELETE")) == 2


async def test_comment_modes(gh: GitHubProvider, make_env: EnvBuilder, fake_github: FakeGitHub) -> None:
    env = make_env()
    created = await gh.deliver(PostComment(body="one", mode="upsert", key="m"), env, {})
    assert created.action == "created" and created.url and "issuecomment" in created.url
    skipped = await gh.deliver(PostComment(body="two", mode="create", key="m"), env, {})
    assert skipped.action == "skipped"
    replaced = await gh.deliver(PostComment(body="three", mode="replace", key="m"), env, created.remote)
    assert replaced.action == "created" and replaced.remote["comment_id"] != created.remote["comment_id"]
    assert [c["body"].split("\n", 1)[1] for c in fake_github.comments(7)] == ["three"]
    deleted = await gh.deliver(PostComment(body="", mode="delete", key="m"), env, replaced.remote)
    assert deleted.action == "deleted" and fake_github.comments(7) == []
    nothing = await gh.deliver(PostComment(body="", mode="delete", key="m"), env, {})
    assert nothing.action == "skipped"
    plain = await gh.deliver(PostComment(body="unkeyed", mode="create", pr_number=9), env, {})
    assert plain.action == "created" and fake_github.comments(9)[0]["body"] == "unkeyed"


async def test_oversized_comment_is_cut_with_an_overflow_link(gh: GitHubProvider, make_env: EnvBuilder,
                                                              fake_github: FakeGitHub) -> None:
    body = "## Report\n\n" + "\n".join(f"- line {i} " + "é" * 60 for i in range(2000))
    out = await gh.deliver(PostComment(body=body, mode="upsert", key="big",
                                       full_report_url="https://ci.example/full.html"), make_env(), {})
    assert out.kind == "delivered" and out.remote["truncated"] is True
    (comment,) = fake_github.comments(7)
    assert len(comment["body"]) <= 65536 and "https://ci.example/full.html" in comment["body"]


async def test_hostile_key_cannot_close_the_marker() -> None:
    marker = comment_marker("x --> <script>")
    assert marker.count("-->") == 1 and marker.endswith("-->")


async def test_enterprise_api_url_from_the_job(gh_spec: Any, make_env: EnvBuilder) -> None:
    """A GitHub Enterprise job's ``GITHUB_API_URL`` reaches the provider through the session's settings."""
    with FakeGitHub(gh_spec, prefix="/api/v3") as ghes:
        provider = GitHubProvider()
        session = SessionContext(session_id="s", ci=CIContext(provider="github", sources={}), config=Config(),
                                 cwd="/", output_root="/tmp", env={"GITHUB_API_URL": ghes.url})
        env = make_env(base_url=None, config=session.provider_config("github"))
        out = await provider.deliver(SetStatus(state="success", context="ci"), env, {})
        await provider.aclose()
        assert out.kind == "delivered", out
        assert ghes.statuses(HEAD)[0]["state"] == "success" and ghes.violations == []


async def test_capabilities_and_artifacts(gh: GitHubProvider, make_env: EnvBuilder) -> None:
    caps = gh.capabilities(make_env(token="ghs_installation"))
    assert caps.test_run.kind == "native" and caps.test_run.via == "check run"
    assert caps.limits["comment_bytes"] == 65536 and caps.limits["summary_bytes"] == 65535
    assert caps.limits["annotations_per_request"] == 50
    assert gh.capabilities(make_env(token=None)).pr_comment.kind == "none"
    out = await gh.deliver(UploadArtifact(run_id="r", name="a.txt", stored_path="/nonexistent", sha256="0" * 64,
                                          size=1, mime_type="text/plain"), make_env(), {})
    assert out.kind == "unsupported" and out.tier == "none" and "ACTIONS_RUNTIME_TOKEN" in out.message


async def test_missing_pr_number_is_refused(gh: GitHubProvider, make_env: EnvBuilder) -> None:
    out = await gh.deliver(PostComment(body="x", mode="upsert", key="k"), make_env(pr_number=None), {})
    assert out.kind == "refused" and "pull request" in out.message


async def _until_delivered(gh: GitHubProvider, op: Any, env: Any, remote: dict[str, Any]) -> Any:
    """What the outbox does, minus the waiting: retry with the remote state of the last attempt."""
    for _ in range(40):
        out = await gh.deliver(op, env, remote)
        remote = out.remote if out.remote is not None else remote
        if out.kind != "retry":
            return out
    raise AssertionError("never delivered")


async def _scenario(fake: FakeGitHub, make_env: EnvBuilder) -> dict[str, Any]:
    gh = GitHubProvider()
    env = make_env(base_url=fake.url)
    make_env.results = failures(40)
    running = await _until_delivered(gh, PublishRun(run=snapshot(make_env.results)), env, {})
    make_env.results = failures(130)
    done = await _until_delivered(gh, PublishRun(run=snapshot(make_env.results, final=True), final=True), env,
                                  running.remote)
    c1 = await _until_delivered(gh, PostComment(body="first", mode="upsert", key="report"), env, {})
    await _until_delivered(gh, PostComment(body="second", mode="upsert", key="report"), env, c1.remote)
    await _until_delivered(gh, SetStatus(state="failure", context="ci/tests"), env, {})
    await gh.aclose()
    assert done.kind == "delivered"
    (check,) = fake.check_runs()
    return {
        "check": (check["name"], check["head_sha"], check["status"], check["conclusion"],
                  len(fake.annotations(check["id"]))),
        "comments": [c["body"] for c in fake.comments(7)],
        "status": fake.statuses(HEAD)[0]["state"],
    }


async def test_same_result_under_30_percent_faults(gh_spec: Any, make_env: EnvBuilder) -> None:
    with FakeGitHub(gh_spec) as clean:
        expected = await _scenario(clean, make_env)
    dropped = refused = 0
    for seed in (1, 2, 3, 4):
        with FakeGitHub(gh_spec, fault_rate=0.3, seed=seed) as faulty:
            assert await _scenario(faulty, make_env) == expected, seed
            assert faulty.violations == []
            dropped += len([r for r in faulty.requests if r.status == -1 and r.method != "GET"])
            refused += len([r for r in faulty.requests if r.status in (403, 429, 502, 503)])
    assert dropped >= 3 and refused >= 10, (dropped, refused)  # the faults really happened
    assert expected["check"] == ("unit tests", HEAD, "completed", "failure", 130)
