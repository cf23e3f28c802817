"""Bitbucket Data Center: a test run as a Code Insights report with its failures as annotations, and build
statuses per run or ``set_build_status`` context.

The report is ``PUT`` to ``/insights/1.0/projects/{key}/repos/{slug}/commits/{sha}/reports/{id}`` under the same
stable id the Cloud flavour uses: without a ``result`` while the run runs, then PASS or FAIL, with at most six
``data`` fields. Annotations (the first failure of each failed test, ≤ 1,000 per report) are posted once the
run is final, after the last report: a report replaced later cannot disturb them. Each batch first DELETEs its
own external ids, then POSTs them, so a batch whose answer was lost (or a daemon killed after it landed) is
replaced, never doubled, whatever the server does with a repeated external id.

Build statuses go to ``/api/latest/projects/{key}/repos/{slug}/commits/{sha}/builds`` (Bitbucket 7.4 and later:
state INPROGRESS/SUCCESSFUL/FAILED/CANCELLED, ``ref``, ``testResults``); a server that does not know it (404
without naming the repository, or 405) gets the legacy ``/build-status/1.0/commits/{sha}`` (no CANCELLED state:
a cancelled run is FAILED there, its description says so). Data Center requires a ``url``: the run's page, else
the commit's page on the server.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from ci_sidecar.protocol.records import TestResult

from .._http import ApiSession, HttpError
from .._render import CONCLUSIONS, clip_chars, http_url
from .._results import collect
from ..base import Outcome, ProviderEnv, PublishRun, SetStatus
from ._api import KEY_CHARS, commit_sha, ident
from .dc_api import (
    ANNOTATIONS_PER_POST,
    ANNOTATIONS_PER_REPORT,
    DATA_FIELDS,
    DETAILS_CHARS,
    MESSAGE_CHARS,
    NO_REPOSITORY,
    TITLE_CHARS,
    commit_page,
    repo_rest,
)
from .insights import STATES, _data, _details, report_id, run_description, run_state

__all__ = ["publish_report_dc", "read_report_dc", "set_status_dc", "run_status_dc", "post_status"]

_CONCLUSION_STATE = {"success": "SUCCESSFUL", "neutral": "SUCCESSFUL", "failure": "FAILED", "timed_out": "FAILED",
                     "cancelled": "CANCELLED"}
#: the Cloud flavour's fields dropped first to keep within Data Center's six
_DROP_ORDER = ("Total", "Flaky", "Duration", "Coverage")


def _result(op: PublishRun) -> str | None:
    run = op.run
    if run.status == "running" and not op.final:
        return None  # Data Center has no PENDING: a report without a result shows as still running
    if run.conclusion in CONCLUSIONS:
        return "PASS" if run.conclusion in ("success", "neutral") else "FAIL"
    return "FAIL" if run.counts.failed or run.counts.errors else "PASS"


def _dc_data(op: PublishRun, link: str | None) -> list[dict[str, Any]]:
    """Cloud's data fields in Data Center's shape (a LINK's text is ``linktext``), at most six."""
    data = []
    for field in _data(op.run, link):
        if field["type"] == "LINK":
            field = {**field, "value": {"linktext": field["value"]["text"], "href": field["value"]["href"]}}
        data.append(field)
    for title in _DROP_ORDER:
        if len(data) <= DATA_FIELDS:
            break
        data = [d for d in data if d["title"] != title]
    return data[:DATA_FIELDS]


def _annotation(rid: str, n: int, result: TestResult) -> dict[str, Any]:
    title = ".".join(p for p in (result.classname, result.name) if p)
    head = f"{title}: {result.message}" if result.message else f"{title} failed"
    details = result.details if result.details and result.details != result.message else ""
    body: dict[str, Any] = {"externalId": f"{rid}-{n:04d}", "severity": "HIGH", "type": "BUG",
                            "message": clip_chars(f"{head}\n\n{details}" if details else head, MESSAGE_CHARS)}
    if result.file and not result.file.startswith(("/", "\\")) and ":" not in result.file[:3]:
        body["path"] = result.file.replace("\\", "/").removeprefix("./")
        if result.line:
            body["line"] = result.line
    return body


async def publish_report_dc(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """The run's report, then (once final) the annotations not sent yet (``state["annotations"]``)."""
    run = op.run
    repo, sha = repo_rest(env, "insights/1.0"), commit_sha(env, run.head_sha, run.commit_sha)
    if repo is None or not sha:
        return Outcome.refused(f"bitbucket: {NO_REPOSITORY}, or no commit (BITBUCKET_COMMIT / the clone's HEAD) for "
                               "the Code Insights report", remote=state)
    rid = report_id(run, env)
    if state.get("sha") not in (None, sha) or state.get("report_id") not in (None, rid):
        state.pop("annotations", None)
    state.update(sha=sha, report_id=rid, tier="code_insights", flavour="datacenter")
    path = f"{repo}/commits/{quote(sha, safe='')}/reports/{quote(rid, safe='')}"
    candidates = (await collect(run, env)).candidates
    unannotated = max(0, len(candidates) - ANNOTATIONS_PER_REPORT)
    result = _result(op)
    link = http_url(env.config.get("full_report_url")) or http_url(run.details_url)
    report: dict[str, Any] = {
        "title": clip_chars(run.name, TITLE_CHARS), "reporter": "ci-sidecar",
        "details": clip_chars(_details(run, "PENDING" if result is None else result, unannotated), DETAILS_CHARS),
        "data": _dc_data(op, link),
    }
    if result is not None:
        report["result"] = result
    if link:
        report["link"] = link
    digest = hashlib.sha256(json.dumps(report, sort_keys=True).encode()).hexdigest()[:16]
    if state.get("report_sent") != digest:
        await api.request("PUT", path, json_body=report)
        state.update(report_sent=digest, result=result)
    if op.final:
        sent = int(state.get("annotations") or 0)
        wanted = candidates[:ANNOTATIONS_PER_REPORT]
        while sent < len(wanted):
            batch = [_annotation(rid, n + 1, r) for n, r in enumerate(wanted[sent:sent + ANNOTATIONS_PER_POST], sent)]
            await api.request("DELETE", f"{path}/annotations", params={"externalId": [a["externalId"] for a in batch]},
                              expect_json=False)
            await api.request("POST", f"{path}/annotations", json_body={"annotations": batch}, expect_json=False)
            sent = state["annotations"] = sent + len(batch)
        if unannotated and not state.get("capped_told"):
            state["capped_told"] = True
            api.log(f"report {rid}: {unannotated} failure(s) past Bitbucket's {ANNOTATIONS_PER_REPORT:,} annotations "
                    "per report are counted in its details, not annotated")
    return Outcome.delivered(url=commit_page(env, sha) or link, remote=state, tier="code insights",
                             action="completed" if op.final else "updated")


async def read_report_dc(env: ProviderEnv, api: ApiSession, state: dict[str, Any]) -> dict[str, Any] | None:
    """The report as the server shows it (``get_test_run_status``); None when it is not there."""
    repo, sha, rid = repo_rest(env, "insights/1.0"), state.get("sha"), state.get("report_id")
    if repo is None or not sha or not rid:
        return None
    resp = await api.request("GET", f"{repo}/commits/{quote(sha, safe='')}/reports/{quote(rid, safe='')}",
                             allow=(404,))
    if resp.status == 404:
        return None
    report = resp.json() or {}
    result = report.get("result")
    status = "completed" if result in ("PASS", "FAIL") else "in_progress"
    return {"status": status, "conclusion": {"PASS": "success", "FAIL": "failure"}.get(str(result)),
            "url": commit_page(env, sha) or report.get("link"), "result": result, "details": report.get("details"),
            "annotations": state.get("annotations", 0), "final": status == "completed"}


def _repo_missing(resp: Any) -> bool:
    """A 404 that names the project or repository (not an endpoint this server lacks)."""
    if resp is None:
        return False
    try:
        errors = (resp.json() or {}).get("errors") or []
    except ValueError:
        return False
    return any("NoSuch" in str(e.get("exceptionName") or "") for e in errors if isinstance(e, dict))


async def post_status(env: ProviderEnv, api: ApiSession, sha: str, body: dict[str, Any],
                       state: dict[str, Any]) -> bool:
    """POST the status unless the same one was sent last; the legacy endpoint when the server lacks the new one."""
    shown = {k: body.get(k) for k in ("state", "description", "url", "name")}
    if state.get("status_sent") == shown:
        return False
    repo = repo_rest(env, "api/latest")
    if not state.get("legacy_builds") and repo is not None:
        try:
            await api.request("POST", f"{repo}/commits/{quote(sha, safe='')}/builds", json_body=body,
                              expect_json=False)
            state["status_sent"] = shown
            return True
        except HttpError as err:
            if err.status not in (404, 405) or (err.status == 404 and _repo_missing(err.response)):
                raise
        state["legacy_builds"] = True
        api.log(f"{api.config.base_url}: no /api/latest builds endpoint (Bitbucket before 7.4): build statuses go "
                "to /build-status/1.0")
    legacy = {k: body[k] for k in ("key", "state", "url", "name", "description") if k in body}
    if legacy["state"] == "CANCELLED":
        legacy["state"] = "FAILED"
        legacy["description"] = clip_chars(f"cancelled: {legacy.get('description') or ''}".rstrip(": "), 255)
    await api.request("POST", f"/build-status/1.0/commits/{quote(sha, safe='')}", json_body=legacy,
                      expect_json=False)
    state["status_sent"] = shown
    return True


def _status_body(env: ProviderEnv, key: str, state: str, name: str, description: str | None, url: str,
                 tests: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "state": state, "name": clip_chars(name, 255), "url": url}
    if description:
        body["description"] = clip_chars(description, 255)
    if env.ci.branch:
        body["ref"] = f"refs/heads/{env.ci.branch}"
    if env.ci.build_number:
        body["buildNumber"] = str(env.ci.build_number)
    if tests is not None:
        body["testResults"] = tests
    return body


def _url(env: ProviderEnv, sha: str, *candidates: str | None) -> str:
    for url in (*candidates, env.ci.job_url, env.ci.build_url):
        if http_url(url):
            return str(url)
    return commit_page(env, sha) or ""


async def set_status_dc(op: SetStatus, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """``set_build_status``: a build status keyed by ``op.context``."""
    sha = commit_sha(env, op.sha)
    if repo_rest(env, "api/latest") is None or not sha:
        return Outcome.refused(f"bitbucket: {NO_REPOSITORY}, or no commit for the build status", remote=state)
    url = _url(env, sha, op.target_url)
    body = _status_body(env, ident(op.context), STATES[op.state], op.context, op.description, url)
    sent = await post_status(env, api, sha, body, state)
    return Outcome.delivered(url=url, remote=state, tier="build status", action="updated" if sent else "skipped")


async def run_status_dc(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> None:
    """The run's build status (key per run) with its test counts: INPROGRESS, then SUCCESSFUL/FAILED/CANCELLED."""
    run = op.run
    sha = commit_sha(env, run.head_sha, run.commit_sha)
    if repo_rest(env, "api/latest") is None or not sha:
        return
    c = run.counts
    tests = {"successful": c.passed, "failed": c.failed + c.errors, "skipped": c.skipped}
    body = _status_body(env, report_id(run, env, KEY_CHARS), run_state(op, _CONCLUSION_STATE), run.name,
                        run_description(run), _url(env, sha, http_url(run.details_url)), tests)
    await post_status(env, api, sha, body, state)
