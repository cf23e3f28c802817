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
from .._sticky import sticky, write_key
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


class _Notes:
    """The MR's notes as the sticky procedure sees them."""

    def __init__(self, api: ApiSession, path: str, marker: str | None, author: int | None) -> None:
        self.api, self.path, self.marker, self.author = api, path, marker, author

    async def ours(self) -> list[dict[str, Any]]:
        """Our notes carrying the marker, oldest first."""
        found = []
        params = {"sort": "asc", "order_by": "created_at", "per_page": 100}
        async with aclosing(self.api.paginate(self.path, params)) as pages:
            async for page in pages:
                for note in page.json() or []:
                    if not isinstance(note, dict) or note.get("system"):
                        continue
                    if self.author is not None and (note.get("author") or {}).get("id") != self.author:
                        continue
                    if self.marker and str(note.get("body") or "").startswith(self.marker):
                        found.append(note)
        return sorted(found, key=lambda n: int(n.get("id") or 0))

    async def create(self, body: str) -> dict[str, Any]:
        return (await self.api.request("POST", self.path, json_body={"body": body})).json() or {}

    async def update(self, note_id: int, body: str) -> dict[str, Any] | None:
        resp = await self.api.request("PUT", f"{self.path}/{int(note_id)}", json_body={"body": body}, allow=(404,))
        return None if resp.status == 404 else resp.json() or {}

    async def delete(self, note_id: int) -> bool:
        resp = await self.api.request("DELETE", f"{self.path}/{int(note_id)}", allow=(404,), expect_json=False)
        return resp.status != 404

    def body_of(self, note: dict[str, Any]) -> str:
        return str(note.get("body") or "")


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
    key = op.key or write_key(env)  # a note without a key is found again by its write's
    marker = comment_marker(key) if key else None
    body, truncated = note_body(op, marker) if op.mode != "delete" else ("", False)
    action, note = await sticky(
        _Notes(api, f"{project}/merge_requests/{int(iid)}/notes", marker, author), op.mode, body,
        keyed=op.key is not None, known=state.get("note_id"), same_target=state.get("pr") == iid, key=op.key,
        log=api.log, resumed=marker is not None and not env.never_sent)
    if action == "refused":
        return Outcome.refused("gitlab: deleting a note needs its key")
    remote: dict[str, Any] = {"pr": iid, "truncated": truncated}
    url = note_url(iid, note) if note is not None else None
    if note is not None:
        remote["note_id"] = remote["id"] = note.get("id")
        remote["url"] = url
    if truncated:
        api.log(f"note {op.key or ''} shortened to GitLab's {NOTE_CHARS:,} characters")
    return Outcome.delivered(action=action, url=url, remote=remote, tier="merge request note")
