"""GitHub Actions: ``GITHUB_*`` variables plus the webhook payload in ``GITHUB_EVENT_PATH``.

Docs: https://docs.github.com/en/actions/writing-workflows/choosing-what-your-workflow-does/store-information-in-variables#default-environment-variables
Traps handled here:
- On ``pull_request`` builds ``GITHUB_SHA`` is the synthetic merge commit (on ``pull_request_target`` it
  is the base branch tip); the PR number, head SHA and fork flag come from the event payload.
- Merge-queue builds run on ``gh-readonly-queue/<base>/pr-<N>-<sha>``: that temporary branch is replaced
  by the base branch and the PR number is taken from it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from ci_sidecar.cienv._fields import Fields, parse_int, strip_ref
from ci_sidecar.cienv._git import Git

__all__ = ["NAME", "is_present", "detect"]

log = logging.getLogger(__name__)

NAME = "github"
PR_EVENTS = frozenset({"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"})
MAX_EVENT_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
_MERGE_QUEUE = re.compile(r"^(?:refs/heads/)?gh-readonly-queue/(?P<base>.+)/pr-(?P<number>\d+)-(?P<sha>[0-9a-f]+)$")
_PULL_REF = re.compile(r"^refs/pull/(?P<number>\d+)/(?:merge|head)$")


def is_present(env: Mapping[str, str]) -> bool:
    """``GITHUB_ACTIONS=true`` is set on every Actions runner."""
    return env.get("GITHUB_ACTIONS", "").strip().lower() == "true"


def _read_event(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_EVENT_BYTES + 1)
    except OSError as exc:
        log.warning("cannot read GITHUB_EVENT_PATH %s: %s", path, exc)
        return None
    if len(data) > MAX_EVENT_BYTES:
        log.warning("GITHUB_EVENT_PATH %s is larger than %d bytes, ignored", path, MAX_EVENT_BYTES)
        return None
    try:
        event = json.loads(data)
    except ValueError as exc:
        log.warning("GITHUB_EVENT_PATH %s is not JSON: %s", path, exc)
        return None
    return event if isinstance(event, dict) else None


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _from_event(f: Fields, event: dict[str, Any]) -> None:
    pr = event.get("pull_request")
    if not isinstance(pr, dict):
        return
    src = "GITHUB_EVENT_PATH:pull_request."
    number = pr.get("number")
    if isinstance(number, int) and not isinstance(number, bool):
        f.put("pr_number", number, "file", src + "number")
    head_sha = _dig(pr, "head", "sha")
    if isinstance(head_sha, str):
        f.put("head_sha", head_sha, "file", src + "head.sha")
    head_ref, base_ref = _dig(pr, "head", "ref"), _dig(pr, "base", "ref")
    if isinstance(head_ref, str):
        f.put("branch", head_ref, "file", src + "head.ref")
    if isinstance(base_ref, str):
        f.put("target_branch", base_ref, "file", src + "base.ref")
    head, base_repo = pr.get("head"), _dig(pr, "base", "repo", "full_name")
    if isinstance(head, dict) and "repo" in head and isinstance(base_repo, str):
        head_repo = _dig(head, "repo", "full_name")
        if head["repo"] is None:  # the fork was deleted: still a fork (and still without secrets)
            f.put("is_fork", True, "file", src + "head.repo")
        elif isinstance(head_repo, str):
            f.put("is_fork", head_repo != base_repo, "file", src + "head.repo.full_name")


def _from_workflow_run(f: Fields, event: dict[str, Any]) -> None:
    """``workflow_run`` (publishing a fork PR's results with a write token): the commit and pull request the
    triggering run tested come from the event; GITHUB_SHA is the default branch's head."""
    run = event.get("workflow_run")
    if not isinstance(run, dict):
        return
    src = "GITHUB_EVENT_PATH:workflow_run."
    if isinstance(run.get("head_sha"), str):
        f.put("head_sha", run["head_sha"], "file", src + "head_sha")
    pulls = [p for p in run.get("pull_requests") or [] if isinstance(p, dict) and isinstance(p.get("number"), int)]
    if pulls:
        f.put("pr_number", pulls[0]["number"], "file", src + "pull_requests[0].number")
        base = _dig(pulls[0], "base", "ref")
        if isinstance(base, str):
            f.put("target_branch", base, "file", src + "pull_requests[0].base.ref")
    if isinstance(run.get("head_branch"), str):
        f.put("branch", run["head_branch"], "file", src + "head_branch")
    head_repo, repo = _dig(run, "head_repository", "full_name"), _dig(run, "repository", "full_name")
    if isinstance(head_repo, str) and isinstance(repo, str):
        f.put("is_fork", head_repo != repo, "file", src + "head_repository.full_name")


def detect(f: Fields, git: Git) -> None:
    """Fill *f* from a GitHub Actions environment."""
    f.from_env("repository", "GITHUB_REPOSITORY")
    f.from_env("server_url", "GITHUB_SERVER_URL")
    f.from_env("event", "GITHUB_EVENT_NAME")
    event_name = f.var("GITHUB_EVENT_NAME")

    event_path = f.var("GITHUB_EVENT_PATH")
    if event_path and event_name in PR_EVENTS:
        event = _read_event(event_path)
        if event is not None:
            _from_event(f, event)
    elif event_path and event_name == "workflow_run":
        event = _read_event(event_path)
        if event is not None:
            _from_workflow_run(f, event)

    ref = f.var("GITHUB_REF")
    if event_name in PR_EVENTS:
        f.from_env("branch", "GITHUB_HEAD_REF")
        f.from_env("target_branch", "GITHUB_BASE_REF")
    if ref:
        queue = _MERGE_QUEUE.match(ref)
        pull = _PULL_REF.match(ref)
        if queue:
            f.put("branch", queue["base"], "derived", "GITHUB_REF")
            f.put("target_branch", queue["base"], "derived", "GITHUB_REF")
            f.put("pr_number", int(queue["number"]), "derived", "GITHUB_REF")
        elif pull:
            f.put("pr_number", int(pull["number"]), "derived", "GITHUB_REF")
        elif ref.startswith("refs/tags/"):
            f.put("tag", ref.removeprefix("refs/tags/"), "env", "GITHUB_REF")
        elif ref.startswith("refs/heads/"):
            f.put("branch", strip_ref(ref), "env", "GITHUB_REF")
    if f.var("GITHUB_REF_TYPE") == "tag":
        f.from_env("tag", "GITHUB_REF_NAME")
    elif not f.has("pr_number") and not f.has("tag"):
        f.from_env("branch", "GITHUB_REF_NAME")

    f.from_env("commit_sha", "GITHUB_SHA")
    if not f.has("head_sha") and event_name in PR_EVENTS:
        log.info("no pull_request.head.sha in the event payload: GITHUB_SHA is a merge commit")

    f.from_env("build_id", "GITHUB_RUN_ID")
    f.from_env("build_number", "GITHUB_RUN_NUMBER")
    f.from_env("run_attempt", "GITHUB_RUN_ATTEMPT", convert=parse_int)
    f.from_env("job", "GITHUB_JOB")
    server, repo, run_id = f.values.get("server_url"), f.values.get("repository"), f.values.get("build_id")
    if server and repo and run_id:
        url = f"{server.rstrip('/')}/{repo}/actions/runs/{run_id}"
        attempt = f.values.get("run_attempt")
        if isinstance(attempt, int) and attempt > 1:
            url += f"/attempts/{attempt}"
        f.put("build_url", url, "derived", "GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID")
