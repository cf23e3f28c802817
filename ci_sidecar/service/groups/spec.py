"""A shard's group as ``create_test_run`` gives it, completed from the CI's variables."""

from __future__ import annotations

from typing import Any

from ci_sidecar.protocol import errors as E
from ci_sidecar.protocol.methods import CreateTestRunParams
from ci_sidecar.protocol.shards import ShardReport

from ..model import GroupMeta
from ..session_context import SessionContext
from .defaults import default_key, default_shard, default_total

__all__ = ["shard_group", "merged_group_run", "fan_in_shards", "scoped_key", "DEFAULT_DEADLINE_S"]

#: how long a group waits for missing shards, counted from its first shard's start
DEFAULT_DEADLINE_S = 3600.0


def scoped_key(repository: str | None, key: str) -> str:
    """The name a client's group key has within its repository: two repositories sharing a bucket (or a daemon)
    that pick the same key (``unit``) never share a group. The CI's own keys name their repository or a
    pipeline id unique across repositories already."""
    return f"{repository}:{key}" if repository else key


def shard_group(ctx: SessionContext, p: CreateTestRunParams) -> GroupMeta:
    """The group of a new shard run; -32602 naming the field when neither the client nor the CI says."""
    g = p.group
    assert g is not None
    key = scoped_key(ctx.ci.repository, g.key) if g.key else default_key(ctx.env, p.name)
    if key is None:
        raise E.InvalidParams("$.group.key", "no group key given and none found in the CI's variables "
                                             "(GITHUB_RUN_ID, CIRCLE_WORKFLOW_ID, CI_PIPELINE_ID, BUILDKITE_BUILD_ID)")
    shard = g.shard if g.shard is not None else default_shard(ctx.env)
    if shard is None:
        raise E.InvalidParams("$.group.shard", "no shard number given and none found in the CI's variables "
                                               "(CIRCLE_NODE_INDEX, CI_NODE_INDEX, BUILDKITE_PARALLEL_JOB)")
    total = g.total if g.total is not None else default_total(ctx.env)
    if total is not None and shard >= total:
        raise E.InvalidParams("$.group.shard", f"shard {shard} is not below total {total} (shards count from 0)")
    return GroupMeta(key=key, shard=shard, total=total, deadline_s=g.deadline_s or DEFAULT_DEADLINE_S)


def merged_group_run(state: Any) -> bool:
    """The merged run of a group, which only the group's lease holder concludes (never a local timeout)."""
    group = state.meta.group
    return group is not None and group.role == "group"


def fan_in_shards(p: CreateTestRunParams) -> ShardReport | None:
    """The shards section of a fan-in run (``ci-sidecar merge``), from the rows its client gives; -32602 for a
    shard's own run (its group lists the shards) or a shard number given twice."""
    if p.shards is None:
        return None
    if p.group is not None:
        raise E.InvalidParams("$.shards", "a shard of a group cannot list shards: its group's merged run lists them")
    seen: set[int] = set()
    for i, row in enumerate(p.shards):
        if row.shard in seen:
            raise E.InvalidParams(f"$.shards[{i}].shard", f"shard {row.shard} is listed twice")
        seen.add(row.shard)
    return ShardReport(rows=sorted(p.shards, key=lambda r: r.shard))
