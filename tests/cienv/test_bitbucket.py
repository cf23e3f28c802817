"""Bitbucket Pipelines detection, including short-SHA expansion through git."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ci_sidecar.cienv import detect

BASE = {
    "CI": "true", "BITBUCKET_BUILD_NUMBER": "210", "BITBUCKET_REPO_FULL_NAME": "team/widgets",
    "BITBUCKET_WORKSPACE": "team", "BITBUCKET_REPO_SLUG": "widgets", "BITBUCKET_PIPELINE_UUID": "{1234-abcd}",
    "BITBUCKET_STEP_UUID": "{5678-ef}", "BITBUCKET_COMMIT": "9" * 40,
}


class TestBitbucket:
    def test_branch_build(self) -> None:
        """A branch pipeline with its results URL on bitbucket.org."""
        ctx = detect({**BASE, "BITBUCKET_BRANCH": "main"})
        assert (ctx.provider, ctx.repository, ctx.branch, ctx.commit_sha, ctx.build_number, ctx.build_id) == (
            "bitbucket", "team/widgets", "main", "9" * 40, "210", "{1234-abcd}")
        assert ctx.build_url == "https://bitbucket.org/team/widgets/pipelines/results/210"
        assert ctx.scm is None

    def test_tag_build(self) -> None:
        """BITBUCKET_TAG marks a tag build."""
        ctx = detect({**BASE, "BITBUCKET_TAG": "v1"})
        assert (ctx.tag, ctx.branch) == ("v1", None)

    def test_pull_request(self) -> None:
        """A PR pipeline: number and destination branch."""
        ctx = detect({**BASE, "BITBUCKET_BRANCH": "feature", "BITBUCKET_PR_ID": "14",
                      "BITBUCKET_PR_DESTINATION_BRANCH": "main"})
        assert (ctx.pr_number, ctx.branch, ctx.target_branch) == (14, "feature", "main")

    def test_short_sha_is_expanded_with_git(self, make_repo: Callable[..., tuple[Path, str]]) -> None:
        """An abbreviated BITBUCKET_COMMIT becomes the full SHA when the clone has the commit."""
        repo, head = make_repo(remote="git@bitbucket.org:team/widgets.git")
        ctx = detect({**BASE, "BITBUCKET_COMMIT": head[:12], "BITBUCKET_BRANCH": "main"}, str(repo))
        assert ctx.commit_sha == head
        assert ctx.sources["commit_sha"].kind == "git"

    def test_short_sha_via_clone_dir(self, make_repo: Callable[..., tuple[Path, str]], tmp_path: Path) -> None:
        """When the session cwd is not the clone, BITBUCKET_CLONE_DIR is asked."""
        repo, head = make_repo()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        ctx = detect({**BASE, "BITBUCKET_COMMIT": head[:7], "BITBUCKET_CLONE_DIR": str(repo)}, str(elsewhere))
        assert ctx.commit_sha == head

    def test_short_sha_kept_when_git_cannot_expand(self, tmp_path: Path) -> None:
        """Outside a repository the abbreviated SHA is reported as given."""
        ctx = detect({**BASE, "BITBUCKET_COMMIT": "abc1234"}, str(tmp_path))
        assert ctx.commit_sha == "abc1234"
        assert ctx.sources["commit_sha"].kind == "env"

    def test_a_data_center_commit_outside_pipelines_takes_its_host_from_the_clone(
            self, make_repo: Callable[..., tuple[Path, str]]) -> None:
        """BITBUCKET_COMMIT without a Pipelines build (a Jenkins job on Data Center) is not assumed bitbucket.org:
        the repository and server come from the …/scm/PROJ/repo.git clone URL."""
        repo, head = make_repo(remote="https://bitbucket.example.com/scm/PROJ/widgets.git")
        ctx = detect({"CI": "true", "BITBUCKET_COMMIT": head, "BITBUCKET_PR_ID": "7"}, str(repo))
        assert (ctx.provider, ctx.repository, ctx.commit_sha, ctx.pr_number) == ("bitbucket", "PROJ/widgets", head, 7)
        assert ctx.scm is None or ctx.scm.server_url == "https://bitbucket.example.com"
        assert ctx.server_url != "https://bitbucket.org"
