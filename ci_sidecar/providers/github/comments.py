"""Sticky PR comments: issue comments found again by the hidden marker of their key. A comment without a key
carries its write's (:func:`.._sticky.write_key`), so a retried or resumed write finds what an earlier attempt
posted instead of posting it twice."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from ci_sidecar.reports import cut_markdown

from .._http import ApiSession
from .._render import comment_marker
from .._sticky import write_key
from ..base import Outcome, PostComment, ProviderEnv
from ._api import COMMENT_CHARS, repo_path, surrogate_safe

__all__ = ["post_comment"]


async def _own_comments(api: ApiSession, repo: str, pr: int, marker: str) -> list[dict[str, Any]]:
    """Every comment on the PR whose body starts with our marker, oldest first."""
    found: list[dict[str, Any]] = []
    async with aclosing(api.paginate(f"{repo}/issues/{pr}/comments", {"per_page": 100})) as pages:
        async for page in pages:
            for comment in page.json() or []:
                if isinstance(comment, dict) and str(comment.get("body") or "").startswith(marker):
                    found.append(comment)
    return sorted(found, key=lambda c: int(c.get("id") or 0))


async def _delete_comments(api: ApiSession, repo: str, comments: list[dict[str, Any]]) -> int:
    removed = 0
    for comment in comments:
        resp = await api.request("DELETE", f"{repo}/issues/comments/{comment['id']}", allow=(404,),
                                 expect_json=False)
        removed += resp.status != 404
    return removed


def _comment_body(op: PostComment, marker: str | None) -> tuple[str, bool]:
    """The body to send (marker first) and whether it had to be shortened to the 65,536-character limit."""
    head = f"{marker}\n" if marker else ""
    budget = COMMENT_CHARS - len(head)
    body = surrogate_safe(op.body)
    if len(body) <= budget:
        return head + body, False
    # cut_markdown counts UTF-8 bytes: a byte budget equal to the character budget is always safe
    return head + cut_markdown(body, budget, full_report_url=op.full_report_url), True


async def post_comment(op: PostComment, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """One attempt at creating, updating or deleting the PR comment ``op`` describes (sticky by ``op.key``)."""
    repo = repo_path(env.ci.repository)
    pr = op.pr_number or env.ci.pr_number
    if repo is None:
        return Outcome.refused("github: no repository (owner/repo) for the comment")
    if not pr:
        return Outcome.refused("github: no pull request number for the comment")
    if not env.token:
        return Outcome.refused("github: PR comments need a token")
    key = op.key or write_key(env)  # a comment without a key is found again by its write's
    marker = comment_marker(key) if key else None
    body, truncated = _comment_body(op, marker) if op.mode != "delete" else ("", False)

    def done(action: str, comment: dict[str, Any] | None) -> Outcome:
        remote = {"pr": pr, "truncated": truncated}
        if comment is not None:
            # comment_id: ours, for the next attempt; id/url: what the service shows the client
            remote["comment_id"] = remote["id"] = comment.get("id")
            remote["url"] = comment.get("html_url")
        return Outcome.delivered(action=action, url=comment.get("html_url") if comment else None,
                                 remote=remote, tier="issue comment")

    if op.key is None:
        if op.mode == "delete":
            cid = state.get("comment_id")
            if cid is None:
                return Outcome.refused("github: deleting a comment needs its key")
            gone = await _delete_comments(api, repo, [{"id": cid}])
            return done("deleted" if gone else "skipped", None)
        if marker is not None and not env.never_sent and (posted := await _own_comments(api, repo, pr, marker)):
            return done("created", posted[-1])  # an earlier attempt posted it
        resp = await api.request("POST", f"{repo}/issues/{pr}/comments", json_body={"body": body})
        return done("created", resp.json())

    # sticky: a known id from the previous delivery is updated directly (one call), else the PR is searched
    known = state.get("comment_id")
    if op.mode == "upsert" and known is not None and state.get("pr") == pr:
        resp = await api.request("PATCH", f"{repo}/issues/comments/{known}", json_body={"body": body},
                                 allow=(404,))
        if resp.status != 404:
            return done("updated", resp.json())
    mine = await _own_comments(api, repo, pr, marker)
    if op.mode == "delete":
        gone = await _delete_comments(api, repo, mine)
        return done("deleted" if gone else "skipped", None)
    if op.mode == "create" and mine:
        return done("skipped", mine[-1])
    if op.mode == "replace":
        await _delete_comments(api, repo, mine)
        mine = []
    if mine:
        keep, extra = mine[-1], mine[:-1]
        if extra:
            await _delete_comments(api, repo, extra)
            api.log(f"removed {len(extra)} duplicate comment(s) with key {op.key!r}")
        if keep.get("body") == body:
            return done("skipped", keep)
        resp = await api.request("PATCH", f"{repo}/issues/comments/{keep['id']}", json_body={"body": body})
        return done("updated", resp.json())
    resp = await api.request("POST", f"{repo}/issues/{pr}/comments", json_body={"body": body})
    return done("created", resp.json())
