"""``ci-sidecar doctor --check``: what it proves, what it leaves behind (nothing, unless --write), against the fakes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_sidecar.env_cmd import run_doctor
from ci_sidecar.cli import build_parser
from ci_sidecar.providers.base import CheckReport
from ci_sidecar.providers.github.doctor import check_github
from ci_sidecar.protocol.records import CIContext

from fakes.github_artifacts import FakeGitHubArtifacts, FakeResults, extended_spec_cached, make_runtime_token
from fakes.spec import OpenApiSpec
from helpers import scrubbed_env

HEAD = "a" * 40


@pytest.fixture
def results() -> Iterator[FakeResults]:
    with FakeResults() as fake:
        yield fake
    assert fake.violations == []


@pytest.fixture
def fake(gh_spec: OpenApiSpec, results: FakeResults) -> Iterator[FakeGitHubArtifacts]:
    with FakeGitHubArtifacts(extended_spec_cached(gh_spec), results) as gh:
        yield gh
    assert len(gh.violations) == gh.expected_violations, gh.violations


def ci(**kw: object) -> CIContext:
    return CIContext(provider="github", sources={}, repository="octo/repo", head_sha=HEAD, commit_sha="m" * 40,
                     pr_number=7, build_id="4242", **kw)  # type: ignore[arg-type]


def results_of(report: CheckReport) -> dict[str, str]:
    return {i.name: i.result for i in report.items}


async def run(fake: FakeGitHubArtifacts, token: str | None, *, write: bool = False,
              env: dict[str, str] | None = None) -> CheckReport:
    return await check_github(ci(), env or {}, token, base_url=fake.url, write=write, trust_env=False)


async def test_read_only_check_proves_what_it_can_and_writes_nothing(fake: FakeGitHubArtifacts) -> None:
    report = await run(fake, "app-token")
    assert report.tier == "check run" and report.ok
    assert results_of(report) == {"token": "proven", "repository": "proven", "check run": "unproven",
                                  "PR comment": "unproven", "artifact URL lookup": "proven"}
    assert "--write" in next(i.detail for i in report.items if i.name == "check run")
    assert [r.method for r in fake.requests if r.method != "GET"] == []


async def test_write_creates_and_completes_a_named_check_run(fake: FakeGitHubArtifacts) -> None:
    report = await run(fake, "app-token", write=True)
    assert results_of(report)["check run"] == "proven" and results_of(report)["PR comment"] == "proven"
    [check] = fake.check_runs()
    assert (check["name"], check["status"], check["conclusion"], check["head_sha"]) == (
        "ci-sidecar doctor", "completed", "neutral", HEAD)
    assert fake.comments(7) == []  # created and deleted again
    assert len(fake.calls("DELETE", r"/issues/comments/")) == 1


async def test_read_only_token_fails_the_write_proof(fake: FakeGitHubArtifacts) -> None:
    report = await run(fake, "readonly-token", write=True)
    assert not report.ok
    assert results_of(report)["check run"] == "failed" and results_of(report)["PR comment"] == "failed"
    assert "not accessible" in next(i.detail for i in report.items if i.name == "check run").lower()
    assert fake.check_runs() == []


async def test_classic_pat_is_proven_from_scopes_and_push_access(fake: FakeGitHubArtifacts) -> None:
    report = await run(fake, "ghp_classicpat")
    assert report.tier == "commit status"
    assert results_of(report)["commit status"] == "proven" and results_of(report)["PR comment"] == "proven"
    assert "repo" in next(i.detail for i in report.items if i.name == "token")
    assert [r for r in fake.requests if r.method != "GET"] == []
    fake.pat_scopes = "read:org"
    report = await run(fake, "ghp_classicpat")
    assert results_of(report)["commit status"] == "failed" and not report.ok


async def test_bad_token_fails(fake: FakeGitHubArtifacts) -> None:
    report = await run(fake, "ghs_wrongtoken")
    assert results_of(report)["token"] == "failed" and not report.ok
    assert "Bad credentials" in report.items[0].detail and "ghs_wrongtoken" not in report.items[0].detail


async def test_no_token_checks_the_job_summary(fake: FakeGitHubArtifacts, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    report = await run(fake, None, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert report.tier == "job summary" and results_of(report) == {"job summary": "proven"}
    report = await run(fake, None, env={})
    assert results_of(report) == {"job summary": "failed"}


async def test_runtime_token_is_proven_against_the_results_service(fake: FakeGitHubArtifacts,
                                                                   results: FakeResults) -> None:
    token = results.token()
    env = {"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": results.url}
    report = await run(fake, "app-token", env=env)
    assert results_of(report)["artifacts"] == "proven"
    assert [r.operation for r in results.calls()] == ["ListArtifacts"] and results.finalized() == []
    stranger = make_runtime_token("run-uuid-1", "job-uuid-1")  # not issued by this service
    report = await run(fake, "app-token", env={**env, "ACTIONS_RUNTIME_TOKEN": stranger})
    assert results_of(report)["artifacts"] == "failed"
    assert stranger not in json.dumps([i.detail for i in report.items])


def test_cli_doctor_check(fake: FakeGitHubArtifacts, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = scrubbed_env(tmp_path, GITHUB_ACTIONS="true", GITHUB_REPOSITORY="octo/repo", GITHUB_SHA=HEAD,
                       GITHUB_API_URL=fake.url, GITHUB_TOKEN="app-token", GITHUB_RUN_ID="4242",
                       NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    ns = build_parser().parse_args(["doctor", "--check", "--json"])
    assert run_doctor(ns, env=env, cwd=str(tmp_path)) == 0
    out = json.loads(capsys.readouterr().out)
    [report] = out["check"]["reports"]
    assert out["check"]["ok"] and report["tier"] == "check run" and report["write"] is False
    assert {i["name"]: i["result"] for i in report["items"]}["token"] == "proven"
    ns = build_parser().parse_args(["doctor", "--check", "--write"])
    assert run_doctor(ns, env={**env, "GITHUB_TOKEN": "readonly-token"}, cwd=str(tmp_path)) == 1
    text = capsys.readouterr().out
    assert "Access check:" in text and "failed" in text and "readonly-token" not in text
