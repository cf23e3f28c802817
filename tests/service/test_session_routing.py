"""Where a session's writes go when the CI and the code host differ (a Jenkins build of a GitHub, GitLab or
Bitbucket pull request): runs to both, statuses and comments to the code host when it can take them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_sidecar.config import load_config
from ci_sidecar.credentials import Credential, Secret
from ci_sidecar.protocol.records import CIContext, ScmContext
from ci_sidecar.providers import Providers
from ci_sidecar.service.session_context import SessionContext

TOKENS = {"github": ("GITHUB_TOKEN", "ghs_installationtoken"), "gitlab": ("GITLAB_TOKEN", "glpat-projecttoken"),
          "bitbucket": ("BITBUCKET_TOKEN", "repository-access-token")}


def session(tmp_path: Path, scm: str, *, scm_token: bool) -> SessionContext:
    ci = CIContext(provider="jenkins", sources={}, repository="octo/app", pr_number=7, commit_sha="a" * 40,
                   job="octo/app/PR-7", build_number="3", scm=ScmContext(provider=scm, repository="octo/app"))
    ctx = SessionContext(session_id="s", ci=ci, config=load_config(env={}, cwd=str(tmp_path)).config,
                         cwd=str(tmp_path), output_root=str(tmp_path / "out"), providers=Providers(),
                         env={"JENKINS_URL": "https://jenkins.example/", "JOB_NAME": "octo/app/PR-7",
                              "BUILD_NUMBER": "3", "WORKSPACE": str(tmp_path)})
    ctx.credentials["jenkins"] = Credential(provider="jenkins", base_url="https://jenkins.example/",
                                            source="env:JENKINS_TOKEN", fingerprint="j", secret=Secret("jt"),
                                            username="bot")
    if scm_token:
        var, token = TOKENS[scm]
        ctx.credentials[scm] = Credential(provider=scm, base_url=None, source=f"env:{var}", fingerprint="s",
                                          secret=Secret(token))
    return ctx


@pytest.mark.parametrize("scm", sorted(TOKENS))
def test_with_the_code_hosts_token_runs_go_to_both_and_feedback_to_the_code_host(tmp_path: Path, scm: str) -> None:
    """The run is published on Jenkins and on the code host (both roles in its targets); statuses and comments go
    to the code host."""
    ctx = session(tmp_path, scm, scm_token=True)
    targets = [(t.role, t.provider) for t in ctx.targets_for("jenkins")]
    assert targets == [("ci", "local"), ("ci", "jenkins"), ("scm", scm)]
    assert (ctx.status_provider(None), ctx.comment_provider(None)) == (scm, scm)


@pytest.mark.parametrize("scm", sorted(TOKENS))
def test_without_it_statuses_stay_on_jenkins_and_comments_say_why_on_the_code_host(tmp_path: Path,
                                                                                   scm: str) -> None:
    """No code-host token: the run only on Jenkins, statuses as description lines, comments to the code host
    (neither can take them: its answer names the missing token)."""
    ctx = session(tmp_path, scm, scm_token=False)
    assert [(t.role, t.provider) for t in ctx.targets_for("jenkins")] == [("ci", "local"), ("ci", "jenkins")]
    assert (ctx.status_provider(None), ctx.comment_provider(None)) == ("jenkins", scm)


def test_with_an_object_store_artifacts_are_staged_for_jenkins_and_answered_from_the_store(tmp_path: Path) -> None:
    """``[artifact_store]``: each artifact is staged for archiveArtifacts and stored in the bucket, whose URL is the
    one answered (Jenkins' own exists only after archiving)."""
    ctx = session(tmp_path, "github", scm_token=True)
    assert ctx.artifact_routes("jenkins") == (["local", "jenkins"], "jenkins")
    ctx.store = "s3"
    assert ctx.artifact_routes("jenkins") == (["local", "jenkins", "s3"], "s3")
