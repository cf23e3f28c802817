"""Code Insights and build statuses: a test run as a ``TEST`` report with its failures as annotations, and a build
status per run or ``set_build_status`` context.

The report is ``PUT`` under a stable id made of the run's name (a retry or a later update replaces it), PENDING
while the run runs, then PASSED or FAILED, with up to ten ``data`` fields. Annotations are the first failure of
each failed test in stream order, posted 100 at a time with ``external_id`` ``<report>-<n>``: a retried POST
whose answer was lost updates the same annotations instead of adding more. Bitbucket keeps 1,000 per report;
failures past that are counted in the report's details, never dropped silently. The remote state remembers how
many were sent, so a restart goes on from there.

A build status is ``POST``\\ ed with a ``key`` per run or context: Bitbucket overwrites a status of the same key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from ci_sidecar.protocol.records import TestResult

from .._http import ApiSession
from .._render import CONCLUSIONS, clip_chars, http_url, iso_utc
from .._results import collect
from ..base import Outcome, ProviderEnv, PublishRun, RunSnapshot, SetStatus
from ._api import (
    ANNOTATIONS_PER_POST,
    ANNOTATIONS_PER_REPORT,
    DATA_FIELDS,
    DETAILS_CHARS,
    KEY_CHARS,
    SUMMARY_CHARS,
    commit_sha,
    ident,
    repo_path,
    web_origin,
)
from .settings import BitbucketSettings

__all__ = ["publish_report", "set_status", "run_status", "report_id", "status_url", "STATES", "read_report",
           "run_state", "run_description"]

#: ``SetStatus.state`` → Bitbucket's build state
STATES = {"pending": "INPROGRESS", "running": "INPROGRESS", "success": "SUCCESSFUL", "failure": "FAILED",
          "error": "FAILED"}
_CONCLUSION_STATE = {"success": "SUCCESSFUL", "neutral": "SUCCESSFUL", "failure": "FAILED", "timed_out": "FAILED",
                     "cancelled": "STOPPED"}


def report_id(run: RunSnapshot, env: ProviderEnv, limit: int = 64) -> str:
    """The report's id (and ``external_id``), or with ``limit=40`` the run's build status key: the run's name,
    per parallel step."""
    step = BitbucketSettings.of(env).parallel_step
    return ident(f"{run.name}#{step}" if step else run.name, limit=limit)


def commit_page(env: ProviderEnv, sha: str) -> str | None:
    """The commit's page on Bitbucket (where its reports and statuses show), when the step's origin is known."""
    origin = web_origin(env)
    return f"{origin}/commits/{quote(sha, safe='')}" if origin else None


def status_url(env: ProviderEnv, sha: str, *candidates: str | None) -> str | None:
    """Where a build status links: the first http(s) candidate, the build's page, or the commit's page."""
    for url in (*candidates, env.ci.job_url, env.ci.build_url):
        if http_url(url):
            return url
    return commit_page(env, sha)


def run_state(op: PublishRun, by_conclusion: dict[str, str]) -> str:
    """The run's build state: INPROGRESS while it runs, then ``by_conclusion`` of its conclusion, else FAILED
    or SUCCESSFUL by its counts."""
    run = op.run
    if run.status == "running" and not op.final:
        return "INPROGRESS"
    if run.conclusion in by_conclusion:
        return by_conclusion[run.conclusion or ""]
    return "FAILED" if run.counts.failed or run.counts.errors else "SUCCESSFUL"


def run_description(run: RunSnapshot) -> str:
    """``N passed, N failed, N skipped``: a run's build status description."""
    c = run.counts
    return f"{c.passed} passed, {c.failed + c.errors} failed, {c.skipped} skipped"


def _result(op: PublishRun) -> str:
    run = op.run
    if run.status == "running" and not op.final:
        return "PENDING"
    if run.conclusion in CONCLUSIONS:
        return "PASSED" if run.conclusion in ("success", "neutral") else "FAILED"
    return "FAILED" if run.counts.failed or run.counts.errors else "PASSED"


