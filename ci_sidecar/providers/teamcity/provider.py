"""The TeamCity provider class: tiers, one attempt per delivery, the job-log stream for ``ci-sidecar exec``.

TeamCity takes test results as service messages in the build log, parsed by its agent
(https://www.jetbrains.com/help/teamcity/service-messages.html):

* under ``ci-sidecar exec`` (the session says ``job_log = "client"``) exec prints them while the tests run,
  reading the run with ``read_test_results``; nothing goes through REST, so nothing is there twice;
* otherwise, with ``TEAMCITY_TOKEN`` bound to the server (``[providers.teamcity] base_url``) and the build id from
  the build's properties file, the same messages go to the build's log through REST (:mod:`.rest`), with the
  status text and a tag;
* with neither, there is no tier for results, and the run says how to get one.

Artifacts are staged in the checkout and published with ``publishArtifacts`` (by exec) or the build's artifact
paths. TeamCity has no commit statuses or pull request comments of its own: those go to the code host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._deliver import deliver_with, lookup_or_none
from .._gated import api_session
from .._http import ApiSession, Bearer, HttpConfig, HttpError
from .._staging import StagingArea, StagingError, repository_root
from ..base import (
    CheckItem,
    CheckReport,
    Operation,
    Outcome,
    PostComment,
    ProviderEnv,
    PublishRun,
    SetStatus,
    UploadArtifact,
)
from ..writes import WriteBudget
from .job_log import TeamCityJobLog, workspace_of
from .rest import build_path, lookup, publish_rest, rest_config, rest_layer
from .settings import ARTIFACT_DIR, TeamCitySettings

__all__ = ["TeamCityProvider"]


_EXEC_TIER = "service messages (ci-sidecar exec)"
_REST_TIER = "service messages (REST)"
_NO_STREAM = ("TeamCity takes test results as service messages in the build log: run the tests under "
              "`ci-sidecar exec -- COMMAND`, which prints them as results arrive, or set TEAMCITY_TOKEN and "
              "[providers.teamcity] base_url (the server's URL) to send them through REST")
_VIA_SCM = "TeamCity has no {what} of its own: they go to the code host (scm_provider)"

Mode = Literal["client", "rest", "none"]


def mode(env: ProviderEnv, run_id: str | None = None) -> Mode:
    """``client``: exec prints the run (exec's own session, or a command exec runs reporting exec's run
    *run_id*); ``rest``: a bound token and a build id; ``none``: neither."""
    settings = TeamCitySettings.of(env)
    if settings.job_log == "client" or (settings.exec_run_id and run_id in (None, settings.exec_run_id)):
        return "client"
    return "rest" if env.token and env.base_url and env.ci.build_id else "none"


def _area(env: ProviderEnv) -> StagingArea:
    settings = TeamCitySettings.of(env)
    return StagingArea(workspace_of(settings.session_cwd, settings.repository_root), settings.staged_dir)


class TeamCityProvider:
    """TeamCity (self-hosted or Cloud): the build log through ``ci-sidecar exec`` or REST, staged artifacts."""

    name: ClassVar[str] = "teamcity"

    def __init__(self) -> None:
        self._http = rest_layer()
        #: (server, build, run) whose log progress this process has read back (after a start, once per run)
        self._checked: set[tuple[str, ...]] = set()

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """The run's tier from the mode; artifacts are always staged; statuses and comments via the code host."""
        settings = TeamCitySettings.of(env)
        kind = mode(env)
        test_run = {"client": Tier(kind="native", via=_EXEC_TIER), "rest": Tier(kind="native", via=_REST_TIER),
                    "none": Tier(kind="none", note=_NO_STREAM)}[kind]
        published = "published by ci-sidecar exec (publishArtifacts)" if kind == "client" else (
            f"add `{settings.staged_dir}/artifacts => {ARTIFACT_DIR}` to the build's artifact paths")
        return ProviderCaps(
            provider="teamcity", test_run=test_run,
            build_status=Tier(kind="none", note=_VIA_SCM.format(what="commit statuses")),
            pr_comment=Tier(kind="none", note=_VIA_SCM.format(what="pull request comments")),
            artifacts=Tier(kind="staged", via=f"{settings.staged_dir}/artifacts", note=published),
            limits={})

    def _session(self, env: ProviderEnv) -> ApiSession:
        return api_session(self._http, rest_config(env), env.token, env.log, env.writes)

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt; provider-side failures come back as Outcomes (credential redacted), never as exceptions."""
        state = dict(remote or {})
        if isinstance(op, UploadArtifact):
            return await self._stage(op, env)
        if not isinstance(op, PublishRun):
            what = "commit statuses" if isinstance(op, SetStatus) else (
                "pull request comments" if isinstance(op, PostComment) else type(op).__name__)
            return Outcome.unsupported("teamcity: " + _VIA_SCM.format(what=what), tier="none")
        kind = mode(env, op.run.id)
        if kind == "client":
            # exec reads the run itself (read_test_results) and prints it: nothing to send from here
            return Outcome.delivered(tier=_EXEC_TIER, remote=state,
                                     message="teamcity: the run streams into the build log through ci-sidecar exec")
        if kind == "none":
            return Outcome.unsupported(f"teamcity: {_NO_STREAM}", tier="none", remote=state)
        api = self._session(env)
        # a failure keeps the progress so far, and an unanswered chunk as "inflight"
        return await deliver_with("teamcity", op, state, api, {
            PublishRun: lambda op, state: publish_rest(op, env, state, api, self._checked)})

    async def _stage(self, op: UploadArtifact, env: ProviderEnv) -> Outcome:
        try:
            staged = await _area(env).stage_artifact(op)
        except (StagingError, OSError) as exc:
            return Outcome.unsupported(f"teamcity: the artifact could not be staged: {exc}", tier="none")
        how = ("ci-sidecar exec publishes it at the end of the run" if mode(env, op.run_id) == "client"
               else "the build's artifact paths publish it")
        return Outcome.delivered(tier="staged", action="staged", remote={"staged_path": staged.relative},
                                 message=f"staged as {staged.relative}; {how} "
                                         f"as {ARTIFACT_DIR}/{op.run_id}/{op.name}")

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``get_artifact_url``: the artifact among the build's artifacts once TeamCity has it (needs the token)."""
        if not (env.token and env.base_url and env.ci.build_id):
            return None
        api = self._session(env)
        return await lookup_or_none("teamcity", "artifact lookup", op.name, api, lookup(op, env, api))

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """Reads the build with the token (the REST tier's reach); exec's tier needs no token. Read-only always:
        the REST tier's only writes go to the running build's log."""
        report = CheckReport(provider="teamcity", tier=_REST_TIER if credential is not None else _EXEC_TIER,
                             write=write)
        token = credential.secret.reveal() if credential is not None else None
        if token is None or not credential.base_url:
            report.items.append(CheckItem(name="token", result="skipped", detail=(
                "no TEAMCITY_TOKEN bound to a server: results reach the build log only through `ci-sidecar exec` "
                "(service messages need no token)")))
            return report
        if not ci.build_id:
            report.items.append(CheckItem(name="build", result="failed", detail=(
                "no build id: TEAMCITY_BUILD_PROPERTIES_FILE is not set or has no teamcity.build.id")))
            return report
        fake_env = ProviderEnv(ci=ci, base_url=credential.base_url, token=token)
        api = self._http.session(HttpConfig.from_env_config(credential.base_url.rstrip("/"), {"trust_env": trust_env}),
                                 token, None, auth=Bearer())
        try:
            build = (await api.request("GET", build_path(fake_env))).json() or {}
            report.items.append(CheckItem(name="build", result="proven", detail=api.redact(
                f"the token reads build {ci.build_id} ({build.get('state', '?')}) on {credential.base_url}")))
            await api.request("GET", f"{build_path(fake_env)}/tags")
            report.items.append(CheckItem(name="build log", result="unproven", detail=(
                "the token reads the build's tags; writing to its log is not tried (it would show in the log)")))
        except HttpError as err:
            report.items.append(CheckItem(name="build", result="failed", detail=api.redact(
                f"build {ci.build_id} is not readable with this token: {err.outcome.message}")))
        return report

    def job_log_stream(self, ci: CIContext, run: Mapping[str, Any]) -> TeamCityJobLog | None:
        """Inside TeamCity, the run as service messages for ``exec`` to print (None elsewhere)."""
        if ci.provider != "teamcity":
            return None
        cwd = os.getcwd()  # exec's own, which is its session's: the same workspace the daemon stages into
        return TeamCityJobLog(run, workspace_of(cwd, repository_root(cwd)))

    def write_budget(self, env: ProviderEnv) -> WriteBudget:
        """TeamCity (self-hosted, Cloud) documents no rate limits: requests are counted locally, and a run's log
        chunks go out back to back (a short spacing only keeps one token from flooding a server)."""
        return WriteBudget(min_spacing_s=0.05, limited_wait_s=30.0)

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: the last rate-limit headers seen."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()
