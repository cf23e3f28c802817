"""Sticky merge request notes: found again by the hidden marker of their key among our own notes.

Notes are on ``CI_MERGE_REQUEST_IID`` (the project-scoped iid the API takes, never the global id). A note is ours
when it is not a system note, its author is the token's user and its body starts with the marker; other
authors' notes quoting the marker are left alone. A known note id is edited in place (PUT); otherwise the notes
are listed (``X-Next-Page`` pagination), the newest of ours is edited and older duplicates are deleted.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from ci_sidecar.reports import cut_markdown

from .._http import ApiSession
from .._render import comment_marker
from ..base import Outcome, PostComment, ProviderEnv
from ._api import NOTE_CHARS, project_path

__all__ = ["post_note", "note_body"]


def note_body(op: PostComment, marker: str | None) -> tuple[str, bool]:
    """The body to send (marker first) and whether it was shortened to GitLab's 1,000,000 characters."""
    head = f"{marker}\n" if marker else ""
    budget = NOTE_CHARS - len(head)
    if len(op.body) <= budget:
        return head + op.body, False
    # cut_markdown counts UTF-8 bytes: a byte budget equal to the character budget always fits
    return head + cut_markdown(op.body, budget, full_report_url=op.full_report_url), True


async def _own_notes(api: ApiSession, path: str, marker: str, author: int | None) -> list[dict[str, Any]]:
    """Our notes carrying ``marker``, oldest first."""
    found = []
    params = {"sort": "asc", "order_by": "created_at", "per_page": 100}
    async with aclosing(api.paginate(path, params)) as pages:
        async for page in pages:
            for note in page.json() or []:
                if not isinstance(note, dict) or note.get("system"):
                    continue
                if author is not None and (note.get("author") or {}).get("id") != author:
                    continue
                if str(note.get("body") or "").startswith(marker):
                    found.append(note)
    return sorted(found, key=lambda n: int(n.get("id") or 0))


async def _delete(api: ApiSession, path: str, notes: list[dict[str, Any]]) -> int:
    gone = 0
    for note in notes:
        resp = await api.request("DELETE", f"{path}/{note['id']}", allow=(404,), expect_json=False)
        gone += resp.status != 404
    return gone


async def post_note(op: PostComment, env: ProviderEnv, state: dict[str, Any], api: ApiSession,
                    author: int | None, note_url: Any) -> Outcome:
    """One attempt at creating, editing or deleting the MR note ``op`` describes (sticky by ``op.key``).

    ``author`` is the token's user id (None: unknown, any author's note with the marker counts);
    ``note_url(iid, note)`` is the note's web address when the job's project URL is known.
    """
    project = project_path(env)
    iid = op.pr_number or env.ci.pr_number
    if project is None:
        return Outcome.refused("gitlab: no project (CI_PROJECT_ID or CI_PROJECT_PATH) for the note")
    if not iid:
        return Outcome.refused("gitlab: no merge request (CI_MERGE_REQUEST_IID) for the note: "
                               "notes are written in merge request pipelines only")
    path = f"{project}/merge_requests/{int(iid)}/notes"
    marker = comment_marker(op.key) if op.key else None
    body, truncated = note_body(op, marker) if op.mode != "delete" else ("", False)

    def done(action: str, note: dict[str, Any] | None) -> Outcome:
        remote: dict[str, Any] = {"pr": iid, "truncated": truncated}
        url = note_url(iid, note) if note is not None else None
        if note is not None:
            remote["note_id"] = remote["id"] = note.get("id")
            remote["url"] = url
        if truncated:
            api.log(f"note {op.key or ''} shortened to GitLab's {NOTE_CHARS:,} characters")
        return Outcome.delivered(action=action, url=url, remote=remote, tier="merge request note")

    if marker is None:
        if op.mode == "delete":
            known = state.get("note_id")
            if known is None:
                return Outcome.refused("gitlab: deleting a note needs its key")
            return done("deleted" if await _delete(api, path, [{"id": known}]) else "skipped", None)
        return done("created", (await api.request("POST", path, json_body={"body": body})).json())

    known = state.get("note_id")
    if op.mode == "upsert" and known is not None and state.get("pr") == iid:
        resp = await api.request("PUT", f"{path}/{int(known)}", json_body={"body": body}, allow=(404,))
        if resp.status != 404:
            return done("updated", resp.json())
    mine = await _own_notes(api, path, marker, author)
    if op.mode == "delete":
        return done("deleted" if await _delete(api, path, mine) else "skipped", None)
    if op.mode == "create" and mine:
        return done("skipped", mine[-1])
    if op.mode == "replace":
        await _delete(api, path, mine)
        mine = []
    if mine:
        keep, extra = mine[-1], mine[:-1]
        if extra:
            await _delete(api, path, extra)
            api.log(f"removed {len(extra)} duplicate note(s) with key {op.key!r}")
        if keep.get("body") == body:
            return done("skipped", keep)
        return done("updated", (await api.request("PUT", f"{path}/{keep['id']}", json_body={"body": body})).json())
    return done("created", (await api.request("POST", path, json_body={"body": body})).json())