def _duration_ms(run: RunSnapshot) -> int | None:
    import datetime as dt

    start, end = iso_utc(run.start_time), iso_utc(run.end_time)
    if not (start and end):
        return None
    delta = dt.datetime.fromisoformat(end.replace("Z", "+00:00")) - dt.datetime.fromisoformat(
        start.replace("Z", "+00:00"))
    return max(0, int(delta.total_seconds() * 1000))


def _data(run: RunSnapshot, link: str | None) -> list[dict[str, Any]]:
    c = run.counts
    data: list[dict[str, Any]] = [
        {"title": "Total", "type": "NUMBER", "value": c.total},
        {"title": "Passed", "type": "NUMBER", "value": c.passed},
        {"title": "Failed", "type": "NUMBER", "value": c.failed + c.errors},
        {"title": "Skipped", "type": "NUMBER", "value": c.skipped},
    ]
    if c.flaky:
        data.append({"title": "Flaky", "type": "NUMBER", "value": c.flaky})
    duration = _duration_ms(run)
    if duration is not None:
        data.append({"title": "Duration", "type": "DURATION", "value": duration})
    if run.coverage is not None:
        data.append({"title": "Coverage", "type": "PERCENTAGE", "value": round(run.coverage, 2)})
    if link:
        data.append({"title": "Full report", "type": "LINK", "value": {"text": "full report", "href": link}})
    return data[:DATA_FIELDS]


def _annotation(rid: str, n: int, result: TestResult) -> dict[str, Any]:
    title = ".".join(p for p in (result.classname, result.name) if p)
    body: dict[str, Any] = {
        "type": "report_annotation", "external_id": f"{rid}-{n:04d}", "annotation_type": "BUG",
        "result": "FAILED", "severity": "HIGH",
        "summary": clip_chars(f"{title}: {result.message}" if result.message else f"{title} failed", SUMMARY_CHARS),
    }
    details = result.details or result.message
    if details:
        body["details"] = clip_chars(details, DETAILS_CHARS)
    # a path Bitbucket can place: relative to the repository (an absolute one is named in the summary instead)
    if result.file and not result.file.startswith(("/", "\\")) and ":" not in result.file[:3]:
        body["path"] = result.file.replace("\\", "/").removeprefix("./")
        if result.line:
            body["line"] = result.line
    return body


def _details(run: RunSnapshot, result: str, unannotated: int) -> str:
    c = run.counts
    text = (f"{c.passed} passed, {c.failed + c.errors} failed, {c.skipped} skipped"
            + (f", {c.flaky} flaky" if c.flaky else "") + (" (running)" if result == "PENDING" else ""))
    if unannotated:
        text += (f". {unannotated} more failure(s) are not annotated: Bitbucket keeps at most "
                 f"{ANNOTATIONS_PER_REPORT:,} annotations per report (the full report lists them)")
    return clip_chars(text, DETAILS_CHARS)


async def publish_report(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """The run's Code Insights report, then the annotations not sent yet (``state["annotations"]``)."""
    run = op.run
    repo, sha = repo_path(env), commit_sha(env, run.head_sha, run.commit_sha)
    if repo is None or not sha:
        return Outcome.refused("bitbucket: no repository (BITBUCKET_WORKSPACE/BITBUCKET_REPO_SLUG) or commit "
                               "(BITBUCKET_COMMIT) for the Code Insights report", remote=state)
    rid = report_id(run, env)
    if state.get("sha") not in (None, sha) or state.get("report_id") not in (None, rid):
        state.pop("annotations", None)  # another commit: its report starts empty
    state.update(sha=sha, report_id=rid, tier="code_insights")
    path = f"{repo}/commit/{quote(sha, safe='')}/reports/{quote(rid, safe='')}"
    collected = await collect(run, env)
    candidates = collected.candidates
    unannotated = max(0, len(candidates) - ANNOTATIONS_PER_REPORT)
    result = _result(op)
    link = http_url(env.config.get("full_report_url")) or http_url(run.details_url)
    report: dict[str, Any] = {
        "type": "report", "title": clip_chars(run.name, SUMMARY_CHARS), "report_type": "TEST",
        "reporter": "ci-sidecar", "external_id": rid, "result": result,
        "details": _details(run, result, unannotated), "data": _data(run, link),
    }
    if link:
        report["link"] = link
    digest = hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16]
    if state.get("report_sent") != digest:  # a retry after a failed annotation POST does not send it again
        await api.request("PUT", path, json_body=report)
        state.update(report_sent=digest, result=result)
    sent = int(state.get("annotations") or 0)
    wanted = candidates[:ANNOTATIONS_PER_REPORT]
    while sent < len(wanted):
        batch = [_annotation(rid, n + 1, r) for n, r in enumerate(wanted[sent:sent + ANNOTATIONS_PER_POST], sent)]
        await api.request("POST", f"{path}/annotations", json_body=batch)
        sent = state["annotations"] = sent + len(batch)
    if unannotated and op.final and not state.get("capped_told"):
        state["capped_told"] = True
        api.log(f"report {rid}: {unannotated} failure(s) past Bitbucket's {ANNOTATIONS_PER_REPORT:,} annotations "
                "per report are counted in its details, not annotated")
    return Outcome.delivered(url=commit_page(env, sha) or link, remote=state, tier="code insights",
                             action="completed" if op.final else "updated")


