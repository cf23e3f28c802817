"""A test run on GitHub: the tier ladder check run → commit status → job summary (see the package docstring).

``publish`` is one attempt; what it learnt (tier, check run id, annotations sent) goes into ``state``, which
the outbox persists as the write's ``remote`` so the next attempt resumes instead of repeating.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import trio

from ci_sidecar.protocol.records import TestResult
from ci_sidecar.reports import ReportData, cut_markdown, display_name, fit_markdown

from .._http import ApiSession, HttpError
from .._render import CONCLUSIONS, clip_bytes, clip_chars, http_url, iso_utc, report_data, utc_stamp
from .._results import Collected, collect
from ..base import Outcome, ProviderEnv, PublishRun, RunSnapshot
from ._api import (
    ANNOTATION_TEXT_BYTES,
    ANNOTATION_TITLE_CHARS,
    ANNOTATIONS_PER_REQUEST,
    MAX_SUMMARY_FAILURES,
    STEP_SUMMARY_BYTES,
    SUMMARY_BYTES,
    bmp_safe,
    max_annotations,
    not_accessible,
    repo_path,
    step_summary_path,
    token_kind,
)
from .names import RUN_LEVEL_PATH, annotation_path, check_name
from .statuses import run_status

__all__ = ["publish", "conclusion"]

_MIN_STEP_SECTION = 512  # less room than this: a report would be only its truncation notice


async def publish(op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """One attempt at showing ``op.run`` on GitHub, on the best tier this token reaches."""
    run = op.run
    collected = await collect(run, env)
    data = report_data(run, env, collected, max_failures=MAX_SUMMARY_FAILURES)
    step_path = step_summary_path(env)
    if op.final and step_path and not state.get("step_summary_written"):
        note = await _append_step_summary(step_path, data)
        if note:
            api.log(note)
        state["step_summary_written"] = True
    tier = state.get("tier") or "check_run"
    if "tier" not in state and token_kind(env.token) == "pat":
        # personal access tokens can never write check runs (GitHub Apps only): don't spend a call finding out
        api.log("personal access tokens cannot create check runs; using commit statuses instead")
        tier = "commit_status"
    if not env.token:
        tier = "job_summary"
    repo = repo_path(run.repository or env.ci.repository)
    sha = run.head_sha or run.commit_sha or env.ci.head_sha or env.ci.commit_sha
    if tier != "job_summary" and (repo is None or not sha):
        return Outcome.refused("github: no repository (owner/repo) or commit SHA to report on", remote=state)
    try:
        if tier == "check_run":
            try:
                return await _check_run(op, env, state, api, repo, sha, data, collected)
            except HttpError as err:
                if not not_accessible(err):
                    raise
                api.log(f"check runs refused ({err.provider_message}); using commit statuses instead")
                tier = state["tier"] = "commit_status"
        if tier == "commit_status":
            try:
                return await run_status(op, env, state, api, repo, sha, conclusion(run))
            except HttpError as err:
                if not (not_accessible(err) and step_path):
                    raise
                api.log(f"commit statuses refused ({err.provider_message}); the job summary is all that is left")
                tier = state["tier"] = "job_summary"
    except HttpError as err:
        outcome = err.outcome
        outcome.remote = state
        return outcome
    # job summary tier
    if not step_path:
        return Outcome.refused("github: no token and no GITHUB_STEP_SUMMARY to write to", remote=state)
    if not op.final:
        return Outcome.delivered(tier="job summary", action="deferred", remote=state,
                                 message="the job summary is written when the run completes")
    return Outcome.delivered(tier="job summary", action="updated", remote=state,
                             message=f"appended to {step_path}")


def conclusion(run: RunSnapshot) -> str:
    """The run's conclusion, or one derived from its counts."""
    if run.conclusion in CONCLUSIONS:
        return run.conclusion
    c = run.counts
    return "failure" if c.failed or c.errors else ("success" if c.total else "neutral")


async def _append_step_summary(path: str, data: ReportData) -> str | None:
    """Append the report to the job summary within what is left of the file's 1 MiB: the runner drops a step's
    summary file whole above it ("upload aborted"), the user's own text and other runs' sections with it. Returns
    a note for the user when the report had to be shortened or left out."""

    def write() -> str | None:
        with open(path, "a+b") as fh:
            fh.seek(0, 2)
            used = fh.tell()
            room = STEP_SUMMARY_BYTES - used - 2  # our section ends with a blank line
            if room < _MIN_STEP_SECTION:
                return (f"the job summary file already holds {used} of its {STEP_SUMMARY_BYTES + 1} bytes: "
                        "this run's report is not added (the full report is in the run's output folder)")
            fitted = fit_markdown(data, room)
            fh.write((fitted.text.rstrip("\n") + "\n\n").encode("utf-8"))
            if fitted.shortened:
                return f"the job summary is shortened ({fitted.step}) to stay within the file's 1 MiB"
            return None

    return await trio.to_thread.run_sync(write)


def _summary(data: ReportData, note: str | None) -> str:
    reserve = len(note.encode()) + 4 if note else 0
    fitted = fit_markdown(data, SUMMARY_BYTES - reserve)
    text = fitted.text.rstrip("\n") + (f"\n\n{note}\n" if note else "\n")
    text = bmp_safe(text)
    if len(text.encode("utf-8")) > SUMMARY_BYTES:  # escapes grew it past the limit
        text = cut_markdown(text, SUMMARY_BYTES, full_report_url=data.full_report_url)
    return text


