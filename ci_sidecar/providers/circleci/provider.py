"""The CircleCI provider class: tiers, one attempt per delivery, the artifact lookup (the work is in
:mod:`.staging`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._http import HeaderToken, HttpConfig, HttpError, HttpLayer, JsonToken
from .._staging import StagingError
from ..base import CheckItem, CheckReport, Operation, Outcome, PostComment, ProviderEnv, PublishRun, SetStatus
from ..base import UploadArtifact
from ..settings import session_settings
from .settings import CircleCISettings
from .staging import (
    STORE_ARTIFACTS,
    STORE_TEST_RESULTS,
    URL_AFTER_UPLOAD,
    find_artifact,
    project_slug,
    stage_artifact,
    staging_area,
)

__all__ = ["CircleCIProvider", "DEFAULT_API_URL"]

log = logging.getLogger("ci_sidecar.providers.circleci")

DEFAULT_API_URL = "https://circleci.com/api/v2"
#: CircleCI has no API for commit statuses or PR comments: they belong to the code host
VIA_SCM = ("CircleCI has no API for {what}; they go to the code host (GitHub, Bitbucket, GitLab) when the job "
           "has its token")


class CircleCIProvider:
    """CircleCI: staged files for the job's collect steps, API v2 (``Circle-Token``) to read artifact URLs."""

    name: ClassVar[str] = "circleci"

    def __init__(self) -> None:
        self._http = HttpLayer("circleci", auth=HeaderToken("Circle-Token"), pagination=JsonToken(), pacing=())

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """Staged tiers when the job's working directory is known; artifact URLs need ``CIRCLE_TOKEN`` (API v2)."""
        area = staging_area(env)
        if isinstance(area, str):
            test_run = artifacts = Tier(kind="none", note=area)
        else:
            folder = CircleCISettings.of(env).staged_dir
            test_run = Tier(kind="staged", via=STORE_TEST_RESULTS,
                            note=f"the JUnit report is staged in {folder}/junit for the job's store_test_results "
                                 "step; CircleCI shows the tests when the job ends")
            lookup = ("get_artifact_url reads it through API v2" if env.token and project_slug(env) else
                      "get_artifact_url cannot read it without CIRCLE_TOKEN and the project slug")
            artifacts = Tier(kind="staged", via=STORE_ARTIFACTS,
                             note=f"copied to {folder}/artifacts for the job's store_artifacts step; "
                                  f"{URL_AFTER_UPLOAD}; {lookup}")
        return ProviderCaps(provider="circleci", test_run=test_run,
                            build_status=Tier(kind="none", note=VIA_SCM.format(what="build statuses")),
                            pr_comment=Tier(kind="none", note=VIA_SCM.format(what="PR comments")),
                            artifacts=artifacts, limits={})

    def _config(self, env: ProviderEnv) -> HttpConfig:
        return HttpConfig.from_env_config(str(env.base_url or DEFAULT_API_URL), env.config)

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt. Nothing here talks to CircleCI: runs and artifacts are staged for the job's steps."""
        state = dict(remote or {})
        if isinstance(op, PublishRun):
            return await self._publish(op, env, state)
        if isinstance(op, UploadArtifact):
            return await stage_artifact(op, env, state)
        if isinstance(op, SetStatus | PostComment):
            what = "build statuses" if isinstance(op, SetStatus) else "PR comments"
            return Outcome.unsupported(f"circleci: {VIA_SCM.format(what=what)} (none was found for this job)",
                                       tier="none")
        return Outcome.unsupported(f"circleci: unknown operation {type(op).__name__}")

    async def _publish(self, op: PublishRun, env: ProviderEnv, state: dict[str, Any]) -> Outcome:
        """The run's JUnit report, written when the run completes (``store_test_results`` reads it at its step)."""
        area = staging_area(env)
        if isinstance(area, str):
            return Outcome.unsupported(f"circleci: {area}", tier="none", remote=state)
        if not op.final:
            return Outcome.delivered(tier=STORE_TEST_RESULTS, action="deferred", remote=state,
                                     message="the JUnit report is staged when the run completes")
        try:
            staged = await area.stage_junit(op.run, env)
        except (StagingError, OSError) as exc:
            return Outcome.refused(f"circleci: staging the JUnit report failed: {exc}", remote=state)
        state["junit_staged"] = staged.relative
        return Outcome.delivered(tier=STORE_TEST_RESULTS, action="staged", remote=state,
                                 message=f"JUnit report staged as {staged.relative} for store_test_results")

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``get_artifact_url``: the URL API v2 lists for the staged file once the job's step stored it."""
        api = self._http.session(self._config(env), env.token, env.log)
        try:
            return await find_artifact(op, env, dict(remote or {}), api)
        except HttpError as err:
            log.info("circleci: artifact lookup of %s failed: %s", op.name, api.redact(err.outcome.message))
            return None

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """``doctor --check``: where files are staged, and (with ``CIRCLE_TOKEN``) that API v2 shows the job
        (``GET /project/{slug}/job/{number}``) the artifact URLs are read from. CircleCI takes no writes."""
        penv = ProviderEnv(ci=ci, config=session_settings("circleci", env=env, credential_urls={}))
        report = CheckReport(provider="circleci", tier=STORE_TEST_RESULTS, write=write)
        add = report.items.append
        area = staging_area(penv)
        if isinstance(area, str) or not os.path.isdir(area.workspace):
            add(CheckItem(name="staging folder", result="failed",
                          detail=area if isinstance(area, str) else f"{area.workspace} is not a folder"))
        else:
            add(CheckItem(name="staging folder", result="proven",
                          detail=f"{area.root} (store_test_results: {area.root.name}/junit, store_artifacts: "
                                 f"{area.root.name}/artifacts)"))
        slug, job = project_slug(penv), ci.build_number
        if credential is None:
            add(CheckItem(name="api v2", result="skipped", detail="no CIRCLE_TOKEN: get_artifact_url gives the "
                                                                  "staged note, never CircleCI's URL"))
        elif not slug or not (job or "").isdigit():
            add(CheckItem(name="api v2", result="failed",
                          detail="no project slug (set [providers.circleci] project_slug) or no CIRCLE_BUILD_NUM"))
        else:
            config = HttpConfig.from_env_config(str(credential.base_url or DEFAULT_API_URL), {"trust_env": trust_env})
            api = self._http.session(config, credential.secret.reveal())
            try:
                body = (await api.request("GET", f"/project/{quote(slug, safe='')}/job/{job}")).json() or {}
                add(CheckItem(name="api v2", result="proven",
                              detail=f"job {job} of {slug} is {body.get('status')}: {body.get('web_url')}"))
            except HttpError as err:
                add(CheckItem(name="api v2", result="failed",
                              detail=api.redact(f"GET job {job} of {slug}: {err.outcome.message}")))
        if write:
            add(CheckItem(name="write", result="skipped", detail="CircleCI takes no writes from a job; statuses "
                                                                 "and comments are the code host's"))
        return report

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: the last rate-limit headers seen."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()
