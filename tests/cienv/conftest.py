"""Fixtures for CI detection tests: throw-away git repositories (tests never read os.environ for CI vars)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

GIT_ENV_KEYS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")


def git(repo: Path, *args: str) -> str:
    """Run git in *repo* and return its stripped stdout."""
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=20)
    return out.stdout.strip()


@pytest.fixture
def make_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[Path, str]]:
    """Create a repo with one commit on *branch* and an optional origin; returns (path, head sha)."""
    for key in GIT_ENV_KEYS:
        monkeypatch.delenv(key, raising=False)

    def make(name: str = "repo", *, branch: str = "main", remote: str | None = None) -> tuple[Path, str]:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", branch)
        git(repo, "config", "user.email", "tests@example.invalid")
        git(repo, "config", "user.name", "Tests")
        git(repo, "config", "commit.gpgsign", "false")
        (repo / "README").write_text(f"hello from {name}\n")
        git(repo, "add", "README")
        git(repo, "commit", "-q", "-m", "first")
        if remote is not None:
            git(repo, "remote", "add", "origin", remote)
        return repo, git(repo, "rev-parse", "HEAD")

    return make
