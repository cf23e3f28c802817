"""The Travis CI provider class: what Travis can and cannot take, and API v3 reads (build state and web links).

Travis CI has no API through which a job could publish test results, statuses, comments or artifacts
(docs.travis-ci.com/user/developer: API v3 reads builds and jobs, triggers and controls them). A session on
Travis therefore publishes:

* statuses and PR comments through the code host (GitHub, Bitbucket, GitLab) when the job has its token — the
  service routes them there; one that reaches Travis (no code host token) answers -31007 saying so;
* artifacts to the daemon's ``[artifact_store]`` (S3-compatible; presigned or public URLs); without one an upload
  answers -31007 naming the table to configure (the local output folder keeps the file);
* the run in the local output folder (and its statuses on the code host).

API v3 (``Travis-API-Version: 3``, ``Authorization: token …``) is read by ``doctor --check``: the job's build
(``GET /build/{TRAVIS_BUILD_ID}``), its state and the web link of the build.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._http import Bearer, HttpConfig, HttpError, HttpLayer, Response, Rules, json_error_message
from ..base import CheckItem, CheckReport, Operation, Outcome, PostComment, ProviderEnv, SetStatus, UploadArtifact
from .settings import TravisSettings

__all__ = ["TravisProvider", "DEFAULT_API_URL", "NO_STORE", "VIA_SCM", "build_info"]

log = logging.getLogger("ci_sidecar.providers.travis")

DEFAULT_API_URL = "https://api.travis-ci.com"
NO_STORE = ("Travis CI stores no artifacts of a job's own: configure an S3-compatible [artifact_store] (bucket, "
            "endpoint_url; AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) for artifact URLs; the local output folder "
            "keeps the file meanwhile")
VIA_SCM = ("Travis CI has no API for {what}: they go to the code host (GitHub, Bitbucket, GitLab) when the job has "
           "its token (GITHUB_TOKEN...)")


def _error_message(resp: Response) -> str | None:
    """Travis' error body: ``{"@type": "error", "error_type": "not_found", "error_message": "…"}``."""
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("error_message"):
        return f"{body.get('error_type') or 'error'}: {body['error_message']}"
    return json_error_message(resp)


def api_layer() -> HttpLayer:
    """API v3: ``Authorization: token <TRAVIS_TOKEN>``, ``Travis-API-Version: 3``, Travis' error bodies."""
    return HttpLayer("travis", auth=Bearer("token"), default_headers={"Travis-API-Version": "3"}, pacing=(),
                     rules=Rules(error_message=_error_message))


async def build_info(layer: HttpLayer, config: HttpConfig, token: str | None, build_id: str) -> dict[str, Any]:
    """``GET /build/{id}``: ``{state, number, web_url, pull_request_number, commit}`` of the job's build (raises
    :class:`HttpError`). The web link is the build's page on the API host's web site."""
    api = layer.session(config, token)
    body = (await api.request("GET", f"/build/{build_id}")).json() or {}
    repo = body.get("repository") or {}
    host = urlsplit(config.base_url).netloc.removeprefix("api.")
    web = f"https://app.{host}/{repo['slug']}/builds/{body.get('id')}" if repo.get("slug") else None
    return {"state": body.get("state"), "number": body.get("number"), "web_url": web,
            "pull_request_number": body.get("pull_request_number"), "commit": (body.get("commit") or {}).get("sha")}


class TravisProvider:
    """Travis CI (``base_url`` from the token's binding or api.travis-ci.com)."""

    name: ClassVar[str] = "travis"

    def __init__(self) -> None:
        self._http = api_layer()

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """Nothing native: statuses and comments belong to the code host, artifacts to the object store (the
        ``artifact_store`` fallback: with one configured, the session reports the store's tier)."""
        return ProviderCaps(
            provider="travis",
            test_run=Tier(kind="none", note="Travis CI shows no test results of a job: the run is written to the "
                                            "local output folder, its statuses and comments go to the code host"),
            build_status=Tier(kind="none", note=VIA_SCM.format(what="build statuses")),
            pr_comment=Tier(kind="none", note=VIA_SCM.format(what="PR comments")),
            artifacts=Tier(kind="fallback", via="artifact_store", note=NO_STORE),
            limits={})

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt: Travis takes nothing a job writes; each operation answers -31007 with where it belongs."""
        if isinstance(op, UploadArtifact):
            return Outcome.unsupported(f"travis: artifact {op.name!r}: {NO_STORE}", tier="none")
        if isinstance(op, SetStatus | PostComment):
            what = "build statuses" if isinstance(op, SetStatus) else "PR comments"
            return Outcome.unsupported(f"travis: {VIA_SCM.format(what=what)}; none was found for this job",
                                       tier="none")
        return Outcome.unsupported(f"travis: {type(op).__name__} has no Travis CI API", tier="none")

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """``doctor --check``: read the job's build through API v3 with ``TRAVIS_TOKEN`` (nothing is written)."""
        report = CheckReport(provider="travis", write=write)
        build_id = env.get("TRAVIS_BUILD_ID", "").strip()
        if credential is None:
            report.items.append(CheckItem(name="api v3", result="skipped",
                                          detail="no TRAVIS_TOKEN: Travis CI's API is not needed to publish"))
            return report
        if not build_id.isdigit():
            report.items.append(CheckItem(name="api v3", result="skipped", detail="no TRAVIS_BUILD_ID to read"))
            return report
        config = HttpConfig(base_url=str(credential.base_url or DEFAULT_API_URL).rstrip("/"), trust_env=trust_env)
        token = credential.secret.reveal()
        try:
            info = await build_info(self._http, config, token, build_id)
        except HttpError as err:
            detail = self._http.session(config, token).redact(err.outcome.message)
            report.items.append(CheckItem(name="api v3", result="failed", detail=f"GET /build/{build_id}: {detail}"))
            return report
        report.items.append(CheckItem(name="api v3", result="proven",
                                      detail=f"build {info['number']} is {info['state']}: {info['web_url']}"))
        if write:
            report.items.append(CheckItem(name="write", result="skipped",
                                          detail="Travis CI takes no writes from a job; the code host does"))
        return report

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: the last rate-limit headers seen."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()
