"""``ci-sidecar doctor --check`` for Jenkins: prove the credential found can edit this build, crumb included.

Read-only by default: ``GET /whoAmI/api/json`` names the user the token signs in as, ``GET <build>/api/json``
proves it reads the build, ``GET /crumbIssuer/api/json`` that a crumb (with its session cookie) is handed out.
With ``--write`` the build's description is submitted back unchanged: Jenkins checks the crumb and the
Run/Update permission exactly as for a real write, and the build page shows nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ci_sidecar.protocol.records import CIContext

from .._http import Crumb, Form, HttpConfig, HttpError, HttpLayer
from ..base import CheckItem, CheckReport, ProviderEnv
from ._api import build_path
from .description import read_description
from .settings import JenkinsSettings

__all__ = ["check_jenkins"]


def _env(ci: CIContext, env: Mapping[str, str]) -> ProviderEnv:
    settings = {field: env.get(var) for field, var in JenkinsSettings.ENV_KEYS.items() if env.get(var)}
    return ProviderEnv(ci=ci, config=settings)


async def check_jenkins(layer: HttpLayer, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                        trust_env: bool) -> CheckReport:
    """The Jenkins probes with the session's bound credential (see the module docstring)."""
    report = CheckReport(provider="jenkins", tier="build description", write=write)
    token = credential.secret.reveal() if credential is not None else None
    base = (credential.base_url if credential is not None else None) or env.get("JENKINS_URL")
    if not token or not base:
        detail = ("no Jenkins credential: set JENKINS_USER and JENKINS_TOKEN (an API token) for the build "
                  "description; JUnit and artifacts are staged for junit and archiveArtifacts meanwhile") if not token \
            else "no Jenkins URL: JENKINS_URL is not set and [providers.jenkins] base_url neither"
        report.items.append(CheckItem(name="credential" if not token else "server", result="failed", detail=detail))
        return report
    auth = Crumb(credential.username if credential is not None else None)
    api = layer.session(HttpConfig.from_env_config(str(base).rstrip("/"), {"trust_env": trust_env}), token, None,
                        auth=auth)

    def add(name: str, result: Any, detail: str) -> None:
        report.items.append(CheckItem(name=name, result=result, detail=api.redact(detail)))
    try:
        who = (await api.request("GET", "/whoAmI/api/json")).json() or {}
        signed_in = who.get("authenticated") and who.get("name") not in (None, "anonymous")
        add("credential", "proven" if signed_in else "failed",
            f"signed in as {who.get('name')}" if signed_in else "Jenkins took the request as anonymous")
        if not signed_in:
            return report
    except HttpError as err:
        add("credential", "failed", f"Jenkins refused the credential: {err.provider_message}")
        return report
    path = build_path(_env(ci, env))
    if path is None:
        add("build", "skipped", "no build to check (JOB_NAME and BUILD_NUMBER are not set)")
        return report
    try:
        description = await read_description(api, path)
        add("build", "proven", f"reads build {path}")
    except HttpError as err:
        add("build", "failed", f"build {path} is not readable with this credential: {err.provider_message}")
        return report
    try:
        crumb = await api.request("GET", "/crumbIssuer/api/json", allow=(404,))
        add("crumb", "proven", "crumbs are off on this server" if crumb.status == 404 else
            "a crumb and its session cookie are handed out")
    except HttpError as err:
        add("crumb", "failed", f"the crumb issuer refused: {err.provider_message}")
        return report
    if not write:
        add("description", "unproven", "editing the description is not tried: run `ci-sidecar doctor --check "
                                       "--write` (it submits the description back unchanged)")
        return report
    try:
        await api.request("POST", f"{path}/submitDescription", body=Form({"description": description or "",
                                                                          "Submit": "Submit"}),
                          expect_json=False, redirects="return")
        add("description", "proven", "the build description was submitted back unchanged (crumb and Run/Update "
                                     "permission accepted)")
    except HttpError as err:
        add("description", "failed", f"editing the build description was refused: {err.provider_message}")
    return report
