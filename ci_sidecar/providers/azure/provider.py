"""The Azure DevOps provider class: tiers per credential, one attempt per delivery, read-backs (the work is in its
siblings)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from ci_sidecar.protocol.records import CIContext, ProviderCaps, Tier

from .._deliver import deliver_with, lookup_or_none
from .._gated import api_session
from .._http import ApiSession, HttpError
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
from ._api import ATTACHMENT_BYTES, COMMENT_CHARS, RESULTS_PER_POST, auth_for, collection_url, no_target, repo_path
from ._api import rest_config, rest_layer
from .attachments import find_attachment, upload_attachment
from .settings import AzureSettings
from .statuses import run_status, set_status
from .results import send_results
from .testruns import complete_run, ensure_run, find_run, read_test_run
from .threads import post_thread

__all__ = ["AzureProvider", "NO_TOKEN"]

log = logging.getLogger("ci_sidecar.providers.azure")

NO_TOKEN = ("no Azure DevOps token: map it into the step (env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)) or set "
            "AZURE_DEVOPS_TOKEN (a PAT)")
_LOGGING_TIER = ("inside Azure Pipelines `ci-sidecar exec` prints ##vso logging commands instead: the agent "
                 "publishes the staged JUnit file as a test run and shows failures as issues")
_NO_REPO = ("not an Azure Repos repository (BUILD_REPOSITORY_PROVIDER): its code host takes statuses and comments "
            "as the scm provider")


class AzureProvider:
    """Azure DevOps Services and Server, REST 7.1 (``SYSTEM_COLLECTIONURI`` names the organization)."""

    name: ClassVar[str] = "azure"

    def __init__(self) -> None:
        self._http = rest_layer()
        #: (collection, project, ci-sidecar run id) → the Azure test run id, learned from each run's own write
        self._runs: dict[tuple[str, str, str], int] = {}
        #: runs whose remembered state this process knows to be whole: it began their writes, or compared the
        #: test run with the state once (a write resumed from the journal after a restart)
        self._looked: set[tuple[str, str, str]] = set()

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        """A token does everything natively (statuses and threads on Azure Repos); without one, inside Azure
        Pipelines, ``exec`` prints logging commands for the agent; otherwise nothing."""
        limits = {"results_per_request": RESULTS_PER_POST, "comment_chars": COMMENT_CHARS,
                  "artifact_bytes": ATTACHMENT_BYTES}
        if env.token:
            repo = repo_path(env) is not None
            code = Tier(kind="native", via="commit status") if repo else Tier(kind="none", note=_NO_REPO)
            thread = Tier(kind="native", via="pull request thread") if repo else Tier(kind="none", note=_NO_REPO)
            return ProviderCaps(provider="azure", test_run=Tier(kind="native", via="test run"), build_status=code,
                                pr_comment=thread, artifacts=Tier(kind="native", via="test run attachment"),
                                limits=limits)
        none = Tier(kind="none", note=NO_TOKEN)
        test_run = none
        if AzureSettings.of(env).tf_build:
            test_run = Tier(kind="fallback", via="logging commands", note=f"{NO_TOKEN}; {_LOGGING_TIER}")
        return ProviderCaps(provider="azure", test_run=test_run, build_status=none, pr_comment=none, artifacts=none,
                            limits=limits)

    def _session(self, env: ProviderEnv) -> ApiSession:
        return api_session(self._http, rest_config(env), env.token, env.log, env.writes, auth=auth_for(env))

    def _key(self, env: ProviderEnv, run_id: str) -> tuple[str, str, str]:
        return (collection_url(env) or "", AzureSettings.of(env).project or "", run_id)

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        """One attempt; provider-side failures come back as Outcomes (token redacted), never as exceptions."""
        what = {PublishRun: "the test run", SetStatus: "the status", PostComment: "the comment",
                UploadArtifact: "the attachment"}.get(type(op), "this")
        if not env.token:
            tier = AzureSettings.of(env).tf_build and isinstance(op, PublishRun)
            return Outcome.unsupported(f"azure: {NO_TOKEN}" + (f"; {_LOGGING_TIER}" if tier else ""), tier="none",
                                       remote=dict(remote or {}))
        if (why := no_target(env, what)) is not None:
            return Outcome.refused(why, remote=dict(remote or {}))
        api = self._session(env)
        return await deliver_with("azure", op, remote, api, {
            PublishRun: lambda op, state: self._publish(op, env, state, api),
            SetStatus: lambda op, state: set_status(op, env, state, api),
            PostComment: lambda op, state: post_thread(op, env, state, api),
            UploadArtifact: lambda op, state: self._attach(op, env, state, api),
        })

    async def _publish(self, op: PublishRun, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
        """Create the test run once, add the results not sent yet, complete it at the end; its status on Azure
        Repos."""
        key = self._key(env, op.run.id)
        # another daemon wrote to the run without recording what (a sharded group's publisher that died)
        unrecorded = bool(state.get("unrecorded"))
        if env.never_sent and not unrecorded:  # this daemon began the run's writes: its state knows all they did
            self._looked.add(key)
        # else a write resumed from the journal: its lost attempt may have made what the state never heard of
        look = unrecorded or key not in self._looked
        run_id = await ensure_run(op, env, state, api, look=look)
        state["tier"] = "test_run"
        self._runs[key] = run_id
        await send_results(op, env, state, api, run_id, look=look)
        state.pop("unrecorded", None)
        self._looked.add(key)
        if op.final and not state.get("completed"):
            await complete_run(op, env, state, api, run_id)
        url = state.get("web_url")
        await run_status(op, env, state, api, url)
        return Outcome.delivered(url=url, remote=state, tier="test run",
                                 action="completed" if op.final else "updated")

    async def _run_id(self, env: ProviderEnv, api: ApiSession, run_id: str) -> int | None:
        """The Azure test run of a ci-sidecar run: learned from its write, else found among the build's runs."""
        key = self._key(env, run_id)
        if key not in self._runs:
            found = await find_run(api, env, run_id)
            if found is None:
                return None
            self._runs[key] = int(found["id"])
        return self._runs[key]

    async def _attach(self, op: UploadArtifact, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
        run_id = await self._run_id(env, api, op.run_id)
        if run_id is None:
            return Outcome.retry(f"azure: the test run of {op.run_id} is not created yet; the attachment waits for it",
                                 retry_after=1.0, remote=state)
        return await upload_attachment(op, env, state, api, run_id)

    async def read_run(self, run: RunSnapshot, env: ProviderEnv, remote: dict[str, Any]) -> dict[str, Any] | None:
        """The test run as Azure shows it (``get_test_run_status``); None without one."""
        if not env.token or (remote or {}).get("tier") != "test_run" or no_target(env, "the run"):
            return None
        api = self._session(env)
        try:
            return await read_test_run(env, api, remote)
        except HttpError as err:
            log.info("azure: reading test run %s back failed: %s", remote.get("run_id"),
                     api.redact(err.outcome.message))
            return None

    def unrecorded(self, remote: dict[str, Any]) -> dict[str, Any]:
        """The next write looks first, as one resumed from the journal does: the test run among the build's runs
        (its marker comment) before it is created, the results past those known before more are added."""
        return dict(remote, unrecorded=True)

    async def lookup_artifact(self, op: UploadArtifact, env: ProviderEnv, remote: dict[str, Any]) -> Outcome | None:
        """``get_artifact_url``: the test run's attachment holding this content, when listed (a failed request
        there means no URL known, logged)."""
        if not env.token or no_target(env, "the attachment"):
            return None
        api = self._session(env)
        return await lookup_or_none("azure", "attachment lookup", op.name, api, self._find_attachment(op, env, api))

    async def _find_attachment(self, op: UploadArtifact, env: ProviderEnv, api: ApiSession) -> Outcome | None:
        run_id = await self._run_id(env, api, op.run_id)
        found = await find_attachment(api, env, run_id, op) if run_id is not None else None
        if found is None or not isinstance(found.get("url"), str):
            return None
        return Outcome.delivered(url=found["url"], tier="test run attachment",
                                 remote={"run_id": run_id, "attachment_id": found.get("id"), "url": found["url"]})

    async def probe_access(self, ci: CIContext, env: Mapping[str, str], credential: Any, *, write: bool,
                           trust_env: bool) -> CheckReport:
        """``doctor --check``: read the project's test runs (and the repository's statuses), write (with
        ``--write``) a visibly named test run and commit status."""
        from .doctor import check_azure

        return await check_azure(self._http, ci, env, credential, write=write, trust_env=trust_env)

    def job_log_format(self, ci: CIContext, counts: Mapping[str, int]) -> str | None:
        """Inside Azure Pipelines ``exec`` prints ``##vso`` logging commands to the job log: an issue per failure, a
        build tag, and without a token (no native test run) the JUnit file for the agent to publish as the test
        run — the tier that needs no token."""
        return "azure-vso" if ci.provider == "azure" else None

    def write_budget(self, env: ProviderEnv) -> WriteBudget:
        """Azure DevOps meters usage in TSTUs over a sliding 5 minutes, delays requests past it and then answers
        429 TF400733 with ``Retry-After`` and ``X-RateLimit-*`` headers (learned from them); no hourly count is
        published, and Azure slows a client down itself before it refuses: writes a tenth of a second apart, half a
        minute's pause after a 429 that names no wait."""
        return WriteBudget(requests_per_hour=None, min_spacing_s=0.1, limited_wait_s=30.0)

    def status(self) -> dict[str, Any]:
        """For ``sidecar/status``: the last rate-limit headers seen."""
        return self._http.status()

    async def aclose(self) -> None:
        await self._http.aclose()
