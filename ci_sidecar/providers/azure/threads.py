"""Sticky pull request comments as PR threads: the key is a thread property, the text is the thread's first
comment (id 1), edited in place.

A known thread id is edited directly (``PATCH threads/{id}/comments/1``); otherwise the PR's threads are listed
(``{count, value}``, continuation tokens followed), deleted and closed ones skipped, the newest thread whose
``ci-sidecar.key`` property holds the key is edited and older duplicates (a lost answer once made two) are closed.
A thread without a key holds its write's key there instead (:func:`.._sticky.write_key`), so a retried or resumed
write finds the thread an earlier attempt created.
Bodies are kept within 150,000 characters through the Markdown cutter, which links the full report.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any
from urllib.parse import quote

from ci_sidecar.reports import cut_markdown

from .._http import ApiSession
from .._sticky import StickyShape, sticky_outcome, write_key
from ..base import Outcome, PostComment, ProviderEnv
from ._api import COMMENT_CHARS, V, collection_url, repo_path, values
from .settings import AzureSettings
from .statuses import pull_request

__all__ = ["post_thread", "KEY_PROPERTY", "thread_body", "property_value"]

KEY_PROPERTY = "ci-sidecar.key"


def thread_body(op: PostComment) -> tuple[str, bool]:
    """The comment's text and whether it was shortened to 150,000 characters."""
    if len(op.body) <= COMMENT_CHARS:
        return op.body, False
    # cut_markdown counts UTF-8 bytes: a byte budget equal to the character budget always fits
    return cut_markdown(op.body, COMMENT_CHARS, full_report_url=op.full_report_url), True


def property_value(thread: dict[str, Any], name: str) -> Any:
    """A thread property's value: Azure answers ``{"$type", "$value"}``; ``{"type", "value"}`` and plain values
    are read too."""
    value = (thread.get("properties") or {}).get(name)
    if isinstance(value, dict):
        return value.get("$value", value.get("value"))
    return value


def _first(thread: dict[str, Any]) -> dict[str, Any]:
    comments = [c for c in thread.get("comments") or [] if isinstance(c, dict)]
    return next((c for c in comments if c.get("id") == 1), comments[0] if comments else {})


class _Threads:
    """The PR's threads as the sticky procedure sees them (a thread stands for its first comment)."""

    def __init__(self, api: ApiSession, path: str, key: str | None) -> None:
        self.api, self.path, self.key = api, path, key
        self.newest: Any = None

    async def ours(self) -> list[dict[str, Any]]:
        found = []
        async with aclosing(self.api.paginate(self.path, V)) as pages:
            async for page in pages:
                for thread in values(page):
                    if thread.get("isDeleted") or thread.get("status") == "closed":
                        continue
                    if self.key is not None and property_value(thread, KEY_PROPERTY) == self.key:
                        found.append(thread)
        found.sort(key=lambda t: int(t.get("id") or 0))
        self.newest = found[-1].get("id") if found else None
        return found

    async def create(self, body: str) -> dict[str, Any]:
        thread: dict[str, Any] = {"comments": [{"parentCommentId": 0, "content": body, "commentType": "text"}],
                                  "status": "active"}
        if self.key is not None:
            thread["properties"] = {KEY_PROPERTY: {"type": "System.String", "value": self.key}}
        return (await self.api.request("POST", self.path, params=V, json_body=thread)).json() or {}

    async def update(self, thread_id: int, body: str) -> dict[str, Any] | None:
        resp = await self.api.request("PATCH", f"{self.path}/{int(thread_id)}/comments/1", params=V,
                                      json_body={"content": body}, allow=(404,))
        if resp.status == 404:
            return None
        return {"id": int(thread_id), "comments": [resp.json() or {}]}

    async def delete(self, thread_id: int) -> bool:
        """Closes the thread (a PR's history keeps it; closed threads are never ours again)."""
        resp = await self.api.request("PATCH", f"{self.path}/{int(thread_id)}", params=V,
                                      json_body={"status": "closed"}, allow=(404,))
        return resp.status != 404

    def body_of(self, thread: dict[str, Any]) -> str:
        return str(_first(thread).get("content") or "")


def thread_url(env: ProviderEnv, pr: int, thread_id: Any) -> str | None:
    """The pull request page opened at the thread (``…/_git/<repo>/pullrequest/<id>?discussionId=<thread>``)."""
    base, settings = collection_url(env), AzureSettings.of(env)
    repo = settings.repository_name or settings.repository_id
    if not (base and settings.project and repo and thread_id):
        return None
    return (f"{base}/{quote(settings.project, safe='')}/_git/{quote(repo, safe='')}/pullrequest/{pr}"
            f"?discussionId={int(thread_id)}")


_SHAPE = StickyShape(id_key="thread_id", tier="pull request thread", refused="azure: closing a thread needs its key",
                     shortened=f"comment {{key}} shortened to Azure's {COMMENT_CHARS:,} characters")


async def post_thread(op: PostComment, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """One attempt at creating, editing or closing the PR thread ``op`` describes (sticky by ``op.key``)."""
    repo = repo_path(env)
    pr = op.pr_number or pull_request(env)
    if repo is None:
        return Outcome.refused("azure: pull request threads are on Azure Repos repositories only "
                               "(BUILD_REPOSITORY_ID with BUILD_REPOSITORY_PROVIDER=TfsGit)")
    if not pr:
        return Outcome.refused("azure: no pull request (SYSTEM_PULLREQUEST_PULLREQUESTID) for the comment: "
                               "comments are written in pull request builds only")
    body, truncated = thread_body(op) if op.mode != "delete" else ("", False)
    key = op.key or write_key(env)
    threads = _Threads(api, f"{repo}/pullRequests/{int(pr)}/threads", key)
    return await sticky_outcome(threads, op, state, body=body, truncated=truncated, pr=int(pr), keyed=op.key is not None,
                                shape=_SHAPE, log=api.log, url_of=lambda thread: thread_url(env, int(pr), thread["id"]),
                                resumed=key is not None and not env.never_sent)
