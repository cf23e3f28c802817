"""The local provider (no CI, CI=false, CI=true from an unknown CI): everything from git."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ci_sidecar.cienv import detect
from ci_sidecar.cienv._git import Git


class TestLocal:
    def test_git_gives_repository_commit_branch(self, make_repo: Callable[..., tuple[Path, str]]) -> None:
        """Outside CI the repository comes from the remote, commit and branch from HEAD."""
        repo, head = make_repo(branch="dev", remote="git@github.com:octo/widgets.git")
        ctx = detect({}, str(repo))
        assert (ctx.provider, ctx.repository, ctx.commit_sha, ctx.branch) == ("local", "octo/widgets", head, "dev")
        assert ctx.sources["commit_sha"].kind == "git" and ctx.sources["repository"].name == "remote.origin.url"
        assert ctx.scm is not None and ctx.scm.provider == "github"

    def test_ci_true_alone_is_local(self, make_repo: Callable[..., tuple[Path, str]]) -> None:
        """CI=true from an unsupported CI (Drone, Buildkite...) is local, with git's answers."""
        repo, head = make_repo()
        ctx = detect({"CI": "true", "DRONE": "true"}, str(repo))
        assert (ctx.provider, ctx.commit_sha) == ("local", head)
        assert ctx.sources["provider"].name == "CI"

    def test_ci_false_forces_local_even_in_gitlab(self, make_repo: Callable[..., tuple[Path, str]]) -> None:
        """CI=false makes a GitLab job local: git, not CI_* variables, answers."""
        repo, head = make_repo()
        ctx = detect({"CI": "false", "GITLAB_CI": "true", "CI_COMMIT_SHA": "0" * 40}, str(repo))
        assert (ctx.provider, ctx.commit_sha) == ("local", head)

    def test_detached_head_tag(self, make_repo: Callable[..., tuple[Path, str]]) -> None:
        """A detached checkout of a tag reports the tag and no branch."""
        repo, head = make_repo()
        subprocess.run(["git", "tag", "v0.1"], cwd=repo, check=True)
        subprocess.run(["git", "checkout", "-q", "--detach", "v0.1"], cwd=repo, check=True)
        ctx = detect({}, str(repo))
        assert (ctx.branch, ctx.tag, ctx.commit_sha) == (None, "v0.1", head)

    def test_not_a_repository(self, tmp_path: Path) -> None:
        """A cwd that is not a git repository gives an empty local context, not an error."""
        ctx = detect({}, str(tmp_path))
        assert (ctx.provider, ctx.commit_sha, ctx.repository, ctx.branch) == ("local", None, None, None)

    def test_missing_git_is_tolerated(self, make_repo: Callable[..., tuple[Path, str]], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a git executable on PATH detection still answers."""
        repo, _ = make_repo()
        empty = tmp_path / "empty-bin"
        empty.mkdir()
        monkeypatch.setenv("PATH", str(empty))
        ctx = detect({}, str(repo))
        assert (ctx.provider, ctx.commit_sha) == ("local", None)

    def test_no_cwd_means_no_git(self) -> None:
        """cwd=None never runs git."""
        assert Git(None).head() is None
        assert detect({}).commit_sha is None

    def test_git_dir_from_environment_is_ignored(self, make_repo: Callable[..., tuple[Path, str]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        """A GIT_DIR inherited from a hook does not redirect git away from the session's cwd."""
        repo, head = make_repo("a")
        other, _ = make_repo("b")
        monkeypatch.setenv("GIT_DIR", os.path.join(other, ".git"))
        assert Git(str(repo)).head() == head