def _annotation(result: TestResult, env: ProviderEnv) -> dict[str, Any]:
    line = result.line if result.line and result.line > 0 else 1
    message = result.message or result.status
    where = result.file or result.classname or result.suite
    path = annotation_path(result.file, env) or (None if result.file else annotation_path(result.classname, env))
    if path is None:
        # no file GitHub can link: on the check run itself, saying where it was
        path = RUN_LEVEL_PATH
        if where:
            message = f"{where}{f':{result.line}' if result.line else ''}: {message}"
        line = 1
    item: dict[str, Any] = {
        "path": bmp_safe(path),
        "start_line": line,
        "end_line": line,
        "annotation_level": "failure",
        "message": clip_bytes(bmp_safe(message), ANNOTATION_TEXT_BYTES),
        "title": clip_chars(bmp_safe(display_name(result)), ANNOTATION_TITLE_CHARS),
    }
    if result.details and result.details.strip() != message.strip():
        item["raw_details"] = clip_bytes(bmp_safe(result.details), ANNOTATION_TEXT_BYTES)
    return item


async def _find_check_run(api: ApiSession, repo: str, sha: str, run: RunSnapshot,
                          name: str | None) -> dict[str, Any] | None:
    """The check run this run created earlier (a create whose response was lost), by ``external_id``; among the
    commit's check runs of any name when ``name`` is None."""
    path = f"{repo}/commits/{quote(sha, safe='')}/check-runs"
    params: dict[str, Any] = {"filter": "all", "per_page": 100}
    if name is not None:
        params["check_name"] = name
    async with aclosing(api.paginate(path, params, max_pages=10)) as pages:
        async for page in pages:
            body = page.json() or {}
            for check in body.get("check_runs") or []:
                if check.get("external_id") == run.id:
                    return check
    return None


async def _check_run(
    op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession,
    repo: str, sha: str, data: ReportData, collected: Collected,
) -> Outcome:
    run = op.run
    state.pop("tier", None)
    name = state.setdefault("check_name", check_name(run.name, env))  # a run keeps the name it was created with
    check_id = state.get("check_run_id")
    if check_id is None:
        # made by another writer (a sharded group's publisher that died): it may have named it after its own job
        any_name = state.pop("any_name", False)
        found = await _find_check_run(api, repo, sha, run, None if any_name else name)
        if found is not None:
            name = state["check_name"] = found.get("name") or name  # a check run keeps its name
            check_id = state["check_run_id"] = found["id"]
            state["annotations_sent"] = int((found.get("output") or {}).get("annotations_count") or 0)
            state["html_url"] = found.get("html_url")
            state.pop("inflight", None)
            api.log(f"found check run {check_id} created by an earlier attempt")
    elif state.get("inflight") or not env.never_sent:
        # an earlier PATCH may have appended annotations before its response was lost — in this daemon, or in one
        # killed before it could journal the attempt (its state then does not say so): count them
        got = (await api.request("GET", f"{repo}/check-runs/{check_id}")).json() or {}
        state["annotations_sent"] = int((got.get("output") or {}).get("annotations_count") or 0)
        state.pop("inflight", None)
    cap = max_annotations(env)
    candidates = collected.candidates
    sent = int(state.get("annotations_sent", 0))
    pending = [_annotation(r, env) for r in candidates[sent:cap]]
    note = None
    if len(candidates) > cap:
        note = (f"_Showing {cap} of {len(candidates)} failure annotations; "
                "the summary and the full report list every failure._")
    summary = _summary(data, note)
    counts = run.counts
    title = (f"{counts.passed} passed, {counts.failed + counts.errors} failed, {counts.skipped} skipped"
             if counts.total else "No test results")
    batches = [pending[i:i + ANNOTATIONS_PER_REQUEST] for i in range(0, len(pending), ANNOTATIONS_PER_REQUEST)]
    batches = batches or [[]]
    outcome_url = state.get("html_url")
    for index, batch in enumerate(batches):
        last = index == len(batches) - 1
        body: dict[str, Any] = {
            "name": name,
            "external_id": run.id,
            "output": {"title": bmp_safe(title), "summary": summary},
        }
        if batch:
            body["output"]["annotations"] = batch
        details = http_url(run.details_url) or http_url(env.ci.job_url) or http_url(env.ci.build_url)
        if details:
            body["details_url"] = details
        started = iso_utc(run.start_time)
        if started:
            body["started_at"] = started
        if op.final and last:
            body["status"] = "completed"
            body["conclusion"] = conclusion(run)
            body["completed_at"] = iso_utc(run.end_time) or utc_stamp()
        else:
            body["status"] = "in_progress"
        state["inflight"] = True
        try:
            if check_id is None:
                body["head_sha"] = sha
                resp = await api.request("POST", f"{repo}/check-runs", json_body=body)
                created = resp.json() or {}
                check_id = state["check_run_id"] = created.get("id")
                outcome_url = state["html_url"] = created.get("html_url")
            else:
                resp = await api.request("PATCH", f"{repo}/check-runs/{check_id}", json_body=body)
                outcome_url = state["html_url"] = (resp.json() or {}).get("html_url") or outcome_url
        except HttpError as err:
            if err.outcome.kind == "deferred":  # held back by the write budget: nothing was sent
                state.pop("inflight", None)
            raise
        state.pop("inflight", None)
        state["annotations_sent"] = sent = sent + len(batch)
    state["annotations_capped"] = len(candidates) > cap
    return Outcome.delivered(url=outcome_url, remote=state, tier="check run",
                             action="completed" if op.final else "updated")
