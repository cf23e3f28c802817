"""A group's key and a shard's number when the client does not say: from the CI's own variables.

The key names the logical run: the pipeline/workflow run plus the job's name without its matrix or parallel part,
so every shard of one job in one pipeline gets the same key, and a re-run of the pipeline a new one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["default_key", "default_shard", "default_total"]

_PARALLEL_SUFFIX = re.compile(r"\s+\d+/\d+$")  # GitLab's "rspec 3/8"


def default_key(env: Mapping[str, str], run_name: str) -> str | None:
    """The CI's run + job (without the matrix part), None when no CI says."""
    if env.get("GITHUB_RUN_ID"):
        # GITHUB_JOB is the job's id in the workflow file: the same for every matrix combination
        attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
        return f"github:{env.get('GITHUB_REPOSITORY', '')}:{env['GITHUB_RUN_ID']}.{attempt}:{env.get('GITHUB_JOB', '')}" \
               f":{run_name}"
    if env.get("CIRCLE_WORKFLOW_ID"):
        return f"circleci:{env['CIRCLE_WORKFLOW_ID']}:{env.get('CIRCLE_JOB', '')}:{run_name}"
    if env.get("CI_PIPELINE_ID"):
        job = _PARALLEL_SUFFIX.sub("", env.get("CI_JOB_NAME", ""))
        return f"gitlab:{env.get('CI_PROJECT_PATH', '')}:{env['CI_PIPELINE_ID']}:{job}:{run_name}"
    if env.get("BUILDKITE_BUILD_ID"):
        step = env.get("BUILDKITE_STEP_KEY") or env.get("BUILDKITE_STEP_ID", "")
        return f"buildkite:{env['BUILDKITE_BUILD_ID']}:{step}:{run_name}"
    return None


def default_shard(env: Mapping[str, str]) -> int | None:
    """This job's 0-based shard number, None when no CI says."""
    for name, base in (("CIRCLE_NODE_INDEX", 0), ("BUILDKITE_PARALLEL_JOB", 0), ("CI_NODE_INDEX", 1)):
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value) - base  # GitLab counts from 1
    return None


def default_total(env: Mapping[str, str]) -> int | None:
    """How many shards the CI runs, None when no CI says."""
    for name in ("CIRCLE_NODE_TOTAL", "BUILDKITE_PARALLEL_JOB_COUNT", "CI_NODE_TOTAL"):
        value = env.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None
