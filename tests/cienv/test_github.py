"""GitHub Actions detection from recorded variable sets and event payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ci_sidecar.cienv import detect

MERGE_SHA = "1111111111111111111111111111111111111111"
HEAD_SHA = "2222222222222222222222222222222222222222"

BASE = {
    "CI": "true",
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "octo/widgets",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_API_URL": "https://api.github.com",
    "GITHUB_RUN_ID": "9876543210",
    "GITHUB_RUN_NUMBER": "42",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_JOB": "test",
    "GITHUB_HEAD_REF": "",
    "GITHUB_BASE_REF": "",
}


def pr_event(tmp_path: Path, *, number: int = 7, head_repo: str | None = "octo/widgets", name: str = "event.json") -> str:
    """Write a pull_request payload (the fields detection reads, nested as GitHub sends them)."""
    head: dict[str, object] = {"ref": "feature/login", "sha": HEAD_SHA}
    head["repo"] = None if head_repo is None else {"full_name": head_repo, "fork": head_repo != "octo/widgets"}
    payload = {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": head,
            "base": {"ref": "main", "sha": "3" * 40, "repo": {"full_name": "octo/widgets"}},
        },
    }
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return str(path)


def fields(ctx, *names):  # noqa: ANN001, ANN201
    return {n: getattr(ctx, n) for n in names}


class TestGitHub:
    def test_branch_push(self) -> None:
        """A push to a branch reports the branch, the pushed commit and the run URL."""
        env = {**BASE, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main",
               "GITHUB_REF_TYPE": "branch", "GITHUB_SHA": MERGE_SHA}
        ctx = detect(env)
        assert fields(ctx, "provider", "repository", "branch", "commit_sha", "head_sha", "pr_number", "tag", "event") == {
            "provider": "github", "repository": "octo/widgets", "branch": "main", "commit_sha": MERGE_SHA,
            "head_sha": None, "pr_number": None, "tag": None, "event": "push"}
        assert ctx.build_url == "https://github.com/octo/widgets/actions/runs/9876543210"
        assert (ctx.build_id, ctx.build_number, ctx.run_attempt, ctx.job) == ("9876543210", "42", 1, "test")
        assert ctx.sources["provider"].name == "GITHUB_ACTIONS"
        assert ctx.sources["branch"].kind == "env" and ctx.sources["branch"].name == "GITHUB_REF"
        assert ctx.scm is None  # GitHub is its own code host

    def test_tag_build(self) -> None:
        """A tag push reports the tag and no branch."""
        env = {**BASE, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.2.3", "GITHUB_REF_NAME": "v1.2.3",
               "GITHUB_REF_TYPE": "tag", "GITHUB_SHA": MERGE_SHA}
        ctx = detect(env)
        assert (ctx.tag, ctx.branch) == ("v1.2.3", None)

    def test_pull_request_takes_head_sha_number_and_branch_from_event(self, tmp_path: Path) -> None:
        """On pull_request builds GITHUB_SHA is the merge commit: the head SHA and PR number come from the payload."""
        env = {**BASE, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/7/merge",
               "GITHUB_REF_NAME": "7/merge", "GITHUB_HEAD_REF": "feature/login", "GITHUB_BASE_REF": "main",
               "GITHUB_SHA": MERGE_SHA, "GITHUB_EVENT_PATH": pr_event(tmp_path)}
        ctx = detect(env)
        assert fields(ctx, "commit_sha", "head_sha", "pr_number", "branch", "target_branch", "is_fork") == {
            "commit_sha": MERGE_SHA, "head_sha": HEAD_SHA, "pr_number": 7, "branch": "feature/login",
            "target_branch": "main", "is_fork": False}
        assert ctx.sources["head_sha"].kind == "file"
        assert ctx.sources["head_sha"].name == "GITHUB_EVENT_PATH:pull_request.head.sha"

    def test_workflow_run_takes_head_sha_and_pr_from_the_event(self, tmp_path: Path) -> None:
        """In a workflow_run publisher GITHUB_SHA is the default branch: the tested commit and PR come from the event."""
        event = tmp_path / "wr.json"
        event.write_text(json.dumps({"action": "completed", "workflow_run": {
            "head_sha": HEAD_SHA, "head_branch": "feature/login", "event": "pull_request",
            "pull_requests": [{"number": 12, "head": {"ref": "feature/login", "sha": HEAD_SHA},
                               "base": {"ref": "main", "sha": "3" * 40}}],
            "head_repository": {"full_name": "stranger/widgets"}, "repository": {"full_name": "octo/widgets"}}}))
        env = {**BASE, "GITHUB_EVENT_NAME": "workflow_run", "GITHUB_REF": "refs/heads/main", "GITHUB_SHA": MERGE_SHA,
               "GITHUB_EVENT_PATH": str(event)}
        ctx = detect(env)
        assert fields(ctx, "commit_sha", "head_sha", "pr_number", "branch", "target_branch", "is_fork") == {
            "commit_sha": MERGE_SHA, "head_sha": HEAD_SHA, "pr_number": 12, "branch": "feature/login",
            "target_branch": "main", "is_fork": True}
        assert ctx.sources["head_sha"].name == "GITHUB_EVENT_PATH:workflow_run.head_sha"

    def test_fork_pull_request(self, tmp_path: Path) -> None:
        """A PR whose head repository differs from the base is a fork PR."""
        env = {**BASE, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/8/merge", "GITHUB_SHA": MERGE_SHA,
               "GITHUB_HEAD_REF": "patch-1", "GITHUB_BASE_REF": "main",
               "GITHUB_EVENT_PATH": pr_event(tmp_path, number=8, head_repo="stranger/widgets")}
        ctx = detect(env)
        assert (ctx.is_fork, ctx.pr_number, ctx.head_sha) == (True, 8, HEAD_SHA)

    def test_deleted_fork_is_still_a_fork(self, tmp_path: Path) -> None:
        """A PR whose fork was deleted (head.repo null) is reported as a fork."""
        env = {**BASE, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/9/merge", "GITHUB_SHA": MERGE_SHA,
               "GITHUB_EVENT_PATH": pr_event(tmp_path, number=9, head_repo=None)}
        assert detect(env).is_fork is True

    def test_pull_request_target_uses_event_head(self, tmp_path: Path) -> None:
        """pull_request_target runs on the base branch: the PR's head and branch still come from the payload."""
        env = {**BASE, "GITHUB_EVENT_NAME": "pull_request_target", "GITHUB_REF": "refs/heads/main",
               "GITHUB_REF_NAME": "main", "GITHUB_SHA": "3" * 40, "GITHUB_HEAD_REF": "feature/login",
               "GITHUB_BASE_REF": "main", "GITHUB_EVENT_PATH": pr_event(tmp_path)}
        ctx = detect(env)
        assert fields(ctx, "pr_number", "head_sha", "branch", "target_branch") == {
            "pr_number": 7, "head_sha": HEAD_SHA, "branch": "feature/login", "target_branch": "main"}

    def test_pull_request_without_readable_event_falls_back_to_ref(self, tmp_path: Path) -> None:
        """Without the payload the PR number is parsed from refs/pull/N/merge and the branch from GITHUB_HEAD_REF."""
        env = {**BASE, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/11/merge", "GITHUB_SHA": MERGE_SHA,
               "GITHUB_HEAD_REF": "fix", "GITHUB_BASE_REF": "main", "GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}
        ctx = detect(env)
        assert fields(ctx, "pr_number", "branch", "target_branch", "head_sha") == {
            "pr_number": 11, "branch": "fix", "target_branch": "main", "head_sha": None}
        assert ctx.sources["pr_number"].kind == "derived"

    def test_corrupt_event_file_is_tolerated(self, tmp_path: Path) -> None:
        """A payload that is not JSON is ignored rather than failing detection."""
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        env = {**BASE, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/3/merge", "GITHUB_SHA": MERGE_SHA,
               "GITHUB_EVENT_PATH": str(bad)}
        assert detect(env).pr_number == 3

    def test_merge_queue_branch_prefix_is_stripped(self) -> None:
        """Merge-queue builds report the base branch and PR number, not the gh-readonly-queue branch."""
        ref = f"refs/heads/gh-readonly-queue/release/1.x/pr-123-{'a' * 40}"
        env = {**BASE, "GITHUB_EVENT_NAME": "merge_group", "GITHUB_REF": ref,
               "GITHUB_REF_NAME": ref.removeprefix("refs/heads/"), "GITHUB_REF_TYPE": "branch", "GITHUB_SHA": MERGE_SHA}
        ctx = detect(env)
        assert fields(ctx, "branch", "target_branch", "pr_number", "event") == {
            "branch": "release/1.x", "target_branch": "release/1.x", "pr_number": 123, "event": "merge_group"}
        assert "gh-readonly-queue" not in str(ctx)

    def test_rerun_attempt(self) -> None:
        """A re-run reports its attempt and links to that attempt."""
        env = {**BASE, "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main", "GITHUB_SHA": MERGE_SHA,
               "GITHUB_RUN_ATTEMPT": "3"}
        ctx = detect(env)
        assert ctx.run_attempt == 3
        assert ctx.build_url == "https://github.com/octo/widgets/actions/runs/9876543210/attempts/3"

    def test_enterprise_server_url(self) -> None:
        """On GitHub Enterprise Server the build URL uses GITHUB_SERVER_URL."""
        env = {**BASE, "GITHUB_SERVER_URL": "https://github.corp.example", "GITHUB_EVENT_NAME": "push",
               "GITHUB_REF": "refs/heads/dev", "GITHUB_SHA": MERGE_SHA}
        ctx = detect(env)
        assert ctx.server_url == "https://github.corp.example"
        assert ctx.build_url.startswith("https://github.corp.example/octo/widgets/actions/runs/")

    @pytest.mark.parametrize("flag", ["false", "False", "0"])
    def test_ci_false_forces_local(self, flag: str) -> None:
        """CI=false wins over every CI's own variables."""
        env = {**BASE, "CI": flag, "GITHUB_REF": "refs/heads/main", "GITHUB_SHA": MERGE_SHA}
        ctx = detect(env)
        assert ctx.provider == "local"
        assert ctx.repository is None and ctx.commit_sha is None
        assert ctx.sources["provider"].name == "CI"
