"""The Jenkins provider class: tiers, one attempt per delivery, read-backs (the work is in its siblings)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._deliver import deliver_with
from .._gated import api_session
from .._http import ApiSession, HttpConfig, HttpError
from .._staging import StagingError
from ..base import (
    CheckReport,
    Operation,
    Outcome,
    PostComment,
    ProviderEnv,
    PublishRun,
    RunSnapshot,
    SetStatus,
    UploadArtifact,
)
from ..writes import WriteBudget
from ._api import NO_COMMENTS, Auths, build_path, build_web_url, missing_build, rest_config, rest_layer
from .artifacts import ARCHIVE_STEP, JUNIT_STEP, archived_paths, artifact_url, stage_artifact, staged_relative, \
    staging_area
from .description import BuildLocks, run_line, status_line, write_line
from .settings import JenkinsSettings

__all__ = ["JenkinsProvider"]

log = logging.getLogger("ci_sidecar.providers.jenkins")

DESCRIPTION = "build description"
_RESULT = {"SUCCESS": "success", "UNSTABLE": "failure", "FAILURE": "failure", "ABORTED": "cancelled",
           "NOT_BUILT": "skipped"}


def _no_token() -> str:
    return "no Jenkins credential (JENKINS_USER + JENKINS_TOKEN, an API token)"


class JenkinsProvider:
    """Any Jenkins (``base_url`` from the token's binding: a configured ``base_url``, else ``JENKINS_URL``)."""

    name: ClassVar[str] = "jenkins"

    def __init__(self) -> None:
        self._http = rest_layer()
        self._auths = Auths()
        self._locks = BuildLocks()

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """With a credential, the build description carries each run's line and every status set without a code
        host; the JUnit report and artifacts are staged for the pipeline's ``junit`` and ``archiveArtifacts``
        steps whenever the build has a workspace. PR comments need the code host."""
        settings = JenkinsSettings.of(env)
        area = staging_area(env)
        junit_note = (f"the JUnit report is staged as {settings.staged_dir}/junit/*.xml for the pipeline's junit "
                      "step; Jenkins shows it when the step runs")
        blocked = missing_build(env) if env.token else _no_token()
        if blocked is None:
            test_run = Tier(kind="native", via=DESCRIPTION,
                            note=junit_note if not isinstance(area, str) else f"{area}: no JUnit staging")
            status = Tier(kind="native", via=DESCRIPTION, note="without a code host, a line in the build "
                                                               "description")
        else:
            test_run = Tier(kind="staged", via=JUNIT_STEP, note=f"{blocked}; {junit_note}") \
                if not isinstance(area, str) else Tier(kind="none", note=f"{blocked}; {area}")
            status = Tier(kind="none", note=blocked)
        if isinstance(area, str):
            artifacts = Tier(kind="none", note=area)
        else:
            artifacts = Tier(kind="staged", via=ARCHIVE_STEP,
                             note=f"copied to {settings.staged_dir}/artifacts/ for the pipeline's archiveArtifacts; "
                                  "the URL exists after archiving")
        return ProviderCaps(provider="jenkins", test_run=test_run, build_status=status,
                            pr_comment=Tier(kind="none", note=NO_COMMENTS), artifacts=artifacts,
                            limits={"description_line_chars": 1000})

    def _session(self, env: ProviderEnv) -> ApiSession | None:
        config = rest_config(env)
        if config is None:
            return None
        return api_session(self._http, config, env.token, env.log, env.writes, auth=self._auths.of(env))

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt; provider-side failures come back as Outcomes (token redacted), never as exceptions."""
        # without a Jenkins URL every write is blocked before a request: the session only redacts then
        api = self._session(env) or self._http.session(HttpConfig(base_url=""), env.token, env.log,
                                                       auth=self._auths.of(env))
        return await deliver_with("jenkins", op, remote, api, {
            PublishRun: lambda op, state: self._publish(op, env, state, api),
            SetStatus: lambda op, state: self._status(op, env, api),
            UploadArtifact: lambda op, state: stage_artifact(op, env),
            PostComment: lambda op, state: self._no_comments(),
        })

    @staticmethod
    async def _no_comments() -> Outcome:
        return Outcome.unsupported(f"jenkins: {NO_COMMENTS}", tier="none")

    def _blocked(self, env: ProviderEnv) -> str | None:
        return missing_build(env) if env.token else _no_token()

    async def _status(self, op: SetStatus, env: ProviderEnv, api: ApiSession) -> Outcome:
        """A build status without a code host: its line in the build description."""
        blocked = self._blocked(env)
        if blocked is not None:
            return Outcome.unsupported(f"jenkins: build status {op.context!r}: {blocked}", tier="none")
        label, line = status_line(op.context, op.state, op.description, op.target_url)
        action = await write_line(api, env, self._locks, label, line)
        return Outcome.delivered(tier=DESCRIPTION, url=build_web_url(env),
                                 action="skipped" if action == "unchanged" else "updated")

    async def _publish(self, op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
        """The JUnit report staged for the ``junit`` step when the run ends, and the run's line in the build
        description (with a credential)."""
        area = staging_area(env)
        failed = area if isinstance(area, str) else None
        if op.final and not isinstance(area, str) and not state.get("junit_staged"):
            try:
                state["junit_staged"] = (await area.stage_junit(op.run, env)).relative
            except (StagingError, OSError) as exc:
                failed = str(exc)
                log.info("jenkins: staging the JUnit report of %r failed: %s", op.run.name, exc)
        blocked = self._blocked(env)
        if blocked is None:
            label, line = run_line(op.run, op.final, self._report_link(env, state))
            action = await write_line(api, env, self._locks, label, line)
            state["description"] = True
            return Outcome.delivered(tier=DESCRIPTION, url=build_web_url(env), remote=state,
                                     action="skipped" if action == "unchanged" else
                                     ("completed" if op.final else "updated"))
        if isinstance(area, str):
            return Outcome.unsupported(f"jenkins: {blocked}, and {area}", tier="none", remote=state)
        if not op.final:
            return Outcome.delivered(tier=JUNIT_STEP, action="deferred", remote=state,
                                     message="the JUnit report is staged when the run completes")
        if not state.get("junit_staged"):
            return Outcome.refused(f"jenkins: staging the JUnit report failed: {failed}", remote=state)
        return Outcome.delivered(tier=JUNIT_STEP, action="staged", remote=state,
                                 message=f"JUnit report staged as {state['junit_staged']} for the junit step")

    @staticmethod
    def _report_link(env: ProviderEnv, state: dict[str, Any]) -> str | None:
        """The configured full report, else the build's test report once the JUnit file is staged (Jenkins
        shows it there after the pipeline's junit step)."""
        configured = JenkinsSettings.of(env).full_report_url
        if configured:
            return configured
        base = build_web_url(env)
        return f"{base}testReport/ (after the junit step)" if base and state.get("junit_staged") else None

    async def read_run(self, run: RunSnapshot, env: ProviderEnv, remote: dict[str, Any]) -> dict[str, Any] | None:
        """The build as Jenkins shows it (``get_test_run_status``): running or its result, and the counts of its
        test report once the ``junit`` step recorded one (``testReport/api/json``)."""
        path, api = build_path(env), self._session(env)
        if path is None or api is None:
            return None
        try:
            build = (await api.request("GET", f"{path}/api/json", params={"tree": "building,result,url"})).json()
            report = await api.request("GET", f"{path}/testReport/api/json",
                                       params={"tree": "passCount,failCount,skipCount"}, allow=(404,))
        except HttpError as err:
            log.info("jenkins: reading build %s back failed: %s", path, api.redact(err.outcome.message))
            return None
        if not isinstance(build, dict):
            return None
        building = bool(build.get("building"))
        seen: dict[str, Any] = {"status": "in_progress" if building else "completed",
                                "conclusion": None if building else _RESULT.get(str(build.get("result"))),
                                "url": build.get("url") or build_web_url(env), "result": build.get("result")}
        tests = report.json() if report.status == 200 else None
        if isinstance(tests, dict):
            seen["tests"] = {k: tests.get(k) for k in ("passCount", "failCount", "skipCount")}
        return seen

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``get_artifact_url``: ``BUILD_URL/artifact/<path>`` once the build's artifact list holds the staged
        file (``api/json?tree=artifacts[relativePath]``); None before archiving."""
        relative = staged_relative(op, env, dict(remote or {}))
        api = self._session(env)
        if relative is None or api is None:
            return None
        try:
            archived = await archived_paths(api, env)
        except HttpError as err:
            log.info("jenkins: artifact list of the build failed: %s", api.redact(err.outcome.message))
            return None
        url = artifact_url(env, relative) if relative in archived else None
        return Outcome.delivered(url=url, tier="archived", remote={"relative_path": relative}) if url else None

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """``doctor --check``: the user the token signs in as, the build it reads, the crumb it gets; with
        ``--write`` the build's description written back unchanged (edit permission and the crumb proven)."""
        from .doctor import check_jenkins

        layer = rest_layer()  # its own clients: doctor runs each probe in a trio.run of its own
        try:
            return await check_jenkins(layer, ci, env, credential, write=write, trust_env=trust_env)
        finally:
            await layer.aclose()

    def write_budget(self, env: ProviderEnv) -> WriteBudget:
        """Jenkins has no rate limits: writes one at a time, a tenth of a second apart, no hourly budget."""
        return WriteBudget(requests_per_hour=None, min_spacing_s=0.1, limited_wait_s=30.0)

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: what the layer saw."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()
