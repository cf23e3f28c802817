"""Artifacts as attachments of the run's test run (``POST test/Runs/{id}/attachments``, the content base64 in
``stream``, at most 100 MB each), shown with the run in the build's Tests tab.

The attachment's ``comment`` names the artifact and its SHA-256, so an attempt that an earlier one may have
preceded — a retry, or an upload a restarted daemon resumes (a kill -9 after Azure stored the attachment and
before the outcome was journaled leaves no trace of the attempt) — finds it in the run's attachment list instead
of attaching it twice, and ``get_artifact_url`` finds it after a restart. The first attempt of a new upload sends
only the POST. An
artifact past 100 MB is refused here with the limit (the object store, when one is configured, has its copy). An
artifact uploaded before its test run exists waits for it (the run's own write creates it).
"""

from __future__ import annotations

import base64
from typing import Any

import trio

from .._http import ApiSession
from ..base import Outcome, ProviderEnv, UploadArtifact
from ._api import ATTACHMENT_BYTES, V, project_path, values

__all__ = ["upload_attachment", "find_attachment", "attachment_comment", "file_name"]


def attachment_comment(op: UploadArtifact) -> str:
    """The comment an attachment is found again by (name and content)."""
    return f"ci-sidecar artifact {op.name} sha256:{op.sha256}"


def file_name(op: UploadArtifact) -> str:
    """The attachment's file name: the artifact's name without folders (``logs/a.txt`` → ``logs_a.txt``)."""
    return op.name.replace("\\", "_").replace("/", "_") or "artifact"


async def find_attachment(api: ApiSession, env: ProviderEnv, run_id: int, op: UploadArtifact) -> dict[str, Any] | None:
    """The run's attachment holding this artifact's content, else None."""
    resp = await api.request("GET", f"{project_path(env)}/test/Runs/{run_id}/attachments", params=V)
    wanted = attachment_comment(op)
    return next((a for a in values(resp) if a.get("comment") == wanted), None)


def _delivered(found: dict[str, Any], run_id: int) -> Outcome:
    url = found.get("url")
    return Outcome.delivered(url=url if isinstance(url, str) else None, tier="test run attachment",
                             remote={"run_id": run_id, "attachment_id": found.get("id"), "url": url})


async def upload_attachment(op: UploadArtifact, env: ProviderEnv, state: dict[str, Any], api: ApiSession,
                            run_id: int) -> Outcome:
    """One attempt at attaching ``op`` to the test run ``run_id``."""
    if op.size > ATTACHMENT_BYTES:
        return Outcome.refused(f"artifact {op.name!r} is {op.size:,} bytes: Azure DevOps test-run attachments are "
                               f"limited to {ATTACHMENT_BYTES:,} bytes (configure the object store for larger "
                               "artifacts)", tier="none")
    if not env.never_sent:  # an earlier attempt, maybe of a daemon since killed, may have attached it
        found = await find_attachment(api, env, run_id, op)
        if found is not None:
            return _delivered(found, run_id)
    async with await trio.open_file(op.stored_path, "rb") as fh:
        data = await fh.read()
    body = {"stream": base64.b64encode(data).decode(), "fileName": file_name(op), "comment": attachment_comment(op),
            "attachmentType": "GeneralAttachment"}
    state.pop("inflight", None)  # a mark of older versions: the lookup above no longer needs it
    made = (await api.request("POST", f"{project_path(env)}/test/Runs/{run_id}/attachments", params=V,
                              json_body=body)).json() or {}
    return _delivered(made, run_id)
