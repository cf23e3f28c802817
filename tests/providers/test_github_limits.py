"""GitHub's limits and names as the fake models them: check runs of matrix legs that would hide each other,
the 1,000-status cap, annotation paths GitHub cannot link, the job summary's 1 MiB, refusals a person can act on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from ci_sidecar.credentials import CredentialRef
from ci_sidecar.delivery.outbox import Outbox
from ci_sidecar.protocol.records import TestResult
from ci_sidecar.providers.base import PublishRun, SetStatus
from ci_sidecar.providers.github import GitHubProvider

from fakes.github import STEP_SUMMARY_LIMIT, FakeGitHub, runner_step_summary
from fakes.spec import OpenApiSpec

from .conftest import HEAD, EnvBuilder
from .test_github import failures, snapshot


@pytest.fixture
async def gh() -> GitHubProvider:
    provider = GitHubProvider()
    yield provider  # type: ignore[misc]
    await provider.aclose()


async def latest_check_runs(fake: FakeGitHub) -> list[dict]:
    """What GitHub lists for the commit by default (``filter=latest``): the PR's checks box."""
    async with httpx.AsyncClient(trust_env=False) as client:
        resp = await client.get(f"{fake.url}/repos/octo/repo/commits/{HEAD}/check-runs",
                                headers={"Authorization": "Bearer app-token"})
    return resp.json()["check_runs"]


async def test_matrix_legs_publish_check_runs_that_do_not_hide_each_other(
        gh: GitHubProvider, make_env: EnvBuilder, fake_github: FakeGitHub) -> None:
    """Two matrix legs of job ``unit`` publishing run ``tests``: both show, named like GitHub's job checks."""
    for os_name, results in (("ubuntu-latest", failures(1)), ("windows-latest", [TestResult(name="t", status="passed")])):
        make_env.results = results
        env = make_env(config={"github_job": "unit", "artifact_matrix": f'{{"os": "{os_name}"}}'})
        out = await gh.deliver(PublishRun(run=snapshot(results, final=True, run_id=os_name, name="tests"), final=True),
                               env, {})
        assert out.kind == "delivered", out
    shown = {c["name"]: c["conclusion"] for c in await latest_check_runs(fake_github)}
    assert shown == {"tests (unit, ubuntu-latest)": "failure", "tests (unit, windows-latest)": "success"}


async def test_an_exact_check_name_from_the_configuration_is_used_as_is(
        gh: GitHubProvider, make_env: EnvBuilder, fake_github: FakeGitHub) -> None:
    """``check_name`` set: the check run is called exactly that, whatever the job and matrix."""
    env = make_env(config={"check_name": "Unit tests", "github_job": "unit", "artifact_matrix": '{"os": "x"}'})
    out = await gh.deliver(PublishRun(run=snapshot([], final=True, name="tests"), final=True), env, {})
    assert out.kind == "delivered"
    assert [c["name"] for c in fake_github.check_runs()] == ["Unit tests"]


async def test_an_unchanged_status_is_not_posted_again(gh_spec: OpenApiSpec, tmp_path: Path) -> None:
    """Repeating a status does not spend GitHub's statuses per commit and context (the fake caps them at 3 here)."""
    with FakeGitHub(gh_spec, status_cap=3) as fake:
        env = EnvBuilder(fake.url)()
        remote: dict = {}
        gh = GitHubProvider()
        for _ in range(5):
            out = await gh.deliver(SetStatus(state="success", context="lint", description="ok"), env, remote)
            assert out.kind == "delivered", out
            remote = out.remote or {}
        changed = await gh.deliver(SetStatus(state="failure", context="lint"), env, remote)
        await gh.aclose()
        assert changed.kind == "delivered" and changed.action != "skipped"
        assert [s["state"] for s in fake.statuses(HEAD)] == ["failure", "success"]


async def test_the_fake_refuses_the_status_past_the_cap(gh_spec: OpenApiSpec) -> None:
    """The fake answers the status past the per-commit-and-context cap with GitHub's 422."""
    with FakeGitHub(gh_spec, status_cap=1) as fake:
        env = EnvBuilder(fake.url)()
        gh = GitHubProvider()
        assert (await gh.deliver(SetStatus(state="pending", context="c"), env, {})).kind == "delivered"
        out = await gh.deliver(SetStatus(state="success", context="c"), env, {})
        assert out.kind == "refused" and out.status == 422 and "maximum number of statuses" in out.message
        await gh.aclose()


