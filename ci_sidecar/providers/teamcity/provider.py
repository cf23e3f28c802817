"""The TeamCity provider class: tiers, one attempt per delivery, the job-log stream for ``ci-sidecar exec``.

TeamCity takes test results as service messages in the build log, parsed by its agent
(https://www.jetbrains.com/help/teamcity/service-messages.html): ``ci-sidecar exec`` prints them while the
tests run, reading the run with ``read_test_results`` (the session says so with ``job_log = "client"``).
Artifacts are staged in the checkout and published with ``publishArtifacts`` at the end of the run. TeamCity
has no commit statuses or pull request comments of its own: those go to the code host (the session's scm
provider).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._staging import StagingArea, StagingError, repository_root
from ..base import Operation, Outcome, PostComment, ProviderEnv, PublishRun, SetStatus, UploadArtifact
from .job_log import TeamCityJobLog, workspace_of
from .settings import ARTIFACT_DIR, TeamCitySettings

__all__ = ["TeamCityProvider"]

_EXEC_TIER = "service messages (ci-sidecar exec)"
_NO_STREAM = ("TeamCity takes test results as service messages in the build log: run the tests under "
              "`ci-sidecar exec -- COMMAND`, which prints them as results arrive")
_VIA_SCM = "TeamCity has no {what} of its own: they go to the code host (scm_provider)"


def _streamed(env: ProviderEnv) -> bool:
    return TeamCitySettings.of(env).job_log == "client"


def _area(env: ProviderEnv) -> StagingArea:
    settings = TeamCitySettings.of(env)
    return StagingArea(workspace_of(settings.session_cwd, settings.repository_root), settings.staged_dir)


class TeamCityProvider:
    """TeamCity (self-hosted or Cloud): the build log through ``ci-sidecar exec``, staged artifacts."""

    name: ClassVar[str] = "teamcity"

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """Under ``exec`` the run streams into the build log; without it there is no tier for results."""
        settings = TeamCitySettings.of(env)
        streamed = _streamed(env)
        test_run = (Tier(kind="native", via=_EXEC_TIER) if streamed else Tier(kind="none", note=_NO_STREAM))
        published = "published by ci-sidecar exec (publishArtifacts)" if streamed else (
            f"add `{settings.staged_dir}/artifacts => {ARTIFACT_DIR}` to the build's artifact paths")
        return ProviderCaps(
            provider="teamcity", test_run=test_run,
            build_status=Tier(kind="none", note=_VIA_SCM.format(what="commit statuses")),
            pr_comment=Tier(kind="none", note=_VIA_SCM.format(what="pull request comments")),
            artifacts=Tier(kind="staged", via=f"{settings.staged_dir}/artifacts", note=published),
            limits={})

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt; nothing here raises for a provider-side failure."""
        state = dict(remote or {})
        if isinstance(op, PublishRun):
            if _streamed(env):
                # exec reads the run itself (read_test_results) and prints it: nothing to send from here
                return Outcome.delivered(tier=_EXEC_TIER, remote=state,
                                         message="teamcity: the run streams into the build log through ci-sidecar exec")
            return Outcome.unsupported(f"teamcity: {_NO_STREAM}", tier="none", remote=state)
        if isinstance(op, UploadArtifact):
            return await self._stage(op, env)
        what = "commit statuses" if isinstance(op, SetStatus) else (
            "pull request comments" if isinstance(op, PostComment) else type(op).__name__)
        return Outcome.unsupported("teamcity: " + _VIA_SCM.format(what=what), tier="none")

    async def _stage(self, op: UploadArtifact, env: ProviderEnv) -> Outcome:
        try:
            staged = await _area(env).stage_artifact(op)
        except (StagingError, OSError) as exc:
            return Outcome.unsupported(f"teamcity: the artifact could not be staged: {exc}", tier="none")
        how = ("ci-sidecar exec publishes it at the end of the run" if _streamed(env)
               else "the build's artifact paths publish it")
        return Outcome.delivered(tier="staged", action="staged", remote={"staged_path": staged.relative},
                                 message=f"staged as {staged.relative}; {how} "
                                         f"as {ARTIFACT_DIR}/{op.run_id}/{op.name}")

    def job_log_stream(self, ci: CIContext, run: Mapping[str, Any]) -> TeamCityJobLog | None:
        """Inside TeamCity, the run as service messages for ``exec`` to print (None elsewhere)."""
        if ci.provider != "teamcity":
            return None
        cwd = os.getcwd()  # exec's own, which is its session's: the same workspace the daemon stages into
        return TeamCityJobLog(run, workspace_of(cwd, repository_root(cwd)))

    async def aclose(self) -> None:
        """Nothing pooled."""
