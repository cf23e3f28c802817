"""The GitHub provider (github.com and GitHub Enterprise Server): check runs, commit statuses, sticky PR comments.

Tiers for a test run, tried in order and remembered in ``remote["tier"]`` so later attempts go straight to the
one that works:

1. **check run** on the head SHA (App installation or Actions token): ``in_progress`` with a live summary,
   ``completed`` with a conclusion at the end; ``external_id`` is the run id, so a create whose response was
   lost is found by listing the ref's check runs instead of being duplicated. Failures become annotations,
   50 per request, appended by later PATCHes, capped (with a note) at ``max_annotations``.
2. **commit status** when the Checks API answers 403 "Resource not accessible…"/"must authenticate via a
   GitHub App" (classic and fine-grained PATs); description ≤ 140 characters.
3. **job summary**: inside GitHub Actions with ``GITHUB_STEP_SUMMARY`` (``config["step_summary_path"]``) the
   Markdown report is appended there on the final publish — always, and as the only tier when the token is
   read-only (fork PRs, Dependabot) or absent.

Summaries go through the shared degrade ladder (:func:`ci_sidecar.reports.fit_markdown`) to 65,535 UTF-8 bytes;
characters above U+FFFF are escaped in check-run text (the Checks API rejects them, per EM's reporter).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from contextlib import aclosing
from typing import Any, ClassVar
from urllib.parse import quote

import msgspec
import trio

from ci_sidecar.protocol.records import (
    DeliverySummary,
    ProviderCaps,
    TestResult,
    TestRun,
    Tier,
)
from ci_sidecar.reports import DurationHistogram, ReportData, SlowestTests, cut_markdown, display_name, fit_markdown

from ._http import DEFAULT_PACING, ApiSession, HttpConfig, HttpError, HttpLayer
from .base import Operation, Outcome, PostComment, ProviderEnv, PublishRun, RunSnapshot, SetStatus, UploadArtifact

__all__ = ["GitHubProvider", "comment_marker", "bmp_safe", "DEFAULT_API_URL"]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"

SUMMARY_BYTES = 65535
COMMENT_CHARS = 65536
ANNOTATIONS_PER_REQUEST = 50
DEFAULT_MAX_ANNOTATIONS = 1000
STATUS_DESCRIPTION_CHARS = 140
ANNOTATION_TEXT_BYTES = 64000  # "64 KB" in the docs; EM keeps 64000 to be safe
ANNOTATION_TITLE_CHARS = 255
STEP_SUMMARY_BYTES = 1024 * 1024 - 1  # an oversized step summary is dropped whole by the runner
MAX_SUMMARY_FAILURES = 1000  # failures rendered in a summary (the ladder shortens further)
TIER_NAMES = {"check_run": "check run", "commit_status": "commit status", "job_summary": "job summary"}

_decode_result = msgspec.msgpack.Decoder(TestResult).decode
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: the report renderer's own astral icons get BMP look-alikes instead of an escape
_ICONS = {"\U0001f4a5": "\u2757"}  # 💥 → ❗


def bmp_safe(text: str) -> str:
    """Characters above U+FFFF escaped as ``\\U0001F600`` (icons of our own get a BMP look-alike); lone
    surrogates become U+FFFD so the text always encodes."""
    text = _SURROGATE.sub("\ufffd", text)
    return _ASTRAL.sub(lambda m: _ICONS.get(m.group(), f"\\U{ord(m.group()):08X}"), text)


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def _clip_chars(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def comment_marker(key: str) -> str:
    """The hidden HTML marker that makes a comment sticky (``--`` and ``>`` cannot end the comment early)."""
    safe = key.replace("--", "-\u2010").replace(">", "&gt;").replace("\n", " ")
    return f"<!-- ci-sidecar:key={safe} -->"


def _iso(timestamp: str | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` as the Checks API wants it (``None`` when unparseable)."""
    if not timestamp:
        return None
    try:
        value = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_url(url: str | None) -> str | None:
    return url if url and url.startswith(("https://", "http://")) else None


def _not_accessible(err: HttpError) -> bool:
    """403 meaning "this token may not do this" (as opposed to a rate limit, which is a retry)."""
    if err.status != 403 or err.outcome.kind != "refused":
        return False
    text = err.provider_message.lower()
    return "not accessible" in text or "github app" in text or "permission" in text


