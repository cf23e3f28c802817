"""Sticky pull request comments: found again by the Markdown marker of their key.

Bitbucket renders no HTML comments, so the marker is a link reference definition that Markdown hides:
``[//]: # (ci-sidecar:key)``, on the first line. A known comment id is edited in place (PUT); otherwise the PR's
comments are listed (every ``next`` URL followed verbatim), deleted and inline comments skipped, the newest one
with the marker is edited and older duplicates are deleted. Bodies are kept within 32,768 characters (Data
Center's limit; Cloud documents none) through the Markdown cutter, which links the full report.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from ci_sidecar.reports import cut_markdown

from .._http import ApiSession
from .._sticky import StickyShape
from .._sticky import sticky_outcome as shared_sticky_outcome
from .._sticky import write_key
from ..base import Outcome, PostComment, ProviderEnv
from ._api import COMMENT_CHARS, repo_path

__all__ = ["post_comment", "comment_marker", "marker_of", "comment_body", "sticky_outcome"]


def comment_marker(key: str) -> str:
    """The hidden marker line of ``key`` (parentheses and line breaks cannot end it early)."""
    safe = key.replace("(", "[").replace(")", "]").replace("\n", " ").replace("\r", " ")
    return f"[//]: # (ci-sidecar:{safe})"


def marker_of(op: PostComment, env: ProviderEnv) -> str | None:
    """The marker a comment is found again by: its key's, else its write's (None: neither)."""
    key = op.key or write_key(env)
    return comment_marker(key) if key else None


def comment_body(op: PostComment, marker: str | None) -> tuple[str, bool]:
    """The body to send (marker first, then a blank line) and whether it was shortened."""
    head = f"{marker}\n\n" if marker else ""
    budget = COMMENT_CHARS - len(head)
    if len(op.body) <= budget:
        return head + op.body, False
    # cut_markdown counts UTF-8 bytes: a byte budget equal to the character budget always fits
    return head + cut_markdown(op.body, budget, full_report_url=op.full_report_url), True


def _raw(comment: dict[str, Any]) -> str:
    content = comment.get("content")
    return str(content.get("raw") or "") if isinstance(content, dict) else ""


class _Comments:
    """The PR's comments as the sticky procedure sees them."""

    def __init__(self, api: ApiSession, path: str, marker: str | None) -> None:
        self.api, self.path, self.marker = api, path, marker
        #: the newest marked comment a listing found (kept for the next attempt when a later request fails)
        self.newest: Any = None

    async def ours(self) -> list[dict[str, Any]]:
        """Live top-level comments whose body starts with the marker, oldest first (every ``next`` followed)."""
        found = []
        async with aclosing(self.api.paginate(self.path, {"pagelen": 100})) as pages:
            async for page in pages:
                for comment in (page.json() or {}).get("values") or []:
                    if not isinstance(comment, dict) or comment.get("deleted") or comment.get("inline"):
                        continue
                    if self.marker and _raw(comment).startswith(self.marker):
                        found.append(comment)
        found.sort(key=lambda c: int(c.get("id") or 0))
        self.newest = found[-1].get("id") if found else None
        return found

    async def create(self, body: str) -> dict[str, Any]:
        return (await self.api.request("POST", self.path, json_body=_content(body))).json() or {}

    async def update(self, comment_id: int, body: str) -> dict[str, Any] | None:
        resp = await self.api.request("PUT", f"{self.path}/{int(comment_id)}", json_body=_content(body),
                                      allow=(404,))
        return None if resp.status == 404 else resp.json() or {}

    async def delete(self, comment_id: int) -> bool:
        resp = await self.api.request("DELETE", f"{self.path}/{int(comment_id)}", allow=(404,), expect_json=False)
        return resp.status != 404

    def body_of(self, comment: dict[str, Any]) -> str:
        return _raw(comment)


def _content(body: str) -> dict[str, Any]:
    return {"type": "pullrequest_comment", "content": {"raw": body}}


async def post_comment(op: PostComment, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """One attempt at creating, editing or deleting the PR comment ``op`` describes (sticky by ``op.key``)."""
    repo = repo_path(env)
    pr = op.pr_number or env.ci.pr_number
    if repo is None:
        return Outcome.refused("bitbucket: no repository (BITBUCKET_WORKSPACE/BITBUCKET_REPO_SLUG) for the comment")
    if not pr:
        return Outcome.refused("bitbucket: no pull request (BITBUCKET_PR_ID) for the comment: comments are "
                               "written in pull request pipelines only")
    marker = marker_of(op, env)
    comments = _Comments(api, f"{repo}/pullrequests/{int(pr)}/comments", marker)

    def url_of(comment: dict[str, Any]) -> str | None:
        return ((comment.get("links") or {}).get("html") or {}).get("href")

    return await sticky_outcome(op, env, state, comments, marker, int(pr), api, url_of)


_SHAPE = StickyShape(id_key="comment_id", tier="pull request comment",
                     refused="bitbucket: deleting a comment needs its key",
                     shortened=f"comment {{key}} shortened to {COMMENT_CHARS:,} characters")


async def sticky_outcome(op: PostComment, env: ProviderEnv, state: dict[str, Any], comments: Any,
                         marker: str | None, pr: int, api: ApiSession,
                         url_of: Callable[[dict[str, Any]], str | None]) -> Outcome:
    """The shared sticky procedure on ``comments`` (either flavour's adapter) with Bitbucket's body and names;
    ``marker`` is the key's, or for a comment without a key its write's."""
    body, truncated = comment_body(op, marker) if op.mode != "delete" else ("", False)
    return await shared_sticky_outcome(comments, op, state, body=body, truncated=truncated, pr=pr,
                                       keyed=op.key is not None, shape=_SHAPE, log=api.log, url_of=url_of,
                                       resumed=marker is not None and not env.never_sent)
