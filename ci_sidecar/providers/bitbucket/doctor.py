"""``ci-sidecar doctor --check`` for Bitbucket (Data Center: :mod:`.dc_doctor`): prove what the credential found can do, and name what it lacks.

Bitbucket Cloud has no endpoint that lists an access token's or app password's scopes, so a scope is proven by
using it. Read-only by default: listing the commit's Code Insights reports proves the credential reaches the
repository (``repository`` scope); the writes are left unproven. With ``--write`` each tier is tried once and
cleaned up where Bitbucket allows it: a Code Insights report "ci-sidecar doctor" is created and deleted again
(``repository:write`` for access tokens; reports are covered by the Pipelines auth proxy too), a build status
"ci-sidecar doctor" is set on the commit (Bitbucket cannot delete statuses: it stays, visibly named), a pull
request comment is created and deleted (``pullrequest:write``) and a one-line file is put in Downloads and
deleted. A refusal names the scope the tier needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ci_sidecar.protocol.records import CIContext

from .._http import ApiSession, HttpError, HttpLayer, Multipart
from ..base import CheckItem, CheckReport, ProviderEnv
from ..settings import session_settings
from ._api import NEEDS_TOKEN, auth_for, commit_sha, data_center, mode, repo_path, rest_config

__all__ = ["check_bitbucket", "DOCTOR_KEY", "DOCTOR_NAME"]

DOCTOR_NAME = "ci-sidecar doctor"
DOCTOR_KEY = "ci-sidecar-doctor"
#: what each write tier needs, named when Bitbucket refuses it
_SCOPES = {"code insights report": "repository:write", "build status": "repository:write",
           "PR comment": "pullrequest:write", "downloads": "repository:write"}


def probe_env(ci: CIContext, env: Mapping[str, str], credential: Any, *, trust_env: bool) -> ProviderEnv:
    """The environment a write of this job would have: the job's ``BITBUCKET_*`` settings, the credential bound
    to its URL (none: the Pipelines auth proxy inside a step, else nothing)."""
    urls = {"bitbucket": credential.base_url} if credential is not None else {}
    config = {**session_settings("bitbucket", env=env, credential_urls=urls), "trust_env": trust_env}
    token = credential.secret.reveal() if credential is not None else None
    return ProviderEnv.build(ci, config, credential.ref() if credential is not None else None, token)


async def check_bitbucket(layer: HttpLayer, ci: CIContext, env: Mapping[str, str], credential: Any, *,
                          write: bool, trust_env: bool) -> CheckReport:
    """The Bitbucket probes with the session's bound credential (see the module docstring)."""
    penv = probe_env(ci, env, credential, trust_env=trust_env)
    if data_center(penv):
        from .dc_doctor import check_dc

        return await check_dc(layer, penv, write=write)
    kind = mode(penv)
    tier = {"bearer": "code insights report", "basic": "code insights report",
            "proxy": "code insights report (pipelines auth proxy)"}.get(kind)
    report = CheckReport(provider="bitbucket", tier=tier, write=write)
    api = layer.session(rest_config(penv), penv.token, None, auth=auth_for(penv))

    def add(name: str, result: Any, detail: str) -> None:
        report.items.append(CheckItem(name=name, result=result, detail=api.redact(detail)))

    if kind == "none":
        add("credential", "failed", "no Bitbucket credential and not inside Bitbucket Pipelines: set "
                                    "BITBUCKET_TOKEN or BITBUCKET_USERNAME + BITBUCKET_APP_PASSWORD")
        return report
    repo, sha = repo_path(penv), commit_sha(penv)
    if repo is None or not sha:
        add("repository", "failed", "no repository (BITBUCKET_WORKSPACE/BITBUCKET_REPO_SLUG) or commit "
                                    "(BITBUCKET_COMMIT) to check against")
        return report
    reports = f"{repo}/commit/{quote(sha, safe='')}/reports"
    try:
        await api.request("GET", reports)
        add("repository", "proven", f"the {_how(kind)} reads {repo.removeprefix('/repositories/')} "
                                    f"(Code Insights of {sha[:12]})")
    except HttpError as err:
        add("repository", "failed", f"the repository is not reachable: {err.provider_message}")
        return report
    if kind == "proxy":
        for name in ("build status", "PR comment", "downloads"):
            add(name, "failed", NEEDS_TOKEN)
    if not write:
        for name in (["code insights report"] + ([] if kind == "proxy" else ["build status", "PR comment",
                                                                              "downloads"])):
            add(name, "unproven", "Bitbucket does not list a credential's scopes: run `ci-sidecar doctor "
                                  "--check --write` to try it")
        return report
    await _try(add, "code insights report", _report(api, reports))
    if kind == "proxy":
        return report
    await _try(add, "build status", _status(api, f"{repo}/commit/{quote(sha, safe='')}/statuses/build", sha))
    if ci.pr_number:
        await _try(add, "PR comment", _comment(api, f"{repo}/pullrequests/{ci.pr_number}/comments"))
    else:
        add("PR comment", "skipped", "not a pull request build (no BITBUCKET_PR_ID)")
    await _try(add, "downloads", _download(api, f"{repo}/downloads"))
    return report


def _how(kind: str) -> str:
    return {"bearer": "access token", "basic": "app password", "proxy": "Pipelines auth proxy"}[kind]


async def _try(add: Any, name: str, attempt: Any) -> None:
    try:
        add(name, "proven", await attempt)
    except HttpError as err:
        scope = f" (it needs the {_SCOPES[name]} scope)" if err.outcome.status in (401, 403) else ""
        add(name, "failed", f"refused{scope}: {err.provider_message}")


async def _report(api: ApiSession, reports: str) -> str:
    await api.request("PUT", f"{reports}/{DOCTOR_KEY}", json_body={
        "type": "report", "title": DOCTOR_NAME, "report_type": "TEST", "result": "PASSED",
        "details": "write access proven by ci-sidecar doctor (deleted again)"})
    await api.request("DELETE", f"{reports}/{DOCTOR_KEY}", expect_json=False)
    return f"created and deleted Code Insights report '{DOCTOR_KEY}'"


async def _status(api: ApiSession, path: str, sha: str) -> str:
    await api.request("POST", path, json_body={"type": "commitstatus", "key": DOCTOR_KEY, "state": "SUCCESSFUL", "name": DOCTOR_NAME,
                                               "description": "write access proven by ci-sidecar doctor"})
    return f"set build status '{DOCTOR_NAME}' on {sha[:12]} (Bitbucket keeps it)"


async def _comment(api: ApiSession, path: str) -> str:
    made = (await api.request("POST", path, json_body={"type": "pullrequest_comment", "content": {
        "raw": "ci-sidecar doctor: write access proven (this comment is deleted again)"}})).json() or {}
    if not isinstance(made.get("id"), int):
        return "created a pull request comment (Bitbucket named no id to delete it by: delete it by hand)"
    await api.request("DELETE", f"{path}/{made['id']}", expect_json=False)
    return "created and deleted a pull request comment"


async def _download(api: ApiSession, path: str) -> str:
    name = f"{DOCTOR_KEY}.txt"
    await api.request("POST", path, expect_json=False, body=Multipart(
        files={"files": (name, b"write access proven by ci-sidecar doctor\n", "text/plain")}))
    await api.request("DELETE", f"{path}/{name}", expect_json=False)
    return f"uploaded and deleted {name} in Downloads"
