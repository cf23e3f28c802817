"""``ci-sidecar doctor --check`` for GitHub: prove that the tokens found can do what the chosen tiers need.

Read-only by default and trace-free: ``GET /rate_limit`` (does not count against the limit) proves the token is
accepted and shows a classic token's scopes (``x-oauth-scopes``); ``GET /repos/{owner}/{repo}`` proves the
repository is visible and, for user tokens, shows the permissions (``push`` is what statuses need); the Actions
runtime token is proven with a ``ListArtifacts`` call to the results service and URL lookup with the REST
artifact list. What cannot be proven without writing — creating a check run with an App/Actions token, a
comment or status with a fine-grained token — is reported ``unproven``; ``--write`` proves it by doing it once,
visibly named: a check run "ci-sidecar doctor" created and completed (conclusion ``neutral``), a commit status
with context ``ci-sidecar/doctor``, a PR comment created and deleted again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from ci_sidecar.protocol.records import CIContext

from .._http import HttpConfig, HttpError
from ..base import CheckItem, CheckReport
from ._api import rest_layer, token_kind
from .artifacts import SERVICE
from .runtime import find_actions_runtime, parse_runtime_token

__all__ = ["check_github", "DOCTOR_CHECK_NAME", "DOCTOR_STATUS_CONTEXT"]

Result = Literal["proven", "failed", "unproven", "skipped"]
DOCTOR_CHECK_NAME = "ci-sidecar doctor"
DOCTOR_STATUS_CONTEXT = "ci-sidecar/doctor"
_STATUS_SCOPES = {"repo", "repo:status"}
_COMMENT_SCOPES = {"repo"}


def _scopes(header: str | None) -> set[str] | None:
    if header is None:
        return None
    return {s.strip() for s in header.split(",") if s.strip()}


class _Probe:
    """Runs the GitHub probes with one token; collects items."""

    def __init__(self, api: Any, report: CheckReport) -> None:
        self.api = api
        self.report = report

    def add(self, name: str, result: Result, detail: str) -> None:
        self.report.items.append(CheckItem(name=name, result=result, detail=self.api.redact(detail)))

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        try:
            return await self.api.request("GET", path, params=params)
        except HttpError as err:
            return err


async def check_github(
    ci: CIContext,
    env: Mapping[str, str],
    token: str | None,
    *,
    base_url: str,
    write: bool = False,
    trust_env: bool = True,
) -> CheckReport:
    """Prove (read-only unless ``write``) what the GitHub tiers chosen for this token need."""
    kind = token_kind(token)
    tier = {"pat": "commit status", "none": "job summary"}.get(kind, "check run")
    report = CheckReport(provider="github", tier=tier, write=write)
    layer = rest_layer()  # GitHub's rules: a rate-limit 403 is a retry, not a missing permission
    config = HttpConfig.from_env_config(base_url, {"trust_env": trust_env})
    api = layer.session(config, token, None)
    probe = _Probe(api, report)
    try:
        repo = ci.repository if ci.repository and ci.repository.count("/") == 1 else None
        repo_path = "/repos/" + "/".join(quote(p, safe="") for p in repo.split("/")) if repo else None
        sha = ci.head_sha or ci.commit_sha
        step = env.get("GITHUB_STEP_SUMMARY")
        if step:
            writable = os.access(step, os.W_OK) or (not os.path.exists(step)
                                                     and os.access(os.path.dirname(step) or ".", os.W_OK))
            probe.add("job summary", "proven" if writable else "failed",
                      f"{step} is {'writable' if writable else 'not writable'}")
        elif tier == "job summary":
            probe.add("job summary", "failed", "no GitHub token and no GITHUB_STEP_SUMMARY: nothing can be reported")
        if token:
            scopes, permissions, private = await _identity(probe, repo_path, base_url)
            if tier == "check run" and repo_path and sha:
                await _check_runs(probe, repo_path, sha, write)
            elif tier == "commit status" and repo_path and sha:
                await _statuses(probe, repo_path, sha, scopes, permissions, private, write)
            elif tier != "job summary":
                probe.add(tier, "failed", "no repository or commit SHA detected to report on")
            if repo_path and ci.pr_number:
                await _comments(probe, repo_path, ci.pr_number, kind, scopes, write)
            if repo_path and ci.build_id:
                got = await probe.get(f"{repo_path}/actions/runs/{quote(ci.build_id, safe='')}/artifacts",
                                      {"per_page": 1})
                if isinstance(got, HttpError):
                    probe.add("artifact URL lookup", "failed", f"listing this run's artifacts: {got.provider_message}")
                else:
                    probe.add("artifact URL lookup", "proven", "the token can list this run's artifacts")
        await _runtime(probe, env, layer, trust_env)
    finally:
        await layer.aclose()
    return report


async def _identity(probe: _Probe, repo_path: str | None, base_url: str) -> tuple[set[str] | None, dict | None, bool]:
    got = await probe.get("/rate_limit")
    if isinstance(got, HttpError):
        probe.add("token", "failed", f"{base_url} refused the token: {got.provider_message}")
        return None, None, True
    scopes = _scopes(got.headers.get("x-oauth-scopes"))
    limit = got.headers.get("x-ratelimit-limit")
    extra = f"; classic scopes: {', '.join(sorted(scopes)) or '(none)'}" if scopes is not None else ""
    probe.add("token", "proven", f"accepted by {base_url} (rate limit {limit or '?'}/h{extra})")
    if repo_path is None:
        probe.add("repository", "failed", "no owner/repo detected")
        return scopes, None, True
    got = await probe.get(repo_path)
    if isinstance(got, HttpError):
        probe.add("repository", "failed", f"{repo_path[7:]} is not visible to this token: {got.provider_message}")
        return scopes, None, True
    body = got.json() or {}
    permissions = body.get("permissions") if isinstance(body.get("permissions"), dict) else None
    private = bool(body.get("private", True))
    shown = ", ".join(k for k, v in (permissions or {}).items() if v) or "not shown for this token kind"
    accepted = got.headers.get("x-accepted-github-permissions")
    note = f"; endpoint accepts {accepted}" if accepted else ""
    probe.add("repository", "proven", f"{repo_path[7:]} is visible (permissions: {shown}{note})")
    return scopes, permissions, private


async def _check_runs(probe: _Probe, repo_path: str, sha: str, write: bool) -> None:
    if not write:
        got = await probe.get(f"{repo_path}/commits/{quote(sha, safe='')}/check-runs", {"per_page": 1})
        read = "check runs of the commit are readable; " if not isinstance(got, HttpError) else ""
        probe.add("check run", "unproven",
                  f"{read}creating one needs checks: write, which GitHub shows nowhere without writing: run "
                  f"`ci-sidecar doctor --check --write` (creates and completes a check run named '{DOCTOR_CHECK_NAME}')")
        return
    body = {"name": DOCTOR_CHECK_NAME, "head_sha": sha, "status": "in_progress", "external_id": "ci-sidecar-doctor",
            "output": {"title": "Proving write access", "summary": "Created by `ci-sidecar doctor --check --write`."}}
    try:
        created = (await probe.api.request("POST", f"{repo_path}/check-runs", json_body=body)).json() or {}
        done = {"status": "completed", "conclusion": "neutral",
                "output": {"title": "Write access proven", "summary": "`ci-sidecar doctor` can create and complete "
                                                                      "check runs here; this run can be ignored."}}
        await probe.api.request("PATCH", f"{repo_path}/check-runs/{created.get('id')}", json_body=done)
    except HttpError as err:
        probe.add("check run", "failed", f"creating a check run was refused: {err.provider_message} "
                                         "(needs a GitHub App or Actions token with checks: write)")
        return
    probe.add("check run", "proven", f"created and completed check run {created.get('html_url') or created.get('id')}")


async def _statuses(probe: _Probe, repo_path: str, sha: str, scopes: set[str] | None, permissions: dict | None,
                    private: bool, write: bool) -> None:
    if scopes is not None and permissions is not None and not write:
        wanted = _STATUS_SCOPES | ({"public_repo"} if not private else set())
        if not scopes & wanted:
            probe.add("commit status", "failed", f"the token's scopes ({', '.join(sorted(scopes)) or 'none'}) "
                                                 f"include none of {', '.join(sorted(wanted))}")
        elif not permissions.get("push"):
            probe.add("commit status", "failed", "the token's user has no push (write) access to the repository")
        else:
            probe.add("commit status", "proven", "scope and push access allow creating commit statuses")
        return
    if not write:
        probe.add("commit status", "unproven", "fine-grained tokens show no permissions: run "
                                               f"`ci-sidecar doctor --check --write` (sets status '{DOCTOR_STATUS_CONTEXT}')")
        return
    body = {"state": "success", "context": DOCTOR_STATUS_CONTEXT, "description": "write access proven by ci-sidecar doctor"}
    try:
        await probe.api.request("POST", f"{repo_path}/statuses/{quote(sha, safe='')}", json_body=body)
    except HttpError as err:
        probe.add("commit status", "failed", f"setting a commit status was refused: {err.provider_message}")
        return
    probe.add("commit status", "proven", f"set commit status '{DOCTOR_STATUS_CONTEXT}' on {sha[:12]}")


async def _comments(probe: _Probe, repo_path: str, pr: int, kind: str, scopes: set[str] | None, write: bool) -> None:
    path = f"{repo_path}/issues/{pr}/comments"
    if write:
        try:
            made = (await probe.api.request("POST", path, json_body={
                "body": "<!-- ci-sidecar:doctor -->\nci-sidecar doctor: proving write access (deleted right away)."
            })).json() or {}
            await probe.api.request("DELETE", f"{repo_path}/issues/comments/{made.get('id')}", expect_json=False,
                                    allow=(404,))
        except HttpError as err:
            probe.add("PR comment", "failed", f"commenting on #{pr} was refused: {err.provider_message}")
            return
        probe.add("PR comment", "proven", f"created and deleted a comment on #{pr}")
        return
    got = await probe.get(path, {"per_page": 1})
    if isinstance(got, HttpError):
        probe.add("PR comment", "failed", f"the comments of #{pr} are not readable: {got.provider_message}")
    elif scopes is not None and scopes & (_COMMENT_SCOPES | {"public_repo"}):
        probe.add("PR comment", "proven", "the token's scopes allow commenting")
    else:
        probe.add("PR comment", "unproven", f"comments of #{pr} are readable; writing is proven only by "
                                            "`ci-sidecar doctor --check --write` (creates and deletes one)")


async def _runtime(probe: _Probe, env: Mapping[str, str], layer: Any, trust_env: bool) -> None:
    """The Actions artifact service: a ListArtifacts call proves the runtime token is accepted (no trace)."""
    cred = find_actions_runtime(env)
    if cred is None:
        if env.get("GITHUB_ACTIONS") == "true":
            probe.add("artifacts", "skipped", "no ACTIONS_RUNTIME_TOKEN/ACTIONS_RESULTS_URL in this step "
                                              "(see .github/actions/export-runtime); the S3 backend is used if set")
        return
    token = cred.secret.reveal()
    try:
        ids = parse_runtime_token(token)
    except ValueError as exc:
        probe.add("artifacts", "failed", str(exc))
        return
    api = layer.session(HttpConfig.from_env_config(cred.base_url or "", {"trust_env": trust_env}), token, None)
    body = {"workflow_run_backend_id": ids.run, "workflow_job_run_backend_id": ids.job, "name_filter": "ci-sidecar-doctor"}
    try:
        await api.request("POST", f"/twirp/{SERVICE}/ListArtifacts", json_body=body, paced=False)
    except HttpError as err:
        probe.add("artifacts", "failed", api.redact(f"the results service refused the runtime token: {err.provider_message}"))
        return
    probe.add("artifacts", "proven", f"the results service at {cred.base_url} accepts the runtime token "
                                     "(uploads are not tried: they would leave an artifact)")
