"""``ci-sidecar doctor --check`` against Bitbucket Data Center/Server.

Read-only by default: reading the repository (``/api/1.0/projects/{key}/repos/{slug}``) proves the credential
reaches it; the writes stay unproven. With ``--write`` each tier is tried once and cleaned up where the server
allows it: a Code Insights report ``ci-sidecar-doctor`` is created and deleted, a build status "ci-sidecar doctor"
is set on the commit (through the legacy build-status API on servers before 7.4; build statuses cannot be deleted
by their writer: it stays, visibly named), a pull request
comment is created and deleted (in pull request builds). Downloads do not exist on Data Center: that item says
where artifacts go instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .._http import ApiSession, HttpError, HttpLayer
from ..base import CheckItem, CheckReport, ProviderEnv
from ._api import commit_sha
from .dc_api import NO_CREDENTIAL, NO_DOWNLOADS, NO_REPOSITORY, dc_auth, dc_config, dc_mode, dc_repo, repo_rest
from .dc_insights import post_status

__all__ = ["check_dc"]

DOCTOR_NAME = "ci-sidecar doctor"
DOCTOR_KEY = "ci-sidecar-doctor"


async def check_dc(layer: HttpLayer, penv: ProviderEnv, *, write: bool) -> CheckReport:
    """The Data Center probes with the session's bound credential (see the module docstring)."""
    kind = dc_mode(penv)
    report = CheckReport(provider="bitbucket", tier="code insights report" if kind != "none" else None, write=write)
    api = layer.session(dc_config(penv), penv.token, None, auth=dc_auth(penv))

    def add(name: str, result: Any, detail: str) -> None:
        report.items.append(CheckItem(name=name, result=result, detail=api.redact(detail)))

    if kind == "none":
        add("credential", "failed", NO_CREDENTIAL)
        return report
    repo, sha = dc_repo(penv), commit_sha(penv)
    if repo is None or not sha:
        add("repository", "failed", f"{NO_REPOSITORY}, or no commit to check against")
        return report
    try:
        await api.request("GET", repo_rest(penv, "api/1.0") or "")
        how = "HTTP access token" if kind == "bearer" else "user and password"
        add("repository", "proven", f"the {how} reads {repo[0]}/{repo[1]} on {api.config.base_url}")
    except HttpError as err:
        add("repository", "failed", f"the repository is not reachable: {err.provider_message}")
        return report
    tiers = ["code insights report", "build status", "PR comment"]
    if not write:
        for name in tiers:
            add(name, "unproven", "Data Center does not list a token's permissions here: run `ci-sidecar doctor "
                                  "--check --write` to try it")
    else:
        commit = quote(sha, safe="")
        await _try(add, "code insights report", _report(api, f"{repo_rest(penv, 'insights/1.0')}/commits/{commit}"))
        await _try(add, "build status", _status(api, sha, penv))
        if penv.ci.pr_number:
            await _try(add, "PR comment", _comment(
                api, f"{repo_rest(penv, 'api/1.0')}/pull-requests/{int(penv.ci.pr_number)}/comments"))
        else:
            add("PR comment", "skipped", "not a pull request build (no BITBUCKET_PR_ID)")
    add("downloads", "skipped", NO_DOWNLOADS)
    return report


async def _try(add: Any, name: str, attempt: Any) -> None:
    try:
        add(name, "proven", await attempt)
    except HttpError as err:
        why = " (the token lacks the permission this needs)" if err.outcome.status in (401, 403) else ""
        add(name, "failed", f"refused{why}: {err.provider_message}")


async def _report(api: ApiSession, commit: str) -> str:
    path = f"{commit}/reports/{DOCTOR_KEY}"
    await api.request("PUT", path, json_body={"title": DOCTOR_NAME, "result": "PASS", "reporter": "ci-sidecar",
                                              "details": "write access proven by ci-sidecar doctor (deleted again)"})
    await api.request("DELETE", path, expect_json=False)
    return f"created and deleted Code Insights report '{DOCTOR_KEY}'"


async def _status(api: ApiSession, sha: str, penv: ProviderEnv) -> str:
    url = penv.ci.build_url or penv.ci.job_url or api.config.base_url.removesuffix("/rest")
    state: dict[str, Any] = {}
    await post_status(penv, api, sha, {"key": DOCTOR_KEY, "state": "SUCCESSFUL", "name": DOCTOR_NAME, "url": url,
                                       "description": "write access proven by ci-sidecar doctor"}, state)
    where = "/build-status/1.0, this server's" if state.get("legacy_builds") else "/api/latest"
    return f"set build status '{DOCTOR_NAME}' on {sha[:12]} through {where} (it stays)"


async def _comment(api: ApiSession, path: str) -> str:
    made = (await api.request("POST", path, json_body={
        "text": "ci-sidecar doctor: write access proven (this comment is deleted again)"})).json() or {}
    if not isinstance(made.get("id"), int):
        return "created a pull request comment (the server named no id to delete it by: delete it by hand)"
    await api.request("DELETE", f"{path}/{made['id']}", params={"version": int(made.get("version") or 0)},
                      expect_json=False)
    return "created and deleted a pull request comment"