def _token_kind(token: str | None) -> str:
    """From GitHub's documented token prefixes: ``pat`` cannot create check runs; ``app`` can."""
    if not token:
        return "none"
    if token.startswith(("ghp_", "github_pat_", "gho_", "ghu_")):
        return "pat"
    if token.startswith(("ghs_", "v1.")):
        return "app"
    return "unknown"


class _Collected:
    """What one pass over a run's per-test records yields (bounded except for ``latest``)."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str | None, str | None, str], TestResult] = {}
        self.first_failure: dict[tuple[str | None, str | None, str], TestResult] = {}
        self.slowest = SlowestTests(10)
        self.histogram = DurationHistogram()

    def add(self, result: TestResult) -> None:
        key = (result.suite, result.classname, result.name)
        self.latest[key] = result
        if result.status in ("failed", "error") and key not in self.first_failure:
            # insertion order = stream order: stable as results are appended, so "annotations sent so far"
            # is a prefix that stays a prefix across attempts
            self.first_failure[key] = result

    def finish(self) -> None:
        for result in self.latest.values():
            self.slowest.add(result)
            self.histogram.add(result.duration)

    @property
    def failures(self) -> list[TestResult]:
        return [r for r in self.latest.values() if r.status in ("failed", "error")]

    @property
    def candidates(self) -> list[TestResult]:
        return list(self.first_failure.values())


class GitHubProvider:
    """GitHub REST v3 (``base_url`` from the session, ``GITHUB_API_URL``, or api.github.com)."""

    name: ClassVar[str] = "github"

    def __init__(self, *, pacing: tuple[tuple[int, float], ...] = DEFAULT_PACING) -> None:
        self._http = HttpLayer(
            "github",
            default_headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
            pacing=pacing,
        )

    # --- public interface -------------------------------------------------------------------------

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """Tiers from what the session has: token kind (by GitHub's prefixes), job summary file, runtime token."""
        kind = _token_kind(env.token)
        step = self._step_summary_path(env) is not None
        if kind == "none":
            test_run = (Tier(kind="fallback", via="job summary", note="no GitHub token: job summary only")
                        if step else Tier(kind="none", note="no GitHub token"))
        elif kind == "pat":
            test_run = Tier(kind="fallback", via="commit status", note="personal access tokens cannot create check runs")
        else:
            test_run = Tier(kind="native", via="check run")
        none = Tier(kind="none", note="no GitHub token")
        from .github_artifacts import actions_artifact_tier  # the Actions artifact service (v4)

        artifacts = actions_artifact_tier(env) or Tier(kind="none", note=self._artifact_note(env))
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
                "max_annotations": self._max_annotations(env),
                "status_description_chars": STATUS_DESCRIPTION_CHARS,
                "content_creation_per_minute": DEFAULT_PACING[0][0],
            },
        )

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt; provider-side failures come back as Outcomes (token redacted), never as exceptions."""
        api = self._http.session(self._config(env), env.token, env.log)
        try:
            if isinstance(op, PublishRun):
                outcome = await self._publish(op, env, dict(remote or {}), api)
            elif isinstance(op, SetStatus):
                outcome = await self._set_status(op, env, api)
            elif isinstance(op, PostComment):
                outcome = await self._comment(op, env, dict(remote or {}), api)
            elif isinstance(op, UploadArtifact):
                from .github_artifacts import upload_artifact  # env.token is the ACTIONS_RUNTIME_TOKEN here

                outcome = await upload_artifact(op, env, dict(remote or {}), self._http)
            else:
                outcome = Outcome.unsupported(f"github: unknown operation {type(op).__name__}")
        except HttpError as err:
            outcome = err.outcome
        outcome.message = api.redact(outcome.message)
        return outcome

    async def read_run(self, run: RunSnapshot, env: ProviderEnv, remote: dict[str, Any]) -> dict[str, Any] | None:
        """The check run as GitHub shows it (``get_test_run_status`` reads it back): status, conclusion,
        URL and annotation count; None when the run has no check run (another tier) or GitHub did not answer."""
        check_id = (remote or {}).get("check_run_id")
        repo = self._repo_path(run.repository or env.ci.repository)
        if check_id is None or repo is None:
            return None
        api = self._http.session(self._config(env), env.token, env.log)
        try:
            resp = await api.request("GET", f"{repo}/check-runs/{int(check_id)}")
        except HttpError as err:
            log.info("github: reading check run %s back failed: %s", check_id, api.redact(err.outcome.message))
            return None
        body = resp.json()
        return {"status": body.get("status"), "conclusion": body.get("conclusion"), "url": body.get("html_url"),
                "annotations": int((body.get("output") or {}).get("annotations_count") or 0)}

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``get_artifact_url`` when the upload's URL is unknown: the run's REST artifact list, verified by digest
        (:func:`.github_artifacts.lookup_artifact`); None when not found, not ours, or the API failed."""
        from .github_artifacts import lookup_artifact

        api = self._http.session(self._config(env), env.token, env.log)
        try:
            return await lookup_artifact(op, env, dict(remote or {}), api)
        except HttpError as err:
            log.info("github: artifact lookup of %s failed: %s", op.name, api.redact(err.outcome.message))
            return None

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: the last rate-limit headers seen."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- settings ---------------------------------------------------------------------------------

    @staticmethod
    def _config(env: ProviderEnv) -> HttpConfig:
        base = env.base_url or env.config.get("GITHUB_API_URL") or DEFAULT_API_URL
        return HttpConfig.from_env_config(str(base), env.config)

    @staticmethod
    def _max_annotations(env: ProviderEnv) -> int:
        try:
            return max(0, int(env.config.get("max_annotations", DEFAULT_MAX_ANNOTATIONS)))
        except (TypeError, ValueError):
            return DEFAULT_MAX_ANNOTATIONS

    @staticmethod
    def _step_summary_path(env: ProviderEnv) -> str | None:
        path = env.config.get("step_summary_path")
        return str(path) if path and env.ci.provider == "github" else None

    @staticmethod
    def _artifact_note(env: ProviderEnv) -> str:
        if env.config.get("ACTIONS_RUNTIME_TOKEN") and env.config.get("ACTIONS_RESULTS_URL"):
            return ("GitHub Actions artifact service upload (v4) is not implemented in this version; "
                    "configure the S3 artifact backend")
        return ("GitHub artifacts need ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL (not exposed to run: steps); "
                "configure the S3 artifact backend")

    @staticmethod
    def _repo_path(repository: str | None) -> str | None:
        if not repository or repository.count("/") != 1:
            return None
        owner, repo = repository.split("/")
        if not owner or not repo:
            return None
        return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"

    # --- test runs --------------------------------------------------------------------------------

    async def _collect(self, run: RunSnapshot, env: ProviderEnv) -> _Collected:
        collected = _Collected()
        if env.read_results is None or run.results_end <= 0:
            return collected
        async for raw in env.read_results(run.id, 0, run.results_end):
            result = _decode_result(raw) if isinstance(raw, bytes | bytearray | memoryview) else raw
            if isinstance(result, dict):
                result = msgspec.convert(result, TestResult)
            collected.add(result)
        collected.finish()
        return collected

    def _report(self, run: RunSnapshot, env: ProviderEnv, collected: _Collected) -> ReportData:
        duration = None
        start, end = _iso(run.start_time), _iso(run.end_time)
        if start and end:
            duration = max(0.0, (dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
                                 - dt.datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds())
        conclusion = run.conclusion if run.conclusion in ("success", "failure", "cancelled", "neutral",
                                                          "timed_out") else None
        test_run = TestRun(
            id=run.id, name=run.name, status=run.status, start_time=run.start_time, counts=run.counts,
            delivery=DeliverySummary(pending=0, failed=0), targets=[], comments=[], conclusion=conclusion,
            end_time=run.end_time, duration=duration, external_id=run.external_id,
        )
        latest = list(collected.latest.values())
        return ReportData(
            run=test_run, ci=env.ci, failures=collected.failures[:MAX_SUMMARY_FAILURES],
            slowest=collected.slowest.results(), histogram=collected.histogram.buckets(),
            results=(lambda: latest) if latest else None,
            full_report_url=_http_url(env.config.get("full_report_url")) or _http_url(run.details_url),
        )

    async def _publish(self, op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
        run = op.run
        collected = await self._collect(run, env)
        data = self._report(run, env, collected)
        step_path = self._step_summary_path(env)
        if op.final and step_path and not state.get("step_summary_written"):
            await self._append_step_summary(step_path, data)
            state["step_summary_written"] = True
        tier = state.get("tier") or "check_run"
        if "tier" not in state and _token_kind(env.token) == "pat":
            # personal access tokens can never write check runs (GitHub Apps only): don't spend a call finding out
            api.log("personal access tokens cannot create check runs; using commit statuses instead")
            tier = "commit_status"
        if not env.token:
            tier = "job_summary"
        repo = self._repo_path(run.repository or env.ci.repository)
        sha = run.head_sha or run.commit_sha or env.ci.head_sha or env.ci.commit_sha
        if tier != "job_summary" and (repo is None or not sha):
            return Outcome.refused("github: no repository (owner/repo) or commit SHA to report on", remote=state)
        try:
            if tier == "check_run":
                try:
                    return await self._check_run(op, env, state, api, repo, sha, data, collected)
                except HttpError as err:
                    if not _not_accessible(err):
                        raise
                    api.log(f"check runs refused ({err.provider_message}); using commit statuses instead")
                    tier = state["tier"] = "commit_status"
            if tier == "commit_status":
                try:
                    return await self._run_status(op, env, state, api, repo, sha)
                except HttpError as err:
                    if not (_not_accessible(err) and step_path):
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

    async def _append_step_summary(self, path: str, data: ReportData) -> None:
        text = fit_markdown(data, STEP_SUMMARY_BYTES - 2).text

        def write() -> None:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text.rstrip("\n") + "\n\n")

        await trio.to_thread.run_sync(write)

    def _summary(self, data: ReportData, note: str | None) -> str:
        reserve = len(note.encode()) + 4 if note else 0
        fitted = fit_markdown(data, SUMMARY_BYTES - reserve)
        text = fitted.text.rstrip("\n") + (f"\n\n{note}\n" if note else "\n")
        text = bmp_safe(text)
        if len(text.encode("utf-8")) > SUMMARY_BYTES:  # escapes grew it past the limit
            text = cut_markdown(text, SUMMARY_BYTES, full_report_url=data.full_report_url)
        return text

    def _annotation(self, result: TestResult, env: ProviderEnv) -> dict[str, Any]:
        path = result.file or result.suite or result.classname or "tests"
        workspace = str(env.config.get("workspace") or "")
        if workspace and path.startswith(workspace.rstrip("/") + "/"):
            path = path[len(workspace.rstrip("/")) + 1:]
        path = path.removeprefix("./") or "tests"
        line = result.line if result.line and result.line > 0 else 1
        message = result.message or result.status
        item: dict[str, Any] = {
            "path": bmp_safe(path),
            "start_line": line,
            "end_line": line,
            "annotation_level": "failure",
            "message": _clip_bytes(bmp_safe(message), ANNOTATION_TEXT_BYTES),
            "title": _clip_chars(bmp_safe(display_name(result)), ANNOTATION_TITLE_CHARS),
        }
        if result.details and result.details.strip() != message.strip():
            item["raw_details"] = _clip_bytes(bmp_safe(result.details), ANNOTATION_TEXT_BYTES)
        return item

    async def _find_check_run(self, api: ApiSession, repo: str, sha: str, run: RunSnapshot) -> dict[str, Any] | None:
        """The check run this run created earlier (a create whose response was lost), by ``external_id``."""
        path = f"{repo}/commits/{quote(sha, safe='')}/check-runs"
        params = {"check_name": run.name, "filter": "all", "per_page": 100}
        async with aclosing(api.paginate(path, params, max_pages=10)) as pages:
            async for page in pages:
                body = page.json() or {}
                for check in body.get("check_runs") or []:
                    if check.get("external_id") == run.id:
                        return check
        return None

    async def _check_run(
        self, op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession,
        repo: str, sha: str, data: ReportData, collected: _Collected,
    ) -> Outcome:
        run = op.run
        state.pop("tier", None)
        check_id = state.get("check_run_id")
        if check_id is None:
            found = await self._find_check_run(api, repo, sha, run)
            if found is not None:
                check_id = state["check_run_id"] = found["id"]
                state["annotations_sent"] = int((found.get("output") or {}).get("annotations_count") or 0)
                state["html_url"] = found.get("html_url")
                state.pop("inflight", None)
                api.log(f"found check run {check_id} created by an earlier attempt")
        elif state.get("inflight"):
            # an earlier PATCH may have appended annotations before its response was lost: count them
            got = (await api.request("GET", f"{repo}/check-runs/{check_id}")).json() or {}
            state["annotations_sent"] = int((got.get("output") or {}).get("annotations_count") or 0)
            state.pop("inflight", None)
        cap = self._max_annotations(env)
        candidates = collected.candidates
        sent = int(state.get("annotations_sent", 0))
        pending = [self._annotation(r, env) for r in candidates[sent:cap]]
        note = None
        if len(candidates) > cap:
            note = (f"_Showing {cap} of {len(candidates)} failure annotations; "
                    "the summary and the full report list every failure._")
        summary = self._summary(data, note)
        counts = run.counts
        title = (f"{counts.passed} passed, {counts.failed + counts.errors} failed, {counts.skipped} skipped"
                 if counts.total else "No test results")
        batches = [pending[i:i + ANNOTATIONS_PER_REQUEST] for i in range(0, len(pending), ANNOTATIONS_PER_REQUEST)]
        batches = batches or [[]]
        outcome_url = state.get("html_url")
        for index, batch in enumerate(batches):
            last = index == len(batches) - 1
            body: dict[str, Any] = {
                "name": run.name,
                "external_id": run.id,
                "output": {"title": bmp_safe(title), "summary": summary},
            }
            if batch:
                body["output"]["annotations"] = batch
            details = _http_url(run.details_url) or _http_url(env.ci.job_url) or _http_url(env.ci.build_url)
            if details:
                body["details_url"] = details
            started = _iso(run.start_time)
            if started:
                body["started_at"] = started
            if op.final and last:
                body["status"] = "completed"
                body["conclusion"] = self._conclusion(run)
                body["completed_at"] = _iso(run.end_time) or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            else:
                body["status"] = "in_progress"
            state["inflight"] = True
            if check_id is None:
                body["head_sha"] = sha
                resp = await api.request("POST", f"{repo}/check-runs", json_body=body)
                created = resp.json() or {}
                check_id = state["check_run_id"] = created.get("id")
                outcome_url = state["html_url"] = created.get("html_url")
            else:
                resp = await api.request("PATCH", f"{repo}/check-runs/{check_id}", json_body=body)
                outcome_url = state["html_url"] = (resp.json() or {}).get("html_url") or outcome_url
            state.pop("inflight", None)
            state["annotations_sent"] = sent = sent + len(batch)
        state["annotations_capped"] = len(candidates) > cap
        return Outcome.delivered(url=outcome_url, remote=state, tier="check run",
                                 action="completed" if op.final else "updated")

    @staticmethod
    def _conclusion(run: RunSnapshot) -> str:
        if run.conclusion in ("success", "failure", "cancelled", "neutral", "timed_out"):
            return run.conclusion
        c = run.counts
        return "failure" if c.failed or c.errors else ("success" if c.total else "neutral")

    async def _run_status(
        self, op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession, repo: str, sha: str,
    ) -> Outcome:
        run = op.run
        c = run.counts
        if run.status == "running" and not op.final:
            state_value = "pending"
        else:
            state_value = {"success": "success", "neutral": "success", "failure": "failure"}.get(
                self._conclusion(run), "error")
        parts = [f"{c.passed} passed", f"{c.failed + c.errors} failed", f"{c.skipped} skipped"]
        if c.flaky:
            parts.append(f"{c.flaky} flaky")
        prefix = "running: " if state_value == "pending" else ""
        body: dict[str, Any] = {
            "state": state_value,
            "context": run.name,
            "description": _clip_chars(prefix + ", ".join(parts), STATUS_DESCRIPTION_CHARS),
        }
        target = _http_url(run.details_url) or _http_url(env.ci.job_url) or _http_url(env.ci.build_url)
        if target:
            body["target_url"] = target
        await api.request("POST", f"{repo}/statuses/{quote(sha, safe='')}", json_body=body)
        state["tier"] = "commit_status"
        return Outcome.delivered(url=target, remote=state, tier="commit status",
                                 action="completed" if op.final else "updated")

    # --- build status -----------------------------------------------------------------------------

    async def _set_status(self, op: SetStatus, env: ProviderEnv, api: ApiSession) -> Outcome:
        repo = self._repo_path(env.ci.repository)
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
            body["description"] = _clip_chars(op.description, STATUS_DESCRIPTION_CHARS)
        target = _http_url(op.target_url)
        if target:
            body["target_url"] = target
        await api.request("POST", f"{repo}/statuses/{quote(sha, safe='')}", json_body=body)
        return Outcome.delivered(url=target, remote={"sha": sha, "context": op.context}, tier="commit status")

    # --- PR comments ------------------------------------------------------------------------------

    async def _own_comments(self, api: ApiSession, repo: str, pr: int, marker: str) -> list[dict[str, Any]]:
        """Every comment on the PR whose body starts with our marker, oldest first."""
        found: list[dict[str, Any]] = []
        async with aclosing(api.paginate(f"{repo}/issues/{pr}/comments", {"per_page": 100})) as pages:
            async for page in pages:
                for comment in page.json() or []:
                    if isinstance(comment, dict) and str(comment.get("body") or "").startswith(marker):
                        found.append(comment)
        return sorted(found, key=lambda c: int(c.get("id") or 0))

    async def _delete_comments(self, api: ApiSession, repo: str, comments: list[dict[str, Any]]) -> int:
        removed = 0
        for comment in comments:
            resp = await api.request("DELETE", f"{repo}/issues/comments/{comment['id']}", allow=(404,),
                                     expect_json=False)
            removed += resp.status != 404
        return removed

    def _comment_body(self, op: PostComment, marker: str | None) -> tuple[str, bool]:
        """The body to send (marker first) and whether it had to be shortened to the 65,536-character limit."""
        head = f"{marker}\n" if marker else ""
        budget = COMMENT_CHARS - len(head)
        body = _SURROGATE.sub("\ufffd", op.body)
        if len(body) <= budget:
            return head + body, False
        # cut_markdown counts UTF-8 bytes: a byte budget equal to the character budget is always safe
        return head + cut_markdown(body, budget, full_report_url=op.full_report_url), True

    async def _comment(self, op: PostComment, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
        repo = self._repo_path(env.ci.repository)
        pr = op.pr_number or env.ci.pr_number
        if repo is None:
            return Outcome.refused("github: no repository (owner/repo) for the comment")
        if not pr:
            return Outcome.refused("github: no pull request number for the comment")
        if not env.token:
            return Outcome.refused("github: PR comments need a token")
        marker = comment_marker(op.key) if op.key else None
        body, truncated = self._comment_body(op, marker) if op.mode != "delete" else ("", False)

        def done(action: str, comment: dict[str, Any] | None) -> Outcome:
            remote = {"pr": pr, "truncated": truncated}
            if comment is not None:
                # comment_id: ours, for the next attempt; id/url: what the service shows the client
                remote["comment_id"] = remote["id"] = comment.get("id")
                remote["url"] = comment.get("html_url")
            return Outcome.delivered(action=action, url=comment.get("html_url") if comment else None,
                                     remote=remote, tier="issue comment")

        if marker is None:
            if op.mode == "delete":
                cid = state.get("comment_id")
                if cid is None:
                    return Outcome.refused("github: deleting a comment needs its key")
                gone = await self._delete_comments(api, repo, [{"id": cid}])
                return done("deleted" if gone else "skipped", None)
            resp = await api.request("POST", f"{repo}/issues/{pr}/comments", json_body={"body": body})
            return done("created", resp.json())

        # sticky: a known id from the previous delivery is updated directly (one call), else the PR is searched
        known = state.get("comment_id")
        if op.mode == "upsert" and known is not None and state.get("pr") == pr:
            resp = await api.request("PATCH", f"{repo}/issues/comments/{known}", json_body={"body": body},
                                     allow=(404,))
            if resp.status != 404:
                return done("updated", resp.json())
        mine = await self._own_comments(api, repo, pr, marker)
        if op.mode == "delete":
            gone = await self._delete_comments(api, repo, mine)
            return done("deleted" if gone else "skipped", None)
        if op.mode == "create" and mine:
            return done("skipped", mine[-1])
        if op.mode == "replace":
            await self._delete_comments(api, repo, mine)
            mine = []
        if mine:
            keep, extra = mine[-1], mine[:-1]
            if extra:
                await self._delete_comments(api, repo, extra)
                api.log(f"removed {len(extra)} duplicate comment(s) with key {op.key!r}")
            if keep.get("body") == body:
                return done("skipped", keep)
            resp = await api.request("PATCH", f"{repo}/issues/comments/{keep['id']}", json_body={"body": body})
            return done("updated", resp.json())
        resp = await api.request("POST", f"{repo}/issues/{pr}/comments", json_body={"body": body})
        return done("created", resp.json())