async def read_report(env: ProviderEnv, api: ApiSession, state: dict[str, Any]) -> dict[str, Any] | None:
    """The report as Bitbucket shows it: ``{"status", "conclusion", "url", "result", ...}``; None when absent."""
    repo, sha, rid = repo_path(env), state.get("sha"), state.get("report_id")
    if repo is None or not sha or not rid:
        return None
    resp = await api.request("GET", f"{repo}/commit/{quote(sha, safe='')}/reports/{quote(rid, safe='')}",
                             allow=(404,))
    if resp.status == 404:
        return None
    report = resp.json() or {}
    result = report.get("result")
    status = "in_progress" if result == "PENDING" else "completed"
    conclusion = {"PASSED": "success", "FAILED": "failure"}.get(str(result))
    return {"status": status, "conclusion": conclusion, "url": commit_page(env, sha) or report.get("link"),
            "result": result, "details": report.get("details"), "annotations": state.get("annotations", 0),
            "final": status == "completed"}


async def _post_status(api: ApiSession, repo: str, sha: str, body: dict[str, Any], state: dict[str, Any]) -> bool:
    """POST the status unless the same one was sent last (True when sent)."""
    shown = {k: body.get(k) for k in ("state", "description", "url", "name")}
    if state.get("status_sent") == shown:
        return False
    await api.request("POST", f"{repo}/commit/{quote(sha, safe='')}/statuses/build", json_body=body)
    state["status_sent"] = shown
    return True


def _status_body(env: ProviderEnv, key: str, state: str, name: str, description: str | None,
                 url: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "commitstatus", "key": key, "state": state, "name": clip_chars(name, 255)}
    if description:
        body["description"] = clip_chars(description, 255)
    if url:
        body["url"] = url
    if env.ci.pr_number and env.ci.branch:
        body["refname"] = env.ci.branch  # the PR's source branch: the status shows on the pull request
    return body


async def set_status(op: SetStatus, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """``set_build_status``: a build status keyed by ``op.context``."""
    repo, sha = repo_path(env), commit_sha(env, op.sha)
    if repo is None or not sha:
        return Outcome.refused("bitbucket: no repository or commit for the build status", remote=state)
    url = status_url(env, sha, op.target_url)
    body = _status_body(env, ident(op.context), STATES[op.state], op.context, op.description, url)
    sent = await _post_status(api, repo, sha, body, state)
    return Outcome.delivered(url=url, remote=state, tier="build status", action="updated" if sent else "skipped")


async def run_status(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> None:
    """The run's build status (key per run): INPROGRESS, then SUCCESSFUL, FAILED or STOPPED."""
    run = op.run
    repo, sha = repo_path(env), commit_sha(env, run.head_sha, run.commit_sha)
    if repo is None or not sha:
        return
    url = status_url(env, sha, http_url(run.details_url))
    body = _status_body(env, report_id(run, env, KEY_CHARS), run_state(op, _CONCLUSION_STATE), run.name,
                        run_description(run), url)
    await _post_status(api, repo, sha, body, state)
