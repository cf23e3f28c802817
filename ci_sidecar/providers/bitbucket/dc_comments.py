"""Bitbucket Data Center: sticky pull request comments through ``/api/1.0/…/pull-requests/{id}/comments``.

The marker and the 32,768-character cut are the Cloud flavour's (:mod:`.comments`). Data Center has no comment
list: the pull request's ``activities`` are read page by page (``start``/``limit``, ``isLastPage``,
``nextPageStart``) and the top-level, non-inline comments they add are kept, minus any a later activity deleted.
An edit or a delete names the comment's ``version``; a stale one answers 409, so the comment is read again and
the request repeated with the version the server has (another writer won the race: ours still lands).
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from .._http import ApiSession, HttpError, JsonStart
from ..base import Outcome, PostComment, ProviderEnv
from .comments import marker_of, sticky_outcome
from .dc_api import NO_REPOSITORY, pr_page, repo_rest

__all__ = ["post_comment_dc"]

#: how often an edit or delete is repeated after a 409 (each time with the version just read)
_CONFLICT_TRIES = 3
PAGE = 100


class _Comments:
    """The pull request's comments as the sticky procedure sees them."""

    def __init__(self, api: ApiSession, pr_path: str, marker: str | None) -> None:
        self.api, self.pr_path, self.marker = api, pr_path, marker
        self.versions: dict[int, int] = {}
        self.newest: Any = None

    @property
    def path(self) -> str:
        return f"{self.pr_path}/comments"

    async def ours(self) -> list[dict[str, Any]]:
        """Live top-level comments starting with the marker, oldest first (every activity page read)."""
        added: dict[int, dict[str, Any]] = {}
        deleted: set[int] = set()
        pages = self.api.paginate(f"{self.pr_path}/activities", {"limit": PAGE}, pagination=JsonStart())
        async with aclosing(pages) as listing:
            async for page in listing:
                for activity in (page.json() or {}).get("values") or []:
                    comment = activity.get("comment") if isinstance(activity, dict) else None
                    if activity.get("action") != "COMMENTED" or not isinstance(comment, dict):
                        continue
                    cid = int(comment.get("id") or 0)
                    if activity.get("commentAction") == "DELETED":
                        deleted.add(cid)
                    elif activity.get("commentAnchor") is None and comment.get("anchor") is None:
                        added[cid] = comment
        found = [c for cid, c in sorted(added.items()) if cid not in deleted and self.marker
                 and str(c.get("text") or "").startswith(self.marker)]
        for comment in found:
            self.versions[int(comment["id"])] = int(comment.get("version") or 0)
        self.newest = found[-1].get("id") if found else None
        return found

    async def create(self, body: str) -> dict[str, Any]:
        made = (await self.api.request("POST", self.path, json_body={"text": body})).json() or {}
        if isinstance(made.get("id"), int):
            self.versions[made["id"]] = int(made.get("version") or 0)
        return made

    async def _version(self, comment_id: int) -> int | None:
        """The comment's version as the server has it now; None when it is gone."""
        resp = await self.api.request("GET", f"{self.path}/{int(comment_id)}", allow=(404,))
        if resp.status == 404:
            return None
        version = int((resp.json() or {}).get("version") or 0)
        self.versions[comment_id] = version
        return version

    async def _versioned(self, method: str, comment_id: int, body: str | None) -> Any:
        """PUT or DELETE naming the version; on 409 re-read it and repeat. None when the comment is gone."""
        version = self.versions.get(comment_id)
        for _ in range(_CONFLICT_TRIES):
            if version is None:
                version = await self._version(comment_id)
                if version is None:
                    return None
            url = f"{self.path}/{int(comment_id)}"
            if method == "PUT":
                resp = await self.api.request("PUT", url, json_body={"text": body, "version": version},
                                              allow=(404, 409))
            else:
                resp = await self.api.request("DELETE", url, params={"version": version}, allow=(404, 409),
                                              expect_json=False)
            if resp.status == 404:
                return None
            if resp.status != 409:
                return resp
            version = None  # stale: read the current one and try again
        raise HttpError(Outcome.retry(f"bitbucket: comment {comment_id} kept changing under this edit (409 "
                                      f"{_CONFLICT_TRIES} times): trying again later"))

    async def update(self, comment_id: int, body: str) -> dict[str, Any] | None:
        resp = await self._versioned("PUT", int(comment_id), body)
        if resp is None:
            return None
        edited = resp.json() or {}
        self.versions[int(comment_id)] = int(edited.get("version") or 0)
        return edited

    async def delete(self, comment_id: int) -> bool:
        return await self._versioned("DELETE", int(comment_id), None) is not None

    def body_of(self, comment: dict[str, Any]) -> str:
        return str(comment.get("text") or "")


async def post_comment_dc(op: PostComment, env: ProviderEnv, state: dict[str, Any], api: ApiSession) -> Outcome:
    """One attempt at creating, editing or deleting the PR comment ``op`` describes (sticky by ``op.key``)."""
    repo = repo_rest(env, "api/1.0")
    pr = op.pr_number or env.ci.pr_number
    if repo is None:
        return Outcome.refused(f"bitbucket: {NO_REPOSITORY} for the comment")
    if not pr:
        return Outcome.refused("bitbucket: no pull request (BITBUCKET_PR_ID, or the CI's change id) for the comment")
    marker = marker_of(op, env)
    comments = _Comments(api, f"{repo}/pull-requests/{int(pr)}", marker)
    return await sticky_outcome(op, env, state, comments, marker, int(pr), api,
                                lambda comment: pr_page(env, int(pr), int(comment["id"])))