async def test_annotation_paths_are_made_linkable_or_put_on_the_run(gh_spec: OpenApiSpec, tmp_path: Path) -> None:
    """Absolute, Windows and module paths become repository paths; an unknown one goes on the run, saying where."""
    checkout = tmp_path / "repo"
    (checkout / "pkg").mkdir(parents=True)
    (checkout / "pkg" / "test_c.py").write_text("")
    files = {"tests/test_a.py", "tests/test_b.py", "pkg/test_c.py"}
    results = [
        TestResult(name="a", status="failed", file=f"{checkout}/tests/test_a.py", line=3, message="boom a"),
        TestResult(name="b", status="failed", file="D:\\a\\repo\\repo\\tests\\test_b.py", line=4, message="boom b"),
        TestResult(name="c", status="failed", classname="pkg.test_c.TestC", line=5, message="boom c"),
        TestResult(name="d", status="failed", classname="vendor.generated.Thing", line=6, message="boom d"),
    ]
    with FakeGitHub(gh_spec, files=files) as fake:
        make_env = EnvBuilder(fake.url)
        make_env.results = results
        env = make_env(config={"github_workspace": str(checkout)})
        gh = GitHubProvider()
        out = await gh.deliver(PublishRun(run=snapshot(results, final=True), final=True), env, {})
        await gh.aclose()
        assert out.kind == "delivered", out
        (check,) = fake.check_runs()
        paths = [a["path"] for a in fake.annotations(check["id"])]
        unlinked = fake.unlinked_annotations(check["id"])
    assert paths == ["tests/test_a.py", "tests/test_b.py", "pkg/test_c.py", ".github"]
    assert len(unlinked) == 1 and unlinked[0]["message"] == "vendor.generated.Thing:6: boom d"


async def test_the_job_summary_keeps_the_file_under_1_mib(gh: GitHubProvider, make_env: EnvBuilder,
                                                         fake_github: FakeGitHub, tmp_path: Path) -> None:
    """900 KiB of the user's own summary, then a big report: the file stays uploadable, the user's text intact."""
    summary = tmp_path / "step_summary.md"
    own = "# Deploy notes\n" + "x" * (900 * 1024) + "\n"
    summary.write_text(own)
    make_env.results = failures(3000, details="trace line\n" * 20)
    env = make_env(token="readonly-token", config={"step_summary_path": str(summary)})
    out = await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, {})
    assert out.kind == "delivered", out
    uploaded = runner_step_summary(str(summary))
    assert uploaded is not None and uploaded.startswith(own) and len(uploaded) > len(own) + 1000
    assert summary.stat().st_size <= STEP_SUMMARY_LIMIT
    assert any("shortened" in line for line in make_env.logs)


async def test_a_full_job_summary_gets_nothing_more_and_says_so(gh: GitHubProvider, make_env: EnvBuilder,
                                                                fake_github: FakeGitHub, tmp_path: Path) -> None:
    """A summary file already at the limit is left alone (adding anything would lose all of it)."""
    summary = tmp_path / "step_summary.md"
    summary.write_text("y" * (STEP_SUMMARY_LIMIT - 100))
    make_env.results = failures(2)
    env = make_env(token="readonly-token", config={"step_summary_path": str(summary)})
    await gh.deliver(PublishRun(run=snapshot(make_env.results, final=True), final=True), env, {})
    assert runner_step_summary(str(summary)) is not None
    assert any("not added" in line for line in make_env.logs)


async def test_a_read_only_token_is_told_which_permission_to_grant(gh: GitHubProvider, make_env: EnvBuilder,
                                                                   fake_github: FakeGitHub) -> None:
    """403 "Resource not accessible by integration" names the permission and the workflow's ``permissions:``."""
    out = await gh.deliver(SetStatus(state="success", context="c"), make_env(token="readonly-token"), {})
    assert out.kind == "refused" and out.status == 403
    assert "Resource not accessible by integration" in out.message
    assert "`statuses: write`" in out.message and "permissions:" in out.message and "fork" in out.message


