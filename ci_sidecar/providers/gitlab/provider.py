"""The GitLab provider class: tiers per token, one attempt per delivery, read-backs (the work is in its siblings)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._deliver import deliver_with, lookup_or_none
from .._gated import api_session
from .._http import ApiSession, HttpError, token_fingerprint
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
from ._api import (
    DEFAULT_API_URL,
    JOB_TOKEN_NOTE,
    NOTE_CHARS,
    TEXT_CHARS,
    auth_for,
    project_path,
    rest_config,
    rest_layer,
    token_kind,
)
from .._staging import StagingError
from .artifacts import lookup_package_file, staging_area, upload_artifact
from .notes import post_note
from .settings import GitLabSettings
from .statuses import FINAL_STATES, run_status, set_status, status_sha

__all__ = ["GitLabProvider"]

log = logging.getLogger("ci_sidecar.providers.gitlab")

#: the staged tier of a run: its JUnit report, for the job's ``artifacts:reports:junit``
JUNIT_TIER = "artifacts:reports:junit"

_RUN_STATE = {"success": ("completed", "success"), "failed": ("completed", "failure"),
              "canceled": ("completed", "cancelled"), "skipped": ("completed", "skipped"),
              "running": ("in_progress", None), "pending": ("queued", None), "created": ("queued", None)}


class GitLabProvider:
    """GitLab REST v4 (``base_url`` from the token's binding, the job's ``CI_API_V4_URL``, or gitlab.com)."""

    name: ClassVar[str] = "gitlab"

    def __init__(self) -> None:
        self._http = rest_layer()
        self._users: dict[str, int] = {}  # token fingerprint → the token's user id (whose notes are ours)
        self._told: set[str] = set()  # job tokens whose limits were already explained

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """Tiers from the token: a project/personal token does everything natively; the job token only packages
        (statuses and notes answer with why); without a token the JUnit report and artifacts are staged."""
        kind = token_kind(env)
        staged = bool(GitLabSettings.of(env).project_dir)
        junit = Tier(kind="staged", via=JUNIT_TIER, note="the JUnit report is staged for the job's "
                     "artifacts:reports:junit; GitLab shows it in the merge request when the job ends")
        if kind == "api":
            test_run = Tier(kind="native", via="commit status")
            status = Tier(kind="native", via="commit status")
            note = Tier(kind="native", via="merge request note")
        else:
            why = JOB_TOKEN_NOTE if kind == "job" else "no GitLab token (GITLAB_TOKEN)"
            test_run = Tier(kind=junit.kind, via=junit.via, note=f"{why}; {junit.note}") if staged else \
                Tier(kind="none", note=why)
            status = note = Tier(kind="none", note=why)
        if kind != "none":
            artifacts = Tier(kind="native", via="generic package registry")
        elif staged:
            artifacts = Tier(kind="staged", via="artifacts:paths", note="copied for the job's artifacts:paths; "
                             "available when the job ends")
        else:
            artifacts = Tier(kind="none", note="no GitLab token and not inside a GitLab job")
        return ProviderCaps(provider="gitlab", test_run=test_run, build_status=status, pr_comment=note,
                            artifacts=artifacts, limits={"note_chars": NOTE_CHARS, "status_description_chars":
                                                         TEXT_CHARS, "status_target_url_chars": TEXT_CHARS})

    def _session(self, env: ProviderEnv) -> ApiSession:
        return api_session(self._http, rest_config(env), env.token, env.log, env.writes, auth=auth_for(env))

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt; provider-side failures come back as Outcomes (token redacted), never as exceptions."""
        api = self._session(env)

        async def status(op: SetStatus, state: dict[str, Any]) -> Outcome:
            if token_kind(env) != "api":
                return self._cannot_write(env, api, "commit statuses")
            return await set_status(op, env, state, api)

        async def note(op: PostComment, state: dict[str, Any]) -> Outcome:
            if token_kind(env) != "api":
                return self._cannot_write(env, api, "notes")
            return await post_note(op, env, state, api, await self._user(env, api), self._note_url(env))

        return await deliver_with("gitlab", op, remote, api, {
            PublishRun: lambda op, state: self._publish(op, env, state, api),
            SetStatus: status,
            PostComment: note,
            UploadArtifact: lambda op, state: upload_artifact(op, env, state, api),
        })

    def _cannot_write(self, env: ProviderEnv, api: ApiSession, what: str) -> Outcome:
        """The job token's answer for statuses and notes: said once per token, never sent (GitLab answers 401/403,
        and retrying that would loop)."""
        why = JOB_TOKEN_NOTE if token_kind(env) == "job" else "no GitLab token (GITLAB_TOKEN)"
        key = token_fingerprint(env.token)
        if key not in self._told:
            self._told.add(key)
            api.log(why)
        return Outcome.unsupported(f"gitlab: {what}: {why}", tier="none")

    async def _publish(self, op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
        """The run's JUnit report staged for ``artifacts:reports:junit`` when it ends (every tier), and with a
        project or personal token its commit status."""
        area = staging_area(env)
        failed = area if isinstance(area, str) else None
        if op.final and not isinstance(area, str) and not state.get("junit_staged"):
            try:
                state["junit_staged"] = (await area.stage_junit(op.run, env)).relative
            except (StagingError, OSError) as exc:
                failed = str(exc)
                api.log(f"staging the JUnit report failed: {exc}")
        if token_kind(env) == "api":
            return await run_status(op, env, state, api)
        self._cannot_write(env, api, "commit statuses")
        if isinstance(area, str):
            return Outcome.unsupported(f"gitlab: no token for commit statuses, and {area}", tier="none", remote=state)
        if not op.final:
            return Outcome.delivered(tier=JUNIT_TIER, action="deferred", remote=state,
                                     message="the JUnit report is staged when the run completes")
        if not state.get("junit_staged"):
            return Outcome.refused(f"gitlab: staging the JUnit report failed: {failed}", remote=state)
        return Outcome.delivered(tier=JUNIT_TIER, action="staged", remote=state,
                                 message=f"JUnit report staged as {state['junit_staged']} for artifacts:reports:junit")

    async def _user(self, env: ProviderEnv, api: ApiSession) -> int | None:
        """The token's user id (a note is ours only when this user wrote it), asked once per token."""
        key = token_fingerprint(env.token)
        if key not in self._users:
            user = (await api.request("GET", "/user")).json() or {}
            if not isinstance(user.get("id"), int):
                return None
            self._users[key] = user["id"]
        return self._users[key]

    @staticmethod
    def _note_url(env: ProviderEnv) -> Any:
        base = GitLabSettings.of(env).project_url

        def url(iid: int, note: dict[str, Any]) -> str | None:
            if not base or note.get("id") is None:
                return None
            return f"{base.rstrip('/')}/-/merge_requests/{iid}#note_{note['id']}"

        return url

    async def read_run(self, run: RunSnapshot, env: ProviderEnv, remote: dict[str, Any]) -> dict[str, Any] | None:
        """The run's commit status as GitLab shows it (``get_test_run_status``); None without one."""
        project, sha = project_path(env), status_sha(env, run)
        if token_kind(env) != "api" or project is None or not sha or (remote or {}).get("tier") != "commit_status":
            return None
        api = self._session(env)
        try:
            resp = await api.request("GET", f"{project}/repository/commits/{quote(sha, safe='')}/statuses",
                                     params={"name": run.name[:TEXT_CHARS], "per_page": 100})
        except HttpError as err:
            log.info("gitlab: reading status %r back failed: %s", run.name, api.redact(err.outcome.message))
            return None
        mine = [s for s in resp.json() or [] if isinstance(s, dict) and s.get("name") == run.name[:TEXT_CHARS]]
        if not mine:
            return None
        latest = max(mine, key=lambda s: int(s.get("id") or 0))
        status, conclusion = _RUN_STATE.get(str(latest.get("status")), ("queued", None))
        return {"status": status, "conclusion": conclusion, "url": latest.get("target_url"),
                "state": latest.get("status"), "description": latest.get("description"),
                "final": latest.get("status") in FINAL_STATES}

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``get_artifact_url``: the package file, when the registry holds exactly this content (SHA-256)."""
        if not env.token:
            return None
        api = self._session(env)
        return await lookup_or_none("gitlab", "package lookup", op.name, api, lookup_package_file(op, env, api))

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """``doctor --check``: read the project, write (with ``--write``) a status; names the missing ``api`` scope."""
        from .doctor import check_gitlab

        base = credential.base_url if credential is not None else (env.get("CI_API_V4_URL") or DEFAULT_API_URL)
        return await check_gitlab(self._http, ci, env, credential, base_url=str(base), write=write,
                                  trust_env=trust_env)

    def write_budget(self, env: ProviderEnv) -> WriteBudget:
        """GitLab publishes its limits in ``RateLimit-*`` headers (gitlab.com: 2,000 API requests a minute per
        user; self-managed: as configured), learned from them; writes half a second apart, a minute's pause
        after a 429 that names no wait."""
        return WriteBudget(requests_per_hour=None, min_spacing_s=0.5, limited_wait_s=60.0)

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: the last rate-limit headers seen."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()
