"""The sticky-comment procedure every code host shares; the host's API is a small adapter.

A comment with a key is found again by its marker: a known id is edited in place (upsert), otherwise the
host's comments carrying the marker are listed, the newest is edited, older duplicates are deleted (a lost
answer once made two); ``create`` keeps an existing one, ``replace`` deletes and posts anew, ``delete``
removes them all. Without a key a comment is posted (or, to delete it, its known id is needed); it still carries
a hidden mark of its write (:func:`write_key`), so an attempt that an earlier one may have preceded — a retry, or
a write a restarted daemon resumes, whose earlier attempt a kill -9 left no trace of — finds the comment that
attempt posted instead of posting it twice. The first attempt of a write posts without looking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ._http import HttpError
from .base import Outcome, PostComment, ProviderEnv

__all__ = ["StickyApi", "StickyShape", "sticky", "sticky_outcome", "write_key"]

Action = Literal["created", "updated", "deleted", "skipped", "refused"]


class StickyApi(Protocol):
    """One host's comments on one pull/merge request."""

    async def ours(self) -> list[dict[str, Any]]:
        """Comments carrying the marker that this procedure may edit, oldest first."""
        ...

    async def create(self, body: str) -> dict[str, Any]: ...

    async def update(self, comment_id: int, body: str) -> dict[str, Any] | None:
        """The edited comment; None when it is gone (404)."""
        ...

    async def delete(self, comment_id: int) -> bool:
        """False when it was already gone."""
        ...

    def body_of(self, comment: dict[str, Any]) -> str: ...


def write_key(env: ProviderEnv) -> str | None:
    """The hidden key an unkeyed comment carries: its write's (the same across retries and restarts), None when
    the write has none."""
    return f"write:{env.idempotency_key}" if env.idempotency_key else None


async def sticky(api: StickyApi, mode: str, body: str, *, keyed: bool, known: int | None, same_target: bool,
                 key: str | None, log: Callable[[str], None],
                 resumed: bool = False) -> tuple[Action, dict[str, Any] | None]:
    """One attempt of ``mode`` (create / upsert / replace / delete); what was done and the comment it left.

    ``resumed``: an unkeyed comment whose write an earlier attempt may have posted, marked with its
    :func:`write_key` (``api.ours()`` lists what carries it): found, it is taken instead of posting again."""
    if not keyed:
        if mode == "delete":
            if known is None:
                return "refused", None
            return ("deleted" if await api.delete(known) else "skipped"), None
        if resumed and (posted := await api.ours()):
            return "created", posted[-1]
        return "created", await api.create(body)
    if mode == "upsert" and known is not None and same_target:
        edited = await api.update(known, body)
        if edited is not None:
            return "updated", edited
    mine = await api.ours()
    if mode == "delete":
        gone = [await api.delete(int(c["id"])) for c in mine]
        return ("deleted" if any(gone) else "skipped"), None
    if mode == "create" and mine:
        return "skipped", mine[-1]
    if mode == "replace":
        for comment in mine:
            await api.delete(int(comment["id"]))
        mine = []
    if not mine:
        return "created", await api.create(body)
    keep, extra = mine[-1], mine[:-1]
    for comment in extra:
        await api.delete(int(comment["id"]))
    if extra:
        log(f"removed {len(extra)} duplicate comment(s) with key {key!r}")
    if api.body_of(keep) == body:
        return "skipped", keep
    edited = await api.update(int(keep["id"]), body)
    return ("updated", edited) if edited is not None else ("created", await api.create(body))


class _Listed(StickyApi, Protocol):
    #: the id of the newest marked comment the last listing found (None: not listed, or none found)
    newest: int | None


@dataclass(frozen=True)
class StickyShape:
    """How a host names what :func:`sticky_outcome` remembers and says: its ``remote`` id key, its tier, the
    refusal of an unkeyed delete and the note on a shortened body."""

    id_key: str  # e.g. ``comment_id`` (journaled: never rename one a provider has shipped)
    tier: str
    refused: str
    shortened: str  # formatted with ``key``


async def sticky_outcome(comments: _Listed, op: PostComment, state: dict[str, Any], *, body: str, truncated: bool,
                         pr: int, keyed: bool, shape: StickyShape, log: Callable[[str], None],
                         url_of: Callable[[dict[str, Any]], str | None], resumed: bool = False) -> Outcome:
    """:func:`sticky` on a host's adapter, and the Outcome it makes: the comment's id and ``url_of`` it in
    ``remote``, whether the body was shortened. A failed attempt keeps the newest marked comment it listed, so the
    next attempt edits that one without listing again."""
    try:
        action, comment = await sticky(comments, op.mode, body, keyed=keyed, known=state.get(shape.id_key),
                                       same_target=state.get("pr") == pr, key=op.key, log=log, resumed=resumed)
    except HttpError as err:
        if comments.newest is not None and op.mode == "upsert":
            state.update({shape.id_key: comments.newest, "pr": pr})
        err.outcome.remote = state
        raise
    if action == "refused":
        return Outcome.refused(shape.refused)
    remote: dict[str, Any] = {"pr": pr, "truncated": truncated}
    url = None
    if comment is not None and comment.get("id") is not None:
        remote[shape.id_key] = remote["id"] = comment["id"]
        url = remote["url"] = url_of(comment)
    if truncated:
        log(shape.shortened.format(key=op.key or ""))
    return Outcome.delivered(action=action, url=url, remote=remote, tier=shape.tier)
