"""The GitHub provider class: capabilities, one attempt per delivery, read-backs (the work is in its siblings)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._gated import api_session
from .._deliver import deliver_with, lookup_or_none
from .._http import DEFAULT_PACING, HttpError, token_fingerprint
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
    ANNOTATIONS_PER_REQUEST,
    COMMENT_CHARS,
    DEFAULT_API_URL,
    STATUS_DESCRIPTION_CHARS,
    SUMMARY_BYTES,
    max_annotations,
    repo_path,
    rest_config,
    rest_layer,
    step_summary_path,
    token_kind,
)
from .checks import publish
from .comments import post_comment
from .statuses import set_status

__all__ = ["GitHubProvider"]

log = logging.getLogger("ci_sidecar.providers.github")

_READ_BACK_KEPT = 1000


class GitHubProvider:
    """GitHub REST v3 (``base_url`` from the session, the job's ``GITHUB_API_URL``, or api.github.com)."""

    name: ClassVar[str] = "github"

    def __init__(self, *, pacing: tuple[tuple[int, float], ...] = DEFAULT_PACING) -> None:
        self._http = rest_layer(pacing=pacing)
        #: the last read-back of each check run: (ETag, what it said), for conditional requests
        self._read_back: dict[tuple[str, str, int, str], tuple[str, dict[str, Any]]] = {}

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """Tiers from what the session has: token kind (by GitHub's prefixes), job summary file, runtime token."""
        kind = token_kind(env.token)
        step = step_summary_path(env) is not None
        if kind == "none":
            test_run = (Tier(kind="fallback", via="job summary", note="no GitHub token: job summary only")
                        if step else Tier(kind="none", note="no GitHub token"))
        elif kind == "pat":
            test_run = Tier(kind="fallback", via="commit status", note="personal access tokens cannot create check runs")
        else:
            test_run = Tier(kind="native", via="check run")
        none = Tier(kind="none", note="no GitHub token")
        from .runtime import ARTIFACTS_PER_JOB, actions_artifact_tier  # the Actions artifact service (v4)

        artifacts = actions_artifact_tier(env) or Tier(kind="none", note=_artifact_note(env))
        return ProviderCaps(
            provider="github",
            test_run=test_run,
            build_status=Tier(kind="native", via="commit status") if env.token else none,
            pr_comment=Tier(kind="native", via="issue comment") if env.token else none,
            artifacts=artifacts,
            limits={
                "comment_bytes": COMMENT_CHARS,
                "summary_bytes": SUMMARY_BYTES,
                "annotations_per_request": ANNOTATIONS_PER_REQUEST,
                "max_annotations": max_annotations(env),
                "status_description_chars": STATUS_DESCRIPTION_CHARS,
                "content_creation_per_minute": DEFAULT_PACING[0][0],
                "artifacts_per_job": ARTIFACTS_PER_JOB,
            },
        )

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt; provider-side failures come back as Outcomes (token redacted), never as exceptions."""
        api = api_session(self._http, rest_config(env), env.token, env.log, env.writes)
        return await deliver_with("github", op, remote, api, {
            PublishRun: lambda op, state: publish(op, env, state, api),
            SetStatus: lambda op, state: set_status(op, env, api, state),
            PostComment: lambda op, state: post_comment(op, env, state, api),
            UploadArtifact: lambda op, state: self._upload(op, env, state),
        })

    async def _upload(self, op: UploadArtifact, env: ProviderEnv, state: dict[str, Any]) -> Outcome:
        from .artifacts import upload_artifact  # env.token is the ACTIONS_RUNTIME_TOKEN here

        return await upload_artifact(op, env, state, self._http)

    async def read_run(self, run: RunSnapshot, env: ProviderEnv, remote: dict[str, Any]) -> dict[str, Any] | None:
        """The check run as GitHub shows it (``get_test_run_status`` reads it back): status, conclusion,
        URL and annotation count; None when the run has no check run (another tier) or GitHub did not answer."""
        check_id = (remote or {}).get("check_run_id")
        repo = repo_path(run.repository or env.ci.repository)
        if check_id is None or repo is None:
            return None
        config = rest_config(env)
        api = self._http.session(config, env.token, env.log)
        # a conditional request: GitHub answers 304 (free of the rate limit) while the check run is unchanged
        key = (config.base_url, repo, int(check_id), token_fingerprint(env.token))
        known = self._read_back.get(key)
        headers = {"If-None-Match": known[0]} if known else None
        try:
            resp = await api.request("GET", f"{repo}/check-runs/{int(check_id)}", headers=headers, allow=(304,))
        except HttpError as err:
            log.info("github: reading check run %s back failed: %s", check_id, api.redact(err.outcome.message))
            return None
        if resp.status == 304 and known is not None:
            return dict(known[1])
        body = resp.json()
        seen = {"status": body.get("status"), "conclusion": body.get("conclusion"), "url": body.get("html_url"),
                "annotations": int((body.get("output") or {}).get("annotations_count") or 0)}
        if resp.headers.get("etag"):
            self._read_back[key] = (resp.headers["etag"], seen)
            while len(self._read_back) > _READ_BACK_KEPT:
                self._read_back.pop(next(iter(self._read_back)))
        return seen

    def unrecorded(self, remote: dict[str, Any]) -> dict[str, Any]:
        """A check run not known yet is looked up by head SHA and ``external_id`` before it is created (under any
        name when its name was not recorded either: its maker may have named it after its own matrix values); one
        known has its annotations counted again before more are appended."""
        state = dict(remote)
        if state.get("check_run_id") is not None:
            state["inflight"] = True
        elif "check_name" not in state:
            state["any_name"] = True
        return state

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``get_artifact_url`` when the upload's URL is unknown: the run's REST artifact list, verified by digest
        (:func:`.artifact_lookup.lookup_artifact`); None when not found, not ours, or the API failed."""
        from .artifact_lookup import lookup_artifact

        api = self._http.session(rest_config(env), env.token, env.log)
        return await lookup_or_none("github", "artifact lookup", op.name, api,
                                    lookup_artifact(op, env, dict(remote or {}), api))

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """``doctor --check``: the probes of :mod:`.doctor` with the session's bound token (else none: the job
        summary tier), against the token's URL, else the job's ``GITHUB_API_URL``, else api.github.com."""
        from .doctor import check_github

        base = credential.base_url if credential is not None else (env.get("GITHUB_API_URL") or DEFAULT_API_URL)
        token = credential.secret.reveal() if credential is not None else None
        return await check_github(ci, env, token, base_url=str(base), write=write, trust_env=trust_env)

    def job_log_format(self, ci: CIContext, counts: Mapping[str, int]) -> str | None:
        """Inside GitHub Actions, a run with failures prints ``::error file=…,line=…`` workflow commands to the job
        log: the annotation tier that needs no token (fork PRs, Dependabot)."""
        failed = counts.get("failed", 0) or counts.get("errors", 0)
        return "github-annotations" if ci.provider == "github" and failed else None

    def write_budget(self, env: ProviderEnv) -> WriteBudget:
        """GitHub's numbers: an Actions ``GITHUB_TOKEN`` (or App installation token) has 1,000 requests an hour
        per repository, shared by every job; a personal token 5,000 (the ``x-ratelimit-*`` headers correct
        both); at least 1 s between writes; a limit without ``retry-after`` means waiting a minute or more."""
        per_hour = 5000 if token_kind(env.token) == "pat" else 1000
        return WriteBudget(requests_per_hour=per_hour, min_spacing_s=1.0, limited_wait_s=60.0)

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: the last rate-limit headers seen."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()


def _artifact_note(env: ProviderEnv) -> str:
    return ("GitHub artifacts need ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL (not exposed to run: steps); "
            "configure the S3 artifact backend")
