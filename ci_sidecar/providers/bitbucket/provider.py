"""The Bitbucket provider class: tiers per credential, one attempt per delivery, read-backs (the work is in its
siblings)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._gated import api_session
from .._deliver import deliver_with, lookup_or_none
from .._http import ApiSession, HttpError, token_fingerprint
from ..base import (
    CheckReport,
    Operation,
    Outcome,
    PostComment,
    ProviderEnv,
    PublishRun,
    RunSnapshot,
    SetStatus,
    UploadArtifact,
)
from ..writes import WriteBudget
from ._api import (
    ANNOTATIONS_PER_POST,
    ANNOTATIONS_PER_REPORT,
    COMMENT_CHARS,
    DATA_FIELDS,
    NEEDS_TOKEN,
    SUMMARY_CHARS,
    auth_for,
    data_center,
    mode,
    rest_config,
    rest_layer,
)
from .comments import post_comment
from .dc_api import NO_CREDENTIAL as DC_NO_CREDENTIAL
from .dc_api import NO_DOWNLOADS, dc_auth, dc_config, dc_mode
from .dc_comments import post_comment_dc
from .dc_insights import publish_report_dc, read_report_dc, run_status_dc, set_status_dc
from .downloads import lookup, upload_download
from .insights import publish_report, read_report, run_status, set_status

__all__ = ["BitbucketProvider"]

log = logging.getLogger("ci_sidecar.providers.bitbucket")
_NO_CREDENTIAL = ("no Bitbucket credential and not inside Bitbucket Pipelines: set BITBUCKET_TOKEN or "
                  "BITBUCKET_USERNAME + BITBUCKET_APP_PASSWORD")


class BitbucketProvider:
    """Bitbucket Cloud's API 2.0 (``base_url`` from the credential's binding or api.bitbucket.org), or Bitbucket
    Data Center/Server when that base URL is a ``…/rest`` one (the ``dc_*`` modules)."""

    name: ClassVar[str] = "bitbucket"

    def __init__(self) -> None:
        self._http = rest_layer()
        self._told: set[str] = set()  # credentials whose limits were already explained

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """A token or app password does everything; the Pipelines auth proxy carries the Code Insights report
        only (statuses, comments and Downloads answer with why); nothing without either."""
        kind = mode(env)
        limits = {"annotations_per_request": ANNOTATIONS_PER_POST, "annotations_per_report": ANNOTATIONS_PER_REPORT,
                  "report_data_fields": DATA_FIELDS, "annotation_summary_chars": SUMMARY_CHARS,
                  "comment_chars": COMMENT_CHARS}
        if data_center(env):
            return self._dc_capabilities(env, limits)
        if kind in ("bearer", "basic"):
            return ProviderCaps(provider="bitbucket", test_run=Tier(kind="native", via="code insights report"),
                                build_status=Tier(kind="native", via="build status"),
                                pr_comment=Tier(kind="native", via="pull request comment"),
                                artifacts=Tier(kind="native", via="downloads"), limits=limits)
        none = Tier(kind="none", note=NEEDS_TOKEN if kind == "proxy" else _NO_CREDENTIAL)
        test_run = Tier(kind="fallback", via="code insights report (pipelines auth proxy)",
                        note="no build status without a token") if kind == "proxy" else none
        return ProviderCaps(provider="bitbucket", test_run=test_run, build_status=none, pr_comment=none,
                            artifacts=none, limits=limits)

    @staticmethod
    def _dc_capabilities(env: ProviderEnv, limits: dict[str, int]) -> ProviderCaps:
        """Data Center: a token (Bearer) or user and password (Basic) does reports, statuses and comments; it has
        no Downloads (artifacts: the object store when configured)."""
        limits = {**limits, "report_data_fields": 6, "report_title_chars": 450}
        if dc_mode(env) == "none":
            none = Tier(kind="none", note=DC_NO_CREDENTIAL)
            return ProviderCaps(provider="bitbucket", test_run=none, build_status=none, pr_comment=none,
                                artifacts=none, limits=limits)
        return ProviderCaps(provider="bitbucket", test_run=Tier(kind="native", via="code insights report"),
                            build_status=Tier(kind="native", via="build status"),
                            pr_comment=Tier(kind="native", via="pull request comment"),
                            artifacts=Tier(kind="none", note=NO_DOWNLOADS), limits=limits)

    def _session(self, env: ProviderEnv) -> ApiSession:
        if data_center(env):
            return api_session(self._http, dc_config(env), env.token, env.log, env.writes, auth=dc_auth(env))
        return api_session(self._http, rest_config(env), env.token, env.log, env.writes, auth=auth_for(env))

    async def _deliver_dc(self, op: Operation, env: ProviderEnv, remote: dict[str, Any],
                          api: ApiSession) -> Outcome:
        """One attempt against Bitbucket Data Center (see :mod:`.dc_insights`, :mod:`.dc_comments`)."""
        if isinstance(op, UploadArtifact):
            return Outcome.unsupported(f"bitbucket: {NO_DOWNLOADS}", tier="none")
        if dc_mode(env) == "none":
            return Outcome.unsupported(f"bitbucket: {DC_NO_CREDENTIAL}", tier="none")

        async def publish(op: PublishRun, state: dict[str, Any]) -> Outcome:
            outcome = await publish_report_dc(op, env, state, api)
            if outcome.kind == "delivered":
                await run_status_dc(op, env, state, api)
            return outcome

        return await deliver_with("bitbucket", op, remote, api, {
            PublishRun: publish,
            SetStatus: lambda op, state: set_status_dc(op, env, state, api),
            PostComment: lambda op, state: post_comment_dc(op, env, state, api),
        })

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt; provider-side failures come back as Outcomes (credential redacted), never as exceptions."""
        api = self._session(env)
        if data_center(env):
            return await self._deliver_dc(op, env, remote, api)
        if not isinstance(op, PublishRun) and mode(env) not in ("bearer", "basic"):
            what = {SetStatus: "build statuses", PostComment: "pull request comments",
                    UploadArtifact: "Downloads"}.get(type(op), "this")
            why = NEEDS_TOKEN if mode(env) == "proxy" else _NO_CREDENTIAL
            return Outcome.unsupported(api.redact(f"bitbucket: {what}: {why}"), tier="none")
        return await deliver_with("bitbucket", op, remote, api, {
            PublishRun: lambda op, state: self._publish(op, env, state, api),
            SetStatus: lambda op, state: set_status(op, env, state, api),
            PostComment: lambda op, state: post_comment(op, env, state, api),
            UploadArtifact: lambda op, state: upload_download(op, env, state, api),
        })

    async def _publish(self, op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
        """The Code Insights report, then (with a token) the run's build status; through the proxy the report only."""
        kind = mode(env)
        if kind == "none":
            return Outcome.unsupported(f"bitbucket: {_NO_CREDENTIAL}", tier="none", remote=state)
        outcome = await publish_report(op, env, state, api)
        if outcome.kind == "delivered" and kind != "proxy":
            await run_status(op, env, state, api)
        elif kind == "proxy":
            self._say_once(env, api, "build statuses, comments and Downloads: " + NEEDS_TOKEN)
        return outcome

    def _say_once(self, env: ProviderEnv, api: ApiSession, text: str) -> None:
        key = token_fingerprint(env.token) + (env.ci.repository or "")
        if key not in self._told:
            self._told.add(key)
            api.log(text)

    async def read_run(self, run: RunSnapshot, env: ProviderEnv, remote: dict[str, Any]) -> dict[str, Any] | None:
        """The run's Code Insights report as Bitbucket shows it (``get_test_run_status``); None without one."""
        dc = data_center(env) is not None
        if (dc_mode(env) if dc else mode(env)) == "none" or (remote or {}).get("tier") != "code_insights":
            return None
        api = self._session(env)
        try:
            return await (read_report_dc if dc else read_report)(env, api, remote)
        except HttpError as err:
            log.info("bitbucket: reading report %s back failed: %s", remote.get("report_id"),
                     api.redact(err.outcome.message))
            return None

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``get_artifact_url``: the Downloads entry of this artifact's name and size, when listed."""
        if mode(env) not in ("bearer", "basic") or data_center(env):
            return None
        api = self._session(env)
        return await lookup_or_none("bitbucket", "downloads lookup", op.name, api, lookup(op, env, api))

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """``doctor --check``: read the commit's reports; with ``--write`` try each tier once (:mod:`.doctor`)."""
        from .doctor import check_bitbucket

        return await check_bitbucket(self._http, ci, env, credential, write=write, trust_env=trust_env)

    def write_budget(self, env: ProviderEnv) -> WriteBudget:
        """Bitbucket Cloud allows 1,000 requests an hour per user or token on ``/2.0/repositories`` (rolling
        window, more for large workspaces) and sends no remaining-count headers: counted locally; a minute's
        pause after a 429 that names no wait."""
        return WriteBudget(requests_per_hour=1000, min_spacing_s=0.5, limited_wait_s=60.0)

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: the last rate-limit headers seen."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()
