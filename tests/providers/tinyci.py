"""A throwaway provider for a tiny CI (tests/fakes/tinyci.py): a run becomes a commit status, statuses and sticky
PR comments go to its API. Written the way a real provider module is, to prove that one is enough beside its
fake, its tests and its catalog line (tests/providers/test_tinyci.py)."""

from __future__ import annotations

from contextlib import suppress
from typing import Any, ClassVar
from urllib.parse import quote

from ci_sidecar.protocol.records import ProviderCaps, Tier
from ci_sidecar.providers._gated import api_session
from ci_sidecar.providers._http import HttpConfig, HttpError, HttpLayer
from ci_sidecar.providers._render import comment_marker
from ci_sidecar.providers.base import (
    Operation,
    Outcome,
    PostComment,
    ProviderEnv,
    PublishRun,
    RunSnapshot,
    SetStatus,
    UploadArtifact,
)
from ci_sidecar.providers.settings import ProviderSettings

__all__ = ["TinyCIProvider", "TinyCISettings"]


class TinyCISettings(ProviderSettings, kw_only=True):
    """Tiny CI's settings: only the shared ones, plus a label prefixed to every status context."""

    context_prefix: str = ""

    CONFIG_KEYS: ClassVar[frozenset[str]] = ProviderSettings.CONFIG_KEYS | {"context_prefix"}


class TinyCIProvider:
    """Runs and statuses as commit statuses, sticky comments by marker; no artifacts."""

    name: ClassVar[str] = "tinyci"

    def __init__(self) -> None:
        self._http = HttpLayer("tinyci")

    def capabilities(self, env: ProviderEnv) -> ProviderCaps:
        token = Tier(kind="native", via="commit status") if env.token else Tier(kind="none", note="no TINYCI_TOKEN")
        comment = Tier(kind="native", via="comment") if env.token else Tier(kind="none", note="no TINYCI_TOKEN")
        return ProviderCaps(provider="tinyci", test_run=token, build_status=token, pr_comment=comment,
                            artifacts=Tier(kind="none", note="tiny CI keeps no artifacts"), limits={})

    async def deliver(self, op: Operation, env: ProviderEnv, remote: dict[str, Any]) -> Outcome:
        # through the delivery layer's write budget (the shared defaults: tiny CI declares no numbers of its own)
        api = api_session(self._http, HttpConfig.from_env_config(env.base_url or "", env.config), env.token,
                          env.log, env.writes)
        repo = quote(env.ci.repository or "", safe="/")
        try:
            if isinstance(op, PublishRun):
                return await self._status(api, repo, env, op.run.name, _run_state(op.run), _counts(op.run))
            if isinstance(op, SetStatus):
                return await self._status(api, repo, env, op.context, "pending" if op.state == "running" else op.state,
                                          op.description, sha=op.sha)
            if isinstance(op, PostComment):
                return await self._comment(api, repo, env, op)
            if isinstance(op, UploadArtifact):
                return Outcome.unsupported("tinyci keeps no artifacts")
        except HttpError as err:
            err.outcome.message = api.redact(err.outcome.message)
            return err.outcome
        return Outcome.unsupported(f"tinyci: unknown operation {type(op).__name__}")

    async def read_run(self, run: RunSnapshot, env: ProviderEnv, remote: dict[str, Any]) -> dict[str, Any] | None:
        """The run's commit status as tiny CI shows it."""
        api = self._http.session(HttpConfig.from_env_config(env.base_url or "", env.config), env.token, env.log)
        sha = run.head_sha or run.commit_sha or env.ci.commit_sha
        context = TinyCISettings.of(env).context_prefix + run.name
        with suppress(HttpError):
            listed = (await api.request("GET", f"/repos/{quote(env.ci.repository or '', safe='/')}/statuses/{sha}")).json()
            for status in listed or []:
                if status.get("context") == context:
                    return {"status": status.get("state"), "conclusion": None, "url": None}
        return None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _status(self, api: Any, repo: str, env: ProviderEnv, context: str, state: str,
                      description: str | None, *, sha: str | None = None) -> Outcome:
        sha = sha or env.ci.head_sha or env.ci.commit_sha
        if not repo or not sha:
            return Outcome.refused("tinyci: no repository or commit to set a status on")
        body: dict[str, Any] = {"state": state, "context": TinyCISettings.of(env).context_prefix + context}
        if description:
            body["description"] = description[:140]
        await api.request("POST", f"/repos/{repo}/statuses/{sha}", json_body=body)
        return Outcome.delivered(tier="commit status", remote={"sha": sha})

    async def _comment(self, api: Any, repo: str, env: ProviderEnv, op: PostComment) -> Outcome:
        pr = op.pr_number or env.ci.pr_number
        if not repo or not pr:
            return Outcome.refused("tinyci: no pull request to comment on")
        marker = comment_marker(op.key) if op.key else None
        body = f"{marker}\n{op.body}" if marker else op.body
        mine = []
        if marker is not None:
            listed = (await api.request("GET", f"/repos/{repo}/pulls/{pr}/comments")).json() or []
            mine = [c for c in listed if str(c.get("body", "")).startswith(marker)]
        if op.mode == "delete" or (op.mode == "replace" and mine):
            for comment in mine:
                await api.request("DELETE", f"/repos/{repo}/comments/{comment['id']}", expect_json=False)
            if op.mode == "delete":
                return Outcome.delivered(action="deleted" if mine else "skipped", tier="comment")
            mine = []
        if mine and op.mode == "create":
            return Outcome.delivered(action="skipped", tier="comment", remote={"id": mine[-1]["id"]})
        if mine:
            updated = (await api.request("PATCH", f"/repos/{repo}/comments/{mine[-1]['id']}",
                                         json_body={"body": body})).json()
            return Outcome.delivered(action="updated", tier="comment", remote={"id": updated["id"]})
        created = (await api.request("POST", f"/repos/{repo}/pulls/{pr}/comments", json_body={"body": body})).json()
        return Outcome.delivered(action="created", tier="comment", remote={"id": created["id"]})


def _run_state(run: RunSnapshot) -> str:
    if run.status == "running":
        return "pending"
    counts = run.counts
    return "failure" if run.conclusion == "failure" or counts.failed or counts.errors else "success"


def _counts(run: RunSnapshot) -> str:
    c = run.counts
    return f"{c.passed} passed, {c.failed + c.errors} failed, {c.skipped} skipped"
