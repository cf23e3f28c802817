"""Commit statuses: a test run as a status named after the run, and the build status of ``set_build_status``.

GitLab's statuses are a state machine per (sha, ref, name): a status that is pending or running is moved on by the
next write, a finished one is followed by a new status. Writes that are not a legal transition (running again,
pending after running) answer 400 "Cannot transition status via :run from :running" — what was wanted is already
shown, so that answer is success, never a retry. GitLab keeps a status's description only with a transition, so
the live counts go out on the transitions a run really makes: ``pending`` ("waiting for results") while it has
none, ``running`` with the counts of the first update that has results, and the final state with the end result;
running → running is never sent (GitLab would refuse it and show nothing new). A final write whose answer was lost
is read back before it is sent again (a second POST would add a second status with the same name).
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any
from urllib.parse import quote

from .._http import ApiSession, HttpError
from .._render import CONCLUSIONS, clip_chars, http_url
from ..base import Outcome, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ._api import TEXT_CHARS, project_path, transition_from
from .settings import GitLabSettings

__all__ = ["set_status", "run_status", "status_sha", "STATES", "FINAL_STATES"]

#: ``SetStatus.state`` → GitLab's state
STATES = {"pending": "pending", "running": "running", "success": "success", "failure": "failed", "error": "failed"}
FINAL_STATES = frozenset({"success", "failed", "canceled", "skipped"})
_CONCLUSION_STATE = {"success": "success", "neutral": "success", "failure": "failed", "timed_out": "failed",
                     "cancelled": "canceled"}


def status_sha(env: ProviderEnv, run: RunSnapshot | None = None, sha: str | None = None) -> str | None:
    """The commit a status goes on: the MR's source commit (``CI_MERGE_REQUEST_SOURCE_BRANCH_SHA``) when set."""
    if sha:
        return sha
    if run is not None and (run.head_sha or run.commit_sha):
        return run.head_sha or run.commit_sha
    return env.ci.head_sha or env.ci.commit_sha


def _body(env: ProviderEnv, sha: str, state: str, name: str, description: str | None,
          target: str | None, coverage: float | None = None) -> dict[str, Any]:
    settings = GitLabSettings.of(env)
    body: dict[str, Any] = {"state": state, "name": clip_chars(name, TEXT_CHARS)}
    ref = env.ci.branch or settings.commit_ref
    if ref and len(ref) <= TEXT_CHARS:
        body["ref"] = ref
    # the job's pipeline only holds the commit it was built for (a merged-results pipeline's commit is not the
    # MR's source commit: naming it there would make GitLab look for the status in the wrong pipeline)
    pipeline = settings.pipeline_id or env.ci.build_id
    if pipeline and pipeline.isdigit() and sha == env.ci.commit_sha:
        body["pipeline_id"] = int(pipeline)
    if description:
        body["description"] = clip_chars(description, TEXT_CHARS)
    url = http_url(target)
    if url and len(url) <= TEXT_CHARS:  # a clipped URL would lead nowhere: leave it out instead
        body["target_url"] = url
    if coverage is not None:
        body["coverage"] = round(coverage, 2)
    return body


async def _latest(api: ApiSession, project: str, sha: str, name: str, ref: str | None) -> dict[str, Any] | None:
    """The newest status named ``name`` on ``sha`` (GitLab lists the latest per name unless ``all``)."""
    path = f"{project}/repository/commits/{quote(sha, safe='')}/statuses"
    found = None
    async with aclosing(api.paginate(path, {"name": name, "ref": ref, "per_page": 100}, max_pages=5)) as pages:
        async for page in pages:
            for status in page.json() or []:
                if isinstance(status, dict) and status.get("name") == name:
                    if found is None or int(status.get("id") or 0) > int(found.get("id") or 0):
                        found = status
    return found


def _same(status: dict[str, Any], body: dict[str, Any]) -> bool:
    """GitLab's status is the one ``body`` would post (its state, description and link)."""
    return status.get("status") == body["state"] and all(
        status.get(key) == body.get(key) for key in ("description", "target_url"))


