"""``ci-sidecar doctor --check`` for GitLab: prove what the token found can do, and name what it lacks.

Read-only by default: ``GET /projects/:id`` proves the token reaches the project; ``GET
/personal_access_tokens/self`` shows a personal, project or group token's scopes (commit statuses and notes need
``api``). With ``--write`` a commit status named "ci-sidecar doctor" is set on the job's commit, visibly. The job
token (``CI_JOB_TOKEN``) is reported for what it is: packages yes, statuses and notes no.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ci_sidecar.protocol.records import CIContext

from .._http import HttpConfig, HttpError, HttpLayer
from ..base import CheckItem, CheckReport
from ._api import JOB_TOKEN_NOTE, JOB_TOKEN_VAR, auth_for_kind

__all__ = ["check_gitlab", "DOCTOR_STATUS_NAME"]

DOCTOR_STATUS_NAME = "ci-sidecar doctor"


async def check_gitlab(layer: HttpLayer, ci: CIContext, env: Mapping[str, str], credential: Any, *, base_url: str,
                       write: bool, trust_env: bool) -> CheckReport:
    """The GitLab probes with the session's bound token (see the module docstring)."""
    token = credential.secret.reveal() if credential is not None else None
    kind = "none" if not token else ("job" if str(credential.source).endswith(JOB_TOKEN_VAR) else "api")
    report = CheckReport(provider="gitlab", tier={"api": "commit status", "job": "staged"}.get(kind, "staged"),
                         write=write)
    api = layer.session(HttpConfig.from_env_config(base_url, {"trust_env": trust_env}), token, None,
                        auth=auth_for_kind(kind))

    def add(name: str, result: Any, detail: str) -> None:
        report.items.append(CheckItem(name=name, result=result, detail=api.redact(detail)))

    if kind == "none":
        add("token", "failed", "no GitLab token: set GITLAB_TOKEN (api scope) for statuses and notes; "
                               "JUnit and artifacts are staged for the job's artifacts meanwhile")
        return report
    ident = env.get("CI_PROJECT_ID") or env.get("CI_PROJECT_PATH") or ci.repository
    if kind == "job":
        add("commit status", "failed", JOB_TOKEN_NOTE)
        add("merge request note", "failed", JOB_TOKEN_NOTE)
        add("artifacts", "unproven", "the job token may upload generic packages; not tried (it would leave one)")
        return report
    if not ident:
        add("project", "failed", "no project: CI_PROJECT_ID or CI_PROJECT_PATH is not set")
        return report
    project = f"/projects/{quote(str(ident), safe='')}"
    try:
        await api.request("GET", project)
        add("project", "proven", f"the token reaches project {ident}")
    except HttpError as err:
        add("project", "failed", f"project {ident} is not reachable with this token: {err.provider_message}")
        return report
    try:
        scopes = set((await api.request("GET", "/personal_access_tokens/self")).json().get("scopes") or [])
    except (HttpError, AttributeError):
        scopes = None
    if scopes is not None and "api" not in scopes:
        add("commit status", "failed", f"the token's scopes ({', '.join(sorted(scopes)) or 'none'}) lack api: "
                                       "commit statuses and notes need the api scope")
        return report
    sha = ci.head_sha or ci.commit_sha
    if not write:
        add("commit status", "proven" if scopes else "unproven",
            "the token has the api scope" if scopes else "scopes unknown: run `ci-sidecar doctor --check --write`")
        return report
    if not sha:
        add("commit status", "skipped", "no commit SHA to set a status on")
        return report
    try:
        await api.request("POST", f"{project}/statuses/{quote(sha, safe='')}",
                          json_body={"state": "success", "name": DOCTOR_STATUS_NAME,
                                     "description": "write access proven by ci-sidecar doctor"})
        add("commit status", "proven", f"set commit status '{DOCTOR_STATUS_NAME}' on {sha[:12]}")
    except HttpError as err:
        add("commit status", "failed", f"setting a commit status was refused: {err.provider_message}")
    return report
