"""The group's sticky comment: the merged run's totals and its shards section (the same one every report of the
run shows)."""

from __future__ import annotations

from ci_sidecar.protocol.records import Counts
from ci_sidecar.reports import md_escape, shards_markdown

from ..runs.core import RunState

__all__ = ["comment_body"]


def comment_body(state: RunState, counts: Counts) -> str:
    """Markdown for the group's sticky PR comment."""
    meta = state.meta
    icon = {"success": "✅", "failure": "❌"}.get(meta.conclusion or "", "ℹ️")
    shards = meta.shards
    across = f" across {len(shards.rows)} shard(s)" if shards is not None else ""
    lines = [f"### {icon} {md_escape(meta.name)}: {meta.conclusion or meta.status}", "",
             f"**{counts.total}** tests{across}: {counts.passed} passed, "
             f"{counts.failed} failed, {counts.errors} errors, {counts.skipped} skipped, {counts.flaky} flaky"]
    if shards is not None:
        lines += ["", shards_markdown(shards, md_escape)]
    return "\n".join(lines) + "\n"