async def test_a_personal_token_on_check_runs_hears_about_github_apps(gh: GitHubProvider, make_env: EnvBuilder,
                                                                      fake_github: FakeGitHub) -> None:
    """GitHub's real text for a personal token writing a check run is explained (and the run still lands)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        resp = await client.post(f"{fake_github.url}/repos/octo/repo/check-runs",
                                 headers={"Authorization": "Bearer ghp_classicpat"},
                                 json={"name": "x", "head_sha": HEAD})
    assert resp.status_code == 403 and resp.json()["message"] == "You must authenticate via a GitHub App."
    env = make_env(token="ghp_classicpat", config={})
    out = await gh.deliver(PublishRun(run=snapshot([], final=True), final=True), env, {})
    assert out.kind == "delivered" and out.tier == "commit status"


async def test_an_unknown_repository_and_an_unknown_commit_are_explained(gh_spec: OpenApiSpec) -> None:
    """404 for a repository the token cannot see, 422 for a commit the repository does not have: what to check."""
    with FakeGitHub(gh_spec, repositories={"octo/repo"}, commits={HEAD}) as fake:
        make_env = EnvBuilder(fake.url)
        gh = GitHubProvider()
        missing = await gh.deliver(SetStatus(state="success", context="c"), make_env(repository="octo/private"), {})
        unpushed = await gh.deliver(SetStatus(state="success", context="c"), make_env(head_sha="b" * 40), {})
        await gh.aclose()
    assert missing.kind == "refused" and missing.status == 404
    assert "octo/private does not exist or this token cannot see it" in missing.message
    assert unpushed.kind == "refused" and unpushed.status == 422
    assert "No commit found for SHA" in unpushed.message and "does not have this commit" in unpushed.message


async def test_reading_a_check_run_back_again_is_a_conditional_request(
        gh: GitHubProvider, make_env: EnvBuilder, fake_github: FakeGitHub) -> None:
    """get_test_run_status polling an unchanged check run gets 304 (free of the rate limit) and the same answer."""
    env = make_env()
    run = snapshot([], final=True)
    out = await gh.deliver(PublishRun(run=run, final=True), env, {})
    first = await gh.read_run(run, env, out.remote or {})
    again = await gh.read_run(run, env, out.remote or {})
    assert first == again and first is not None and first["status"] == "completed"
    reads = fake_github.calls("GET", r"/check-runs/\d+$")
    assert [r.status for r in reads] == [200, 304] and reads[1].headers.get("if-none-match")


async def test_a_completion_goes_through_when_other_jobs_spent_the_repository_budget(
        gh_spec: OpenApiSpec) -> None:
    """Other jobs left 6 of the repository's 60 requests: live updates hold back, the completion still lands."""
    with FakeGitHub(gh_spec, rate_limit=60, budget_per="repository") as fake:
        fake.spend("octo/repo", 54)
        make_env = EnvBuilder(fake.url)
        gh = GitHubProvider()
        ref = CredentialRef(provider="github", base_url=None, source="env:GITHUB_TOKEN", fingerprint="fp")

        async def commit() -> None:
            pass

        outbox = Outbox({"github": gh}, append=lambda r: None, commit=commit,
                        env_for=lambda entry, token: make_env(token=token))
        outbox.credentials.add("fp", "app-token")
        async with trio.open_nursery() as nursery:
            await nursery.start(outbox.run)
            for i in range(16):  # eight seconds of results, a live update asked for with each batch
                make_env.results += failures(1) if i % 4 == 0 else [TestResult(name=f"t{i}", status="passed")]
                outbox.put(provider="github", target="run:r", op=PublishRun(run=snapshot(make_env.results, run_id="r")),
                           credential=ref, delay_s=2.0)
                await trio.sleep(0.5)
            final = outbox.put(provider="github", target="run:r", credential=ref, op=PublishRun(
                run=snapshot(make_env.results, run_id="r", final=True), final=True))
            with trio.fail_after(10):
                assert (await outbox.wait(final, 10)).state == "delivered"
            nursery.cancel_scope.cancel()
        await gh.aclose()
        (check,) = fake.check_runs()
        assert check["status"] == "completed"
        assert [r for r in fake.requests if r.status == 403] == []
