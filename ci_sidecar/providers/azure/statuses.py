"""Statuses on Azure Repos: a commit status and, on pull request builds, a pull request status, both keyed by
``context`` (``genre`` ci-sidecar, ``name`` the run's name or ``set_build_status``'s context).

Azure keeps every status posted and shows the latest per context, so a status already shown is not posted again
(``remote`` remembers the last one sent per target); a lost answer at worst repeats the same status, which changes
nothing a person sees.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .._http import ApiSession
from .._render import CONCLUSIONS, clip_chars, http_url
from ..base import Outcome, ProviderEnv, PublishRun, SetStatus
from ._api import V, repo_path
from .settings import AzureSettings

__all__ = ["set_status", "run_status", "STATES", "pull_request"]

#: ``SetStatus.state`` → ``GitStatusState``
STATES = {"pending": "pending", "running": "pending", "success": "succeeded", "failure": "failed", "error": "error"}
_CONCLUSION_STATE = {"success": "succeeded", "neutral": "succeeded", "failure": "failed", "timed_out": "failed",
                     "cancelled": "error"}
#: a status description Azure shows in one line
DESCRIPTION_CHARS = 256


def pull_request(env: ProviderEnv) -> int | None:
    """The Azure Repos pull request of a PR build (``SYSTEM_PULLREQUEST_PULLREQUESTID``), else None."""
    raw = AzureSettings.of(env).pull_request_id
    if raw and raw.isdigit():
        return int(raw)
    return env.ci.pr_number


def _commit(env: ProviderEnv, *candidates: str | None) -> str | None:
    """The commit a status goes on: the PR's source commit on PR builds, else the built one."""
    return next((c for c in candidates if c), None) or env.ci.head_sha or env.ci.commit_sha


async def _post(api: ApiSession, path: str, body: dict[str, Any], state: dict[str, Any], key: str) -> bool:
    """POST ``body`` to ``path`` unless the same status was the last one sent there (True when sent)."""
    shown = {k: body.get(k) for k in ("state", "description", "targetUrl")}
    if state.get(key) == shown:
        return False
    await api.request("POST", path, params=V, json_body=body)
    state[key] = shown
    return True


async def _write(env: ProviderEnv, api: ApiSession, state: dict[str, Any], sha: str, name: str, wanted: str,
                 description: str | None, url: str | None) -> bool:
    repo = repo_path(env)
    assert repo is not None
    body: dict[str, Any] = {"state": wanted, "context": {"name": clip_chars(name, 256),
                                                         "genre": AzureSettings.of(env).status_genre}}
    if description:
        body["description"] = clip_chars(description, DESCRIPTION_CHARS)
    if url := http_url(url):
        body["targetUrl"] = url
    sent = await _post(api, f"{repo}/commits/{quote(sha, safe='')}/statuses", body, state, "commit_sent")
    pr = pull_request(env)
    if pr:
        sent = await _post(api, f"{repo}/pullRequests/{pr}/statuses", body, state, "pr_sent") or sent
    return sent


def _no_repo(env: ProviderEnv) -> Outcome:
    return Outcome.refused("azure: statuses go on Azure Repos repositories only (BUILD_REPOSITORY_ID with "
                           "BUILD_REPOSITORY_PROVIDER=TfsGit); another code host takes them as the scm provider")


async def set_status(op: SetStatus, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """``set_build_status``: a commit status (and a PR status on PR builds) named ``op.context``."""
    sha = _commit(env, op.sha)
    if repo_path(env) is None or not sha:
        return _no_repo(env) if sha else Outcome.refused("azure: no commit (BUILD_SOURCEVERSION) for the status")
    sent = await _write(env, api, state, sha, op.context, STATES[op.state], op.description, op.target_url)
    return Outcome.delivered(url=http_url(op.target_url), remote=state, tier="commit status",
                             action="updated" if sent else "skipped")


def run_state(op: PublishRun) -> str:
    """``pending`` while the run runs, else from its conclusion (or its counts)."""
    run = op.run
    if run.status == "running" and not op.final:
        return "pending"
    if run.conclusion in CONCLUSIONS:
        return _CONCLUSION_STATE.get(run.conclusion or "", "failed")
    return "failed" if run.counts.failed or run.counts.errors else "succeeded"


async def run_status(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession,
                     url: str | None) -> None:
    """The run's status (named after the run) on an Azure Repos commit and PR; nothing for another code host."""
    run = op.run
    sha = _commit(env, run.head_sha, run.commit_sha)
    if repo_path(env) is None or not sha:
        return
    c = run.counts
    wanted = run_state(op)
    # every status posted stays in Azure's list: a running run's status is posted once, not per live update
    description = "running" if wanted == "pending" else \
        f"{c.passed} passed, {c.failed + c.errors} failed, {c.skipped} skipped"
    status: dict[str, Any] = state.setdefault("status", {})
    await _write(env, api, status, sha, run.name, wanted, description, url)