async def _write(api: ApiSession, project: str, sha: str, body: dict[str, Any], state: dict[str, Any],
                 *, live: bool, resumed: bool) -> str:
    """Send one status (or not, when GitLab already shows it); what happened: ``sent``, ``shown`` or ``kept``.

    ``state`` is the target's remote record: the last state delivered (``sent``). GitLab adds a second status
    when a finished one is posted again, so a final state that an earlier attempt may have posted (``resumed``:
    a retry, or a write a restarted daemon resumes — a kill -9 after GitLab stored it leaves no trace in the
    journal) is read back first.
    """
    wanted = body["state"]
    sent = state.get("sent")
    if live and sent in ("pending", "running") and (wanted == sent or (sent, wanted) == ("running", "pending")):
        return "kept"  # running → running (or back to pending) is not a transition GitLab makes
    if resumed and wanted in FINAL_STATES:
        latest = await _latest(api, project, sha, body["name"], body.get("ref"))
        if latest is not None and _same(latest, body):
            state["sent"] = wanted
            return "shown"
    try:
        await api.request("POST", f"{project}/statuses/{quote(sha, safe='')}", json_body=body)
    except HttpError as err:
        moved = transition_from(err)
        if moved is None or not (moved[1] == wanted or live):
            raise
        state["sent"] = moved[1]
        api.log(f"status {body['name']!r} is already {moved[1]} on GitLab: nothing to change")
        return "shown"
    state["sent"] = wanted
    return "sent"


def _no_target(env: ProviderEnv, project: str | None, sha: str | None) -> Outcome | None:
    if project is None or not sha:
        return Outcome.refused("gitlab: no project (CI_PROJECT_ID or CI_PROJECT_PATH) or commit SHA for the status")
    return None


async def set_status(op: SetStatus, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """``set_build_status``: a commit status named ``op.context``."""
    project, sha = project_path(env), status_sha(env, sha=op.sha)
    missing = _no_target(env, project, sha)
    if missing is not None:
        return missing
    assert project is not None and sha is not None
    wanted = STATES[op.state]
    body = _body(env, sha, wanted, op.context, op.description, op.target_url)
    state.update(sha=sha, context=op.context)
    try:
        action = await _write(api, project, sha, body, state, live=wanted not in FINAL_STATES,
                              resumed=not env.never_sent)
    except HttpError as err:
        err.outcome.remote = state
        raise
    return Outcome.delivered(url=body.get("target_url"), remote=state, tier="commit status",
                             action="skipped" if action == "kept" else "updated")


def run_state(op: PublishRun) -> str:
    """GitLab's state for a run: ``pending`` until it has results, ``running`` from then on while it runs, else
    from its conclusion (or its counts)."""
    run = op.run
    if run.status == "running" and not op.final:
        return "running" if run.counts.total or run.results_end else "pending"
    if run.conclusion in CONCLUSIONS:
        return _CONCLUSION_STATE.get(run.conclusion or "", "failed")
    c = run.counts
    return "failed" if c.failed or c.errors else "success"


def run_description(run: RunSnapshot, state: str) -> str:
    """The counts as the status's description (``pending``: no results yet)."""
    if state == "pending":
        return "waiting for results"
    c = run.counts
    parts = [f"{c.passed} passed", f"{c.failed + c.errors} failed", f"{c.skipped} skipped"]
    if c.flaky:
        parts.append(f"{c.flaky} flaky")
    return ("running: " if state == "running" else "") + ", ".join(parts)


async def run_status(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """A test run as a commit status named after the run, with its counts in the description."""
    run = op.run
    project, sha = project_path(env), status_sha(env, run)
    missing = _no_target(env, project, sha)
    if missing is not None:
        missing.remote = state
        return missing
    assert project is not None and sha is not None
    wanted = run_state(op)
    target = http_url(run.details_url) or http_url(env.ci.job_url) or http_url(env.ci.build_url)
    body = _body(env, sha, wanted, run.name, run_description(run, wanted), target, run.coverage)
    action = await _write(api, project, sha, body, state, live=not op.final, resumed=not env.never_sent)
    state["tier"] = "commit_status"
    if action == "kept":
        return Outcome.delivered(url=body.get("target_url"), remote=state, tier="commit status", action="skipped",
                                 message=f"GitLab keeps a {state.get('sent', wanted)} status as it is until the "
                                         "run ends")
    return Outcome.delivered(url=body.get("target_url"), remote=state, tier="commit status",
                             action="completed" if op.final else "updated")
