"""Commit statuses: the build status of ``set_build_status``, and a test run's second tier.

GitHub keeps at most 1,000 statuses per commit and context (the next one is refused with 422), so a status
that would repeat the last one posted for its target is not sent again: the write is answered ``skipped``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .._http import ApiSession
from .._render import clip_chars, http_url
from ..base import Outcome, ProviderEnv, PublishRun, SetStatus
from ._api import STATUS_DESCRIPTION_CHARS, repo_path
from .names import check_name

__all__ = ["set_status", "run_status"]


def _unchanged(body: dict[str, Any], sha: str, state: dict[str, Any]) -> bool:
    return state.get("posted") == {**body, "sha": sha}


async def set_status(op: SetStatus, env: ProviderEnv, api: ApiSession, remote: dict[str, Any] | None = None) -> Outcome:
    """One commit status for ``op.context`` on the head SHA (not sent again when unchanged)."""
    repo = repo_path(env.ci.repository)
    sha = op.sha or env.ci.head_sha or env.ci.commit_sha
    if repo is None or not sha:
        return Outcome.refused("github: no repository (owner/repo) or commit SHA for the status")
    if not env.token:
        return Outcome.refused("github: a commit status needs a token")
    body: dict[str, Any] = {
        "state": "pending" if op.state == "running" else op.state,
        "context": op.context,
    }
    if op.description:
        body["description"] = clip_chars(op.description, STATUS_DESCRIPTION_CHARS)
    target = http_url(op.target_url)
    if target:
        body["target_url"] = target
    state = {"sha": sha, "context": op.context, "posted": {**body, "sha": sha}}
    if _unchanged(body, sha, remote or {}):
        return Outcome.delivered(url=target, remote=state, tier="commit status", action="skipped")
    await api.request("POST", f"{repo}/statuses/{quote(sha, safe='')}", json_body=body)
    return Outcome.delivered(url=target, remote=state, tier="commit status")


async def run_status(
    op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession, repo: str, sha: str, conclusion: str,
) -> Outcome:
    """A test run as a commit status named after the run (tokens that may not write check runs)."""
    run = op.run
    c = run.counts
    if run.status == "running" and not op.final:
        state_value = "pending"
    else:
        state_value = {"success": "success", "neutral": "success", "failure": "failure"}.get(conclusion, "error")
    parts = [f"{c.passed} passed", f"{c.failed + c.errors} failed", f"{c.skipped} skipped"]
    if c.flaky:
        parts.append(f"{c.flaky} flaky")
    prefix = "running: " if state_value == "pending" else ""
    body: dict[str, Any] = {
        "state": state_value,
        "context": state.setdefault("check_name", check_name(run.name, env)),
        "description": clip_chars(prefix + ", ".join(parts), STATUS_DESCRIPTION_CHARS),
    }
    target = http_url(run.details_url) or http_url(env.ci.job_url) or http_url(env.ci.build_url)
    if target:
        body["target_url"] = target
    state["tier"] = "commit_status"
    action = "completed" if op.final else "updated"
    if _unchanged(body, sha, state):
        action = "skipped"
    else:
        await api.request("POST", f"{repo}/statuses/{quote(sha, safe='')}", json_body=body)
        state["posted"] = {**body, "sha": sha}
    return Outcome.delivered(url=target, remote=state, tier="commit status", action=action)
