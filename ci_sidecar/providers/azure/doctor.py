"""``ci-sidecar doctor --check`` for Azure DevOps: prove what the token found can do, and name what it lacks.

Read-only by default: ``GET test/runs`` proves the token reads the project's test runs (Test Management), and on an
Azure Repos repository ``GET …/commits/{sha}/statuses`` that it reads the code. With ``--write`` a test run named
"ci-sidecar doctor" is created and completed, and a commit status of that name is set, both visibly. A 203 sign-in
page is reported as the credential not being accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ci_sidecar.protocol.records import CIContext

from .._http import HttpConfig, HttpError, HttpLayer
from .._render import utc_stamp
from ..base import CheckItem, CheckReport, ProviderEnv
from ._api import V, auth_for_source, collection_url, project_path, repo_path

__all__ = ["check_azure", "DOCTOR_NAME"]

DOCTOR_NAME = "ci-sidecar doctor"


async def check_azure(layer: HttpLayer, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                      trust_env: bool) -> CheckReport:
    """The Azure probes with the session's bound token (see the module docstring)."""
    token = credential.secret.reveal() if credential is not None else None
    report = CheckReport(provider="azure", tier="test run" if token else None, write=write)
    settings = {"collection_uri": env.get("SYSTEM_COLLECTIONURI"), "project": env.get("SYSTEM_TEAMPROJECT"),
                "repository_id": env.get("BUILD_REPOSITORY_ID"),
                "repository_provider": env.get("BUILD_REPOSITORY_PROVIDER"), "trust_env": trust_env}
    penv = ProviderEnv(ci=ci, config=settings, base_url=credential.base_url if credential is not None else None)
    base = collection_url(penv)
    api = layer.session(HttpConfig.from_env_config(base or "https://dev.azure.com", {"trust_env": trust_env}), token,
                        None, auth=auth_for_source(credential.source if credential is not None else None))

    def add(name: str, result: Any, detail: str) -> None:
        report.items.append(CheckItem(name=name, result=result, detail=api.redact(detail)))

    if not token:
        add("token", "failed", "no Azure DevOps token: map SYSTEM_ACCESSTOKEN into the step's env, or set "
                               "AZURE_DEVOPS_TOKEN (a PAT with Test Management and Code (status) scopes); without "
                               "one `ci-sidecar exec` prints ##vso logging commands for the agent")
        return report
    project = project_path(penv)
    if base is None or project is None:
        add("project", "failed", "no organization or project: SYSTEM_COLLECTIONURI and SYSTEM_TEAMPROJECT are not "
                                 "set")
        return report
    try:
        await api.request("GET", f"{project}/test/runs", params={**V, "$top": 1})
        add("test runs", "proven", f"the token reads the test runs of {settings['project']}")
    except HttpError as err:
        add("test runs", "failed", f"reading test runs was refused: {err.provider_message}")
        return report
    repo, sha = repo_path(penv), ci.head_sha or ci.commit_sha
    if repo is not None and sha:
        try:
            await api.request("GET", f"{repo}/commits/{quote(sha, safe='')}/statuses", params={**V, "top": 1})
            add("repository", "proven", "the token reads the repository's commit statuses")
        except HttpError as err:
            add("repository", "failed", f"reading the repository's statuses was refused: {err.provider_message}")
    if not write:
        add("test run write", "unproven", "not tried: run `ci-sidecar doctor --check --write`")
        return report
    try:
        made = (await api.request("POST", f"{project}/test/runs", params=V, json_body={
            "name": DOCTOR_NAME, "automated": True, "state": "InProgress", "startDate": utc_stamp()})).json() or {}
        await api.request("PATCH", f"{project}/test/runs/{int(made['id'])}", params=V,
                          json_body={"state": "Completed", "completedDate": utc_stamp()})
        add("test run write", "proven", f"created and completed test run '{DOCTOR_NAME}' ({made.get('id')})")
    except (HttpError, KeyError, TypeError, ValueError) as err:
        add("test run write", "failed", f"creating a test run was refused: {getattr(err, 'provider_message', err)}")
    if repo is not None and sha:
        try:
            await api.request("POST", f"{repo}/commits/{quote(sha, safe='')}/statuses", params=V, json_body={
                "state": "succeeded", "description": "write access proven by ci-sidecar doctor",
                "context": {"name": DOCTOR_NAME, "genre": "ci-sidecar"}})
            add("commit status write", "proven", f"set commit status '{DOCTOR_NAME}' on {sha[:12]}")
        except HttpError as err:
            add("commit status write", "failed", f"setting a commit status was refused: {err.provider_message}")
    return report
