"""Build statuses and PR comments, and how the outcomes of every run write come back into the run."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from ci_sidecar.delivery.outbox import Entry
from ci_sidecar.protocol.methods import (
    AddPrCommentParams,
    AddPrCommentResult,
    SetBuildStatusParams,
    SetBuildStatusResult,
)
from ci_sidecar.protocol.records import CommentRef, DeliveryState, ErrorInfo
from ci_sidecar.providers.base import Outcome, PostComment, PublishRun, SetStatus

from ..session_context import SessionContext
from .core import RunCore, RunState

__all__ = ["RunWrites"]


class RunWrites(RunCore):
    """``set_build_status``, ``add_pr_comment`` and the outbox's outcomes for runs."""

    async def set_build_status(self, ctx: SessionContext, p: SetBuildStatusParams) -> SetBuildStatusResult:
        state = self._require(p.test_run_id) if p.test_run_id else None
        provider = ctx.status_provider(state.meta.ci_provider if state else None)
        sha = p.sha or (state.meta.head_sha or state.meta.commit_sha if state else None) or ctx.ci.head_sha \
            or ctx.ci.commit_sha
        output_dir = state.meta.output_dir if state else ctx.output_root
        op = SetStatus(state=p.state, context=p.context, sha=sha, description=p.description,
                       target_url=p.target_url, run_id=p.test_run_id, output_dir=output_dir)
        entry_id = self.outbox.put(provider=provider, target=f"status:{sha}:{p.context}", op=op,
                                   run_id=p.test_run_id, session_id=ctx.session_id, ci=ctx.ci,
                                   credential=ctx.credential_ref(provider), config=ctx.provider_config(provider))
        await self.store.commit()
        delivery = await self._wait([entry_id], p.wait, p.wait_s)
        return SetBuildStatusResult(delivery=delivery, ref=entry_id)

    async def add_comment(self, ctx: SessionContext, p: AddPrCommentParams) -> AddPrCommentResult:
        state = self._require(p.test_run_id) if p.test_run_id else None
        provider = ctx.comment_provider(state.meta.ci_provider if state else None)
        mode = p.mode or ("upsert" if p.key else "create")
        if ctx.config.comment_mode == "off":
            return AddPrCommentResult(action="skipped", truncated=False, delivery=DeliveryState(state="delivered"))
        pr_number = p.pr_number or (state.meta.pr_number if state else None) or ctx.ci.pr_number
        output_dir = state.meta.output_dir if state else ctx.output_root
        op = PostComment(body=p.body, mode=mode, key=p.key, pr_number=pr_number, run_id=p.test_run_id,
                         output_dir=output_dir)
        target = f"comment:{p.key}" if p.key else f"comment:{uuid.uuid4().hex}"
        entry_id = self.outbox.put(provider=provider, target=target, op=op, run_id=p.test_run_id,
                                   session_id=ctx.session_id, ci=ctx.ci, credential=ctx.credential_ref(provider),
                                   config=ctx.provider_config(provider))
        if state is not None:
            self._record_comment(state, CommentRef(action="pending", key=p.key, delivery=DeliveryState(state="pending")),
                                 entry_id)
            self._save(state)
        await self.store.commit()
        delivery = await self._wait([entry_id], p.wait, p.wait_s)
        previous = self.outbox.remote(provider, target)
        result = AddPrCommentResult(action="pending", truncated=False, delivery=delivery,
                                    id=_str_or_none(previous.get("id")), url=previous.get("url"))
        if delivery.state == "delivered":
            ref = self._comment_outcomes.pop(entry_id, None)
            if ref is not None:
                result.action = ref.action  # type: ignore[assignment]
                result.id, result.url = ref.id, ref.url
                result.truncated = bool(ref_truncated(previous))
        return result

    def group_comment(self, ctx: SessionContext, state: RunState, body: str) -> str:
        """The sticky comment of a sharded group's merged run (one per group key); the outbox entry id."""
        provider = ctx.comment_provider(state.meta.ci_provider)
        key = f"group:{state.meta.group.key}" if state.meta.group else f"run:{state.meta.id}"
        op = PostComment(body=body, mode="upsert", key=key, pr_number=state.meta.pr_number or ctx.ci.pr_number,
                         run_id=state.meta.id, output_dir=state.meta.output_dir)
        return self.outbox.put(provider=provider, target=f"comment:{key}", op=op, run_id=state.meta.id,
                               session_id=ctx.session_id, ci=ctx.ci, credential=ctx.credential_ref(provider),
                               config=ctx.provider_config(provider))

    # --- outcomes -------------------------------------------------------------------------------

    def _record_comment(self, state: RunState, ref: CommentRef, entry_id: str) -> None:
        comments = state.meta.comments
        if ref.key is not None:
            comments[:] = [c for c in comments if c.key != ref.key]
        comments.append(ref)

    def on_outcome(self, entry: Entry, outcome: Outcome | None, error: ErrorInfo | None) -> None:
        """The outbox settled an entry: reflect it in the run (targets, comments) and journal that."""
        if isinstance(entry.op, PostComment):
            delivered = outcome is not None and outcome.kind == "delivered"
            remote = outcome.remote or {} if outcome else {}
            ref = CommentRef(
                action=(outcome.action or "created") if delivered and outcome else "failed",
                key=entry.op.key, id=_str_or_none(remote.get("id")), url=outcome.url if outcome else None,
                delivery=DeliveryState(state="delivered") if delivered else DeliveryState(state="failed", error=error),
            )
            self._comment_outcomes[entry.id] = ref
            while len(self._comment_outcomes) > 10_000:
                self._comment_outcomes.pop(next(iter(self._comment_outcomes)))
            state = self.runs.get(entry.run_id or "")
            if state is not None:
                self._record_comment(state, ref, entry.id)
                self._save(state)
        elif isinstance(entry.op, PublishRun) and outcome is not None:
            state = self.runs.get(entry.run_id or "")
            if state is None:
                return
            changed = False
            for i, t in enumerate(state.meta.targets):
                if t.provider != entry.provider or t.provider == "local":
                    continue
                # Outcome.tier names the tier that carried the write ("check run", "commit status"); the
                # target's note starts with the tier expected at creation ("via check run; ..."). A
                # different one means the provider fell down its ladder: the target is a fallback now.
                downgraded = bool(outcome.kind == "delivered" and outcome.tier
                                  and _target_via(t) not in (None, outcome.tier))
                if (outcome.url and t.url != outcome.url) or downgraded:
                    state.meta.targets[i] = msgspec.structs.replace(
                        t, url=outcome.url or t.url,
                        kind="fallback" if downgraded else t.kind,
                        note=f"via {outcome.tier}" if downgraded else t.note)
                    changed = True
            if changed:
                self._save(state)


def _target_via(target: Any) -> str | None:
    """The tier a target was expected to use, from its note (``"via commit status; why"``)."""
    note = target.note or ""
    if not note.startswith("via "):
        return None
    return note[4:].split(";", 1)[0].strip() or None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def ref_truncated(remote: dict[str, Any]) -> bool:
    return bool(remote.get("truncated"))

